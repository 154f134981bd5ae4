"""The figures of a study's own analysis (rates, method comparison, efficiency, gain and forgetting) and the
conventions every figure shares."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from arabicpeft import plots, stats

matplotlib.use("Agg")


def test_heatmap_labels():
    mean = pd.DataFrame([[72.146, np.nan]])
    sd = pd.DataFrame([[2.8349, np.nan]])
    assert plots.heatmap_labels(mean, sd).tolist() == [["72.15\n(± 2.83)", ""]]


# Figures of the project's own analysis ----------------------------------------------------------------------


def _errorbar_extents(ax):
    """(low, high) of every vertical error bar segment drawn on ``ax``, in drawing order."""
    out = []
    for collection in ax.collections:
        if isinstance(collection, matplotlib.collections.LineCollection):
            out += [(min(s[:, 1]), max(s[:, 1])) for s in collection.get_segments()]
    return out


def _gain_forgetting_table():
    rows = []
    for method, (gain, f_gulf, f_msa) in {"full": (20.0, 17.0, 15.0), "lora": (3.0, 2.0, -1.0)}.items():
        for test_set, kind, value in (("egyptian", "gain", gain), ("gulf", "forgetting", f_gulf),
                                      ("msa", "forgetting", f_msa)):
            rows.append({"method": method, "metric": "wer", "train_set": "egyptian", "test_set": test_set,
                         "kind": kind, "value": value, "low": value - 2.0, "high": value + 3.0})
    return pd.DataFrame(rows)


def test_fig_gain_forgetting_bars_and_cis():
    table = _gain_forgetting_table()
    fig = plots.fig_gain_forgetting(table)
    gain_ax, forgetting_ax = fig.axes
    assert [round(b.get_height(), 6) for b in gain_ax.patches] == [20.0, 3.0]  # full, lora
    assert [round(b.get_height(), 6) for b in forgetting_ax.patches] == [17.0, 15.0, 2.0, -1.0]
    assert [t.get_text() for t in forgetting_ax.get_xticklabels()] == ["Gulf", "MSA"]
    assert [t.get_text() for t in gain_ax.get_xticklabels()] == ["Egyptian"]
    np.testing.assert_allclose(_errorbar_extents(gain_ax), [(18.0, 23.0), (1.0, 6.0)])
    np.testing.assert_allclose(_errorbar_extents(forgetting_ax), [(15, 20), (13, 18), (0, 5), (-3, 2)])
    assert "Gain" in gain_ax.get_title() and "Forgetting" in forgetting_ax.get_title()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["full", "lora"]
    assert "WER" in fig.get_suptitle()


def test_fig_gain_forgetting_several_train_sets_and_errors():
    table = _gain_forgetting_table()
    gulf = table.assign(train_set="gulf", kind=np.where(table["test_set"] == "gulf", "gain", "forgetting"))
    fig = plots.fig_gain_forgetting(pd.concat([table, gulf], ignore_index=True))
    gain_ax, forgetting_ax = fig.axes
    assert [t.get_text() for t in gain_ax.get_xticklabels()] == ["Egyptian", "Gulf"]
    labels = [t.get_text() for t in forgetting_ax.get_xticklabels()]
    assert labels == ["Egyptian \u2192 Gulf", "Egyptian \u2192 MSA", "Gulf \u2192 Egyptian", "Gulf \u2192 MSA"]
    one = plots.fig_gain_forgetting(table[table["method"] == "full"].drop(columns="method"))  # no hue column
    assert len(one.axes[1].patches) == 2
    with pytest.raises(ValueError, match="filter"):
        plots.fig_gain_forgetting(pd.concat([table, table]))
    with pytest.raises(ValueError, match="kind"):
        plots.fig_gain_forgetting(table.drop(columns="kind"))


def test_fig_gain_forgetting_a_pooled_model_gains_on_each_of_its_dialects():
    """The pooled set ``all`` gains on every dialect it holds: one gain bar per (all, dialect), not five on one."""
    rows = [{"group": g, "metric": "wer", "train_set": t, "test_set": d, "kind": k, "value": v, "low": v - 1,
             "high": v + 1}
            for g in ("lora | stage=pooled", "lora | stage=dialect")
            for t, d, k, v in (("all", "egyptian", "gain", 4.0), ("all", "gulf", "gain", 6.0),
                               ("egyptian", "egyptian", "gain", 8.0), ("egyptian", "gulf", "forgetting", 2.0))
            if (t == "all") == g.endswith("pooled")]
    fig = plots.fig_gain_forgetting(pd.DataFrame(rows), hue="group")
    gain_ax, forgetting_ax = fig.axes
    assert [t.get_text() for t in gain_ax.get_xticklabels()] == [
        "Egyptian", "Dialect-pooled \u2192 Egyptian", "Dialect-pooled \u2192 Gulf"]
    assert sorted(b.get_height() for b in gain_ax.patches) == [4.0, 6.0, 8.0]
    assert [t.get_text() for t in forgetting_ax.get_xticklabels()] == ["Egyptian \u2192 Gulf"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["lora | stage=pooled", "lora | stage=dialect"]


def test_fig_gain_forgetting_from_stats_output():
    """The figure takes stats.gain_forgetting_ci output as it is (no method column)."""
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 10, 80)
    rows = [pd.DataFrame({"train_set": t, "test_set": d, "utt_index": np.arange(80),
                          "word_errors": rng.binomial(lengths, p), "ref_words": lengths})
            for t, d, p in ((stats.START, "amdo", 0.6), (stats.START, "kham", 0.6), ("amdo", "amdo", 0.4),
                            ("amdo", "kham", 0.8))]
    table = stats.gain_forgetting_ci(pd.concat(rows), n_boot=300)
    fig = plots.fig_gain_forgetting(table)
    heights = [b.get_height() for ax in fig.axes for b in ax.patches]
    np.testing.assert_allclose(heights, table["value"])


def test_fig_rates_bars_points_and_cis():
    summary = pd.DataFrame({"method": ["full", "full", "lora", "lora"], "test_set": ["gulf", "egyptian"] * 2,
                            "wer": [60.0, 40.0, 55.0, 50.0], "wer_low": [55.0, 35.0, 50.0, 45.0],
                            "wer_high": [66.0, 44.0, 60.0, 56.0], "cer": [30.0, 20.0, 25.0, 22.0],
                            "cer_low": [28.0, 18.0, 23.0, 20.0], "cer_high": [33.0, 21.0, 27.0, 24.0]})
    per_run = pd.concat([summary.assign(seed=s, wer=summary["wer"] + d) for s, d in ((1, -1.0), (2, 1.0))])
    fig = plots.fig_rates(summary, per_run=per_run)
    wer_ax, cer_ax = fig.axes
    assert [t.get_text() for t in wer_ax.get_xticklabels()] == ["Egyptian", "Gulf"]  # registry order
    assert [b.get_height() for b in wer_ax.patches] == [40.0, 60.0, 50.0, 55.0]
    np.testing.assert_allclose(_errorbar_extents(wer_ax), [(35, 44), (55, 66), (45, 56), (50, 60)])
    points = np.concatenate([c.get_offsets()[:, 1] for c in wer_ax.collections
                             if isinstance(c, matplotlib.collections.PathCollection)])
    assert sorted(points) == sorted(per_run["wer"])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["full", "lora"]
    with pytest.raises(ValueError, match="filter"):
        plots.fig_rates(pd.concat([summary, summary]))


def test_fig_method_comparison():
    table = pd.DataFrame({"test_set": ["msa", "egyptian"] * 2, "metric": ["wer", "wer", "cer", "cer"],
                          "a": "full", "b": "lora", "delta": [1.0, -2.0, 0.5, -0.5], "low": [0.0, -3.0, 0.1, -1.0],
                          "high": [2.0, -1.0, 0.9, 0.0], "p_holm": [0.04, 0.5, 1.0, 0.2],
                          "hedges_g": [1.2, np.nan, 0.3, -0.4]})
    fig = plots.fig_method_comparison(table)
    wer_ax = fig.axes[0]
    assert [t.get_text() for t in wer_ax.get_yticklabels()] == ["Egyptian", "MSA"]
    texts = [t.get_text() for t in wer_ax.texts]
    assert texts == ["Holm p = 0.5, g = n/a", "Holm p = 0.04, g = 1.20"]
    assert "b − a" in wer_ax.get_xlabel() and fig.get_suptitle().startswith("b = lora vs a = full")
    xs = np.asarray(wer_ax.lines[0].get_xdata(), dtype=float)
    np.testing.assert_allclose(xs, [-2.0, 1.0])


def test_fig_method_comparison_over_seeds_with_the_utterance_level_beside_and_the_tost_verdict():
    table = pd.DataFrame({"test_set": ["egyptian", "gulf", "msa"], "metric": "wer", "a": "full", "b": "lora",
                          "context": "stage=train", "delta": [0.2, 3.0, 1.0], "low": [-0.5, 1.0, np.nan],
                          "high": [0.9, 5.0, np.nan], "p_holm": [0.6, 0.01, np.nan], "hedges_g": [0.1, 2.0, np.nan],
                          "utt_low": [0.0, 2.5, 0.4], "utt_high": [0.4, 3.5, 1.6], "margin": 1.0,
                          "equivalent": [True, False, None]})
    ax = plots.fig_method_comparison(table).axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["Holm p = 0.6, g = 0.10\nTOST ±1: equivalent", "Holm p = 0.01, g = 2.00\nTOST ±1: not shown",
                     "Holm p = n/a, g = n/a\nTOST ±1: n/a"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Egyptian", "Gulf", "MSA"]  # one context: not repeated
    assert sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":") == [-1.0, 1.0]
    whiskers = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    utt, seeds = whiskers[0].get_segments(), whiskers[1].get_segments()  # drawn first: the utterance-level one
    np.testing.assert_allclose([s[:, 0] for s in utt], [[0.0, 0.4], [2.5, 3.5], [0.4, 1.6]])
    np.testing.assert_allclose([s[:, 0] for s in seeds], [[-0.5, 0.9], [1.0, 5.0], [1.0, 1.0]])  # none: one seed


def test_fig_rates_names_each_system_by_its_label():
    """Two systems of one method (here a training run and an evaluation of its model) are two bars, each named by
    the reader's system label, never merged under their method."""
    summary = pd.DataFrame({"system": ["kind=training", "kind=evaluation"], "variant": "lora", "test_set": "egyptian",
                            "wer": [50.0, 50.0], "wer_low": [45.0, 45.0], "wer_high": [55.0, 55.0]})
    fig = plots.fig_rates(summary, metrics=("wer",))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["kind=training", "kind=evaluation"]
    assert len(fig.axes[0].patches) == 2


