"""The device a run computes on: which GPU is visible, what it can do, which precision needs which hardware, and
the peak memory a run uses there (:class:`PeakMemory`).

Import this module before anything touches CUDA: it imports torch only inside functions, so that
:func:`pin_single_gpu` can still choose the visible GPUs.

Public: :data:`PRECISION_HARDWARE`, :func:`gpu_info`, :func:`precision_problem`, :func:`check_gpu`,
:func:`check_precision_without_torch`, :func:`half_dtype`, :func:`gpu_summary`, :func:`gpu_smoke_test`,
:func:`pin_single_gpu`, :class:`PeakMemory`.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import GPUUnavailableError, SetupError, UnsupportedGPUError


@dataclass(frozen=True)
class _Needs:
    """What a precision needs. ``cuda``: a CUDA GPU at all; ``capability``: on a GPU, the lowest compute
    capability (major, minor) with the kernels it uses; ``why``: the kernels, for the error message."""

    cuda: bool
    capability: tuple[int, int]
    why: str


_MIN_COMPUTE_CAPABILITY = (7, 0)  # Kaggle's PyTorch has no kernels for the P100 (6.0)
# The one table of which precision needs which hardware: the model builder, the CLI's early checks, the
# benchmark's recipes and the environment report all read it. Sources: bitsandbytes' LLM.int8 needs Turing
# (7.5) tensor cores; bfloat16 arithmetic needs Ampere (8.0) — torch.cuda.is_bf16_supported() also counts
# emulation, which is slow; on a CPU, torch computes bf16 everywhere (natively only with AVX512-BF16/AMX).
PRECISION_HARDWARE: dict[str, _Needs] = {
    "fp32": _Needs(False, _MIN_COMPUTE_CAPABILITY, "fp32"),
    "fp16": _Needs(True, _MIN_COMPUTE_CAPABILITY, "fp16 mixed precision (CUDA autocast)"),
    "bf16": _Needs(False, (8, 0), "bfloat16 arithmetic (Ampere or later)"),
    "int8": _Needs(True, (7, 5), "8-bit LLM.int8 matmuls (bitsandbytes)"),
    "nf4": _Needs(True, _MIN_COMPUTE_CAPABILITY, "4-bit NF4 weights (bitsandbytes)"),
}

_SWITCH_TO_T4 = (
    "Switch to a T4: in the notebook editor open the right-hand panel -> Session options -> Accelerator -> "
    "'GPU T4 x2', then Run All again (with the kaggle CLI: \"machine_shape\": \"NvidiaTeslaT4\" and "
    "\"enable_gpu\": true in kernel-metadata.json, as kaggle/build.py writes it)."
)
_NO_GPU_HELP = (
    "On Kaggle: right-hand panel -> Session options -> Accelerator -> 'GPU T4 x2' (a phone-verified account is "
    "needed for GPUs), then Run All again. Without a GPU, use precision fp32 (or bf16) and expect CPU speed (fine "
    "for source='sample', far too slow for the hub data)."
)


def _no_gpu_driver() -> bool:
    """True when this Linux machine surely has no NVIDIA GPU (no driver): decided without importing torch."""
    return (sys.platform.startswith("linux") and not Path("/proc/driver/nvidia").exists()
            and not any(Path("/dev").glob("nvidia[0-9]*")))


def gpu_info() -> dict:
    """{"cuda": bool, "count", "name", "capability" (major, minor), "memory_bytes", "cuda_version"} of GPU 0."""
    import torch

    if not torch.cuda.is_available():
        return {"cuda": False, "count": 0, "name": None, "capability": None, "memory_bytes": None,
                "cuda_version": torch.version.cuda}
    props = torch.cuda.get_device_properties(0)
    return {"cuda": True, "count": torch.cuda.device_count(), "name": props.name,
            "capability": (props.major, props.minor), "memory_bytes": props.total_memory,
            "cuda_version": torch.version.cuda}


def precision_problem(precision: str, gpu: Optional[dict] = None) -> Optional[str]:
    """Why ``precision`` cannot run on this machine (``gpu``: :func:`gpu_info`, probed when not given), from
    :data:`PRECISION_HARDWARE`; None when it can."""
    needs = PRECISION_HARDWARE[precision]
    gpu = gpu_info() if gpu is None else gpu
    if not gpu["cuda"]:
        return f"precision {precision} needs a CUDA GPU ({needs.why}) and none is visible" if needs.cuda else None
    cc = tuple(gpu["capability"])
    if cc < needs.capability:
        return (f"precision {precision} needs compute capability {needs.capability[0]}.{needs.capability[1]} "
                f"({needs.why}); the {gpu['name']} has {cc[0]}.{cc[1]}")
    return None


def check_gpu(precision: Optional[str] = None, gpu: Optional[dict] = None) -> dict:
    """Stop early on a GPU this project cannot use, or on hardware ``precision`` cannot run on; returns
    :func:`gpu_info`.

    Raises :class:`~arabicpeft.errors.UnsupportedGPUError` below compute capability 7.0 (Kaggle's Tesla P100:
    Kaggle's PyTorch has no kernels for it, every CUDA op fails) or below what ``precision`` needs (bf16 on a
    T4), and :class:`~arabicpeft.errors.GPUUnavailableError` when ``precision`` needs a GPU and none is visible.
    """
    gpu = gpu_info() if gpu is None else gpu
    if gpu["cuda"] and tuple(gpu["capability"]) < _MIN_COMPUTE_CAPABILITY:
        cc = gpu["capability"]
        raise UnsupportedGPUError(
            f"This machine's GPU is a {gpu['name']} (compute capability {cc[0]}.{cc[1]}). Kaggle's current PyTorch "
            f"is built without kernels for compute capability below {_MIN_COMPUTE_CAPABILITY[0]}."
            f"{_MIN_COMPUTE_CAPABILITY[1]} (the P100 is 6.0), so every CUDA operation fails with 'no kernel image is "
            f"available'. {_SWITCH_TO_T4}")
    note = precision and _cpu_bf16_note(precision, gpu)
    if note:
        warnings.warn(note, stacklevel=2)
    problem = precision and precision_problem(precision, gpu)
    if problem and not gpu["cuda"]:
        raise GPUUnavailableError(problem, _NO_GPU_HELP)
    if problem:
        raise UnsupportedGPUError(problem, "use precision fp16 (or nf4) on a T4, or fp32.")
    return gpu


def _cpu_has_native_bf16() -> bool:
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _cpu_bf16_note(precision: str, gpu: Optional[dict] = None) -> Optional[str]:
    """A warning for bf16 on a CPU without native bf16 (AVX512-BF16 or AMX), where torch multiplies bf16
    matrices with a reference kernel: a tiny-random LoRA step took 17.8 s in bf16 against 0.65 s in fp32 on an
    AVX2 CPU (``python benchmarks/gpu.py --models tiny-random --recipes lora-fp32,lora-bf16``). None
    otherwise."""
    gpu = gpu_info() if gpu is None else gpu
    if precision != "bf16" or gpu["cuda"] or _cpu_has_native_bf16():
        return None
    return ("bf16 on this CPU (no AVX512-BF16 or AMX) runs through torch's reference kernels, many times slower "
            "than fp32 (27x for a tiny-random training step on an AVX2 CPU): use precision fp32 here")


def check_precision_without_torch(precision: str) -> None:
    """:func:`check_gpu` for a machine with no NVIDIA driver, decided in microseconds without importing torch
    (the CLI's early checks); raises :class:`~arabicpeft.errors.GPUUnavailableError`."""
    if PRECISION_HARDWARE[precision].cuda and _no_gpu_driver():
        raise GPUUnavailableError(precision_problem(precision, {"cuda": False}), _NO_GPU_HELP)


def half_dtype():
    """The half precision GPU 0 computes natively: torch.bfloat16 on Ampere and later (bf16's compute capability
    in :data:`PRECISION_HARDWARE`), else (also without a GPU) torch.float16."""
    import torch

    native_bf16 = torch.cuda.is_available() and precision_problem("bf16") is None
    return torch.bfloat16 if native_bf16 else torch.float16


def gpu_summary(gpu: Optional[dict] = None) -> str:
    """One line on the visible GPUs (name, compute capability, memory, count), or that there is none."""
    gpu = gpu_info() if gpu is None else gpu
    if not gpu["cuda"]:
        return "No CUDA GPU: cells that need one are skipped (each says so)."
    cc = gpu["capability"]
    return (f"GPU: {gpu['name']}, compute capability {cc[0]}.{cc[1]}, {gpu['memory_bytes'] / 1024**3:.1f} GiB; "
            f"{gpu['count']} visible (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}).")


def gpu_smoke_test(size: int = 4096, repeats: int = 10, required: bool = True) -> dict:
    """Run fp16 matmuls of ``size`` x ``size`` on GPU 0 and time them: proves the GPU's kernels work (a P100
    fails here). Returns {"device", "size", "seconds_per_matmul", "tflops"}. Without a GPU: raises
    GPUUnavailableError, or with ``required=False`` returns {"skipped": why}."""
    import torch

    gpu = check_gpu()
    if not gpu["cuda"] and not required:
        return {"skipped": "needs a CUDA GPU (fp16 matmul check of the GPU's kernels and speed)"}
    if not gpu["cuda"]:
        raise GPUUnavailableError("no CUDA GPU is visible", _NO_GPU_HELP)
    a = torch.randn(size, size, device="cuda", dtype=torch.float16)
    b = torch.randn(size, size, device="cuda", dtype=torch.float16)
    (a @ b).sum().item()  # warm-up; also where a GPU without kernels fails
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    return {"device": gpu["name"], "size": size, "seconds_per_matmul": seconds,
            "tflops": 2 * size**3 / seconds / 1e12}


def pin_single_gpu() -> Optional[str]:
    """Make only GPU 0 visible (``CUDA_VISIBLE_DEVICES=0``) unless torchrun or the user chose; returns the value.

    Why: in a plain Python process (a notebook) that sees two GPUs, as on Kaggle's "GPU T4 x2", the HF Trainer
    wraps the model in ``torch.nn.DataParallel``. That breaks bitsandbytes 8/4-bit models and PEFT, and gains
    little for Whisper at batch 8. One notebook therefore trains on one GPU; real multi-GPU training means
    launching with ``torchrun`` (which sets ``LOCAL_RANK``; left alone here) or
    :func:`arabicpeft.multigpu.train_on_gpus`. The
    variable only works before torch initialises CUDA, so the first cell calls this.
    """
    if "LOCAL_RANK" in os.environ:  # launched by torchrun: one process per GPU already
        return os.environ.get("CUDA_VISIBLE_DEVICES")
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:  # the user's explicit choice is respected
        return os.environ["CUDA_VISIBLE_DEVICES"]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized() and torch.cuda.device_count() > 1:
        raise SetupError(
            "CUDA was initialised with several GPUs visible before pin_single_gpu() ran, so the Trainer would "
            "use DataParallel. Restart the kernel (Run -> Restart) and run the notebook from the first cell."
        )
    os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    return "0"


def _vm_hwm_bytes() -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """A peak-memory window, started when made (so several runs in one process do not share one peak);
    :meth:`read` gives the peak since then."""

    def __init__(self):
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            return
        try:  # Linux >= 4.0: writing 5 to clear_refs resets the peak RSS (VmHWM) of this process
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass  # then read() reports the peak since the process started, and says so

    def read(self) -> dict:
        """{"kind", "bytes"}: CUDA max allocated on a GPU ("cuda_max_allocated"), else the peak resident set
        size ("peak_rss"; "peak_rss_process_lifetime" where the peak cannot be reset)."""
        import torch

        if torch.cuda.is_available():
            return {"kind": "cuda_max_allocated", "bytes": int(torch.cuda.max_memory_allocated())}
        hwm = _vm_hwm_bytes()
        if hwm is not None:
            return {"kind": "peak_rss", "bytes": hwm}
        # ru_maxrss (KiB on Linux) cannot be reset: the whole process's peak since it started.
        return {"kind": "peak_rss_process_lifetime",
                "bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}
