"""The figures of a study's own analysis (rates, method comparison, efficiency, gain and forgetting), and the
conventions every figure of the project shares (:mod:`arabicpeft.paper_plots` draws the paper's four): display
names and order of the test sets, labels, palette, and :func:`require_columns`, the one check of a frame's
columns, for these figures and the tables of :mod:`arabicpeft.analysis` and :mod:`arabicpeft.tables`.

Each figure function takes tidy rows (a table of :mod:`arabicpeft.analysis`, or ``load_runs(root).runs``) and
returns a :class:`matplotlib.figure.Figure`. Figures are built without pyplot, so they work under any backend (Agg
included), keep no global state, and display in notebooks as the returned object;
:class:`arabicpeft.report.StudyReport` writes them (PNG + PDF).

Public: :data:`CONDITION_LABELS`, :data:`METRIC_LABELS`, :data:`PALETTE`, :func:`require_columns`,
:func:`require_unique`, :func:`display_name`, :func:`ordered`, :func:`heatmap_labels`, :func:`fig_rates`,
:func:`fig_method_comparison`, :func:`fig_efficiency`, :func:`fig_gain_forgetting`, :func:`fig_noise_curve`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from . import dialects
from .paper import WITH_PRETRAINING, WITHOUT_PRETRAINING

CONDITION_LABELS = {WITHOUT_PRETRAINING: "without MSA pre-training", WITH_PRETRAINING: "with MSA pre-training"}
METRIC_LABELS = {"wer": "WER (%)", "cer": "CER (%)"}
PALETTE = "Set2"  # the authors' colour map


def require_columns(df: pd.DataFrame, columns, what: str) -> None:
    """A clear error when ``df`` lacks ``columns`` or has no rows (``what``: the caller, for the message).

    Raises ValueError naming the missing columns and those ``df`` has, or saying it has no rows."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; got {list(df.columns)}.")
    if df.empty:
        raise ValueError(f"{what}: no rows.")


def require_unique(df: pd.DataFrame, keys, what: str) -> None:
    if df.duplicated(list(keys)).any():
        raise ValueError(
            f"{what}: several rows per {tuple(keys)}; filter the frame to one method/condition/scheme first."
        )


def display_name(name) -> str:
    """Display name of a dialect/test set ("egyptian" -> "Egyptian"), the name itself if unknown."""
    try:
        return dialects.variety(name).display
    except ValueError:
        return str(name)


def ordered(names) -> list:
    """Names in registry order (dialects, MSA, pooled), unknown names after them, alphabetically."""
    rank = {n: i for i, n in enumerate(dialects.NAMES)}
    return sorted(set(names), key=lambda n: (rank.get(n, len(rank)), str(n)))


def heatmap_labels(mean: pd.DataFrame, sd: pd.DataFrame, decimals: int = 2) -> np.ndarray:
    """Cell annotations "mean\\n(± sd)" with ``decimals`` decimals; just the mean where the SD is NaN."""
    labels = np.empty(mean.shape, dtype=object)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            m, s = mean.iat[i, j], sd.iat[i, j]
            if pd.isna(m):
                labels[i, j] = ""
            elif pd.isna(s):
                labels[i, j] = f"{m:.{decimals}f}"
            else:
                labels[i, j] = f"{m:.{decimals}f}\n(± {s:.{decimals}f})"
    return labels


# Figures of the project's own analysis (arabicpeft.analysis tables) ---------------------------------------


def _context_labels(df: pd.DataFrame) -> pd.Series:
    """Per row: the reader's ``context`` label (every field but the method, train set and seed that differs
    between systems; :func:`arabicpeft.results.load_runs`) and "trained on X", each only when it varies in ``df``
    ("" when none does). Frames without a ``context`` column name the study stage and condition instead."""
    def varies(column):
        return column in df.columns and df[column].nunique() > 1

    parts = pd.Series([[] for _ in range(len(df))], index=df.index)
    if varies("context"):
        parts = parts + df["context"].map(lambda c: [str(c)])
    if "context" not in df.columns and varies("stage"):
        parts = parts + df["stage"].map(lambda s: [f"stage {s}"])
    if varies("train_set"):
        parts = parts + df["train_set"].map(lambda t: [f"trained on {display_name(t)}"])
    if "context" not in df.columns and varies("condition"):
        parts = parts + df["condition"].map(lambda c: [CONDITION_LABELS.get(c, c)])
    return parts.map(", ".join)