def test_fig_efficiency():
    eff = pd.DataFrame({"method": ["full", "full", "lora", "lora"], "trainable_parameters": [1e6, 1e6, 1e4, 1e4],
                        "peak_memory_bytes": [2**30, 2**30, 2**29, 2**29], "peak_memory_kind": "peak_rss",
                        "train_wall_time_s": [10.0, 12.0, 8.0, 8.0], "train_samples_per_second": [4.0, 5.0, 6.0, 6.0],
                        "weights_bytes": [4e6, 4e6, 4e4, 4e4]})
    fig = plots.fig_efficiency(eff)
    assert len(fig.axes) == 5
    memory = fig.axes[1]
    assert sorted(round(b.get_width()) for b in memory.patches) == [512, 1024]  # MiB, mean over runs
    assert "peak_rss" in memory.get_xlabel()
    assert fig.axes[0].get_xscale() == "log"
    assert sorted(b.get_width() for b in fig.axes[2].patches) == [8.0, 11.0]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["full", "lora"]  # the systems, on the left


def test_require_columns_names_what_is_missing():
    frame = pd.DataFrame({"wer": [1.0]})
    plots.require_columns(frame, ["wer"], "x")
    with pytest.raises(ValueError, match=r"x needs column\(s\) \['cer'\]; got \['wer'\]"):
        plots.require_columns(frame, ["wer", "cer"], "x")
    with pytest.raises(ValueError, match="x: no rows"):
        plots.require_columns(frame.iloc[:0], ["wer"], "x")


def test_fig_noise_curve_draws_a_line_per_system_and_noise_and_the_clean_score_dashed():
    from arabicpeft.plots import fig_noise_curve

    table = pd.DataFrame({"system": ["a"] * 4, "noise": ["clean", "white", "white", "white"],
                          "snr_db": [np.inf, 20.0, 10.0, 0.0], "wer": [10.0, 12.0, 20.0, 60.0],
                          "cer": [5.0, 6.0, 9.0, 30.0]})
    fig = fig_noise_curve(table)
    clean, white = fig.axes[0].lines
    assert list(clean.get_ydata()) == [10.0, 10.0] and clean.get_linestyle() == "--"
    assert list(white.get_xdata()) == [0.0, 10.0, 20.0] and list(white.get_ydata()) == [60.0, 20.0, 12.0]
    assert white.get_label() == "a: white noise" and fig.axes[1].lines[1].get_ydata()[0] == 30.0
