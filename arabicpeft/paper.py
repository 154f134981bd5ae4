"""The published results of Özyılmaz, Coler & Valdenegro-Toro (2025) and the paper's statistics.

Ömer Tarik Özyılmaz, Matt Coler, Matias Valdenegro-Toro. "Overcoming Data Scarcity in Multi-Dialectal Arabic
ASR via Whisper Fine-Tuning". Interspeech 2025, arXiv:2506.02627. The data files live in
``arabicpeft/reference/`` (see its README for sources and caveats); every number here is computed from them.

All WER/CER values are percentages (unnormalized corpus WER/CER x 100).

- :func:`figure_data`: the published per-seed rows behind the paper's four figures (drawn by
  :mod:`arabicpeft.paper_plots`, written by :func:`arabicpeft.report.published_figures`).
- :func:`statistics`: the paper's statistics, reproduced: Wilcoxon signed-rank tests, without vs with MSA
  pre-training, per test set over the 6 train-set models and overall over the 36 (train, test) cells (Holm over
  the 6 per-test-set tests); the mean absolute WER/CER difference between the dialect-pooled model and the
  dialect-specific ones over the 6 test sets; and what tests of this size can and cannot show (the smallest
  p-values they can reach at all), as Markdown.
- :data:`WITH_PRETRAINING`, :data:`WITHOUT_PRETRAINING`: the paper's two conditions (a study's runs carry them).

Public: :data:`WITH_PRETRAINING`, :data:`WITHOUT_PRETRAINING`, :data:`CONDITIONS`, :data:`OVERALL`,
:data:`MEAN_ROW`, :func:`figure_data`, :func:`statistics`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .dialects import POOLED

_REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

_DIALECTS_FILE = "ozyilmaz2025_dialects.csv"
_DIALECTS_PER_SEED_FILE = "ozyilmaz2025_dialects_per_seed.csv"
_MSA_TRAINSIZE_FILE = "ozyilmaz2025_msa_trainsize.csv"
_MSA_TRAINSIZE_PER_SEED_FILE = "ozyilmaz2025_msa_trainsize_per_seed.csv"
_LORA_BASELINE_FILE = "finetune_ar_dialects_lora.csv"

WITH_PRETRAINING = "with_msa_pretraining"
WITHOUT_PRETRAINING = "without_pretraining"
CONDITIONS = (WITHOUT_PRETRAINING, WITH_PRETRAINING)
_FULL_MSA_FRACTION = 1.0  # "whisper-small + 100% MSA": the MSA-specific model and the pre-trained start
OVERALL = "overall"  # row label of the test over all (train, test) cells
MEAN_ROW = "mean"  # row label of the column means in pooled_vs_specific

# The paper's Wilcoxon signed-rank test. "exact" must be explicit: the 2-decimal seed-means tie in |d|
# (2.33 and 2.96 twice each), and scipy's method="auto" then falls back to the normal approximation
# (p = 8.2e-4, 8.4e-4 with continuity correction). With floating-point differences of the published means
# the ties are broken by rounding noise, "auto" resolves to "exact" for n <= 50 and gives the same result.
_WILCOXON_OPTIONS = {"method": "exact", "alternative": "two-sided", "zero_method": "wilcox"}
# Means and SDs reported next to the tests: the paper prints population SDs (numpy's default, ddof = 0).
_DESCRIPTIVE_DDOF = 0
# The authors rounded per-seed rates and seed-means to 2 decimals before testing (see seed_means).
# the paper's tests are read at p < 0.05 (the interpretation's verdicts); the project's own CIs use stats.LEVEL
_SIGNIFICANCE = 0.05


def _read(name: str, **kwargs) -> pd.DataFrame:
    path = _REFERENCE_DIR / name
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"Reference file missing from the package: {path}") from e


def _load_dialects() -> pd.DataFrame:
    """Published aggregates of the dialect experiments (paper Fig. 4 and tables), 72 rows.

    Columns: condition, train_set, test_set, wer_mean, wer_sd, cer_mean, cer_sd, n. Rates in %; mean and
    SD (ddof = 1) over n = 3 seeds of the 2-decimal per-seed rates, rounded to 2 decimals.
    """
    return _read(_DIALECTS_FILE)


def _load_dialects_per_seed() -> pd.DataFrame:
    """Per-seed results of the dialect experiments, 216 rows (2 conditions x 6 train x 6 test x 3 seeds).

    Columns: condition, train_set, test_set, seed, wer, cer. Rates in %, rounded to 2 decimals by the authors.
    """
    return _read(_DIALECTS_PER_SEED_FILE)


def _load_msa_trainsize() -> pd.DataFrame:
    """Published aggregates of paper Fig. 1 (MSA train size and zero-shot sizes, MSA test set), 10 rows.

    Columns: system, model, msa_fraction, wer_mean, wer_sd, cer_mean, cer_sd, n. ``msa_fraction`` is the
    fraction of the MSA train set used (0.0 for zero-shot whisper-small, NaN for the other zero-shot sizes).
    """
    return _read(_MSA_TRAINSIZE_FILE, dtype={"model": str})


def _load_msa_trainsize_per_seed() -> pd.DataFrame:
    """Per-seed results of paper Fig. 1, 30 rows. Columns: model, seed, wer, cer (%).

    ``model`` is a string: a train fraction ("0.2" ... "1.0") or a zero-shot model name. For zero-shot rows
    the "seed" picks a random 80% subset of the test set, not a training run.
    """
    return _read(_MSA_TRAINSIZE_PER_SEED_FILE, dtype={"model": str})


def _load_lora_baseline() -> pd.DataFrame:
    """LoRA results of ziadtarek12/finetune-ar-dialects (the project arabicpeft replaces), 50 rows.

    Columns: train, variant (base | msa), test, wer_mean, wer_sd, cer_mean, cer_sd, n, train_time_s,
    peak_mem_mb, trainable (the last three only on own-dialect rows). Rates in %; their evaluation dropped
    empty predictions, which biases them down slightly.
    """
    return _read(_LORA_BASELINE_FILE)


def _msa_trainsize_tidy() -> pd.DataFrame:
    """The Fig. 1 per-seed rows with ``system`` and ``msa_fraction`` joined from the aggregate file.

    Columns: model, seed, wer, cer, system, msa_fraction. The input of :func:`arabicpeft.paper_plots.fig1_msa_trainsize`.
    """
    labels = _load_msa_trainsize()[["model", "system", "msa_fraction"]]
    return _load_msa_trainsize_per_seed().merge(labels, on="model", how="left", validate="many_to_one")


def _seed_means(per_seed: pd.DataFrame, decimals: int | None = None) -> pd.DataFrame:
    """Aggregate a tidy per-seed frame to one row per (condition, train_set, test_set) cell.

    ``per_seed`` needs condition, train_set, test_set, wer, cer (any extra columns are ignored). Returns the
    layout of :func:`_load_dialects`: wer_mean, wer_sd, cer_mean, cer_sd (SD with ddof = 1; NaN for one seed)
    and n. ``decimals=2`` rounds as the authors did; it reproduces ``load_dialects()`` from
    ``_load_dialects_per_seed()`` exactly.
    """
    keys = ["condition", "train_set", "test_set"]
    out = (
        per_seed.groupby(keys, sort=False)
        .agg(
            wer_mean=("wer", "mean"),
            wer_sd=("wer", "std"),
            cer_mean=("cer", "mean"),
            cer_sd=("cer", "std"),
            n=("wer", "size"),
        )
        .reset_index()
    )
    if decimals is not None:
        rate_cols = ["wer_mean", "wer_sd", "cer_mean", "cer_sd"]
        out[rate_cols] = out[rate_cols].round(decimals)
    return out


def _paired_cells(means: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(train_set, test_set) x condition table of seed-means; only cells present in both conditions."""
    column = f"{metric}_mean"
    missing = {"condition", "train_set", "test_set", column} - set(means.columns)
    if missing:
        raise ValueError(f"Frame lacks column(s) {sorted(missing)}; pass load_dialects() or seed_means(...).")
    table = means.pivot_table(index=["test_set", "train_set"], columns="condition", values=column, sort=False)
    absent = [c for c in CONDITIONS if c not in table.columns]
    if absent:
        raise ValueError(f"No rows for condition(s) {absent}: the test pairs {CONDITIONS[0]} with {CONDITIONS[1]}.")
    return table[list(CONDITIONS)].dropna()


