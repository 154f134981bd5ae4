"""Real (tiny) runs through the whole pipeline: CLI -> data -> Seq2SeqTrainer -> evaluation -> results; resuming,
time budgets, bf16 on a CPU (the Trainer's own pieces: tests/test_trainer.py)."""

import contextlib
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_audio_manifest

from arabicpeft.cli import main
from arabicpeft.config import ExperimentConfig
from arabicpeft.data import DataUnavailableError
from arabicpeft.results import read_results
from arabicpeft.text import SCHEMES

TINY = ["--model", "tiny-random", "--source", "sample", "--dialect", "egyptian", "--learning-rate", "1e-3",
        "--warmup-steps", "0", "--batch-size", "8", "--eval-steps", "10", "--max-eval-samples", "8",
        "--max-test-samples", "6", "--generation-max-length", "20", "--logging-steps", "5",
        "--early-stopping-patience", "0"]


def cli(capsys, *args) -> Path:
    main([str(a) for a in args])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    return Path(last)


def printed(argv) -> str:
    """What ``main(argv)`` prints on stdout."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(argv)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A full fine-tuning run of the tiny model stopped by its time budget after step 1, then resumed to 30
    (with what each printed)."""
    out = tmp_path_factory.mktemp("full") / "run"
    first_out = printed(["train", *TINY, "--method", "full", "--max-steps", "30", "--time-budget-s", "1e-6",
                         "--output-dir", str(out)])
    first = read_results(out)
    second_out = printed(["train", *TINY, "--method", "full", "--max-steps", "30", "--output-dir", str(out)])
    return out, first, read_results(out), first_out, second_out


def test_results_file_records_everything(full_run):
    out, first, *_ = full_run
    assert first["schema"] == "arabicpeft.results/1"
    assert first["synthetic"] is True and first["data"]["synthetic"] is True and first["data"]["source"] == "sample"
    assert first["config"]["method"] == "full" and first["config"]["model"] == "tiny-random"
    assert first["data"]["train_pool"]["rows_in"] == 60 and first["data"]["n_validation"] == 8
    assert first["training"]["global_step"] == 1 and first["training"]["resumed_from"] is None
    eff = first["efficiency"]
    # every weight but the encoder's fixed sinusoidal positions (tiny-random at the sample set's 8 s: 400 x 64),
    # which transformers 5's from_pretrained would leave trainable
    assert eff["trainable_parameters"] == eff["total_parameters"] - 400 * 64 > 0
    assert eff["weights_bytes"] > 4 * eff["total_parameters"] * 0.9  # fp32 safetensors
    assert eff["peak_memory"]["bytes"] > 0 and eff["train_samples_per_second"] > 0
    # where the time went: every phase, in order, adding up to the run's wall time (the results file aside)
    phases = eff["phase_seconds"]
    assert list(phases) == ["setup", "model", "data", "evaluation_before", "training", "evaluation_after", "saving"]
    assert min(phases.values()) >= 0 and sum(phases.values()) == pytest.approx(eff["run_wall_time_s"], abs=1.0)
    prov = first["provenance"]
    assert prov["versions"]["transformers"] and prov["hardware"]["cpu_count"] >= 1 and "created" in prov
    losses = [h["loss"] for h in read_results(out)["training"]["log_history"] if "loss" in h]
    assert losses[-1] < losses[0]  # it trained
    # what a rerun needs beyond the config: the learning rate and budget used, the model's origin
    assert prov["learning_rate"] == 1e-3
    assert prov["generation_budget_tokens"] == 20 and prov["max_label_positions"] == 448
    assert prov["decoding"]["tokens_per_second"] == 20.0 and prov["decoding"]["sorted_by_duration"] is True
    assert prov["model"]["name"] == "tiny-random" and len(prov["model"]["sha256"]) == 64


def test_metrics_match_the_per_utterance_counts(full_run):
    out, _, last, *_ = full_run
    rows = pd.read_csv(out / last["utterances_file"], keep_default_na=False)
    assert len(rows) == 6 * len(SCHEMES)  # every utterance under every scheme, none dropped
    for scheme, m in last["metrics"]["egyptian"].items():
        sub = rows[rows.scheme == scheme]
        assert m["n_utterances"] == len(sub) == 6
        assert m["word_errors"] == sub.word_errors.sum() and m["ref_words"] == sub.ref_words.sum()
        assert m["wer"] == pytest.approx(100 * m["word_errors"] / m["ref_words"])
        assert m["cer"] == pytest.approx(100 * m["char_errors"] / m["ref_chars"])
    before = pd.read_csv(out / last["utterances_before_file"], keep_default_na=False)
    assert len(before) == 6 * len(SCHEMES) and last["metrics_before"]["egyptian"]["raw"]["n_utterances"] == 6


