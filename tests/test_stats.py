"""Statistics for the project's runs, checked against scipy/statsmodels and values computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from arabicpeft import stats

N_BOOT = 2000  # enough for the properties tested; the 10,000 default is not the point here


@pytest.fixture
def corpus():
    """Two systems on 400 utterances; B has about 10% more errors than A. Includes empty references."""
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 15, size=400)
    lengths[:10] = 0  # empty references: their errors are insertions
    errors_a = rng.binomial(lengths + 1, 0.30)
    errors_b = rng.binomial(lengths + 1, 0.40)
    return errors_a, errors_b, lengths


# corpus_rate ---------------------------------------------------------------------------------------------


def test_corpus_rate_by_hand():
    assert stats._corpus_rate([1, 2, 0], [4, 4, 2]) == pytest.approx(30.0)


def test_corpus_rate_keeps_empty_references():
    # The empty reference adds its 2 insertions to the numerator and nothing to the denominator.
    assert stats._corpus_rate([1, 2], [4, 0]) == pytest.approx(75.0)
    assert math.isnan(stats._corpus_rate([3], [0]))


def test_corpus_rate_rejects_bad_input():
    with pytest.raises(ValueError):
        stats._corpus_rate([1, 2], [3])
    with pytest.raises(ValueError):
        stats._corpus_rate([], [])
    with pytest.raises(ValueError):
        stats._corpus_rate([-1], [3])


# bootstrap_ci --------------------------------------------------------------------------------------------


def test_bootstrap_ci_brackets_estimate_and_is_reproducible(corpus):
    errors, _, lengths = corpus
    ci = stats.bootstrap_ci(errors, lengths, n_boot=N_BOOT, seed=3)
    assert ci["estimate"] == pytest.approx(stats._corpus_rate(errors, lengths))
    assert ci["low"] < ci["estimate"] < ci["high"]
    assert ci == stats.bootstrap_ci(errors, lengths, n_boot=N_BOOT, seed=3)
    assert ci != stats.bootstrap_ci(errors, lengths, n_boot=N_BOOT, seed=4)
    wider = stats.bootstrap_ci(errors, lengths, n_boot=N_BOOT, seed=3, level=0.99)
    assert wider["low"] <= ci["low"] and wider["high"] >= ci["high"]


def test_bootstrap_ci_matches_a_loop_over_index_resamples(corpus):
    """The vectorised version equals the textbook loop: draw indices, recompute the corpus rate."""
    errors, _, lengths = corpus
    n_boot = 300
    ci = stats.bootstrap_ci(errors, lengths, n_boot=n_boot, seed=11)
    rng = np.random.default_rng(11)
    idx = rng.integers(0, len(errors), size=(n_boot, len(errors)))
    reps = 100 * errors[idx].sum(axis=1) / lengths[idx].sum(axis=1)
    low, high = np.percentile(reps, [2.5, 97.5])
    assert ci["low"] == pytest.approx(low)
    assert ci["high"] == pytest.approx(high)


def test_bootstrap_chunking_does_not_change_the_draws(corpus, monkeypatch):
    """Replicates are built in chunks to bound memory; the chunk size must not change the result."""
    errors, _, lengths = corpus
    whole = stats.bootstrap_ci(errors, lengths, n_boot=300, seed=11)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 7 * len(errors))  # 7 replicates per chunk, last one partial
    assert stats.bootstrap_ci(errors, lengths, n_boot=300, seed=11) == whole


def test_bootstrap_ci_width_shrinks_with_more_utterances():
    rng = np.random.default_rng(0)
    small_len = rng.integers(5, 10, 50)
    big_len = np.tile(small_len, 16)
    small_err = rng.binomial(small_len, 0.3)
    big_err = np.tile(small_err, 16)
    small = stats.bootstrap_ci(small_err, small_len, n_boot=N_BOOT)
    big = stats.bootstrap_ci(big_err, big_len, n_boot=N_BOOT)
    assert (big["high"] - big["low"]) < 0.5 * (small["high"] - small["low"])  # ~ 1/sqrt(16)


def test_bootstrap_ci_constant_rate_has_zero_width():
    lengths = np.full(30, 10)
    ci = stats.bootstrap_ci(lengths // 2, lengths, n_boot=N_BOOT)
    assert ci["low"] == ci["high"] == ci["estimate"] == pytest.approx(50.0)


def test_bootstrap_ci_all_empty_references_raises():
    with pytest.raises(ValueError, match="empty"):
        stats.bootstrap_ci([1, 2], [0, 0])


# paired_bootstrap ----------------------------------------------------------------------------------------


def test_paired_bootstrap_identical_systems(corpus):
    errors, _, lengths = corpus
    res = stats.paired_bootstrap(errors, errors, lengths, n_boot=N_BOOT)
    assert res["delta"] == 0.0
    assert res["low"] <= 0.0 <= res["high"]
    assert res["p_b_worse"] == 0.0


def test_paired_bootstrap_detects_worse_system(corpus):
    errors_a, errors_b, lengths = corpus
    res = stats.paired_bootstrap(errors_a, errors_b, lengths, n_boot=N_BOOT, seed=1)
    expected = stats._corpus_rate(errors_b, lengths) - stats._corpus_rate(errors_a, lengths)
    assert res["delta"] == pytest.approx(expected)
    assert 0 < res["low"] < res["delta"] < res["high"]
    assert res["p_b_worse"] == 1.0
    swapped = stats.paired_bootstrap(errors_b, errors_a, lengths, n_boot=N_BOOT, seed=1)
    assert swapped["delta"] == pytest.approx(-res["delta"])
    assert swapped["p_b_worse"] == 0.0
    assert res == stats.paired_bootstrap(errors_a, errors_b, lengths, n_boot=N_BOOT, seed=1)


def test_paired_bootstrap_is_narrower_than_unpaired(corpus):
    """Pairing removes utterance difficulty: the CI of the difference is narrower than either system's."""
    errors_a, _, lengths = corpus
    errors_b = errors_a + (np.arange(len(errors_a)) % 10 == 0)  # B = A plus one error on every 10th utterance
    paired = stats.paired_bootstrap(errors_a, errors_b, lengths, n_boot=N_BOOT)
    single = stats.bootstrap_ci(errors_a, lengths, n_boot=N_BOOT)
    assert (paired["high"] - paired["low"]) < (single["high"] - single["low"])


