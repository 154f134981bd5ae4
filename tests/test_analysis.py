"""Reading a directory of runs (per-utterance errors, efficiency, tables) and the analysis built on it: the statistics
(analysis), the descriptive tables (tables) and the study report (report)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats as sps

from arabicpeft import analysis, paper, paper_plots, stats, tables
from arabicpeft.config import ExperimentConfig
from arabicpeft.results import load_runs, _results_files
from arabicpeft.paper import WITH_PRETRAINING, WITHOUT_PRETRAINING
from arabicpeft.report import (_SYNTHETIC_NOTICE, StudyReport, _data_notice, _save_figure, _save_table, project_path,
                               published_figures)

N_BOOT = 500
N_UTT = 60
TEST_SETS = ("egyptian", "gulf")
START_P = {"egyptian": 0.6, "gulf": 0.5}
# error probability per utterance word of each method after training on egyptian: full gains more and forgets more
TRAINED_P = {"full": {"egyptian": 0.3, "gulf": 0.75}, "lora": {"egyptian": 0.45, "gulf": 0.55}}


def _counts(rng, words, chars, p):
    return {"ref_words": words, "word_errors": rng.binomial(words + 1, p), "ref_chars": chars,
            "char_errors": rng.binomial(chars + 1, p / 2)}


def _utterance_rows(counts_by_set):
    frames = []
    for test_set, counts in counts_by_set.items():
        n = len(counts["ref_words"])
        for scheme, shift in (("raw", 0), ("leaderboard", 1)):  # another scheme with different counts
            frames.append(pd.DataFrame({
                "test_set": test_set, "utt_index": np.arange(n), "utt_id": [f"{test_set}-{i}" for i in range(n)],
                "scheme": scheme, "reference": "نص", "hypothesis": ["" if i == 0 else "نص" for i in range(n)],
                "ref_words": counts["ref_words"], "word_errors": counts["word_errors"] + shift,
                "ref_chars": counts["ref_chars"], "char_errors": counts["char_errors"] + shift,
            }))
    return pd.concat(frames, ignore_index=True)


def _metrics(counts_by_set):
    out = {}
    for test_set, c in counts_by_set.items():
        out[test_set] = {"raw": {"wer": 100 * c["word_errors"].sum() / c["ref_words"].sum(),
                                 "cer": 100 * c["char_errors"].sum() / c["ref_chars"].sum(),
                                 "n_utterances": len(c["ref_words"]), "ref_words": int(c["ref_words"].sum()),
                                 "word_errors": int(c["word_errors"].sum()), "ref_chars": int(c["ref_chars"].sum()),
                                 "char_errors": int(c["char_errors"].sum())}}
    return out


def write_run(root, name, method, seed, after, before=None, efficiency=None, dialect="egyptian", extra=None,
              n_train=48):
    out = root / name
    out.mkdir(parents=True)
    _utterance_rows(after).to_csv(out / "utterances.csv", index=False)
    content = {
        "schema": "arabicpeft.results/1", "run_id": name,
        "config": ExperimentConfig(dialect=dialect, method=method, seed=seed, model="tiny-random", source="sample",
                                   extra=extra or {}).to_dict(),
        "data": {"source": "sample", "synthetic": True, "n_train": n_train}, "synthetic": True,
        "metrics": _metrics(after), "utterances_file": "utterances.csv",
        "metrics_before": None, "utterances_before_file": None,
        "efficiency": efficiency or {},
    }
    if before is not None:
        _utterance_rows(before).to_csv(out / "utterances_before.csv", index=False)
        content.update(metrics_before=_metrics(before), utterances_before_file="utterances_before.csv")
    (out / "results.json").write_text(json.dumps(content), encoding="utf-8")
    return out / "results.json"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """full and lora x 3 seeds trained on egyptian, scored on egyptian and gulf, before and after training."""
    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    words = {t: rng.integers(1, 10, N_UTT) for t in TEST_SETS}
    chars = {t: 5 * words[t] + rng.integers(0, 4, N_UTT) for t in TEST_SETS}
    start = {t: _counts(rng, words[t], chars[t], START_P[t]) for t in TEST_SETS}  # one starting model
    for method, memory in (("full", 900 * 2**20), ("lora", 300 * 2**20)):
        for i, seed in enumerate((42, 84, 168)):
            after = {t: _counts(rng, words[t], chars[t], TRAINED_P[method][t]) for t in TEST_SETS}
            efficiency = {"trainable_parameters": 1000 if method == "full" else 10, "total_parameters": 1000,
                          "trainable_percent": 100.0 if method == "full" else 1.0, "train_wall_time_s": 10.0 + i,
                          "train_samples_per_second": 5.0, "run_wall_time_s": 20.0 + i,
                          "peak_memory": {"kind": "peak_rss", "bytes": memory}, "weights_bytes": 4 * 2**20,
                          "saved_dir_bytes": 5 * 2**20}
            write_run(root, f"{method}_{seed}", method, seed, after, start, efficiency)
    return root


@pytest.fixture(scope="module")
def utts(study):
    return load_runs(study).utterances()


# load_runs: per-utterance rows and efficiency --------------------------------------------------------------


def test_results_files(study, tmp_path):
    assert len(_results_files(study)) == 6
    assert _results_files(tmp_path / "missing") == []
    assert _results_files(tmp_path) == []


def test_utterances_reads_every_run(study, utts):
    assert list(utts.columns)[-9:] == ["test_set", "utt_index", "utt_id", "reference", "hypothesis", "ref_words",
                                       "word_errors", "ref_chars", "char_errors"]
    trained, start = utts[utts["scored"] == "trained"], utts[utts["scored"] == "start"]
    assert len(trained) == len(start) == 6 * len(TEST_SETS) * N_UTT  # raw rows only, per run and test set
    assert set(trained["train_set"]) == {"egyptian"} and set(start["train_set"]) == {stats.START}
    assert set(utts["method"]) == {"full", "lora"} and set(utts["seed"]) == {42, 84, 168}
    assert utts["hypothesis"].iloc[0] == ""  # an empty hypothesis stays a string, not NaN
    assert utts["synthetic"].all()
    # the per-utterance counts add up to the corpus numbers of the results files
    frame = load_runs(study).scores()
    sums = utts.groupby(["run_id", "scored", "test_set"])["word_errors"].sum()
    for _, row in frame.iterrows():
        assert sums[(row["run_id"], row["scored"], row["test_set"])] == row["word_errors"]
    only_trained = load_runs(study).utterances(include_start=False)
    assert set(only_trained["scored"]) == {"trained"}
    other = load_runs(study).utterances(scheme="leaderboard", include_start=False)
    assert other["word_errors"].sum() == only_trained["word_errors"].sum() + len(other)  # +1 per row


def test_utterances_missing_file_and_run_without_one(tmp_path):
    counts = {"egyptian": {"ref_words": np.array([3, 4]), "word_errors": np.array([1, 0]),
                           "ref_chars": np.array([12, 15]), "char_errors": np.array([2, 0])}}
    path = write_run(tmp_path, "run", "lora", 42, counts)
    content = json.loads(path.read_text())
    content["utterances_file"] = None  # e.g. an evaluation that wrote no per-utterance rows
    path.write_text(json.dumps(content))
    assert load_runs(tmp_path).utterances().empty
    content["utterances_file"] = "gone.csv"
    path.write_text(json.dumps(content))
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        load_runs(tmp_path).utterances()


def test_runs_efficiency_columns(study, tmp_path):
    eff = load_runs(study).runs
    assert len(eff) == 6
    full = eff[eff["method"] == "full"].sort_values("seed")
    assert full["peak_memory_bytes"].tolist() == [900 * 2**20] * 3
    assert full["train_wall_time_s"].tolist() == [10.0, 11.0, 12.0]  # seeds 42, 84, 168: i = 0, 1, 2
    assert set(eff["peak_memory_kind"]) == {"peak_rss"} and set(eff["train_set"]) == {"egyptian"}
    counts = {"gulf": {"ref_words": np.array([3]), "word_errors": np.array([1]), "ref_chars": np.array([9]),
                       "char_errors": np.array([2])}}
    write_run(tmp_path, "bare", "lora", 1, counts)  # no efficiency record
    bare = load_runs(tmp_path).runs
    assert bare["trainable_parameters"].isna().all() and bare["peak_memory_bytes"].isna().all()


def test_condition_says_what_a_run_started_from(tmp_path):
    counts = {"gulf": {"ref_words": np.array([3]), "word_errors": np.array([1]), "ref_chars": np.array([9]),
                       "char_errors": np.array([2])}}
    write_run(tmp_path, "a", "full", 1, counts, extra={"condition": WITH_PRETRAINING, "init_from": "runs/msa/model"})
    write_run(tmp_path, "b", "full", 1, counts, extra={"condition": "my_condition"})
    write_run(tmp_path, "c", "full", 1, counts)
    # a mixing fine-tune: started from the balanced pooled model, which is no MSA pre-training
    write_run(tmp_path, "d", "full", 1, counts, extra={"start": "pool/balanced", "start_context": "pool/balanced",
                                                       "init_from": "runs/mixing/pool/balanced_seed1/model"})
    write_run(tmp_path, "e", "full", 1, counts, extra={"init_from": "runs/x/model"})  # older results: no start label
    frame = load_runs(tmp_path).runs.set_index("run_id")
    assert frame.loc["a", "condition"] == WITH_PRETRAINING and frame.loc["a", "init_from"] == "runs/msa/model"
    assert frame.loc["b", "condition"] == "my_condition"
    assert frame.loc["c", "condition"] == WITHOUT_PRETRAINING
    assert frame.loc["d", "condition"] == "from pool/balanced" and frame.loc["d", "start_model"] == "pool/balanced"
    assert frame.loc["e", "condition"] == "from another run's model"


def test_save_table_writes_csv_and_latex(tmp_path):
    table = pd.DataFrame({"test_set": ["egyptian", "gulf"], "wer": [12.3456, np.nan], "p_holm": [0.01, 1.0]})
    csv, tex = _save_table(table, tmp_path / "tables" / "t1", caption="WER", label="tab:wer")
    assert (csv.name, tex.name) == ("t1.csv", "t1.tex")
    pd.testing.assert_frame_equal(pd.read_csv(csv), table)
    latex = tex.read_text(encoding="utf-8")
    assert "\\begin{tabular}" in latex and "\\toprule" in latex and "\\caption{WER}" in latex
    assert "12.35" in latex and "--" in latex and "p\\_holm" in latex and "12.3456" not in latex


def test_save_figure_writes_png_and_pdf(tmp_path):
    paths = _save_figure(paper_plots.fig4_heatmap(paper.figure_data()["dialects"]), tmp_path / "sub" / "fig4")
    assert [p.name for p in paths] == ["fig4.png", "fig4.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_published_figures_draw_and_write_the_four(tmp_path):
    figures = published_figures(tmp_path / "paper")
    assert len(figures) == 4 and all(isinstance(f, Figure) for f in figures)
    stems = ["fig1_msa_trainsize", "fig2_pretraining", "fig3_pooled_vs_specific", "fig4_heatmap"]
    assert sorted(p.name for p in (tmp_path / "paper").iterdir()) == sorted(f"{s}.{e}" for s in stems for e in ("png", "pdf"))
    curve = figures[0].axes[0].lines[0]  # Fig. 1: the published MSA curve, mean over seeds
    msa = paper._load_msa_trainsize().sort_values("msa_fraction").dropna(subset=["msa_fraction"])
    np.testing.assert_allclose(np.asarray(curve.get_ydata(), float), msa["wer_mean"], atol=0.005)
    heatmap = figures[3].axes[0]  # Fig. 4: with MSA pre-training, Egyptian on Egyptian as published
    assert "72.15" in [t.get_text().split("\n")[0] for t in heatmap.texts]


def test_project_path(tmp_path, monkeypatch):
    assert project_path(tmp_path / "x") == tmp_path / "x"
    (tmp_path / "proj" / "arabicpeft").mkdir(parents=True)
    (tmp_path / "proj" / "arabicpeft" / "__init__.py").write_text("")
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    (tmp_path / "proj" / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "proj" / "notebooks")  # a notebook kernel's working directory
    assert project_path("runs/study") == (tmp_path / "proj" / "runs" / "study").resolve()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no project above: the working directory
    assert project_path("runs/study") == (tmp_path / "elsewhere" / "runs" / "study").resolve()


# analysis -------------------------------------------------------------------------------------------------


def _rate(rows, metric="wer"):
    errors, lengths = analysis._METRICS[metric]
    return stats._corpus_rate(rows[errors], rows[lengths])


def test_rate_table_per_run(utts):
    table = analysis.rate_table(utts, n_boot=N_BOOT)
    assert len(table) == 6 * len(TEST_SETS)  # start rows are left out
    row = table[table["variant"].str.startswith("lora") & (table["seed"] == 84) & (table["test_set"] == "gulf")].iloc[0]
    run = utts[(utts["scored"] == "trained") & (utts["method"] == "lora") & (utts["seed"] == 84)
               & (utts["test_set"] == "gulf")]
    ci = stats.bootstrap_ci(run["char_errors"], run["ref_chars"], n_boot=N_BOOT)
    assert row["wer"] == pytest.approx(_rate(run)) and row["n_utterances"] == N_UTT
    assert (row["cer"], row["cer_low"], row["cer_high"]) == pytest.approx((ci["estimate"], ci["low"], ci["high"]))


def test_system_table_means_over_seeds(utts):
    table = analysis.system_table(utts, n_boot=N_BOOT)
    assert len(table) == 2 * len(TEST_SETS) and (table["k"] == 3).all()
    row = table[table["variant"].str.startswith("full") & (table["test_set"] == "egyptian")].iloc[0]
    runs = utts[(utts["scored"] == "trained") & (utts["method"] == "full") & (utts["test_set"] == "egyptian")]
    per_seed = [_rate(g) for _, g in runs.groupby("seed")]
    summary = stats.seed_summary(per_seed)
    assert row["wer"] == pytest.approx(np.mean(per_seed))
    assert (row["wer_sd"], row["wer_t_low"], row["wer_t_high"]) == pytest.approx(
        (summary["sd"], summary["low"], summary["high"]))
    assert row["wer_low"] < row["wer"] < row["wer_high"]
    assert row["wer_high"] - row["wer_low"] < row["wer_t_high"] - row["wer_t_low"] + 100  # finite, sane


def test_seed_matrix_rejects_duplicates_and_mismatches(utts):
    rows = utts[(utts["scored"] == "trained") & (utts["method"] == "lora") & (utts["test_set"] == "gulf")]
    seeds, errors, lengths, index = analysis._seed_matrix(rows)
    assert seeds == [42, 84, 168] and errors.shape == (3, N_UTT) and lengths.shape == (N_UTT,)
    with pytest.raises(ValueError, match="one run per seed"):
        analysis._seed_matrix(pd.concat([rows, rows]))
    broken = rows.copy()
    broken.loc[broken["seed"] == 42, "ref_words"] += 1
    with pytest.raises(ValueError, match="lengths"):
        analysis._seed_matrix(broken)
    with pytest.raises(ValueError, match="different utterances"):
        analysis._seed_matrix(rows[~((rows["seed"] == 84) & (rows["utt_index"] == 3))])
    with pytest.raises(ValueError, match="metric"):
        analysis._seed_matrix(rows, metric="bleu")


def _seed_rates(utts, method, test_set, metric="wer"):
    rows = utts[(utts["scored"] == "trained") & (utts["method"] == method) & (utts["test_set"] == test_set)]
    return np.array([_rate(g, metric) for _, g in rows.groupby("seed")])  # seeds 42, 84, 168 in order


def test_compare_methods_tests_over_seeds_paired_by_seed(utts):
    table = analysis.compare_methods(utts, n_boot=N_BOOT)
    assert len(table) == len(TEST_SETS) * 2  # test sets x (wer, cer)
    assert (table["a"] == "full fp32 lr1e-05").all() and (table["b"] == "lora fp32 r32 a64 d0.05 qv lr0.001").all()
    assert (table["test"] == stats.PAIRED_T).all() and (table["df"] == 2).all()  # the same 3 seeds: paired
    np.testing.assert_allclose(table["p_holm"], stats.holm(table["p"]))  # one family: the whole table
    row = table[(table["test_set"] == "egyptian") & (table["metric"] == "wer")].iloc[0]
    full, lora = _seed_rates(utts, "full", "egyptian"), _seed_rates(utts, "lora", "egyptian")
    d = lora - full
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert row["rate_a"] == pytest.approx(full.mean()) and row["rate_b"] == pytest.approx(lora.mean())
    assert row["delta"] == pytest.approx(d.mean())
    assert (row["low"], row["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row["p"] == pytest.approx(sps.ttest_rel(lora, full).pvalue)
    assert row["hedges_g"] == pytest.approx(stats.hedges_g(lora, full))
    assert row["delta"] > 0  # lora gains less on egyptian (the fixture's design)
    trained = utts[(utts["scored"] == "trained") & (utts["test_set"] == "egyptian")]
    mean_counts = {m: trained[trained["method"] == m].groupby("utt_index")[["word_errors", "ref_words"]].mean()
                   for m in ("full", "lora")}
    utt = stats.paired_bootstrap(mean_counts["full"]["word_errors"], mean_counts["lora"]["word_errors"],
                                 mean_counts["full"]["ref_words"], n_boot=N_BOOT)
    assert (row["utt_low"], row["utt_high"]) == pytest.approx((utt["low"], utt["high"]))  # conditional on the seeds
    gulf = table[(table["test_set"] == "gulf") & (table["metric"] == "wer")].iloc[0]
    assert gulf["delta"] < 0 and gulf["utt_p"] < 0.05  # full forgets more on gulf


def test_compare_methods_unpaired_seeds_use_welch(utts):
    mixed = utts[~((utts["method"] == "lora") & (utts["seed"] == 168))]  # lora: 42, 84; full: 42, 84, 168
    mixed = mixed.assign(seed=np.where(mixed["method"] == "lora", mixed["seed"] + 1, mixed["seed"]))
    row = analysis.compare_methods(mixed, metrics=("wer",), n_boot=N_BOOT).set_index("test_set").loc["egyptian"]
    full, lora = _seed_rates(utts, "full", "egyptian"), _seed_rates(utts, "lora", "egyptian")[:2]
    assert row["test"] == stats.WELCH_T and (row["k_a"], row["k_b"]) == (3, 2)
    assert row["p"] == pytest.approx(sps.ttest_ind(lora, full, equal_var=False).pvalue)


def test_compare_methods_single_seed_identical_and_missing(utts):
    one = utts[utts["seed"] == 42]
    table = analysis.compare_methods(one, metrics=("wer",), n_boot=N_BOOT)
    assert table["test"].isna().all() and table["p"].isna().all() and table["p_holm"].isna().all()
    assert table["low"].isna().all() and table["equivalent"].isna().all() and table["hedges_g"].isna().all()
    assert table["utt_p"].notna().all()  # the utterance-level test, conditional on that seed, is still given
    statement = analysis.comparison_statement(table)
    assert "2 of 2 cells have one seed per method" in statement and "conditional on that seed" in statement
    same = utts[utts["method"] == "full"]
    twin = pd.concat([same, same.assign(method="lora", variant="lora twin")])
    table = analysis.compare_methods(twin, metrics=("wer",), n_boot=N_BOOT)
    assert (table["delta"] == 0).all() and (table["utt_p"] == 1).all()
    assert table["p"].isna().all()  # no spread over seeds at all: no t-test
    with pytest.raises(ValueError, match="both"):
        analysis.compare_methods(same, n_boot=N_BOOT)


def test_efficiency_summary(study):
    summary = tables.efficiency_summary(load_runs(study).runs)
    summary = summary.assign(method=summary["variant"].str.split().str[0]).set_index("method")
    assert summary.loc["full", "k"] == 3 and summary.loc["full", "peak_memory_kind"] == "peak_rss"
    assert summary.loc["full", "peak_memory_mib"] == pytest.approx(900.0)
    assert summary.loc["lora", "trainable_parameters"] == 10 and summary.loc["lora", "weights_mib"] == pytest.approx(4.0)
    assert summary.loc["full", "train_wall_time_s"] == pytest.approx(11.0)
    assert summary.loc["full", "train_wall_time_s_sd"] == pytest.approx(1.0)


def test_gain_forgetting_table_matches_point_values(utts):
    table = analysis.gain_forgetting_table(utts, n_boot=N_BOOT)
    assert len(table) == 2 * len(TEST_SETS)  # per method: the gain on egyptian, the forgetting on gulf
    table = table.assign(method=table["variant"].str.split().str[0])
    for method, rows in table.groupby("method"):
        mine = utts[utts["method"] == method]
        start = mine[mine["scored"] == "start"]
        trained = mine[mine["scored"] == "trained"]
        R = pd.DataFrame({t: [_rate(start[(start["test_set"] == t) & (start["seed"] == 42)]),
                              np.mean([_rate(g) for _, g in trained[trained["test_set"] == t].groupby("seed")])]
                          for t in TEST_SETS}, index=[stats.START, "egyptian"])
        gain, forgetting = stats._gain_forgetting(R)
        r = rows.set_index("kind")
        assert r.loc["gain", "value"] == pytest.approx(gain["gain"].iloc[0])
        assert r.loc["forgetting", "value"] == pytest.approx(forgetting["forgetting"].iloc[0])
        assert r.loc["gain", "start"] == pytest.approx(R.loc[stats.START, "egyptian"])
        assert r.loc["forgetting", "trained"] == pytest.approx(R.loc["egyptian", "gulf"])
        assert (rows["k"] == 3).all() and (rows["low"] < rows["value"]).all() and (rows["value"] < rows["high"]).all()
    by = table.set_index(["method", "kind"])["value"]
    assert by[("full", "gain")] > by[("lora", "gain")] > 0  # the design of the fixture
    assert by[("full", "forgetting")] > by[("lora", "forgetting")]


def test_gain_forgetting_table_needs_the_start(utts):
    with pytest.raises(ValueError, match="include_start"):
        analysis.gain_forgetting_table(utts[utts["scored"] == "trained"], n_boot=N_BOOT)
    cer = analysis.gain_forgetting_table(utts, metric="cer", n_boot=N_BOOT)
    assert (cer["metric"] == "cer").all() and not math.isnan(cer["value"].sum())


# the paper's design on own results -------------------------------------------------------------------------


def _one(rng, p, n=20):
    words = np.full(n, 5)
    return _counts(rng, words, 5 * words, p)


@pytest.fixture(scope="module")
def grid_root(tmp_path_factory):
    """A tiny paper grid: MSA at two train sizes; egyptian and all, without and with MSA pre-training."""
    root = tmp_path_factory.mktemp("grid")
    rng = np.random.default_rng(5)
    sets = ("egyptian", "msa")
    start = {t: _one(rng, 0.9) for t in sets}
    for seed in (42, 84):
        for n_train, p in ((24, 0.7), (48, 0.5)):
            write_run(root / "msa", f"{n_train}_{seed}", "full", seed, {t: _one(rng, p) for t in sets}, start,
                      dialect="msa", n_train=n_train)
        for condition, extra in (("without", None), ("with", {"condition": WITH_PRETRAINING,
                                                              "init_from": "msa/48_42/model"})):
            for dialect in ("egyptian", "all"):
                write_run(root / condition, f"{dialect}_{seed}", "full", seed, {t: _one(rng, 0.6) for t in sets},
                          start, dialect=dialect, extra=extra)
    return root


@pytest.fixture(scope="module")
def grid(grid_root):
    return load_runs(grid_root).scores()


def test_msa_trainsize_frame_feeds_fig1(grid):
    frame = paper_plots.msa_trainsize_frame(grid)
    assert list(frame.columns) == ["model", "seed", "wer", "cer", "system", "msa_fraction"]
    assert sorted(set(frame["msa_fraction"])) == [0.0, 0.5, 1.0]
    assert (frame["msa_fraction"] == 0.0).sum() == 4  # the starting model, once per MSA run
    half = frame[frame["msa_fraction"] == 0.5]
    expected = grid[(grid["train_set"] == "msa") & (grid["test_set"] == "msa") & (grid["n_train"] == 24)]
    assert sorted(half["wer"]) == sorted(expected["wer"])
    with pytest.raises(ValueError, match="No runs"):
        paper_plots.msa_trainsize_frame(grid[grid["train_set"] != "msa"])


def test_paper_frames_dialects_and_pooled(grid):
    frames = paper_plots.own_figure_data(grid)
    pd.testing.assert_frame_equal(frames["msa_trainsize"], paper_plots.msa_trainsize_frame(grid))
    dialects = frames["dialects"]
    assert set(dialects["train_set"]) == {"egyptian", "all"} and set(dialects["scored"]) == {"trained"}
    assert set(dialects["condition"]) == {WITHOUT_PRETRAINING, WITH_PRETRAINING}
    pooled = frames["pooled_vs_specific"]
    assert (pooled.loc[pooled["train_set"] == "msa", "n_train"] == 48).all()  # the model with the most MSA data
    assert (pooled.loc[pooled["train_set"] != "msa", "condition"] == WITH_PRETRAINING).all()
    fig3 = paper_plots.fig3_pooled_vs_specific(pooled)  # pooled ("all") and own model on egyptian and msa, 2 seeds
    assert len([bar for c in fig3.axes[0].containers for bar in c]) == 4


def test_rate_table_refuses_to_merge_two_runs_of_one_seed():
    import pandas as pd

    from arabicpeft import analysis

    one = dict(system="all", study=None, stage=None, variant="lora", train_set="egyptian", seed=42, test_set="egyptian",
               word_errors=1, ref_words=4, char_errors=2, ref_chars=10, scored="trained")
    rows = pd.DataFrame([{**one, "utt_index": 0}, {**one, "utt_index": 1}, {**one, "utt_index": 0}])
    with pytest.raises(ValueError, match="Several runs share"):
        analysis.rate_table(rows, n_boot=100)


def test_equivalence_is_a_tost_against_the_stated_margin(utts):
    for margin in (1.0, 50.0):
        table = analysis.compare_methods(utts, metrics=("wer",), margin=margin, n_boot=N_BOOT)
        for test_set, row in table.set_index("test_set").iterrows():
            full, lora = _seed_rates(utts, "full", test_set), _seed_rates(utts, "lora", test_set)
            expected = stats.tost(full, lora, paired=True, margin=margin)
            assert row["margin"] == margin and row["p_equivalence"] == pytest.approx(expected["p"])
            assert row["equivalent"] == expected["equivalent"]
        text = analysis.comparison_statement(table)
        n_eq = int(table["equivalent"].astype(bool).sum())
        assert f"equivalence within ±{margin:g} WER points (TOST, alpha = 0.05) is shown in {n_eq} of 2" in text
        assert (n_eq, margin) in ((0, 1.0), (2, 50.0))  # the fixture's methods differ by several points


# notebook sections: what each writes and returns -----------------------------------------------------------------


def _written(folder):
    return sorted(p.name for p in folder.iterdir())


def test_study_report_sections_write_and_return_their_tables(study, tmp_path):
    runs = load_runs(study)
    utts = runs.utterances()
    report = StudyReport(runs, tmp_path, n_boot=N_BOOT)
    rates, fig = report.rates()
    pd.testing.assert_frame_equal(rates, analysis.system_table(utts, n_boot=N_BOOT))
    assert pd.read_csv(tmp_path / "rates_per_run.csv")["wer"].tolist() == pytest.approx(
        analysis.rate_table(utts, n_boot=N_BOOT)["wer"].tolist())
    assert "Corpus WER/CER (%, raw), mean over seeds" in (tmp_path / "rates.tex").read_text(encoding="utf-8")
    statement, table, _ = report.comparison()
    pd.testing.assert_frame_equal(table, analysis.compare_methods(utts, n_boot=N_BOOT))
    assert statement == "\n\n".join(analysis.comparison_statement(table, m) for m in ("wer", "cer"))
    assert statement._repr_markdown_() == str(statement)
    *gain_figures, gain = report.gain_forgetting()
    assert len(gain_figures) == 2 and sorted(set(gain["metric"])) == ["cer", "wer"]
    pd.testing.assert_frame_equal(gain[gain["metric"] == "wer"].drop(columns="group").reset_index(drop=True),
                                  analysis.gain_forgetting_table(utts, n_boot=N_BOOT))
    assert set(gain["group"]) == set(gain["variant"])  # one context: the method names the group
    [no_bank] = report.bank()
    assert no_bank.startswith("No adapter-bank evaluation")
    [no_curve] = report.msa_curve()
    assert no_curve.startswith("No MSA train-size curve")
    _, efficiency = report.efficiency()
    pd.testing.assert_frame_equal(efficiency, tables.efficiency_summary(runs.runs))
    stems = ["efficiency", "gain_forgetting", "peft_vs_full", "rates"]
    assert _written(tmp_path) == sorted(
        [f"{s}.{e}" for s in stems for e in ("csv", "tex", "png", "pdf") if (s, e) not in {("gain_forgetting", "png"),
                                                                                      ("gain_forgetting", "pdf")}]
        + [f"gain_forgetting_{m}.{e}" for m in ("wer", "cer") for e in ("png", "pdf")]
        + ["rates_per_run.csv", "rates_per_run.tex"])
    report._utterances = utts[utts["scored"] == "trained"]
    [none] = report.gain_forgetting()
    assert none.startswith("No run scored its starting model")


def test_study_report_defaults(study, monkeypatch):
    runs = load_runs(study)
    monkeypatch.setenv("ARABICPEFT_PROFILE", "ci")
    report = StudyReport(runs)
    assert report.output_dir == study / "analysis" and report.n_boot == 2_000 and report.scheme == "raw"
    monkeypatch.delenv("ARABICPEFT_PROFILE")
    assert StudyReport(runs, "rel/out").output_dir == project_path("rel/out")
    assert StudyReport(runs).n_boot == stats.N_RESAMPLES
    assert StudyReport(runs, scheme="leaderboard").utterances["word_errors"].sum() == (
        runs.utterances(scheme="leaderboard")["word_errors"].sum())


def test_study_report_matrix_one_per_method_and_context(study, tmp_path):
    report = StudyReport(load_runs(study), tmp_path)
    scores = report.scores
    shown = report.matrix()
    assert [str(s) for s in shown[::3]] == ["**full fp32 lr1e-05**", "**lora fp32 r32 a64 d0.05 qv lr0.001**"]
    full = scores[(scores["method"] == "full") & (scores["scored"] == "trained") & (scores["test_set"] == "gulf")]
    assert shown[1].loc["egyptian", "gulf"] == f"{full['wer'].mean():.2f}\n(± {full['wer'].std():.2f})"
    assert shown[2].get_suptitle() == "full fp32 lr1e-05"
    assert _written(tmp_path) == sorted(f"matrix_{v}.{e}" for e in ("csv", "tex", "png", "pdf")
                                        for v in ("full_fp32_lr1e-05", "lora_fp32_r32_a64_d0.05_qv_lr0.001"))
    # runs that differ in anything but method, train set and seed (here a stage) never share a matrix
    staged = scores.assign(context=np.where(scores["seed"] == 42, "stage=a", "stage=b"))
    report._scores = staged
    titles = sorted(str(s) for s in report.matrix()[::3])
    assert titles == sorted(f"**{v} | stage={s}**" for s in ("a", "b")
                            for v in ("full fp32 lr1e-05", "lora fp32 r32 a64 d0.05 qv lr0.001"))
    report._scores = scores[scores["test_set"] == "gulf"]
    assert [str(s) for s in report.matrix()] == [  # one cell each
        "No train x test matrix: each group of runs has one train set and one test set."]


def test_study_report_paper_figures_per_method_and_metric(grid_root, tmp_path):
    notice, *figures = StudyReport(load_runs(grid_root), tmp_path).paper_figures(metrics=("wer", "cer"))
    assert notice == _SYNTHETIC_NOTICE
    assert len(figures) == 6  # one method: Figs. 1 and 3 once, Figs. 2 and 4 per metric
    assert [f.get_suptitle() for f in figures] == ["MSA train size vs zero-shot Whisper sizes (MSA test set)", *["full fp32 lr1e-05"] * 5]
    assert figures[0].axes[0].get_legend().get_texts()[0].get_text() == "own runs on MSA: full fp32 lr1e-05 (mean ± SD)"
    label = "full_fp32_lr1e-05"
    stems = [f"fig1_msa_trainsize_{label}", f"fig2_pretraining_wer_{label}", f"fig2_pretraining_cer_{label}",
             f"fig3_pooled_vs_specific_{label}", f"fig4_heatmap_wer_{label}", f"fig4_heatmap_cer_{label}"]
    assert _written(tmp_path) == sorted(f"{s}.{e}" for s in stems for e in ("png", "pdf"))
    [none] = StudyReport(load_runs(tmp_path / "empty"), tmp_path / "empty").paper_figures()
    assert none.startswith("No results in") and not (tmp_path / "empty").exists()


def test_data_notice_and_overview(study, tmp_path):
    runs = load_runs(study)
    assert _data_notice(runs.runs, study) == _SYNTHETIC_NOTICE
    assert _data_notice(runs.runs.assign(synthetic=False), study) == ""
    assert _data_notice(load_runs(tmp_path).runs, tmp_path) == (
        f"No results in `{tmp_path}`: run a study into it, or point the notebook at a folder of results.")
    notice, table = StudyReport(runs, tmp_path / "out", n_boot=7).overview()
    assert notice.startswith(f"Results: `{study}`; tables and figures: `{tmp_path / 'out'}`")
    assert "n_boot = 7" in notice and notice.endswith(_SYNTHETIC_NOTICE)
    assert table["runs"].tolist() == [3, 3] and table["seeds"].tolist() == [[42, 84, 168]] * 2
    [empty] = StudyReport(load_runs(tmp_path)).overview()
    assert "No results in" in empty


def test_a_report_leaves_out_runs_stopped_by_their_time_budget_and_counts_them(study, tmp_path):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(study, root)
    path = write_run(root, "lora_168_cut", "lora", 168, {t: {"ref_words": np.array([3]), "word_errors": np.array([3]),
                                                            "ref_chars": np.array([9]), "char_errors": np.array([9])}
                                                        for t in TEST_SETS})
    content = json.loads(path.read_text())
    content["training"] = {"global_step": 1, "stopped_by_time_budget_at_step": 1}  # 1 of 6 steps
    path.write_text(json.dumps(content))
    report = StudyReport(root, tmp_path / "out", n_boot=N_BOOT)
    assert list(report.left_out["run_id"]) == ["lora_168_cut"] and len(report.runs.runs) == 6
    notice, table = report.overview()
    assert "Left out of every section: 1 run(s) stopped by their time budget before their last step (lora_168_cut)" \
        in notice
    assert table["runs"].tolist() == [3, 3]
    finished = StudyReport(study, tmp_path / "o2", n_boot=N_BOOT)
    pd.testing.assert_frame_equal(report.rates()[0], finished.rates()[0])  # labelled anew: as if never there


def test_a_report_of_a_missing_or_unfinished_study_says_so_in_every_section(study, tmp_path):
    report = StudyReport(tmp_path / "typo")  # a folder: read with load_runs
    sections = ["rates", "comparison", "matrix", "gain_forgetting", "bank", "msa_curve", "efficiency"]
    for name in sections:
        [note] = getattr(report, name)()
        assert note == (f"No results in `{tmp_path / 'typo'}` (the folder does not exist: a typo?): run a study "
                        "into it, or point the notebook at a folder of results."), name
    report = StudyReport(study, tmp_path, n_boot=7)  # as if its full fine-tunes had not finished yet
    report._utterances = report.utterances[~report.utterances["variant"].str.startswith("full")]
    [note] = report.comparison()
    assert note.startswith("No (context, train_set, test_set) cell has runs of both 'full' and 'peft'.")


# every design: a ci-profile study of each (conftest.design_root) through every section of the report ---

SECTIONS = ["overview", "rates", "comparison", "matrix", "gain_forgetting", "bank", "msa_curve", "efficiency",
            "paper_figures"]


def _every_section(root, out):
    """{section: what it returned} for every StudyReport section on the runs under ``root``; each figure's legend
    and each table name every system apart (no two systems share a label)."""
    report = StudyReport(root, out, n_boot=200)
    shown = {name: getattr(report, name)() for name in SECTIONS}
    systems = report.runs.runs["system"]
    assert systems.nunique() == len(report.runs.runs.drop_duplicates(["system"]))
    rates, fig = shown["rates"]
    assert len(rates) == len(rates.drop_duplicates(["system", "test_set"]))  # one row per system and test set
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert legend == set(rates["system"]) and len(legend) == rates["system"].nunique()
    assert set(rates["system"]) <= set(systems)
    for name, items in shown.items():
        assert items and all(isinstance(i, (str, pd.DataFrame, Figure)) for i in items), name
    return report, shown


def test_report_on_a_peft_vs_full_study(design_root, tmp_path):
    report, shown = _every_section(design_root("peft_vs_full"), tmp_path)
    statement, table, _ = shown["comparison"]
    assert (table["test"] == stats.PAIRED_T).all() and (table["k_a"] == 2).all() and (table["df"] == 1).all()
    utts = report.utterances
    for _, row in table.iterrows():  # the t-test over the two seeds' rates, paired by seed
        rates = {m: _seed_rates(utts, m, row["test_set"], row["metric"]) for m in ("full", "lora")}
        expected = stats.seed_t_test(rates["full"], rates["lora"], paired=True)
        assert row["delta"] == pytest.approx(expected["delta"])
        assert row["p"] == pytest.approx(expected["p"], nan_ok=True)
    for metric, rows in table.groupby("metric"):  # the statement says what each cell allows, the margin with it
        tested = f"equivalence within ±1 {metric.upper()} points (TOST, alpha = 0.05)"
        assert (tested in statement) == rows["p"].notna().any()
        assert ("show no spread over seeds" in statement) >= rows["p"].isna().any()
    assert [str(s) for s in shown["bank"]] == [
        "No adapter-bank evaluation in this study (designs adapter_bank and offline-mini have one)."]


def test_report_on_a_paper_study(design_root, tmp_path):
    report, shown = _every_section(design_root("paper"), tmp_path)
    runs = report.runs.runs
    assert len(runs) == 12 and runs["system"].nunique() == 12  # one seed: every run is a system of its own
    _, table, _ = shown["comparison"]
    # LoRA and full started from their own method's MSA model are paired: the same start context
    with_msa = table[table["stage"] == WITH_PRETRAINING]
    assert len(with_msa) == 2 * 2 * 2  # train sets (egyptian, all) x test sets (egyptian, msa) x metrics
    assert set(runs.loc[runs["stage"] == WITH_PRETRAINING, "start_context"]) == {"msa/frac1"}
    assert set(runs.loc[runs["stage"] == WITH_PRETRAINING, "start_model"]) == {"msa/full_frac1",
                                                                               "msa/lora_frac1+merged"}
    *_, gain = shown["gain_forgetting"]
    pooled = gain[(gain["train_set"] == "all") & (gain["metric"] == "wer")]
    assert set(zip(pooled["test_set"], pooled["kind"])) == {("egyptian", "gain"), ("msa", "forgetting")}
    assert gain["group"].nunique() == 2 * 4  # methods x (msa at two sizes, without, with pre-training)
    assert len(shown["msa_curve"]) == 2 and len(shown["paper_figures"]) == 1 + 2 * 6  # notice + per method
    matrices = [str(s) for s in shown["matrix"][::3]]
    assert len(matrices) == len(set(matrices)) == 8


def test_report_on_a_mixing_study(design_root, tmp_path):
    report, shown = _every_section(design_root("mixing"), tmp_path)
    runs = report.runs.runs.set_index("stage")
    finetune = runs.loc["finetune"]
    assert set(finetune["condition"]) == {"from pool/balanced"}  # not "with_msa_pretraining"
    assert set(finetune["start_model"]) == {"pool/balanced"}
    pool = runs.loc["pool"].set_index("mixture")
    assert pool.loc["natural", "system"] != pool.loc["balanced", "system"]
    assert json.loads(pool.loc["balanced", "records_per_dialect"]) == {
        d: 10 for d in ("egyptian", "gulf", "iraqi", "levantine", "maghrebi")}
    notice, overview, pools_note, pools = shown["overview"]
    assert set(pools["mixture"]) == {"natural", "balanced"} and (pools["pool_records"] == 50).all()
    assert (pools["published_records"] == 50).all()  # 5 dialects x the cap of 10
    assert "natural 75,300, balanced 57,500" in pools_note
    *_, gain = shown["gain_forgetting"]
    assert set(gain.loc[gain["train_set"] == "egyptian", "group"].str.split().str[0]) == {"full", "lora"}
    assert gain["group"].nunique() == 4  # the two pools (natural, balanced) and the two fine-tunes
    _, table, _ = shown["comparison"]
    assert set(table["context"].str.contains("from pool/balanced")) == {True}


def test_report_on_an_adapter_bank_study(design_root, tmp_path):
    report, shown = _every_section(design_root("adapter_bank"), tmp_path)
    runs = report.runs.runs
    bank = runs[runs["train_set"] == "bank"].iloc[0]
    assert bank["dialect"] == "egyptian+levantine" and "dialect=egyptian+levantine" in bank["system"]
    *_, gain = shown["gain_forgetting"]
    pooled = gain[(gain["train_set"] == "all") & (gain["metric"] == "wer")]
    assert sorted(pooled["test_set"]) == ["egyptian", "levantine"] and set(pooled["kind"]) == {"gain"}
    wer_figure = shown["gain_forgetting"][0]
    ticks = [t.get_text() for t in wer_figure.axes[0].get_xticklabels()]
    assert ticks == ["Egyptian", "Levantine", "Dialect-pooled → Egyptian", "Dialect-pooled → Levantine"]
    table, _, routed, confusion = shown["bank"]
    assert set(table["role"]) == {"adapter bank", "base", "pooled natural", "own dialect"}
    # the bank stage fitted a dialect router: routed vs oracle vs base (this bank holds no pooled adapter)
    assert list(routed["routing"].unique()) == ["oracle", "predicted", "base"]
    assert set(routed["test_set"]) == {"egyptian", "levantine"} and (routed["n"] == 4).all()
    assert confusion.axes[0].get_xlabel() == "predicted dialect"


def test_report_on_a_training_run_and_an_evaluation_of_its_model(design_root, tmp_path):
    report, shown = _every_section(design_root("train_evaluate"), tmp_path)
    rates, _ = shown["rates"]
    assert sorted(set(rates["system"])) == ["kind=evaluation", "kind=training"]
    by = rates.set_index(["system", "test_set"])["wer"]
    for test_set in ("egyptian", "gulf"):  # the same model on the same utterances scores the same
        assert by[("kind=evaluation", test_set)] == pytest.approx(by[("kind=training", test_set)])
    assert shown["comparison"][0].startswith("No (context, train_set, test_set) cell has runs of both")
    fig, efficiency = shown["efficiency"]
    assert list(efficiency["system"]) == ["kind=training"]  # an evaluation has no training cost


def test_report_on_a_peft_methods_study(design_root, tmp_path):
    """peft_methods (LoRA and IA3 on q/v and on every linear layer, vs full fine-tuning, two seeds): every adapter
    variant is compared with full fine-tuning over seeds, and the efficiency table has each one's cost."""
    report, shown = _every_section(design_root("peft_methods"), tmp_path)
    runs = report.runs.runs
    assert len(runs) == 10 and sorted(runs.groupby("method").size().items()) == [("full", 2), ("ia3", 4), ("lora", 4)]
    full = runs.loc[runs["method"] == "full", "variant"].iloc[0]  # the ci profile sets one learning rate for all
    statement, table, _ = shown["comparison"]
    assert set(table["a"]) == {full} and len(table) == 4 * 2  # 4 adapter variants x (wer, cer)
    assert {b.split(" ")[0] for b in table["b"]} == {"lora", "ia3"}
    ticks = [t.get_text() for t in shown["comparison"][2].axes[0].get_yticklabels()]
    assert len(ticks) == 4 and all(any(b in t for t in ticks) for b in set(table["b"]))  # a row per variant
    assert {b.split(" ")[-2] for b in table["b"] if b.startswith("ia3")} == {"lora_targets=qv",
                                                                              "lora_targets=all-linear"}
    assert (table["test"] == stats.PAIRED_T).all() and (table["df"] == 1).all()
    utts = report.utterances
    for _, row in table.iterrows():  # each variant's t-test over the two seeds, paired with full fine-tuning's
        b = utts[(utts["scored"] == "trained") & (utts["variant"] == row["b"]) & (utts["test_set"] == row["test_set"])]
        rates_b = np.array([_rate(g, row["metric"]) for _, g in b.groupby("seed")])
        expected = stats.seed_t_test(_seed_rates(utts, "full", row["test_set"], row["metric"]), rates_b, paired=True)
        assert row["delta"] == pytest.approx(expected["delta"])
    _, efficiency = shown["efficiency"]
    assert len(efficiency) == 5 and (efficiency["k"] == 2).all()
    by_variant = efficiency.set_index("variant")
    trained = by_variant["trainable_parameters"]
    assert trained.filter(like="ia3").max() < trained.filter(like="lora ").min() < trained[full]
    assert (efficiency[["train_s_per_step", "peak_memory_mib", "weights_mib"]] > 0).all().all()
    steps = runs.set_index("run_id")
    assert by_variant.loc[full, "train_s_per_step"] == pytest.approx(
        (steps.loc[steps["method"] == "full", "train_wall_time_s"] / 2).mean())