def test_resume_continues_from_the_last_checkpoint_and_says_so(full_run):
    out, first, last, first_out, second_out = full_run
    assert last["training"]["resumed_from"].endswith("checkpoint-1")
    assert last["training"]["global_step"] == 30
    assert f"resuming from checkpoint-1 of {out}" in second_out and "resuming" not in first_out
    # the starting model is scored once; the rerun reads its scores back from the folder, unchanged
    assert "scoring the starting model" in first_out and "scoring the starting model" not in second_out
    assert "not scored again" in second_out
    assert last["metrics_before"] == first["metrics_before"]


def test_train_prints_what_it_trained_where_it_saved_and_its_scores(full_run):
    out, _, last, _, second_out = full_run
    lines = second_out.strip().splitlines()
    assert lines[-1] == str((out / "results.json").resolve())  # still the last line
    assert any(line.startswith("Trained: full fine-tuning of tiny-random") for line in lines)
    assert any(line.startswith("model ") and line.endswith(str((out / "model").resolve())) for line in lines)
    assert any(str((out / "utterances.csv").resolve()) in line for line in lines)
    table = [line for line in lines if line.startswith("  egyptian ")]
    before, after = last["metrics_before"]["egyptian"]["raw"], last["metrics"]["egyptian"]["raw"]
    assert len(table) == 1 and "6 utts" in table[0]
    assert f"WER {before['wer']:6.2f} -> {after['wer']:6.2f}" in table[0]  # printed from results.json
    assert not (out / "INCOMPLETE").exists()
    assert "step 5/30: training loss" in second_out and "step 10: validation WER" in second_out  # not dicts


def test_a_run_that_fails_before_training_does_not_claim_its_folder(tmp_path):
    from arabicpeft.train import run

    out = tmp_path / "run"
    (tmp_path / "data").mkdir()  # a local data folder with nothing in it: fails while loading the data
    bad = ExperimentConfig(model="tiny-random", source="local", data_path=str(tmp_path / "data"),
                           output_dir=str(out))
    with pytest.raises(FileNotFoundError):
        run(bad)
    assert not (out / "run_config.json").exists()


def test_an_interruption_between_saving_and_results_leaves_a_folder_that_says_so(tmp_path, monkeypatch):
    import arabicpeft.train as train

    cfg = ExperimentConfig(model="tiny-random", source="sample", dialect="gulf", method="full", max_steps=2,
                           warmup_steps=0, eval_steps=2, max_train_samples=16, max_eval_samples=4,
                           max_test_samples=2, generation_max_length=8, early_stopping_patience=0,
                           evaluate_before=False, output_dir=str(tmp_path / "run"))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "write_results", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.run(cfg)
    out = tmp_path / "run"
    assert (out / "INCOMPLETE").is_file() and (out / "model").is_dir() and not (out / "results.json").exists()
    assert "Rerun the same command" in (out / "INCOMPLETE").read_text()
    monkeypatch.undo()
    result = read_results(train.run(cfg))
    assert not (out / "INCOMPLETE").exists() and result["training"]["resumed_from"].endswith("checkpoint-2")
    assert result["training"]["global_step"] == 2


def test_resume_with_another_max_steps_is_refused(full_run, capsys):
    """The linear schedule decays to 0 at max_steps: a checkpoint cannot continue under another one (before:
    learning rates 1e-3, 5e-4, 0, 2.5e-4 on a resume from 2 to 4 steps). The command line says so in one line."""
    out, *_ = full_run
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *TINY, "--method", "full", "--max-steps", "40", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert re.search(r"checkpoint-30 was trained towards max_steps=30.*resuming it with max_steps=40 would train on "
                     r"a broken schedule.*Rerun with max_steps=30", err)
    other = out.parent / "elsewhere"
    with pytest.raises(SystemExit):
        main(["train", *TINY, "--method", "full", "--max-steps", "40", "--output-dir", str(other),
              "--resume-from", str(out)])
    assert "trained towards max_steps=30" in capsys.readouterr().err


