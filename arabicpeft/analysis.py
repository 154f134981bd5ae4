"""The statistics of a study's runs: rates with CIs per run and per system, methods compared over seeds, gain and
forgetting, the adapter bank against its alternatives.

Every function takes the tidy frames of the one results reader, :func:`arabicpeft.results.load_runs`: per-utterance
edit counts (``Runs.utterances()``) or corpus scores (``Runs.scores()``), and returns a table; every number comes
from them through :mod:`arabicpeft.stats`. :class:`arabicpeft.report.StudyReport` writes them with their figures
(notebook 03); :func:`bank_comparison` is also notebook 06's table.

A *system* is a run without its seed (the reader's ``system`` column: every config field but the seed and
where/how it was run, with its start, stage and kind; a continued adapter and a run stopped by its time budget are
systems of their own). Every table names a system by that label — each field that differs between systems — so two
systems never share a row. Its seeds are scored on the same test utterances (the test sets do not depend on the
seed), so per-utterance counts line up across seeds and methods on utt_index, and the mean over seeds of corpus
rates equals the corpus rate of the seed-averaged counts (the reference lengths are shared). Claims about methods
are made over seeds (:func:`stats.seed_t_test`, :func:`stats.tost`); the utterance-level intervals and tests beside
them are conditional on the seeds trained. All rates and differences are in % (points).

Public: :func:`scored_rows`, :func:`rate_table`, :func:`system_table`, :data:`BASELINE`, :data:`PEFT`,
:func:`compare_methods`, :class:`NoPairs`, :func:`comparison_statement`, :func:`gain_forgetting_table`,
:func:`bootstrap_replicates`, :data:`BANK_COLUMNS`, :func:`bank_comparison`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import methods, profiles, stats
from .dialects import POOLED
from .plots import require_columns
from .results import BANK_TRAIN_SET, START, TRAINED, TRAINING

_METRICS = {"wer": ("word_errors", "ref_words"), "cer": ("char_errors", "ref_chars")}
# a system: one config, all its seeds (``system`` decides; the others are its readable parts)
_SYSTEM_KEYS = ["system", "study", "stage", "variant", "train_set"]
_CELL_KEYS = ["context", "train_set", "test_set"]  # what a method comparison pairs: same context, data, test set
# The default comparison: rate(b) − rate(full) for every adapter variant b ("peft": a variant whose method trains
# an adapter, :func:`_matches`)
BASELINE, PEFT = "full", "peft"


def scored_rows(frame: pd.DataFrame, scored: str) -> pd.DataFrame:
    """The rows of the trained models (TRAINED) or of their starting models (START)."""
    return frame[frame["scored"] == scored] if "scored" in frame.columns else frame


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


def rate_table(utts: pd.DataFrame, metrics=("wer", "cer"), n_boot: int = stats.N_RESAMPLES, seed: int = 0,
               level: float = stats.LEVEL) -> pd.DataFrame:
    """Corpus WER/CER of every run on every test set with an utterance bootstrap CI (stats.bootstrap_ci).

    ``utts``: ``Runs.utterances()`` rows (start rows are left out). Returns one row per (system, study, stage,
    variant, train_set, seed, test_set) with n_utterances and, per metric, ``{metric}``, ``{metric}_low``,
    ``{metric}_high`` (%).
    """
    keys = _SYSTEM_KEYS + ["seed", "test_set"]
    require_columns(utts, keys + ["utt_index"] + [c for m in metrics for c in _metric_columns(m)], "rate_table")
    rows = []
    for values, run in scored_rows(utts, TRAINED).groupby(keys, sort=False, dropna=False):
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

    Returns one row per (system, study, stage, variant, train_set, test_set) with k (seeds), n_utterances and, per
    metric: ``{metric}`` (mean over seeds, %), ``{metric}_sd`` (over seeds, ddof = 1), ``{metric}_low`` /
    ``{metric}_high`` (utterance bootstrap CI of the seed mean: the seed-averaged counts resampled, test-set
    sampling only) and ``{metric}_t_low`` / ``{metric}_t_high`` (t-interval over the k seeds, training
    variability only; NaN for one seed).
    """
    keys = _SYSTEM_KEYS + ["test_set"]
    require_columns(utts, keys + ["seed", "utt_index"], "system_table")
    rows = []
    for values, system in scored_rows(utts, TRAINED).groupby(keys, sort=False, dropna=False):
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
    """The variants of a cell that ``name`` names: its exact label, every variant of method ``name``, or for
    :data:`PEFT` every variant of a method that trains an adapter (its label's first word is not a method
    without one: "lora", "dora", "vera", ... but not "full")."""
    exact = [v for v in variants if v == name]
    if name == PEFT and not exact:
        whole = {n for n, m in methods.METHODS.items() if not m.peft_config}
        return [v for v in variants if str(v).split(" ")[0] not in whole]
    return exact or [v for v in variants if str(v).split(" ")[0] == name]


