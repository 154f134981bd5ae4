"""The paper's four figures (paper_plots) from library code, on the published data and on the project's own results files."""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from arabicpeft import paper, paper_plots, stats
from arabicpeft.results import load_runs

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def per_seed():
    return paper._load_dialects_per_seed()


def _bars(ax):
    """Bars drawn by seaborn.barplot (BarContainers; legend patches excluded)."""
    return [bar for container in ax.containers for bar in container]


def test_fig1_msa_trainsize():
    fig = paper_plots.fig1_msa_trainsize(paper._msa_trainsize_tidy())
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # WER and CER
    ax = fig.axes[0]
    curve = ax.lines[0]
    # 0% (zero-shot whisper-small) plus the five fractions, mean over seeds
    np.testing.assert_allclose(np.asarray(curve.get_xdata(), float), [0, 20, 40, 60, 80, 100])
    msa = paper._load_msa_trainsize().sort_values("msa_fraction").dropna(subset=["msa_fraction"])
    np.testing.assert_allclose(np.asarray(curve.get_ydata(), float), msa["wer_mean"], atol=0.005)
    # four other zero-shot sizes as horizontal reference lines, named in the legend
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum("zero-shot" in label for label in labels) == 4
    assert "whisper-large-v3 zero-shot (43.20)" in labels


def test_fig2_pretraining(per_seed):
    fig = paper_plots.fig2_pretraining(per_seed)
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert len(ax.patches) == 12  # 6 test sets x 2 conditions, one box each
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Egyptian", "Gulf", "Iraqi", "Levantine", "Maghrebi", "MSA"]
    points = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    assert len(points) == 72  # every (condition, train, test) seed-mean is drawn
    assert 72.15 in np.round(points, 2)


def test_fig2_rejects_mixed_methods(per_seed):
    doubled = pd.concat([per_seed.assign(method="full"), per_seed.assign(method="lora")])
    with pytest.raises(ValueError, match="filter"):
        paper_plots.fig2_pretraining(doubled)


def test_fig3_pooled_vs_specific():
    fig = paper_plots.fig3_pooled_vs_specific(paper.figure_data()["pooled_vs_specific"])
    assert len(fig.axes) == 2
    wer_ax, cer_ax = fig.axes
    bars = _bars(wer_ax)
    assert len(bars) == 12  # 6 test sets x pooled/specific
    heights = sorted(round(b.get_height(), 2) for b in bars)
    table = paper._pooled_vs_specific().drop(index=paper.MEAN_ROW)
    expected = sorted(np.round(np.concatenate([table["wer_pooled"], table["wer_specific"]]), 2))
    np.testing.assert_allclose(heights, expected, atol=0.011)  # per-seed means vs 2-decimal published means
    assert "8.42" in wer_ax.get_title() and "3.37" in cer_ax.get_title()


def test_fig4_heatmap_cells_and_annotation(per_seed):
    fig = paper_plots.fig4_heatmap(per_seed, condition=paper.WITH_PRETRAINING)
    ax = fig.axes[0]
    assert ax.collections[0].get_array().size == 30  # 5 train sets (pooled row dropped) x 6 test sets
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Egyptian", "Gulf", "Iraqi", "Levantine", "Maghrebi"]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 30
    assert texts[0] == "72.15\n(± 2.83)"  # with pre-training, Egyptian -> Egyptian, as printed in the paper
    assert "81.48\n(± 4.25)" in texts  # Gulf -> Gulf
    assert ax.collections[0].get_cmap().name == "viridis_r"


def test_fig4_heatmap_without_pretraining_and_single_seed(per_seed):
    fig = paper_plots.fig4_heatmap(per_seed, condition=paper.WITHOUT_PRETRAINING)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0] == "75.41\n(± 0.96)"
    one_seed = per_seed[per_seed["seed"] == 42]
    texts = [t.get_text() for t in paper_plots.fig4_heatmap(one_seed).axes[0].texts]
    assert "\n" not in texts[0]  # no SD from one seed: just the mean
    with pytest.raises(ValueError, match="condition"):
        paper_plots.fig4_heatmap(per_seed, condition="no_such_condition")


# load_runs(...).scores() -------------------------------------------------------------------------------------------


def _scores(wer, cer):
    return {"wer": wer, "cer": cer, "n_utterances": 10, "ref_words": 100, "word_errors": wer, "ref_chars": 500,
            "char_errors": 5 * cer}


