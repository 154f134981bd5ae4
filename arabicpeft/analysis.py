"""Analysis of the project's own runs: rates with CIs, PEFT vs full, efficiency, gain and forgetting.

The inputs are the tidy frames of :mod:`arabicpeft.results_table`: per-utterance edit counts
(:func:`~arabicpeft.results_table.utterances_frame`) and efficiency records
(:func:`~arabicpeft.results_table.efficiency_frame`). Every number comes from them through
:mod:`arabicpeft.stats`; the outputs are tidy tables for :func:`~arabicpeft.results_table.save_table` and the
figures of :mod:`arabicpeft.plots`.

A *system* is a config without its seed: one (condition, method, train_set). Its seeds are scored on the same
test utterances (the test sets do not depend on the seed), so per-utterance counts line up across seeds and
methods on utt_index, and the mean over seeds of corpus rates equals the corpus rate of the seed-averaged
counts (the reference lengths are shared). That makes the seed mean resamplable over utterances.
All rates and differences are in % (points).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .results import MIB
from .results_table import require_columns
from .study import MSA

METRICS = {"wer": ("word_errors", "ref_words"), "cer": ("char_errors", "ref_chars")}
SYSTEM_KEYS = ["condition", "method", "train_set"]  # a system: one config, all its seeds
BASELINE, PEFT = "full", "lora"  # the default comparison: rate(lora) − rate(full)
TWO_LEVEL, PAIRED = "two-level bootstrap (seeds, utterances)", "paired bootstrap (utterances)"


def project_path(path) -> Path:
    """``path`` as an absolute path: kept when absolute; a relative one is resolved against the project root.

    The project root is the nearest directory at or above the working directory that holds both
    ``pyproject.toml`` and the ``arabicpeft`` package, so ``"runs/study"`` means the same folder from the
    repository root and from a notebook kernel running in ``notebooks/``. Without such a directory (an
    installed package, e.g. on Kaggle) the working directory is the root.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "arabicpeft" / "__init__.py").is_file():
            return folder / path
    return cwd / path


def _metric_columns(metric: str) -> tuple[str, str]:
    try:
        return METRICS[metric]
    except KeyError as e:
        raise ValueError(f"Unknown metric {metric!r}; choose one of {', '.join(METRICS)}.") from e


def seed_matrix(rows: pd.DataFrame, metric: str = "wer") -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """One system's per-utterance counts on one test set, one row per seed, aligned on utt_index.

    ``rows``: the utterances_frame rows of one system on one test set. Returns (seeds, errors of shape
    (k, n), lengths of shape (n,), utt_index of shape (n,)). Raises when a seed appears twice (several runs
    per seed: filter first), when the seeds scored different utterances or when their reference lengths differ.
    """
    errors, lengths = _metric_columns(metric)
    try:
        e = rows.pivot(index="utt_index", columns="seed", values=errors)
        n = rows.pivot(index="utt_index", columns="seed", values=lengths)
    except ValueError as err:
        raise ValueError(
            "Several runs per (seed, utterance) in one system: filter the frame to one run per seed "
            f"(e.g. one model/precision/LoRA setting). {err}"
        ) from err
    if e.isna().any().any():
        raise ValueError("The seeds of one system were scored on different utterances (utt_index differs).")
    if not (n.nunique(axis=1) == 1).all():
        raise ValueError("Reference lengths differ between seeds on the same utterance: not the same test set.")
    return list(e.columns), e.to_numpy(dtype=float).T, n.iloc[:, 0].to_numpy(dtype=float), e.index.to_numpy()


