"""The paper's four figures (Özyılmaz et al. 2025, Figs. 1–4), drawn from its published per-seed results
(:func:`arabicpeft.paper.figure_data`) or from a study's own runs (:func:`own_figure_data`).

Each figure function takes tidy rows, aggregates them itself (mean ± SD over seeds, ddof = 1) and returns a
:class:`matplotlib.figure.Figure`, with the conventions of :mod:`arabicpeft.plots`.

Public: :func:`fig1_msa_trainsize`, :func:`fig2_pretraining`, :func:`fig3_pooled_vs_specific`, :func:`fig4_heatmap`,
:func:`msa_trainsize_frame`, :func:`own_figure_data`, :func:`draw_figures`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .dialects import MSA, POOLED
from .paper import CONDITIONS, WITH_PRETRAINING
from .plots import (CONDITION_LABELS, METRIC_LABELS, PALETTE, display_name, heatmap_labels, ordered, require_columns,
                    require_unique)
from .analysis import scored_rows
from .results import START, TRAINED

_ROLE_LABELS = {"pooled": "Dialect-pooled", "specific": "Dialect-specific"}
_HEATMAP_CMAP = "viridis_r"  # as in the paper: dark = low error


def _cell_stats(df: pd.DataFrame, keys, metric: str) -> pd.DataFrame:
    """Mean and SD (ddof = 1; NaN for one seed) over seeds of ``metric`` per ``keys`` cell."""
    return df.groupby(list(keys), sort=False)[metric].agg(mean="mean", sd="std", k="size").reset_index()


def fig1_msa_trainsize(
    df: pd.DataFrame, metrics=("wer", "cer"), curve_label: str = "whisper-small fine-tuned on MSA"
) -> Figure:
    """Fig. 1: error rate on the MSA test set vs the fraction of MSA training data, with zero-shot sizes.

    ``df``: per-seed rows with columns model, seed and the metrics (as
    ``arabicpeft.paper.figure_data()["msa_trainsize"]``); ``msa_fraction`` (0–1) marks the fine-tuned points (NaN: a zero-shot reference model); without that
    column it is parsed from ``model``. The curve is mean ± SD over seeds at each fraction; each zero-shot
    model is a dashed horizontal line (its mean, named in the legend). One axes per metric.
    """
    require_columns(df, ["model", "seed", *metrics], "fig1_msa_trainsize")
    df = df.copy()
    if "msa_fraction" not in df.columns:
        df["msa_fraction"] = pd.to_numeric(df["model"], errors="coerce")
    curve = df[df["msa_fraction"].notna()]
    refs = df[df["msa_fraction"].isna()]
    fig = Figure(figsize=(6 * len(metrics), 4.5), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colors = ["0.15"] + sns.color_palette(PALETTE, max(1, refs["model"].nunique()))
    for ax, metric in zip(axes, metrics):
        points = _cell_stats(curve, ["msa_fraction"], metric).sort_values("msa_fraction")
        ax.errorbar(
            100 * points["msa_fraction"], points["mean"], yerr=points["sd"].fillna(0), marker="o", capsize=4,
            color=colors[0], label=f"{curve_label} (mean ± SD)",
        )
        ref_stats = _cell_stats(refs, ["model"], metric).sort_values("mean", ascending=False)
        for color, (_, ref) in zip(colors[1:], ref_stats.iterrows()):
            label = f"{ref['model']} zero-shot ({ref['mean']:.2f})"
            ax.axhline(ref["mean"], linestyle="--", linewidth=1.2, color=color, label=label)
        # axhline does not pad the y-range: set it from every value drawn so no line sits on the frame.
        drawn = np.concatenate([points["mean"] - points["sd"].fillna(0), points["mean"] + points["sd"].fillna(0),
                                ref_stats["mean"]])
        pad = 0.06 * (drawn.max() - drawn.min() or 1.0)
        ax.set_ylim(drawn.min() - pad, drawn.max() + pad)
        ax.set_xlabel("MSA training data used (%; 0 = before fine-tuning)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_xticks(100 * points["msa_fraction"].to_numpy())
        ax.grid(axis="y", alpha=0.4)
        ax.legend(loc="center right", fontsize=8)
    fig.suptitle("MSA train size vs zero-shot Whisper sizes (MSA test set)", fontweight="bold")
    return fig


def fig2_pretraining(df: pd.DataFrame, metric: str = "wer") -> Figure:
    """Fig. 2: with vs without MSA pre-training, per test set.

    ``df``: per-seed rows with condition, train_set, test_set, seed and ``metric`` (one method). Each box shows
    the train-set models' seed-means on one test set for one condition (the pairs the paper's per-test-set
    Wilcoxon test compares): box = quartiles, whiskers = min–max, solid line = median, dotted = mean; the
    points are those models.
    """
    keys = ["condition", "train_set", "test_set", "seed"]
    require_columns(df, [*keys, metric], "fig2_pretraining")
    require_unique(df, keys, "fig2_pretraining")
    means = df.groupby(keys[:3], sort=False)[metric].mean().reset_index()
    tests = ordered(means["test_set"])
    conditions = [c for c in CONDITIONS if c in set(means["condition"])]
    conditions += sorted(set(means["condition"]) - set(conditions))
    colors = sns.color_palette(PALETTE, len(conditions))
    width = 0.8 / len(conditions)
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.subplots()
    handles = []
    # Plain matplotlib boxes (not seaborn.boxplot, which passes the `vert` argument matplotlib 3.11 deprecates).
    for j, (condition, color) in enumerate(zip(conditions, colors)):
        offset = (j - (len(conditions) - 1) / 2) * width
        mine = means[means["condition"] == condition]
        values = [mine.loc[mine["test_set"] == t, metric].to_numpy() for t in tests]
        positions = np.arange(len(tests)) + offset
        ax.boxplot(
            values, positions=positions, widths=0.85 * width, whis=(0, 100), patch_artist=True,
            showmeans=True, meanline=True, showfliers=False, boxprops={"facecolor": color},
            medianprops={"color": "0.15"}, meanprops={"color": "0.15", "linestyle": ":"},
        )
        for x, v in zip(positions, values):  # the models themselves, spread evenly across the box
            spread = np.linspace(-0.25, 0.25, len(v)) * width if len(v) > 1 else np.zeros(len(v))
            ax.scatter(x + spread, v, s=10, color="0.2", zorder=3)
        handles.append(Patch(facecolor=color, edgecolor="0.2", label=CONDITION_LABELS.get(condition, condition)))
    ax.set_xticks(np.arange(len(tests)), [display_name(t) for t in tests])
    ax.set_xlabel("Test set")
    ax.legend(handles=handles, title="Pre-training", fontsize=8, loc="lower left")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(axis="y", alpha=0.4)
    ax.set_title("Models with and without MSA pre-training, per test set (box: train-set models)", fontweight="bold")
    return fig


def fig3_pooled_vs_specific(df: pd.DataFrame, metrics=("wer", "cer")) -> Figure:
    """Fig. 3: the dialect-pooled model vs each test set's dialect-specific model, mean ± SD over seeds.

    ``df``: per-seed rows with train_set, test_set, seed and the metrics, of one method and condition (as
    ``arabicpeft.paper.figure_data()["pooled_vs_specific"]``): the rows of the pooled model (train_set ``all``)
    are "pooled", those of each test set's own model (train_set == test_set) "specific"; other rows are left
    out. One axes per metric; its title gives the mean absolute pooled − specific difference over the test sets.
    Raises ValueError when a column is missing or a (model, test set, seed) has several rows.
    """
    require_columns(df, ["train_set", "test_set", "seed", *metrics], "fig3_pooled_vs_specific")
    role = np.select([df["train_set"] == POOLED, df["train_set"] == df["test_set"]], ["pooled", "specific"], "")
    df = df.assign(role=role)[role != ""]
    require_unique(df, ["role", "test_set", "seed"], "fig3_pooled_vs_specific")
    data = df.assign(**{"Test set": df["test_set"].map(display_name), "Model": df["role"].map(_ROLE_LABELS)})
    order = [display_name(t) for t in ordered(df["test_set"])]
    fig = Figure(figsize=(9, 3.6 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        sns.barplot(
            data=data, x="Test set", y=metric, hue="Model", order=order, hue_order=list(_ROLE_LABELS.values()),
            errorbar="sd", capsize=0.15, err_kws={"linewidth": 1}, palette=PALETTE, ax=ax,
        )
        cell = data.groupby(["test_set", "role"])[metric].mean().unstack("role")
        if {"pooled", "specific"} <= set(cell.columns):  # mean over the test sets that have both models
            mad = (cell["pooled"] - cell["specific"]).abs().mean()
            ax.set_title(f"{metric.upper()}: mean |pooled − specific| = {mad:.2f} points", fontsize=10)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.4)
        ax.set_axisbelow(True)
        ax.legend(title=None, loc="upper left", fontsize=8)
    for ax in axes[1:]:
        ax.get_legend().remove()
    fig.suptitle("Dialect-pooled vs dialect-specific models", fontweight="bold")
    return fig


def fig4_heatmap(
    df: pd.DataFrame,
    condition: str | None = WITH_PRETRAINING,
    metric: str = "wer",
    drop_train_sets=(POOLED,),
    decimals: int = 2,
) -> Figure:
    """Fig. 4: train set x test set heat-map of mean error rate, annotated "mean (± SD)" over seeds.

    ``df``: per-seed rows with train_set, test_set, seed, ``metric`` and, unless ``condition`` is None,
    condition (only rows of ``condition`` are drawn). The pooled ``all`` row is dropped as in the paper
    (``drop_train_sets``). Colour map viridis_r; annotations use :func:`heatmap_labels`.
    """
    keys = ["train_set", "test_set", "seed"]
    require_columns(df, [*keys, metric], "fig4_heatmap")
    if condition is not None:
        require_columns(df, ["condition"], "fig4_heatmap")
        df = df[df["condition"] == condition]
        if df.empty:
            raise ValueError(f"fig4_heatmap: no rows with condition {condition!r}.")
    df = df[~df["train_set"].isin(drop_train_sets)]
    require_columns(df, keys, "fig4_heatmap")
    require_unique(df, keys, "fig4_heatmap")
    cells = _cell_stats(df, ["train_set", "test_set"], metric)
    rows, cols = ordered(cells["train_set"]), ordered(cells["test_set"])
    mean = cells.pivot(index="train_set", columns="test_set", values="mean").reindex(index=rows, columns=cols)
    sd = cells.pivot(index="train_set", columns="test_set", values="sd").reindex(index=rows, columns=cols)
    fig = Figure(figsize=(1.35 * len(cols) + 2.5, 1.0 * len(rows) + 1.8), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(
        mean.rename(index=display_name, columns=display_name), annot=heatmap_labels(mean, sd, decimals), fmt="",
        cmap=_HEATMAP_CMAP, cbar_kws={"label": METRIC_LABELS.get(metric, metric)}, annot_kws={"fontsize": 9}, ax=ax,
    )
    ax.set_xlabel("Tested on")
    ax.set_ylabel("Fine-tuned on")
    ax.tick_params(axis="y", labelrotation=0)
    ax.tick_params(axis="x", labelrotation=30)
    title = f"{metric.upper()} (%) per train and test set"
    if condition is not None:
        title += f", {CONDITION_LABELS.get(condition, condition)}"
    ax.set_title(title, fontweight="bold")
    return fig


# The inputs of the four figures from a study's own runs (Runs.scores() rows) ------------------------------


def msa_trainsize_frame(frame: pd.DataFrame, msa: str = MSA) -> pd.DataFrame:
    """Input of :func:`fig1_msa_trainsize` from own results (a :func:`designs.paper` study).

    ``frame``: ``load_runs(root).scores()`` rows of one method (filter on ``variant`` first). The runs trained on
    ``msa`` and scored on the ``msa`` test set become the curve, at msa_fraction = n_train / the largest
    n_train among them; their starting model's scores on the msa test set (scored "start") are the 0% point,
    as in the paper (zero-shot whisper-small at 0%). Returns columns model, seed, wer, cer, system,
    msa_fraction.
    """
    for column in ("train_set", "test_set", "seed", "wer", "cer", "n_train", "scored"):
        if column not in frame.columns:
            raise ValueError(f"msa_trainsize_frame needs column {column!r}; pass load_runs(root).scores().")
    trained = scored_rows(frame, TRAINED)
    trained = trained[(trained["train_set"] == msa) & (trained["test_set"] == msa)]
    if trained.empty:
        raise ValueError(f"No runs trained on {msa!r} and scored on it.")
    fraction = trained["n_train"].astype(float) / trained["n_train"].astype(float).max()
    curve = trained.assign(msa_fraction=fraction, model=fraction.map(lambda f: f"{f:.2f}"), system="fine-tuned")
    start = scored_rows(frame, START)
    start = start[(start["test_set"] == msa) & start["path"].isin(set(trained["path"]))]
    start = start.assign(msa_fraction=0.0, model="0.00", system="before fine-tuning")
    columns = ["model", "seed", "wer", "cer", "system", "msa_fraction"]
    return pd.concat([curve[columns], start[columns]], ignore_index=True)


def own_figure_data(frame: pd.DataFrame, msa: str = MSA) -> dict[str, pd.DataFrame]:
    """The inputs of the paper's figures from own results of one method (``Runs.scores()`` rows of a
    :func:`designs.paper` study, filtered on ``variant``), in the layout of :func:`paper.figure_data`:
    "msa_trainsize" (:func:`msa_trainsize_frame`), "dialects" (the trained dialect and pooled models, without
    the MSA train-size runs: the paper's 6 x 6 matrices) and "pooled_vs_specific" (the models with MSA
    pre-training, and for the MSA test set the model trained on the most MSA data, largest n_train)."""
    trained = scored_rows(frame, TRAINED)
    dialects = trained[trained["train_set"] != msa].reset_index(drop=True)
    full_msa = trained[(trained["train_set"] == msa)]
    full_msa = full_msa[full_msa["n_train"] == full_msa["n_train"].max()]
    with_ = dialects[dialects["condition"] == WITH_PRETRAINING]
    return {"msa_trainsize": msa_trainsize_frame(frame, msa=msa), "dialects": dialects,
            "pooled_vs_specific": pd.concat([with_, full_msa], ignore_index=True)}


def draw_figures(frames: dict, metrics, curve_label: str, title: str | None = None,
                 metric_in_name: bool = True) -> dict:
    """The paper's four figures from :func:`paper.figure_data`-shaped ``frames``: {file stem: figure}, Fig. 1,
    then Fig. 2 once per metric of ``metrics`` (stem "fig2_pretraining_<metric>", or "fig2_pretraining" without
    ``metric_in_name``), Fig. 3, and Fig. 4 (with MSA pre-training) per metric. ``title``: the suptitle of
    Figs. 2–4 (Fig. 1 names its curve ``curve_label``)."""
    def named(stem, metric):
        return f"{stem}_{metric}" if metric_in_name else stem

    figures = {"fig1_msa_trainsize": fig1_msa_trainsize(frames["msa_trainsize"], curve_label=curve_label)}
    figures.update({named("fig2_pretraining", m): fig2_pretraining(frames["dialects"], metric=m)
                    for m in metrics})
    figures["fig3_pooled_vs_specific"] = fig3_pooled_vs_specific(frames["pooled_vs_specific"])
    figures.update({named("fig4_heatmap", m): fig4_heatmap(frames["dialects"], condition=WITH_PRETRAINING,
                                                                 metric=m) for m in metrics})
    for stem, fig in figures.items():
        if title and stem != "fig1_msa_trainsize":
            fig.suptitle(title)
    return figures
