"""Where a run is kept and what the session allows: the runs root, Kaggle's session clock and a previous
session's run, the disk; the checks that stop a run early with what to do (the hub's are asked of
:mod:`arabicpeft.hub`); the environment report of notebook 00 (what a results file records of it:
:func:`arabicpeft.results.environment`).

Torch-free at import (the Kaggle bootstrap and the CLI's early checks import it before GPU pinning).

Public: :func:`output_root`, :func:`check_model_fits_source`, :func:`preflight`, :func:`prepare_run`,
:func:`report_frame`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

from . import backbones, device, sources
from .config import ExperimentConfig
from .errors import ConfigError, DiskSpaceError, SessionTimeSpent, SetupError
from .hub import check_hub_model, check_model_name, hub_model, hub_offline_mode, hub_reachable
from .results import git_commit, versions
from .run_dir import CHECKPOINT_DIR, MODEL_DIR, RESULTS_FILE, RunDir, check_output_folder

_KAGGLE_ENV_VAR = "KAGGLE_KERNEL_RUN_TYPE"  # "Interactive" or "Batch" inside a Kaggle notebook
_KAGGLE_WORKING = Path("/kaggle/working")  # kept as the notebook's output (at most ~20 GB)
_KAGGLE_INPUT = Path("/kaggle/input")  # attached datasets, read-only
_OUTPUT_ENV_VAR = "ARABICPEFT_OUTPUT"  # overrides where runs are written (tests, other platforms)
_RUNS_DIR = "runs"  # the runs root: ./runs, or /kaggle/working/runs on Kaggle

# Kaggle stops a session after ~12 h. Training gets what is left after a safety hour and an hour kept for
# the test-set evaluations (before and after training) and saving. These are margins we chose, not measurements.
_KAGGLE_SESSION_S = 12 * 3600
_SESSION_SAFETY_S = 3600
_EVAL_MARGIN_S = 3600
_IMPORTED_AT = time.monotonic()  # the first cell imports this module: our best clock for "session start"

_MIN_FREE_BYTES = 2 * 1024**3  # below this a run will not even fit its checkpoints
_ARROW_BYTES_PER_UTTERANCE = 0.96e6  # otozz sets decoded to Arrow (research notes §1): the non-streaming cache

# --- where we are -----------------------------------------------------------------------------------


def _kaggle_run_type() -> Optional[str]:
    """"Interactive" or "Batch" inside a Kaggle notebook, else None."""
    return os.environ.get(_KAGGLE_ENV_VAR) or None


def _on_kaggle() -> bool:
    return _kaggle_run_type() is not None


_ci_root: Optional[Path] = None


def output_root() -> Path:
    """Where runs are written, created if missing.

    ``$ARABICPEFT_OUTPUT`` if set; ``/kaggle/working/runs`` on Kaggle (inside the folder Kaggle keeps as the
    output); a
    fresh temporary directory (one per process) in the ci profile, so CI never resumes a stale run nor writes
    into the checkout; ``./runs`` otherwise.
    """
    global _ci_root
    from . import profiles

    if os.environ.get(_OUTPUT_ENV_VAR):
        root = Path(os.environ[_OUTPUT_ENV_VAR]).expanduser()
    elif _on_kaggle():
        root = _KAGGLE_WORKING / _RUNS_DIR
    elif profiles.current() == "ci":
        if _ci_root is None or not _ci_root.is_dir():
            _ci_root = Path(tempfile.mkdtemp(prefix="arabicpeft-ci-"))
        root = _ci_root
    else:
        root = Path(_RUNS_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


# --- disk, hub, time --------------------------------------------------------------------------------


def _existing(path: Path) -> Path:
    path = Path(path).expanduser().resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free_bytes(path) -> int:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    return shutil.disk_usage(_existing(Path(path))).free


def _check_disk(path, need_bytes: float = _MIN_FREE_BYTES, what: str = "this run") -> int:
    """Raise :class:`DiskSpaceError` unless ``need_bytes`` are free where ``path`` lives; returns the free bytes."""
    free = _free_bytes(path)
    if free < need_bytes:
        kaggle = (" On Kaggle /kaggle/working keeps at most ~20 GB: delete finished runs' checkpoints/ folders "
                  "(the model/ folder and results.json are what you keep)." if _on_kaggle() else "")
        raise DiskSpaceError(
            f"Only {free / 1e9:.1f} GB free under {_existing(Path(path))}, but {what} needs about "
            f"{need_bytes / 1e9:.1f} GB. Free some space (old runs, ~/.cache/huggingface), or stream the hub "
            f"data (streaming=True) instead of caching it.{kaggle}"
        )
    return free


def _dataset_cache_bytes(cfg) -> float:
    """Bytes the hub datasets of ``cfg`` take in the HF cache when not streamed (0 when streamed or not from the
    hub): the otozz sets' published sizes, in feature records."""
    from . import dialects

    source = sources.of(cfg)
    if not source.needs_hub or cfg.streaming or source.records != "features":  # an audio set's size is not known
        return 0.0
    rows = sum(dialects.get(v).train_rows for v in cfg.parts(cfg.dialect))
    rows += sum(dialects.get(v).test_rows for t in cfg.test_set_names() for v in cfg.parts(t))
    return rows * _ARROW_BYTES_PER_UTTERANCE


