"""A run's output folder: what a training run writes there, and when the folder belongs to a run.

::

    <output_dir>/run_config.json        the config that owns the folder (written when training starts)
    <output_dir>/checkpoints/checkpoint-N/  Trainer checkpoints (a rerun resumes from the latest)
    <output_dir>/utterances_before.csv, metrics_before.json   the starting model's scores (a rerun reads them)
    <output_dir>/model/                 the adapter (LoRA) or the whole model (full), processor, config
    <output_dir>/results.json, utterances.csv   the scores of that saved model
    <output_dir>/INCOMPLETE             only while model/ and results.json may describe different steps
    <output_dir>/.lock                  held by the one process running the run (filelock)

Torch-free, so that the command line checks a folder before its heavy imports.

Public: :data:`CHECKPOINT_DIR`, :data:`MODEL_DIR`, :data:`TRAINER_STATE`, :data:`RUN_CONFIG_FILE`,
:data:`RESULTS_FILE`, :data:`UTTERANCES_FILE`, :data:`BEFORE_UTTERANCES_FILE`, :data:`BEFORE_METRICS_FILE`,
:class:`RunInUseError`, :func:`write_json_atomic`, :func:`write_csv_atomic`, :func:`check_output_folder`,
:func:`checkpoint_step`, :class:`RunDir`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, Optional

from .config import ExperimentConfig
from .errors import ConfigError, SetupError

CHECKPOINT_DIR, MODEL_DIR = "checkpoints", "model"
_CHECKPOINT_PREFIX = "checkpoint"  # checkpoint-N: the Trainer's name (transformers' PREFIX_CHECKPOINT_DIR)
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint: a checkpoint without it is incomplete
RUN_CONFIG_FILE = "run_config.json"
RESULTS_FILE = "results.json"
UTTERANCES_FILE = "utterances.csv"
BEFORE_UTTERANCES_FILE = "utterances_before.csv"
BEFORE_METRICS_FILE = "metrics_before.json"
_INCOMPLETE_FILE = "INCOMPLETE"
_LOCK_FILE = ".lock"


class RunInUseError(SetupError):
    """Another process holds the run's lock: it is running in that folder now (:meth:`RunDir.hold`)."""


def _clean(value):
    # JSON has no NaN: write null, so every reader (and json.loads with strict parsers) accepts the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _write_atomic(path, write) -> Path:
    """``write(file)`` into a temporary file beside ``path``, then rename it into place: a reader never sees a
    half-written file. The file gets the permissions of any other new file (mkstemp's would be 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path, obj) -> Path:
    """``obj`` as indented UTF-8 JSON at ``path``, atomically (NaN and infinity written as null)."""
    return _write_atomic(path, lambda f: json.dump(_clean(obj), f, indent=2, ensure_ascii=False, default=str))


def write_csv_atomic(path, frame) -> Path:
    """A pandas DataFrame as CSV (no index) at ``path``, atomically."""
    return _write_atomic(path, lambda f: frame.to_csv(f, index=False))


def check_output_folder(path, option: str = "--output-dir (output_dir)") -> None:
    """Raise a :class:`~arabicpeft.errors.UserError` unless files can be written into folder ``path`` (or, when
    it does not exist yet, it can be made): a file on the way is a :class:`ConfigError`, a folder that refuses
    writing (read-only, another owner) a :class:`SetupError`. Writes and removes one temporary file; makes no
    folder. Called before any work, so that a run does not find out after hours of it."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"the output folder {path} cannot be made: {existing} is a file, not a folder",
                          f"give {option} a folder path, new or of an earlier run.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        where = "" if existing == path else f" (its nearest existing folder {existing} is not)"
        raise SetupError(f"the output folder {path} is not writable{where}: {e.strerror or e}",
                         f"give {option} a folder you can write to.") from e


def checkpoint_step(path) -> int:
    """The step N of a ``checkpoint-N`` folder path (a trailing slash allowed); -1 for any other name."""
    name = Path(str(path).rstrip("/")).name
    prefix, _, step = name.rpartition("-")
    return int(step) if prefix == _CHECKPOINT_PREFIX and step.isdigit() else -1