def _write_run(path, dialect, seed, metrics, condition=None, before=None):
    content = {
        "schema": "arabicpeft.results/1",
        "run_id": f"{dialect}-{seed}",
        "config": {"dialect": dialect, "method": "lora", "model": "openai/whisper-tiny", "seed": seed,
                   "precision": "fp32", "lora_r": 32, "extra": {"condition": condition} if condition else {}},
        "data": {"source": "sample", "synthetic": True, "n_train": 8},
        "metrics": {t: {"raw": _scores(*v), "ar_norm_v1": _scores(v[0] - 5, v[1] - 2)} for t, v in metrics.items()},
        "utterances_file": "utterances.csv",
        "provenance": {"git_commit": None},
    }
    if before is not None:
        content["metrics_before"] = {t: {"raw": _scores(*v)} for t, v in before.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content), encoding="utf-8")


@pytest.fixture
def results_dir(tmp_path):
    before = {"egyptian": (90.0, 55.0), "gulf": (92.0, 60.0)}  # the same starting model for both runs
    _write_run(tmp_path / "egy" / "results.json", "egyptian", 42,
               {"egyptian": (70.0, 40.0), "gulf": (95.0, 70.0)}, before=before)
    _write_run(tmp_path / "gulf" / "results.json", "gulf", 42,
               {"egyptian": (88.0, 60.0), "gulf": (80.0, 62.0)}, condition=paper.WITH_PRETRAINING, before=before)
    # a JSON file that is not a results file (a LoRA adapter's config) must be skipped
    (tmp_path / "egy" / "adapter_config.json").write_text(json.dumps({"r": 32}), encoding="utf-8")
    return tmp_path


def test_scores_reads_runs(results_dir):
    frame = load_runs(results_dir).scores(include_start=False)
    assert len(frame) == 4
    assert {"train_set", "test_set", "seed", "wer", "cer", "condition", "method"} <= set(frame.columns)
    row = frame[(frame["train_set"] == "egyptian") & (frame["test_set"] == "egyptian")].iloc[0]
    assert (row["wer"], row["cer"], row["seed"], row["method"]) == (70.0, 40.0, 42, "lora")
    assert row["condition"] == paper.WITHOUT_PRETRAINING and row["scheme"] == "raw" and row["scored"] == "trained"
    gulf = frame[frame["train_set"] == "gulf"]
    assert (gulf["condition"] == paper.WITH_PRETRAINING).all()  # as its design recorded it
    normalized = load_runs(results_dir).scores(scheme="ar_norm_v1", include_start=False)
    assert normalized.loc[normalized["test_set"] == "egyptian", "wer"].min() == 65.0


def test_scores_start_rows_feed_gain_forgetting(results_dir):
    frame = load_runs(results_dir).scores()
    start = frame[frame["scored"] == "start"]
    assert set(start["train_set"]) == {stats.START}
    R = frame.drop_duplicates(["train_set", "test_set"]).pivot(index="train_set", columns="test_set", values="wer")
    gain, forgetting = stats._gain_forgetting(R)
    assert gain.set_index("train_set")["gain"].to_dict() == {"egyptian": 20.0, "gulf": 12.0}
    assert forgetting.set_index("train_set")["forgetting"].to_dict() == {"egyptian": 3.0, "gulf": -2.0}


def test_scores_draws_the_heatmap(results_dir):
    frame = load_runs(results_dir).scores(include_start=False)
    fig = paper_plots.fig4_heatmap(frame, condition=None)
    ax = fig.axes[0]
    assert ax.collections[0].get_array().size == 4
    assert [t.get_text() for t in ax.texts] == ["70.00", "95.00", "88.00", "80.00"]  # one seed: no SD


def test_scores_errors(tmp_path):
    assert load_runs(tmp_path / "missing").scores().empty
    assert load_runs(tmp_path).scores().empty
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        load_runs(tmp_path)


def test_scores_draws_fig2_and_fig3(results_dir):
    _write_run(results_dir / "all" / "results.json", "all", 42, {"egyptian": (75.0, 45.0), "gulf": (85.0, 64.0)})
    frame = load_runs(results_dir).scores(include_start=False)
    fig2 = paper_plots.fig2_pretraining(frame)
    assert len(fig2.axes[0].patches) == 4  # 2 test sets x 2 conditions
    fig3 = paper_plots.fig3_pooled_vs_specific(frame)  # the pooled model and each test set's own; the others left out
    assert len(_bars(fig3.axes[0])) == 4
    assert "= 5.00 points" in fig3.axes[0].get_title()  # |75 − 70| and |85 − 80|