def _hub_parts(cfg) -> list[str]:
    """What ``cfg`` reads from the HuggingFace hub: its data, its starting model, both or nothing."""
    parts = [f"its data (source {cfg.source})"] if sources.of(cfg).needs_hub else []
    if hub_model(cfg.model):
        parts.append(f"its model {cfg.model}")
    return parts


def _needs_hub(cfg) -> bool:
    """Whether ``cfg`` reads data or the starting model from the HuggingFace hub."""
    return bool(_hub_parts(cfg))


def _check_hub(cfg) -> None:
    """Raise :class:`HubUnreachableError` when a run of ``cfg`` needs the hub (its data, its model) and cannot
    have it (:func:`arabicpeft.hub.check_hub_model`: offline mode first, then one probe)."""
    parts = _hub_parts(cfg)
    if parts:
        check_hub_model(hub_model(cfg.model), needs=" and ".join(parts))


def _audio_sources() -> str:
    return " or ".join(f"{s.name} ({s.help})" for s in sources.SOURCES.values() if s.records != "features")


def check_model_fits_source(cfg) -> Optional[str]:
    """Before the model's weights or the data are fetched: the model's mel bins (its ``config.json``; a hub id's
    only) against a features source's stored log-mel (``n_mels``), and its tokenizer's label-token ids (its
    ``tokenizer.json``) against the layout of the source's stored labels (``label_tokens``). Raises
    :class:`~arabicpeft.errors.ConfigError` when the features cannot serve the model (naming sources with audio)
    or its tokenizer lacks a label token; returns a note when the labels will be re-made from their text with the
    model's tokenizer (another layout: :class:`arabicpeft.backbones.WhisperCollator`), else None."""
    from .offline_model import OFFLINE_MODELS, resolve_model
    from .whisper_tokens import LABEL_LAYOUTS

    source = sources.of(cfg)
    if not (source.n_mels or source.label_tokens):
        return None  # nothing stored in a model's format
    model = resolve_model(cfg.model) if cfg.model in OFFLINE_MODELS else cfg.model
    try:
        backbone = backbones.get(model)
        mels = backbone.feature_size(backbones.config_of(model))
        if source.n_mels and mels != source.n_mels:
            raise ConfigError(f"source {source.name} holds {source.n_mels}-bin log-mel features, but {cfg.model} "
                              f"takes {mels} mel bins", f"train it on audio: --source {_audio_sources()}; or use a "
                              f"model of {source.n_mels} mel bins (whisper tiny ... large-v2).")
        layout = backbone.label_layout(model) if source.label_tokens else None  # its tokenizer.json, only now
    except OSError as e:
        raise SetupError(str(e), "check --model (a model folder, or a hub id in your HF cache or with the network "
                         "on).") from e
    stored = LABEL_LAYOUTS.get(source.label_tokens)
    if layout is None or layout == stored:
        return None
    missing = [token for token, i in layout.items() if i is None]
    if missing:
        raise ConfigError(f"the tokenizer of {cfg.model} has no {' '.join(missing)}, which the labels of source "
                          f"{source.name} hold", "use a multilingual Whisper (not an English-only .en model).")
    return (f"the labels of source {source.name} use other token ids than {cfg.model}'s tokenizer "
            f"({stored} vs {layout}): they are re-made from their text with the model's tokenizer")


