"""Results files: one JSON per run, written atomically, recording what produced every number."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import resource
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

SCHEMA = "arabicpeft.results/1"
MIB = 2**20  # bytes in a MiB, for tables of sizes
RESULTS_FILE = "results.json"
UTTERANCES_FILE = "utterances.csv"
PACKAGES = ("arabicpeft", "torch", "transformers", "peft", "datasets", "accelerate", "bitsandbytes", "jiwer",
            "librosa", "soundfile", "numpy", "pandas", "scipy")


def git_commit() -> Optional[str]:
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


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_count=torch.cuda.device_count(), compute_capability=f"{props.major}.{props.minor}",
                    gpu_memory_bytes=props.total_memory, cuda_version=torch.version.cuda)
    return info


def provenance() -> dict:
    return {"git_commit": git_commit(), "versions": versions(), "hardware": hardware(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def reset_peak_memory() -> None:
    """Start a new peak-memory window (so several runs in one process do not share one peak)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:  # Linux >= 4.0: writing 5 to clear_refs resets the peak RSS (VmHWM) of this process
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # then peak_memory() reports the peak since the process started, and says so


def _vm_hwm_bytes() -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_memory() -> dict:
    """Peak memory since :func:`reset_peak_memory`: CUDA max allocated on GPU, else peak resident set size."""
    if torch.cuda.is_available():
        return {"kind": "cuda_max_allocated", "bytes": int(torch.cuda.max_memory_allocated())}
    hwm = _vm_hwm_bytes()
    if hwm is not None:
        return {"kind": "peak_rss", "bytes": hwm}
    # ru_maxrss (KiB on Linux) cannot be reset: the whole process's peak since it started.
    return {"kind": "peak_rss_process_lifetime", "bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}


def dir_bytes(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


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
    return _write_atomic(path, lambda f: json.dump(_clean(obj), f, indent=2, ensure_ascii=False, default=str))


def write_csv_atomic(path, frame: pd.DataFrame) -> Path:
    return _write_atomic(path, lambda f: frame.to_csv(f, index=False))


def write_results(out_dir, result: dict, utterances: Optional[pd.DataFrame] = None) -> Path:
    """Write ``result`` (plus schema and provenance) as results.json and per-utterance rows beside it.

    A ``provenance`` dict in ``result`` (run-specific: model origin, effective settings) is merged into the
    generic one (commit, versions, hardware, time)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"schema": SCHEMA, **result, "provenance": {**provenance(), **result.get("provenance", {})}}
    if utterances is not None:
        write_csv_atomic(out_dir / UTTERANCES_FILE, utterances)
        result["utterances_file"] = UTTERANCES_FILE
    return write_json_atomic(out_dir / RESULTS_FILE, result)


def read_results(path) -> dict:
    path = Path(path)
    return json.loads((path / RESULTS_FILE if path.is_dir() else path).read_text(encoding="utf-8"))
