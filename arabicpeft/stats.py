"""Statistics for the project's own runs: uncertainty of corpus WER/CER and comparisons of systems.

Inputs are plain numpy arrays of per-utterance edit counts ``errors`` and reference lengths ``lengths``
(words for WER, characters for CER), shape (n_utterances,), as in the ``utterances.csv`` file of a run, or of
per-seed corpus rates (%), shape (..., k_seeds). Corpus rate = sum(errors) / sum(lengths) x 100 (percent).
Utterances with an empty reference (length 0) are kept everywhere: they add their (insertion) errors to the
numerator and nothing to the denominator.

Two sources of uncertainty, two kinds of method (research notes §6):

- **Over seeds** (a claim about methods): retraining with another seed (split, initialisation, data order)
  moves a corpus rate by more than the test-set sample does. :func:`seed_t_test` (paired t on per-seed
  differences, or Welch's t) and :func:`tost` (equivalence within a stated margin) take the seed as the unit, so
  they keep their nominal coverage and error rates at 3 seeds (simulated in tests/test_stats.py). Wilcoxon and
  sign tests over 3 seeds could never reach p < 0.05.
- **Over utterances, conditional on the trained models**: the percentile bootstrap of Bisani & Ney (2004) for a
  corpus rate, the paired bootstrap and the paired approximate-randomisation test for two systems on the same
  test set. They say how much the test-set sample alone moves a number for *these* models (seeds); used as a test
  of methods they reject far too often when seeds differ.

Across-seed summaries use scipy (t-interval, Welch) and statsmodels (Holm).

Sources: Bisani & Ney (2004), "Bootstrap estimates for confidence intervals in ASR performance evaluation",
ICASSP; Schuirmann (1987), "A comparison of the two one-sided tests procedure and the power approach for
assessing the equivalence of average bioavailability", J. Pharmacokinetics and Biopharmaceutics 15(6):657–680;
Lakens (2017), "Equivalence tests: a practical primer for t tests, correlations, and meta-analyses", Social
Psychological and Personality Science 8(4):355–362; Welch (1947), Biometrika 34:28–35.

Public: :data:`N_RESAMPLES`, :data:`LEVEL`, :data:`EQUIVALENCE_MARGIN`, :data:`PAIRED_T`, :data:`WELCH_T`,
:data:`START`, :func:`bootstrap_ci`, :func:`paired_bootstrap`, :func:`paired_permutation_test`, :func:`seed_summary`,
:func:`seed_t_test`, :func:`tost`, :func:`hedges_g`, :func:`holm`, :func:`gain_forgetting_ci`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from . import dialects

N_RESAMPLES = 10_000
LEVEL = 0.95
# The default equivalence margin of :func:`tost`, in % points of the rate compared (WER or CER): a smallest
# difference of interest set before looking (Lakens 2017), not from the data. One point is about a third of the
# median seed-to-seed SD of the paper's whisper-small fine-tunes (2.79 WER points over its 72 published cells,
# arabicpeft/reference/ozyilmaz2025_dialects.csv) and at its WERs of 70-85% under 1.5% relative: a difference
# that retraining with another seed routinely exceeds, so no one would choose a method for it.
EQUIVALENCE_MARGIN = 1.0
PAIRED_T, WELCH_T = "paired t over seeds", "Welch t over seeds"  # the tests of seed_t_test and tost
START = "start"  # row label of the starting (pre-fine-tuning) model in the R matrix of gain_forgetting
_CHUNK_CELLS = 4_000_000  # resample matrices are built in chunks of about this many cells (32 MB float64)


def _as_arrays(errors, lengths) -> tuple[np.ndarray, np.ndarray]:
    errors = np.asarray(errors, dtype=float)
    lengths = np.asarray(lengths, dtype=float)
    if errors.ndim != 1 or errors.shape != lengths.shape:
        raise ValueError(f"errors {errors.shape} and lengths {lengths.shape} must be 1-D arrays of equal length.")
    if errors.size == 0:
        raise ValueError("No utterances: errors and lengths are empty.")
    if (errors < 0).any() or (lengths < 0).any():
        raise ValueError("Edit counts and reference lengths cannot be negative.")
    return errors, lengths


def _require_reference(lengths: np.ndarray) -> None:
    if lengths.sum() == 0:
        raise ValueError("All references are empty (sum of lengths is 0): the corpus rate is undefined.")


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    tail = 100.0 * (1.0 - level) / 2.0
    # NaN replicates (a resample drawing only empty references) carry no rate; leave them out.
    low, high = np.nanpercentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _resample_counts(rng: np.random.Generator, n: int, n_boot: int):
    """Yield (chunk, n) matrices: how often each utterance is drawn in each bootstrap replicate.

    Drawing indices with replacement and counting them is the same as resampling utterances; the counts turn
    every replicate's corpus sums into one matrix product instead of n_boot fancy-indexing passes.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}.")
    chunk = max(1, _CHUNK_CELLS // n)
    done = 0
    while done < n_boot:
        c = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(c, n))
        offsets = (np.arange(c) * n)[:, None]
        counts = np.bincount((idx + offsets).ravel(), minlength=c * n).reshape(c, n).astype(float)
        yield counts
        done += c


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 100.0 * num / np.where(den > 0, den, 1.0), np.nan)


