"""The data path: the otozz feature format and audio manifests through every source, filtering (counted, never
silent), splits, streaming, the collator, balanced mixtures.

Below them, the bad-input catalogue (one entry per kind; each module's test file holds the errors that
module raises, this one the data's): ERRORS and SKIPS, then the tests that hold the right values of the faults fixed
(non-finite features, the label limit, manifests, stream counts, record keys).
"""

import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import EOT, PREFIX, SOT, SR, _local, dataclasses_replace, otozz_labels, tone, write_audio_manifest
from torch.utils.data import DataLoader
from transformers.models.whisper.modeling_whisper import shift_tokens_right

from arabicpeft import audio
from arabicpeft.backbones import WhisperCollator
from arabicpeft.whisper import _feature_device
from arabicpeft.config import ExperimentConfig
from arabicpeft.data import DataUnavailableError, _feature_path, load_splits, load_test_sets, settle_counts
from arabicpeft.records import (_InvalidRecord, _check_feature_record, _check_labels, check_audio_record,
                                filter_records, record_format, record_key)
from arabicpeft.sources import ManifestError, read_manifest

# the parts of the bad-input catalogue that other modules raise (it is counted below)
import test_audio
import test_config
import test_profiles
import test_run_dir
import test_text
import test_train


def otozz_dir(tmp_path, tokenizer, n_train=20, n_test=6):
    """A local copy in the otozz hub format: save_to_disk directories named after the hub repos."""
    def records(n, start):
        labels = [otozz_labels(tokenizer, f"جملة رقم {start + i}") for i in range(n)]
        return {"input_features": [np.full((80, 3000), -0.5 + 0.01 * i, dtype=np.float32) for i in range(n)],
                "labels": labels}

    train = records(n_train, 0)
    train["labels"][3] = PREFIX + [EOT]  # an empty transcript
    train["labels"][5] = PREFIX + [400] * 445 + [EOT]  # 450 tokens > 448
    datasets.Dataset.from_dict(train).save_to_disk(tmp_path / "egyptian_train_set")
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(records(n_test, 100))}).save_to_disk(
        tmp_path / "egyptian_test_set")
    return tmp_path


# --- otozz feature format through the local source ---------------------------------------------------


def test_local_otozz_format_filters_and_splits(tmp_path, processor30):
    root = otozz_dir(tmp_path, processor30.tokenizer)
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), seed=42)
    splits = load_splits(cfg, processor30.tokenizer)
    pool = splits.report["train_pool"]
    assert splits.format == "features" and not splits.synthetic
    assert pool["rows_in"] == 20 and pool["rows_used"] == 18
    assert pool["filtered"]["empty_transcript"] == 1 and pool["filtered"]["labels_too_long"] == 1
    assert len(splits.train) + len(splits.validation) == 18 and len(splits.validation) == 4  # 20 % of 18, rounded up
    assert splits.report["test"]["egyptian"]["rows_used"] == 6 and len(splits.test["egyptian"]) == 6

    def val_labels(seed):
        s = load_splits(ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), seed=seed),
                        processor30.tokenizer)
        return {tuple(x) for x in s.validation["labels"]}, {tuple(x) for x in s.train["labels"]}

    val42, train42 = val_labels(42)
    assert not val42 & train42  # disjoint
    assert val_labels(42)[0] == val42  # same seed, same split
    # the seed picks the split: two other seeds drawing both the same 4 of 18 would happen once in 3060**2
    assert val_labels(84)[0] != val42 or val_labels(168)[0] != val42


def test_streaming_counts_filtered_records_as_they_pass(tmp_path, processor30):
    # 22 usable records, each hashed to one side with probability 1/2: a side is empty once in 2**21
    root = otozz_dir(tmp_path, processor30.tokenizer, n_train=24)
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True,
                           max_eval_samples=100, val_fraction=0.5)
    splits = load_splits(cfg, processor30.tokenizer)
    first = [tuple(r["labels"]) for r in splits.train]
    second = [tuple(r["labels"]) for r in splits.train]  # a second pass (epoch) over the stream
    assert len(first) + len(splits.validation) == 22
    assert sorted(first) == sorted(second)
    assert not set(first) & {tuple(r["labels"]) for r in splits.validation}  # same side in every pass
    # The stream's records reach the collator as lists, not through datasets' numpy formatter, which converts a
    # filtered/shuffled stream value by value (~65x slower per otozz record than the collator's np.asarray).
    record = next(iter(splits.train))
    assert isinstance(record["input_features"], list) and len(record["input_features"]) == 80
    assert np.asarray(record["input_features"], dtype=np.float32).shape == (80, 3000)
    pool = settle_counts(splits.report)["train_pool"]
    assert pool["rows_in"] == 24 and pool["rows_used"] == 22  # every record counted once, whatever the passes
    assert pool["filtered"]["labels_too_long"] == 1 and pool["filtered"]["empty_transcript"] == 1
    assert pool["counted"].startswith("while streaming")
    with pytest.raises(ValueError, match="streaming=True needs max_eval_samples"):
        load_splits(ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True),
                    processor30.tokenizer)


