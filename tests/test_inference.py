"""Using a trained model: any model reference, transcription of any length, merge, CTranslate2 export, evaluate
anything, model cards and upload. Real tiny runs: a LoRA adapter with non-zero random weights on tiny-random
(so that merging changes the weights), and whisper-base where a pretrained model's timestamps are needed."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from arabicpeft import export
from arabicpeft.cli import main
from arabicpeft.config import ExperimentConfig
from arabicpeft.data import SAMPLE_DIR, load_test_sets
from arabicpeft.evaluate import evaluate_sets, pooled_metrics
from arabicpeft.model import CONFIG_FILE, add_lora, load_base, load_model, save_trained
from arabicpeft.results import read_results
from arabicpeft.text import SCHEMES
from arabicpeft.transcribe import collect_audio, to_srt, to_vtt, transcribe_files, write_transcripts

GEN = 20  # tokens per transcript of the random tiny model


def _adapter(directory: Path, dialect: str, seed: int) -> Path:
    """A tiny-random LoRA adapter saved by arabicpeft, with random non-zero B matrices (an untrained adapter is
    the identity, and merging it would prove nothing)."""
    cfg = ExperimentConfig(dialect=dialect, model="tiny-random", source="sample", lora_targets="qkvo",
                           generation_max_length=GEN, max_test_samples=6)
    model, processor = load_base(cfg)
    model = add_lora(model, cfg)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return save_trained(model, processor, cfg, directory)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return _adapter(tmp_path_factory.mktemp("adapter") / "model", "egyptian", 0)


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
    info = json.loads((merged / export.EXPORT_FILE).read_text())
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
    whisper, processor = export.load_ct2(out, compute_type="float32")
    assert export.describe_ct2(whisper)["compute_type"] == "float32"
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
    assert json.loads((int8 / export.EXPORT_FILE).read_text())["quantization"] == "int8"


def test_adapter_bank_decodes_each_file_with_its_dialect(tmp_path):
    bank = tmp_path / "bank"
    egy, gulf = _adapter(bank / "egy", "egyptian", 1), _adapter(bank / "gulf" / "model", "gulf", 2)
    loaded = load_model(bank)
    assert loaded.kind == "bank" and set(loaded.adapters) == {"egyptian", "gulf"}
    audio = sorted((SAMPLE_DIR / "audio").glob("egyptian-te0*.ogg"))[:2]
    manifest = tmp_path / "files.jsonl"
    manifest.write_text("\n".join(json.dumps({"audio": str(a), "dialect": d}) for a, d in zip(audio, ("egyptian", "gulf"))))
    items = collect_audio([manifest])
    got = [t.text for t in transcribe_files(loaded, items, max_new_tokens=GEN, progress=False)]
    single = [transcribe_files(load_model(p), [item], max_new_tokens=GEN, progress=False)[0].text
              for p, item in zip((egy, gulf), items)]
    assert got == single and got[0] != transcribe_files(load_model(gulf), items[:1], max_new_tokens=GEN,
                                                        progress=False)[0].text
    with pytest.raises(ValueError, match="needs each file's dialect"):
        transcribe_files(loaded, collect_audio(audio[:1]), progress=False)
    with pytest.raises(ValueError, match="no adapter for 'maghrebi'"):
        transcribe_files(loaded, collect_audio(audio[:1], dialect="maghrebi"), progress=False)


def _long_clip(path: Path, min_seconds: float) -> float:
    clips, total = [], 0.0
    for f in sorted((SAMPLE_DIR / "audio").glob("*-te*.ogg")):
        y, sr = sf.read(f, dtype="float32")
        clips += [y, np.zeros(sr // 2, dtype=np.float32)]
        total += len(y) / sr + 0.5
        if total > min_seconds:
            break
    sf.write(path, np.concatenate(clips), sr)
    return total


@pytest.mark.parametrize("backend", ["hf", "ct2"])
def test_long_audio_is_transcribed_whole(tmp_path, backend):
    """A 40 s clip (> the 30 s window) through whisper-base: segments run past the first window to the end."""
    seconds = _long_clip(tmp_path / "long.wav", 40)
    if backend == "hf":
        model = load_model("whisper-base")
    else:
        model = export.load_ct2("whisper-base", compute_type="int8")[0]
    [t] = transcribe_files(model, collect_audio([tmp_path / "long.wav"]), backend=backend, progress=False)
    assert t.duration == pytest.approx(seconds, abs=0.01) and t.duration > 30
    assert len(t.segments) >= 2 and t.segments[-1]["end"] > 30 and t.segments[-1]["end"] <= t.duration
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(t.segments, t.segments[1:]))
    assert len(t.text.split()) > 10


def test_subtitle_formats():
    segments = [{"start": 0.0, "end": 2.5, "text": " مرحبا "}, {"start": 61.25, "end": 3723.0491, "text": "كيف الحال"},
                {"start": 3800.0, "end": 3801.0, "text": "  "}]
    assert to_srt(segments) == ("1\n00:00:00,000 --> 00:00:02,500\nمرحبا\n\n"
                                "2\n00:01:01,250 --> 01:02:03,049\nكيف الحال\n\n")
    assert to_vtt(segments) == ("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nمرحبا\n\n"
                                "00:01:01.250 --> 01:02:03.049\nكيف الحال\n\n")


def test_transcribe_cli_writes_jsonl_and_subtitles(tmp_path, capsys):
    audio = sorted((SAMPLE_DIR / "audio").glob("gulf-te0*.ogg"))[:2]
    main(["transcribe", *map(str, audio), "--model-path", "tiny-random", "--max-new-tokens", "8",
          "--subtitles", "srt,vtt", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out.strip().splitlines()
    path = Path(out[-1])
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert out[0] == "Transcribing 2 file(s) with tiny-random (hf)." and len(out) == 4  # + one line per file
    assert [r["path"] for r in rows] == [str(a.resolve()) for a in audio]
    for r in rows:
        assert r["segments"] == [{"start": 0.0, "end": r["duration"], "text": r["text"]}] and 1 < r["duration"] < 8
        assert (tmp_path / r["srt"]).read_text(encoding="utf-8").startswith("1\n00:00:00,000 --> ")
        assert (tmp_path / r["vtt"]).read_text(encoding="utf-8").startswith("WEBVTT\n\n00:00:00.000 --> ")
    run = json.loads((tmp_path / "transcribe.json").read_text())
    assert run["model"]["kind"] == "base" and run["n_files"] == 2 and run["provenance"]["git_commit"] is not None


def test_collect_audio_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        collect_audio([tmp_path / "nope.wav"])
    with pytest.raises(ValueError, match="holds no audio"):
        collect_audio([tmp_path])
    with pytest.raises(ValueError, match="Valid names"):
        collect_audio([SAMPLE_DIR / "audio" / "gulf-te01-v1.ogg"], dialect="klingon")


def test_evaluate_base_model_on_a_manifest_with_pooled_scores(tmp_path, capsys):
    frame = pd.read_json(SAMPLE_DIR / "test.jsonl", lines=True, dtype=False)
    subset = pd.concat([frame[frame.dialect == "egyptian"].head(2), frame[frame.dialect == "iraqi"].head(3)])
    subset = subset.assign(audio=[str(SAMPLE_DIR / a) for a in subset.audio])
    manifest = tmp_path / "mine.jsonl"
    subset.to_json(manifest, orient="records", lines=True, force_ascii=False)
    main(["evaluate", "--model-path", "tiny-random", "--data-path", str(manifest), "--test-sets",
          "egyptian,iraqi,gulf", "--output-dir", str(tmp_path / "eval"), "--batch-size", "8"])
    captured = capsys.readouterr()
    result = read_results(Path(captured.out.strip().splitlines()[-1]))
    assert result["config"] is None and result["evaluated_model"]["kind"] == "base"
    assert set(result["metrics"]) == {"egyptian", "iraqi"} and result["data"]["test"]["gulf"]["rows_used"] == 0
    raw = result["metrics_pooled"]["raw"]
    assert raw["n_utterances"] == 5
    assert raw["word_errors"] == sum(result["metrics"][s]["raw"]["word_errors"] for s in ("egyptian", "iraqi"))
    assert raw["wer"] == pytest.approx(100 * raw["word_errors"] / raw["ref_words"])
    assert re.search(r"^  all test sets +5 utts +WER", captured.out, re.M)  # the pooled row of the score table
    assert "test set gulf: no rows" in captured.out


def test_evaluate_keeps_the_training_config_and_scores_through_ct2(adapter, tmp_path, capsys):
    saved = json.loads((adapter / CONFIG_FILE).read_text())
    main(["evaluate", "--model-path", str(adapter), "--source", "sample", "--test-sets", "gulf",
          "--max-test-samples", "3", "--output-dir", str(tmp_path / "hf")])
    main(["evaluate", "--model-path", str(adapter), "--source", "sample", "--test-sets", "gulf",
          "--max-test-samples", "3", "--backend", "ct2", "--compute-type", "float32", "--output-dir", str(tmp_path / "ct2")])
    hf, ct2 = read_results(tmp_path / "hf"), read_results(tmp_path / "ct2")
    assert json.loads((adapter / CONFIG_FILE).read_text()) == saved
    for r in (hf, ct2):
        assert r["config"] == saved and r["evaluation"]["test_sets"] == ["gulf"] and r["config"]["dialect"] == "egyptian"
    assert hf["evaluated_model"]["backend"] == "hf" and ct2["evaluated_model"]["backend"] == "ct2"
    assert ct2["evaluated_model"]["compute_type"] == "float32"
    assert ct2["metrics"]["gulf"]["raw"] == hf["metrics"]["gulf"]["raw"]  # same window (8 s) and weights at fp32
    rows = pd.read_csv(tmp_path / "ct2" / "utterances.csv", keep_default_na=False)
    assert len(rows) == 3 * len(SCHEMES) and set(rows.columns) == set(pd.read_csv(tmp_path / "hf" / "utterances.csv").columns)


def test_model_card_fields(adapter):
    results = {"synthetic": True, "data": {"n_train": 48, "n_validation": 12, "n_test": {"egyptian": 6},
                                           "train_pool": {"hub_ids": None}, "test": {"egyptian": {"hub_id": None}}},
               "metrics": {"egyptian": {"raw": {"wer": 91.5, "cer": 60.25, "n_utterances": 6}}},
               "provenance": {"git_commit": "abc123"}}
    text = export.model_card_text(adapter, results)
    head = text.split("---")[1]
    for field in ("language: ar", "library_name: peft", "base_model: tiny-random", "pipeline_tag: automatic-speech-recognition",
                  "synthetic-data"):
        assert field in head, field
    assert "synthetic sample set" in text and "train 48, validation 12" in text and "`abc123`" in text
    assert "| egyptian | raw | 91.50 | 60.25 | 6 |" in text
    assert "PeftModel.from_pretrained" in text and "--backend ct2" not in text


def test_upload_offline_says_it_needs_the_network(adapter, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    export.write_model_card(adapter)
    assert export.check_upload_folder(adapter) == "adapter"
    with pytest.raises(ConnectionError, match="needs the network"):
        export.upload(adapter, "someone/arabic-lora")
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="adapter_model.safetensors, README.md"):
        export.upload(tmp_path, "someone/arabic-lora")


def test_sample_clips_of_a_dialect_and_a_long_file_made_of_them(tmp_path):
    from arabicpeft import audio, transcribe

    clips = transcribe.sample_clips("gulf")
    manifest = pd.read_json(SAMPLE_DIR / "test.jsonl", lines=True)
    assert [Path(c["path"]).name for c in clips] == [Path(a).name for a in manifest.loc[manifest["dialect"] == "gulf", "audio"]]
    assert all(c["dialect"] == "gulf" and c["reference"] for c in clips)
    with pytest.raises(ValueError, match="no test clip of 'all'"):
        transcribe.sample_clips("all")
    two = clips[:2]
    path = transcribe.concatenate_clips(two, tmp_path / "sub" / "long.wav", repeat=3)
    pieces = [audio.load_audio(c["path"]) for c in two]
    written, rate = sf.read(path, dtype="float32")
    assert rate == audio.SAMPLE_RATE and len(written) == 3 * sum(len(p) for p in pieces)
    np.testing.assert_allclose(written[len(pieces[0]):len(pieces[0]) + 100], pieces[1][:100], atol=1e-4)


def test_transcripts_frame_and_disk_sizes(adapter, merged, tmp_path):
    from arabicpeft.transcribe import Transcript, transcripts_frame

    frame = transcripts_frame([Transcript("/a/b/x.wav", "نص", 2.5, reference="نص آخر")])
    assert frame.to_dict("records") == [{"file": "x.wav", "seconds": 2.5, "reference": "نص آخر", "transcript": "نص"}]
    assert list(transcripts_frame([]).columns) == ["file", "seconds", "reference", "transcript"]
    assert export.standalone(merged, tmp_path / "not-written", kind="full") == Path(merged)
    assert not (tmp_path / "not-written").exists()
    out = export.standalone(adapter, tmp_path / "merged", kind="adapter")
    assert (out / "config.json").is_file() and json.loads((out / export.EXPORT_FILE).read_text())["kind"] == "merged"
    sizes = export.disk_sizes([adapter, out, adapter])
    expected = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    assert sizes["directory"].tolist() == [str(adapter), str(out)]
    assert sizes["MiB on disk"].iloc[1] == round(expected, 1) > 0
