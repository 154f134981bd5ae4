"""The sources registry: adding a source is one declaration (a source declared here alone trains and is scored),
an unknown name is one line naming the valid ones, every declared flag is read by the package, and the names
that old configs and results files hold keep their meaning."""

import ast
import dataclasses
import json
from pathlib import Path

import datasets
import pandas as pd
import pytest
from conftest import _tiny_base, dataclasses_replace

from arabicpeft import kaggle, sources
from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import ConfigError
from arabicpeft.sources import SAMPLE_DIR, Source, SourceSplit

PACKAGE = Path(sources.__file__).parent


def _read_other_csv(cfg, variety, split, pooled):
    """A layout the package does not know: ``{split}.csv`` with ``wav_file``, ``transcription`` and ``accent``."""
    frame = pd.read_csv(Path(cfg.data_path) / f"{split}.csv", dtype=str)
    frame = frame[frame["accent"] == variety]
    ds = datasets.Dataset.from_dict({"audio": list(frame["wav_file"]), "text": list(frame["transcription"])})
    return SourceSplit(ds.to_iterable_dataset() if cfg.streaming else ds)


def _other_csv_folder(root: Path, n_train: int = 16, n_test: int = 4) -> Path:
    """The sample set's first Egyptian clips, listed in the other layout (one Gulf row that must not be read)."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        rows = pd.read_json(SAMPLE_DIR / f"{split}.jsonl", lines=True, dtype=False)
        rows = pd.concat([rows[rows.dialect == "egyptian"].head(n), rows[rows.dialect == "gulf"].head(1)])
        pd.DataFrame({"wav_file": [str(SAMPLE_DIR / a) for a in rows.audio], "transcription": list(rows.text),
                      "accent": list(rows.dialect)}).to_csv(root / f"{split}.csv", index=False)
    return root


def test_a_source_declared_in_a_test_alone_trains_and_is_scored(tmp_path, monkeypatch):
    from arabicpeft.results import read_results
    from arabicpeft.train import run

    declared = Source("other-csv", "a CSV of wav_file, transcription and accent", "audio", _read_other_csv,
                      needs_data_path=True, max_clip_seconds=8)
    monkeypatch.setitem(sources.SOURCES, "other-csv", declared)
    assert "other-csv" in ExperimentConfig.choices("source")  # the CLI's and the widgets' choices
    with pytest.raises(ConfigError, match="source='other-csv' needs data_path"):
        ExperimentConfig(source="other-csv")
    data = _other_csv_folder(tmp_path / "data")
    cfg = dataclasses_replace(_tiny_base(), source="other-csv", data_path=str(data), dialect="egyptian",
                              test_sets=["egyptian"], max_test_samples=None, output_dir=str(tmp_path / "run"))
    kaggle.preflight(cfg)
    results = read_results(run(cfg, log=lambda m: None))
    assert results["config"]["source"] == "other-csv" and results["config"]["encoder_seconds"] == 8  # declared
    assert results["training"]["global_step"] == 2
    pool = results["data"]["train_pool"]
    assert (pool["rows_in"], pool["rows_used"], pool["hub_ids"]) == (16, 16, None)  # no Gulf row read
    # 16 records: 4 to validation (20 %, rounded up), 12 to training, cut to max_train_samples 8
    assert (results["data"]["n_train"], results["data"]["n_validation"]) == (8, 4)
    assert results["data"]["test"]["egyptian"]["rows_used"] == 4 and results["data"]["format"] == "audio"
    assert results["data"]["source_records"] == {"records": "audio", "n_mels": None, "label_tokens": None,
                                                 "labels_remade": False}
    assert results["synthetic"] is False  # nothing in the declaration says so
    # scored on the reader's transcripts: the 4 Egyptian test rows of the CSV, under every normalizer
    rows = pd.read_csv(Path(cfg.output_dir) / results["utterances_file"], keep_default_na=False)
    raw = rows[rows.scheme == "raw"]
    assert sorted(raw.reference) == sorted(pd.read_csv(data / "test.csv").query("accent == 'egyptian'").transcription)
    for scheme, m in results["metrics"]["egyptian"].items():
        sub = rows[rows.scheme == scheme]
        assert m["n_utterances"] == len(sub) == 4
        assert m["wer"] == pytest.approx(100 * sub.word_errors.sum() / sub.ref_words.sum())


def test_an_unknown_source_is_one_line_naming_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        sources.get("otozz")
    assert str(caught.value) == ("Unknown source 'otozz' — choose one of hub, local, sample, casablanca, mediaspeech, "
                                 "mgb2, cv-ar, fleurs-ar, sada, masc.")
    with pytest.raises(ConfigError, match="Unknown source 'otozz' — choose one of hub, local, sample, casablanca"):
        ExperimentConfig(source="otozz")
    with pytest.raises(ValueError, match="records is one of features, audio, any"):
        Source("x", "x", "log-mel", _read_other_csv)


def _declaration_reads() -> dict[str, set[str]]:
    """{field: modules} of the reads of a :class:`Source` field outside sources.py: an attribute of
    ``sources.of(...)`` / ``sources.get(...)`` / ``SOURCES.get(...)``, of a name bound to one, or of a loop
    variable over ``SOURCES``."""
    def lookup(node) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "of")
                and isinstance(node.func.value, (ast.Name, ast.Attribute))
                and getattr(node.func.value, "id", getattr(node.func.value, "attr", None)) in ("sources", "SOURCES"))

    def over_table(node) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values"
                and getattr(node.func.value, "attr", getattr(node.func.value, "id", None)) == "SOURCES")

    reads: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        if path.stem == "sources":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and lookup(n.value)
                 for t in n.targets if isinstance(t, ast.Name)}
        bound |= {n.target.id for n in ast.walk(tree) if isinstance(n, ast.comprehension) and over_table(n.iter)
                  and isinstance(n.target, ast.Name)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and (lookup(n.value) or getattr(n.value, "id", None) in bound):
                reads.setdefault(n.attr, set()).add(path.stem)
    return reads


def test_every_declared_flag_is_read_by_the_package():
    reads = _declaration_reads()
    # ``read`` is called by sources.load_raw, the one reader of every source; ``related`` by sources.relation, the
    # one judge of held-out scores
    unread = [f.name for f in dataclasses.fields(Source) if f.name not in ("read", "related") and f.name not in reads]
    assert not unread, f"declared but read nowhere: {unread}"
    assert {"config"} <= reads["needs_data_path"] and {"kaggle", "data"} <= reads["needs_hub"]


def test_the_three_sources_keep_their_meaning_for_old_configs_and_results(tmp_path):
    hub, local, sample = (sources.get(n) for n in ("hub", "local", "sample"))
    assert (hub.records, hub.needs_hub, hub.n_mels, hub.label_tokens) == ("features", True, 80, "whisper")
    assert (local.records, local.needs_data_path, local.needs_hub) == ("any", True, False)
    assert (sample.synthetic, sample.max_clip_seconds, sample.needs_hub) == (True, 8, False)
    # a config saved before the registry (source as a plain string) reads back the same
    saved = ExperimentConfig(source="sample", dialect="gulf").to_dict()
    (tmp_path / "arabicpeft_config.json").write_text(json.dumps(saved), encoding="utf-8")
    cfg = ExperimentConfig.saved_in(tmp_path)
    assert cfg.source == "sample" and cfg.automatic_choices()[0].encoder_seconds == 8
    assert ExperimentConfig(source="local", data_path="x").unused_fields().get("data_path") is None
    assert ExperimentConfig(source="hub").unused_fields()["data_path"] == "it is read only with --source local"
