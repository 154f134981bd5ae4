"""Analysis of the project's own runs: rates with CIs, PEFT vs full, efficiency, gain and forgetting, the bank.

:class:`StudyReport` is the analysis of one study (notebook 03): each of its methods computes one section's
tables and figures, writes them (tables as CSV + LaTeX, figures as PNG + PDF) and returns them for display.
Its inputs are the tidy frames of the one results reader, :func:`arabicpeft.results.load_runs`: per-utterance
edit counts (``Runs.utterances()``), corpus scores (``Runs.scores()``) and the runs with their efficiency
records (``Runs.runs``). Every number comes from them through :mod:`arabicpeft.stats`; the figures are those
of :mod:`arabicpeft.plots`. :func:`bank_comparison` is the adapter bank's table (notebook 06),
:func:`published_figures` the paper's four figures from its published data (notebook 04), and
:func:`project_path` resolves a notebook's relative paths against the project root.

A *system* is a run without its seed (the reader's ``system`` column: every config field but the seed and
where/how it was run, with its start, stage and kind; a continued adapter and a run stopped by its time budget are
systems of their own). Every table and figure names a system by that label — each field that differs between
systems — so two systems never share a bar, a row or a legend entry. Its seeds are scored on the same test
utterances (the test sets do not depend on the seed), so per-utterance counts line up across seeds and methods on
utt_index, and the mean over seeds of corpus rates equals the corpus rate of the seed-averaged counts (the
reference lengths are shared). Claims about methods are made over seeds (:func:`stats.seed_t_test`,
:func:`stats.tost`); the utterance-level intervals and tests beside them are conditional on the seeds trained.
All rates and differences are in % (points).

Public: :func:`project_path`, :func:`bank_comparison`, :data:`BANK_COLUMNS`, :func:`published_figures`,
:class:`StudyReport`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots, profiles, stats
from .dialects import MSA, POOLED
from .dialects import get as dialect_entry
from .paper import WITH_PRETRAINING, WITHOUT_PRETRAINING, figure_data
from .plots import require_columns
from .results import BANK_TRAIN_SET, MIB, START, TRAINED, TRAINING, load_runs

_METRICS = {"wer": ("word_errors", "ref_words"), "cer": ("char_errors", "ref_chars")}
# a system: one config, all its seeds (``system`` decides; the others are its readable parts)
_SYSTEM_KEYS = ["system", "study", "stage", "variant", "train_set"]
_CELL_KEYS = ["context", "train_set", "test_set"]  # what a method comparison pairs: same context, data, test set
_BASELINE, _PEFT = "full", "lora"  # the default comparison: rate(lora) − rate(full)


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
        return _METRICS[metric]
    except KeyError as e:
        raise ValueError(f"Unknown metric {metric!r}; choose one of {', '.join(_METRICS)}.") from e


def _seed_matrix(rows: pd.DataFrame, metric: str = "wer") -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """One system's per-utterance counts on one test set, one row per seed, aligned on utt_index.

    ``rows``: the ``Runs.utterances()`` rows of one system on one test set. Returns (seeds, errors of shape
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


def _rate_table(utts: pd.DataFrame, metrics=("wer", "cer"), n_boot: int = stats.N_RESAMPLES, seed: int = 0,
               level: float = stats.LEVEL) -> pd.DataFrame:
    """Corpus WER/CER of every run on every test set with an utterance bootstrap CI (stats.bootstrap_ci).

    ``utts``: ``Runs.utterances()`` rows (start rows are left out). Returns one row per (system, study, stage,
    variant, train_set, seed, test_set) with n_utterances and, per metric, ``{metric}``, ``{metric}_low``,
    ``{metric}_high`` (%).
    """
    keys = _SYSTEM_KEYS + ["seed", "test_set"]
    require_columns(utts, keys + ["utt_index"] + [c for m in metrics for c in _metric_columns(m)], "rate_table")
    rows = []
    for values, run in _stage(utts, TRAINED).groupby(keys, sort=False, dropna=False):
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


def _system_table(utts: pd.DataFrame, metrics=("wer", "cer"), n_boot: int = stats.N_RESAMPLES, seed: int = 0,
                 level: float = stats.LEVEL) -> pd.DataFrame:
    """Per system and test set: the mean over seeds of corpus WER/CER with two intervals.

    Returns one row per (system, study, stage, variant, train_set, test_set) with k (seeds), n_utterances and, per
    metric: ``{metric}`` (mean over seeds, %), ``{metric}_sd`` (over seeds, ddof = 1), ``{metric}_low`` /
    ``{metric}_high`` (utterance bootstrap CI of the seed mean: the seed-averaged counts resampled, test-set
    sampling only) and ``{metric}_t_low`` / ``{metric}_t_high`` (t-interval over the k seeds, training
    variability only; NaN for one seed).
    """
    keys = _SYSTEM_KEYS + ["test_set"]
    require_columns(utts, keys + ["seed", "utt_index"], "system_table")
    rows = []
    for values, system in _stage(utts, TRAINED).groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, values))
        for metric in metrics:
            seeds, errors, lengths, _ = _seed_matrix(system, metric)
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


def _matches(variants, name: str) -> list:
    """The variants of a cell that ``name`` names: its exact label, or every variant of method ``name``."""
    exact = [v for v in variants if v == name]
    return exact or [v for v in variants if str(v).split(" ")[0] == name]