def _system_labels(df: pd.DataFrame) -> pd.Series:
    """One legend label per row: the reader's ``system`` label (every field that differs between systems:
    :func:`arabicpeft.results.load_runs`), so that two systems never share a label; for frames without one,
    the method variant (else the method) plus stage, train set and condition where they vary."""
    if "system" in df.columns:
        return df["system"].astype(str)
    context = _context_labels(df)
    method = df["variant"] if "variant" in df.columns else df["method"]
    return method.astype(str) + context.map(lambda c: f" ({c})" if c else "")


def _palette(n: int) -> list:
    """``n`` distinct colours: the authors' Set2 while it has enough (8), else evenly spaced hues."""
    return sns.color_palette(PALETTE if n <= 8 else "husl", n)


def _legend_below(fig, handles, labels, n: int) -> None:
    """One legend for the whole figure under its axes, one entry per line (system labels are long)."""
    fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncols=1 if n > 4 else n, frameon=False)


def _method_column(df: pd.DataFrame) -> str:
    return "variant" if "variant" in df.columns else "method"


def _grouped_bars(ax, table: pd.DataFrame, x: str, hue: str, value: str, low: str, high: str, order, hue_order,
                  colors, x_labels=None) -> None:
    """Bars of ``value`` at each ``x`` (in ``order``), one per ``hue`` level, with [low, high] error bars."""
    width = 0.8 / len(hue_order)
    for j, (level, color) in enumerate(zip(hue_order, colors)):
        mine = table[table[hue] == level].set_index(x).reindex(order)
        present = mine[value].notna().to_numpy()
        positions = (np.arange(len(order)) + (j - (len(hue_order) - 1) / 2) * width)[present]
        mine = mine[present]
        ax.bar(positions, mine[value], width=0.9 * width, color=color, edgecolor="0.2", label=str(level))
        yerr = np.vstack([mine[value] - mine[low], mine[high] - mine[value]])
        ax.errorbar(positions, mine[value], yerr=np.nan_to_num(yerr), fmt="none", ecolor="0.15", capsize=3,
                    linewidth=1)
    ax.set_xticks(np.arange(len(order)), x_labels if x_labels is not None else [str(o) for o in order])


def fig_rates(summary: pd.DataFrame, metrics=("wer", "cer"), per_run: pd.DataFrame | None = None) -> Figure:
    """WER/CER per test set and system: mean over seeds with its utterance bootstrap CI.

    ``summary``: the per-system rates table of :meth:`arabicpeft.report.StudyReport.rates` (columns system or
    method, test_set, ``{metric}``, ``{metric}_low``, ``{metric}_high``; one bar per system, named in the legend
    under the axes by :func:`_system_labels`). ``per_run`` (optional, the per-run table it writes as
    ``rates_per_run``): each seed's rate drawn as a point on its bar. One axes per metric.
    """
    require_columns(summary, [_method_column(summary), "test_set", *[f"{m}{s}" for m in metrics for s in ("", "_low", "_high")]],
             "fig_rates")
    data = summary.assign(system=_system_labels(summary))
    require_unique(data, ["system", "test_set"], "fig_rates")
    order, systems = ordered(data["test_set"]), list(dict.fromkeys(data["system"]))
    colors = _palette(len(systems))
    width = max(6, 1.6 * len(order) * len(metrics) + 2, 0.065 * max(map(len, systems)))
    fig = Figure(figsize=(width, 4.2 + (0.2 * len(systems) if len(systems) > 4 else 0.3)), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        _grouped_bars(ax, data, "test_set", "system", metric, f"{metric}_low", f"{metric}_high", order, systems,
                      colors, [display_name(t) for t in order])
        if per_run is not None:
            runs = per_run.assign(system=_system_labels(per_run))
            width = 0.8 / len(systems)
            for j, system in enumerate(systems):
                mine = runs[runs["system"] == system]
                x = np.array([order.index(t) for t in mine["test_set"]]) + (j - (len(systems) - 1) / 2) * width
                ax.scatter(x, mine[metric], s=12, color="0.1", zorder=3)
        ax.set_xlabel("Test set")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.4)
        ax.set_axisbelow(True)
    _legend_below(fig, *axes[0].get_legend_handles_labels(), len(systems))
    fig.suptitle("Error rate per test set: mean over seeds, 95% utterance-bootstrap CI" +
                 (" (points: seeds)" if per_run is not None else ""), fontweight="bold")
    return fig


