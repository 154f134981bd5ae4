"""Every kind of bad input the project knows, with its expected outcome: a clear error that says what was wrong
and what to do, a counted skip (never a silent one), or a conversion with the right value.

ERRORS and SKIPS below are the catalogue (one entry per kind); the tests after them hold the right values of
the faults fixed in issue 9 (integer and multi-channel audio, non-finite features, the label limit, manifests,
empty test transcripts, the generation budget, stream counts, record keys, empty validation splits).
"""

import json
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import EOT, PREFIX, SR, otozz_labels, tone, write_audio_manifest
from torch.utils.data import DataLoader
from transformers import WhisperForConditionalGeneration
from transformers.modeling_outputs import Seq2SeqLMOutput

from arabicpeft import audio, profiles
from arabicpeft.config import ExperimentConfig
from arabicpeft.data import (DataUnavailableError, InvalidRecord, ManifestError, SpeechCollator, _check_feature_record,
                             _check_labels, _filter_records, load_splits, load_test_sets, read_manifest, _record_format,
                             settle_counts)
from arabicpeft.metrics import score
from arabicpeft.text import normalize

SOT = PREFIX[0]


# --- the catalogue: errors ---------------------------------------------------------------------------
def _manifest(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _local(tmp_path, **kw):
    return ExperimentConfig(dialect="gulf", source="local", data_path=str(tmp_path), **kw)


def _run_dir(tmp_path, **changes):
    from arabicpeft.run_dir import claim_output_dir

    claim_output_dir(ExperimentConfig(output_dir=str(tmp_path / "run")))
    claim_output_dir(ExperimentConfig(output_dir=str(tmp_path / "run"), **changes))


def _resume(tmp_path, planned=20, asked=30, resume_from=None):
    from arabicpeft.train import _resume_checkpoint

    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"max_steps": planned}))
    return _resume_checkpoint(ExperimentConfig(output_dir=str(tmp_path / "run"), max_steps=asked,
                                              resume_from=resume_from))


def _profile(name):
    import os

    before = os.environ.get(profiles._ENV_VAR)
    os.environ[profiles._ENV_VAR] = name
    try:
        return profiles.current()
    finally:
        os.environ.pop(profiles._ENV_VAR) if before is None else os.environ.__setitem__(profiles._ENV_VAR, before)


def _empty_validation(tmp_path, tok, streaming):
    write_audio_manifest(tmp_path, [{"seconds": 1.0, "text": f"نص {i}"} for i in range(4)], "train")
    write_audio_manifest(tmp_path, [{"seconds": 1.0, "text": "نص"}], "test")
    # streamed: a tiny val_fraction sends every record to train; not streamed: max_eval_samples=0
    cfg = (_local(tmp_path, streaming=True, max_eval_samples=4, val_fraction=1e-9) if streaming
           else _local(tmp_path, max_eval_samples=0))
    load_splits(cfg, tok)


