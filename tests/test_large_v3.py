"""whisper-large-v3's layout (128 mel bins, its special-token ids) through the whole package on
``tiny-random-large-v3``: the ids, labels of another layout re-made, the checks before anything loads, 2-step
LoRA and full runs, reload, evaluate, transcribe, merge and the adapter bank; DoRA with a time budget, resume,
CTranslate2 export and long-form transcription."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import GEN, _adapter, otozz_labels

from arabicpeft import export, kaggle, whisper_tokens
from arabicpeft.backbones import BACKBONES, WhisperCollator
from arabicpeft.cli import main
from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import ConfigError, SetupError
from arabicpeft.model import load_model
from arabicpeft.offline_model import resolve_model
from arabicpeft.results import read_results
from arabicpeft.sources import SAMPLE_DIR

V3 = "tiny-random-large-v3"
# large-v3's special tokens (openai/whisper whisper/tokenizer.py get_encoding with num_languages=100: <|yue|> after
# <|su|>, every later token one higher; research notes: transcribe 50360, translate 50359, nospeech 50363,
# notimestamps 50364); small's in brackets: 50358 / 50359 / 50362 / 50363
V3_IDS = {"<|endoftext|>": 50257, "<|startoftranscript|>": 50258, "<|ar|>": 50272, "<|su|>": 50357,
          "<|yue|>": 50358, "<|translate|>": 50359, "<|transcribe|>": 50360, "<|startoflm|>": 50361,
          "<|startofprev|>": 50362, "<|nospeech|>": 50363, "<|notimestamps|>": 50364, "<|0.00|>": 50365,
          "<|30.00|>": 51865}
TRAIN = ["--model", V3, "--source", "sample", "--dialect", "egyptian", "--learning-rate", "1e-3", "--warmup-steps",
         "0", "--batch-size", "2", "--max-steps", "2", "--eval-steps", "2", "--max-eval-samples", "2",
         "--max-test-samples", "4", "--generation-max-length", "8", "--early-stopping-patience", "0"]


@pytest.fixture(scope="module")
def v3_processor():
    return load_model(V3).processor


def test_tiny_random_large_v3_has_large_v3s_ids_and_128_mel_bins(v3_processor):
    from transformers import GenerationConfig, WhisperConfig

    tok = v3_processor.tokenizer
    assert {token: tok.convert_tokens_to_ids(token) for token in V3_IDS} == V3_IDS and len(tok) == 51866
    assert whisper_tokens.of_tokenizer(tok) == whisper_tokens.LABEL_LAYOUTS["whisper-v3"]
    assert whisper_tokens.of_files(resolve_model(V3)) == whisper_tokens.LABEL_LAYOUTS["whisper-v3"]
    config = WhisperConfig.from_pretrained(resolve_model(V3))
    assert config.num_mel_bins == 128 and config.vocab_size == 51866 and v3_processor.feature_extractor.feature_size == 128
    gen = GenerationConfig.from_pretrained(resolve_model(V3))
    assert gen.task_to_id == {"translate": 50359, "transcribe": 50360} and gen.no_timestamps_token_id == 50364
    assert gen.prev_sot_token_id == 50362 and len(gen.lang_to_id) == 100 and gen.lang_to_id["<|yue|>"] == 50358
    assert gen.suppress_tokens[-5:] == [50359, 50360, 50361, 50362, 50363]  # large-v3's hub list ends so
    assert BACKBONES["whisper"].prompt_ids(v3_processor) == [50258, 50272, 50360, 50364]
    assert BACKBONES["whisper"].timestamps_from(v3_processor) == 50365
    assert BACKBONES["whisper"].labels(v3_processor, "سلام")[:3] == [50258, 50272, 50360]


def test_otozz_labels_are_remade_for_the_large_v3_layout(v3_processor, tiny_processor):
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    text = "مرحبا بكم في المدرسة"
    stored = otozz_labels(tiny_processor.tokenizer, text)  # small's ids: read by large-v3 as <|translate|><|nospeech|>
    assert v3_processor.tokenizer.convert_ids_to_tokens(stored[2:4]) == ["<|translate|>", "<|nospeech|>"]
    record = {"input_features": np.zeros((80, 3000), np.float32), "labels": stored}
    v3_80 = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=v3_processor.tokenizer)
    remade = WhisperCollator(v3_80, 50258, label_tokens="whisper")([record])["labels"][0].tolist()
    words = v3_processor.tokenizer.encode(text, add_special_tokens=False)
    assert remade == [50272, 50360, 50364, *words, 50257]  # <|startoftranscript|> dropped: the model prepends it
    same = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tiny_processor.tokenizer)
    assert WhisperCollator(same, 50258, label_tokens="whisper")([record])["labels"][0].tolist() == stored[1:]


def _model_folder(root: Path, mels: int, tokenizer_json: dict) -> str:
    """A folder with only what the early checks read: config.json and tokenizer.json."""
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "whisper", "num_mel_bins": mels}))
    (root / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    return str(root)


def test_a_features_source_is_checked_against_the_model_before_anything_loads(tmp_path):
    def fits(model):
        return kaggle.check_model_fits_source(ExperimentConfig(model=model, source="hub", dialect="egyptian"))

    with pytest.raises(ConfigError, match=r"source hub holds 80-bin log-mel features, but tiny-random-large-v3 "
                                          r"takes 128 mel bins — train it on audio: --source local .* or sample"):
        fits(V3)
    base = json.loads((Path(resolve_model("tiny-random")) / "tokenizer.json").read_text(encoding="utf-8"))
    v3 = json.loads((Path(resolve_model(V3)) / "tokenizer.json").read_text(encoding="utf-8"))
    english = {**base, "added_tokens": [t for t in base["added_tokens"] if t["content"] != "<|ar|>"]}
    with pytest.raises(ConfigError, match=r"has no <\|ar\|>, which the labels of source hub hold"):
        fits(_model_folder(tmp_path / "en", 80, english))
    note = fits(_model_folder(tmp_path / "v3-80", 80, v3))  # an 80-mel model in large-v3's layout
    assert "re-made from their text" in note and "'<|transcribe|>': 50360" in note
    assert fits(_model_folder(tmp_path / "small", 80, base)) is None  # otozz's own layout
    with pytest.raises(SetupError, match="cannot read the config.json of openai/whisper-large-v3"):
        fits("openai/whisper-large-v3")  # HF_HUB_OFFLINE, not cached: its config.json cannot be read
    assert kaggle.check_model_fits_source(ExperimentConfig(model=V3, source="sample")) is None  # audio


def _train(tmp_path_factory, method: str) -> Path:
    out = tmp_path_factory.mktemp(method) / "run"
    main(["train", *TRAIN, "--method", method, "--output-dir", str(out)])
    return out


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    return _train(tmp_path_factory, "lora")


def test_lora_and_full_train_save_reload_and_evaluate_alike(lora_run, tmp_path_factory, tmp_path, capsys):
    full = _train(tmp_path_factory, "full")
    for out, kind in ((lora_run, "adapter"), (full, "model")):
        results = read_results(out)
        assert results["training"]["global_step"] == 2 and results["config"]["model"] == V3
        loaded = load_model(out / "model")
        assert loaded.kind == kind and loaded.processor.feature_extractor.feature_size == 128
        assert BACKBONES["whisper"].prompt_ids(loaded.processor) == [50258, 50272, 50360, 50364]
        main(["evaluate", "--model-path", str(out / "model"), "--max-test-samples", "4", "--output-dir",
              str(tmp_path / kind)])
        evaluated = json.loads(Path(capsys.readouterr().out.strip().splitlines()[-1]).read_text())
        assert evaluated["metrics"] == results["metrics"]  # greedy decoding of the saved model is deterministic
    trainable = read_results(full)["efficiency"]["trainable_parameters"]
    assert trainable == read_results(full)["efficiency"]["total_parameters"] - 400 * 64  # positions stay fixed


def test_transcribe_with_large_v3s_prompt(lora_run, tmp_path, capsys):
    audio = sorted((SAMPLE_DIR / "audio").glob("egyptian-te0*.ogg"))[:2]
    for name, model in (("base", V3), ("adapter", str(lora_run / "model"))):
        main(["transcribe", *map(str, audio), "--model-path", model, "--max-new-tokens", "6", "--output-dir",
              str(tmp_path / name)])
        rows = [json.loads(line) for line in Path(capsys.readouterr().out.strip().splitlines()[-1]).read_text(
            encoding="utf-8").splitlines()]
        assert [r["path"] for r in rows] == [str(a.resolve()) for a in audio]
        assert all("<|" not in r["text"] and 1 < r["duration"] < 8 for r in rows)  # no prompt token decoded
        if name == "base":  # the random base decodes words (the 2-step adapter may end at once)
            assert all(len(r["text"].split()) >= 2 for r in rows)


@pytest.fixture(scope="module")
def v3_adapters(tmp_path_factory):
    root = tmp_path_factory.mktemp("v3-adapters")
    return {d: _adapter(root / d / "model", d, seed, model=V3) for seed, d in enumerate(("egyptian", "levantine"))}


def test_merge_equals_unmerged_at_fp32(v3_adapters, tmp_path):
    from test_export import _hypotheses, _sample_tests
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    merged = export.merge(v3_adapters["egyptian"], tmp_path / "merged", dtype="fp32")
    unmerged = load_model(v3_adapters["egyptian"])
    plain, processor = WhisperForConditionalGeneration.from_pretrained(merged), WhisperProcessor.from_pretrained(merged)
    plain.generation_config.max_length = GEN
    tests = _sample_tests(unmerged.processor, n=3)
    with_adapter = _hypotheses(unmerged.model, unmerged.processor, tests)
    assert _hypotheses(plain, processor, tests) == with_adapter
    base = load_model(V3)
    base.model.generation_config.max_length = GEN
    assert _hypotheses(base.model, base.processor, tests) != with_adapter  # the adapter changes the model


def test_the_bank_decodes_each_utterance_with_its_adapter(v3_adapters):
    import datasets

    from arabicpeft.bank import AdapterBank
    from arabicpeft.data import load_test_sets
    from arabicpeft.evaluate import transcribe

    loaded = AdapterBank(v3_adapters).loaded
    model, processor = loaded.model, loaded.processor
    assert set(model.peft_config) == {"egyptian", "levantine"} and processor.feature_extractor.feature_size == 128
    cfg = ExperimentConfig(model=V3, source="sample", test_sets=["egyptian", "levantine"], max_test_samples=2)
    tests, _, _ = load_test_sets(cfg, processor.tokenizer)
    mixed = datasets.concatenate_datasets([tests["egyptian"], tests["levantine"]])
    names = ["egyptian", "levantine", "__base__", "levantine"]
    hyps = transcribe(model, processor, mixed, batch_size=4, max_new_tokens=8, adapter_names=names)[1]  # one call
    alone = {}
    for name in ("egyptian", "levantine"):
        model.set_adapter(name)
        alone[name] = transcribe(model, processor, mixed, batch_size=4, max_new_tokens=8)[1]
    with model.disable_adapter():
        alone["__base__"] = transcribe(model, processor, mixed, batch_size=4, max_new_tokens=8)[1]
    assert hyps == [alone[n][i] for i, n in enumerate(names)]
    assert alone["egyptian"] != alone["__base__"]  # the adapters change the output (so the test can fail)


def test_dora_stops_on_its_time_budget_resumes_merges_exports_and_transcribes_long_audio(tmp_path, capsys):
    """DoRA on large-v3's layout: stopped by its time budget after step 1, resumed to step 2, its merge a standalone
    model with the adapter's transcripts, converted to CTranslate2 (faster-whisper reads the 128-mel extractor),
    scoring as transformers does, and a file longer than the window transcribed in windows."""
    from test_export import _hypotheses, _sample_tests

    from arabicpeft.evaluate import evaluate_sets
    from arabicpeft.transcribe import concatenate_clips, sample_clips, transcribe_files

    out = tmp_path / "run"
    dora = [*TRAIN, "--use-dora", "--output-dir", str(out)]
    main(["train", *dora, "--time-budget-s", "1e-6"])
    stopped = read_results(out)
    main(["train", *dora])
    resumed = read_results(out)
    assert stopped["training"]["stopped_by_time_budget_at_step"] == 1 == stopped["training"]["global_step"]
    assert resumed["training"]["resumed_from"] and resumed["training"]["global_step"] == 2
    assert json.loads((out / "model" / "adapter_config.json").read_text())["use_dora"] is True

    merged = export.merge(out / "model", tmp_path / "merged", dtype="fp32")
    unmerged = load_model(out / "model", full_window=True)
    tests = _sample_tests(unmerged.processor, n=3)
    hypotheses = _hypotheses(unmerged.model, unmerged.processor, tests)
    assert _hypotheses(load_model(merged).model, unmerged.processor, tests) == hypotheses
    whisper, processor, _ = export.load_ct2(export.export_ct2(merged, tmp_path / "ct2", "float32"),
                                            compute_type="float32")
    assert processor.feature_extractor.feature_size == 128
    hf = load_model(merged)  # at the window it was trained with, as its CTranslate2 export
    hf.model.generation_config.max_length = GEN
    _, rows = evaluate_sets(whisper, processor, tests, batch_size=8, max_length=GEN)
    assert rows[rows.scheme == "raw"]["hypothesis"].tolist() == _hypotheses(hf.model, hf.processor, tests)

    long = concatenate_clips(sample_clips("egyptian"), tmp_path / "long.wav", repeat=2)  # 77 s
    loaded = load_model(out / "model")
    [transcript] = transcribe_files(loaded, [{"path": str(long)}], max_new_tokens=GEN, progress=False)
    assert loaded.window_seconds == 8 and len(transcript.segments) > 1
    assert all(s["end"] - s["start"] <= 8 for s in transcript.segments)
