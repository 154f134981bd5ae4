"""Efficiency and score tables, figures and the variant runner, from results files (fake ones, and real runs in
the notebooks' nbval tests)."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from arabicpeft import comparison, study
from arabicpeft.results import write_results


def scores(wer, cer, n=6):
    return {"wer": wer, "cer": cer, "n_utterances": n, "ref_words": 30, "word_errors": int(wer * 0.3),
            "ref_chars": 150, "char_errors": int(cer * 1.5), "empty_references": 0, "empty_hypotheses": 0}


def fake_result(method="lora", precision="fp32", use_dora=False, wer=50.0, before=80.0, stopped=None,
                out="runs/x", trainable=49_152, memory_kind="cuda_max_allocated"):
    by_scheme = lambda w: {s: scores(w, w / 2) for s in ("raw", "leaderboard", "ar_norm_v1")}
    return {
        "schema": "arabicpeft.results/1",
        "config": {"method": method, "precision": precision, "use_dora": use_dora, "dialect": "egyptian",
                   "seed": 42, "model": "tiny-random", "output_dir": out},
        "data": {"source": "sample", "n_train": 48},
        "synthetic": True,
        "metrics": {"egyptian": by_scheme(wer)},
        "metrics_before": {"egyptian": by_scheme(before)} if before is not None else None,
        "training": {"global_step": 10, "best_checkpoint": f"{out}/checkpoints/checkpoint-10",
                     "best_validation_wer": 60.0, "stopped_by_time_budget_at_step": stopped, "resumed_from": None,
                     "log_history": [{"loss": 3.0, "step": 2}, {"loss": 2.5, "step": 4},
                                     {"eval_loss": 2.6, "eval_wer": 70.0, "step": 5},
                                     {"loss": 2.0, "step": 8}, {"eval_loss": 2.1, "eval_wer": 60.0, "step": 10},
                                     {"train_runtime": 3.0, "step": 10}]},
        "efficiency": {"trainable_parameters": trainable, "total_parameters": 3_683_904,
                       "trainable_percent": 100 * trainable / 3_683_904, "train_wall_time_s": 3.0,
                       "train_samples_per_second": 25.0, "run_wall_time_s": 9.0,
                       "peak_memory": {"kind": memory_kind, "bytes": 512 * 1024**2},
                       "weights_bytes": 200_000, "saved_dir_bytes": 4_000_000},
    }


def test_variant_labels():
    assert comparison.variant_label({"method": "lora", "precision": "fp16"}) == "LoRA fp16"
    assert comparison.variant_label({"method": "full", "precision": "fp32"}) == "full fp32"
    assert comparison.variant_label({"method": "lora", "precision": "fp16", "use_dora": True}) == "DoRA fp16"


def test_efficiency_table_reads_every_number_from_the_results():
    lora, full = fake_result(), fake_result("full", wer=40.0, trainable=3_683_904)
    table = comparison.efficiency_table([lora, full])
    assert list(table["variant"]) == ["LoRA fp32", "full fp32"]
    assert list(table["trainable params"]) == [49_152, 3_683_904]
    assert list(table["WER (%)"]) == [50.0, 40.0] and list(table["WER before (%)"]) == [80.0, 80.0]
    assert table["peak memory (MiB)"].tolist() == [512.0, 512.0]
    assert table["weights on disk (MiB)"].iloc[0] == pytest.approx(200_000 / 1024**2)
    assert table["synthetic data"].all()
    leaderboard = comparison.efficiency_table([lora], scheme="leaderboard")
    assert leaderboard["CER (%)"].iloc[0] == 25.0


def test_efficiency_table_drops_before_scores_nobody_measured_and_refuses_nothing():
    table = comparison.efficiency_table([fake_result(before=None)])
    assert "WER before (%)" not in table
    with pytest.raises(ValueError, match="No results"):
        comparison.efficiency_table([])


def test_scores_table_and_summary(tmp_path):
    result = fake_result(out=str(tmp_path / "run"))
    table = comparison.scores_table(result)
    assert table.loc[("egyptian", "raw"), "WER before (%)"] == 80.0
    assert table.loc[("egyptian", "raw"), "WER after (%)"] == 50.0
    assert len(table) == 3
    summary = comparison.run_summary(result)
    assert summary["steps trained"] == 10 and summary["results file"].endswith("results.json")
    assert "synthetic" in summary["data"]


def test_transcripts_come_from_the_utterances_file(tmp_path):
    rows = pd.DataFrame({"test_set": ["egyptian"] * 4, "utt_index": [0, 1, 0, 1], "utt_id": ["a", "b", "a", "b"],
                         "scheme": ["raw", "raw", "leaderboard", "leaderboard"], "reference": ["x y"] * 4,
                         "hypothesis": ["x"] * 4, "ref_words": [2] * 4, "word_errors": [1] * 4,
                         "ref_chars": [3] * 4, "char_errors": [2] * 4})
    path = write_results(tmp_path, fake_result(), rows)
    frame = comparison.transcripts(path, n=1)
    assert len(frame) == 1 and frame.loc[0, "utt_id"] == "a" and frame.loc[0, "hypothesis"] == "x"


def test_figures():
    results = [fake_result(), fake_result("full", wer=40.0, trainable=3_683_904, memory_kind="peak_rss")]
    curves = comparison.training_curves(results)
    assert isinstance(curves, Figure) and len(curves.axes) == 2
    loss_ax, wer_ax = curves.axes
    assert len(loss_ax.lines) == 4 and list(wer_ax.lines[0].get_ydata()) == [70.0, 60.0]
    bars = comparison.efficiency_figure(comparison.efficiency_table(results))
    assert len(bars.axes) == 6 and "peak RSS" in bars._suptitle.get_text()
    assert [p.get_height() for p in bars.axes[0].patches] == [49_152, 3_683_904]


def test_log_frame_tolerates_missing_columns():
    result = fake_result()
    result["training"]["log_history"] = [{"loss": 1.0, "step": 1}]
    frame = comparison.log_frame(result)
    assert list(frame.columns) == ["step", "loss", "eval_loss", "eval_wer"] and frame["eval_wer"].isna().all()


def test_is_complete(tmp_path):
    assert not study.is_complete(tmp_path / "absent.json")
    done = write_results(tmp_path / "done", fake_result())
    cut = write_results(tmp_path / "cut", fake_result(stopped=700))
    assert study.is_complete(done) and not study.is_complete(cut)


def test_run_variants_skips_gpu_only_variants_reuses_finished_runs_and_resumes_cut_ones(monkeypatch, tmp_path):
    import arabicpeft.train
    from arabicpeft.config import ExperimentConfig

    monkeypatch.setenv("ARABICPEFT_OUTPUT", str(tmp_path))
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    write_results(tmp_path / "study" / "lora", fake_result())  # finished earlier
    write_results(tmp_path / "study" / "full", fake_result("full", stopped=5))  # cut by the time budget
    trained = []

    def fake_train(cfg):
        trained.append(copy.deepcopy(cfg))
        return write_results(cfg.output_dir, fake_result(cfg.method, out=cfg.output_dir))

    monkeypatch.setattr(arabicpeft.train, "run", fake_train)
    base = ExperimentConfig(dialect="egyptian", model="tiny-random", source="sample", seed=84)
    lines = []
    paths = comparison.run_variants(base, "study", ["lora", "full", "lora-int8", "lora-nf4", "dora"], gpu=False,
                                    log=lines.append)
    assert list(paths) == ["lora", "full"]
    assert [(c.method, c.seed, c.extra["variant"]) for c in trained] == [("full", 84, "full")]
    assert Path(trained[0].output_dir) == (tmp_path / "study" / "full").resolve()
    skipped = [line for line in lines if "skipped: needs a CUDA GPU" in line]
    assert len(skipped) == 3 and any("reusing" in line for line in lines)
    assert base.extra == {}  # the base config is not changed
    with pytest.raises(ValueError, match="Unknown variant"):
        comparison.run_variants(base, "study", ["lora-int4"], gpu=False)


def test_variants_on_a_gpu_set_their_overrides(monkeypatch, tmp_path):
    import arabicpeft.train
    from arabicpeft import environment
    from arabicpeft.config import ExperimentConfig

    monkeypatch.setenv("ARABICPEFT_OUTPUT", str(tmp_path))
    monkeypatch.setattr(environment, "check_gpu", lambda precision=None, gpu=None: {"cuda": True})
    monkeypatch.setattr(environment, "_no_gpu_driver", lambda: False)
    trained = []
    monkeypatch.setattr(arabicpeft.train, "run",
                        lambda cfg: trained.append(cfg) or write_results(cfg.output_dir, fake_result()))
    base = ExperimentConfig(dialect="egyptian", model="tiny-random", source="sample", precision="fp16")
    comparison.run_variants(base, "gpu-study", gpu=True, log=lambda m: None)
    assert [(c.method, c.precision, c.use_dora) for c in trained] == [
        ("lora", "fp16", False), ("full", "fp16", False), ("lora", "int8", False), ("lora", "nf4", False),
        ("lora", "fp16", True)]


def test_run_variants_stops_starting_runs_when_the_kaggle_session_is_spent(monkeypatch, tmp_path):
    import arabicpeft.train
    from arabicpeft import environment
    from arabicpeft.config import ExperimentConfig

    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("ARABICPEFT_OUTPUT", str(tmp_path))
    monkeypatch.setattr(environment, "KAGGLE_INPUT", tmp_path / "input")
    monkeypatch.setattr(environment, "session_time_left_s", lambda: 0.0)
    monkeypatch.setattr(arabicpeft.train, "run", lambda cfg: pytest.fail("no run may start"))
    lines = []
    paths = comparison.run_variants(ExperimentConfig(model="tiny-random", source="sample"), "study", ["lora"],
                                    gpu=False, log=lines.append)
    assert paths == {} and any("not started" in line and "attach" in line for line in lines)


def test_efficiency_table_flags_runs_cut_by_the_time_budget():
    table = comparison.efficiency_table([fake_result(), fake_result("full", stopped=700)])
    assert table["trained to the end"].tolist() == [True, False]
