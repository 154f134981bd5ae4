"""The user's mistakes, told apart from our bugs.

A :class:`UserError` is something the person running arabicpeft can fix (a wrong option value, a missing
file, no GPU for a GPU precision, no network for the hub). The command line (:mod:`arabicpeft.cli`) prints it,
and a ValueError / OSError / RuntimeError our own checks raised, as one line,
``error: <what was wrong> — <what to do>``, and exits with status 1 (``--debug`` or ``ARABICPEFT_DEBUG=1``
shows the traceback); in a notebook it is an ordinary exception with the same message. Every other exception
is a bug and keeps its traceback.

Public: :class:`UserError`, :class:`ConfigError`, :class:`SetupError`, :class:`GPUUnavailableError`,
:class:`UnsupportedGPUError`, :class:`DiskSpaceError`, :class:`HubUnreachableError`, :class:`SessionTimeSpent`,
:class:`DataUnavailableError`, :func:`user_message`, :func:`write_failure`.
"""

from __future__ import annotations

import errno
import traceback
from pathlib import Path
from typing import Optional

_PACKAGE_DIR = Path(__file__).resolve().parent


class UserError(Exception):
    """Something the user can fix. ``what`` says what was wrong, ``todo`` what to do about it."""

    def __init__(self, what: str, todo: Optional[str] = None):
        super().__init__(f"{what} — {todo}" if todo else what)
        self.what, self.todo = what, todo


class ConfigError(UserError, ValueError):
    """An :class:`~arabicpeft.config.ExperimentConfig` value that cannot run (a ValueError, as before)."""


class SetupError(UserError, RuntimeError):
    """The machine or session cannot run what was asked (:mod:`arabicpeft.device`, :mod:`arabicpeft.kaggle`)."""


class GPUUnavailableError(SetupError):
    """The precision needs a CUDA GPU and none is visible."""


class UnsupportedGPUError(SetupError):
    """The GPU lacks what the run needs (kernels of Kaggle's PyTorch, bf16 or int8 arithmetic)."""


class DiskSpaceError(SetupError):
    """Too little free disk for the run's checkpoints or data cache."""


class HubUnreachableError(SetupError):
    """The run reads its model or data from the HuggingFace hub, and the hub cannot be reached."""


class SessionTimeSpent(SetupError):
    """No Kaggle session time is left for training."""


class DataUnavailableError(UserError, RuntimeError):
    """The requested data cannot be read; we stop rather than train on anything else."""


def _raised_here(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by this package's own code (its innermost frame is in arabicpeft/)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and _PACKAGE_DIR in Path(frames[-1].filename).resolve().parents


def user_message(exc: BaseException) -> Optional[str]:
    """``exc``'s message on one line (whitespace runs collapsed) when it is the user's to fix: a
    :class:`~arabicpeft.errors.UserError`, or a ValueError / OSError / RuntimeError that our own checks raised on
    purpose (their messages say what to do). None for a bug: exceptions from inside libraries, and every other
    type."""
    ours = isinstance(exc, (ValueError, OSError, RuntimeError)) and _raised_here(exc)
    if not (isinstance(exc, UserError) or ours):
        return None
    return " ".join(str(exc).split()) or type(exc).__name__


# Writing failed for lack of room (a full disk or quota, a file-size limit) or on a read-only filesystem: the
# errno of an OSError, or the text of the errors torch.save and safetensors raise instead.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
_WRITE_FAILURES = ("No space left on device", "Disk quota exceeded", "File too large", "Read-only file system",
                   "file write failed", "StorageFull")


def write_failure(exc: BaseException) -> Optional[str]:
    """One line saying that saving failed and what to do, when ``exc`` (or an exception it was raised from) is a
    failed write (:data:`_WRITE_ERRNOS`, :data:`_WRITE_FAILURES`), wherever it was raised (our code, torch,
    safetensors, the Trainer's checkpoints); None otherwise."""
    seen = exc
    while seen is not None:
        text = " ".join(str(seen).split())
        if (isinstance(seen, OSError) and seen.errno in _WRITE_ERRNOS) or any(f in text for f in _WRITE_FAILURES):
            return (f"saving failed: {text[:300]} — free disk space where the output goes (or choose another "
                    "--output-dir) and rerun the same command: a train run resumes from its last complete checkpoint.")
        seen = seen.__cause__ or seen.__context__
    return None
