"""One run on two processes (DDP, gloo on the CPU): torchrun and accelerate's notebook launcher train on the same
global batches as one process, to the same loss curve (as do two gradient accumulation passes), and rank 0 alone
writes the output folder; on Qwen3-ASR too (torchrun)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arabicpeft.text import SCHEMES

REPO = Path(__file__).resolve().parents[1]
STEPS, BATCH = 6, 4  # 16 training utterances: 4 steps an epoch, so the second epoch's order counts too
# --lora-dropout 0: the only randomness left is the seeded shuffle and initialisation, the same in every process.
ARGS = ["train", "--model", "tiny-random", "--source", "sample", "--dialect", "egyptian", "--max-steps", STEPS,
        "--eval-steps", 3, "--warmup-steps", 2, "--batch-size", BATCH, "--max-train-samples", 16,
        "--max-eval-samples", 4, "--max-test-samples", 3, "--generation-max-length", 8, "--logging-steps", 1,
        "--early-stopping-patience", 0, "--lora-dropout", 0]
NOTEBOOK = """
import sys
from arabicpeft.config import ExperimentConfig
from arabicpeft.multigpu import train_on_gpus

cfg = ExperimentConfig(model="tiny-random", source="sample", dialect="egyptian", max_steps={steps}, eval_steps=3,
                       warmup_steps=2, batch_size={batch}, max_train_samples=16, max_eval_samples=4,
                       max_test_samples=3, generation_max_length=8, logging_steps=1, early_stopping_patience=0,
                       lora_dropout=0.0, output_dir=sys.argv[1])
print(train_on_gpus(cfg, num_processes=2))
"""


def environment() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("ARABICPEFT_PROFILE", None)
    return env


def launch(command: list, out: Path) -> dict:
    """Run ``command`` (then ``out``) in a subprocess; the results file it wrote."""
    done = subprocess.run([*map(str, command), str(out)], env=environment(), cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    cli = [sys.executable, "-m", "arabicpeft", *ARGS, "--output-dir"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", 2, "-m",
                "arabicpeft", *ARGS, "--output-dir"]
    return {
        "one process": launch(cli, root / "one"),
        "accumulation": launch([*cli[:-1], "--gradient-accumulation-steps", 2, "--output-dir"], root / "accumulation"),
        "notebook_launcher": launch([sys.executable, "-c", NOTEBOOK.format(steps=STEPS, batch=BATCH)],
                                    root / "notebook"),
        # torchrun: stopped by its time budget after step 1 (every rank at once), then the same command resumes it
        "stopped": launch([*torchrun[:-1], "--time-budget-s", 1e-6, "--output-dir"], root / "torchrun"),
        "torchrun": launch(torchrun, root / "torchrun"),
    }, root


def curve(result: dict, key: str) -> list[float]:
    return [h[key] for h in result["training"]["log_history"] if key in h and "train_runtime" not in h]


@pytest.mark.parametrize("launcher", ["torchrun", "notebook_launcher", "accumulation"])
def test_two_processes_train_the_loss_curve_of_one(runs, launcher):
    """Two processes (torchrun: stopped after step 1 and resumed), or two accumulation passes in one, each on
    half of every step's batch."""
    results, _ = runs
    one, two = results["one process"], results[launcher]
    assert len(curve(one, "loss")) == STEPS
    assert curve(two, "loss") == pytest.approx(curve(one, "loss"), rel=1e-5, abs=1e-6)
    assert curve(two, "learning_rate") == pytest.approx(curve(one, "learning_rate"))
    assert curve(two, "eval_loss") == pytest.approx(curve(one, "eval_loss"), rel=1e-5)
    assert curve(one, "loss")[-1] < curve(one, "loss")[0]  # it trained
    assert (one["training"]["world_size"], one["training"]["per_device_batch_size"]) == (1, BATCH)
    processes = 1 if launcher == "accumulation" else 2
    assert (two["training"]["world_size"], two["training"]["per_device_batch_size"]) == (processes, BATCH // 2)
    assert two["config"]["batch_size"] == one["config"]["batch_size"] == BATCH  # the recipe is the global batch


def test_every_process_stops_at_the_time_budget_and_resumes_where_rank_0_says(runs):
    results, _ = runs
    stopped, resumed = results["stopped"], results["torchrun"]
    assert stopped["training"]["stopped_by_time_budget_at_step"] == stopped["training"]["global_step"] == 1
    assert stopped["training"]["world_size"] == 2
    assert resumed["training"]["resumed_from"].endswith("checkpoint-1") and resumed["training"]["global_step"] == STEPS
    assert resumed["metrics_before"] == stopped["metrics_before"]  # read back, not scored again


def test_rank_0_alone_scores_the_starting_model_and_writes_the_folder(runs):
    results, root = runs
    one, two = results["one process"], results["torchrun"]
    assert two["metrics_before"] == one["metrics_before"]  # scored once (before the stop), on every test utterance
    assert two["metrics_before"]["egyptian"]["raw"]["n_utterances"] == 3
    for name in ("one", "torchrun"):
        rows = (root / name / "utterances_before.csv").read_text(encoding="utf-8").strip().splitlines()
        assert len(rows) == 1 + 3 * len(SCHEMES)  # a header and each utterance once per scheme
        assert not (root / name / "INCOMPLETE").exists()
        assert (root / name / "checkpoints" / "checkpoint-6" / "trainer_state.json").is_file()


@pytest.fixture(scope="module")
def qwen_runs(tmp_path_factory):
    """The torchrun run of ``ARGS`` and its one-process twin on the tiny Qwen3-ASR (LoRA on both towers)."""
    root = tmp_path_factory.mktemp("ddp-qwen")
    args = [*("tiny-random-qwen3-asr" if a == "tiny-random" else a for a in ARGS), "--lora-targets", "qkvo",
            "--output-dir"]
    return {"one process": launch([sys.executable, "-m", "arabicpeft", *args], root / "one"),
            "torchrun": launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", 2,
                                "-m", "arabicpeft", *args], root / "torchrun")}, root


def test_two_processes_train_qwen3_asr_to_the_loss_curve_of_one_and_rank_0_scores(qwen_runs):
    results, root = qwen_runs
    one, two = results["one process"], results["torchrun"]
    assert one["provenance"]["model_family"] == two["provenance"]["model_family"] == "qwen3_asr"
    assert len(curve(one, "loss")) == STEPS and curve(one, "loss")[-1] < curve(one, "loss")[0]
    assert curve(two, "loss") == pytest.approx(curve(one, "loss"), rel=1e-5, abs=1e-6)
    assert curve(two, "eval_loss") == pytest.approx(curve(one, "eval_loss"), rel=1e-5)
    assert (two["training"]["world_size"], two["training"]["per_device_batch_size"]) == (2, BATCH // 2)
    assert two["metrics_before"] == one["metrics_before"] and two["metrics"] == one["metrics"]
    assert two["metrics"]["egyptian"]["raw"]["n_utterances"] == 3
    rows = (root / "torchrun" / "utterances_before.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(rows) == 1 + 3 * len(SCHEMES)  # rank 0 alone wrote each utterance once per scheme