# paired_permutation_test ---------------------------------------------------------------------------------


def test_permutation_identical_systems_p_is_one(corpus):
    errors, _, lengths = corpus
    res = stats.paired_permutation_test(errors, errors, lengths, n_perm=N_BOOT)
    assert res["delta"] == 0.0
    assert res["p"] == 1.0


def test_permutation_detects_difference(corpus):
    errors_a, errors_b, lengths = corpus
    res = stats.paired_permutation_test(errors_a, errors_b, lengths, n_perm=N_BOOT, seed=2)
    assert res["p"] == pytest.approx(1 / (N_BOOT + 1))  # no permutation is as extreme: the floor (0+1)/(n+1)
    assert res == stats.paired_permutation_test(errors_a, errors_b, lengths, n_perm=N_BOOT, seed=2)


def test_permutation_matches_exact_enumeration():
    """With 8 utterances all 2**8 swap patterns can be enumerated; the Monte-Carlo p must be close."""
    errors_a = np.array([3, 1, 4, 1, 5, 2, 6, 5])
    errors_b = np.array([2, 3, 4, 4, 6, 2, 9, 5])
    lengths = np.full(8, 10)
    diff = errors_b - errors_a
    signs = np.array(np.meshgrid(*[[-1, 1]] * 8)).reshape(8, -1).T
    exact = np.mean(np.abs(signs @ diff) >= abs(diff.sum()))
    res = stats.paired_permutation_test(errors_a, errors_b, lengths, n_perm=20_000, seed=0)
    # within 5 Monte-Carlo standard errors (0.014; 0.01 was 3.6 of them: a 3e-4 chance of failing for another draw)
    assert res["p"] == pytest.approx(exact, abs=5 * np.sqrt(exact * (1 - exact) / 20_000))
    assert res["delta"] == pytest.approx(100 * diff.sum() / lengths.sum())


