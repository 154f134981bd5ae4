"""The user's mistakes, told apart from our bugs.

A :class:`UserError` is something the person running arabicpeft can fix (a wrong option value, a missing
file, no GPU for a GPU precision, no network for the hub). The command line (:mod:`arabicpeft.cli`) prints it,
and a ValueError / OSError / RuntimeError our own checks raised, as one line,
``error: <what was wrong> — <what to do>``, and exits with status 1 (``--debug`` or ``ARABICPEFT_DEBUG=1``
shows the traceback); in a notebook it is an ordinary exception with the same message. Every other exception
is a bug and keeps its traceback.

Public: :class:`UserError`, :class:`ConfigError`, :class:`SetupError`, :class:`GPUUnavailableError`,
:class:`UnsupportedGPUError`, :class:`DiskSpaceError`, :class:`HubUnreachableError`, :class:`SessionTimeSpent`,
:class:`DataUnavailableError`.
"""

from __future__ import annotations

from typing import Optional


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
