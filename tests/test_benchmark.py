"""The gpu and memory benchmarks, run on CPU with the tiny random model: the rows and values they write.

No timings are asserted (they depend on the machine); parameter counts, skipped recipes, losses and transcripts are.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--models", "tiny-random", "--steps", "1", "--warmup-steps", "1", "--encoder-seconds", "2"]


def run_benchmark(tmp_path, *args) -> tuple[dict, str]:
    env = {**os.environ, "ARABICPEFT_OUTPUT": str(tmp_path), "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "arabicpeft.benchmark", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / f"benchmark-{args[0]}" / "benchmark.json").read_text(encoding="utf-8"))
    return result, proc.stdout


def lora_parameters(modules: int, r: int = 32, d_model: int = 64) -> int:
    return modules * r * (d_model + d_model)  # A (r x d) and B (d x r) per adapted d x d projection


def test_gpu_benchmark_on_cpu_writes_every_recipe_or_why_it_was_skipped(tmp_path):
    # every recipe but lora-bf16: without AVX512-BF16/AMX, torch multiplies bf16 matrices with a reference kernel,
    # ~25x slower than fp32 on tiny-random (bf16 training on a CPU is tested in test_train.py)
    result, stdout = run_benchmark(tmp_path, "gpu", *SMALL, "--eval-clips", "4", "--eval-batch-size", "4",
                                   "--max-new-tokens", "6", "--recipes",
                                   "seed-int8-lora,lora-fp32,lora-fp16,lora-nf4,full-gc")
    rows = result["rows"]
    assert set(rows) == {"tiny-random/lora-fp32", "tiny-random/full-gc", "tiny-random/eval"}
    # the recipes that need CUDA are skipped, each with its reason, never dropped silently
    assert set(result["skipped"]) == {"tiny-random/seed-int8-lora", "tiny-random/lora-fp16", "tiny-random/lora-nf4"}
    assert all("CUDA" in why for why in result["skipped"].values())
    assert stdout.count("skipped tiny-random/") == 3
    # tiny-random: 2 encoder layers (self-attention) + 2 decoder layers (self + cross attention) -> 12 q/v projections
    assert rows["tiny-random/lora-fp32"]["trainable_parameters"] == lora_parameters(12)
    full = rows["tiny-random/full-gc"]
    # every weight but the encoder's fixed sinusoidal positions: 2 s = 100 positions x 64
    assert full["trainable_parameters"] == full["total_parameters"] - 100 * 64 > lora_parameters(12)
    for name in ("lora-fp32", "full-gc"):
        row = rows[f"tiny-random/{name}"]
        assert len(row["step_seconds"]) == 2 and len(row["losses"]) == 2 and row["world_size"] == 1
        assert all(math.isfinite(x) for x in row["losses"])
        assert row["peak_memory"]["kind"] == "peak_rss" and row["peak_memory"]["bytes"] >= row["after_load"]["bytes"]
        assert row["attention"] == "sdpa" and row["saved_for_backward_bytes"] > 0
    # one random initialisation and one batch for every recipe: the first loss is the same before any update
    first = [rows[f"tiny-random/{n}"]["losses"][0] for n in ("lora-fp32", "full-gc")]
    assert first[0] == pytest.approx(first[1], rel=1e-4)
    evaluation = rows["tiny-random/eval"]
    assert evaluation["clips"] == 4 and evaluation["same_transcripts"] == 4  # fp32: batching changes no transcript
    assert result["references"] == {"tiny-random": "lora-fp32"}  # the replaced project's recipe needs CUDA
    assert result["provenance"]["hardware"]["cuda"] is False
    result_line = stdout.strip().splitlines()[-1]
    assert result_line.startswith("RESULT ") and "world_size=1" in result_line
    assert "tiny_random_full_gc_speedup=" in result_line and "tiny_random_eval_batched_speedup=" in result_line
    assert result["summary"]["tiny_random_lora_fp32_speedup"] == 1.0


def test_memory_benchmark_rows_compare_lora_with_full_fine_tuning(tmp_path):
    # four of the five recipes (full-gc also runs in the gpu test), in one process: the gpu test runs the rows
    # the default way, each in a fresh process
    result, stdout = run_benchmark(tmp_path, "memory", *SMALL, "--in-process", "--recipes", "lora-dropout0.05,"
                                   "lora-dropout0,lora-dropout0-gc,full")
    rows = {k.split("/", 1)[1]: v for k, v in result["rows"].items()}
    assert set(rows) == {"lora-dropout0.05", "lora-dropout0", "lora-dropout0-gc", "full"}
    assert not result["skipped"]
    qkvo = lora_parameters(2 * 4 + 2 * 2 * 4)  # q, k, v, out of 2 encoder and 2 x 2 decoder attention blocks
    assert {rows[n]["trainable_parameters"] for n in ("lora-dropout0.05", "lora-dropout0", "lora-dropout0-gc")} == {qkvo}
    assert rows["full"]["trainable_parameters"] == rows["full"]["total_parameters"] - 100 * 64  # all but the positions
    # dropout and checkpointing change memory and time, not the first loss (no dropout in the forward of step 1's
    # base path, same initialisation): LoRA's B starts at zero, so every recipe starts from the same model
    assert rows["lora-dropout0"]["losses"][0] == pytest.approx(rows["full"]["losses"][0], rel=1e-4)
    # what autograd keeps for backward (bytes, deterministic): LoRA dropout keeps a dropped copy of each adapted
    # layer's input; without it LoRA keeps less than full fine-tuning; checkpointing keeps less still
    saved = {name: row["saved_for_backward_bytes"] for name, row in rows.items()}
    assert saved["lora-dropout0.05"] > saved["lora-dropout0"] < saved["full"]
    assert saved["lora-dropout0-gc"] < saved["lora-dropout0"]
    assert result["references"] == {"tiny-random": "full"} and result["settings"]["in_process"] is True
    assert result["summary"]["tiny_random_full_memory_ratio"] == 1.0
    assert stdout.strip().splitlines()[-1].startswith("RESULT ")


def test_inference_table_puts_the_rows_side_by_side():
    from arabicpeft.benchmark import _inference_table

    def row(compute, transcribe_s, rss_mib, wer, hypotheses):
        return {"compute_type": compute, "transcribe_s": transcribe_s, "audio_s": 40.0, "clips": 8,
                "peak_memory": {"kind": "peak_rss", "bytes": rss_mib * 2**20}, "encoder_s_per_batch": 0.5,
                "metrics_pooled": {"raw": {"wer": wer, "cer": wer / 2}}, "hypotheses": hypotheses}

    table = _inference_table({"hf": row("float32", 20.0, 900, 50.0, ["a", "b", "c", "d"]),
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