# across seeds --------------------------------------------------------------------------------------------


def test_seed_summary_against_scipy():
    values = [72.1, 75.3, 69.0]
    s = stats.seed_summary(values)
    assert s["k"] == 3
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["sd"] == pytest.approx(np.std(values, ddof=1))
    low, high = sps.t.interval(0.95, 2, loc=np.mean(values), scale=sps.sem(values))
    assert (s["low"], s["high"]) == pytest.approx((low, high))
    # t = 4.303 at k = 3 (research notes §6)
    assert (s["high"] - s["mean"]) / (s["sd"] / math.sqrt(3)) == pytest.approx(4.303, abs=1e-3)


def test_seed_summary_single_seed_is_nan_not_a_crash():
    with np.errstate(all="raise"):
        s = stats.seed_summary([80.5])
    assert s["mean"] == 80.5 and s["k"] == 1
    assert math.isnan(s["sd"]) and math.isnan(s["low"]) and math.isnan(s["high"])
    with pytest.raises(ValueError):
        stats.seed_summary([])


def test_hedges_g_hand_computed():
    # means 2 and 5, both SDs 1 -> d = -3; J = 1 - 3 / (4 * 6 - 9) = 0.8 -> g = -2.4
    assert stats.hedges_g([1, 2, 3], [4, 5, 6]) == pytest.approx(-2.4)
    # unequal sizes: a = [1, 3] (mean 2, SS 2), b = [2, 4, 6] (mean 4, SS 8): s_p = sqrt(10 / 3)
    d = (2 - 4) / math.sqrt(10 / 3)
    assert stats.hedges_g([1, 3], [2, 4, 6]) == pytest.approx(d * (1 - 3 / (4 * 5 - 9)))
    with pytest.raises(ValueError):
        stats.hedges_g([1.0], [2.0])
    with pytest.raises(ValueError):
        stats.hedges_g([1.0, 1.0], [2.0, 2.0])


def test_holm_matches_statsmodels_and_hand():
    p = [0.01, 0.04, 0.03, 0.20]
    np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1])
    np.testing.assert_allclose(stats.holm(p), [0.04, 0.09, 0.09, 0.20])  # 4*.01, max(3*.03, .04), 2*.04, .20
    assert stats.holm([]).size == 0


# over seeds: t-test and TOST ----------------------------------------------------------------------------


