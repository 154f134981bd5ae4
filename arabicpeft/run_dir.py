"""A run's output folder: what a training run writes there, and when the folder belongs to a run.

::

    <output_dir>/run_config.json        the config that owns the folder (written when training starts)
    <output_dir>/checkpoints/checkpoint-N/  Trainer checkpoints (a rerun resumes from the latest)
    <output_dir>/utterances_before.csv, metrics_before.json   the starting model's scores (a rerun reads them)
    <output_dir>/model/                 the adapter (LoRA) or the whole model (full), processor, config
    <output_dir>/results.json, utterances.csv   the scores of that saved model
    <output_dir>/INCOMPLETE             only while model/ and results.json may describe different steps

Torch-free, so that the command line checks a folder before its heavy imports.

Public: :data:`CHECKPOINT_DIR`, :data:`MODEL_DIR`, :data:`TRAINER_STATE`, :data:`RUN_CONFIG_FILE`,
:data:`RESULTS_FILE`, :data:`UTTERANCES_FILE`, :data:`BEFORE_UTTERANCES_FILE`, :data:`BEFORE_METRICS_FILE`,
:func:`write_json_atomic`, :func:`write_csv_atomic`, :func:`checkpoint_step`, :class:`RunDir`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Optional

from .config import ExperimentConfig
from .errors import ConfigError

CHECKPOINT_DIR, MODEL_DIR = "checkpoints", "model"
_CHECKPOINT_PREFIX = "checkpoint"  # checkpoint-N: the Trainer's name (transformers' PREFIX_CHECKPOINT_DIR)
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint: a checkpoint without it is incomplete
RUN_CONFIG_FILE = "run_config.json"
RESULTS_FILE = "results.json"
UTTERANCES_FILE = "utterances.csv"
BEFORE_UTTERANCES_FILE = "utterances_before.csv"
BEFORE_METRICS_FILE = "metrics_before.json"
_INCOMPLETE_FILE = "INCOMPLETE"


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


def checkpoint_step(path) -> int:
    """The step N of a ``checkpoint-N`` folder path (a trailing slash allowed); -1 for any other name."""
    name = Path(str(path).rstrip("/")).name
    prefix, _, step = name.rpartition("-")
    return int(step) if prefix == _CHECKPOINT_PREFIX and step.isdigit() else -1


def _complete_checkpoints(folder: Path) -> list[Path]:
    """``checkpoint-N`` folders in ``folder`` holding a trainer state (a run killed while saving leaves one
    without), by step; [] when ``folder`` does not exist."""
    found = [p for p in folder.glob(f"{_CHECKPOINT_PREFIX}-*")
             if checkpoint_step(p) >= 0 and (p / TRAINER_STATE).is_file()]
    return sorted(found, key=checkpoint_step)


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
        ``run_config.json`` is broken, or when the folder (or a folder above it) is a file."""
        existing = next(p for p in (self.path, *self.path.parents) if p.exists())
        if not existing.is_dir():
            raise ConfigError(f"the output folder {self.path} cannot be made: {existing} is a file, not a folder",
                              "give --output-dir (output_dir) a folder path, new or of an earlier run.")
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
        copy of a checkpoints folder); None when there is none."""
        if (self.path / TRAINER_STATE).is_file():
            return self.path
        for folder in (self.path / CHECKPOINT_DIR, self.path):
            complete = _complete_checkpoints(folder)
            if complete:
                return complete[-1]
        return None

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
