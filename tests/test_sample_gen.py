"""Checks on the committed synthetic sample set (arabicpeft/sample_data/).

These read the shipped files only; espeak-ng is needed just for the one
regeneration test, which is skipped where it is absent (as on CI).
"""

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

import make_sample_set  # tests/make_sample_set.py: the generator of the set
from arabicpeft.config import SAMPLE_ENCODER_SECONDS

DATA = Path(__file__).resolve().parents[1] / "arabicpeft" / "sample_data"
DIALECTS = {"egyptian", "gulf", "iraqi", "levantine", "maghrebi", "msa"}
FIELDS = {"id", "audio", "text", "dialect", "sentence_id", "voice", "synthetic"}


def load(split):
    with open(DATA / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def splits():
    return {"train": load("train"), "test": load("test")}


def normalise(text):
    """Compare sentences, not spelling accidents: drop diacritics/tatweel, unify alef/ya/ta."""
    text = re.sub(r"[\u064B-\u0652\u0640]", "", text)
    text = re.sub("[أإآ]", "ا", text).replace("ى", "ي").replace("ة", "ه")
    return " ".join(text.split())


def test_counts(splits):
    assert len(splits["train"]) >= 300
    assert len(splits["test"]) >= 60


def test_fields_and_ids(splits):
    rows = splits["train"] + splits["test"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate utterance id"
    for r in rows:
        assert set(r) == FIELDS, r["id"]
        assert r["synthetic"] is True
        assert r["audio"] == f"audio/{r['id']}.ogg"
        assert r["id"].startswith(r["sentence_id"] + "-v")
        assert r["sentence_id"].startswith(r["dialect"] + "-")


def test_every_variety_in_both_splits(splits):
    for split, rows in splits.items():
        counts = Counter(r["dialect"] for r in rows)
        assert set(counts) == DIALECTS, split
        # balanced, so per-variety scores are comparable
        assert len(set(counts.values())) == 1, counts


def test_text_is_short_arabic(splits):
    for r in splits["train"] + splits["test"]:
        text = r["text"]
        assert text.strip(), r["id"]
        assert not re.search(r"[A-Za-z0-9\u0660-\u0669]", text), r["id"]
        assert 3 <= len(text.split()) <= 9, r["id"]


def test_no_test_sentence_in_train(splits):
    train_texts = {normalise(r["text"]) for r in splits["train"]}
    leaked = {r["text"] for r in splits["test"] if normalise(r["text"]) in train_texts}
    assert not leaked
    train_sids = {r["sentence_id"] for r in splits["train"]}
    assert not train_sids & {r["sentence_id"] for r in splits["test"]}


def test_test_split_has_unseen_voice(splits):
    train_voices = {r["voice"] for r in splits["train"]}
    test_voices = {r["voice"] for r in splits["test"]}
    assert test_voices - train_voices, "every test voice also appears in train"
    assert test_voices & train_voices, "test should also keep one seen voice"


def test_sentences_tsv_matches_manifests(splits):
    lines = (DATA / "sentences.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["sentence_id", "dialect", "split", "text"]
    table = {sid: (d, s, t) for sid, d, s, t in (line.split("\t") for line in lines[1:])}
    for split, rows in splits.items():
        for r in rows:
            assert table[r["sentence_id"]] == (r["dialect"], split, r["text"])
    assert len(table) == len({r["sentence_id"] for rows in splits.values() for r in rows})


def test_manifests_match_generator(splits):
    """The committed manifests are what tests/make_sample_set.py would write (sentences edited => regenerate)."""
    assert make_sample_set.build_items() == splits


def test_audio_files_decode(splits):
    for r in splits["train"] + splits["test"]:
        path = DATA / r["audio"]
        assert path.is_file(), r["audio"]
        y, sr = sf.read(path, dtype="float32")
        assert sr == 16000 and y.ndim == 1, r["audio"]
        assert 0.5 <= len(y) / sr <= 7.0, (r["audio"], len(y) / sr)
        assert len(y) / sr < SAMPLE_ENCODER_SECONDS  # the automatic encoder cut for this set keeps every clip whole
        assert abs(y).max() > 0.1, f"{r['audio']} is (near) silent"


def test_no_stray_audio(splits):
    listed = {r["audio"] for rows in splits.values() for r in rows}
    on_disk = {f"audio/{p.name}" for p in (DATA / "audio").iterdir()}
    assert on_disk == listed


def test_total_size_under_10mb():
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert size < 10_000_000, f"{size / 1e6:.1f} MB"


def test_readme_says_synthetic():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in readme and "espeak-ng" in readme
    assert "python tests/make_sample_set.py" in readme


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="espeak-ng not installed (only needed to regenerate samples)")
def test_regenerate_two_clips(tmp_path, splits):
    for r in (splits["train"][1], splits["test"][-1]):
        path = tmp_path / f"{r['id']}.ogg"
        make_sample_set.write_clip(path, make_sample_set.synthesize(r["text"], r["voice"]))
        seconds = make_sample_set.check_clip(path)
        committed = sf.info(DATA / r["audio"]).duration
        # deterministic synthesis: same length as the committed clip
        assert seconds == pytest.approx(committed, abs=0.01)