def test_seed_t_test_paired_by_hand():
    a, b = np.array([50.0, 52.0, 49.0]), np.array([51.0, 52.5, 51.0])
    d = b - a  # 1.0, 0.5, 2.0
    res = stats.seed_t_test(a, b, paired=True)
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert res["test"] == stats.PAIRED_T and res["df"] == 2
    assert res["delta"] == pytest.approx(7 / 6)
    assert (res["low"], res["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    assert res["p"] == pytest.approx(2 * sps.t.sf(t, 2))


def test_seed_t_test_welch_and_too_few_seeds():
    a, b = np.array([50.0, 52.0, 49.0]), np.array([55.0, 53.0])
    res = stats.seed_t_test(a, b, paired=False)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert res["test"] == stats.WELCH_T and res["p"] == pytest.approx(ref.pvalue)
    assert res["df"] == pytest.approx(ref.df) and res["delta"] == pytest.approx(54 - 151 / 3)
    one = stats.seed_t_test(a[:1], b[:1], paired=True)
    assert one["test"] is None and one["delta"] == pytest.approx(5.0)
    assert math.isnan(one["p"]) and math.isnan(one["low"])
    assert stats.seed_t_test(a, b[:1], paired=False)["test"] is None
    with pytest.raises(ValueError, match="as many seeds"):
        stats.seed_t_test(a, b, paired=True)


def test_seed_t_test_without_any_spread_is_undefined():
    a = np.array([50.0, 52.0, 49.0])
    for b in (a, a + 2.0):  # identical systems, or a constant difference: no variance to test against
        res = stats.seed_t_test(a, b, paired=True)
        assert res["delta"] == pytest.approx(b.mean() - a.mean()) and res["test"] == stats.PAIRED_T
        assert math.isnan(res["p"]) and math.isnan(res["low"]) and math.isnan(res["high"])
        equivalence = stats.tost(a, b, paired=True)
        assert equivalence["equivalent"] is None and math.isnan(equivalence["p"])


def test_seed_t_test_takes_many_studies_at_once():
    rng = np.random.default_rng(3)
    a, b = rng.normal(50, 1, (4, 3)), rng.normal(50, 1, (4, 3))
    many = stats.seed_t_test(a, b, paired=True)
    for i in range(4):
        one = stats.seed_t_test(a[i], b[i], paired=True)
        assert (many["p"][i], many["low"][i], many["high"][i]) == pytest.approx((one["p"], one["low"], one["high"]))


def test_tost_matches_statsmodels():
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    a, b = np.array([50.0, 51.0, 52.0, 50.5]), np.array([50.4, 51.3, 52.1, 50.2])
    paired = stats.tost(a, b, paired=True, margin=1.0)
    assert paired["p"] == pytest.approx(ttost_paired(b, a, -1.0, 1.0)[0])
    assert paired["equivalent"] is True and paired["margin"] == 1.0
    welch = stats.tost(a, b, paired=False, margin=1.0)
    assert welch["p"] == pytest.approx(ttost_ind(b, a, -1.0, 1.0, usevar="unequal")[0])
    # equivalent exactly when the 90% t-interval lies inside the margin
    ci = stats.seed_t_test(a, b, paired=True, level=0.90)
    assert (paired["low"], paired["high"]) == pytest.approx((ci["low"], ci["high"]))
    assert -1.0 < ci["low"] and ci["high"] < 1.0
    narrow = stats.tost(a, b, paired=True, margin=0.2)
    assert narrow["equivalent"] is False and narrow["p"] == pytest.approx(ttost_paired(b, a, -0.2, 0.2)[0])
    one = stats.tost(a[:1], b[:1], paired=True)
    assert one["equivalent"] is None and math.isnan(one["p"])
    with pytest.raises(ValueError, match="margin"):
        stats.tost(a, b, paired=True, margin=0)


# Simulated studies with a known truth: a test set of N_UTT utterances per study; per seed, each
# method's model errs on each utterance with probability p_i + (seed effect + method shift) / 100. The seed effect
# has a part both methods of a seed share (the same split and data order) and a part of their own. With no
# clipping, the expected corpus rate difference B − A over seeds, on the study's test set, is exactly DELTA.
N_STUDIES, N_UTT = 1000, 200


def _simulate(rng, k, seed_sd, delta, n_studies=N_STUDIES, shared=0.5):
    """Per-seed corpus WERs (%), shapes (n_studies, k) for A and B, from per-utterance binomial errors."""
    words = rng.integers(5, 16, size=(n_studies, 1, 1, N_UTT))
    p = rng.uniform(0.3, 0.7, size=(n_studies, 1, 1, N_UTT))
    seed_effect = (rng.normal(0, seed_sd * math.sqrt(shared), (n_studies, 1, k, 1))
                   + rng.normal(0, seed_sd * math.sqrt(1 - shared), (n_studies, 2, k, 1)))
    shift = np.array([0.0, delta]).reshape(1, 2, 1, 1)
    prob = p + (seed_effect + shift) / 100.0
    assert prob.min() > 0 and prob.max() < 1  # no clipping: the truth is exactly delta
    errors = rng.binomial(words, prob)
    rates = 100.0 * errors.sum(axis=-1) / words.sum(axis=-1)
    return rates[:, 0], rates[:, 1]


def seed_test_error_rates(seed_sd: float, k: int = 3, paired: bool = True, seed: int = 20) -> dict:
    """Coverage of the true Δ = 1.5 points by the 95% interval of :func:`stats.seed_t_test`, and its rejection
    rate with identical methods, over N_STUDIES simulated studies."""
    rng = np.random.default_rng(seed)
    a, b = _simulate(rng, k, seed_sd, delta=0.0)
    rejected = np.mean(stats.seed_t_test(a, b, paired=paired)["p"] < 0.05)
    a, b = _simulate(rng, k, seed_sd, delta=1.5)
    res = stats.seed_t_test(a, b, paired=paired)
    return {"coverage": float(np.mean((res["low"] < 1.5) & (1.5 < res["high"]))), "type_one_error": float(rejected)}


def tost_rates(seed_sd: float, delta: float, margin: float = 1.0, ks=(3, 5, 10), seed: int = 22) -> dict:
    """{k: share of N_STUDIES simulated studies that :func:`stats.tost` (paired) declares equivalent}; the studies
    of k seeds are the first k of ten."""
    a, b = _simulate(np.random.default_rng(seed), max(ks), seed_sd, delta=delta)
    return {k: float(np.mean(stats.tost(a[:, :k], b[:, :k], paired=True, margin=margin)["equivalent"] == 1))
            for k in ks}


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("seed_sd", [1.2, 2.75])  # the seed SDs of the audit
def test_seed_t_test_holds_coverage_and_type_one_error_at_three_seeds(paired, seed_sd):
    rates = seed_test_error_rates(seed_sd, paired=paired)
    assert rates["coverage"] >= 0.93 and rates["type_one_error"] <= 0.07, rates


def test_the_utterance_level_test_is_conditional_on_the_seeds():
    """Why the report leads with the seed-level test: with identical methods and a seed SD of 1.2 points the
    paired permutation test over utterances rejects several times more often than 5%."""
    rng = np.random.default_rng(21)
    n = 200
    words = rng.integers(5, 16, size=(n, N_UTT))
    p = rng.uniform(0.3, 0.7, size=(n, 1, N_UTT))
    seed_effect = rng.normal(0, 1.2, (n, 2, 1)) / 100.0  # one seed per method, the methods alike
    errors = rng.binomial(words[:, None, :], p + seed_effect)
    rejected = np.mean([stats.paired_permutation_test(e[0], e[1], w, n_perm=200, seed=i)["p"] < 0.05
                        for i, (e, w) in enumerate(zip(errors, words))])
    assert rejected > 0.12  # 18% here; 34% in the audit, on test sets of thousands of utterances


@pytest.mark.parametrize("seed_sd", [0.5, 1.2])
def test_tost_declares_equivalence_at_the_margin_at_most_alpha(seed_sd):
    for delta in (1.0, -1.0):  # the truth on the margin: H0 holds, equivalence must be rare (alpha = 5%)
        rates = tost_rates(seed_sd, delta)
        assert max(rates.values()) <= 0.07, (delta, rates)


def test_tost_finds_identical_methods_equivalent_given_enough_precision():
    rates = tost_rates(0.5, 0.0, margin=2.0)
    assert rates[3] < rates[5] < rates[10] and rates[10] > 0.9, rates


# gain and forgetting -------------------------------------------------------------------------------------


def _tibetan_full_ft():
    """Research notes §6, full fine-tuning on Amdo: Amdo .64 -> .44, Utsang .69 -> .86, Kham .64 -> .79."""
    return pd.DataFrame(
        {"amdo": [64.0, 44.0], "utsang": [69.0, 86.0], "kham": [64.0, 79.0]}, index=[stats.START, "amdo"]
    )


def test_gain_forgetting_by_hand():
    gain, forgetting = stats._gain_forgetting(_tibetan_full_ft())
    assert list(gain.columns) == ["train_set", "test_set", "start", "trained", "gain"]
    assert gain.to_dict("records") == [
        {"train_set": "amdo", "test_set": "amdo", "start": 64.0, "trained": 44.0, "gain": 20.0}
    ]
    f = forgetting.set_index("test_set")["forgetting"]
    assert f.to_dict() == {"utsang": 17.0, "kham": 15.0}


def test_gain_forgetting_pooled_row_and_missing_start():
    R = _tibetan_full_ft()
    R.loc["all"] = [60.0, 65.0, 62.0]
    gain, forgetting = stats._gain_forgetting(R)
    assert list(gain["train_set"]) == ["amdo"]  # "all" is not a test set: no gain, only changes
    assert len(forgetting[forgetting["train_set"] == "all"]) == 3
    with pytest.raises(ValueError, match="start"):
        stats._gain_forgetting(R.drop(index=stats.START))


def test_pooled_model_gains_on_each_of_its_training_dialects():
    """The pooled `all` model was trained on the five dialects: each is a gain row (an 18-point
    fall in WER is gain +18.0, not forgetting -18.0); only MSA, not trained on, is forgetting."""
    from arabicpeft.dialects import DIALECTS

    start = {d: 80.0 for d in DIALECTS} | {"msa": 50.0}
    pooled = {d: 62.0 for d in DIALECTS} | {"msa": 55.0}
    R = pd.DataFrame([start, pooled], index=[stats.START, "all"])
    gain, forgetting = stats._gain_forgetting(R)
    assert sorted(gain["test_set"]) == sorted(DIALECTS) and (gain["gain"] == 18.0).all()
    assert forgetting[["test_set", "forgetting"]].to_dict("records") == [{"test_set": "msa", "forgetting": 5.0}]
    assert stats._trained_on("egyptian", "egyptian") and not stats._trained_on("egyptian", "gulf")
    assert stats._trained_on("all", "gulf") and not stats._trained_on("all", "msa")

    rows = []
    for train_set, rates in ((stats.START, start), ("all", pooled)):
        for test_set, rate in rates.items():
            rows.append(pd.DataFrame({"train_set": train_set, "test_set": test_set, "utt_index": np.arange(10),
                                      "word_errors": int(rate / 10), "ref_words": 10}))
    table = stats.gain_forgetting_ci(pd.concat(rows, ignore_index=True), n_boot=200)
    kinds = table.set_index("test_set")["kind"]
    assert (kinds[list(DIALECTS)] == "gain").all() and kinds["msa"] == "forgetting"
    assert table.set_index("test_set").loc["egyptian", "value"] == pytest.approx(20.0)  # 8 -> 6 errors of 10 words


def _utterances(rng, n=150):
    lengths = rng.integers(0, 12, n)
    rows = []
    for train_set, rates in {stats.START: (0.6, 0.6), "amdo": (0.4, 0.8)}.items():
        for test_set, rate in zip(("amdo", "utsang"), rates):
            errors = rng.binomial(lengths + 1, rate)
            rows.append(
                pd.DataFrame(
                    {"train_set": train_set, "test_set": test_set, "utt_index": np.arange(n),
                     "word_errors": errors, "ref_words": lengths}
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_gain_forgetting_ci_matches_point_values():
    utts = _utterances(np.random.default_rng(3))
    table = stats.gain_forgetting_ci(utts, n_boot=N_BOOT)
    R = (
        utts.groupby(["train_set", "test_set"])
        .apply(lambda g: stats._corpus_rate(g["word_errors"], g["ref_words"]), include_groups=False)
        .unstack("test_set")
    )
    gain, forgetting = stats._gain_forgetting(R)
    row = table.set_index(["train_set", "test_set"])
    assert row.loc[("amdo", "amdo"), "kind"] == "gain"
    assert row.loc[("amdo", "amdo"), "value"] == pytest.approx(gain["gain"].iloc[0])
    assert row.loc[("amdo", "utsang"), "kind"] == "forgetting"
    assert row.loc[("amdo", "utsang"), "value"] == pytest.approx(forgetting["forgetting"].iloc[0])
    for _, r in table.iterrows():  # real gain and real forgetting here, both clearly positive
        assert 0 < r["low"] < r["value"] < r["high"]
        assert r["p_positive"] == 1.0


def test_gain_forgetting_ci_shuffled_rows_and_misalignment():
    utts = _utterances(np.random.default_rng(4))
    shuffled = utts.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(
        stats.gain_forgetting_ci(utts, n_boot=500), stats.gain_forgetting_ci(shuffled, n_boot=500)
    )
    broken = utts.copy()
    broken.loc[(broken["train_set"] == "amdo") & (broken["test_set"] == "amdo"), "ref_words"] += 1
    with pytest.raises(ValueError, match="lengths"):
        stats.gain_forgetting_ci(broken, n_boot=100)
    with pytest.raises(ValueError, match="starting model"):
        stats.gain_forgetting_ci(utts[utts["train_set"] != stats.START], n_boot=100)
