"""The benchmark scripts (benchmarks/NAME.py), run as a user runs them: the gpu and memory benchmarks on CPU with
the tiny random model (the rows and values they write), every script's options, and that benchmarks stay tools
outside the package.

No timings are asserted (they depend on the machine); parameter counts, skipped recipes, losses and transcripts are.
"""

import ast
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import read_configuration

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = ("demo", "inference", "eval", "cache", "data", "gpu", "memory", "study", "noise", "routing")
SMALL = ["--models", "tiny-random", "--steps", "1", "--warmup-steps", "1", "--encoder-seconds", "2"]


def run_benchmark(tmp_path, *args) -> tuple[dict, str]:
    env = {**os.environ, "ARABICPEFT_OUTPUT": str(tmp_path), "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{args[0]}.py"), *args[1:]], capture_output=True,
                          text=True, env=env, cwd=tmp_path)
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


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_is_a_script_with_its_own_options(name):
    # from another folder, without PYTHONPATH: the script finds the checkout's package itself
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), "--help"], capture_output=True, text=True,
                          env=env, cwd=ROOT.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {name}.py") and "--output-dir" in proc.stdout


def test_benchmarks_are_tools_outside_the_package():
    assert sorted(p.stem for p in BENCHMARKS.glob("[!_]*.py")) == sorted(SCRIPTS)
    # nothing in the package imports them (so neither the wheel nor a Kaggle build carries them) ...
    for path in (ROOT / "arabicpeft").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not [n for n in names if n.split(".")[0] in {"benchmarks", "_common", "_steps", *SCRIPTS}], path
    # ... and the wheel's packages are arabicpeft's alone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools calls its [tool.setuptools] support beta
        packages = read_configuration(ROOT / "pyproject.toml", expand=True)["tool"]["setuptools"]["packages"]
    assert "arabicpeft" in packages and all(p.split(".")[0] == "arabicpeft" for p in packages)