def _wilcoxon_row(without: np.ndarray, with_: np.ndarray) -> dict:
    result = stats.wilcoxon(without, with_, **_WILCOXON_OPTIONS)
    return {
        "statistic": float(result.statistic),
        "p": float(result.pvalue),
        "mean_without": float(np.mean(without)),
        "mean_with": float(np.mean(with_)),
        "sd_without": float(np.std(without, ddof=_DESCRIPTIVE_DDOF)),
        "sd_with": float(np.std(with_, ddof=_DESCRIPTIVE_DDOF)),
        "n": int(len(without)),
    }


def _pretraining_tests(means: pd.DataFrame | None = None, metric: str = "wer") -> pd.DataFrame:
    """Wilcoxon signed-rank tests of MSA pre-training, as in the paper.

    ``means``: seed-means in the layout of :func:`_load_dialects` (default: the published ones). Per test set
    the test pairs the train-set models' seed-means without vs with pre-training (n = 6 in the paper); the
    ``overall`` row pairs all (train, test) cells (n = 36). Options: ``scipy.stats.wilcoxon(without, with,
    method="exact", alternative="two-sided", zero_method="wilcox")``; see ``WILCOXON_OPTIONS`` for why
    "exact" must be explicit.

    Returns one row per test set plus ``overall``, indexed by test_set, with columns statistic (W, the smaller
    signed-rank sum), p, p_holm (Holm over the per-test-set tests; NaN on the overall row), mean_without,
    mean_with, sd_without, sd_with (population SDs, ddof = 0, in % like the means) and n (pairs).
    """
    table = _paired_cells(_load_dialects() if means is None else means, metric)
    rows = {}
    for test_set, cells in table.groupby(level="test_set", sort=False):
        rows[test_set] = _wilcoxon_row(cells[WITHOUT_PRETRAINING].to_numpy(), cells[WITH_PRETRAINING].to_numpy())
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["p_holm"] = multipletests(out["p"].to_numpy(), method="holm")[1]
    overall = _wilcoxon_row(table[WITHOUT_PRETRAINING].to_numpy(), table[WITH_PRETRAINING].to_numpy())
    out.loc[OVERALL] = {**overall, "p_holm": np.nan}
    out.index.name = "test_set"
    out["n"] = out["n"].astype(int)
    return out[["statistic", "p", "p_holm", "mean_without", "mean_with", "sd_without", "sd_with", "n"]]