def test_hub_unreachable_stops_with_a_clear_message(monkeypatch, processor30):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("arabicpeft.sources.hub_reachable", lambda *a, **k: False)
    started = time.monotonic()
    with pytest.raises(DataUnavailableError, match=r"Cannot reach huggingface.co to load otozz/gulf_train_set.*"
                                                   r"source='local'.*Nothing else will be trained on"):
        load_splits(ExperimentConfig(dialect="gulf", source="hub"), processor30.tokenizer)
    assert time.monotonic() - started < 5


# --- audio format through a manifest -----------------------------------------------------------------


def test_audio_manifest_filters_every_reason(tmp_path, tiny_processor):
    rows = [{"seconds": 1.0 + 0.1 * i, "text": f"مرحبا {i}", "dialect": "gulf"} for i in range(10)]
    rows += [
        {"seconds": 1.0, "text": "   ", "dialect": "gulf"},  # empty transcript
        {"seconds": 0.05, "text": "قصير", "dialect": "gulf"},  # too short
        {"seconds": 9.0, "text": "طويل", "dialect": "gulf"},  # longer than the tiny model's 8 s window
        {"file_bytes": b"RIFF not really a wav", "text": "تالف", "dialect": "gulf"},  # undecodable
        {"seconds": 1.0, "text": "كلمة " * 300, "dialect": "gulf"},  # > 448 tokens
        {"seconds": 1.0, "text": "مصري", "dialect": "egyptian"},  # another dialect: not loaded at all
    ]
    write_audio_manifest(tmp_path, rows, "train")
    write_audio_manifest(tmp_path, rows[:4], "test")
    cfg = ExperimentConfig(dialect="gulf", source="local", data_path=str(tmp_path), seed=1)
    splits = load_splits(cfg, tiny_processor.tokenizer, max_seconds=8)
    pool = splits.report["train_pool"]
    assert splits.format == "audio"
    assert pool["rows_in"] == 15 and pool["rows_used"] == 10
    assert pool["filtered"] == {"empty_transcript": 1, "too_short": 1, "too_long": 1, "labels_too_long": 1,
                                "undecodable": 1, "non_finite": 0}
    assert len(splits.test["gulf"]) == 4


def test_missing_audio_files_and_directories_are_errors(tmp_path, tiny_processor):
    path = write_audio_manifest(tmp_path, [{"seconds": 1.0, "text": "نص"}], "train")
    (tmp_path / "train-0.wav").unlink()
    cfg = ExperimentConfig(dialect="iraqi", source="local", data_path=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"1 audio file\(s\) listed in .*train.jsonl do not exist"):
        load_splits(cfg, tiny_processor.tokenizer)
    cfg = ExperimentConfig(dialect="iraqi", source="local", data_path=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="Local data directory not found"):
        load_splits(cfg, tiny_processor.tokenizer)
    path.unlink()
    cfg = ExperimentConfig(dialect="iraqi", source="local", data_path=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No train data for iraqi.*iraqi_train_set/.*train.jsonl"):
        load_splits(cfg, tiny_processor.tokenizer)


# --- single-record errors (the messages a user sees) ----------------------------------------------------


def test_record_errors_say_what_is_wrong(tmp_path, tiny_processor):
    tok = tiny_processor.tokenizer
    sf_path = tmp_path / "long.wav"
    import soundfile as sf

    sf.write(sf_path, tone(31.0), 16_000)
    with pytest.raises(_InvalidRecord, match="31.0 s long, longer than the 30 s") as err:
        check_audio_record({"audio": str(sf_path), "text": "نص"}, tok)
    assert err.value.reason == "too_long"
    with pytest.raises(_InvalidRecord, match="transcript is empty") as err:
        check_audio_record({"audio": str(sf_path), "text": ""}, tok)
    assert err.value.reason == "empty_transcript"
    with pytest.raises(_InvalidRecord, match="450 tokens long.*at most 448") as err:
        _check_labels(PREFIX + [400] * 445 + [EOT], tok)
    assert err.value.reason == "labels_too_long"
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"\x00\x01garbage")
    with pytest.raises(audio.AudioError, match="Could not decode audio file .*corrupt.wav"):
        audio.load_audio(str(corrupt))
    with pytest.raises(FileNotFoundError, match="Audio file not found"):
        audio.load_audio(str(tmp_path / "absent.wav"))
    with pytest.raises(audio.AudioError, match="needs its sampling_rate"):
        audio.load_audio(tone(1.0))
    with pytest.raises(audio.AudioError, match="need 16000 Hz audio, got 8000 Hz"):
        audio.log_mel(tone(1.0), tiny_processor.feature_extractor, sampling_rate=8000)


