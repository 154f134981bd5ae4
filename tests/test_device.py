"""The device: which precision needs which hardware (one table), GPU checks, pinning, the smoke test, peak memory."""

import os

import numpy as np
import pytest

from arabicpeft import device
from arabicpeft.config import PRECISIONS
from arabicpeft.errors import GPUUnavailableError, UnsupportedGPUError

T4 = {"cuda": True, "count": 2, "name": "Tesla T4", "capability": (7, 5), "memory_bytes": 15 * 1024**3,
      "cuda_version": "12.4"}
P100 = {**T4, "name": "Tesla P100-PCIE-16GB", "capability": (6, 0), "count": 1}
V100 = {**T4, "name": "Tesla V100", "capability": (7, 0)}
A100 = {**T4, "name": "NVIDIA A100", "capability": (8, 0)}
NO_GPU = {"cuda": False, "count": 0, "name": None, "capability": None, "memory_bytes": None, "cuda_version": None}


def test_the_table_has_every_precision_of_the_config_and_says_what_runs_where():
    assert tuple(device.PRECISION_HARDWARE) == PRECISIONS
    runs = {name: [p for p in PRECISIONS if device.precision_problem(p, gpu) is None]
            for name, gpu in (("cpu", NO_GPU), ("V100", V100), ("T4", T4), ("A100", A100))}
    assert runs == {"cpu": ["fp32", "bf16"], "V100": ["fp32", "fp16", "nf4"], "T4": ["fp32", "fp16", "int8", "nf4"],
                    "A100": list(PRECISIONS)}


def test_p100_stops_with_how_to_switch_to_a_t4():
    with pytest.raises(UnsupportedGPUError) as e:
        device.check_gpu(gpu=P100)
    message = str(e.value)
    assert "P100" in message and "6.0" in message and "GPU T4 x2" in message and "NvidiaTeslaT4" in message


def test_t4_passes_for_fp16_and_qlora_but_not_bf16():
    assert device.check_gpu("fp16", gpu=T4) is T4
    assert device.check_gpu("nf4", gpu=T4) is T4
    assert device.check_gpu("int8", gpu=T4) is T4
    with pytest.raises(UnsupportedGPUError, match="fp16"):
        device.check_gpu("bf16", gpu=T4)


def test_int8_needs_compute_capability_7_5():
    assert device.check_gpu("fp16", gpu=V100) is V100
    with pytest.raises(UnsupportedGPUError, match="7.5"):
        device.check_gpu("int8", gpu=V100)


def test_no_gpu_is_fine_for_fp32_and_an_error_for_gpu_precisions():
    assert device.check_gpu("fp32", gpu=NO_GPU) is NO_GPU
    assert device.check_gpu(None, gpu=NO_GPU) is NO_GPU
    for precision in ("fp16", "int8", "nf4"):
        with pytest.raises(GPUUnavailableError, match="Accelerator"):
            device.check_gpu(precision, gpu=NO_GPU)


def test_gpu_summary_says_cells_are_skipped_without_a_gpu():
    assert "skipped" in device.gpu_summary(NO_GPU)
    assert "Tesla T4" in device.gpu_summary(T4) and "7.5" in device.gpu_summary(T4)


def test_gpu_smoke_test_refuses_without_a_gpu(monkeypatch):
    monkeypatch.setattr(device, "gpu_info", lambda: NO_GPU)
    with pytest.raises(GPUUnavailableError):
        device.gpu_smoke_test()


def test_pin_single_gpu_sets_device_0(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert device.pin_single_gpu() == "0"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_pin_single_gpu_respects_the_user_and_torchrun(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert device.pin_single_gpu() == "1"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert device.pin_single_gpu() is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_bf16_on_a_cpu_without_native_bf16_warns_that_fp32_is_faster(monkeypatch):
    monkeypatch.setattr(device, "_cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="bf16 on this CPU .* use precision fp32"):
        assert device.check_gpu("bf16", gpu=NO_GPU) is NO_GPU
    assert device._cpu_bf16_note("bf16", A100) is None and device._cpu_bf16_note("fp32", NO_GPU) is None
    monkeypatch.setattr(device, "_cpu_has_native_bf16", lambda: True)
    assert device._cpu_bf16_note("bf16", NO_GPU) is None


def test_peak_memory_window_can_be_reset():
    block = np.ones(400_000_000 // 8)  # 400 MB resident
    block[::512] = 2.0
    high = device.PeakMemory().read()["bytes"]
    del block
    low = device.PeakMemory().read()
    if low["kind"] == "peak_rss":  # resettable on Linux; elsewhere the lifetime peak is reported as such
        assert low["bytes"] < high - 300_000_000
