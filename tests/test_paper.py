"""The published data load, and the paper's statistics come out as printed (Özyılmaz et al. 2025)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from arabicpeft import paper

SHARED_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def test_loaders_shapes_and_columns():
    dialects = paper._load_dialects()
    columns = ["condition", "train_set", "test_set", "wer_mean", "wer_sd", "cer_mean", "cer_sd", "n"]
    assert list(dialects.columns) == columns
    assert len(dialects) == 72
    per_seed = paper._load_dialects_per_seed()
    assert list(per_seed.columns) == ["condition", "train_set", "test_set", "seed", "wer", "cer"]
    assert len(per_seed) == 216 and sorted(per_seed["seed"].unique()) == [42, 84, 168]
    msa = paper._load_msa_trainsize()
    assert list(msa.columns) == ["system", "model", "msa_fraction", "wer_mean", "wer_sd", "cer_mean", "cer_sd", "n"]
    assert len(msa) == 10
    msa_seed = paper._load_msa_trainsize_per_seed()
    assert list(msa_seed.columns) == ["model", "seed", "wer", "cer"] and len(msa_seed) == 30
    assert "1.0" in set(msa_seed["model"])  # kept as a string, not parsed to 1
    lora = paper._load_lora_baseline()
    assert list(lora.columns)[:3] == ["train", "variant", "test"] and len(lora) == 50


def test_published_cells():
    d = paper._load_dialects().set_index(["condition", "train_set", "test_set"])
    assert d.loc[(paper.WITH_PRETRAINING, "egyptian", "egyptian"), ["wer_mean", "wer_sd"]].tolist() == [72.15, 2.83]
    assert d.loc[(paper.WITH_PRETRAINING, "gulf", "gulf"), ["wer_mean", "wer_sd"]].tolist() == [81.48, 4.25]


@pytest.mark.skipif(not SHARED_REFERENCE.is_dir(), reason="no shared/reference checkout beside the repo")
def test_package_copies_match_shared_reference():
    for name in (
        paper._DIALECTS_FILE,
        paper._DIALECTS_PER_SEED_FILE,
        paper._MSA_TRAINSIZE_FILE,
        paper._MSA_TRAINSIZE_PER_SEED_FILE,
        paper._LORA_BASELINE_FILE,
    ):
        assert (paper._REFERENCE_DIR / name).read_bytes() == (SHARED_REFERENCE / name).read_bytes(), name


def test_missing_reference_file_names_the_path(monkeypatch, tmp_path):
    monkeypatch.setattr(paper, "_REFERENCE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        paper._load_dialects()


def test_seed_means_reproduce_the_published_aggregates():
    ours = paper._seed_means(paper._load_dialects_per_seed(), decimals=2)
    published = paper._load_dialects()
    pd.testing.assert_frame_equal(ours, published, check_dtype=False)


def test_overall_wilcoxon_as_published():
    overall = paper._pretraining_tests().loc[paper.OVERALL]
    assert overall["statistic"] == 120.0
    assert float(f"{overall['p']:.1e}") == 5.1e-4
    assert round(overall["mean_without"], 2) == 86.77
    assert round(overall["mean_with"], 2) == 83.87
    assert round(overall["sd_without"], 2) == 11.94  # population SD (ddof = 0)
    assert round(overall["sd_with"], 2) == 13.24
    assert overall["n"] == 36
    assert np.isnan(overall["p_holm"])


def test_overall_wilcoxon_needs_the_exact_method():
    """The normal approximation does not give the published p: the paper's test is the exact one."""
    table = paper._load_dialects().pivot_table(
        index=["train_set", "test_set"], columns="condition", values="wer_mean"
    )
    without, with_ = table[paper.WITHOUT_PRETRAINING], table[paper.WITH_PRETRAINING]
    approx = stats.wilcoxon(without, with_, method="asymptotic")
    assert float(f"{approx.pvalue:.1e}") != 5.1e-4
    # The 2-decimal means tie in |d|; rounded differences make "auto" fall back to the approximation.
    auto_rounded = stats.wilcoxon(np.round(without - with_, 2))
    assert float(f"{auto_rounded.pvalue:.1e}") != 5.1e-4
    exact_rounded = stats.wilcoxon(np.round(without - with_, 2), method="exact")
    assert float(f"{exact_rounded.pvalue:.1e}") == 5.1e-4