# --- collator ----------------------------------------------------------------------------------------


def test_collator_strips_start_token_once_and_pads(processor30):
    tok = processor30.tokenizer
    collate = WhisperCollator(processor30, decoder_start_token_id=SOT)
    short, longer = otozz_labels(tok, "نعم"), otozz_labels(tok, "ذهب الولد الى المدرسة")
    feats = np.zeros((80, 3000), dtype=np.float32)
    batch = collate([{"input_features": feats, "labels": short}, {"input_features": feats, "labels": longer}])
    labels = batch["labels"]
    assert batch["input_features"].shape == (2, 80, 3000)
    assert labels.shape == (2, len(longer) - 1)
    assert labels[1].tolist() == longer[1:]  # <|startoftranscript|> removed, <|ar|> first
    assert labels[0, : len(short) - 1].tolist() == short[1:]
    assert (labels[0, len(short) - 1:] == -100).all()
    # The model shifts labels right and prepends decoder_start: the prefix appears exactly once.
    decoder_input = shift_tokens_right(labels, tok.pad_token_id, SOT)
    assert decoder_input[1, :4].tolist() == PREFIX
    assert (decoder_input == SOT).sum(dim=1).tolist() == [1, 1]


def test_audio_and_feature_records_give_the_same_labels(tiny_processor):
    text = "شلونك اليوم"
    collate = WhisperCollator(tiny_processor, decoder_start_token_id=SOT)
    from_audio = collate([{"audio": {"array": tone(1.0), "sampling_rate": 16_000}, "text": text}])
    assert from_audio["input_features"].shape == (1, 80, 800)  # the tiny model's 8 s window
    assert from_audio["labels"][0].tolist() == otozz_labels(tiny_processor.tokenizer, text)[1:]
    assert tiny_processor.tokenizer.decode(from_audio["labels"][0], skip_special_tokens=True) == text


def test_collator_rejects_features_of_the_wrong_shape(tiny_processor):
    collate = WhisperCollator(tiny_processor, decoder_start_token_id=SOT)
    with pytest.raises(ValueError, match=r"input_features of shape \(128, 3000\).*80-mel Whisper"):
        collate([{"input_features": np.zeros((128, 3000), np.float32), "labels": PREFIX + [EOT]}])
    assert torch.is_tensor(collate([{"input_features": np.zeros((80, 800), np.float32),
                                     "labels": PREFIX + [EOT]}])["labels"])


def test_hub_source_runs_the_same_path_as_a_local_copy(tmp_path, monkeypatch, processor30):
    """The network is the only thing replaced: load_dataset serves the saved copy of the hub repo it is asked for."""
    root = otozz_dir(tmp_path, processor30.tokenizer, n_train=24)  # 22 usable: see the streamed split below
    calls = []

    def fake_load_dataset(repo_id, split, streaming, revision):
        assert revision == "0123abc"  # the data are read at the commit recorded
        calls.append((repo_id, split, streaming))
        ds = datasets.load_from_disk(str(root / repo_id.split("/")[1]))
        ds = ds["train"] if isinstance(ds, datasets.DatasetDict) else ds
        return ds.to_iterable_dataset() if streaming else ds

    monkeypatch.setattr("arabicpeft.sources.hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr("arabicpeft.sources.dataset_revision", lambda repo_id: "0123abc")
    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = load_splits(ExperimentConfig(dialect="egyptian", source="hub"), processor30.tokenizer)
    local = load_splits(ExperimentConfig(dialect="egyptian", source="local", data_path=str(root)),
                        processor30.tokenizer)
    assert calls == [("otozz/egyptian_train_set", "train", False), ("otozz/egyptian_test_set", "train", False)]
    assert hub.report["train_pool"]["filtered"] == local.report["train_pool"]["filtered"]
    assert hub.report["train_pool"]["hub_ids"] == ["otozz/egyptian_train_set"]
    assert hub.report["train_pool"]["hub_revisions"] == ["0123abc"] == [hub.report["test"]["egyptian"]["hub_revision"]]
    assert [list(x) for x in hub.validation["labels"]] == [list(x) for x in local.validation["labels"]]
    streamed = load_splits(ExperimentConfig(dialect="egyptian", source="hub", streaming=True, max_eval_samples=4,
                                            val_fraction=0.5), processor30.tokenizer)  # a side empty: 2**-21
    assert calls[-1] == ("otozz/egyptian_test_set", "train", True)
    batch = WhisperCollator(processor30, SOT)(list(streamed.test["egyptian"].take(2)))
    assert batch["input_features"].shape == (2, 80, 3000)


def test_streamed_validation_is_read_once_into_a_fixed_set(tmp_path, processor30):
    # 34 usable records hashed to validation with probability 1/2: fewer than 3 there (or none in training)
    # happens with probability 3.5e-8 (it was 27% with 18 records at 0.2)
    root = otozz_dir(tmp_path, processor30.tokenizer, n_train=36)
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True, max_eval_samples=3,
                           val_fraction=0.5)
    splits = load_splits(cfg, processor30.tokenizer)
    assert isinstance(splits.validation, datasets.Dataset) and len(splits.validation) == 3
    assert splits.validation[0]["input_features"].shape == (80, 3000)
    assert isinstance(splits.train, datasets.IterableDataset)