def _file_problem(path: Path) -> Optional[str]:
    """How a checkpoint file is broken (cut short while it was written: a full disk, a killed process), or None.
    JSON must parse; a safetensors file must be as long as its header says; a PyTorch file (.pt, .pth, .bin: a
    zip archive) must end with its central directory, which is written last."""
    try:
        if path.suffix == ".json":
            value = json.loads(path.read_text(encoding="utf-8"))
            if path.name == TRAINER_STATE and not isinstance(value, dict):
                return "is not a JSON object"
        elif path.suffix == ".safetensors":
            with open(path, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            size = path.stat().st_size
            if size != 8 + length + end:
                return f"is {size} bytes long, not the {8 + length + end} its header gives"
        elif path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):
            return "is not a whole PyTorch file (no zip central directory)"
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError) as e:  # unreadable or cut short
        return f"cannot be read ({type(e).__name__}: {e})"
    return None


def _checkpoint_problem(folder: Path) -> Optional[str]:
    """Why the checkpoint ``folder`` cannot be resumed ("optimizer.pt is ..."), or None when it is complete: it
    holds the trainer state (the Trainer writes it last) and no file of it is broken (:func:`_file_problem`)."""
    if not (folder / TRAINER_STATE).is_file():
        return f"it has no {TRAINER_STATE} (cut off while saving)"
    for path in sorted(folder.iterdir()):
        problem = _file_problem(path) if path.is_file() else None
        if problem:
            return f"{path.name} {problem}"
    return None


def _checkpoints(folder: Path) -> list[Path]:
    """``checkpoint-N`` folders in ``folder``, by step; [] when ``folder`` does not exist."""
    return sorted((p for p in folder.glob(f"{_CHECKPOINT_PREFIX}-*") if checkpoint_step(p) >= 0 and p.is_dir()),
                  key=checkpoint_step)