def test_evaluate_cli_reproduces_the_run_scores(full_run, capsys, tmp_path):
    out, _, last, *_ = full_run
    path = cli(capsys, "evaluate", "--model-path", out / "model", "--max-test-samples", 6, "--output-dir",
               tmp_path / "eval")
    assert path == (tmp_path / "eval" / "results.json").resolve()
    evaluated = json.loads(path.read_text())
    assert evaluated["metrics"] == last["metrics"]  # greedy decoding of the saved best model is deterministic


def test_bf16_trains_on_cpu(tmp_path):
    from arabicpeft.train import run

    cfg = ExperimentConfig(model="tiny-random", source="sample", dialect="gulf", method="full", precision="bf16",
                           max_steps=2, warmup_steps=0, eval_steps=2, max_train_samples=16, max_eval_samples=4,
                           max_test_samples=2, generation_max_length=8, early_stopping_patience=0,
                           evaluate_before=False, output_dir=str(tmp_path / "run"))
    result = read_results(run(cfg))
    assert result["training"]["global_step"] == 2 and result["metrics"]["gulf"]["raw"]["n_utterances"] == 2


def test_an_output_dir_is_not_reused_for_another_experiment(full_run):
    from arabicpeft.train import run

    out, _, last, *_ = full_run
    assert last["efficiency"]["measured_since_resume"] is True
    assert last["training"]["best_checkpoint_loaded"] is True
    other = ExperimentConfig(model="tiny-random", source="sample", dialect="gulf", method="full", max_steps=30,
                             output_dir=str(out))
    with pytest.raises(ValueError, match=r"already holds a run with another config \(dialect: 'egyptian' -> 'gulf'"):
        run(other)


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path):
    from arabicpeft.train import run

    cfg = ExperimentConfig(model="tiny-random", source="sample", dialect="iraqi", method="full", max_steps=50,
                           warmup_steps=0, eval_steps=25, max_train_samples=16, max_eval_samples=4,
                           max_test_samples=2, generation_max_length=8, early_stopping_patience=0,
                           evaluate_before=False, time_budget_s=1e-6, output_dir=str(tmp_path / "run"))
    result = read_results(run(cfg))
    assert result["training"]["stopped_by_time_budget_at_step"] == 1 == result["training"]["global_step"]
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-1").is_dir()  # saved, so a rerun resumes from it
    assert result["metrics"]["iraqi"]["raw"]["n_utterances"] == 2  # and it was still evaluated


def test_an_empty_validation_split_stops_before_any_training_step(tmp_path, tiny_processor):
    """At load time, never a KeyError for eval_wer after training."""
    from arabicpeft.train import run

    write_audio_manifest(tmp_path / "data", [{"seconds": 1.0, "text": f"نص {i}"} for i in range(4)], "train")
    write_audio_manifest(tmp_path / "data", [{"seconds": 1.0, "text": "نص"}], "test")
    cfg = ExperimentConfig(dialect="gulf", source="local", data_path=str(tmp_path / "data"), model="tiny-random",
                           streaming=True, max_eval_samples=4, val_fraction=1e-9, max_steps=2,
                           evaluate_before=False, output_dir=str(tmp_path / "run"))
    with pytest.raises(DataUnavailableError, match="The validation split is empty"):
        run(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


# --- bad input: a checkpoint that cannot be resumed -----------------------------------------------------


def _resume(tmp_path, planned=20, asked=30, resume_from=None):
    from arabicpeft.train import _resume_checkpoint

    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"max_steps": planned}))
    return _resume_checkpoint(ExperimentConfig(output_dir=str(tmp_path / "run"), max_steps=asked,
                                              resume_from=resume_from))


# (kind, call(tmp_path, tokenizer), exception, message: what was wrong ... what to do)
ERRORS = [
    ("resume with another max_steps", lambda t, k: _resume(t), ValueError,
     r"trained towards max_steps=20.*max_steps=30 would train on a broken schedule.*Rerun with max_steps=20"),
    ("resume from a folder without a checkpoint", lambda t, k: _resume(t, 30, 30, resume_from=str(t)), FileNotFoundError,
     r"No complete checkpoint-\* directory .*resume_from="),
]