def fig_method_comparison(comparison: pd.DataFrame) -> Figure:
    """Forest plot of method b − method a per test set, one axes per metric.

    ``comparison``: the table of :meth:`arabicpeft.report.StudyReport.comparison` (columns test_set, metric, a,
    b, delta, low, high, p_holm, hedges_g; optional utt_low, utt_high, margin, equivalent). Each row is a point at
    delta with its t-interval over seeds (thick; none with one seed per method) and, where given, the
    utterance-level interval conditional on the seeds (thin, grey); dotted lines at ± the equivalence margin. The
    text gives the Holm-adjusted p, Hedges' g and the TOST verdict. Positive: b has more errors than a. With
    several b variants (a methods study) each row names its variant.
    """
    require_columns(comparison, ["test_set", "metric", "a", "b", "delta", "low", "high", "p_holm", "hedges_g"],
             "fig_method_comparison")
    metrics = list(dict.fromkeys(comparison["metric"]))
    context = _context_labels(comparison)
    several = comparison["b"].nunique() > 1  # several variants against one baseline: a row for each
    data = comparison.assign(row=comparison["test_set"].map(display_name)
                             + context.map(lambda c: f"\n({c})" if c else "")
                             + (comparison["b"].map(lambda v: f"\n{v}") if several else ""))
    require_unique(data, ["metric", "row"], "fig_method_comparison")
    a, b = data["a"].iloc[0], ("each variant named in its row" if several else data["b"].iloc[0])
    rank = {t: i for i, t in enumerate(ordered(data["test_set"]))}
    rows = list(dict.fromkeys(data.sort_values("test_set", key=lambda s: s.map(rank), kind="stable")["row"]))
    fig = Figure(figsize=(6.5 * len(metrics), 1.2 + 0.7 * len(rows)), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    color = sns.color_palette(PALETTE, 1)[0]
    for ax, metric in zip(axes, metrics):
        mine = data[data["metric"] == metric].set_index("row").reindex(rows)
        y = np.arange(len(rows))
        if {"utt_low", "utt_high"} <= set(mine.columns):
            utt = np.vstack([mine["delta"] - mine["utt_low"], mine["utt_high"] - mine["delta"]])
            ax.errorbar(mine["delta"], y + 0.15, xerr=np.nan_to_num(utt), fmt="none", ecolor="0.6", capsize=2,
                        linewidth=1, label="utterances only (conditional on the seeds)")
        xerr = np.vstack([mine["delta"] - mine["low"], mine["high"] - mine["delta"]])
        ax.errorbar(mine["delta"], y, xerr=np.nan_to_num(xerr), fmt="o", color=color, ecolor="0.2", capsize=4,
                    linewidth=2, label="t-interval over seeds")
        ax.axvline(0.0, color="0.4", linewidth=1, linestyle="--")
        margin = mine["margin"].dropna() if "margin" in mine.columns else pd.Series(dtype=float)
        for m in margin.unique()[:1]:
            for x in (-m, m):
                ax.axvline(x, color="0.5", linewidth=1, linestyle=":")
        for yi, (_, r) in zip(y, mine.iterrows()):
            g = "n/a" if pd.isna(r["hedges_g"]) else f"{r['hedges_g']:.2f}"
            p = "n/a" if pd.isna(r["p_holm"]) else f"{r['p_holm']:.3g}"
            text = f"Holm p = {p}, g = {g}"
            if "equivalent" in r.index and "margin" in r.index:
                verdict = {True: "equivalent", False: "not shown"}.get(r["equivalent"], "n/a")
                text += f"\nTOST ±{r['margin']:g}: {verdict}"
            ax.annotate(text, (1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=8)
        ax.set_yticks(y, rows)
        ax.invert_yaxis()
        ax.set_xlabel(f"Δ{metric.upper()} = b − a (% points; > 0: b has more errors)")
        ax.grid(axis="x", alpha=0.4)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"b = {b} vs a = {a}: difference of seed means, 95% CI", fontweight="bold")
    return fig


_EFFICIENCY_PANELS = {  # load_runs(root).runs column: (axis label, scale, log axis)
    "trainable_parameters": ("Trainable parameters", 1.0, True),
    "peak_memory_bytes": ("Peak memory (MiB)", 1.0 / 2**20, False),
    "train_wall_time_s": ("Training wall time (s)", 1.0, False),
    "train_samples_per_second": ("Training samples / s", 1.0, False),
    "weights_bytes": ("Saved weights (MiB)", 1.0 / 2**20, True),
}


def fig_efficiency(eff: pd.DataFrame, panels=tuple(_EFFICIENCY_PANELS)) -> Figure:
    """The cost of each system: one panel per efficiency quantity, a horizontal bar per system (named on the left
    by :func:`_system_labels`) = mean over runs, whisker = SD, points = runs (seaborn). ``eff``:
    ``load_runs(root).runs``. The peak-memory panel names the kind of measurement (CUDA max allocated on GPU, the
    process's peak RSS on CPU)."""
    require_columns(eff, [_method_column(eff), *panels], "fig_efficiency")
    if "kind" in eff.columns:
        eff = eff[eff["kind"] != "evaluation"]  # evaluations have no training cost
    data = eff.assign(system=_system_labels(eff))
    systems = list(dict.fromkeys(data["system"]))
    width = 2.6 * len(panels) + 0.065 * max(map(len, systems))
    fig = Figure(figsize=(width, 1.2 + 0.35 * len(systems)), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, column in zip(axes, panels):
        label, scale, log = _EFFICIENCY_PANELS.get(column, (column, 1.0, False))
        values = data.assign(value=data[column].astype(float) * scale)
        sns.barplot(data=values, y="system", x="value", hue="system", order=systems, hue_order=systems,
                    palette=_palette(len(systems)), errorbar="sd", capsize=0.2, err_kws={"linewidth": 1},
                    legend=False, orient="h", ax=ax)
        sns.stripplot(data=values, y="system", x="value", order=systems, color="0.1", size=3, orient="h", ax=ax)
        if column == "peak_memory_bytes" and "peak_memory_kind" in data.columns:
            label += "\n[" + ", ".join(sorted(set(map(str, data["peak_memory_kind"].dropna())))) + "]"
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.4)
        ax.set_axisbelow(True)
    fig.suptitle("Efficiency: mean ± SD over runs (points: runs)", fontweight="bold")
    return fig


def fig_gain_forgetting(table: pd.DataFrame, hue: str = "method") -> Figure:
    """Gain on the training dialect and forgetting on the other test sets, with CIs (research notes §6).

    ``table``: the table of :meth:`arabicpeft.report.StudyReport.gain_forgetting` (or
    :func:`arabicpeft.stats.gain_forgetting_ci` output): columns train_set, test_set, kind ("gain" |
    "forgetting"), value, low, high and ``hue`` (one bar colour per level; a constant is used when the column is
    absent). Left axes: gain per train set, or per (train set, test set) for a pooled set that gains on each of
    its dialects ("All → Egyptian") (start − trained, > 0 = improved). Right axes: forgetting per (train set,
    other test set) (trained − start, > 0 = worse). Whiskers are the CIs. Raises ValueError when a ``hue`` level
    has two rows for one (train set, test set).
    """
    require_columns(table, ["train_set", "test_set", "kind", "value", "low", "high"], "fig_gain_forgetting")
    data = table.copy()
    if hue not in data.columns:
        data[hue] = "model"
    require_unique(data, [hue, "train_set", "test_set"], "fig_gain_forgetting")
    levels = list(dict.fromkeys(data[hue]))
    colors = _palette(len(levels))
    trains, tests = ordered(data["train_set"]), ordered(data["test_set"])
    several = len(trains) > 1

    def cells(rows, name):
        """``rows`` with their x cell (``name(train set, test set)``), and the cells in registry order."""
        present = set(zip(rows["train_set"], rows["test_set"]))
        order = list(dict.fromkeys(name(t, d) for t in trains for d in tests if (t, d) in present))
        return rows.assign(cell=[name(t, d) for t, d in zip(rows["train_set"], rows["test_set"])]), order

    gain, gain_cells = cells(data[data["kind"] == "gain"], lambda t, d: t if t == d else f"{t}\u2192{d}")
    forgetting, forgetting_cells = cells(data[data["kind"] == "forgetting"],
                                         lambda t, d: f"{t}\u2192{d}" if several else d)

    def labels(order):
        return [" \u2192 ".join(display_name(p) for p in c.split("\u2192")) for c in order]

    widths = [max(1, len(gain_cells)), max(1, len(forgetting_cells))]
    width = max(2.0 + 1.3 * sum(widths) * max(1, len(levels) / 2), 0.065 * max(len(str(v)) for v in levels))
    fig = Figure(figsize=(width, 4.2 + (0.2 * len(levels) if len(levels) > 4 else 0.3)), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=widths)
    panels = [
        (axes[0], gain, gain_cells, "Gain on the training dialect(s)\n(start − trained; > 0: improved)",
         "Training dialect (= test set)"),
        (axes[1], forgetting, forgetting_cells,
         "Forgetting on the other test sets\n(trained − start; > 0: got worse)",
         "Trained on \u2192 tested on" if several else "Test set"),
    ]
    for ax, rows, order, title, xlabel in panels:
        if len(order):
            _grouped_bars(ax, rows, "cell", hue, "value", "low", "high", order, levels, colors, labels(order))
        ax.axhline(0.0, color="0.3", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", alpha=0.4)
        ax.set_axisbelow(True)
    metric = str(data["metric"].iloc[0]).upper() if "metric" in data.columns else "Error rate"
    axes[0].set_ylabel(f"{metric} change (% points)")
    handles = [Patch(facecolor=c, edgecolor="0.2", label=str(level)) for level, c in zip(levels, colors)]
    _legend_below(fig, handles, [str(level) for level in levels], len(levels))
    fig.suptitle(f"Cross-dialect gain and forgetting relative to the starting model ({metric}, 95% CI)",
                 fontweight="bold")
    return fig


def fig_noise_curve(table: pd.DataFrame, metrics=("wer", "cer")) -> Figure:
    """Error rate against SNR, one axes per metric: a line per system and noise over the SNRs (dB, noisier to the
    left), the system's clean score as a dashed line in its colour. ``table``:
    :func:`arabicpeft.tables.noise_curve` (columns system, noise, snr_db, ``{metric}``; noise "clean" at
    snr_db inf)."""
    require_columns(table, ["system", "noise", "snr_db", *metrics], "fig_noise_curve")
    systems = list(dict.fromkeys(table["system"].astype(str)))
    colors = dict(zip(systems, _palette(len(systems))))
    markers = dict(zip(sorted(set(table["noise"]) - {"clean"}), "osD^v"))
    fig = Figure(figsize=(5.2 * len(metrics), 4.2 + 0.2 * len(systems)), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for (system, noise), part in table.groupby([table["system"].astype(str), "noise"], sort=False):
            if noise == "clean":
                ax.axhline(part[metric].iloc[0], color=colors[system], linestyle="--", linewidth=1,
                           label=f"{system}: clean")
                continue
            part = part.sort_values("snr_db")
            ax.plot(part["snr_db"], part[metric], marker=markers[noise], color=colors[system],
                    label=f"{system}: {noise} noise")
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.4)
    _legend_below(fig, *axes[0].get_legend_handles_labels(), len(axes[0].get_legend_handles_labels()[1]))
    fig.suptitle("Error rate against SNR (pooled over test sets, mean over seeds)", fontweight="bold")
    return fig


def fig_confusion(matrix: pd.DataFrame, title: str = "Dialect identifier") -> Figure:
    """A confusion matrix as a heatmap of counts: ``matrix`` indexed by the true dialect, columns the predicted one
    (:func:`arabicpeft.analysis.routing_confusion`); the title gives the accuracy (the diagonal's share)."""
    counts = matrix.to_numpy()
    accuracy = 100.0 * np.trace(counts) / counts.sum() if counts.sum() else float("nan")
    fig = Figure(figsize=(1.2 + 0.9 * len(matrix.columns), 1.0 + 0.8 * len(matrix.index)), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=[display_name(c) for c in matrix.columns],
                yticklabels=[display_name(i) for i in matrix.index])
    ax.set_xlabel("predicted dialect")
    ax.set_ylabel("true dialect")
    ax.set_title(f"{title}: accuracy {accuracy:.1f}% of {int(counts.sum())}", fontsize=10)
    return fig
