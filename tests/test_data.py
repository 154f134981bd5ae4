import time

import datasets
import numpy as np
import pytest
import torch
from conftest import EOT, PREFIX, otozz_labels, tone, write_audio_manifest
from transformers import WhisperFeatureExtractor, WhisperProcessor
from transformers.models.whisper.modeling_whisper import shift_tokens_right

from arabicpeft import audio, dialects
from arabicpeft.config import ExperimentConfig
from arabicpeft.data import (DataUnavailableError, InvalidRecord, SpeechCollator, _check_audio_record, _check_labels,
                             load_splits, settle_counts)

SOT = PREFIX[0]


@pytest.fixture(scope="module")
def processor30(tiny_processor):
    """The real tokenizer with the standard 30 s extractor: the shape the otozz features have."""
    return WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tiny_processor.tokenizer)


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


# --- registry --------------------------------------------------------------------------------------
def test_registry():
    assert dialects.get("all").parts == ("egyptian", "gulf", "iraqi", "levantine", "maghrebi")
    assert "msa" not in dialects.get("all").parts
    assert dialects.get("MSA").hub_train == ("otozz/MSA_train_set",)
    assert dialects.get("egyptian").hub_test == ("otozz/egyptian_test_set",)
    assert dialects.get("gulf").test_rows == 5408
    with pytest.raises(ValueError, match="Unknown dialect 'sudanese'. Valid names: egyptian, gulf, iraqi, "
                                         "levantine, maghrebi, msa, all"):
        dialects.get("sudanese")
    with pytest.raises(ValueError, match="Unknown dialect"):
        ExperimentConfig(dialect="klingon")


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
    assert val_labels(84)[0] != val42  # the seed picks the split


def test_streaming_counts_filtered_records_as_they_pass(tmp_path, processor30):
    root = otozz_dir(tmp_path, processor30.tokenizer)
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True,
                           max_eval_samples=100)
    splits = load_splits(cfg, processor30.tokenizer)
    first = [tuple(r["labels"]) for r in splits.train]
    second = [tuple(r["labels"]) for r in splits.train]  # a second pass (epoch) over the stream
    assert len(first) + len(splits.validation) == 18
    assert sorted(first) == sorted(second)
    assert not set(first) & {tuple(r["labels"]) for r in splits.validation}  # same side in every pass
    # The stream's records reach the collator as lists, not through datasets' numpy formatter, which converts a
    # filtered/shuffled stream value by value (~65x slower per otozz record than the collator's np.asarray).
    record = next(iter(splits.train))
    assert isinstance(record["input_features"], list) and len(record["input_features"]) == 80
    assert np.asarray(record["input_features"], dtype=np.float32).shape == (80, 3000)
    pool = settle_counts(splits.report)["train_pool"]
    assert pool["rows_in"] == 20 and pool["rows_used"] == 18  # every record counted once, whatever the passes
    assert pool["filtered"]["labels_too_long"] == 1 and pool["filtered"]["empty_transcript"] == 1
    assert pool["counted"].startswith("while streaming")
    with pytest.raises(ValueError, match="streaming=True needs max_eval_samples"):
        load_splits(ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True),
                    processor30.tokenizer)


def test_hub_unreachable_stops_with_a_clear_message(monkeypatch, processor30):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("arabicpeft.data.hub_reachable", lambda *a, **k: False)
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
    with pytest.raises(InvalidRecord, match="31.0 s long, longer than the 30 s") as err:
        _check_audio_record({"audio": str(sf_path), "text": "نص"}, tok)
    assert err.value.reason == "too_long"
    with pytest.raises(InvalidRecord, match="transcript is empty") as err:
        _check_audio_record({"audio": str(sf_path), "text": ""}, tok)
    assert err.value.reason == "empty_transcript"
    with pytest.raises(InvalidRecord, match="450 tokens long.*at most 448") as err:
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


def test_load_audio_resamples_and_downmixes(tmp_path):
    import soundfile as sf

    stereo = np.stack([tone(1.0, 300), tone(1.0, 300)], axis=1)
    sf.write(tmp_path / "s.wav", stereo[::2], 8_000)  # 8 kHz stereo
    y = audio.load_audio(str(tmp_path / "s.wav"))
    assert y.ndim == 1 and y.dtype == np.float32 and abs(len(y) - 16_000) <= 2