@pytest.mark.parametrize("kind, call, error, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_a_clear_error(kind, call, error, message, tmp_path, tiny_processor):
    with pytest.raises(error, match=message):
        call(tmp_path, tiny_processor.tokenizer)


# --- a finished run, its rerun, and checkpoints cut short (items 4 and 10) --------------------------------

LORA8 = ["train", "--model", "tiny-random", "--source", "sample", "--dialect", "egyptian", "--max-steps", "8",
         "--eval-steps", "2", "--warmup-steps", "2", "--batch-size", "4", "--max-train-samples", "24",
         "--max-eval-samples", "4", "--max-test-samples", "3", "--generation-max-length", "8",
         "--no-evaluate-before", "--logging-steps", "1", "--early-stopping-patience", "0"]


def checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def lora8(tmp_path_factory):
    """A LoRA run of 8 steps (steps do not fill whole epochs: 19 training clips, 4 a step), finished."""
    out = tmp_path_factory.mktemp("lora8") / "run"
    printed([*LORA8, "--output-dir", str(out)])
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp_path / "run"))


def test_a_finished_run_says_where_its_results_are_and_stops(lora8, tmp_path):
    """rerunning the finished demo re-scored it for minutes. Now the rerun prints where the results are
    and its scores, trains and scores nothing, and imports no torch."""
    before = (lora8 / "results.json").read_bytes()
    probe = ("import sys\nfrom arabicpeft.cli import main\nmain(sys.argv[1:])\n"
             "print('TORCH_IMPORTED', 'torch' in sys.modules)\n")
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", probe, *LORA8, "--output-dir", str(lora8)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == (f"This run is finished: {lora8.resolve()} holds its model and scores. Nothing to train or "
                        "score (add --rescore to score it again).")
    assert lines[-2] == str((lora8 / "results.json").resolve()) and lines[-1] == "TORCH_IMPORTED False"
    assert any(line.startswith("  egyptian      3 utts   WER") for line in lines)  # its scores
    assert (lora8 / "results.json").read_bytes() == before and checkpoints(lora8) == ["checkpoint-2", "checkpoint-8"]


def test_rescore_trains_nothing_and_scores_the_same_model(lora8, tmp_path):
    """Items 4 and 10: --rescore scores the finished run again; a rerun at the end of training trained step 9,
    then 10 (transformers#35782). Now it trains nothing: the same step, checkpoints and scores."""
    out = copy_of(lora8, tmp_path)
    first = read_results(out)
    said = printed([*LORA8, "--output-dir", str(out), "--rescore"])
    assert "resuming from checkpoint-8 of" in said
    assert "training ended there (step 8 of 8): nothing left to train" in said
    again = read_results(out)
    assert again["training"]["global_step"] == 8 and checkpoints(out) == ["checkpoint-2", "checkpoint-8"]
    assert again["metrics"] == first["metrics"] and again["training"]["best_checkpoint"] == first["training"][
        "best_checkpoint"]
    assert again["efficiency"]["train_wall_time_s"] == 0.0
    (out / "results.json").unlink()  # killed while scoring: the rerun resumes at the end and only scores
    assert read_results(Path(printed([*LORA8, "--output-dir", str(out)]).strip().splitlines()[-1]))["metrics"] == \
        first["metrics"]
    assert checkpoints(out) == ["checkpoint-2", "checkpoint-8"]


def test_a_last_checkpoint_cut_short_is_passed_over_and_named(lora8, tmp_path):
    """a truncated adapter, optimizer or trainer state in the last checkpoint gave a raw traceback. The
    run resumes from the newest complete checkpoint, says which one it passed over and why, and finishes. (Each
    kind of file cut short: tests/test_run_dir.py.)"""
    damaged = "optimizer.pt"
    out = copy_of(lora8, tmp_path)
    (out / "results.json").unlink()  # the run did not finish
    path = out / "checkpoints" / "checkpoint-8" / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    said = printed([*LORA8, "--output-dir", str(out)])
    assert f"note: checkpoint-8 ({damaged} " in said and "it cannot be resumed, so the run resumes from checkpoint-2" \
        in said
    result = read_results(out)
    assert result["training"]["resumed_from"].endswith("checkpoint-2") and result["training"]["global_step"] == 8