def compare_methods(utts: pd.DataFrame, a: str = BASELINE, b: str = PEFT, metrics=("wer", "cer"),
                    margin: float = stats.EQUIVALENCE_MARGIN, n_boot: int = stats.N_RESAMPLES, seed: int = 0,
                    level: float = stats.LEVEL) -> pd.DataFrame:
    """Variant ``b`` vs variant ``a`` (default every adapter variant vs full fine-tuning) per cell and metric.

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
    trained = scored_rows(utts, TRAINED)
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
        raise NoPairs(f"No (context, train_set, test_set) cell has runs of both {a!r} and {b!r}.")
    tested = out["p"].notna().to_numpy()
    out["p_holm"] = np.nan
    out.loc[tested, "p_holm"] = stats.holm(out.loc[tested, "p"].to_numpy())
    return out[_COMPARISON_COLUMNS]


_COMPARISON_COLUMNS = _CELL_KEYS + [
    "stage", "metric", "a", "b", "k_a", "k_b", "n_utterances", "rate_a", "rate_b", "delta", "low", "high", "df",
    "test", "p", "p_holm", "margin", "p_equivalence", "equivalent", "hedges_g", "seed_sd", "utt_low", "utt_high",
    "utt_p"]


class NoPairs(ValueError):
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


def comparison_statement(comparison: pd.DataFrame, metric: str = "wer") -> str:
    """What the :func:`compare_methods` table shows for ``metric``, in words: the largest |Δ|; in how many cells
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


def gain_forgetting_table(utts: pd.DataFrame, metric: str = "wer", by=("context", "variant"),
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


_CI_PROFILE_N_BOOT = 2_000  # bootstrap replicates under the ci profile (tiny runs: the numbers mean nothing)


def bootstrap_replicates(n_boot: int | None) -> int:
    """``n_boot``, or the default: :data:`stats.N_RESAMPLES`, :data:`_CI_PROFILE_N_BOOT` under the ci profile."""
    return n_boot or (_CI_PROFILE_N_BOOT if profiles.current() == "ci" else stats.N_RESAMPLES)


BANK_COLUMNS = ["role", "variant", "test_set", "k", "wer", "wer_low", "wer_high", "cer"]  # bank_comparison, shown
ROUTINGS = ("oracle", "predicted", "pooled adapter", "base")  # a bank evaluation's routing metrics, in this order


def routing_table(runs: pd.DataFrame, scheme: str = "raw") -> pd.DataFrame:
    """The adapter bank routed by its dialect router (:mod:`arabicpeft.routing`) against the data's own label
    ("oracle"), the pooled adapter alone and the base, per bank evaluation and test set, from each one's
    ``evaluation["routing"]``: columns seed, test_set, routing (:data:`ROUTINGS`), wer, cer (%), n, and the
    identifier's accuracy on that test set (%) and the threshold. ``runs``: ``Runs.runs``. Empty when no bank
    evaluation holds a routing section."""
    from .results import read_results

    rows = []
    for _, run in runs[runs["train_set"] == BANK_TRAIN_SET].iterrows():
        routing = read_results(run["path"]).get("evaluation", {}).get("routing")
        for label in ROUTINGS if routing else ():
            for test_set, scored in routing["metrics"].get(label, {}).items():
                accuracy = routing["identifier"]["accuracy_per_test_set"].get(test_set)
                rows.append({"seed": run["seed"], "test_set": test_set, "routing": label,
                             "wer": scored[scheme]["wer"], "cer": scored[scheme]["cer"],
                             "n": scored[scheme]["n_utterances"],
                             "identifier_accuracy": None if accuracy is None else 100.0 * accuracy,
                             "threshold": routing["threshold"]})
    return pd.DataFrame(rows, columns=["seed", "test_set", "routing", "wer", "cer", "n", "identifier_accuracy",
                                       "threshold"])


def routing_confusion(runs: pd.DataFrame) -> pd.DataFrame:
    """The dialect router's confusion matrix summed over the bank evaluations of ``runs`` (``Runs.runs``): counts,
    index the true dialect, columns the predicted one. Empty when no bank evaluation holds a routing section."""
    from .results import read_results

    total = None
    for path in runs.loc[runs["train_set"] == BANK_TRAIN_SET, "path"]:
        routing = read_results(path).get("evaluation", {}).get("routing")
        if routing:
            ident = routing["identifier"]
            frame = pd.DataFrame(ident["matrix"], index=ident["classes"], columns=ident["classes"])
            total = frame if total is None else total.add(frame, fill_value=0).astype(int)
    return total if total is not None else pd.DataFrame()


def bank_comparison(utts: pd.DataFrame, n_boot: int | None = None, seed: int = 0,
                    level: float = stats.LEVEL) -> pd.DataFrame:
    """The adapter bank against the alternatives on the test sets it covers: the base model (the bank's
    adapters disabled), every pooled model (dialect "all": natural or balanced mixture, LoRA or full), and
    each test set's own single-dialect LoRA and full fine-tunes started from the base (the stage the bank's
    adapters come from, and any other such stage).

    ``utts``: ``Runs.utterances()`` (with the start rows). Returns :func:`system_table` rows (mean over
    seeds, SD, utterance-bootstrap CI) with a ``role`` column ("base", "adapter bank", "pooled <mixture>",
    "own dialect"), and ``system`` and ``variant`` relabelled "<role>: <label>" for legends. ``n_boot``: bootstrap
    replicates (None: :func:`bootstrap_replicates`).
    """
    require_columns(utts, ["path", "train_set", "scored", "test_set", "dialect", "kind", "start_model"],
                    "bank_comparison")
    n_boot = bootstrap_replicates(n_boot)
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
    table = system_table(rows, n_boot=n_boot, seed=seed, level=level)
    roles = rows.drop_duplicates("system").set_index("system")["role"]
    table.insert(0, "role", table["system"].map(roles))
    return table
