"""What evaluate scores: transformed test sets labelled in the results and in load_runs, refused on features, and
each set marked as trained on, related to the training data, or held out."""

import numpy as np
import pytest

from arabicpeft import evaluation_sets, sources, transforms
from arabicpeft.errors import UserError
from arabicpeft.evaluate import run
from arabicpeft.results import load_runs, read_results


@pytest.fixture(scope="module")
def scored(adapter, tmp_path_factory):
    """The egyptian tiny-random adapter (trained on the sample set) scored on egyptian and gulf, clean and under
    two transforms."""
    root = tmp_path_factory.mktemp("robust")
    path = run(adapter, root / "eval", test_sets=["egyptian", "gulf"], source="sample", max_test_samples=5,
               generation_max_length=6, transforms="clean,noise-white-10dB,speed-0.9", transform_seed=7,
               log=lambda *_: None)
    return root, read_results(path)


def test_evaluate_writes_each_transformed_set_under_its_label(scored):
    root, result = scored
    labels = ["egyptian", "egyptian+noise-white-10dB", "egyptian+speed-0.9",
              "gulf", "gulf+noise-white-10dB", "gulf+speed-0.9"]
    assert list(result["metrics"]) == labels and result["evaluation"]["test_sets"] == labels
    assert [t["spec"] for t in result["evaluation"]["transforms"]] == [
        "clean", "noise-white-10dB", "speed-0.9"]
    assert result["evaluation"]["transform_seed"] == 7
    noisy = result["data"]["test"]["gulf+noise-white-10dB"]
    assert noisy["transform"]["snr_db"] == 10.0 and noisy["transform_too_long"] == 0
    assert result["metrics_pooled"]["raw"]["n_utterances"] == 10  # pooled over the first condition (clean) only
    scores = load_runs(root).scores("raw")
    assert sorted(scores["test_set"]) == sorted(labels) and set(scores["n_utterances"]) == {5}


def test_evaluate_records_what_the_model_was_trained_on_and_each_sets_relation(scored):
    root, result = scored
    assert result["evaluation"]["trained_on"] == {"source": "sample", "dataset": None, "data_path": None,
                                                  "varieties": ["egyptian"]}
    relation = result["evaluation"]["relation"]
    assert relation["egyptian+noise-white-10dB"] == relation["egyptian"] == "trained"
    assert relation["gulf"] == relation["gulf+speed-0.9"] == "related"
    scores = load_runs(root).scores("raw").set_index("test_set")
    assert scores.loc["egyptian", "relation"] == "trained" and scores.loc["gulf", "relation"] == "related"


def test_sources_relation_marks_held_out_sets_and_declared_relations(monkeypatch):
    trained = {"source": "sample", "dialect": "all", "data_path": None}
    assert sources.relation(trained, "sample", "gulf") == "trained"
    assert sources.relation(trained, "hub", "gulf") == "held-out"
    assert sources.relation(None, "hub", "gulf") is None  # a base model: nothing known of its training data
    local = {"source": "local", "dialect": "egyptian", "data_path": "/data/a"}
    assert sources.relation(local, "local", "egyptian", "/data/a") == "trained"
    assert sources.relation(local, "local", "egyptian", "/data/b") == "related"  # another folder: not told apart
    monkeypatch.setitem(sources.SOURCES, "masc", sources.Source("masc", "MASC", "audio", lambda *a: None,
                                                                related=("hub",)))
    assert sources.relation({"source": "hub", "dialect": "gulf"}, "masc", "gulf") == "related"
    assert sources.relation({"source": "masc", "dialect": "gulf"}, "hub", "gulf") == "related"


def test_a_transformed_set_is_the_same_for_a_seed_and_drops_clips_made_too_long():
    from arabicpeft.config import ExperimentConfig

    ds = sources.load_raw(ExperimentConfig(source="sample", dialect="gulf"), "gulf", "test").dataset.select(range(6))
    babble = transforms.parse("noise-babble-10dB")
    first, again, other = (transforms.transform_set(ds, babble, seed, 30.0, {}) for seed in (0, 0, 1))
    arrays = [np.asarray(d[2]["audio"]["array"]) for d in (first, again, other)]
    assert np.array_equal(arrays[0], arrays[1]) and not np.array_equal(arrays[0], arrays[2])
    assert first["text"] == list(ds["text"])
    report = {"rows_used": 6}
    lengths = [len(np.asarray(r["audio"]["array"])) for r in transforms.transform_set(ds, transforms.parse("speed-1.1"),
                                                                                       0, 30.0, {})]
    slow = transforms.transform_set(ds, transforms.parse("speed-0.5"), 0, max(lengths) / 16000 * 1.6, report)
    assert report["transform_too_long"] == 6 - len(slow) > 0 and report["rows_used"] == len(slow)
    with pytest.raises(UserError, match="babble needs more than 4"):
        transforms.transform_set(ds.select(range(4)), babble, 0, 30.0, {})


def test_transforms_of_features_are_refused_before_the_model_loads(tmp_path):
    with pytest.raises(UserError, match="the hub source holds log-mel features, not waveforms"):
        run("no-such-model", tmp_path / "e", source="hub", dialect="gulf", transforms=["noise-pink-5dB"])
    with pytest.raises(UserError, match="a feature cache holds log-mel features"):
        evaluation_sets.check_transforms("telephone", "sample", None, str(tmp_path / "cache"))
    assert evaluation_sets.check_transforms("clean", "hub", None, None) == [None]  # clean features are fine


def test_the_report_draws_the_noise_curve_and_marks_held_out_sets(scored, tmp_path):
    from arabicpeft.report import StudyReport

    root, result = scored
    report = StudyReport(root, output_dir=tmp_path, n_boot=10)
    table, fig = report.noise_curve()
    assert table[["noise", "snr_db"]].values.tolist() == [["clean", np.inf], ["white", 10.0]]
    clean = result["metrics"]
    words = sum(clean[s]["raw"]["word_errors"] for s in ("egyptian", "gulf"))
    total = sum(clean[s]["raw"]["ref_words"] for s in ("egyptian", "gulf"))
    assert table.loc[0, "wer"] == pytest.approx(100 * words / total) and table.loc[0, "n_utterances"] == 10
    assert [line.get_label() for line in fig.axes[0].lines][-1].endswith("white noise")
    assert (tmp_path / "noise_curve.csv").is_file() and (tmp_path / "noise_curve.png").is_file()
    note, marked = report.held_out()
    assert marked["relation"].astype(str).tolist() == ["trained"] * 3 + ["related"] * 3
    assert "trained 3, related 3, held-out 0" in note and (tmp_path / "held_out.csv").is_file()