def preflight(cfg) -> None:
    """The checks that need no model, no data and no torch (well under a second, plus at most one network probe
    when the run needs the hub): the model, data and resume paths exist, a GPU precision has a GPU, and the hub
    is reachable when the model or data come from it (under HF_HUB_OFFLINE: a hub model is in the local cache),
    the output folder can be written, and the model fits a features source (:func:`check_model_fits_source`). Raises a :class:`~arabicpeft.errors.UserError`."""
    check_model_name(cfg.model, hub=False)  # the hub is probed once, below, for the model and the data
    check_output_folder(cfg.output_dir)
    source = sources.of(cfg)
    if source.check:
        source.check(cfg)  # its data is there (a data folder, the embedded sample audio)
    if cfg.resume_from and not Path(cfg.resume_from).expanduser().exists():
        raise SetupError(f"resume_from={cfg.resume_from} does not exist",
                         "give a checkpoint-* folder or a run folder, or leave it unset.")
    device.check_precision_without_torch(cfg.precision)
    _check_hub(cfg)
    note = check_model_fits_source(cfg)
    if note:
        logging.getLogger(__name__).warning(note)


def _session_time_left_s() -> Optional[float]:
    """Seconds of the Kaggle session left for training (None off Kaggle: no limit).

    12 h minus the safety and evaluation margins minus the time since this module was imported (the first cell).
    """
    if not _on_kaggle():
        return None
    used = time.monotonic() - _IMPORTED_AT
    return max(0.0, _KAGGLE_SESSION_S - _SESSION_SAFETY_S - _EVAL_MARGIN_S - used)


# --- resuming from a previous Kaggle session ---------------------------------------------------------


def _find_previous_run(name: Optional[str] = None, root=None, max_depth: int = 6) -> Optional[Path]:
    """A run directory from an earlier session, found under ``root`` (Kaggle's attached inputs).

    A run directory holds ``results.json`` or ``checkpoints/checkpoint-*/``; with ``name`` (a run name such as
    ``01_egyptian_lora_fp16_seed42``, or a relative path ``study/variant``) only directories whose path ends
    with it count. Attach a previous version's output ("Add Input" -> your notebook's output) to find it. Of
    several, the one with the latest checkpoint (then: with results) wins. None if there is none.
    ``root`` defaults to /kaggle/input.
    """
    root = Path(root) if root else _KAGGLE_INPUT
    if not root.is_dir():
        return None
    want = Path(name).parts if name else ()
    found = []
    base_depth = len(root.parts)
    for current, dirs, files in os.walk(root):
        here = Path(current)
        if len(here.parts) - base_depth >= max_depth:
            dirs[:] = []
        is_run = RESULTS_FILE in files or CHECKPOINT_DIR in dirs
        if is_run and (not want or here.parts[-len(want):] == want):
            found.append(here)
        dirs[:] = [d for d in dirs if d not in (CHECKPOINT_DIR, MODEL_DIR)]  # never walk into weights
    if not found:
        return None
    return max(found, key=lambda p: ((RunDir(p).latest_step() or -1), (p / RESULTS_FILE).is_file()))


def _restore_previous_run(output_dir, name: Optional[str] = None, root=None) -> Optional[Path]:
    """Copy an earlier session's run (see :func:`_find_previous_run`) into ``output_dir`` so training resumes.

    Only when ``output_dir`` has no checkpoint and no results yet. The run is copied rather than pointed at
    with ``resume_from``: a checkpoint records the best checkpoint's path (``/kaggle/working/<run>/...``),
    and only a copy at the same place keeps "best model by validation WER" working across sessions.
    Returns the directory copied from, or None.
    """
    output_dir = Path(output_dir)
    if RunDir(output_dir).latest_step() is not None or (output_dir / RESULTS_FILE).is_file():
        return None
    previous = _find_previous_run(name or output_dir.name, root)  # same run name as in the earlier session
    if previous is None or previous.resolve() == output_dir.resolve():
        return None
    size = sum(p.stat().st_size for p in previous.rglob("*") if p.is_file())
    _check_disk(output_dir, size + _MIN_FREE_BYTES, what=f"copying the previous run {previous}")
    shutil.copytree(previous, output_dir, dirs_exist_ok=True)
    return previous