def test_pooled_manifest_needs_a_dialect_column(tmp_path, tiny_processor):
    write_audio_manifest(tmp_path, [{"seconds": 1.0 + 0.1 * i, "text": "نص"} for i in range(5)], "train")
    cfg = ExperimentConfig(dialect="all", source="local", data_path=str(tmp_path))
    with pytest.raises(ValueError, match="no 'dialect' column.*pooled set"):
        load_splits(cfg, tiny_processor.tokenizer)
    (tmp_path / "test.jsonl").write_text('{"audio": "train-0.wav", "text": \n', encoding="utf-8")
    cfg = ExperimentConfig(dialect="gulf", source="local", data_path=str(tmp_path))
    with pytest.raises(ValueError, match="Could not read the manifest .*test.jsonl"):
        load_splits(cfg, tiny_processor.tokenizer)


def test_audio_features_are_computed_where_the_machine_says():
    assert _feature_device("auto") == ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    assert _feature_device("cpu") == "cpu"
    assert _feature_path("features") == "precomputed (the records' input_features)"
    assert _feature_path("audio", 0, "/c").startswith("read from the feature cache /c")
    if not __import__("torch").cuda.is_available():
        assert _feature_path("audio", 2) == "computed per clip on the CPU in 2 DataLoader worker processes"


def test_balanced_mixture_takes_as_many_records_of_each_dialect():
    from arabicpeft.data import load_splits
    from arabicpeft.model import _load_base

    cfg = ExperimentConfig(model="tiny-random", source="sample", dialect="all", mixture="balanced",
                           max_train_per_dialect=5, test_sets=["egyptian"], max_test_samples=1)
    _, processor = _load_base(cfg)
    splits = load_splits(cfg, processor.tokenizer)
    assert splits.report["mixture"]["records_per_dialect"] == {d: 5 for d in ("egyptian", "gulf", "iraqi",
                                                                               "levantine", "maghrebi")}
    assert splits.report["n_train"] + splits.report["n_validation"] == 25
    half = load_splits(dataclasses_replace(cfg, train_fraction=0.5), processor.tokenizer)
    assert half.report["n_train"] == round(0.5 * splits.report["n_train"])



def test_a_balanced_or_capped_pool_draws_its_records_at_random_seeded():
    import datasets

    from arabicpeft.data import _mix

    sizes = {"egyptian": 30, "gulf": 50, "iraqi": 20}
    parts = [datasets.Dataset.from_dict({"i": list(range(n))}) for n in sizes.values()]
    cfg = ExperimentConfig(dialect="all", mixture="balanced", seed=42)
    drawn, counts = _mix(parts, list(sizes), cfg)
    assert counts == {"egyptian": 20, "gulf": 20, "iraqi": 20}  # the smallest dialect's size
    picked = [p["i"] for p in drawn]
    assert picked[2] == list(range(20))  # the smallest dialect: all of it
    assert picked[0] != list(range(20)) and picked[1] != list(range(20))  # not the first 20
    assert all(len(set(p)) == 20 and p == sorted(p) for p in picked)  # without replacement, in their order
    assert [p["i"] for p in _mix(parts, list(sizes), cfg)[0]] == picked  # seeded
    other = [p["i"] for p in _mix(parts, list(sizes), dataclasses_replace(cfg, seed=84))[0]]
    assert other[0] != picked[0]
    natural, counts = _mix(parts, list(sizes), dataclasses_replace(cfg, mixture="natural", max_train_per_dialect=25))
    assert counts == {"egyptian": 25, "gulf": 25, "iraqi": 20} and natural[1]["i"] != list(range(25))

# --- bad input: clear errors, counted skips, conversions with the right value ---------------------------