def _compare_methods(utts: pd.DataFrame, a: str = _BASELINE, b: str = _PEFT, metrics=("wer", "cer"),
                    margin: float = stats.EQUIVALENCE_MARGIN, n_boot: int = stats.N_RESAMPLES, seed: int = 0,
                    level: float = stats.LEVEL) -> pd.DataFrame:
    """Variant ``b`` vs variant ``a`` (default every LoRA variant vs full fine-tuning) per cell and metric.

    A cell is (context, train_set, test_set): runs that differ only in their fine-tuning method and seed
    (``a``/``b``: a variant label, or a method name — "lora", "full", "dora" — matching every variant of it; a
    cell with several variants matching ``a`` raises: name one). Per ``b`` variant, over seeds (the claim about
    methods; :func:`stats.seed_t_test`, :func:`stats.tost`):

    - delta = mean-over-seeds rate(b) − rate(a) (% points; > 0: b has more errors); low, high: its t-interval
      at ``level``; p: the two-sided t-test; test: paired by seed where both methods ran the same seeds (a seed
      is a split and data order both share), else Welch's t; all NaN with one seed per method (test None).
      p_holm: Holm over every row with a p (one family: all cells and metrics).
    - margin, p_equivalence, equivalent: two one-sided tests (TOST, alpha = 1 − ``level``) of |delta| <
      ``margin`` (% points): True means equivalence is shown at that margin, False that it is not (None with
      one seed per method).
    - hedges_g: :func:`stats.hedges_g` of the per-seed corpus rates, b vs a (> 0: b has more errors); NaN
      when undefined (fewer than 3 runs in all, or no spread in either method); seed_sd: the pooled
      seed-to-seed SD of the two methods' corpus rates (ddof = 1; NaN with one seed each).
    - conditional on these seeds (test-set sampling only; how much the utterances alone move delta for these
      trained models, not a test of the methods): utt_low, utt_high, :func:`stats.paired_bootstrap` CI of the
      seed-averaged per-utterance counts, and utt_p, :func:`stats.paired_permutation_test` on them (n_perm =
      n_boot).

    Returns columns context, train_set, test_set, stage (of the study), metric, a, b, k_a, k_b, n_utterances,
    rate_a, rate_b, delta, low, high, df, test, p, p_holm, margin, p_equivalence, equivalent, hedges_g, seed_sd,
    utt_low, utt_high, utt_p.
    """
    require_columns(utts, _CELL_KEYS + ["variant", "seed", "utt_index"], "compare_methods")
    trained = _stage(utts, TRAINED)
    rows = []
    for values, cell in trained.groupby(_CELL_KEYS, sort=False, dropna=False):
        by_variant = dict(tuple(cell.groupby("variant", sort=False)))
        baseline = _matches(by_variant, a)
        if not baseline:
            continue
        if len(baseline) > 1:
            raise ValueError(f"Several variants match {a!r} in {dict(zip(_CELL_KEYS, values))}: {baseline}. "
                             "Name one variant label as the baseline.")
        for variant_b in _matches(by_variant, b):
            if variant_b == baseline[0]:
                continue
            stage = cell["stage"].iloc[0] if "stage" in cell.columns else None
            for metric in metrics:
                rows.append({**dict(zip(_CELL_KEYS, values)), "stage": stage, "metric": metric,
                             **_compare(by_variant[baseline[0]], by_variant[variant_b], baseline[0], variant_b,
                                        metric, values[2], margin, n_boot, seed, level)})
    out = pd.DataFrame(rows, columns=[c for c in _COMPARISON_COLUMNS if c != "p_holm"])
    if out.empty:
        raise _NoPairs(f"No (context, train_set, test_set) cell has runs of both {a!r} and {b!r}.")
    tested = out["p"].notna().to_numpy()
    out["p_holm"] = np.nan
    out.loc[tested, "p_holm"] = stats.holm(out.loc[tested, "p"].to_numpy())
    return out[_COMPARISON_COLUMNS]


_COMPARISON_COLUMNS = _CELL_KEYS + [
    "stage", "metric", "a", "b", "k_a", "k_b", "n_utterances", "rate_a", "rate_b", "delta", "low", "high", "df",
    "test", "p", "p_holm", "margin", "p_equivalence", "equivalent", "hedges_g", "seed_sd", "utt_low", "utt_high",
    "utt_p"]


class _NoPairs(ValueError):
    """No runs of both methods to compare (a study still running, or a design without both)."""


def _compare(rows_a, rows_b, a, b, metric, test_set, margin, n_boot, seed, level) -> dict:
    seeds_a, ea, la, ia = _seed_matrix(rows_a, metric)
    seeds_b, eb, lb, ib = _seed_matrix(rows_b, metric)
    if not (np.array_equal(ia, ib) and np.array_equal(la, lb)):
        raise ValueError(f"{a!r} and {b!r} were not scored on the same utterances of {test_set!r}.")
    rates_a, rates_b = _seed_rates(ea, la), _seed_rates(eb, la)
    paired = list(seeds_a) == list(seeds_b)  # _seed_matrix orders the seeds: row i of both is seed i
    over_seeds = stats.seed_t_test(rates_a, rates_b, paired=paired, level=level)
    equivalence = stats.tost(rates_a, rates_b, paired=paired, margin=margin, alpha=1.0 - level)
    utt = stats.paired_bootstrap(ea.mean(axis=0), eb.mean(axis=0), la, n_boot=n_boot, seed=seed, level=level)
    perm = stats.paired_permutation_test(ea.mean(axis=0), eb.mean(axis=0), la, n_perm=n_boot, seed=seed)
    return {"a": a, "b": b, "k_a": len(ea), "k_b": len(eb), "n_utterances": len(la), "rate_a": rates_a.mean(),
            "rate_b": rates_b.mean(), "delta": over_seeds["delta"], "low": over_seeds["low"],
            "high": over_seeds["high"], "df": over_seeds["df"], "test": over_seeds["test"], "p": over_seeds["p"],
            "margin": margin, "p_equivalence": equivalence["p"], "equivalent": equivalence["equivalent"],
            "hedges_g": _hedges_g_or_nan(rates_b, rates_a), "seed_sd": _pooled_sd(rates_a, rates_b),
            "utt_low": utt["low"], "utt_high": utt["high"], "utt_p": perm["p"]}


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    """Pooled SD (ddof = 1) of two groups of per-seed rates; NaN when neither has two seeds."""
    dof = max(len(a) - 1, 0) + max(len(b) - 1, 0)
    if dof == 0:
        return float("nan")
    ss = sum(((x - x.mean()) ** 2).sum() for x in (a, b) if len(x) > 1)
    return float(np.sqrt(ss / dof))