def _pooled_vs_specific(means: pd.DataFrame | None = None, msa: pd.DataFrame | None = None) -> pd.DataFrame:
    """Dialect-pooled vs dialect-specific models, with MSA pre-training, per test set (paper Fig. 3).

    pooled = the ``all`` model; specific = each test set's own model (train_set == test_set); for the MSA test
    set, which has no dialect model, the 100%-MSA model of the train-size experiment (the row of
    ``load_msa_trainsize()`` with msa_fraction == 1.0). ``means`` defaults to :func:`_load_dialects`, ``msa`` to
    :func:`_load_msa_trainsize` (pass ``msa=None`` with project means that contain an ``msa`` train set).

    Returns one row per test set plus a ``mean`` row (column means), indexed by test_set, with columns
    wer_pooled, wer_specific, wer_diff (pooled − specific), wer_abs_diff and the same for cer, all in %.
    The ``mean`` row's wer_abs_diff / cer_abs_diff are the paper's mean absolute differences.
    """
    published = means is None
    means = _load_dialects() if published else means
    with_ = means[means["condition"] == WITH_PRETRAINING]
    columns = ["wer_mean", "cer_mean"]
    pooled = with_[with_["train_set"] == POOLED].set_index("test_set")[columns]
    specific = with_[with_["train_set"] == with_["test_set"]].set_index("test_set")[columns]
    if published or msa is not None:
        msa = _load_msa_trainsize() if msa is None else msa
        full = msa[msa["msa_fraction"] == _FULL_MSA_FRACTION]
        if len(full) != 1:
            raise ValueError(f"Expected one msa_fraction == {_FULL_MSA_FRACTION} row in the MSA data, got {len(full)}.")
        msa_test = [t for t in pooled.index if t not in specific.index]
        for test_set in msa_test:  # the test set(s) without a dialect-specific model: MSA
            specific.loc[test_set] = full[columns].iloc[0].to_numpy()
    missing = [t for t in pooled.index if t not in specific.index]
    if missing:
        raise ValueError(f"No specific model for test set(s) {missing}.")
    out = pd.DataFrame(index=pooled.index)
    for metric in ("wer", "cer"):
        out[f"{metric}_pooled"] = pooled[f"{metric}_mean"]
        out[f"{metric}_specific"] = specific.loc[pooled.index, f"{metric}_mean"]
        out[f"{metric}_diff"] = out[f"{metric}_pooled"] - out[f"{metric}_specific"]
        out[f"{metric}_abs_diff"] = out[f"{metric}_diff"].abs()
    out.loc[MEAN_ROW] = out.mean()
    out.index.name = "test_set"
    return out