def _seed_rates(errors: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return 100.0 * errors.sum(axis=1) / lengths.sum()


def rate_table(utts: pd.DataFrame, metrics=("wer", "cer"), n_boot: int = stats.N_RESAMPLES, seed: int = 0,
               level: float = stats.LEVEL) -> pd.DataFrame:
    """Corpus WER/CER of every run on every test set with an utterance bootstrap CI (stats.bootstrap_ci).

    ``utts``: utterances_frame rows (start rows are left out). Returns one row per (condition, method,
    train_set, seed, test_set) with n_utterances and, per metric, ``{metric}``, ``{metric}_low``,
    ``{metric}_high`` (%).
    """
    keys = SYSTEM_KEYS + ["seed", "test_set"]
    require_columns(utts, keys + ["utt_index"] + [c for m in metrics for c in _metric_columns(m)], "rate_table")
    rows = []
    for values, run in _stage(utts, "trained").groupby(keys, sort=False):
        if run["utt_index"].duplicated().any():
            raise ValueError(f"Several runs share {dict(zip(keys, values))} (they differ in model, precision or "
                             "LoRA setting): filter the frame to one run per seed first.")
        row = dict(zip(keys, values), n_utterances=len(run))
        for metric in metrics:
            errors, lengths = _metric_columns(metric)
            ci = stats.bootstrap_ci(run[errors], run[lengths], n_boot=n_boot, seed=seed, level=level)
            row.update({metric: ci["estimate"], f"{metric}_low": ci["low"], f"{metric}_high": ci["high"]})
        rows.append(row)
    return pd.DataFrame(rows)


def system_table(utts: pd.DataFrame, metrics=("wer", "cer"), n_boot: int = stats.N_RESAMPLES, seed: int = 0,
                 level: float = stats.LEVEL) -> pd.DataFrame:
    """Per system and test set: the mean over seeds of corpus WER/CER with two intervals.

    Returns one row per (condition, method, train_set, test_set) with k (seeds), n_utterances and, per
    metric: ``{metric}`` (mean over seeds, %), ``{metric}_sd`` (over seeds, ddof = 1), ``{metric}_low`` /
    ``{metric}_high`` (utterance bootstrap CI of the seed mean: the seed-averaged counts resampled, test-set
    sampling only) and ``{metric}_t_low`` / ``{metric}_t_high`` (t-interval over the k seeds, training
    variability only; NaN for one seed).
    """
    keys = SYSTEM_KEYS + ["test_set"]
    require_columns(utts, keys + ["seed", "utt_index"], "system_table")
    rows = []
    for values, system in _stage(utts, "trained").groupby(keys, sort=False):
        row = dict(zip(keys, values))
        for metric in metrics:
            seeds, errors, lengths, _ = seed_matrix(system, metric)
            ci = stats.bootstrap_ci(errors.mean(axis=0), lengths, n_boot=n_boot, seed=seed, level=level)
            over_seeds = stats.seed_summary(_seed_rates(errors, lengths), level=level)
            row.update(k=len(seeds), n_utterances=len(lengths))
            row.update({metric: over_seeds["mean"], f"{metric}_sd": over_seeds["sd"], f"{metric}_low": ci["low"],
                        f"{metric}_high": ci["high"], f"{metric}_t_low": over_seeds["low"],
                        f"{metric}_t_high": over_seeds["high"]})
        rows.append(row)
    out = pd.DataFrame(rows)
    first = keys + ["k", "n_utterances"]
    return out[first + [c for c in out.columns if c not in first]]


def _hedges_g_or_nan(b: np.ndarray, a: np.ndarray) -> float:
    try:
        return stats.hedges_g(b, a)
    except ValueError:  # too few seeds, or no spread at all in either group: undefined
        return float("nan")


def compare_methods(utts: pd.DataFrame, a: str = BASELINE, b: str = PEFT, metrics=("wer", "cer"),
                    n_boot: int = stats.N_RESAMPLES, seed: int = 0, level: float = stats.LEVEL) -> pd.DataFrame:
    """Method ``b`` vs method ``a`` (default LoRA vs full) per (condition, train_set, test_set) and metric.

    - delta = mean-over-seeds rate(b) − rate(a) (% points; > 0: b has more errors), with a percentile CI from
      :func:`stats.two_level_bootstrap` (seeds resampled per method, utterances shared) when either method has
      two or more seeds, else :func:`stats.paired_bootstrap` (column ci_method says which); p_b_worse is the
      fraction of replicates with delta > 0.
    - p: :func:`stats.paired_permutation_test` on the seed-averaged per-utterance counts (n_perm = n_boot);
      p_holm: Holm over every row of the table (one family: all test sets and metrics).
    - hedges_g: :func:`stats.hedges_g` of the per-seed corpus rates, b vs a (> 0: b has more errors); NaN
      when undefined (fewer than 3 runs in all, or no spread in either method).

    Returns columns condition, train_set, test_set, metric, a, b, k_a, k_b, n_utterances, rate_a, rate_b,
    delta, low, high, ci_method, p_b_worse, p, p_holm, hedges_g.
    """
    keys = ["condition", "train_set", "test_set"]
    require_columns(utts, keys + ["method", "seed", "utt_index"], "compare_methods")
    trained = _stage(utts, "trained")
    rows = []
    for values, cell in trained.groupby(keys, sort=False):
        by_method = dict(tuple(cell.groupby("method")))
        if a not in by_method or b not in by_method:
            continue
        for metric in metrics:
            _, ea, la, ia = seed_matrix(by_method[a], metric)
            _, eb, lb, ib = seed_matrix(by_method[b], metric)
            if not (np.array_equal(ia, ib) and np.array_equal(la, lb)):
                raise ValueError(f"{a!r} and {b!r} were not scored on the same utterances of {values[2]!r}.")
            if len(ea) > 1 or len(eb) > 1:
                ci = stats.two_level_bootstrap(ea, eb, la, n_boot=n_boot, seed=seed, level=level)
                how = TWO_LEVEL
            else:
                ci = stats.paired_bootstrap(ea[0], eb[0], la, n_boot=n_boot, seed=seed, level=level)
                how = PAIRED
            perm = stats.paired_permutation_test(ea.mean(axis=0), eb.mean(axis=0), la, n_perm=n_boot, seed=seed)
            rates_a, rates_b = _seed_rates(ea, la), _seed_rates(eb, la)
            rows.append({
                **dict(zip(keys, values)), "metric": metric, "a": a, "b": b, "k_a": len(ea), "k_b": len(eb),
                "n_utterances": len(la), "rate_a": rates_a.mean(), "rate_b": rates_b.mean(), "delta": ci["delta"],
                "low": ci["low"], "high": ci["high"], "ci_method": how, "p_b_worse": ci["p_b_worse"],
                "p": perm["p"], "hedges_g": _hedges_g_or_nan(rates_b, rates_a),
            })
    columns = keys + ["metric", "a", "b", "k_a", "k_b", "n_utterances", "rate_a", "rate_b", "delta", "low", "high",
                      "ci_method", "p_b_worse", "p", "p_holm", "hedges_g"]
    out = pd.DataFrame(rows, columns=[c for c in columns if c != "p_holm"])
    if out.empty:
        raise ValueError(f"No (condition, train_set, test_set) cell has runs of both {a!r} and {b!r}.")
    out["p_holm"] = stats.holm(out["p"].to_numpy())
    return out[columns]


EFFICIENCY_SUMMARY = {  # output column: (efficiency_frame column, scale)
    "trainable_parameters": ("trainable_parameters", 1.0),
    "trainable_percent": ("trainable_percent", 1.0),
    "peak_memory_mib": ("peak_memory_bytes", 1.0 / MIB),
    "train_wall_time_s": ("train_wall_time_s", 1.0),
    "train_samples_per_second": ("train_samples_per_second", 1.0),
    "run_wall_time_s": ("run_wall_time_s", 1.0),
    "weights_mib": ("weights_bytes", 1.0 / MIB),
    "saved_dir_mib": ("saved_dir_bytes", 1.0 / MIB),
}


def efficiency_summary(eff: pd.DataFrame,
                       by=("condition", "method", "train_set", "model", "precision")) -> pd.DataFrame:
    """Mean and SD (ddof = 1) over runs of each efficiency quantity, per ``by`` group.

    ``eff``: :func:`results_table.efficiency_frame` output. Returns the ``by`` columns, k (runs),
    peak_memory_kind, then for each quantity of :data:`EFFICIENCY_SUMMARY` (bytes converted to MiB) its mean
    and ``{name}_sd``.
    """
    by = list(by)
    require_columns(eff, by + [src for src, _ in EFFICIENCY_SUMMARY.values()] + ["peak_memory_kind"], "efficiency_summary")
    scaled = eff[by].copy()
    for name, (source, scale) in EFFICIENCY_SUMMARY.items():
        scaled[name] = eff[source].astype(float) * scale
    kinds = eff.groupby(by, sort=False, dropna=False)["peak_memory_kind"].agg(
        lambda k: ", ".join(sorted(set(map(str, k)))))
    grouped = scaled.groupby(by, sort=False, dropna=False)
    out = grouped.size().rename("k").to_frame().join(kinds)
    for name in EFFICIENCY_SUMMARY:
        out[name] = grouped[name].mean()
        out[f"{name}_sd"] = grouped[name].std()
    return out.reset_index()


def gain_forgetting_table(utts: pd.DataFrame, metric: str = "wer", by=("condition", "method"),
                          n_boot: int = stats.N_RESAMPLES, seed: int = 0, level: float = stats.LEVEL) -> pd.DataFrame:
    """Gain on the training dialect(s) (all five for the pooled ``all``) and forgetting on the other test sets,
    per ``by`` group (research notes §6).

    ``utts``: :func:`results_table.utterances_frame` rows with ``include_start=True``: the trained models
    (stage "trained") and the starting model (stage "start": each run's ``utterances_before.csv``, the R[0, d]
    row). Within a group, a train set's seeds are averaged per utterance (so the values are about the mean
    over seeds), the starting model's rows are averaged over the group's runs (they share one starting model),
    and :func:`stats.gain_forgetting_ci` pairs each trained model with the start on the same utterances
    (paired bootstrap). Gain G_t = R[0, t] − R[t, t] (> 0: improved); forgetting F_t,d = R[t, d] − R[0, d]
    (> 0: got worse).

    Returns the ``by`` columns, metric, train_set, test_set, kind ("gain" | "forgetting"), k (seeds), start and
    trained (the rates, %), value (% points), low, high (percentile CI) and p_positive (fraction of
    replicates > 0).
    """
    by = list(by)
    errors, lengths = _metric_columns(metric)
    require_columns(utts, by + ["stage", "train_set", "test_set", "seed", "utt_index", errors, lengths],
             "gain_forgetting_table")
    if not (utts["stage"] == "start").any():
        raise ValueError("No starting-model rows: read the runs with utterances_frame(..., include_start=True).")
    frames = []
    for values, group in utts.groupby(by, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        rows, k = [], {}
        start = group[group["stage"] == "start"]
        for test_set, cell in start.groupby("test_set", sort=False):
            counts = cell.groupby("utt_index")[[errors, lengths]].agg(["mean", "nunique"])
            if (counts[(lengths, "nunique")] > 1).any():
                raise ValueError(f"The starting model's reference lengths differ between runs on {test_set!r}.")
            rows.append(pd.DataFrame({"train_set": stats.START, "test_set": test_set, "utt_index": counts.index,
                                      errors: counts[(errors, "mean")].to_numpy(),
                                      lengths: counts[(lengths, "mean")].to_numpy()}))
        trained = group[group["stage"] == "trained"]
        for (train_set, test_set), cell in trained.groupby(["train_set", "test_set"], sort=False):
            seeds, e, n, index = seed_matrix(cell, metric)
            k[train_set] = len(seeds)
            rows.append(pd.DataFrame({"train_set": train_set, "test_set": test_set, "utt_index": index,
                                      errors: e.mean(axis=0), lengths: n}))
        if not k:
            continue
        counts = pd.concat(rows, ignore_index=True)
        ci = stats.gain_forgetting_ci(counts, errors=errors, lengths=lengths, n_boot=n_boot, seed=seed, level=level)
        sums = counts.groupby(["train_set", "test_set"])[[errors, lengths]].sum()
        rate = 100.0 * sums[errors] / sums[lengths]
        ci["start"] = [rate[(stats.START, d)] for d in ci["test_set"]]
        ci["trained"] = [rate[(t, d)] for t, d in zip(ci["train_set"], ci["test_set"])]
        ci["k"] = ci["train_set"].map(k)
        for column, value in zip(by, values):
            ci[column] = value
        ci["metric"] = metric
        frames.append(ci)
    if not frames:
        raise ValueError("No trained runs to compare with the starting model.")
    columns = by + ["metric", "train_set", "test_set", "kind", "k", "start", "trained", "value", "low", "high",
                    "p_positive"]
    return pd.concat(frames, ignore_index=True)[columns]


# The paper's figures from the project's own results (results_table.results_frame rows) --------------------



def _stage(frame: pd.DataFrame, stage: str) -> pd.DataFrame:
    return frame[frame["stage"] == stage] if "stage" in frame.columns else frame


def msa_trainsize_frame(frame: pd.DataFrame, msa: str = MSA) -> pd.DataFrame:
    """Input of :func:`plots.fig1_msa_trainsize` from own results (a :func:`study.paper_grid` directory).

    ``frame``: :func:`results_table.results_frame` output with ``include_start=True``. The runs trained on
    ``msa`` and scored on the ``msa`` test set become the curve, at msa_fraction = n_train / the largest
    n_train among them; their starting model's scores on the msa test set (stage "start") are the 0% point,
    as in the paper (zero-shot whisper-small at 0%). Returns columns model, seed, wer, cer, system,
    msa_fraction.
    """
    for column in ("train_set", "test_set", "seed", "wer", "cer", "n_train", "stage"):
        if column not in frame.columns:
            raise ValueError(
                f"msa_trainsize_frame needs column {column!r}; pass results_frame(..., include_start=True).")
    trained = _stage(frame, "trained")
    trained = trained[(trained["train_set"] == msa) & (trained["test_set"] == msa)]
    if trained.empty:
        raise ValueError(f"No runs trained on {msa!r} and scored on it.")
    fraction = trained["n_train"].astype(float) / trained["n_train"].astype(float).max()
    curve = trained.assign(msa_fraction=fraction, model=fraction.map(lambda f: f"{f:.2f}"), system="fine-tuned")
    start = _stage(frame, "start")
    start = start[(start["test_set"] == msa) & start["path"].isin(set(trained["path"]))]
    start = start.assign(msa_fraction=0.0, model="0.00", system="before fine-tuning")
    columns = ["model", "seed", "wer", "cer", "system", "msa_fraction"]
    return pd.concat([curve[columns], start[columns]], ignore_index=True)


def paper_dialects_frame(frame: pd.DataFrame, msa: str = MSA) -> pd.DataFrame:
    """Input of :func:`plots.fig2_pretraining` and :func:`plots.fig4_heatmap` from own results: the trained
    rows of the dialect (and pooled) models, without the MSA train-size runs (as the paper's 6 x 6 matrices)."""
    trained = _stage(frame, "trained")
    return trained[trained["train_set"] != msa].reset_index(drop=True)


def pooled_vs_specific_frame(frame: pd.DataFrame, msa: str = MSA) -> pd.DataFrame:
    """Input of :func:`plots.fig3_pooled_vs_specific` from own results, as the paper: with MSA pre-training,
    the pooled ``all`` model vs each test set's own model, and for the MSA test set the model trained on
    the most MSA data (largest n_train). Returns paper.pooled_vs_specific_long rows (column role added)."""
    from .paper import WITH_PRETRAINING, pooled_vs_specific_long

    trained = _stage(frame, "trained")
    with_ = trained[(trained["condition"] == WITH_PRETRAINING) & (trained["train_set"] != msa)]
    full_msa = trained[(trained["train_set"] == msa)]
    full_msa = full_msa[full_msa["n_train"] == full_msa["n_train"].max()]
    return pooled_vs_specific_long(pd.concat([with_, full_msa], ignore_index=True))