def test_unrounded_seed_means_do_not_reproduce_the_paper():
    """Documented caveat: the paper tested 2-decimal seed-means; unrounded ones tie differently."""
    overall = paper._pretraining_tests(paper._seed_means(paper._load_dialects_per_seed())).loc[paper.OVERALL]
    assert overall["statistic"] == 120.5
    rounded = paper._pretraining_tests(paper._seed_means(paper._load_dialects_per_seed(), decimals=2))
    pd.testing.assert_frame_equal(rounded, paper._pretraining_tests())


def test_per_test_set_wilcoxon_and_holm():
    tests = paper._pretraining_tests()
    assert list(tests.index) == ["egyptian", "gulf", "iraqi", "levantine", "maghrebi", "msa", "overall"]
    assert set(tests.columns) >= {"statistic", "p", "p_holm", "mean_without", "mean_with", "sd_without", "sd_with", "n"}
    per_test = tests.drop(index=paper.OVERALL)
    assert (per_test["n"] == 6).all()
    # MSA: every train-set model is better with pre-training -> W = 0, the smallest p possible at n = 6.
    assert per_test.loc["msa", "statistic"] == 0.0
    assert per_test.loc["msa", "p"] == pytest.approx(paper._min_wilcoxon_p(6))
    assert per_test.loc["msa", "p_holm"] == pytest.approx(paper._min_holm_p(6, 6))
    # Holm by hand: sorted p times (m - rank), running maximum, capped at 1.
    p = per_test["p"].to_numpy()
    order = np.argsort(p)
    adjusted = np.minimum(1, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    expected = np.empty_like(adjusted)
    expected[order] = adjusted
    np.testing.assert_allclose(per_test["p_holm"].to_numpy(), expected)
    # Egyptian by hand: the 6 train-set models' published seed-means.
    d = paper._load_dialects()
    egy = d[d["test_set"] == "egyptian"].pivot(index="train_set", columns="condition", values="wer_mean")
    ref = stats.wilcoxon(egy[paper.WITHOUT_PRETRAINING], egy[paper.WITH_PRETRAINING], method="exact")
    assert per_test.loc["egyptian", "statistic"] == ref.statistic
    assert per_test.loc["egyptian", "p"] == pytest.approx(ref.pvalue)
    assert per_test.loc["egyptian", "mean_with"] == pytest.approx(egy[paper.WITH_PRETRAINING].mean())


def test_pretraining_tests_cer_and_bad_input():
    cer = paper._pretraining_tests(metric="cer")
    assert cer.loc[paper.OVERALL, "n"] == 36
    with pytest.raises(ValueError, match="condition"):
        d = paper._load_dialects()
        paper._pretraining_tests(d[d["condition"] == paper.WITH_PRETRAINING])


def test_pooled_vs_specific_as_published():
    table = paper._pooled_vs_specific()
    assert list(table.index) == ["egyptian", "gulf", "iraqi", "levantine", "maghrebi", "msa", "mean"]
    assert round(table.loc[paper.MEAN_ROW, "wer_abs_diff"], 2) == 8.42
    assert round(table.loc[paper.MEAN_ROW, "cer_abs_diff"], 2) == 3.37
    # MSA has no dialect model: its specific model is the 100%-MSA model of the train-size experiment.
    assert table.loc["msa", ["wer_specific", "cer_specific"]].tolist() == [45.93, 20.11]
    assert table.loc["egyptian", "wer_specific"] == 72.15
    assert table.loc["egyptian", "wer_pooled"] == 79.57
    assert table.loc["egyptian", "wer_diff"] == pytest.approx(79.57 - 72.15)


def test_pooled_vs_specific_per_seed_agrees():
    rows = paper.figure_data()["pooled_vs_specific"]
    assert len(rows) == 6 * 6 * 3 + 3  # every model with pre-training on every test set; the 100%-MSA model on MSA
    pooled = rows[rows["train_set"] == "all"].assign(role="pooled")
    long = pd.concat([pooled, rows[rows["train_set"] == rows["test_set"]].assign(role="specific")])
    assert len(long) == 6 * 2 * 3
    cell = long.groupby(["test_set", "role"])[["wer", "cer"]].mean().unstack("role")
    for metric, published in (("wer", 8.42), ("cer", 3.37)):
        mad = (cell[(metric, "pooled")] - cell[(metric, "specific")]).abs().mean()
        assert round(mad, 2) == published
    msa = long[(long["test_set"] == "msa") & (long["role"] == "specific")]
    assert round(msa["wer"].mean(), 2) == 45.93


def test_pooled_vs_specific_on_project_means_without_msa_model():
    d = paper._load_dialects()
    no_msa = d[d["test_set"] != "msa"]
    table = paper._pooled_vs_specific(no_msa)
    assert "msa" not in table.index and len(table) == 6
    with pytest.raises(ValueError, match="specific model"):
        paper._pooled_vs_specific(d)  # the msa test set has no specific model and no msa data was passed


def test_min_wilcoxon_p_matches_scipy():
    assert paper._min_wilcoxon_p(3) == 0.25
    assert paper._min_wilcoxon_p(6) == 0.03125
    for n in range(1, 10):
        extreme = stats.wilcoxon(np.arange(1, n + 1), method="exact")  # all differences of one sign
        assert paper._min_wilcoxon_p(n) == pytest.approx(extreme.pvalue)
    with pytest.raises(ValueError):
        paper._min_wilcoxon_p(0)


def test_min_holm_p():
    assert paper._min_holm_p(6, 6) == pytest.approx(0.1875)
    assert paper._min_holm_p(3, 6) == 1.0
    assert paper._min_holm_p(6, 1) == 0.03125


def test_figure_data_and_msa_trainsize_tidy():
    data = paper.figure_data()
    pd.testing.assert_frame_equal(data["dialects"], paper._load_dialects_per_seed())
    tidy = data["msa_trainsize"]
    assert len(tidy) == 30
    small = tidy[tidy["model"] == "whisper-small"]
    assert (small["msa_fraction"] == 0.0).all()  # zero-shot whisper-small is the curve's 0% point
    assert tidy.loc[tidy["model"] == "whisper-tiny", "msa_fraction"].isna().all()


def test_statistics_are_the_published_tests_and_their_interpretation():
    tests, pooled, text = paper.statistics()
    pd.testing.assert_frame_equal(tests, paper._pretraining_tests())
    pd.testing.assert_frame_equal(pooled, paper._pooled_vs_specific())
    assert text == paper._interpretation()


def test_interpretation_states_the_published_tests_and_their_floors():
    text = paper._interpretation()
    assert "over the 36 (train, test) cells: W = 120.00,\np = 0.00051;" in text
    assert "mean WER 86.77 without vs 83.87 with MSA" in text
    assert "(population SD 11.94 / 13.24)" in text
    assert "mean\nabsolute difference 8.42 WER and 3.37 CER points" in text
    assert "n = 6 (the train-set models per test set): minimum p = 0.03125;" in text
    assert "n = 3 (seeds, for any comparison of two systems over seeds): minimum p = 0.25, so no 3-seed" in text
    assert "the smallest adjusted p is 0.1875, not below 0.05 whatever the data" in text
    smallest = paper._pretraining_tests()["p_holm"].min()
    assert smallest == pytest.approx(0.1875)  # MSA: W = 0 at n = 6, so the floor itself
    assert "The smallest adjusted p the data give is 0.1875." in text


def test_interpretation_verdicts_follow_the_floors():
    """With enough pairs the floors fall below 0.05, and the text no longer says a test cannot reach it."""
    text = paper._interpretation(n_seeds=6)
    assert "n = 6 (seeds, for any comparison of two systems over seeds): minimum p = 0.03125;" in text
    assert "seed comparison can reach" not in text
    one_test = paper._pretraining_tests().loc[["msa", paper.OVERALL]]
    text = paper._interpretation(one_test)
    assert "Holm over the paper's 1 per-test-set tests: the smallest adjusted p is 0.03125." in text
    assert "could not have been significant" not in text