def _corpus_rate(errors, lengths) -> float:
    """Corpus error rate in %: sum(errors) / sum(lengths) x 100; NaN when every reference is empty."""
    errors, lengths = _as_arrays(errors, lengths)
    total = lengths.sum()
    return float(100.0 * errors.sum() / total) if total > 0 else float("nan")


def bootstrap_ci(errors, lengths, n_boot: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL) -> dict:
    """Utterance-level percentile bootstrap CI of a corpus error rate (Bisani & Ney 2004).

    Each replicate draws n utterances with replacement and recomputes sum(errors) / sum(lengths) x 100.
    Returns {"estimate", "low", "high"} in %, plus "n_boot" and "level".
    """
    errors, lengths = _as_arrays(errors, lengths)
    _require_reference(lengths)
    rng = np.random.default_rng(seed)
    reps = [
        _rate(counts @ errors, counts @ lengths) for counts in _resample_counts(rng, errors.size, n_boot)
    ]
    low, high = _percentile_interval(np.concatenate(reps), level)
    return {"estimate": _corpus_rate(errors, lengths), "low": low, "high": high, "n_boot": n_boot, "level": level}


def paired_bootstrap(
    errors_a, errors_b, lengths, n_boot: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL
) -> dict:
    """Paired bootstrap of the difference of two systems scored on the same utterances.

    One set of resampled utterance indices per replicate serves both systems, so utterance difficulty cancels.
    Returns {"delta": rate(B) − rate(A) in % points, "low", "high" (percentile CI of delta), "p_b_worse":
    the fraction of replicates with delta > 0 (B has more errors), "n_boot", "level"}.
    """
    errors_a, lengths = _as_arrays(errors_a, lengths)
    errors_b, _ = _as_arrays(errors_b, lengths)
    _require_reference(lengths)
    rng = np.random.default_rng(seed)
    diff = errors_b - errors_a
    reps = [_rate(counts @ diff, counts @ lengths) for counts in _resample_counts(rng, diff.size, n_boot)]
    reps = np.concatenate(reps)
    low, high = _percentile_interval(reps, level)
    return {
        "delta": _corpus_rate(errors_b, lengths) - _corpus_rate(errors_a, lengths),
        "low": low,
        "high": high,
        "p_b_worse": float(np.mean(reps > 0)),
        "n_boot": n_boot,
        "level": level,
    }