def _manifest(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _empty_split(tmp_path, tok, val_fraction, streaming=True, rows=None):
    write_audio_manifest(tmp_path, rows or [{"seconds": 1.0, "text": f"نص {i}"} for i in range(4)], "train")
    write_audio_manifest(tmp_path, [{"seconds": 1.0, "text": "نص"}], "test")
    # streamed: a val_fraction of ~0 (~1) sends every record to train (validation); a hash lands in validation
    # with probability val_fraction, so each case fails with probability 4e-9
    load_splits(_local(tmp_path, streaming=streaming, max_eval_samples=4, val_fraction=val_fraction), tok)


# (kind, call(tmp_path, tokenizer), exception, message: what was wrong ... what to do)
ERRORS = [
    ("missing data directory", lambda t, k: load_splits(_local(t / "nowhere"), k), FileNotFoundError,
     r"Local data directory not found: .*Check data_path"),
    ("no manifest in the data directory", lambda t, k: load_splits(_local(t), k), FileNotFoundError,
     r"No train data for gulf .*expected a save_to_disk directory gulf_train_set/ or a manifest"),
    ("missing audio file", lambda t, k: (write_audio_manifest(t, [{"seconds": 1.0, "text": "نص"}]),
                                         (t / "train-0.wav").unlink(), load_splits(_local(t), k)),
     FileNotFoundError, r"1 audio file\(s\) listed in .*train.jsonl do not exist"),
    ("unreadable JSONL manifest", lambda t, k: read_manifest(_manifest(
        t, "train.jsonl", '{"audio": "a.wav", "text": "نص"}\n{"audio": "b.wav", "text": \n')), ManifestError,
     r"train.jsonl, line 2: not valid JSON .*Each line must be one complete JSON object"),
    ("unreadable CSV manifest", lambda t, k: read_manifest(_manifest(t, "train.csv", "audio,text\na.wav,نص\nb.wav,نص,زائد\n")),
     ManifestError, r"train.csv: .*line 3.*Likely cause: a field holding a comma.*double quotes"),
    ("manifest not in UTF-8", lambda t, k: read_manifest(_manifest(t, "train.csv", "audio,text\na.wav,caf\xe9\n".encode("latin-1"))),
     ManifestError, r"train.csv, line 2: it is not UTF-8 text .*Save it as UTF-8"),
    ("manifest in UTF-16 without a byte-order mark", lambda t, k: read_manifest(_manifest(
        t, "train.jsonl", '{"audio": "a.wav", "text": "نص"}\n'.encode("utf-16-le"))), ManifestError,
     r"train.jsonl: it is UTF-16 \(little-endian\) text, not UTF-8. Save it as UTF-8"),
    ("JSON manifest that is not a list", lambda t, k: read_manifest(_manifest(t, "train.json", '{"audio": "a.wav"}')),
     ManifestError, r"must be a JSON list of objects"),
    ("manifest without a text column", lambda t, k: (_manifest(t, "train.csv", "audio,transcript\na.wav,نص\n"),
                                                     load_splits(_local(t), k)),
     ValueError, r"lacks the column\(s\) \['text'\]: it needs 'audio' and 'text'"),
    ("pooled manifest without a dialect column", lambda t, k: (write_audio_manifest(t, [{"seconds": 1.0, "text": "نص"}]),
                                                               load_splits(ExperimentConfig(dialect="all", source="local", data_path=str(t)), k)),
     ValueError, r"no 'dialect' column.*Add the column, or train one dialect"),
    ("manifest without rows of the dialect", lambda t, k: (write_audio_manifest(t, [{"seconds": 1.0, "text": "نص", "dialect": "iraqi"}]),
                                                           load_splits(_local(t), k)),
     DataUnavailableError, r"no rows with dialect == 'gulf' \(it has \['iraqi'\]\). Add them, or pick"),
    ("records of an unknown format", lambda t, k: record_format(["path", "sentence"]), ValueError,
     r"Unrecognised record format .*expected 'input_features' \+ 'labels'.*or 'audio' \+ 'text'"),
    ("every record filtered out", lambda t, k: (write_audio_manifest(t, [{"seconds": 0.01, "text": "نص"}] * 3),
                                                load_splits(_local(t), k)),
     DataUnavailableError, r"Every one of the 3 records was filtered out: .*'too_short': 3.*Check the data"),
    ("streaming without a validation size", lambda t, k: load_splits(_local(t, streaming=True), k), ValueError,
     r"streaming=True needs max_eval_samples.*e.g. 500"),
    ("empty validation split, streamed", lambda t, k: _empty_split(t, k, 1e-9), DataUnavailableError,
     r"The validation split is empty .*val_fraction=1e-09.*Use more training data, a larger val_fraction"),
    ("empty training split, streamed", lambda t, k: _empty_split(t, k, 1 - 1e-9), DataUnavailableError,
     r"The training split is empty \(4 usable training records read, val_fraction=0.999999999.*first step. Use "
     r"more training data, a smaller val_fraction, or another seed"),
    # one clip listed 5 times is one record: it cannot be on both sides, so one side is empty (which one: the seed's)
    ("one clip listed 5 times, not streamed", lambda t, k: _empty_split(t, k, 0.2, False, [{"seconds": 1.0,
                                                                                             "text": "نص"}] * 5),
     DataUnavailableError, r"The (validation|training) split is empty \(5 usable training records read"),
    ("features of the wrong shape (128 mels)", lambda t, k: WhisperCollator(_Proc30(k), SOT)(
        [{"input_features": np.zeros((128, 3000), np.float32), "labels": PREFIX + [EOT]}]), ValueError,
     r"input_features of shape \(128, 3000\).*use an 80-mel Whisper"),
]


class _Proc30:
    """The tiny tokenizer with the standard 30 s extractor (the otozz feature shape)."""

    def __init__(self, tokenizer):
        from transformers import WhisperFeatureExtractor

        self.feature_extractor, self.tokenizer = WhisperFeatureExtractor(), tokenizer


@pytest.mark.parametrize("kind, call, error, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_a_clear_error(kind, call, error, message, tmp_path, tiny_processor):
    with pytest.raises(error, match=message):
        call(tmp_path, tiny_processor.tokenizer)


def _nan_tone():
    y = tone(1.0)
    y[100] = np.nan
    return y


# (kind, training-manifest row, filter reason); each row is one bad clip among good ones
SKIPS = [
    ("empty transcript (training)", {"seconds": 1.0, "text": "  "}, "empty_transcript"),
    ("audio too short", {"seconds": 0.05, "text": "قصير"}, "too_short"),
    ("audio longer than the encoder window", {"seconds": 9.0, "text": "طويل"}, "too_long"),
    ("corrupt audio file", {"file_bytes": b"RIFF not really a wav", "text": "تالف"}, "undecodable"),
    ("transcript longer than the decoder", {"seconds": 1.0, "text": "كلمة " * 500}, "labels_too_long"),
    ("NaN in the audio", {"array": _nan_tone(), "text": "نص"}, "non_finite"),
]


@pytest.mark.parametrize("kind, row, reason", SKIPS, ids=[s[0] for s in SKIPS])
@pytest.mark.parametrize("streaming", [False, True])
def test_bad_record_is_a_counted_skip(kind, row, reason, streaming, tmp_path, tiny_processor):
    # 24 good clips hashed to each side with probability 1/2 when streamed: a side is empty once in 2**23
    good = [{"seconds": 1.0 + 0.05 * i, "text": f"مرحبا {i}"} for i in range(24)]
    if "array" in row:  # an in-memory record: written as a float WAV keeps the NaN
        sf.write(tmp_path / "bad.wav", row["array"], SR, subtype="FLOAT")
        row = {"file_bytes": (tmp_path / "bad.wav").read_bytes(), "text": row["text"]}
    write_audio_manifest(tmp_path, good + [row], "train")
    write_audio_manifest(tmp_path, good[:1], "test")
    cfg = _local(tmp_path, streaming=streaming, max_eval_samples=24 if streaming else None, val_fraction=0.5)
    splits = load_splits(cfg, tiny_processor.tokenizer, max_seconds=8)
    if streaming:
        list(splits.train)  # a stream is counted as it is read
    pool = settle_counts(splits.report)["train_pool"]
    assert (pool["rows_in"], pool["rows_used"]) == (25, 24)
    assert pool["filtered"][reason] == 1 and sum(pool["filtered"].values()) == 1


# The catalogue's errors live with the module that raises them: this file holds the data's.
CATALOGUE_ERRORS = [*ERRORS, *test_audio.ERRORS, *test_config.ERRORS, *test_profiles.ERRORS,
                    *test_run_dir.ERRORS, *test_text.ERRORS, *test_train.ERRORS]


def test_the_catalogue_lists_at_least_25_kinds():
    kinds = [e[0] for e in CATALOGUE_ERRORS] + [s[0] for s in SKIPS] + CONVERSIONS
    assert len(kinds) >= 25 and len(set(kinds)) == len(kinds)


CONVERSIONS = ["integer PCM array", "multi-channel array", "wrong sample rate (resampled)", "manifest with a BOM",
               "manifest with Windows line endings", "NaN in precomputed features", "labels of 449/450 ids",
               "empty transcript in a test set (scored)", "reference longer than the generation budget",
               "records sharing a transcript", "stream read by DataLoader workers"]


def test_non_finite_features_are_filtered_and_counted(tiny_processor):
    """A feature record with one NaN (or Inf) is filtered as non_finite, streamed or not (before: it
    was transcribed as "!!!!!!!!!!!!" and scored)."""
    tok = tiny_processor.tokenizer
    feats = [np.zeros((80, 10), np.float32) + i for i in range(4)]
    feats[1][3, 4], feats[2][0, 0] = np.nan, np.inf
    ds = datasets.Dataset.from_dict({"input_features": feats, "labels": [otozz_labels(tok, f"نص {i}") for i in range(4)]})
    with pytest.raises(_InvalidRecord, match="NaN or infinite values.*Recompute the features") as err:
        _check_feature_record({"input_features": feats[1], "labels": otozz_labels(tok, "نص")}, tok)
    assert err.value.reason == "non_finite"
    for stream in (False, True):
        report = {}
        kept = filter_records(ds.to_iterable_dataset() if stream else ds, "features", tok, 30, report)
        assert len(list(kept)) == 2
        report = settle_counts(report)
        assert report["rows_in"] == 4 and report["filtered"]["non_finite"] == 2


def test_the_label_limit_is_the_models_decoder_positions(tiny_processor):
    """449 ids starting with <|startoftranscript|> fit (the collator strips it: 448 decoder positions);
    450 are filtered; the limit is the model's max_target_positions, not a constant."""
    tok = tiny_processor.tokenizer
    fits = PREFIX + [400] * 444 + [EOT]
    assert len(fits) == 449
    _check_labels(fits, tok, max_positions=448)
    assert WhisperCollator(tiny_processor, SOT)([{"input_features": np.zeros((80, 800), np.float32),
                                                  "labels": fits}])["labels"].shape == (1, 448)
    with pytest.raises(_InvalidRecord, match="450 tokens long and needs 449 decoder positions.*at most 448") as err:
        _check_labels(PREFIX + [400] * 445 + [EOT], tok, max_positions=448)
    assert err.value.reason == "labels_too_long"
    _check_labels(fits[1:], tok, max_positions=448)  # no <|startoftranscript|>: every id takes a position
    with pytest.raises(_InvalidRecord):
        _check_labels(fits[1:] + [400], tok, max_positions=448)
    with pytest.raises(_InvalidRecord, match="at most 100"):  # a smaller decoder: its own limit
        _check_labels(PREFIX + [400] * 100 + [EOT], tok, max_positions=100)


@pytest.mark.parametrize("suffix, content", [
    (".csv", "\ufeffaudio,text,dialect\r\na.wav,مرحبا,gulf\r\nb.wav,\"نعم، لا\",gulf\r\n"),
    (".jsonl", '\ufeff{"audio": "a.wav", "text": "مرحبا", "dialect": "gulf"}\r\n'
               '{"audio": "b.wav", "text": "نعم، لا", "dialect": "gulf"}\r\n'),
    (".json", '\ufeff[{"audio": "a.wav", "text": "مرحبا", "dialect": "gulf"},\r\n'
              ' {"audio": "b.wav", "text": "نعم، لا", "dialect": "gulf"}]\r\n'),
])
def test_manifests_with_a_bom_and_windows_line_endings_are_read(suffix, content, tmp_path, tiny_processor):
    """UTF-8 with a byte-order mark and CRLF line endings, in CSV, JSONL and JSON."""
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, tone(1.0), SR)
    (tmp_path / f"train{suffix}").write_bytes(content.encode("utf-8"))
    frame = read_manifest(tmp_path / f"train{suffix}")
    assert list(frame.columns) == ["audio", "text", "dialect"]
    assert list(frame["text"]) == ["مرحبا", "نعم، لا"]
    (tmp_path / f"test{suffix}").write_bytes(content.encode("utf-8"))
    tests, report, _ = load_test_sets(_local(tmp_path), tiny_processor.tokenizer, max_seconds=8)
    assert report["gulf"]["rows_used"] == 2 and list(tests["gulf"]["text"]) == ["مرحبا", "نعم، لا"]


def _feature_dir(root: Path, tok, n: int, features=None, texts=None, bad=()):
    """A local otozz-format copy with small (80 x 10) features; rows in ``bad`` get an empty transcript."""
    texts = texts or [f"جملة {i}" for i in range(n)]
    labels = [PREFIX + [EOT] if i in bad else otozz_labels(tok, texts[i]) for i in range(n)]
    features = features or [np.full((80, 10), 0.01 * i, np.float32) for i in range(n)]
    datasets.Dataset.from_dict({"input_features": features, "labels": labels}).save_to_disk(root / "egyptian_train_set")
    datasets.Dataset.from_dict({"input_features": features[:2], "labels": labels[:2]}).save_to_disk(
        root / "egyptian_test_set")
    return root


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_stream_counts_are_exact_whatever_the_dataloader_workers(workers, tmp_path, tiny_processor):
    """70 rows (3 filtered) read through a DataLoader with 0, 1 or 2 workers are counted 70 / 67
    (before: 6 of 16 with 1 worker through the API, 3 through the CLI). 67 records: the hashed validation split is
    empty with probability 0.8**67 = 3e-7."""
    tok = tiny_processor.tokenizer
    root = _feature_dir(tmp_path, tok, 70, bad=(2, 7, 11))
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True,
                           max_eval_samples=1, seed=3)
    splits = load_splits(cfg, tok)
    for _ in range(2):  # two epochs: each record still counted once
        seen = sum(len(b) for b in DataLoader(splits.train, batch_size=2, num_workers=workers, collate_fn=list))
    pool = settle_counts(splits.report)["train_pool"]
    assert pool["rows_in"] == 70 and pool["rows_used"] == 67 and pool["filtered"]["empty_transcript"] == 3
    assert seen + len(splits.validation) <= 67