def prepare_run(cfg: ExperimentConfig, name: str, restore_previous: bool = True, log=print,
                root=None) -> ExperimentConfig:
    """``cfg`` made ready to run here: a new config (``cfg`` is not changed). Each step is logged:

    1. ``output_dir`` = ``root`` (default :func:`output_root`) / ``name`` (a rerun with the same name resumes
       that run; on Kaggle the previous session's copy is looked up by ``<root's name>/<name>``);
    2. :func:`preflight`, and the GPU check for ``cfg.precision`` (:func:`arabicpeft.device.check_gpu`);
    3. on Kaggle: restore a previous session's run of the same name from /kaggle/input (unless
       ``cfg.resume_from`` names a checkpoint or run directory explicitly; recorded as ``extra["restored_from"]``),
       and cap ``time_budget_s`` at the session time left (:func:`_session_time_left_s`);
    4. disk check: free space for checkpoints, plus the dataset cache when the hub data is not streamed.

    Raises the :class:`~arabicpeft.errors.SetupError` of the first check that fails.
    """
    cfg = dataclasses.replace(cfg, output_dir=str(Path(root or output_root()) / name))
    preflight(cfg)
    device.check_gpu(cfg.precision)
    if restore_previous and _on_kaggle() and not cfg.resume_from:  # an explicit resume_from wins
        previous = _restore_previous_run(cfg.output_dir, str(Path(Path(root).name) / name) if root else name)
        if previous is not None:
            cfg = dataclasses.replace(cfg, extra={**cfg.extra, "restored_from": str(previous)})
            log(f"Restored the previous session's run from {previous} (latest checkpoint step "
                f"{RunDir(cfg.output_dir).latest_step()}); training resumes from it.")
    left = _session_time_left_s()
    if left is not None:
        if left <= 0:
            raise SessionTimeSpent("No Kaggle session time is left for training. Save a version, attach its "
                                   "output as an input and run again: training resumes from the checkpoint.")
        cfg = dataclasses.replace(cfg, time_budget_s=min(cfg.time_budget_s or float("inf"), left))
    _check_disk(cfg.output_dir)
    cache = _dataset_cache_bytes(cfg)
    if cache:
        import datasets

        _check_disk(datasets.config.HF_DATASETS_CACHE, cache + _MIN_FREE_BYTES,
                   what=f"caching the {cfg.dialect} hub data (streaming=False)")
    step = RunDir(cfg.output_dir).latest_step()
    if step is not None:
        log(f"{cfg.output_dir} has checkpoints up to step {step}: "
            "training resumes there.")
    budget = "none" if cfg.time_budget_s is None else f"{cfg.time_budget_s / 3600:.2f} h"
    log(f"Run directory: {cfg.output_dir}  |  training time budget: {budget}")
    return cfg


# --- the report -------------------------------------------------------------------------------------


def _environment_report(check_hub_access: bool = True) -> dict:
    """What a run here would use: platform, library versions (:func:`arabicpeft.results.versions`), GPU and the
    precisions it can run (:data:`arabicpeft.device.PRECISION_HARDWARE`), free disk, hub, Kaggle, profile."""
    from . import __version__, profiles

    gpu = device.gpu_info()
    root = output_root()
    report = {
        "platform": platform.platform(),
        "cpu cores": os.cpu_count(),
        "arabicpeft": f"{__version__} ({Path(__file__).resolve().parent})",
        "arabicpeft commit": git_commit(),
    }
    report.update({p: v or "not installed" for p, v in versions().items() if p != "arabicpeft"})
    cc = gpu["capability"]
    report.update({
        "CUDA available": gpu["cuda"],
        "CUDA (torch build)": gpu["cuda_version"],
        "GPU": gpu["name"] or "none",
        "GPU compute capability": f"{cc[0]}.{cc[1]}" if cc else "n/a",
        "GPU memory (GiB)": round(gpu["memory_bytes"] / 1024**3, 1) if gpu["memory_bytes"] else "n/a",
        "GPUs visible": gpu["count"],
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"),
        "precisions that run here": ", ".join(p for p in device.PRECISION_HARDWARE
                                              if device.precision_problem(p, gpu) is None),
        "Kaggle": _kaggle_run_type() or "no",
        "output directory": str(root),
        "free disk there (GB)": round(_free_bytes(root) / 1e9, 1),
        "profile": profiles.current(),
    })
    if check_hub_access:
        report["huggingface.co reachable"] = hub_reachable()
    report["HF_HUB_OFFLINE"] = hub_offline_mode()
    return report


def report_frame(report: Optional[dict] = None):
    """The report as a two-column DataFrame (item, value) for display."""
    import pandas as pd

    report = _environment_report() if report is None else report
    return pd.DataFrame({"value": [str(v) for v in report.values()]}, index=pd.Index(list(report), name="item"))