def _comparison_statement(comparison: pd.DataFrame, metric: str = "wer") -> str:
    """What the :func:`_compare_methods` table shows for ``metric``, in words: the largest |Δ|; in how many cells
    the methods differ over seeds (Holm p < 1 − LEVEL); in how many equivalence within the margin is shown
    (TOST), the margin printed with the verdict; and the cells neither can be judged in (one seed per method:
    their utterance-level columns are conditional on that seed; or no spread over seeds at all)."""
    rows = comparison[comparison["metric"] == metric]
    name = metric.upper()
    if rows.empty:
        return f"No {name} comparison."
    worst = rows.loc[rows["delta"].abs().idxmax()]
    text = (f"{name}: largest |Δ| = {abs(worst['delta']):.2f} points ({worst['b']} vs {worst['a']}, "
            f"{worst['train_set']} -> {worst['test_set']}).")
    one_seed, judged = rows["test"].isna(), rows["p"].notna()
    flat = ~one_seed & ~judged
    alpha = 1.0 - stats.LEVEL
    if judged.any():
        done = rows[judged]
        differ = int((done["p_holm"] < alpha).sum())
        equivalent = int(done["equivalent"].astype(bool).sum())
        tests = ", ".join(sorted(set(done["test"])))
        seeds = sorted(set(done["k_a"]) | set(done["k_b"]))
        text += (f" Over seeds ({tests}, k = {'–'.join(map(str, seeds[::max(1, len(seeds) - 1)]))}): the methods "
                 f"differ in {differ} of {len(done)} cells (Holm p < {alpha:g}); equivalence within "
                 f"±{done['margin'].iloc[0]:g} {name} points (TOST, alpha = {alpha:g}) is shown in {equivalent} of "
                 f"{len(done)}")
        text += "." if equivalent == len(done) else (
            f", not shown in the other {len(done) - equivalent} (their {100 * (1 - 2 * alpha):g}% t-interval reaches "
            "beyond the margin; that is no evidence of a difference either).")
    if one_seed.any():
        text += (f" {int(one_seed.sum())} of {len(rows)} cells have one seed per method: no test over seeds and no "
                 "equivalence test is possible there (their utterance-level utt_* columns are conditional on that "
                 "seed and say nothing about the methods); train more seeds.")
    if flat.any():
        text += (f" {int(flat.sum())} of {len(rows)} cells show no spread over seeds at all (every seed the same "
                 "difference, e.g. every model at 100%): not judged.")
    return text


_EFFICIENCY_SUMMARY = {  # output column: (Runs.runs column, scale)
    "trainable_parameters": ("trainable_parameters", 1.0),
    "trainable_percent": ("trainable_percent", 1.0),
    "peak_memory_mib": ("peak_memory_bytes", 1.0 / MIB),
    "train_wall_time_s": ("train_wall_time_s", 1.0),
    "train_samples_per_second": ("train_samples_per_second", 1.0),
    "run_wall_time_s": ("run_wall_time_s", 1.0),
    "weights_mib": ("weights_bytes", 1.0 / MIB),
    "saved_dir_mib": ("saved_dir_bytes", 1.0 / MIB),
}


def _efficiency_summary(eff: pd.DataFrame, by=("system", "study", "stage", "variant", "train_set", "model_name")
                       ) -> pd.DataFrame:
    """The efficiency table (the only one): mean and SD (ddof = 1) over seeds of each efficiency quantity, per
    system (``by``: a system and its readable parts; never wider than a system).

    ``eff``: ``load_runs(root).runs`` (training runs; evaluations have no training cost and are left out).
    Returns the ``by`` columns, k (runs),
    peak_memory_kind, then for each quantity of :data:`_EFFICIENCY_SUMMARY` (bytes converted to MiB) its mean
    and ``{name}_sd``.
    """
    by = list(by)
    if "kind" in eff.columns:
        eff = eff[eff["kind"] == TRAINING]
    if "model_name" in by and "model_name" not in eff.columns and "model" in eff.columns:
        eff = eff.assign(model_name=eff["start_model"] if "start_model" in eff.columns else eff["model"])
    require_columns(eff, by + [src for src, _ in _EFFICIENCY_SUMMARY.values()] + ["peak_memory_kind"], "efficiency_summary")
    scaled = eff[by].copy()
    for name, (source, scale) in _EFFICIENCY_SUMMARY.items():
        scaled[name] = eff[source].astype(float) * scale
    kinds = eff.groupby(by, sort=False, dropna=False)["peak_memory_kind"].agg(
        lambda k: ", ".join(sorted(set(map(str, k)))))
    grouped = scaled.groupby(by, sort=False, dropna=False)
    out = grouped.size().rename("k").to_frame().join(kinds)
    for name in _EFFICIENCY_SUMMARY:
        out[name] = grouped[name].mean()
        out[f"{name}_sd"] = grouped[name].std()
    return out.reset_index()