def test_records_sharing_a_transcript_are_distinct_and_never_leak(tmp_path, tiny_processor):
    """4 different recordings of "نعم" count as 4 (before: 1), and each lands on one side of the
    streamed train/validation split in every pass (40 records at 0.4: a side is empty with probability 1e-9)."""
    tok = tiny_processor.tokenizer
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(80, 10)).astype(np.float32) for _ in range(40)]
    texts = ["نعم"] * 4 + [f"جملة {i}" for i in range(36)]
    root = _feature_dir(tmp_path, tok, 40, features=features, texts=texts)
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True,
                           max_eval_samples=40, val_fraction=0.4, seed=1)
    splits = load_splits(cfg, tok)
    key = lambda r: np.asarray(r["input_features"], dtype=np.float32).tobytes()  # noqa: E731
    passes = [{key(r) for r in splits.train} for _ in range(2)]
    validation = {key(r) for r in splits.validation}
    assert passes[0] == passes[1] and not passes[0] & validation
    assert len(passes[0]) + len(validation) == 40
    yes = {f.tobytes() for f in features[:4]}
    assert len(yes & (passes[0] | validation)) == 4
    assert settle_counts(splits.report)["train_pool"]["rows_in"] == 40
    # audio records: the same text, different arrays
    audio_rows = [{"audio": {"array": tone(1.0, 200 + 50 * i), "sampling_rate": SR}, "text": "نعم"} for i in range(4)]
    assert len({record_key(r) for r in audio_rows}) == 4
    assert record_key(audio_rows[0]) == record_key({"audio": {"array": tone(1.0, 200), "sampling_rate": SR},
                                                    "text": "نعم"})