def _complete_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in ``folder`` a run can resume from (:func:`_checkpoint_problem`), by step."""
    return [p for p in _checkpoints(folder) if _checkpoint_problem(p) is None]


class RunDir:
    """One run's output folder ``path`` (the layout above): which experiment owns it, the checkpoint a rerun
    resumes from, and whether its model and results are being replaced."""

    def __init__(self, path):
        self.path = Path(path)

    def config_changes(self, cfg: ExperimentConfig) -> str:
        """What ``cfg`` changes, outside :meth:`ExperimentConfig.resumable_fields`, from the config that owns the
        folder ("" when nothing changes or no config owns it). Raises :class:`~arabicpeft.errors.ConfigError` when
        the folder's ``run_config.json`` is not a JSON object (broken, e.g. cut short)."""
        saved = self.path / RUN_CONFIG_FILE
        if not saved.is_file():
            return ""
        try:
            before = json.loads(saved.read_text(encoding="utf-8"))
            if not isinstance(before, dict):
                raise ValueError(f"a JSON {type(before).__name__}")
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, not an object
            raise ConfigError(f"{saved} is broken: not a JSON object of a run config ({e})",
                              "delete that run folder to start over, or use a new --output-dir (output_dir).") from e
        resumable = ExperimentConfig.resumable_fields()
        return "; ".join(f"{k}: {before.get(k)!r} -> {v!r}" for k, v in cfg.to_dict().items()
                         if k not in resumable and before.get(k) != v)

    def owned_by(self, cfg: ExperimentConfig) -> bool:
        """The folder was claimed by this experiment (the same config up to the resumable fields)."""
        return (self.path / RUN_CONFIG_FILE).is_file() and not self.config_changes(cfg)

    def check(self, cfg: ExperimentConfig) -> None:
        """Raise :class:`~arabicpeft.errors.ConfigError` when the folder is claimed by a different experiment (its
        checkpoints would otherwise be resumed, or its results reused, under ``cfg``'s name) or its
        ``run_config.json`` is broken, or when the folder cannot be written (:func:`check_output_folder`)."""
        check_output_folder(self.path)
        changed = self.config_changes(cfg)
        if changed:
            raise ConfigError(f"{self.path} already holds a run with another config ({changed})",
                              "use a new --output-dir (output_dir), or delete that folder to start over.")

    def claim(self, cfg: ExperimentConfig) -> None:
        """Record ``cfg`` as the owner of the folder (after :meth:`check`). :func:`arabicpeft.train.run` calls it
        when training starts, so a run that fails before (a wrong path, no data, no network) leaves the folder
        unclaimed."""
        self.check(cfg)
        write_json_atomic(self.path / RUN_CONFIG_FILE, cfg.to_dict())

    def latest_step(self) -> Optional[int]:
        """The highest step among the complete checkpoints in ``checkpoints/``, or None."""
        complete = _complete_checkpoints(self.path / CHECKPOINT_DIR)
        return checkpoint_step(complete[-1]) if complete else None

    def resume_checkpoint(self) -> Optional[Path]:
        """The checkpoint a run resumes from: the folder itself when it is a checkpoint (holds the trainer
        state), else the latest complete ``checkpoint-N`` in ``checkpoints/``, else in the folder itself (a
        copy of a checkpoints folder); None when there is none. A newer checkpoint that is damaged (a file cut
        short, :meth:`damaged_checkpoints`) is passed over. Raises :class:`ConfigError` when the folder itself
        is a damaged checkpoint."""
        if (self.path / TRAINER_STATE).is_file():
            problem = _checkpoint_problem(self.path)
            if problem:
                raise ConfigError(f"the checkpoint {self.path} cannot be resumed: {problem}",
                                  "resume from an earlier checkpoint-* folder, or from the run folder (its newest "
                                  "complete checkpoint is taken).")
            return self.path
        for folder in (self.path / CHECKPOINT_DIR, self.path):
            complete = _complete_checkpoints(folder)
            if complete:
                return complete[-1]
        return None

    def damaged_checkpoints(self) -> list[str]:
        """The checkpoints newer than :meth:`resume_checkpoint` that cannot be resumed, each as "checkpoint-N
        (why)": what a resume passes over."""
        if (self.path / TRAINER_STATE).is_file():
            return []
        resumed = self.resume_checkpoint()
        after = checkpoint_step(resumed) if resumed is not None else -1
        folder = resumed.parent if resumed is not None else self.path / CHECKPOINT_DIR
        return [f"{p.name} ({_checkpoint_problem(p)})" for p in _checkpoints(folder)
                if checkpoint_step(p) > after and _checkpoint_problem(p)]

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the run's lock (``<folder>/.lock``, :mod:`filelock`) for the block: the one process that runs the
        run holds it, so two processes never train or score into one folder at once. A process may take it
        again while it holds it (the study launcher, then :func:`arabicpeft.train.run`). Makes the folder.
        Raises :class:`RunInUseError` at once when another process holds it."""
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path / _LOCK_FILE), is_singleton=True)  # one object per file: re-entrant
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunInUseError(f"another process is running {self.path} now (it holds {lock.lock_file})",
                                "wait for it to finish (a rerun then resumes or reports the finished run), or give "
                                "another --output-dir (output_dir).") from None
        try:
            yield
        finally:
            lock.release()

    def finished(self, cfg: ExperimentConfig) -> Optional[Path]:
        """The results file of this run when it is finished: ``cfg`` owns the folder (:meth:`owned_by`), its
        results.json is whole (not being replaced: no INCOMPLETE), for ``cfg.max_steps``, and training was not
        stopped by its time budget. None otherwise: a rerun then resumes (or refuses a changed max_steps)."""
        path = self.path / RESULTS_FILE
        if not path.is_file() or (self.path / _INCOMPLETE_FILE).exists() or not self.owned_by(cfg):
            return None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return None  # broken: the run writes it again
        training = result.get("training") or {}
        if training.get("stopped_by_time_budget_at_step") is not None:
            return None
        return path if (result.get("config") or {}).get("max_steps") == cfg.max_steps else None

    def mark_incomplete(self, step: int) -> None:
        """Say, in the folder, that its model and results are being replaced: an interruption from here until
        :meth:`mark_complete` leaves a folder that says so (and no stale results.json)."""
        (self.path / RESULTS_FILE).unlink(missing_ok=True)
        (self.path / _INCOMPLETE_FILE).write_text(
            f"This run was interrupted while saving the model of step {step} and its scores: model/ and results.json "
            "may be missing or describe different steps. Rerun the same command: it resumes from the last checkpoint "
            "and finishes.\n", encoding="utf-8")

    def mark_complete(self) -> None:
        """Say that the folder's model and results are whole again (after :meth:`mark_incomplete`)."""
        (self.path / _INCOMPLETE_FILE).unlink(missing_ok=True)