def _gain_forgetting_table(utts: pd.DataFrame, metric: str = "wer", by=("context", "variant"),
                          n_boot: int = stats.N_RESAMPLES, seed: int = 0, level: float = stats.LEVEL) -> pd.DataFrame:
    """Gain on the training dialect(s) (all five for the pooled ``all``) and forgetting on the other test sets,
    per ``by`` group (research notes §6).

    ``utts``: ``Runs.utterances(include_start=True)`` rows: the trained models (scored "trained") and the
    starting model (scored "start": each run's ``utterances_before.csv``, the R[0, d] row). ``by``: the groups
    (default: one per context and method variant; a group's runs must share their starting model). Within a group, a train set's seeds are averaged per utterance (so the values are about the mean
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
    require_columns(utts, by + ["scored", "train_set", "test_set", "seed", "utt_index", errors, lengths],
                    "gain_forgetting_table")
    if not (utts["scored"] == START).any():
        raise ValueError("No starting-model rows: read the runs with Runs.utterances(include_start=True).")
    frames = []
    for values, group in utts.groupby(by, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        rows, k = [], {}
        start = group[group["scored"] == START]
        for test_set, cell in start.groupby("test_set", sort=False):
            counts = cell.groupby("utt_index")[[errors, lengths]].agg(["mean", "nunique"])
            if (counts[(lengths, "nunique")] > 1).any():
                raise ValueError(f"The starting model's reference lengths differ between runs on {test_set!r}.")
            rows.append(pd.DataFrame({"train_set": stats.START, "test_set": test_set, "utt_index": counts.index,
                                      errors: counts[(errors, "mean")].to_numpy(),
                                      lengths: counts[(lengths, "mean")].to_numpy()}))
        trained = group[group["scored"] == TRAINED]
        for (train_set, test_set), cell in trained.groupby(["train_set", "test_set"], sort=False):
            seeds, e, n, index = _seed_matrix(cell, metric)
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


# The paper's figures from the project's own results (Runs.scores() rows) ---------------------------------



def _stage(frame: pd.DataFrame, scored: str) -> pd.DataFrame:
    """The rows of the trained models (TRAINED) or of their starting models (START)."""
    return frame[frame["scored"] == scored] if "scored" in frame.columns else frame


def _msa_trainsize_frame(frame: pd.DataFrame, msa: str = MSA) -> pd.DataFrame:
    """Input of :func:`plots.fig1_msa_trainsize` from own results (a :func:`designs.paper` study).

    ``frame``: ``load_runs(root).scores()`` rows of one method (filter on ``variant`` first). The runs trained on
    ``msa`` and scored on the ``msa`` test set become the curve, at msa_fraction = n_train / the largest
    n_train among them; their starting model's scores on the msa test set (scored "start") are the 0% point,
    as in the paper (zero-shot whisper-small at 0%). Returns columns model, seed, wer, cer, system,
    msa_fraction.
    """
    for column in ("train_set", "test_set", "seed", "wer", "cer", "n_train", "scored"):
        if column not in frame.columns:
            raise ValueError(f"msa_trainsize_frame needs column {column!r}; pass load_runs(root).scores().")
    trained = _stage(frame, TRAINED)
    trained = trained[(trained["train_set"] == msa) & (trained["test_set"] == msa)]
    if trained.empty:
        raise ValueError(f"No runs trained on {msa!r} and scored on it.")
    fraction = trained["n_train"].astype(float) / trained["n_train"].astype(float).max()
    curve = trained.assign(msa_fraction=fraction, model=fraction.map(lambda f: f"{f:.2f}"), system="fine-tuned")
    start = _stage(frame, START)
    start = start[(start["test_set"] == msa) & start["path"].isin(set(trained["path"]))]
    start = start.assign(msa_fraction=0.0, model="0.00", system="before fine-tuning")
    columns = ["model", "seed", "wer", "cer", "system", "msa_fraction"]
    return pd.concat([curve[columns], start[columns]], ignore_index=True)


def _paper_frames(frame: pd.DataFrame, msa: str = MSA) -> dict[str, pd.DataFrame]:
    """The inputs of the paper's figures from own results of one method (``Runs.scores()`` rows of a
    :func:`designs.paper` study, filtered on ``variant``), in the layout of :func:`paper.figure_data`:
    "msa_trainsize" (:func:`_msa_trainsize_frame`), "dialects" (the trained dialect and pooled models, without
    the MSA train-size runs: the paper's 6 x 6 matrices) and "pooled_vs_specific" (the models with MSA
    pre-training, and for the MSA test set the model trained on the most MSA data, largest n_train)."""
    trained = _stage(frame, TRAINED)
    dialects = trained[trained["train_set"] != msa].reset_index(drop=True)
    full_msa = trained[(trained["train_set"] == msa)]
    full_msa = full_msa[full_msa["n_train"] == full_msa["n_train"].max()]
    with_ = dialects[dialects["condition"] == WITH_PRETRAINING]
    return {"msa_trainsize": _msa_trainsize_frame(frame, msa=msa), "dialects": dialects,
            "pooled_vs_specific": pd.concat([with_, full_msa], ignore_index=True)}


# Study views: one matrix per method, the adapter bank against its alternatives ---------------------------


def _by_method(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``Runs.scores()`` rows of trained models split per fine-tuning method (the ``variant`` column), training
    runs only: {variant: rows}. Each value holds one method, so a figure drawn from it never mixes methods."""
    rows = _stage(scores, TRAINED)
    rows = rows[rows["kind"] == TRAINING] if "kind" in rows.columns else rows
    return {variant: part for variant, part in rows.groupby("variant", sort=False)}


def _group_label(variant: str, context: str) -> str:
    """A method in its context as one label: "lora fp32 ... | stage=pool mixture=balanced" ("all": the variant)."""
    return str(variant) if str(context) == "all" else f"{variant} | {context}"


