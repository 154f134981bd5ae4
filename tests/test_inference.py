"""The backend comparison's table (notebook 05; benchmarks/inference.py prints it): the rows side by side."""

import math

import pytest

from arabicpeft.inference import backend_table


def test_inference_table_puts_the_rows_side_by_side():
    def row(compute, transcribe_s, rss_mib, wer, hypotheses):
        return {"compute_type": compute, "transcribe_s": transcribe_s, "audio_s": 40.0, "clips": 8,
                "peak_memory": {"kind": "peak_rss", "bytes": rss_mib * 2**20}, "encoder_s_per_batch": 0.5,
                "metrics_pooled": {"raw": {"wer": wer, "cer": wer / 2}}, "hypotheses": hypotheses}

    table = backend_table({"hf": row("float32", 20.0, 900, 50.0, ["a", "b", "c", "d"]),
                           "ct2-int8": row("int8", 5.0, 300, 52.0, ["a", "b", "c", "x"])},
                          batch_size=4, disk_mib={"ct2-int8": 77.5})
    assert list(table.index) == ["hf", "ct2-int8"]
    assert table.loc["hf", "RTF"] == 0.5 and table.loc["ct2-int8", "RTF"] == 0.125
    assert table.loc["ct2-int8", "speed x"] == 4.0 and table.loc["hf", "speed x"] == 1.0
    assert table.loc["ct2-int8", "clips/s"] == 1.6 and table.loc["ct2-int8", "peak RSS MiB"] == 300
    assert table.loc["ct2-int8", "RSS x"] == pytest.approx(1 / 3)
    assert (table.loc["ct2-int8", "WER"], table.loc["ct2-int8", "CER"], table.loc["ct2-int8", "compute"]) == (52.0, 26.0, "int8")
    assert (table.loc["hf", "same text %"], table.loc["ct2-int8", "same text %"]) == (100.0, 75.0)
    assert table.loc["ct2-int8", "encoder %"] == 20.0  # 0.5 s per batch of 4, 8 clips, in 5 s
    assert table.loc["ct2-int8", "MiB on disk"] == 77.5 and math.isnan(table.loc["hf", "MiB on disk"])


def test_backends_on_a_device_are_checked_before_anything_loads(tmp_path):
    from arabicpeft.inference import BACKENDS, compare_backends

    assert set(BACKENDS["cuda"]) == {"hf-adapter", "hf", "ct2-float16", "ct2-int8_float16"}
    assert BACKENDS["cpu"]["ct2-int8"] == "int8" and BACKENDS["cuda"]["hf"] == "fp16"
    with pytest.raises(ValueError, match="device 'tpu' is not one of cpu, cuda"):
        compare_backends("tiny-random", tmp_path, device="tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is visible"):
            compare_backends("tiny-random", tmp_path, device="cuda")
    assert not any(tmp_path.iterdir())  # refused before any merge or export
