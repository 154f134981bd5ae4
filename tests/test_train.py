"""Real (tiny) runs through the whole pipeline: CLI -> data -> Seq2SeqTrainer -> evaluation -> results."""

import contextlib
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from arabicpeft.cli import main
from arabicpeft.config import ExperimentConfig
from arabicpeft.model import _add_lora, build_model, count_parameters, _load_base
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


def test_lora_with_adapter_disabled_is_exactly_the_base_model():
    cfg = ExperimentConfig(model="tiny-random", method="lora", lora_targets="all-linear", seed=0)
    base, _ = _load_base(cfg)
    base.eval()
    torch.manual_seed(0)
    feats = torch.randn(2, 80, 800)
    dec = torch.tensor([[50258, 50272, 50359, 50363]] * 2)
    with torch.no_grad():
        reference = base(input_features=feats, decoder_input_ids=dec).logits.clone()
        model = _add_lora(base, cfg)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a trained-looking adapter that really changes the output
        model.eval()
        with model.disable_adapter():
            off = model(input_features=feats, decoder_input_ids=dec).logits
        on = model(input_features=feats, decoder_input_ids=dec).logits
    assert torch.equal(off, reference)
    assert not torch.allclose(on, reference)


def test_lora_trainable_parameters_are_what_the_config_says():
    cfg = ExperimentConfig(model="tiny-random", method="lora")  # r 32 on q_proj, v_proj
    model, _ = build_model(cfg)
    trainable, total = count_parameters(model)
    # 2 encoder self-attn + 2 decoder self-attn + 2 decoder cross-attn, q and v each: A (32x64) + B (64x32)
    assert trainable == 6 * 2 * (32 * 64 + 64 * 32)
    assert total == trainable + count_parameters(_load_base(cfg)[0])[1]
    dora, _ = build_model(ExperimentConfig(model="tiny-random", method="lora", use_dora=True))
    assert any("lora_magnitude_vector" in n for n, _ in dora.named_parameters())


def test_lora_target_presets_and_custom_lists():
    assert ExperimentConfig(lora_targets="qkvo").target_modules() == ["q_proj", "k_proj", "v_proj", "out_proj"]
    assert ExperimentConfig(lora_targets="fc1, fc2").target_modules() == ["fc1", "fc2"]
    assert "fc1" in ExperimentConfig(lora_targets="all-linear").target_modules()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
@pytest.mark.parametrize("precision", ["int8", "nf4", "fp16"])
def test_gpu_precisions_fail_clearly_on_cpu(precision):
    with pytest.raises(RuntimeError, match=f"precision {precision} needs a CUDA GPU.*use precision fp32"):
        build_model(ExperimentConfig(model="tiny-random", precision=precision))


def test_bad_config_values_fail_clearly():
    with pytest.raises(ValueError, match="Unknown method 'prefix' — choose one of lora, full"):
        ExperimentConfig(method="prefix")
    with pytest.raises(ValueError, match="Full fine-tuning of a int8-quantized model is not possible"):
        ExperimentConfig(method="full", precision="int8")
    with pytest.raises(ValueError, match="source='local' needs data_path"):
        ExperimentConfig(source="local")


def test_mixed_precision_follows_the_gpu():
    from arabicpeft.train import _mixed_precision

    assert _mixed_precision("fp32", True) == {"fp16": False, "bf16": False}
    assert _mixed_precision("fp16", True) == {"fp16": True, "bf16": False}
    assert _mixed_precision("bf16", False) == {"fp16": False, "bf16": True}
    assert _mixed_precision("int8", False) == {"fp16": True, "bf16": False}  # T4 (7.5): no native bf16
    assert _mixed_precision("nf4", True) == {"fp16": False, "bf16": True}  # Ampere and later


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
