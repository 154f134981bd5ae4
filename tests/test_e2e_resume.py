"""Kill and resume: a tiny LoRA run and a tiny full run, killed with SIGKILL at a random moment after their
first checkpoint and rerun with the same command, end with the weights and scores of an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
# No --learning-rate: the results must still record the one used (the method's default).
COMMAND = [sys.executable, "-m", "arabicpeft", "train", "--model", "tiny-random", "--source", "sample",
           "--dialect", "egyptian", "--max-steps", "8", "--eval-steps", "2", "--warmup-steps", "2",
           "--batch-size", "4", "--max-train-samples", "24", "--max-eval-samples", "4", "--max-test-samples", "3",
           "--generation-max-length", "8", "--no-evaluate-before", "--logging-steps", "1",
           "--early-stopping-patience", "0"]
WEIGHTS = {"lora": "adapter_model.safetensors", "full": "model.safetensors"}
DEFAULT_LR = {"lora": 1e-3, "full": 1e-5}


def environment() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("ARABICPEFT_PROFILE", None)
    return env


def train(method: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, "--method", method, "--output-dir", str(out)], env=environment(), cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def complete_checkpoints(out: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*")
                  if (p / "trainer_state.json").is_file())


def kill_after_first_checkpoint(method: str, out: Path, delay: float) -> list[int]:
    """Start the run, SIGKILL it ``delay`` seconds after its first complete checkpoint, or as soon as the
    checkpoint of step 6 is complete if that comes first: on a fast machine the whole run may end within
    ``delay`` (before, the test then failed by luck); the checkpoints left."""
    log = open(out.parent / f"{out.name}.log", "w")
    proc = subprocess.Popen([*COMMAND, "--method", method, "--output-dir", str(out)], env=environment(), cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 500
        while not complete_checkpoints(out):
            assert proc.poll() is None, (out.parent / f"{out.name}.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 500 s"
            time.sleep(0.05)
        kill_at = time.monotonic() + delay
        while time.monotonic() < kill_at and max(complete_checkpoints(out)) < 6:
            assert proc.poll() is None, (out.parent / f"{out.name}.log").read_text()[-3000:]
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    return complete_checkpoints(out)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_killed_run_resumes_to_the_uninterrupted_result(method, tmp_path):
    straight = train(method, tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]

    delay = random.Random().uniform(0.0, 1.5)  # a random moment after the first checkpoint
    left = kill_after_first_checkpoint(method, tmp_path / "killed", delay)
    assert left and left[-1] < 8, f"killed {delay:.2f} s after the first checkpoint, checkpoints left: {left}"
    assert not (tmp_path / "killed" / "results.json").exists()  # it really died before the end

    resumed = train(method, tmp_path / "killed")  # the same command again
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a = load_file(tmp_path / "straight" / "model" / WEIGHTS[method])
    b = load_file(tmp_path / "killed" / "model" / WEIGHTS[method])
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= 1e-6, f"max abs weight difference {worst} (killed {delay:.2f} s after the first checkpoint)"

    first = json.loads((tmp_path / "straight" / "results.json").read_text())
    second = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert second["training"]["resumed_from"].endswith(f"checkpoint-{left[-1]}")
    assert second["metrics"] == first["metrics"]
    assert second["training"]["best_validation_wer"] == first["training"]["best_validation_wer"]
    assert first["config"]["learning_rate"] is None and first["provenance"]["learning_rate"] == DEFAULT_LR[method]
    if method == "lora":  # the adapter is what training changed: it must differ from its initialisation
        assert any(k for k in a if "lora_B" in k and a[k].abs().max() > 0)
    assert torch.is_tensor(next(iter(a.values())))
