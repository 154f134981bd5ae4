"""Reading a directory of runs (per-utterance errors, efficiency, tables) and the analysis built on it."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from arabicpeft import analysis, paper, plots, stats
from arabicpeft.config import ExperimentConfig
from arabicpeft.results import load_runs, _results_files
from arabicpeft.paper import WITH_PRETRAINING, WITHOUT_PRETRAINING

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


def test_condition_from_the_config_extra(tmp_path):
    counts = {"gulf": {"ref_words": np.array([3]), "word_errors": np.array([1]), "ref_chars": np.array([9]),
                       "char_errors": np.array([2])}}
    write_run(tmp_path, "a", "full", 1, counts, extra={"init_from": "runs/msa/model"})
    write_run(tmp_path, "b", "full", 1, counts, extra={"condition": "my_condition"})
    write_run(tmp_path, "c", "full", 1, counts)
    frame = load_runs(tmp_path).runs.set_index("run_id")
    assert frame.loc["a", "condition"] == WITH_PRETRAINING and frame.loc["a", "init_from"] == "runs/msa/model"
    assert frame.loc["b", "condition"] == "my_condition"
    assert frame.loc["c", "condition"] == WITHOUT_PRETRAINING


def test_save_table_writes_csv_and_latex(tmp_path):
    table = pd.DataFrame({"test_set": ["egyptian", "gulf"], "wer": [12.3456, np.nan], "p_holm": [0.01, 1.0]})
    csv, tex = analysis._save_table(table, tmp_path / "tables" / "t1", caption="WER", label="tab:wer")
    assert (csv.name, tex.name) == ("t1.csv", "t1.tex")
    pd.testing.assert_frame_equal(pd.read_csv(csv), table)
    latex = tex.read_text(encoding="utf-8")
    assert "\\begin{tabular}" in latex and "\\toprule" in latex and "\\caption{WER}" in latex
    assert "12.35" in latex and "--" in latex and "p\\_holm" in latex and "12.3456" not in latex


def test_save_figure_writes_png_and_pdf(tmp_path):
    paths = analysis._save_figure(plots.fig4_heatmap(paper.figure_data()["dialects"]), tmp_path / "sub" / "fig4")
    assert [p.name for p in paths] == ["fig4.png", "fig4.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_published_figures_draw_and_write_the_four(tmp_path):
    figures = analysis.published_figures(tmp_path / "paper")
    assert len(figures) == 4 and all(isinstance(f, Figure) for f in figures)
    stems = ["fig1_msa_trainsize", "fig2_pretraining", "fig3_pooled_vs_specific", "fig4_heatmap"]
    assert sorted(p.name for p in (tmp_path / "paper").iterdir()) == sorted(f"{s}.{e}" for s in stems for e in ("png", "pdf"))
    curve = figures[0].axes[0].lines[0]  # Fig. 1: the published MSA curve, mean over seeds
    msa = paper._load_msa_trainsize().sort_values("msa_fraction").dropna(subset=["msa_fraction"])
    np.testing.assert_allclose(np.asarray(curve.get_ydata(), float), msa["wer_mean"], atol=0.005)
    heatmap = figures[3].axes[0]  # Fig. 4: with MSA pre-training, Egyptian on Egyptian as published
    assert "72.15" in [t.get_text().split("\n")[0] for t in heatmap.texts]


def test_project_path(tmp_path, monkeypatch):
    assert analysis.project_path(tmp_path / "x") == tmp_path / "x"
    (tmp_path / "proj" / "arabicpeft").mkdir(parents=True)
    (tmp_path / "proj" / "arabicpeft" / "__init__.py").write_text("")
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    (tmp_path / "proj" / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "proj" / "notebooks")  # a notebook kernel's working directory
    assert analysis.project_path("runs/study") == (tmp_path / "proj" / "runs" / "study").resolve()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no project above: the working directory
    assert analysis.project_path("runs/study") == (tmp_path / "elsewhere" / "runs" / "study").resolve()


# analysis -------------------------------------------------------------------------------------------------


def _rate(rows, metric="wer"):
    errors, lengths = analysis._METRICS[metric]
    return stats._corpus_rate(rows[errors], rows[lengths])


def test_rate_table_per_run(utts):
    table = analysis._rate_table(utts, n_boot=N_BOOT)
    assert len(table) == 6 * len(TEST_SETS)  # start rows are left out
    row = table[table["variant"].str.startswith("lora") & (table["seed"] == 84) & (table["test_set"] == "gulf")].iloc[0]
    run = utts[(utts["scored"] == "trained") & (utts["method"] == "lora") & (utts["seed"] == 84)
               & (utts["test_set"] == "gulf")]
    ci = stats.bootstrap_ci(run["char_errors"], run["ref_chars"], n_boot=N_BOOT)
    assert row["wer"] == pytest.approx(_rate(run)) and row["n_utterances"] == N_UTT
    assert (row["cer"], row["cer_low"], row["cer_high"]) == pytest.approx((ci["estimate"], ci["low"], ci["high"]))


def test_system_table_means_over_seeds(utts):
    table = analysis._system_table(utts, n_boot=N_BOOT)
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


def test_compare_methods(utts):
    table = analysis._compare_methods(utts, n_boot=N_BOOT)
    assert len(table) == len(TEST_SETS) * 2  # test sets x (wer, cer)
    assert (table["a"] == "full fp32 lr1e-05").all() and (table["b"] == "lora fp32 r32 a64 d0.05 qv lr0.001").all()
    assert (table["ci_method"] == analysis._TWO_LEVEL).all()
    np.testing.assert_allclose(table["p_holm"], stats.holm(table["p"]))  # one family: the whole table
    row = table[(table["test_set"] == "egyptian") & (table["metric"] == "wer")].iloc[0]
    trained = utts[(utts["scored"] == "trained") & (utts["test_set"] == "egyptian")]
    rates = {m: np.array([_rate(g) for _, g in trained[trained["method"] == m].groupby("seed")]) for m in ("full", "lora")}
    assert row["rate_a"] == pytest.approx(rates["full"].mean()) and row["rate_b"] == pytest.approx(rates["lora"].mean())
    assert row["delta"] == pytest.approx(rates["lora"].mean() - rates["full"].mean())
    assert row["delta"] > 0 and row["low"] < row["delta"] < row["high"]  # lora gains less on egyptian
    assert row["hedges_g"] == pytest.approx(stats.hedges_g(rates["lora"], rates["full"]))
    gulf = table[(table["test_set"] == "gulf") & (table["metric"] == "wer")].iloc[0]
    assert gulf["delta"] < 0 and gulf["p"] < 0.05  # full forgets more on gulf


def test_compare_methods_single_seed_identical_and_missing(utts):
    one = utts[utts["seed"] == 42]
    table = analysis._compare_methods(one, metrics=("wer",), n_boot=N_BOOT)
    assert (table["ci_method"] == analysis._PAIRED).all() and table["hedges_g"].isna().all()  # 2 runs: g undefined
    same = utts[utts["method"] == "full"]
    twin = pd.concat([same, same.assign(method="lora", variant="lora twin")])
    table = analysis._compare_methods(twin, metrics=("wer",), n_boot=N_BOOT)
    assert (table["delta"] == 0).all() and (table["p"] == 1).all()
    with pytest.raises(ValueError, match="both"):
        analysis._compare_methods(same, n_boot=N_BOOT)


def test_efficiency_summary(study):
    summary = analysis._efficiency_summary(load_runs(study).runs)
    summary = summary.assign(method=summary["variant"].str.split().str[0]).set_index("method")
    assert summary.loc["full", "k"] == 3 and summary.loc["full", "peak_memory_kind"] == "peak_rss"
    assert summary.loc["full", "peak_memory_mib"] == pytest.approx(900.0)
    assert summary.loc["lora", "trainable_parameters"] == 10 and summary.loc["lora", "weights_mib"] == pytest.approx(4.0)
    assert summary.loc["full", "train_wall_time_s"] == pytest.approx(11.0)
    assert summary.loc["full", "train_wall_time_s_sd"] == pytest.approx(1.0)


def test_gain_forgetting_table_matches_point_values(utts):
    table = analysis._gain_forgetting_table(utts, n_boot=N_BOOT)
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
        analysis._gain_forgetting_table(utts[utts["scored"] == "trained"], n_boot=N_BOOT)
    cer = analysis._gain_forgetting_table(utts, metric="cer", n_boot=N_BOOT)
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
        for condition, extra in (("without", None), ("with", {"init_from": "msa/48_42/model"})):
            for dialect in ("egyptian", "all"):
                write_run(root / condition, f"{dialect}_{seed}", "full", seed, {t: _one(rng, 0.6) for t in sets},
                          start, dialect=dialect, extra=extra)
    return root


@pytest.fixture(scope="module")
def grid(grid_root):
    return load_runs(grid_root).scores()


def test_msa_trainsize_frame_feeds_fig1(grid):
    frame = analysis._msa_trainsize_frame(grid)
    assert list(frame.columns) == ["model", "seed", "wer", "cer", "system", "msa_fraction"]
    assert sorted(set(frame["msa_fraction"])) == [0.0, 0.5, 1.0]
    assert (frame["msa_fraction"] == 0.0).sum() == 4  # the starting model, once per MSA run
    half = frame[frame["msa_fraction"] == 0.5]
    expected = grid[(grid["train_set"] == "msa") & (grid["test_set"] == "msa") & (grid["n_train"] == 24)]
    assert sorted(half["wer"]) == sorted(expected["wer"])
    with pytest.raises(ValueError, match="No runs"):
        analysis._msa_trainsize_frame(grid[grid["train_set"] != "msa"])


def test_paper_frames_dialects_and_pooled(grid):
    frames = analysis._paper_frames(grid)
    pd.testing.assert_frame_equal(frames["msa_trainsize"], analysis._msa_trainsize_frame(grid))
    dialects = frames["dialects"]
    assert set(dialects["train_set"]) == {"egyptian", "all"} and set(dialects["scored"]) == {"trained"}
    assert set(dialects["condition"]) == {WITHOUT_PRETRAINING, WITH_PRETRAINING}
    pooled = frames["pooled_vs_specific"]
    assert (pooled.loc[pooled["train_set"] == "msa", "n_train"] == 48).all()  # the model with the most MSA data
    assert (pooled.loc[pooled["train_set"] != "msa", "condition"] == WITH_PRETRAINING).all()
    fig3 = plots.fig3_pooled_vs_specific(pooled)  # pooled ("all") and own model on egyptian and msa, 2 seeds
    assert len([bar for c in fig3.axes[0].containers for bar in c]) == 4


def test_rate_table_refuses_to_merge_two_runs_of_one_seed():
    import pandas as pd

    from arabicpeft import analysis

    one = dict(system="all", study=None, stage=None, variant="lora", train_set="egyptian", seed=42, test_set="egyptian",
               word_errors=1, ref_words=4, char_errors=2, ref_chars=10, scored="trained")
    rows = pd.DataFrame([{**one, "utt_index": 0}, {**one, "utt_index": 1}, {**one, "utt_index": 0}])
    with pytest.raises(ValueError, match="Several runs share"):
        analysis._rate_table(rows, n_boot=100)


def test_equivalence_against_the_seed_spread(utts):
    table = analysis._compare_methods(utts, metrics=("wer",), n_boot=N_BOOT)
    row = table.set_index("test_set").loc["egyptian"]
    rates = {m: np.array([_rate(g) for _, g in utts[(utts["scored"] == "trained") & (utts["method"] == m)
                                                   & (utts["test_set"] == "egyptian")].groupby("seed")])
             for m in ("full", "lora")}
    pooled = np.sqrt((rates["full"].var(ddof=1) * 2 + rates["lora"].var(ddof=1) * 2) / 4)
    assert row["seed_sd"] == pytest.approx(pooled)
    assert row["equivalent"] == (-pooled < row["low"] and row["high"] < pooled)
    text = analysis._equivalence_statement(table)
    n_eq = int(table["equivalent"].astype(bool).sum())
    assert (f"In {n_eq} of 2 cells" in text) if n_eq else ("In none of the 2 cells" in text)
    one_seed = analysis._compare_methods(utts[utts["seed"] == 42], metrics=("wer",), n_boot=N_BOOT)
    assert one_seed["equivalent"].isna().all() and "cannot be judged" in analysis._equivalence_statement(one_seed)


# notebook sections: what each writes and returns -----------------------------------------------------------------


def _written(folder):
    return sorted(p.name for p in folder.iterdir())


def test_study_report_sections_write_and_return_their_tables(study, tmp_path):
    runs = load_runs(study)
    utts = runs.utterances()
    report = analysis.StudyReport(runs, tmp_path, n_boot=N_BOOT)
    rates, fig = report.rates()
    pd.testing.assert_frame_equal(rates, analysis._system_table(utts, n_boot=N_BOOT))
    assert pd.read_csv(tmp_path / "rates_per_run.csv")["wer"].tolist() == pytest.approx(
        analysis._rate_table(utts, n_boot=N_BOOT)["wer"].tolist())
    assert "Corpus WER/CER (%, raw), mean over seeds" in (tmp_path / "rates.tex").read_text(encoding="utf-8")
    statement, table, _ = report.comparison()
    pd.testing.assert_frame_equal(table, analysis._compare_methods(utts, n_boot=N_BOOT))
    assert statement == "\n\n".join(analysis._equivalence_statement(table, m) for m in ("wer", "cer"))
    assert statement._repr_markdown_() == str(statement)
    *gain_figures, gain = report.gain_forgetting()
    assert len(gain_figures) == 2 and sorted(set(gain["metric"])) == ["cer", "wer"]
    pd.testing.assert_frame_equal(gain[gain["metric"] == "wer"].reset_index(drop=True),
                                  analysis._gain_forgetting_table(utts, n_boot=N_BOOT))
    [no_bank] = report.bank()
    assert no_bank.startswith("No adapter-bank evaluation")
    [no_curve] = report.msa_curve()
    assert no_curve.startswith("No MSA train-size curve")
    _, efficiency = report.efficiency()
    pd.testing.assert_frame_equal(efficiency, analysis._efficiency_summary(runs.runs))
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
    report = analysis.StudyReport(runs)
    assert report.output_dir == study / "analysis" and report.n_boot == 2_000 and report.scheme == "raw"
    monkeypatch.delenv("ARABICPEFT_PROFILE")
    assert analysis.StudyReport(runs, "rel/out").output_dir == analysis.project_path("rel/out")
    assert analysis.StudyReport(runs).n_boot == stats.N_RESAMPLES
    assert analysis.StudyReport(runs, scheme="leaderboard").utterances["word_errors"].sum() == (
        runs.utterances(scheme="leaderboard")["word_errors"].sum())


def test_study_report_matrix_one_per_method_and_stage(study, tmp_path):
    report = analysis.StudyReport(load_runs(study), tmp_path)
    scores = report.scores.assign(stage="train")
    report._scores = scores
    shown = report.matrix()
    assert [str(s) for s in shown[::3]] == ["**full fp32 lr1e-05** (train)", "**lora fp32 r32 a64 d0.05 qv lr0.001** (train)"]
    full = scores[(scores["method"] == "full") & (scores["scored"] == "trained") & (scores["test_set"] == "gulf")]
    assert shown[1].loc["egyptian", "gulf"] == f"{full['wer'].mean():.2f}\n(± {full['wer'].std():.2f})"
    assert shown[2].get_suptitle() == "full fp32 lr1e-05 (train)"
    assert _written(tmp_path) == sorted(f"matrix_train_{v}.{e}" for v in ("full_fp32_lr1e-05", "lora_fp32_r32_a64_d0.05_qv_lr0.001")
                                        for e in ("csv", "tex", "png", "pdf"))
    report._scores = scores[scores["test_set"] == "gulf"]
    assert report.matrix() == []  # one cell each


def test_study_report_paper_figures_per_method_and_metric(grid_root, tmp_path):
    notice, *figures = analysis.StudyReport(load_runs(grid_root), tmp_path).paper_figures(metrics=("wer", "cer"))
    assert notice == analysis._SYNTHETIC_NOTICE
    assert len(figures) == 6  # one method: Figs. 1 and 3 once, Figs. 2 and 4 per metric
    assert [f.get_suptitle() for f in figures] == ["MSA train size vs zero-shot Whisper sizes (MSA test set)", *["full fp32 lr1e-05"] * 5]
    assert figures[0].axes[0].get_legend().get_texts()[0].get_text() == "own runs on MSA: full fp32 lr1e-05 (mean ± SD)"
    label = "full_fp32_lr1e-05"
    stems = [f"fig1_msa_trainsize_{label}", f"fig2_pretraining_wer_{label}", f"fig2_pretraining_cer_{label}",
             f"fig3_pooled_vs_specific_{label}", f"fig4_heatmap_wer_{label}", f"fig4_heatmap_cer_{label}"]
    assert _written(tmp_path) == sorted(f"{s}.{e}" for s in stems for e in ("png", "pdf"))
    [none] = analysis.StudyReport(load_runs(tmp_path / "empty"), tmp_path / "empty").paper_figures()
    assert none.startswith("No results in") and not (tmp_path / "empty").exists()


def test_data_notice_and_overview(study, tmp_path):
    runs = load_runs(study)
    assert analysis._data_notice(runs.runs, study) == analysis._SYNTHETIC_NOTICE
    assert analysis._data_notice(runs.runs.assign(synthetic=False), study) == ""
    assert analysis._data_notice(load_runs(tmp_path).runs, tmp_path) == (
        f"No results in `{tmp_path}`: run a study into it, or point the notebook at a folder of results.")
    notice, table = analysis.StudyReport(runs, tmp_path / "out", n_boot=7).overview()
    assert notice.startswith(f"Results: `{study}`; tables and figures: `{tmp_path / 'out'}`")
    assert "n_boot = 7" in notice and notice.endswith(analysis._SYNTHETIC_NOTICE)
    assert table["runs"].tolist() == [3, 3] and table["seeds"].tolist() == [[42, 84, 168]] * 2
    [empty] = analysis.StudyReport(load_runs(tmp_path)).overview()
    assert "No results in" in empty


def test_a_report_of_a_missing_or_unfinished_study_says_so_in_every_section(study, tmp_path):
    report = analysis.StudyReport(tmp_path / "typo")  # a folder: read with load_runs
    sections = ["rates", "comparison", "matrix", "gain_forgetting", "bank", "msa_curve", "efficiency"]
    for name in sections:
        [note] = getattr(report, name)()
        assert note == (f"No results in `{tmp_path / 'typo'}` (the folder does not exist: a typo?): run a study "
                        "into it, or point the notebook at a folder of results."), name
    report = analysis.StudyReport(study, tmp_path, n_boot=7)  # as if its full fine-tunes had not finished yet
    report._utterances = report.utterances[~report.utterances["variant"].str.startswith("full")]
    [note] = report.comparison()
    assert note.startswith("No (context, train_set, test_set) cell has runs of both 'full' and 'lora'.")