def _by_group(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``Runs.scores()`` rows of trained models of training runs, one group per (context, variant): runs that
    differ only in their train set and seed, {:func:`_group_label`: rows}. A matrix or figure drawn from one
    group never mixes methods, stages, starts, mixtures or anything else that makes another system."""
    rows = _stage(scores, TRAINED)
    rows = rows[rows["kind"] == TRAINING] if "kind" in rows.columns else rows
    return {_group_label(variant, context): part
            for (context, variant), part in rows.groupby(["context", "variant"], sort=False)}


def _matrix_table(scores: pd.DataFrame, metric: str = "wer", decimals: int = 2) -> pd.DataFrame:
    """The train x test matrix of one method: cells "mean (± sd)" over seeds of ``metric`` (%), rows train sets,
    columns test sets (trained models only; raises when a (train, test, seed) cell holds several runs)."""
    trained = _stage(scores, TRAINED)
    require_columns(trained, ["train_set", "test_set", "seed", metric], "matrix_table")
    if trained.duplicated(["train_set", "test_set", "seed"]).any():
        raise ValueError("matrix_table: several runs per (train set, test set, seed): pass one method and condition.")
    cells = trained.groupby(["train_set", "test_set"])[metric].agg(["mean", "std"]).reset_index()
    mean = cells.pivot(index="train_set", columns="test_set", values="mean")
    sd = cells.pivot(index="train_set", columns="test_set", values="std")
    return pd.DataFrame(plots.heatmap_labels(mean, sd, decimals), index=mean.index, columns=mean.columns)


def bank_comparison(utts: pd.DataFrame, n_boot: int | None = None, seed: int = 0,
                    level: float = stats.LEVEL) -> pd.DataFrame:
    """The adapter bank against the alternatives on the test sets it covers: the base model (the bank's
    adapters disabled), every pooled model (dialect "all": natural or balanced mixture, LoRA or full), and
    each test set's own single-dialect LoRA and full fine-tunes started from the base (the stage the bank's
    adapters come from, and any other such stage).

    ``utts``: ``Runs.utterances()`` (with the start rows). Returns :func:`_system_table` rows (mean over
    seeds, SD, utterance-bootstrap CI) with a ``role`` column ("base", "adapter bank", "pooled <mixture>",
    "own dialect"), and ``system`` and ``variant`` relabelled "<role>: <label>" for legends. ``n_boot``: bootstrap
    replicates (None: as :class:`StudyReport`).
    """
    require_columns(utts, ["path", "train_set", "scored", "test_set", "dialect", "kind", "start_model"],
                    "bank_comparison")
    n_boot = _n_boot(n_boot)
    # the bank's runs: their trained rows say train_set "bank", their start rows (adapters disabled) "start"
    bank = utts[utts["path"].isin(set(utts.loc[utts["train_set"] == BANK_TRAIN_SET, "path"]))]
    if bank.empty:
        raise ValueError("No adapter-bank evaluation among these runs (a study stage of kind 'bank').")
    test_sets = set(bank["test_set"])
    bank_start = set(bank["start_model"])
    on_sets = utts[utts["test_set"].isin(test_sets)]
    parts = []
    trained_bank = bank[bank["scored"] == TRAINED]
    parts.append(trained_bank.assign(role="adapter bank"))
    base = bank[bank["scored"] == START].assign(scored=TRAINED, role="base", variant="adapters disabled",
                                                 system="base", stage="bank", train_set="base")
    parts.append(base)
    training = on_sets[(on_sets["kind"] == TRAINING) & (on_sets["scored"] == TRAINED)
                       & on_sets["start_model"].isin(bank_start)]
    pooled = training[training["dialect"] == POOLED]
    parts.append(pooled.assign(role="pooled " + pooled["mixture"].astype(str)))
    own = training[(training["dialect"] == training["test_set"])]
    parts.append(own.assign(role="own dialect"))
    rows = pd.concat(parts, ignore_index=True)
    rows["variant"] = rows["role"] + ": " + rows["variant"].astype(str)
    rows["system"] = rows["role"] + ": " + rows["system"].astype(str)
    table = _system_table(rows, n_boot=n_boot, seed=seed, level=level)
    roles = rows.drop_duplicates("system").set_index("system")["role"]
    table.insert(0, "role", table["system"].map(roles))
    return table


def _scored_start(utts: pd.DataFrame) -> pd.DataFrame:
    """The rows of the training runs that also scored their starting model (``evaluate_before``): the input of
    :func:`_gain_forgetting_table` (runs without a start have no gain or forgetting to report)."""
    training = utts[utts["kind"] == TRAINING] if "kind" in utts.columns else utts
    return training[training["path"].isin(set(training.loc[training["scored"] == START, "path"]))]


# Writing: tables as CSV + LaTeX, figures as PNG + PDF --------------------------------------------------------

_DPI = 200


def _save_table(df: pd.DataFrame, path_stem, float_format: str | None = "%.2f", caption: str | None = None,
                label: str | None = None, index: bool = False) -> list[Path]:
    """Write ``df`` as ``{path_stem}.csv`` (full precision) and ``{path_stem}.tex`` (pandas ``to_latex``,
    numbers formatted with ``float_format``, booktabs rules); returns the two paths. NaN is written as "--"
    in LaTeX and as an empty field in the CSV."""
    paths = [Path(f"{path_stem}.csv"), Path(f"{path_stem}.tex")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(paths[0], index=index)
    formatter = (lambda v: float_format % v) if float_format else None
    latex = df.to_latex(index=index, float_format=formatter, na_rep="--", caption=caption, label=label,
                        escape=True)
    paths[1].write_text(latex, encoding="utf-8")
    return paths


def _save_figure(fig, path_stem) -> list[Path]:
    """Write ``fig`` as ``{path_stem}.png`` (DPI 200) and ``{path_stem}.pdf``; returns the two paths."""
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return paths


class _Note(str):
    """Markdown text that a notebook displays formatted (IPython reads ``_repr_markdown_``); a plain str otherwise."""

    def _repr_markdown_(self) -> str:
        return str(self)


_SYNTHETIC_NOTICE = _Note("**Synthetic sample data:** some or all of these runs were trained and scored on the "
                          "espeak-ng sample set. Their numbers only show that the pipeline works.")
BANK_COLUMNS = ["role", "variant", "test_set", "k", "wer", "wer_low", "wer_high", "cer"]  # bank_comparison, shown
_CI_PROFILE_N_BOOT = 2_000  # bootstrap replicates under the ci profile (tiny runs: the numbers mean nothing)


def _n_boot(n_boot: int | None) -> int:
    """``n_boot``, or the default: :data:`stats.N_RESAMPLES`, :data:`_CI_PROFILE_N_BOOT` under the ci profile."""
    return n_boot or (_CI_PROFILE_N_BOOT if profiles.current() == "ci" else stats.N_RESAMPLES)


def _file_label(label: str) -> str:
    """A label as part of a file name: runs of characters other than letters, digits, ".", "+" and "-" become
    "_" ("lora fp32 r32" -> "lora_fp32_r32"); past 80 characters it is cut and a hash of the whole added."""
    name = re.sub(r"[^A-Za-z0-9.+-]+", "_", str(label)).strip("_")
    if len(name) > 80:
        name = f"{name[:70]}_{hashlib.sha1(str(label).encode('utf-8')).hexdigest()[:8]}"
    return name


def _published_pool_size(mixture: str, cap: float | None = None) -> int:
    """Records of the pooled set ``all`` drawn as ``mixture`` from the published train sizes of its dialects
    (:data:`arabicpeft.dialects.REGISTRY`), at most ``cap`` per dialect: natural = their sum (75,300),
    balanced = 5 x the smallest (5 x 11,500 = 57,500)."""
    cap = cap if cap is not None and np.isfinite(cap) else float("inf")
    sizes = [min(cap, dialect_entry(d).train_rows) for d in dialect_entry(POOLED).parts]
    return int(len(sizes) * min(sizes) if mixture == "balanced" else sum(sizes))


def _pool_sizes(runs: pd.DataFrame) -> pd.DataFrame:
    """The pooled (``all``) training runs' train pools: per system and seed its mixture, cap per dialect,
    records per dialect (JSON, where capped or balanced), pool_records (in the pool after the mixture, before
    filters and the validation split; the run's data report) and n_train (after them), with published_records:
    the same mixture and cap over the full otozz train sets (:func:`_published_pool_size`). Empty without
    pooled training runs."""
    columns = ["system", "mixture", "max_train_per_dialect", "seed", "records_per_dialect", "pool_records", "n_train",
               "published_records"]
    pooled = runs[(runs["kind"] == TRAINING) & (runs["dialect"] == POOLED)] if not runs.empty else runs
    if pooled.empty:
        return pd.DataFrame(columns=columns)
    pooled = pooled.assign(published_records=[_published_pool_size(m, c) for m, c in
                                              zip(pooled["mixture"], pooled["max_train_per_dialect"])])
    return pooled[columns].reset_index(drop=True)


def _pool_statement(pools: pd.DataFrame) -> _Note:
    """The sizes of the natural and balanced pools side by side, so that size is not taken for balance."""
    sizes = pools.groupby("mixture")[["pool_records", "published_records"]].first()
    ours = ", ".join(f"{m} {int(r):,}" for m, r in sizes["pool_records"].dropna().items()) or "not recorded"
    published = ", ".join(f"{m} {_published_pool_size(m):,}" for m in ("natural", "balanced"))
    text = (f"**Pooled train sets.** Records in the pools of these runs (before filters and the validation split): "
            f"{ours}. On the full otozz train sets (published sizes, `arabicpeft.dialects`): {published} "
            "(balanced: 5 x the smallest dialect). ")
    if len(sizes) > 1 and sizes["pool_records"].nunique() > 1:
        text += ("The balanced pool is smaller as well as balanced: a difference between the two models is one of "
                 "size and balance together.")
    else:
        text += "A balanced pool of the full sets is smaller as well as balanced: size is not balance."
    return _Note(text)


def _data_notice(frame: pd.DataFrame, root) -> _Note:
    """What a reader must know before any number of ``frame`` (``Runs.runs`` or ``Runs.scores()`` rows read from
    ``root``): that there are none, that some come from the synthetic sample set (:data:`_SYNTHETIC_NOTICE`), or
    nothing (an empty Note)."""
    if frame.empty:
        missing = "" if Path(root).is_dir() else " (the folder does not exist: a typo?)"
        return _Note(f"No results in `{root}`{missing}: run a study into it, or point the notebook at a folder of "
                     "results.")
    return _SYNTHETIC_NOTICE if frame["synthetic"].eq(True).any() else _Note("")


def _draw_paper_figures(frames: dict, metrics, curve_label: str, title: str | None = None,
                        metric_in_name: bool = True) -> dict:
    """The paper's four figures from :func:`paper.figure_data`-shaped ``frames``: {file stem: figure}, Fig. 1,
    then Fig. 2 once per metric of ``metrics`` (stem "fig2_pretraining_<metric>", or "fig2_pretraining" without
    ``metric_in_name``), Fig. 3, and Fig. 4 (with MSA pre-training) per metric. ``title``: the suptitle of
    Figs. 2–4 (Fig. 1 names its curve ``curve_label``)."""
    def named(stem, metric):
        return f"{stem}_{metric}" if metric_in_name else stem

    figures = {"fig1_msa_trainsize": plots.fig1_msa_trainsize(frames["msa_trainsize"], curve_label=curve_label)}
    figures.update({named("fig2_pretraining", m): plots.fig2_pretraining(frames["dialects"], metric=m)
                    for m in metrics})
    figures["fig3_pooled_vs_specific"] = plots.fig3_pooled_vs_specific(frames["pooled_vs_specific"])
    figures.update({named("fig4_heatmap", m): plots.fig4_heatmap(frames["dialects"], condition=WITH_PRETRAINING,
                                                                 metric=m) for m in metrics})
    for stem, fig in figures.items():
        if title and stem != "fig1_msa_trainsize":
            fig.suptitle(title)
    return figures


def published_figures(out_dir) -> list:
    """The paper's Figs. 1–4 from its published per-seed results (:func:`arabicpeft.paper.figure_data`), each
    written under ``out_dir`` as ``fig1_msa_trainsize``, ``fig2_pretraining``, ``fig3_pooled_vs_specific`` and
    ``fig4_heatmap`` (PNG + PDF; Figs. 2 and 4 of WER, Fig. 4 with MSA pre-training). Returns the four figures
    in that order."""
    figures = _draw_paper_figures(figure_data(), ["wer"], curve_label="whisper-small fine-tuned on MSA",
                                  metric_in_name=False)
    for stem, fig in figures.items():
        _save_figure(fig, Path(out_dir) / stem)
    return list(figures.values())


class StudyReport:
    """The analysis of one study's runs, one section per method: each computes its tables and figures, writes
    them under :attr:`output_dir` (tables as CSV + LaTeX, figures as PNG + PDF) and returns what a notebook
    shows, in order (tables, figures and Markdown notes), for ``display(*section)``. Every section runs on every
    design (:data:`arabicpeft.designs.DESIGNS`, and a folder of single runs and evaluations); a section a study has
    no data for returns [a Note saying so].

    ``runs``: a :class:`~arabicpeft.results.Runs` (``load_runs(root)`` or :func:`arabicpeft.study.run_if_empty`),
    or the folder to read it from. With no results there, every section returns [a Note saying so].
    ``output_dir``: where the tables and figures go (relative paths: :func:`project_path`; None: the runs
    root's ``analysis`` folder). ``scheme``: the scoring read ("raw", "leaderboard", "ar_norm_v2", ...), named
    in the captions. ``n_boot``: bootstrap replicates and permutations (None: 10,000; 2,000 under the ci
    profile). ``margin``: the equivalence margin of :meth:`comparison` in % points (default
    :data:`stats.EQUIVALENCE_MARGIN`, 1 point; why there), set before looking at the results.

    A *system* is a run without its seed (the reader's ``system`` column: every config field but the seed and
    where/how it was run, its start, stage and kind); nothing is averaged across systems, and every table and
    figure names a system by that label (each field that differs between systems). Runs stopped by their time
    budget before their last step are left out (:attr:`left_out`; :meth:`overview` counts and names them).
    Rates and differences are in % (points).
    """

    def __init__(self, runs, output_dir=None, scheme: str = "raw", n_boot: int | None = None,
                 margin: float = stats.EQUIVALENCE_MARGIN):
        runs = runs if hasattr(runs, "runs") else load_runs(runs)
        stopped = runs.runs["stopped_by_time_budget"].eq(True) if not runs.runs.empty else pd.Series(dtype=bool)
        self.left_out = runs.runs[stopped]  # unfinished: never averaged with finished runs, nor shown
        self.runs = runs.subset(~stopped) if stopped.any() else runs
        self.output_dir = project_path(output_dir) if output_dir else Path(self.runs.root) / "analysis"
        self.scheme = scheme
        self.n_boot = _n_boot(n_boot)
        self.margin = margin
        self._utterances = self._scores = None

    def __repr__(self) -> str:
        return f"StudyReport({self.runs!r} -> {self.output_dir}, scheme {self.scheme!r}, n_boot {self.n_boot})"

    @property
    def utterances(self) -> pd.DataFrame:
        """``runs.utterances(scheme)``, read once: per-utterance counts of the trained and starting models."""
        if self._utterances is None:
            self._utterances = self.runs.utterances(scheme=self.scheme)
        return self._utterances

    @property
    def scores(self) -> pd.DataFrame:
        """``runs.scores(scheme)``, read once: corpus scores of the trained and starting models."""
        if self._scores is None:
            self._scores = self.runs.scores(scheme=self.scheme)
        return self._scores

    def _save(self, name: str, table: pd.DataFrame | None = None, fig=None, **table_options) -> None:
        if table is not None:
            _save_table(table, self.output_dir / name, **table_options)
        if fig is not None:
            _save_figure(fig, self.output_dir / name)

    def _no_results(self) -> list | None:
        """[the no-results Note] when there are no (finished) runs, else None."""
        return [_data_notice(self.runs.runs, self.runs.root)] if self.runs.runs.empty else None

    def overview(self) -> list:
        """The runs at a glance: a Note with where the results are read from and written to, the profile and
        n_boot, each study manifest's run counts, the runs left out (stopped by their time budget) and what a
        reader must know first (no results, or results of the synthetic sample set); then the runs per system
        (runs, seeds, test sets); then, where the study trained on pooled sets, :func:`_pool_sizes` (natural vs
        balanced, in these runs and by the published sizes) as a Note and a table."""
        runs = self.runs
        lines = [f"Results: `{runs.root}`; tables and figures: `{self.output_dir}`; profile "
                 f"{profiles.current()!r}, scheme {self.scheme!r}, n_boot = {self.n_boot}."]
        lines += [f"study {m['design']['name']}: {m['counts']}" for m in runs.manifests()]
        if not self.left_out.empty:
            lines.append(f"Left out of every section: {len(self.left_out)} run(s) stopped by their time budget before "
                         f"their last step ({', '.join(map(str, self.left_out['run_id']))}); rerun the study to "
                         "finish them.")
        notice = _Note("\n\n".join([*lines, _data_notice(runs.runs, runs.root)]).strip())
        if runs.runs.empty:
            return [notice]
        table = runs.runs.groupby("system", sort=False, dropna=False).agg(
            kind=("kind", "first"), stage=("stage", "first"), variant=("variant", "first"),
            train_set=("train_set", "first"), runs=("run_id", "nunique"), seeds=("seed", lambda s: sorted(set(s))),
            test_sets=("eval_test_sets", "first"))
        pools = _pool_sizes(runs.runs)
        return [notice, table] + ([_pool_statement(pools), pools] if not pools.empty else [])

    def rates(self) -> list:
        """WER/CER per run (:func:`_rate_table`: corpus rate with its utterance-bootstrap CI) and per system
        (:func:`_system_table`: mean over seeds, SD, bootstrap CI of the mean and t-interval over seeds), written
        as ``rates_per_run`` and ``rates`` (tables) and ``rates`` (figure, :func:`plots.fig_rates`, one bar per
        system, labelled by it). Returns [system table, figure]."""
        if notice := self._no_results():
            return notice
        per_run = _rate_table(self.utterances, n_boot=self.n_boot)
        rates = _system_table(self.utterances, n_boot=self.n_boot)
        fig = plots.fig_rates(rates, per_run=per_run)
        self._save("rates_per_run", per_run, caption=f"Corpus WER/CER (%, {self.scheme}) per run, 95% bootstrap CI",
                   label="tab:rates-per-run")
        self._save("rates", rates, fig, caption=f"Corpus WER/CER (%, {self.scheme}), mean over seeds",
                   label="tab:rates")
        return [rates, fig]

    def comparison(self, a: str = _BASELINE, b: str = _PEFT) -> list:
        """Variant ``b`` vs ``a`` (default every LoRA variant vs full fine-tuning; :func:`_compare_methods`: Δ with
        its t-interval and Holm-adjusted t-test over seeds, TOST equivalence within :attr:`margin`, Hedges' g,
        and the utterance-level CI and permutation p conditional on the seeds), written as ``peft_vs_full`` (table
        and figure, :func:`plots.fig_method_comparison`). Returns [the WER and CER :func:`_comparison_statement`
        as a Note, the table, the figure], or [a Note] when no cell has runs of both (yet)."""
        if notice := self._no_results():
            return notice
        try:
            table = _compare_methods(self.utterances, a=a, b=b, margin=self.margin, n_boot=self.n_boot)
        except _NoPairs as e:
            return [_Note(f"{e} No comparison: a study still running, or a design without both.")]
        fig = plots.fig_method_comparison(table)
        self._save("peft_vs_full", table, fig, float_format="%.4g",
                   caption=f"{b} vs {a}: difference of seed means (% points), t-interval and TOST (margin "
                           f"{self.margin:g}) over seeds", label="tab:peft-vs-full")
        statements = _Note("\n\n".join(_comparison_statement(table, metric) for metric in ("wer", "cer")))
        return [statements, table, fig]

    def matrix(self) -> list:
        """The train x test matrix of each group of training runs that differ only in their train set and seed
        (one method, one context: study stage, start, mixture, ...; :func:`_by_group`) and have more than one
        cell: :func:`_matrix_table` ("mean (± sd)" over seeds of WER) and :func:`plots.fig4_heatmap` (all train
        sets, titled by the group), both written as ``matrix_<group>``. Returns [a Note "**<group>**", table,
        figure] per matrix."""
        if notice := self._no_results():
            return notice
        shown = []
        for group, part in _by_group(self.scores).items():
            if part["train_set"].nunique() * part["test_set"].nunique() < 2:
                continue
            table = _matrix_table(part)
            fig = plots.fig4_heatmap(part, condition=None, drop_train_sets=())
            fig.suptitle(group)
            self._save(f"matrix_{_file_label(group)}", table, fig, index=True, float_format=None,
                       caption=f"WER (%, {self.scheme}), {group}: mean (± sd) over seeds")
            shown += [_Note(f"**{group}**"), table, fig]
        return shown

    def gain_forgetting(self) -> list:
        """Gain and forgetting of every run that scored its starting model (:func:`_scored_start`,
        :func:`_gain_forgetting_table` for WER and CER, one group per context and method), written as
        ``gain_forgetting`` (table) and ``gain_forgetting_{wer,cer}`` (figures, :func:`plots.fig_gain_forgetting`,
        one colour per group). Returns [WER figure, CER figure, table], or [a Note] when no run scored its
        starting model."""
        if notice := self._no_results():
            return notice
        with_start = _scored_start(self.utterances)
        if with_start.empty:
            return [_Note("No run scored its starting model (`evaluate_before`): no gain/forgetting table.")]
        table = pd.concat([_gain_forgetting_table(with_start, metric=m, n_boot=self.n_boot) for m in ("wer", "cer")],
                          ignore_index=True)
        table.insert(0, "group", [_group_label(v, c) for v, c in zip(table["variant"], table["context"])])
        self._save("gain_forgetting", table, label="tab:gain-forgetting",
                   caption="Gain and forgetting relative to the starting model (% points, 95% CI)")
        figures = []
        for metric in ("wer", "cer"):
            figures.append(plots.fig_gain_forgetting(table[table["metric"] == metric], hue="group"))
            self._save(f"gain_forgetting_{metric}", fig=figures[-1])
        return [*figures, table]

    def bank(self) -> list:
        """The adapter bank against its alternatives (:func:`bank_comparison`), written as ``bank_vs_pooled``
        (table and figure, :func:`plots.fig_rates`). Returns [the :data:`BANK_COLUMNS` of the table, the figure],
        or [a Note] when the runs hold no adapter-bank evaluation."""
        if notice := self._no_results():
            return notice
        if not (self.utterances["train_set"] == BANK_TRAIN_SET).any():
            return [_Note("No adapter-bank evaluation in this study (designs adapter_bank and offline-mini have one).")]
        table = bank_comparison(self.utterances, n_boot=self.n_boot)
        fig = plots.fig_rates(table)
        self._save("bank_vs_pooled", table, fig, float_format="%.4g",
                   caption=f"Adapter bank vs pooled and own-dialect models (%, {self.scheme}), mean over seeds")
        return [table[BANK_COLUMNS], fig]

    def msa_curve(self, msa: str = MSA) -> list:
        """The MSA train-size curve of each method (:func:`_msa_trainsize_frame`, :func:`plots.fig1_msa_trainsize`),
        table and figure written as ``msa_curve_<variant>``. Returns the figures, or [a Note] when the training
        runs on ``msa`` do not span several train sizes."""
        if notice := self._no_results():
            return notice
        scores = self.scores
        trained_msa = scores[(scores["dialect"] == msa) & (scores["kind"] == TRAINING)]
        if trained_msa["n_train"].nunique() < 2:
            return [_Note("No MSA train-size curve in this study (the paper design has one).")]
        figures = []
        for variant, part in _by_method(trained_msa).items():
            curve = _msa_trainsize_frame(scores[scores["path"].isin(set(part["path"]))], msa=msa)
            figures.append(plots.fig1_msa_trainsize(curve, curve_label=f"{variant} on MSA"))
            self._save(f"msa_curve_{_file_label(variant)}", curve, figures[-1], float_format="%.4g")
        return figures

    def efficiency(self) -> list:
        """The efficiency table (:func:`_efficiency_summary`: per system, mean and SD over seeds of trainable
        parameters, peak memory, wall time, samples/s and bytes on disk) and :func:`plots.fig_efficiency`, both
        written as ``efficiency``. Returns [figure, table], or [a Note] without training runs."""
        if notice := self._no_results():
            return notice
        if not (self.runs.runs["kind"] == TRAINING).any():
            return [_Note("No training runs (evaluations only): no training cost to report.")]
        table = _efficiency_summary(self.runs.runs)
        fig = plots.fig_efficiency(self.runs.runs)
        self._save("efficiency", table, fig, float_format="%.4g", caption="Efficiency, mean and SD over seeds",
                   label="tab:efficiency")
        return [fig, table]

    def paper_figures(self, metrics=("wer", "cer"), msa: str = MSA) -> list:
        """The paper's four figures from these runs (a :func:`arabicpeft.designs.paper` study), one set per method.

        Per variant (:func:`_by_method`; each figure holds that variant's runs, with their starting models'
        scores; :func:`_paper_frames`): Fig. 1, Figs. 2 and 4 once per metric of ``metrics``, Fig. 3, each
        titled with the variant and written as ``fig1_msa_trainsize_<variant>``,
        ``fig2_pretraining_<metric>_<variant>``, ``fig3_pooled_vs_specific_<variant>``,
        ``fig4_heatmap_<metric>_<variant>`` (spaces of the variant label become "_"). Returns the data notice
        first when there is one (no results, or synthetic ones), then the figures: all Fig. 1s, then Figs. 2, 3
        and 4; or [a Note] for a study that is not of the paper's design (no runs of both conditions and on
        ``msa``).
        """
        scores = self.scores
        notice = _data_notice(scores, self.runs.root)
        if scores.empty:
            return [notice]
        trained = _stage(scores, TRAINED)
        conditions = set(trained["condition"])
        if not ({WITH_PRETRAINING, WITHOUT_PRETRAINING} <= conditions and (trained["train_set"] == msa).any()):
            return [_Note("Not a study of the paper's design (no runs trained on MSA and on the dialects with and "
                          "without MSA pre-training): no paper figures.")]
        by_variant = {}
        for variant, rows in _by_method(scores).items():
            frames = _paper_frames(scores[scores["path"].isin(set(rows["path"]))], msa=msa)
            by_variant[variant] = _draw_paper_figures(frames, metrics, curve_label=f"own runs on MSA: {variant}",
                                                      title=variant)
        figures = []
        for stem in ["fig1_msa_trainsize", "fig2_pretraining", "fig3_pooled_vs_specific", "fig4_heatmap"]:
            for variant, drawn in by_variant.items():
                for name, fig in drawn.items():
                    if name.startswith(stem):
                        self._save(f"{name}_{_file_label(variant)}", fig=fig)
                        figures.append(fig)
        return ([notice] if notice else []) + figures