# (kind, call(tmp_path, tokenizer), exception, message: what was wrong ... what to do)
ERRORS = [
    ("unknown dialect", lambda t, k: ExperimentConfig(dialect="sudanese"), ValueError,
     r"Unknown dialect 'sudanese'. Valid names: egyptian, gulf"),
    ("unknown method", lambda t, k: ExperimentConfig(method="prefix"), ValueError,
     r"Unknown method 'prefix' — choose one of lora, full"),
    ("unknown precision", lambda t, k: ExperimentConfig(precision="int3"), ValueError,
     r"Unknown precision 'int3' — choose one of fp32"),
    ("full fine-tuning of a quantized model", lambda t, k: ExperimentConfig(method="full", precision="nf4"),
     ValueError, r"not possible .*use method='lora'"),
    ("local source without a path", lambda t, k: ExperimentConfig(source="local"), ValueError,
     r"source='local' needs data_path"),
    ("validation fraction out of range", lambda t, k: ExperimentConfig(val_fraction=1.5), ValueError,
     r"val_fraction must be between 0 and 1"),
    ("unknown config field", lambda t, k: ExperimentConfig.from_dict({"lr": 1}), ValueError,
     r"Unknown config fields: lr — remove them"),
    ("unknown run profile", lambda t, k: _profile("gpu"), ValueError, r"'gpu' is not a profile; choose one of full, ci"),
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
    ("records of an unknown format", lambda t, k: _record_format(["path", "sentence"]), ValueError,
     r"Unrecognised record format .*expected 'input_features' \+ 'labels'.*or 'audio' \+ 'text'"),
    ("every record filtered out", lambda t, k: (write_audio_manifest(t, [{"seconds": 0.01, "text": "نص"}] * 3),
                                                load_splits(_local(t), k)),
     DataUnavailableError, r"Every one of the 3 records was filtered out: .*'too_short': 3.*Check the data"),
    ("streaming without a validation size", lambda t, k: load_splits(_local(t, streaming=True), k), ValueError,
     r"streaming=True needs max_eval_samples.*e.g. 500"),
    ("empty validation split, streamed", lambda t, k: _empty_validation(t, k, True), DataUnavailableError,
     r"The validation split is empty .*val_fraction=1e-09.*Use more training data, a larger val_fraction"),
    ("empty validation split, not streamed", lambda t, k: _empty_validation(t, k, False), DataUnavailableError,
     r"The validation split is empty .*max_eval_samples=0.*Use more training data"),
    ("results directory of a different experiment", lambda t, k: _run_dir(t, dialect="gulf"), ValueError,
     r"already holds a run with another config \(dialect: 'egyptian' -> 'gulf'\) — use a new --output-dir"),
    ("resume with another max_steps", lambda t, k: _resume(t), ValueError,
     r"trained towards max_steps=20.*max_steps=30 would train on a broken schedule.*Rerun with max_steps=20"),
    ("resume from a folder without a checkpoint", lambda t, k: _resume(t, 30, 30, resume_from=str(t)), FileNotFoundError,
     r"No complete checkpoint-\* directory .*resume_from="),
    ("features of the wrong shape (128 mels)", lambda t, k: SpeechCollator(_Proc30(k), SOT)(
        [{"input_features": np.zeros((128, 3000), np.float32), "labels": PREFIX + [EOT]}]), ValueError,
     r"input_features of shape \(128, 3000\).*use an 80-mel Whisper"),
    ("raw audio array without its rate", lambda t, k: audio.load_audio(tone(1.0)), audio.AudioError,
     r"needs its sampling_rate \(e.g. load_audio\(y, sampling_rate=16000\)\)"),
    ("audio array with no channel axis", lambda t, k: audio.load_audio({"array": np.zeros((100, 16000)), "sampling_rate": SR}),
     audio.AudioError, r"shape \(100, 16000\) has no channel axis .*give mono samples"),
    ("audio samples that are not numbers", lambda t, k: audio.load_audio({"array": np.array(["a", "b"]), "sampling_rate": SR}),
     audio.AudioError, r"are not numbers: give float or integer PCM"),
    ("features at the wrong sample rate", lambda t, k: audio.log_mel(tone(1.0), None, sampling_rate=8000),
     audio.AudioError, r"need 16000 Hz audio, got 8000 Hz: decode it with arabicpeft.audio.load_audio"),
    ("unknown normalizer", lambda t, k: normalize("نص", "basic"), ValueError,
     r"Unknown normalization scheme 'basic'; choose one of raw, leaderboard"),
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


# --- the catalogue: counted skips ----------------------------------------------------------------------
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
    good = [{"seconds": 1.0 + 0.05 * i, "text": f"مرحبا {i}"} for i in range(10)]
    if "array" in row:  # an in-memory record: written as a float WAV keeps the NaN
        sf.write(tmp_path / "bad.wav", row["array"], SR, subtype="FLOAT")
        row = {"file_bytes": (tmp_path / "bad.wav").read_bytes(), "text": row["text"]}
    write_audio_manifest(tmp_path, good + [row], "train")
    write_audio_manifest(tmp_path, good[:1], "test")
    cfg = _local(tmp_path, streaming=streaming, max_eval_samples=10 if streaming else None, val_fraction=0.5)
    splits = load_splits(cfg, tiny_processor.tokenizer, max_seconds=8)
    if streaming:
        list(splits.train)  # a stream is counted as it is read
    pool = settle_counts(splits.report)["train_pool"]
    assert (pool["rows_in"], pool["rows_used"]) == (11, 10)
    assert pool["filtered"][reason] == 1 and sum(pool["filtered"].values()) == 1


def test_the_catalogue_lists_at_least_25_kinds():
    kinds = [e[0] for e in ERRORS] + [s[0] for s in SKIPS] + CONVERSIONS
    assert len(kinds) >= 25 and len(set(kinds)) == len(kinds)


# --- conversions with a right value (the tests below) ---------------------------------------------------
CONVERSIONS = ["integer PCM array", "multi-channel array", "wrong sample rate (resampled)", "manifest with a BOM",
               "manifest with Windows line endings", "NaN in precomputed features", "labels of 449/450 ids",
               "empty transcript in a test set (scored)", "reference longer than the generation budget",
               "records sharing a transcript", "stream read by DataLoader workers"]


def test_integer_pcm_gives_the_features_of_the_float_clip(tmp_path, tiny_processor):
    """Item 1: a 1 s 300 Hz tone as int16 and as float32 (the float32 soundfile reads from that int16 file)
    gives the same log-mel (max abs diff < 1e-4); every integer type is scaled as soundfile scales files."""
    y = tone(1.0, 300)
    pcm = np.round(y * 32767).astype(np.int16)
    extractor = tiny_processor.feature_extractor
    sf.write(tmp_path / "pcm16.wav", pcm, SR, subtype="PCM_16")
    as_float32, _ = sf.read(tmp_path / "pcm16.wav", dtype="float32")
    as_float = audio.log_mel(audio.load_audio({"array": as_float32, "sampling_rate": SR}), extractor)
    as_int = audio.log_mel(audio.load_audio({"array": pcm, "sampling_rate": SR}), extractor)
    assert np.abs(as_int - as_float).max() < 1e-4
    # and within int16 quantization of the original float tone (before: 32768 times too loud)
    original = audio.log_mel(audio.load_audio({"array": y, "sampling_rate": SR}), extractor)
    assert np.abs(as_int - original).max() < 0.01
    np.testing.assert_array_equal(audio.load_audio(pcm, sampling_rate=SR), audio.load_audio(str(tmp_path / "pcm16.wav")))
    for dtype, zero, scale in ((np.int32, 0, 2**31), (np.int8, 0, 128), (np.uint8, 128, 128), (np.uint16, 2**15, 2**15)):
        samples = np.array([np.iinfo(dtype).min, zero, np.iinfo(dtype).max], dtype=dtype)
        expected = (samples.astype(np.float64) - zero) / scale
        np.testing.assert_allclose(audio._to_float32(samples), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_multichannel_arrays_become_mono_of_the_right_length(layout):
    """Item 2: a (2, 16000) array at 16 kHz is 16,000 mono samples (before: 2 samples, filtered as 0.000 s)."""
    left, right = tone(1.0, 300), tone(1.0, 500)
    stereo = np.stack([left, right]) if layout == "channels_first" else np.stack([left, right], axis=1)
    mono = audio.load_audio({"array": stereo, "sampling_rate": SR})
    assert mono.shape == (16_000,)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    assert audio.check_duration(mono) == 1.0


def test_a_wrong_sample_rate_is_resampled(tmp_path):
    sf.write(tmp_path / "8k.wav", tone(1.0, 300)[::2], 8_000)
    assert abs(len(audio.load_audio(str(tmp_path / "8k.wav"))) - 16_000) <= 2


def test_non_finite_features_are_filtered_and_counted(tiny_processor):
    """Item 3: a feature record with one NaN (or Inf) is filtered as non_finite, streamed or not (before: it
    was transcribed as "!!!!!!!!!!!!" and scored)."""
    tok = tiny_processor.tokenizer
    feats = [np.zeros((80, 10), np.float32) + i for i in range(4)]
    feats[1][3, 4], feats[2][0, 0] = np.nan, np.inf
    ds = datasets.Dataset.from_dict({"input_features": feats, "labels": [otozz_labels(tok, f"نص {i}") for i in range(4)]})
    with pytest.raises(InvalidRecord, match="NaN or infinite values.*Recompute the features") as err:
        _check_feature_record({"input_features": feats[1], "labels": otozz_labels(tok, "نص")}, tok)
    assert err.value.reason == "non_finite"
    for stream in (False, True):
        report = {}
        kept = _filter_records(ds.to_iterable_dataset() if stream else ds, "features", tok, 30, report)
        assert len(list(kept)) == 2
        report = settle_counts(report)
        assert report["rows_in"] == 4 and report["filtered"]["non_finite"] == 2


def test_the_label_limit_is_the_models_decoder_positions(tiny_processor):
    """Item 4: 449 ids starting with <|startoftranscript|> fit (the collator strips it: 448 decoder positions);
    450 are filtered; the limit is the model's max_target_positions, not a constant."""
    tok = tiny_processor.tokenizer
    fits = PREFIX + [400] * 444 + [EOT]
    assert len(fits) == 449
    _check_labels(fits, tok, max_positions=448)
    assert SpeechCollator(tiny_processor, SOT)([{"input_features": np.zeros((80, 800), np.float32),
                                                  "labels": fits}])["labels"].shape == (1, 448)
    with pytest.raises(InvalidRecord, match="450 tokens long and needs 449 decoder positions.*at most 448") as err:
        _check_labels(PREFIX + [400] * 445 + [EOT], tok, max_positions=448)
    assert err.value.reason == "labels_too_long"
    _check_labels(fits[1:], tok, max_positions=448)  # no <|startoftranscript|>: every id takes a position
    with pytest.raises(InvalidRecord):
        _check_labels(fits[1:] + [400], tok, max_positions=448)
    with pytest.raises(InvalidRecord, match="at most 100"):  # a smaller decoder: its own limit
        _check_labels(PREFIX + [400] * 100 + [EOT], tok, max_positions=100)


@pytest.mark.parametrize("suffix, content", [
    (".csv", "\ufeffaudio,text,dialect\r\na.wav,مرحبا,gulf\r\nb.wav,\"نعم، لا\",gulf\r\n"),
    (".jsonl", '\ufeff{"audio": "a.wav", "text": "مرحبا", "dialect": "gulf"}\r\n'
               '{"audio": "b.wav", "text": "نعم، لا", "dialect": "gulf"}\r\n'),
    (".json", '\ufeff[{"audio": "a.wav", "text": "مرحبا", "dialect": "gulf"},\r\n'
              ' {"audio": "b.wav", "text": "نعم، لا", "dialect": "gulf"}]\r\n'),
])
def test_manifests_with_a_bom_and_windows_line_endings_are_read(suffix, content, tmp_path, tiny_processor):
    """Item 5: UTF-8 with a byte-order mark and CRLF line endings, in CSV, JSONL and JSON."""
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, tone(1.0), SR)
    (tmp_path / f"train{suffix}").write_bytes(content.encode("utf-8"))
    frame = read_manifest(tmp_path / f"train{suffix}")
    assert list(frame.columns) == ["audio", "text", "dialect"]
    assert list(frame["text"]) == ["مرحبا", "نعم، لا"]
    (tmp_path / f"test{suffix}").write_bytes(content.encode("utf-8"))
    tests, report, _ = load_test_sets(_local(tmp_path), tiny_processor.tokenizer, max_seconds=8)
    assert report["gulf"]["rows_used"] == 2 and list(tests["gulf"]["text"]) == ["مرحبا", "نعم، لا"]


@pytest.fixture(scope="module")
def tiny_model():
    from arabicpeft.model import _load_base

    model, processor = _load_base(ExperimentConfig(model="tiny-random", generation_max_length=6))
    return model, processor


def test_empty_test_transcripts_are_scored_not_filtered(tmp_path, tiny_model):
    """Item 6: a test clip with an empty transcript is kept; its hypothesis words are insertions and
    empty_references counts it. Training keeps filtering it (counted)."""
    from arabicpeft.evaluate import evaluate_sets

    model, processor = tiny_model
    rows = [{"seconds": 1.0, "text": "مرحبا"}, {"seconds": 1.5, "text": ""}, {"seconds": 2.0, "text": "نعم"}]
    write_audio_manifest(tmp_path, rows, "test")
    tests, report, _ = load_test_sets(_local(tmp_path), processor.tokenizer, max_seconds=8)
    assert len(tests["gulf"]) == 3 and report["gulf"]["empty_transcript_scored"] == 1
    assert report["gulf"]["filtered"]["empty_transcript"] == 0
    metrics, utts = evaluate_sets(model, processor, tests)
    raw = metrics["gulf"]["raw"]
    assert raw["n_utterances"] == 3 and raw["empty_references"] == 1 and raw["ref_words"] == 2
    silent = utts[(utts.scheme == "raw") & (utts.utt_index == 1)].iloc[0]
    assert silent.ref_words == 0 and silent.word_errors == len(silent.hypothesis.split()) > 0
    assert raw["word_errors"] == utts[utts.scheme == "raw"].word_errors.sum()
    # the same rule without a model
    assert score(["", "a b"], ["x y", "a b"])["word_errors"] == 2


class Parrot(WhisperForConditionalGeneration):
    """Says its ``target`` ids whatever it hears: a model that produces a given reference, through the real
    Whisper generate loop (prompt, suppressions, budget)."""

    target: list = []

    def forward(self, *args, decoder_input_ids=None, **kwargs):
        step = decoder_input_ids.shape[1]  # no cache: the whole sequence so far
        logits = torch.full((decoder_input_ids.shape[0], 1, self.config.vocab_size), -1e9)
        logits[:, -1, self.target[step] if step < len(self.target) else EOT] = 0.0
        return Seq2SeqLMOutput(logits=logits)


def test_a_long_reference_fits_the_default_budget_and_is_counted_under_the_papers(tiny_model):
    """Item 7: a kept 294-token reference is matched in full under the default budget; under the paper's 225
    it is cut, counted in references_over_budget, and a warning says so."""
    from arabicpeft.config import PAPER_GENERATION_MAX_LENGTH
    from arabicpeft.evaluate import evaluate_sets, generation_budget

    base, processor = tiny_model
    tok = processor.tokenizer
    labels = PREFIX + tok.encode(" ".join(["كلمة"] * 200), add_special_tokens=False)[:289] + [EOT]
    assert len(labels) == 294
    _check_labels(labels, tok, max_positions=base.config.max_target_positions)  # admitted
    model = Parrot(base.config)
    model.generation_config = base.generation_config
    model.generation_config.use_cache = False
    Parrot.target = labels
    ds = datasets.Dataset.from_dict({"input_features": [np.zeros((80, 800), np.float32)], "labels": [labels]})
    test_sets = {"long": ds.with_format("numpy")}

    model.generation_config.max_length = base.config.max_target_positions  # the default (None -> model's limit)
    assert generation_budget(model, tok) == 444
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no budget warning
        metrics, _ = evaluate_sets(model, processor, test_sets)
    assert metrics["long"]["raw"]["word_errors"] == 0 and metrics["long"]["raw"]["references_over_budget"] == 0

    model.generation_config.max_length = PAPER_GENERATION_MAX_LENGTH
    with pytest.warns(UserWarning, match="1 of 1 references are longer than the generation budget of 225 tokens "
                                         r"\(longest 289\).*Raise generation_max_length"):
        metrics, _ = evaluate_sets(model, processor, test_sets)
    assert metrics["long"]["raw"]["references_over_budget"] == 1 and metrics["long"]["raw"]["word_errors"] > 0
    assert metrics["long"]["raw"]["generation_budget_tokens"] == 225


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
    """Item 9: 16 rows (3 filtered) read through a DataLoader with 0, 1 or 2 workers are counted 16 / 13
    (before: 6 with 1 worker through the API, 3 through the CLI)."""
    tok = tiny_processor.tokenizer
    root = _feature_dir(tmp_path, tok, 16, bad=(2, 7, 11))
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True,
                           max_eval_samples=1, seed=3)
    splits = load_splits(cfg, tok)
    for _ in range(2):  # two epochs: each record still counted once
        seen = sum(len(b) for b in DataLoader(splits.train, batch_size=2, num_workers=workers, collate_fn=list))
    pool = settle_counts(splits.report)["train_pool"]
    assert pool["rows_in"] == 16 and pool["rows_used"] == 13 and pool["filtered"]["empty_transcript"] == 3
    assert seen + len(splits.validation) <= 13


