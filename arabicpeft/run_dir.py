"""A run's output folder: what a training run writes there, and when the folder belongs to a run.

::

    <output_dir>/run_config.json        the config that owns the folder (written when training starts)
    <output_dir>/checkpoints/checkpoint-N/  Trainer checkpoints (a rerun resumes from the latest)
    <output_dir>/utterances_before.csv, metrics_before.json   the starting model's scores (a rerun reads them)
    <output_dir>/model/                 the adapter (LoRA) or the whole model (full), processor, config
    <output_dir>/results.json, utterances.csv   the scores of that saved model
    <output_dir>/INCOMPLETE             only while model/ and results.json may describe different steps

Torch-free, so that the command line checks a folder before its heavy imports.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import ExperimentConfig
from .errors import ConfigError

CHECKPOINT_DIR, MODEL_DIR = "checkpoints", "model"
RUN_CONFIG_FILE = "run_config.json"
BEFORE_UTTERANCES_FILE = "utterances_before.csv"
BEFORE_METRICS_FILE = "metrics_before.json"
INCOMPLETE_FILE = "INCOMPLETE"
# Fields a rerun into the same output directory may change: it then continues the same experiment. max_steps
# only while there is no checkpoint: the linear schedule decays to 0 at max_steps, so a checkpoint belongs to
# its max_steps (train.resume_checkpoint refuses another).
RESUMABLE_FIELDS = {"max_steps", "time_budget_s", "resume_from", "output_dir", "extra", "evaluate_before",
                    "eval_batch_size", "num_workers", "feature_cache"}


def config_changes(run_config: Path, cfg: ExperimentConfig) -> str:
    """What ``cfg`` changes, outside :data:`RESUMABLE_FIELDS`, from the config saved at ``run_config`` ("" when
    nothing changes or there is no saved config)."""
    if not run_config.is_file():
        return ""
    before = json.loads(run_config.read_text(encoding="utf-8"))
    return "; ".join(f"{k}: {before.get(k)!r} -> {v!r}" for k, v in cfg.to_dict().items()
                     if k not in RESUMABLE_FIELDS and before.get(k) != v)


def owned_by(cfg: ExperimentConfig) -> bool:
    """The folder was claimed by this experiment (the same config up to :data:`RESUMABLE_FIELDS`)."""
    path = Path(cfg.output_dir) / RUN_CONFIG_FILE
    return path.is_file() and not config_changes(path, cfg)


def check_output_dir(cfg: ExperimentConfig) -> None:
    """Refuse an output folder claimed by a different experiment: its checkpoints would otherwise be resumed (or
    its results reused) under ``cfg``'s name."""
    changed = config_changes(Path(cfg.output_dir) / RUN_CONFIG_FILE, cfg)
    if changed:
        raise ConfigError(f"{cfg.output_dir} already holds a run with another config ({changed})",
                          "use a new --output-dir (output_dir), or delete that folder to start over.")


def claim_output_dir(cfg: ExperimentConfig) -> None:
    """Record ``cfg`` as the owner of its output folder. :func:`arabicpeft.train.run` calls it when training
    starts, so a run that fails before (a wrong path, no data, no network) leaves the folder unclaimed."""
    from .results import write_json_atomic

    check_output_dir(cfg)
    write_json_atomic(Path(cfg.output_dir) / RUN_CONFIG_FILE, cfg.to_dict())


def mark_incomplete(out_dir, step: int) -> None:
    """Say, in the folder, that its model and results are being replaced: an interruption from here until
    :func:`mark_complete` leaves a folder that says so (and no stale results.json)."""
    out = Path(out_dir)
    (out / "results.json").unlink(missing_ok=True)
    (out / INCOMPLETE_FILE).write_text(
        f"This run was interrupted while saving the model of step {step} and its scores: model/ and results.json "
        "may be missing or describe different steps. Rerun the same command: it resumes from the last checkpoint "
        "and finishes.\n", encoding="utf-8")


def mark_complete(out_dir) -> None:
    (Path(out_dir) / INCOMPLETE_FILE).unlink(missing_ok=True)