def paired_permutation_test(errors_a, errors_b, lengths, n_perm: int = N_RESAMPLES, seed: int = 0) -> dict:
    """Paired approximate-randomisation test of rate(B) − rate(A) on the same utterances.

    Under H0 (the systems are exchangeable) each utterance's A and B edit counts are swapped with probability
    0.5; the two-sided p-value is (count + 1) / (n_perm + 1), count = permutations with |delta| at least the
    observed |delta|. Returns {"delta" (% points, B − A), "p", "n_perm"}. Identical systems give p = 1.
    """
    errors_a, lengths = _as_arrays(errors_a, lengths)
    errors_b, _ = _as_arrays(errors_b, lengths)
    _require_reference(lengths)
    if n_perm < 1:
        raise ValueError(f"n_perm must be at least 1, got {n_perm}.")
    rng = np.random.default_rng(seed)
    diff = errors_b - errors_a
    observed = abs(diff.sum())
    # A relative tolerance keeps ties (equal sums up to float rounding) counted as "at least as extreme".
    tolerance = 1e-9 * max(1.0, observed)
    n = diff.size
    chunk = max(1, _CHUNK_CELLS // n)
    count = 0
    done = 0
    while done < n_perm:
        c = min(chunk, n_perm - done)
        signs = rng.integers(0, 2, size=(c, n)) * 2.0 - 1.0  # -1: swap A and B for this utterance
        count += int(np.sum(np.abs(signs @ diff) >= observed - tolerance))
        done += c
    return {
        "delta": _corpus_rate(errors_b, lengths) - _corpus_rate(errors_a, lengths),
        "p": (count + 1) / (n_perm + 1),
        "n_perm": n_perm,
    }


def seed_summary(values, level: float = LEVEL) -> dict:
    """Mean, SD (ddof = 1) and t-interval of one quantity over k seeds (e.g. WER in % per seed).

    Returns {"mean", "sd", "k", "low", "high", "level"}; the interval is mean ± t_{(1+level)/2, k−1} · sd / √k
    (scipy.stats.t). One seed gives sd, low and high NaN.
    """
    values = np.asarray(values, dtype=float).ravel()
    k = values.size
    if k == 0:
        raise ValueError("No values to summarize.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    mean = float(values.mean())
    if k == 1:
        return {"mean": mean, "sd": float("nan"), "k": 1, "low": float("nan"), "high": float("nan"), "level": level}
    sd = float(values.std(ddof=1))
    half = float(sps.t.ppf((1.0 + level) / 2.0, k - 1)) * sd / math.sqrt(k)
    return {"mean": mean, "sd": sd, "k": k, "low": mean - half, "high": mean + half, "level": level}


def hedges_g(a, b) -> float:
    """Hedges' g: bias-corrected standardized mean difference (mean(a) − mean(b)) / pooled SD.

    g = J · d with d = (mean(a) − mean(b)) / s_p, s_p² = ((n_a − 1) s_a² + (n_b − 1) s_b²) / (n_a + n_b − 2)
    and the small-sample correction J = 1 − 3 / (4 (n_a + n_b) − 9) (Hedges & Olkin 1985). Needs n_a + n_b ≥ 3.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    na, nb = a.size, b.size
    df = na + nb - 2
    if na < 1 or nb < 1 or df < 1:
        raise ValueError(f"Hedges' g needs at least one value per group and 3 in all, got {na} and {nb}.")
    ss_a = ((a - a.mean()) ** 2).sum()
    ss_b = ((b - b.mean()) ** 2).sum()
    pooled_sd = math.sqrt((ss_a + ss_b) / df)
    if pooled_sd == 0:
        raise ValueError("Both groups have zero variance: the standardized difference is undefined.")
    correction = 1.0 - 3.0 / (4.0 * (na + nb) - 9.0)
    return float(correction * (a.mean() - b.mean()) / pooled_sd)


def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (statsmodels multipletests, method="holm"), same order as given."""
    pvalues = np.asarray(pvalues, dtype=float).ravel()
    if pvalues.size == 0:
        return pvalues
    return multipletests(pvalues, method="holm")[1]


def _seed_arrays(rates_a, rates_b, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(rates_a, dtype=float)
    b = np.asarray(rates_b, dtype=float)
    if a.ndim == 0 or b.ndim == 0 or a.shape[:-1] != b.shape[:-1]:
        raise ValueError(f"rates_a {a.shape} and rates_b {b.shape} must be (..., k) arrays of per-seed rates with the "
                         "same leading shape.")
    if paired and a.shape != b.shape:
        raise ValueError(f"Paired seeds need as many seeds per method, got {a.shape[-1]} and {b.shape[-1]}.")
    return a, b


def _scalar(values: np.ndarray):
    """A float for a 0-d result, the array otherwise."""
    values = np.asarray(values, dtype=float)
    return float(values) if values.ndim == 0 else values


def _no_spread(a: np.ndarray, b: np.ndarray, paired: bool) -> np.ndarray:
    """Where the seeds show no spread to test against (up to float rounding): every per-seed difference the
    same (paired), or every seed of both systems the same rate (Welch)."""
    def flat(x):
        return np.ptp(x, axis=-1) <= 1e-9 * np.maximum(1.0, np.abs(x).max(axis=-1))

    return flat(b - a) if paired else flat(a) & flat(b)


def _seed_test_name(paired: bool, k_a: int, k_b: int) -> str | None:
    """The t-test a comparison over seeds can use, or None with fewer than 2 seeds (per method)."""
    if paired and k_a >= 2:
        return PAIRED_T
    if not paired and k_a >= 2 and k_b >= 2:
        return WELCH_T
    return None


def seed_t_test(rates_a, rates_b, paired: bool, level: float = LEVEL) -> dict:
    """Mean-over-seeds rate(B) − rate(A) with a t-interval and a two-sided t-test over seeds (scipy.stats).

    ``rates_a``: shape (..., k_a), one corpus rate (%) per seed of system A (one study per leading index, so a
    simulation passes all its studies at once); ``rates_b``: (..., k_b). ``paired=True``: seed i of A and of B
    share their seed, hence their train/validation split and data order (the runs of a study do), so the k
    per-seed differences B − A are tested (``scipy.stats.ttest_rel``, df = k − 1; needs k_a = k_b >= 2);
    ``paired=False``: Welch's t on the two groups (``ttest_ind(equal_var=False)``, Welch–Satterthwaite df;
    needs k_a, k_b >= 2). The seed is the unit, so the interval and p hold their nominal coverage and error rate
    for the training (seed) variability on this test set at any k (tests/test_stats.py simulates 3 seeds); the
    utterance-level methods of this module are conditional on the trained models. Where the seeds show no spread
    at all (every seed the same difference, e.g. every model at 100% WER) the t-test is undefined: NaN.

    Returns {"delta" (% points, B − A), "low", "high" (t-interval at ``level``), "p", "df", "test" (:data:`PAIRED_T`
    or :data:`WELCH_T`; None and NaN values with too few seeds)}: floats, or arrays of the leading shape.
    """
    a, b = _seed_arrays(rates_a, rates_b, paired)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    delta = b.mean(axis=-1) - a.mean(axis=-1)
    test = _seed_test_name(paired, a.shape[-1], b.shape[-1])
    if test is None:
        nan = np.full(delta.shape, np.nan)
        return {"delta": _scalar(delta), "low": _scalar(nan), "high": _scalar(nan), "p": _scalar(nan),
                "df": _scalar(nan), "test": None}
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)  # no spread: handled below
        result = (sps.ttest_rel(b, a, axis=-1) if test == PAIRED_T
                  else sps.ttest_ind(b, a, axis=-1, equal_var=False))
        interval = result.confidence_interval(confidence_level=level)
    flat = _no_spread(a, b, paired)
    p, low, high = (np.where(flat, np.nan, v) for v in (result.pvalue, interval.low, interval.high))
    return {"delta": _scalar(delta), "low": _scalar(low), "high": _scalar(high), "p": _scalar(p),
            "df": _scalar(result.df), "test": test}


def tost(rates_a, rates_b, paired: bool, margin: float = EQUIVALENCE_MARGIN, alpha: float = 1.0 - LEVEL) -> dict:
    """Equivalence of B and A within ± ``margin`` (% points) over seeds: two one-sided t-tests (TOST;
    Schuirmann 1987, as statsmodels' ``ttost_paired`` / ``ttost_ind(usevar="unequal")``).

    H0: Δ <= −margin or Δ >= margin, Δ = mean-over-seeds rate(B) − rate(A) (the seeds as in :func:`seed_t_test`,
    paired or Welch). p = the larger of the two one-sided p-values; ``equivalent`` = p < ``alpha``, the same as the
    (1 − 2·alpha) t-interval of Δ lying inside (−margin, margin). The margin is the smallest difference that
    matters, set before looking (Lakens 2017); :data:`EQUIVALENCE_MARGIN` says why 1 point. Its error rates
    (equivalence declared at |Δ| = margin; power for identical methods) are simulated in tests/test_stats.py.
    A TOST needs a seed spread: with too few seeds, or none at all, p is NaN and ``equivalent`` None (NaN in
    arrays).

    ``rates_a``, ``rates_b``: (..., k) per-seed corpus rates (%). Returns {"p", "equivalent", "margin",
    "alpha", "low", "high" (the (1 − 2·alpha) interval)}: floats, or arrays of the leading shape.
    """
    a, b = _seed_arrays(rates_a, rates_b, paired)
    if not margin > 0:
        raise ValueError(f"The equivalence margin must be positive (% points), got {margin}.")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be between 0 and 0.5, got {alpha}.")
    test = _seed_test_name(paired, a.shape[-1], b.shape[-1])
    ci = seed_t_test(a, b, paired, level=1.0 - 2.0 * alpha)
    if test is None:
        return {"p": ci["p"], "equivalent": None if np.ndim(ci["p"]) == 0 else np.full(np.shape(ci["p"]), np.nan),
                "margin": margin, "alpha": alpha, "low": ci["low"], "high": ci["high"]}
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        if test == PAIRED_T:
            above = sps.ttest_1samp(b - a, -margin, axis=-1, alternative="greater")  # H0: Δ <= −margin
            below = sps.ttest_1samp(b - a, margin, axis=-1, alternative="less")  # H0: Δ >= margin
        else:
            above = sps.ttest_ind(b + margin, a, axis=-1, equal_var=False, alternative="greater")
            below = sps.ttest_ind(b - margin, a, axis=-1, equal_var=False, alternative="less")
    p = np.where(_no_spread(a, b, paired), np.nan, np.maximum(above.pvalue, below.pvalue))
    equivalent = np.where(np.isnan(p), np.nan, p < alpha)
    if np.ndim(p) == 0:
        equivalent = None if np.isnan(p) else bool(p < alpha)
    return {"p": _scalar(p), "equivalent": equivalent, "margin": margin, "alpha": alpha, "low": ci["low"],
            "high": ci["high"]}


def _trained_on(train_set: str, test_set: str) -> bool:
    """Whether ``test_set`` is one of the varieties ``train_set`` was trained on: itself, or for a pooled set
    (``all``) each of its members. Names outside the dialect registry compare as plain labels."""
    if train_set == test_set:
        return True
    try:
        return test_set in dialects.get(train_set).parts
    except ValueError:
        return False


def _gain_forgetting(R: pd.DataFrame, start: str = START) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gain and forgetting of cross-dialect fine-tuning (research notes §6).

    ``R``: error rates (%), indexed by train set with one row labelled ``start`` for the starting model,
    columns = test sets; R[t, d] = rate on test set d of the model trained on t. Returns ``(gain,
    forgetting)``, two tidy frames:

    - gain: one row per (t, d) where t was trained on d (:func:`_trained_on`: d = t, or d one of the five
      dialects of the pooled ``all``): G_{t,d} = R[start, d] − R[t, d] (> 0: improved).
      Columns train_set, test_set, start, trained, gain.
    - forgetting: one row per (t, d) with d not trained on: F_{t,d} = R[t, d] − R[start, d] (> 0: got worse).
      Columns train_set, test_set, start, trained, forgetting.
    """
    if start not in R.index:
        raise ValueError(f"R has no row {start!r} for the starting model (rows: {list(R.index)}).")
    base = R.loc[start]
    gain, forgetting = [], []
    for t in R.index:
        if t == start:
            continue
        for d in R.columns:
            row = {"train_set": t, "test_set": d, "start": float(base[d]), "trained": float(R.loc[t, d])}
            if _trained_on(t, d):
                gain.append({**row, "gain": row["start"] - row["trained"]})
            else:
                forgetting.append({**row, "forgetting": row["trained"] - row["start"]})
    columns = ["train_set", "test_set", "start", "trained"]
    return (
        pd.DataFrame(gain, columns=columns + ["gain"]),
        pd.DataFrame(forgetting, columns=columns + ["forgetting"]),
    )


def gain_forgetting_ci(utterances: pd.DataFrame, start: str = START, errors: str = "word_errors",
                       lengths: str = "ref_words", n_boot: int = N_RESAMPLES, seed: int = 0,
                       level: float = LEVEL) -> pd.DataFrame:
    """Gain and forgetting with paired bootstrap CIs from per-utterance edit counts.

    ``utterances``: one row per (train_set, test_set, utterance), columns train_set (``start`` for the
    starting model), test_set, utt_index and the ``errors`` / ``lengths`` columns (word_errors / ref_words
    for WER, char_errors / ref_chars for CER), as in a run's utterances.csv with train_set added. Each trained
    model is paired with the starting model on the same test utterances (aligned on utt_index) and compared
    with :func:`paired_bootstrap`.

    Returns a tidy frame: train_set, test_set, kind ("gain" where :func:`_trained_on`, else "forgetting"), value (% points,
    as in :func:`_gain_forgetting`), low, high (percentile CI), p_positive (fraction of replicates > 0).
    """
    required = {"train_set", "test_set", "utt_index", errors, lengths}
    missing = required - set(utterances.columns)
    if missing:
        raise ValueError(f"utterances lacks column(s) {sorted(missing)}.")
    if not (utterances["train_set"] == start).any():
        raise ValueError(f"No utterances of the starting model (train_set == {start!r}).")
    keyed = utterances.set_index(["train_set", "test_set", "utt_index"]).sort_index()
    if not keyed.index.is_unique:
        raise ValueError("Duplicate (train_set, test_set, utt_index) rows: pass one seed/run per train set.")
    rows = []
    for (t, d), trained in utterances[utterances["train_set"] != start].groupby(["train_set", "test_set"], sort=False):
        try:
            base = keyed.loc[(start, d)]
        except KeyError as e:
            raise ValueError(f"The starting model was not scored on test set {d!r}.") from e
        trained = trained.set_index("utt_index").sort_index()
        if not trained.index.equals(base.index):
            raise ValueError(f"Utterances of {t!r} on {d!r} do not match the starting model's (utt_index differs).")
        if not np.array_equal(trained[lengths].to_numpy(), base[lengths].to_numpy()):
            raise ValueError(f"Reference lengths of {t!r} on {d!r} differ from the starting model's.")
        e_start, e_trained, n_ref = base[errors].to_numpy(), trained[errors].to_numpy(), base[lengths].to_numpy()
        if _trained_on(t, d):  # gain = start − trained: system "B" is the starting model
            res = paired_bootstrap(e_trained, e_start, n_ref, n_boot=n_boot, seed=seed, level=level)
            kind = "gain"
        else:  # forgetting = trained − start
            res = paired_bootstrap(e_start, e_trained, n_ref, n_boot=n_boot, seed=seed, level=level)
            kind = "forgetting"
        rows.append({"train_set": t, "test_set": d, "kind": kind, "value": res["delta"], "low": res["low"],
                     "high": res["high"], "p_positive": res["p_b_worse"]})
    return pd.DataFrame(rows, columns=["train_set", "test_set", "kind", "value", "low", "high", "p_positive"])