def test_records_sharing_a_transcript_are_distinct_and_never_leak(tmp_path, tiny_processor):
    """Item 10: 4 different recordings of "نعم" count as 4 (before: 1), and each lands on one side of the
    streamed train/validation split in every pass."""
    tok = tiny_processor.tokenizer
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(80, 10)).astype(np.float32) for _ in range(12)]
    texts = ["نعم"] * 4 + [f"جملة {i}" for i in range(8)]
    root = _feature_dir(tmp_path, tok, 12, features=features, texts=texts)
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(root), streaming=True,
                           max_eval_samples=12, val_fraction=0.4, seed=1)
    splits = load_splits(cfg, tok)
    key = lambda r: np.asarray(r["input_features"], dtype=np.float32).tobytes()  # noqa: E731
    passes = [{key(r) for r in splits.train} for _ in range(2)]
    validation = {key(r) for r in splits.validation}
    assert passes[0] == passes[1] and not passes[0] & validation
    assert len(passes[0]) + len(validation) == 12
    yes = {f.tobytes() for f in features[:4]}
    assert len(yes & (passes[0] | validation)) == 4
    assert settle_counts(splits.report)["train_pool"]["rows_in"] == 12
    # audio records: the same text, different arrays
    audio_rows = [{"audio": {"array": tone(1.0, 200 + 50 * i), "sampling_rate": SR}, "text": "نعم"} for i in range(4)]
    from arabicpeft.data import _record_key

    assert len({_record_key(r) for r in audio_rows}) == 4
    assert _record_key(audio_rows[0]) == _record_key({"audio": {"array": tone(1.0, 200), "sampling_rate": SR},
                                                    "text": "نعم"})


def test_an_empty_validation_split_stops_before_any_training_step(tmp_path, tiny_processor):
    """Item 11: at load time, never a KeyError for eval_wer after training."""
    from arabicpeft.train import run

    write_audio_manifest(tmp_path / "data", [{"seconds": 1.0, "text": f"نص {i}"} for i in range(4)], "train")
    write_audio_manifest(tmp_path / "data", [{"seconds": 1.0, "text": "نص"}], "test")
    cfg = ExperimentConfig(dialect="gulf", source="local", data_path=str(tmp_path / "data"), model="tiny-random",
                           streaming=True, max_eval_samples=4, val_fraction=1e-9, max_steps=2,
                           evaluate_before=False, output_dir=str(tmp_path / "run"))
    with pytest.raises(DataUnavailableError, match="The validation split is empty"):
        run(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