# --- collator ----------------------------------------------------------------------------------------
def test_collator_strips_start_token_once_and_pads(processor30):
    tok = processor30.tokenizer
    collate = SpeechCollator(processor30, decoder_start_token_id=SOT)
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
    collate = SpeechCollator(tiny_processor, decoder_start_token_id=SOT)
    from_audio = collate([{"audio": {"array": tone(1.0), "sampling_rate": 16_000}, "text": text}])
    assert from_audio["input_features"].shape == (1, 80, 800)  # the tiny model's 8 s window
    assert from_audio["labels"][0].tolist() == otozz_labels(tiny_processor.tokenizer, text)[1:]
    assert tiny_processor.tokenizer.decode(from_audio["labels"][0], skip_special_tokens=True) == text


def test_collator_rejects_features_of_the_wrong_shape(tiny_processor):
    collate = SpeechCollator(tiny_processor, decoder_start_token_id=SOT)
    with pytest.raises(ValueError, match=r"input_features of shape \(128, 3000\).*80-mel Whisper"):
        collate([{"input_features": np.zeros((128, 3000), np.float32), "labels": PREFIX + [EOT]}])
    assert torch.is_tensor(collate([{"input_features": np.zeros((80, 800), np.float32),
                                     "labels": PREFIX + [EOT]}])["labels"])


def test_hub_source_runs_the_same_path_as_a_local_copy(tmp_path, monkeypatch, processor30):
    """The network is the only thing replaced: load_dataset serves the saved copy of the hub repo it is asked for."""
    root = otozz_dir(tmp_path, processor30.tokenizer)
    calls = []

    def fake_load_dataset(repo_id, split, streaming, revision):
        assert revision == "0123abc"  # the data are read at the commit recorded
        calls.append((repo_id, split, streaming))
        ds = datasets.load_from_disk(str(root / repo_id.split("/")[1]))
        ds = ds["train"] if isinstance(ds, datasets.DatasetDict) else ds
        return ds.to_iterable_dataset() if streaming else ds

    monkeypatch.setattr("arabicpeft.data.hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr("arabicpeft.data._hub_revision", lambda repo_id: "0123abc")
    monkeypatch.setattr("arabicpeft.data.datasets.load_dataset", fake_load_dataset)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = load_splits(ExperimentConfig(dialect="egyptian", source="hub"), processor30.tokenizer)
    local = load_splits(ExperimentConfig(dialect="egyptian", source="local", data_path=str(root)),
                        processor30.tokenizer)
    assert calls == [("otozz/egyptian_train_set", "train", False), ("otozz/egyptian_test_set", "train", False)]
    assert hub.report["train_pool"]["filtered"] == local.report["train_pool"]["filtered"]
    assert hub.report["train_pool"]["hub_ids"] == ["otozz/egyptian_train_set"]
    assert hub.report["train_pool"]["hub_revisions"] == ["0123abc"] == [hub.report["test"]["egyptian"]["hub_revision"]]
    assert [list(x) for x in hub.validation["labels"]] == [list(x) for x in local.validation["labels"]]
    streamed = load_splits(ExperimentConfig(dialect="egyptian", source="hub", streaming=True, max_eval_samples=4),
                           processor30.tokenizer)
    assert calls[-1] == ("otozz/egyptian_test_set", "train", True)
    batch = SpeechCollator(processor30, SOT)(list(streamed.test["egyptian"].take(2)))
    assert batch["input_features"].shape == (2, 80, 3000)


def test_streamed_validation_is_read_once_into_a_fixed_set(tmp_path, processor30):
    root = otozz_dir(tmp_path, processor30.tokenizer)
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True, max_eval_samples=3)
    splits = load_splits(cfg, processor30.tokenizer)
    assert isinstance(splits.validation, datasets.Dataset) and len(splits.validation) == 3
    assert splits.validation[0]["input_features"].shape == (80, 3000)
    assert isinstance(splits.train, datasets.IterableDataset)


def test_pooled_manifest_needs_a_dialect_column(tmp_path, tiny_processor):
    write_audio_manifest(tmp_path, [{"seconds": 1.0, "text": "نص"}] * 5, "train")
    cfg = ExperimentConfig(dialect="all", source="local", data_path=str(tmp_path))
    with pytest.raises(ValueError, match="no 'dialect' column.*pooled set"):
        load_splits(cfg, tiny_processor.tokenizer)
    (tmp_path / "test.jsonl").write_text('{"audio": "train-0.wav", "text": \n', encoding="utf-8")
    cfg = ExperimentConfig(dialect="gulf", source="local", data_path=str(tmp_path))
    with pytest.raises(ValueError, match="Could not read the manifest .*test.jsonl"):
        load_splits(cfg, tiny_processor.tokenizer)
