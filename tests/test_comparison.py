"""Single-run views (summary, scores, transcripts, training curves) from results files (fake ones, and real runs
in the notebooks' nbval tests)."""

import pandas as pd
from matplotlib.figure import Figure

from arabicpeft import comparison
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


def test_log_frame_tolerates_missing_columns():
    result = fake_result()
    result["training"]["log_history"] = [{"loss": 1.0, "step": 1}]
    frame = comparison._log_frame(result)
    assert list(frame.columns) == ["step", "loss", "eval_loss", "eval_wer"] and frame["eval_wer"].isna().all()


def test_training_curves_of_a_study_label_every_training_run(tmp_path):
    from arabicpeft.results import load_runs

    write_results(tmp_path / "lora", fake_result())
    write_results(tmp_path / "full", fake_result("full", wer=40.0))
    runs = load_runs(tmp_path).runs
    evaluation = runs.iloc[:1].assign(kind="evaluation", path="not read")  # no training log: left out
    fig = comparison.training_curves(pd.concat([runs, evaluation], ignore_index=True))
    labels = sorted(line.get_label() for line in fig.axes[1].lines if not line.get_label().startswith("_"))
    assert labels == ["method=full seed 42", "method=lora seed 42"]  # the system: every field that differs