def _pooled_vs_specific_per_seed() -> pd.DataFrame:
    """The published per-seed rows behind paper Fig. 3: every model with MSA pre-training, and for the MSA test
    set, which has no dialect model, the 100%-MSA model of the train-size experiment (train_set = test_set =
    "msa"). Columns: train_set, test_set, seed, wer, cer."""
    per_seed = _load_dialects_per_seed()
    with_ = per_seed[per_seed["condition"] == WITH_PRETRAINING]
    msa_tidy = _msa_trainsize_tidy()
    full = msa_tidy[msa_tidy["msa_fraction"] == _FULL_MSA_FRACTION]
    has_specific = set(with_.loc[with_["train_set"] == with_["test_set"], "test_set"])
    msa_test = sorted(set(with_.loc[with_["train_set"] == POOLED, "test_set"]) - has_specific)
    columns = ["train_set", "test_set", "seed", "wer", "cer"]
    extra = [full.assign(train_set=t, test_set=t)[columns] for t in msa_test]
    return pd.concat([with_[columns], *extra], ignore_index=True)


def figure_data() -> dict[str, pd.DataFrame]:
    """The published per-seed rows behind the paper's figures, in the layout of :mod:`arabicpeft.plots`.

    Returns {"msa_trainsize": Fig. 1's rows (model, seed, wer, cer, system, msa_fraction: the MSA train-size
    curve and the zero-shot Whisper sizes), "dialects": Figs. 2 and 4's rows (condition, train_set, test_set,
    seed, wer, cer: 2 conditions x 6 train x 6 test x 3 seeds), "pooled_vs_specific": Fig. 3's rows
    (:func:`_pooled_vs_specific_per_seed`)}. Rates in %, rounded to 2 decimals by the authors.
    """
    return {"msa_trainsize": _msa_trainsize_tidy(), "dialects": _load_dialects_per_seed(),
            "pooled_vs_specific": _pooled_vs_specific_per_seed()}