def test_a_clip_listed_twice_never_lands_on_both_sides(tmp_path, tiny_processor):
    """(datasets#4261) a manifest listing each of 20 clips twice put 8 clips in both train and validation
    on the non-streamed path. Both paths split by record content; the duplicates are counted; without
    duplicates the split is exactly the paper's (datasets' train_test_split by seed)."""
    tok = tiny_processor.tokenizer
    write_audio_manifest(tmp_path / "once", [{"seconds": 1.0 + 0.05 * i, "text": f"جملة {i}"} for i in range(20)])
    write_audio_manifest(tmp_path / "once", [{"seconds": 1.0, "text": "نص"}], "test")
    once = load_splits(_local(tmp_path / "once", seed=42), tok, max_seconds=8)
    paper = datasets.Dataset.from_json(str(tmp_path / "once" / "train.jsonl")).train_test_split(test_size=0.2, seed=42)
    assert list(once.validation["text"]) == list(paper["test"]["text"])
    assert list(once.train["text"]) == list(paper["train"]["text"])
    assert (once.report["train_pool"]["duplicates"], once.report["train_pool"]["moved"]) == (0, 0)

    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("train.jsonl", "test.jsonl"):
        lines = (tmp_path / "once" / name).read_text(encoding="utf-8")
        copies = 2 if name == "train.jsonl" else 1  # every training clip listed twice, the same file
        (twice / name).write_text(lines.replace('"audio": "', '"audio": "../once/') * copies, encoding="utf-8")
    for streaming in (False, True):
        cfg = _local(twice, seed=42, streaming=streaming, val_fraction=0.5 if streaming else 0.2,
                     max_eval_samples=40 if streaming else None)  # streamed: 20 contents at 1/2, a side empty: 2e-6
        splits = load_splits(cfg, tok, max_seconds=8)
        train = [r["text"] for r in splits.train]
        validation = list(splits.validation["text"])
        assert not set(train) & set(validation), streaming
        assert sorted(set(train) | set(validation)) == sorted(f"جملة {i}" for i in range(20))
        if not streaming:
            pool = splits.report["train_pool"]
            assert pool["rows_used"] == 40 and pool["duplicates"] == 20 and len(train) + len(validation) == 40
            assert all(train.count(t) == 2 for t in train) and all(validation.count(t) == 2 for t in validation)
            assert "20 duplicate(s)" in splits.report["split_method"]
            assert splits.report["split_method"].startswith("datasets.train_test_split(test_size=val_fraction, seed")
        else:
            assert splits.report["split_method"].startswith("streaming: seeded hash of each record's content")