def statistics() -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The paper's statistics, reproduced from its published seed-means: (tests, pooled, text).

    ``tests``: :func:`_pretraining_tests` (Wilcoxon signed-rank, without vs with MSA pre-training, per test set
    and overall; Holm over the per-test-set tests), ``pooled``: :func:`_pooled_vs_specific` (its ``mean`` row
    holds the paper's mean absolute pooled − specific differences), ``text``: :func:`_interpretation` of the two
    (Markdown): what they reproduce and what tests of this size can and cannot show.
    """
    tests, pooled = _pretraining_tests(), _pooled_vs_specific()
    return tests, pooled, _interpretation(tests, pooled)


def _min_wilcoxon_p(n: int) -> float:
    """Smallest two-sided p-value an exact Wilcoxon signed-rank test on n pairs can give: 2 / 2**n.

    Reached when all n differences have the same sign (W = 0): 0.25 at n = 3 (seeds), 0.03125 at n = 6.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    # Under H0 each of the 2**n sign patterns is equally likely; W = 0 is one pattern per tail.
    return min(1.0, 2.0 / 2**n)


def _min_holm_p(n: int, m: int) -> float:
    """Smallest Holm-adjusted p-value over m exact Wilcoxon tests on n pairs each (statsmodels Holm).

    0.1875 for m = 6 tests of n = 6 pairs: the paper's per-test-set tests could never reach p < 0.05.
    """
    if m < 1:
        raise ValueError(f"m must be at least 1, got {m}.")
    return float(multipletests([_min_wilcoxon_p(n)] * m, method="holm")[1].min())


def _interpretation(tests: pd.DataFrame | None = None, pooled: pd.DataFrame | None = None,
                   n_seeds: int | None = None) -> str:
    """The paper's statistics in words, as Markdown: what was reproduced and what such tests can show.

    ``tests``: :func:`_pretraining_tests` output (default: on the published means); ``pooled``:
    :func:`_pooled_vs_specific` output (default: published); ``n_seeds``: seeds per system (default: the
    published ``n``, 3). States the overall Wilcoxon W, p, means and population SDs (WER %), the pooled vs
    specific mean absolute differences (% points), and the p-value floors of exact Wilcoxon tests on the
    per-test-set n and on n_seeds (:func:`_min_wilcoxon_p`) and of Holm over the per-test-set tests
    (:func:`_min_holm_p`), against the smallest Holm-adjusted p the data give.
    """
    tests = _pretraining_tests() if tests is None else tests
    pooled = _pooled_vs_specific() if pooled is None else pooled
    n_seeds = int(_load_dialects()["n"].max()) if n_seeds is None else n_seeds
    overall, mean = tests.loc[OVERALL], pooled.loc[MEAN_ROW]
    n_models = int(tests.drop(index=OVERALL)["n"].max())
    n_tests = len(tests) - 1
    n_cells = int(overall["n"])
    floor_models, floor_seeds = _min_wilcoxon_p(n_models), _min_wilcoxon_p(n_seeds)
    floor_holm = _min_holm_p(n_models, n_tests)
    # the verdicts hold only where the floor itself is at or above the 0.05 level
    seeds_verdict = (f", so no {n_seeds}-seed comparison can reach p < {_SIGNIFICANCE}"
                     if floor_seeds >= _SIGNIFICANCE else "")
    holm_verdict = (f", not below {_SIGNIFICANCE} whatever the data: the per-test-set tests could not have been "
                    "significant" if floor_holm >= _SIGNIFICANCE else "")
    return f"""
**Reproduced.** Overall Wilcoxon over the {n_cells} (train, test) cells: W = {overall["statistic"]:.2f},
p = {overall["p"]:.2g}; mean WER {overall["mean_without"]:.2f} without vs {overall["mean_with"]:.2f} with MSA
pre-training (population SD {overall["sd_without"]:.2f} / {overall["sd_with"]:.2f}). Pooled vs specific: mean
absolute difference {mean["wer_abs_diff"]:.2f} WER and {mean["cer_abs_diff"]:.2f} CER points.

**What these tests can and cannot show.** An exact two-sided Wilcoxon signed-rank test on n pairs cannot give a
p-value below 2 / 2^n, however large and consistent the effect:

- n = {n_models} (the train-set models per test set): minimum p = {floor_models:.4g};
- n = {n_seeds} (seeds, for any comparison of two systems over seeds): minimum p = {floor_seeds:.4g}{seeds_verdict};
- Holm over the paper's {n_tests} per-test-set tests: the smallest adjusted p is {floor_holm:.4g}{holm_verdict}.
  The smallest adjusted p the data give is {tests["p_holm"].min():.4g}.

The overall test treats its {n_cells} cells as independent pairs, but they share models (each train set
appears on every test set) and test sets, so its p-value overstates the evidence. The tests use seed-means and
ignore the test-set sampling error of each WER; the project's own analysis (notebook 03) resamples utterances
instead (bootstrap CIs, paired permutation tests).
"""
