"""Transcribing files: any model reference (an adapter bank decodes each file with its dialect), audio of any
length, subtitles, the transcribe command's outputs; whisper-base where a pretrained model's timestamps are
needed."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import GEN, _adapter

from arabicpeft import export
from arabicpeft.cli import main
from arabicpeft.sources import SAMPLE_DIR
from arabicpeft.model import load_model
from arabicpeft import audio as audio_lib
from arabicpeft.transcribe import (Transcript, _subtitle_names, _write_transcripts, collect_audio, sample_clips,
                                   transcribe_files)


def refuse_transformers_suppression(monkeypatch):
    """Make transformers' two suppression processors fail if called: every decoding path must use the
    precomputed :class:`arabicpeft.backbones.SuppressTokens` (they rebuild their masks at every step)."""
    from transformers.generation import logits_process

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} was called: decode with the backbone's decoding_options")

    for cls in (logits_process.SuppressTokensLogitsProcessor, logits_process.SuppressTokensAtBeginLogitsProcessor):
        monkeypatch.setattr(cls, "__call__", refuse)


def test_adapter_bank_decodes_each_file_with_its_dialect(tmp_path, monkeypatch):
    refuse_transformers_suppression(monkeypatch)
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


def _speech_pause_speech(path: Path) -> tuple[float, float]:
    """One gulf clip, 20 s of digital silence, then about 12 s of speech (gulf clips back to back): the file of
    whisper.cpp#1724. Returns (end of the first speech, start of the second) in seconds."""
    clips = [audio_lib.load_audio(c["path"]) for c in sample_clips("gulf")]
    first, rest, pause = clips[0], [], np.zeros(20 * audio_lib.SAMPLE_RATE, np.float32)
    for clip in clips[1:]:
        rest.append(clip)
        if sum(map(len, rest)) >= 12 * audio_lib.SAMPLE_RATE:
            break
    sf.write(path, np.concatenate([first, pause, *rest]), audio_lib.SAMPLE_RATE)
    return len(first) / audio_lib.SAMPLE_RATE, (len(first) + len(pause)) / audio_lib.SAMPLE_RATE


@pytest.mark.parametrize("backend", ["hf", "ct2"])
def test_long_audio_silence_and_speech_after_a_pause(tmp_path, backend):
    """whisper-base, files longer than the 30 s window: 40 s of speech is transcribed to its end in segments of at
    most one window; 45 s of digital silence gives no segment (before: two looping hallucinated cues over 0-45 s);
    the 12 s of speech after a 20 s pause is transcribed (before: lost in both backends)."""
    seconds = _long_clip(tmp_path / "long.wav", 40)
    sf.write(tmp_path / "silence.wav", np.zeros(45 * audio_lib.SAMPLE_RATE, np.float32), audio_lib.SAMPLE_RATE)
    speech_end, speech_again = _speech_pause_speech(tmp_path / "pause.wav")
    if backend == "hf":
        model = load_model("whisper-base")
    else:
        model = export.load_ct2("whisper-base", compute_type="int8")[0]
    files = collect_audio([tmp_path / "long.wav", tmp_path / "silence.wav", tmp_path / "pause.wav"])
    t, silence, pause = transcribe_files(model, files, backend=backend, progress=False)
    assert t.duration == pytest.approx(seconds, abs=0.01) and t.duration > 30
    assert len(t.segments) >= 2 and t.segments[-1]["end"] > 30 and t.segments[-1]["end"] <= t.duration
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(t.segments, t.segments[1:]))
    assert all(s["end"] - s["start"] <= 30 for s in t.segments) and len(t.text.split()) > 10
    assert silence.duration == 45.0 and silence.segments == [] and silence.text == ""
    first, second = pause.segments  # the speech either side of the pause, each a region of its own
    assert first["start"] < 0.5 and first["end"] < speech_end + 0.5 and first["text"]
    assert speech_again - 0.5 <= second["start"] < speech_again + 1 and second["end"] > pause.duration - 1
    assert len(second["text"].split()) >= 3 and second["text"] != first["text"]  # whisper-base on synthetic speech


def test_a_looping_decode_is_cut_and_counted(tmp_path, capsys):
    """tiny-random loops on everything: each segment (the two speech regions of speech-pause-speech, each
    decoded alone, and a short clip decoded whole) stops at its token limit, is marked, and the command counts
    them."""
    _speech_pause_speech(tmp_path / "pause.wav")
    clip = sample_clips("gulf")[0]["path"]
    main(["transcribe", str(tmp_path / "pause.wav"), clip, "--model-path", "tiny-random", "--output-dir",
          str(tmp_path / "out")])
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "out" / "transcripts.jsonl").read_text().splitlines()]
    regions = len(rows[0]["segments"])  # tiny-random's window is 8 s: the 12 s of speech take two
    assert regions >= 2 and len(rows[1]["segments"]) == 1 and all(s["end"] - s["start"] <= 8 for s in rows[0]["segments"])
    assert all(s["at_limit"] for r in rows for s in r["segments"])
    assert json.loads((tmp_path / "out" / "transcribe.json").read_text())["segments_at_limit"] == regions + 1
    assert (f"note: {regions + 1} segment(s) of 2 file(s) reached their token limit and were cut there (a looping "
            f"decode, or more speech than --max-new-tokens allows): {tmp_path / 'pause.wav'} ({regions}), "
            f"{clip} (1).") in out


def _cut_window_adapter(directory: Path, seconds: int) -> Path:
    """A tiny-random LoRA adapter (random non-zero B) trained, as a run with ``encoder_seconds`` saves it, at a
    ``seconds`` window (tiny-random's own is 8 s)."""
    import torch

    from arabicpeft import methods
    from arabicpeft.config import ExperimentConfig
    from arabicpeft.backbones import BACKBONES
    from arabicpeft.model import _load_base, save_trained

    cfg = ExperimentConfig(dialect="gulf", model="tiny-random", source="sample", lora_targets="qkvo",
                           encoder_seconds=seconds)  # the model's limit: each decode runs to its audio's limit
    model, processor = _load_base(cfg)
    model = methods.add_adapter(model, cfg, BACKBONES["whisper"].target_modules(cfg))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return save_trained(model, processor, cfg, directory)


def test_transcribe_decodes_as_evaluate_at_the_trained_window(tmp_path, capsys):
    """An adapter trained at a 6 s window: transcribe gives exactly evaluate's hypotheses (before: transcribe put
    it on the 30 s window and differed on 6 of 6 real clips), each cut at the same limit of its audio's duration
    (tiny-random loops); --window full decodes at its base's 8 s instead. Neither command lets a transformers
    warning through."""
    import logging

    adapter = _cut_window_adapter(tmp_path / "adapter", 6)
    records = logging.getLogger("transformers")
    seen: list = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = seen.append
    records.addHandler(handler)
    try:
        main(["evaluate", "--model-path", str(adapter), "--source", "sample", "--test-sets", "gulf",
              "--max-test-samples", "3", "--output-dir", str(tmp_path / "eval")])
        rows = pd.read_csv(tmp_path / "eval" / "utterances.csv", keep_default_na=False)
        raw = rows[rows.scheme == "raw"]
        manifest = pd.read_json(SAMPLE_DIR / "test.jsonl", lines=True).set_index("id")
        audio = [str(SAMPLE_DIR / manifest.loc[i, "audio"]) for i in raw.utt_id]
        runs = {}
        for window in ("trained", "full"):
            out = tmp_path / window
            main(["transcribe", *audio, "--model-path", str(adapter), "--max-new-tokens", "444", "--window", window,
                  "--output-dir", str(out)])
            runs[window] = ([json.loads(line)["text"] for line in (out / "transcripts.jsonl").read_text().splitlines()],
                            json.loads((out / "transcribe.json").read_text())["model"]["window_seconds"])
    finally:
        records.removeHandler(handler)
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["evaluated_model"]["window_seconds"] == 6
    assert runs["trained"] == ([h.strip() for h in raw.hypothesis], 6)
    assert runs["full"][1] == 8 and runs["full"][0] != runs["trained"][0]
    assert [r.getMessage() for r in seen] == []
    capsys.readouterr()


def test_subtitle_formats():
    from IPython.lib.pretty import pretty

    segments = [{"start": 0.0, "end": 2.5, "text": " مرحبا "}, {"start": 61.25, "end": 3723.0491, "text": "كيف الحال"},
                {"start": 3800.0, "end": 3801.0, "text": "  "}]
    t = Transcript("/a/long.wav", "مرحبا كيف الحال", 3801.0, segments)
    srt = "1\n00:00:00,000 --> 00:00:02,500\nمرحبا\n\n2\n00:01:01,250 --> 01:02:03,049\nكيف الحال\n\n"
    assert t.subtitles() == t.subtitles("srt") == srt
    assert t.subtitles("vtt") == ("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nمرحبا\n\n"
                                  "00:01:01.250 --> 01:02:03.049\nكيف الحال\n\n")
    assert pretty(t) == "long.wav: 3801.0 s of audio, 3 segment(s)\n\n" + srt  # a notebook's display
    with pytest.raises(ValueError, match="choose from srt, vtt"):
        t.subtitles("ass")
    with pytest.raises(ValueError, match="choose from srt, vtt"):  # before any decoding
        transcribe_files(None, [], subtitles=["ass"])


def test_transcribe_cli_writes_jsonl_and_subtitles(tmp_path, capsys):
    audio = sorted((SAMPLE_DIR / "audio").glob("gulf-te0*.ogg"))[:2]
    main(["transcribe", *map(str, audio), "--model-path", "tiny-random", "--max-new-tokens", "8",
          "--subtitles", "srt,vtt", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out.strip().splitlines()
    path = Path(out[-1])
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert out[0] == "Transcribing 2 file(s) with tiny-random (hf)." and len(out) == 5  # + one line per file
    assert out[3].startswith("note: 2 segment(s) of 2 file(s) reached their token limit")  # 8 tokens: cut
    assert [r["path"] for r in rows] == [str(a.resolve()) for a in audio]
    for r in rows:
        assert r["segments"] == [{"start": 0.0, "end": r["duration"], "text": r["text"], "at_limit": True}]
        assert 1 < r["duration"] < 8
        assert (tmp_path / r["srt"]).read_text(encoding="utf-8").startswith("1\n00:00:00,000 --> ")
        assert (tmp_path / r["vtt"]).read_text(encoding="utf-8").startswith("WEBVTT\n\n00:00:00.000 --> ")
    run = json.loads((tmp_path / "transcribe.json").read_text())
    assert run["model"]["kind"] == "base" and run["n_files"] == 2 and run["provenance"]["git_commit"] is not None


def test_subtitle_names_never_collide(tmp_path):
    """x/a-2.wav, x/a.wav and y/a.wav in one call (before: y/a.wav was renamed a-2 and written over x/a-2's
    subtitles); names that differ only in case are told apart too (case-insensitive file systems)."""
    paths = ["x/a-2.wav", "x/a.wav", "y/a.wav"]
    assert _subtitle_names(paths) == ["a-2", "a", "a-3"]
    assert _subtitle_names(["y/a.wav", "x/a.wav", "x/a-2.wav"]) == ["a", "a-3", "a-2"]
    assert _subtitle_names(["A.wav", "b/a.wav", "a-2.WAV"]) == ["A", "a-3", "a-2"]
    transcripts = [Transcript(p, f"نص {i}", 1.0, [{"start": 0.0, "end": 1.0, "text": f"نص {i}"}])
                   for i, p in enumerate(paths)]
    rows = [json.loads(line) for line in _write_transcripts(transcripts, tmp_path, ["srt"]).read_text().splitlines()]
    assert [r["srt"] for r in rows] == ["a-2.srt", "a.srt", "a-3.srt"]
    assert [(tmp_path / r["srt"]).read_text(encoding="utf-8").splitlines()[2] for r in rows] == ["نص 0", "نص 1", "نص 2"]


def test_files_left_out_of_a_folder_are_named_and_counted(tmp_path, capsys):
    """A folder with a WAV, an .m4a libsndfile cannot decode and a text file: one file is transcribed, the two
    others are named and counted (before: "Transcribing 1 file(s)" and nothing else)."""
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros(16000, np.float32) + 0.1, 16000)
    (folder / "b.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
    (folder / "notes.txt").write_text("not audio")
    left_out: list = []
    items = collect_audio([folder], left_out=left_out)
    others = [str(folder / "b.m4a"), str(folder / "notes.txt")]
    assert [i["path"] for i in items] == [str(folder / "a.wav")] and left_out == others
    main(["transcribe", str(folder), "--model-path", "tiny-random", "--max-new-tokens", "4", "--output-dir",
          str(tmp_path / "out")])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Transcribing 1 file(s) with tiny-random (hf)."
    assert out[1].startswith("note: left out 2 file(s) of the folder(s) given, not in a format libsndfile decodes (")
    assert out[1].endswith(f"): {others[0]}, {others[1]}. Re-encode them (e.g. as WAV) to transcribe them.")
    assert json.loads((tmp_path / "out" / "transcribe.json").read_text())["left_out"] == others
    (folder / "a.wav").unlink()
    with pytest.raises(ValueError, match=r"holds no audio files .*; it holds 2 other file\(s\), e.g. .*b.m4a. Re-encode"):
        collect_audio([folder])


def test_a_dialect_in_a_manifest_is_any_variety_name_and_a_bad_one_names_the_manifest_and_row(tmp_path):
    clip = str(SAMPLE_DIR / "audio" / "gulf-te01-v1.ogg")
    manifest = tmp_path / "files.jsonl"
    rows = [{"audio": clip, "dialect": "gulf"}, {"audio": clip}, {"audio": clip, "dialect": "Najdi"}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    assert [item["dialect"] for item in collect_audio([manifest], dialect="sudanese")] == ["gulf", "sudanese", "najdi"]
    manifest.write_text("\n".join(json.dumps(r) for r in [*rows[:2], {"audio": clip, "dialect": "Najdi!"}]))
    with pytest.raises(ValueError, match=rf"The manifest {manifest} has values in its 'dialect' column that are no "
                                         r"variety names: 'Najdi!' \(first at row 3\). Use lower-case letters"):
        collect_audio([manifest])


def test_collect_audio_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        collect_audio([tmp_path / "nope.wav"])
    with pytest.raises(ValueError, match="holds no audio"):
        collect_audio([tmp_path])
    with pytest.raises(ValueError, match="'Klingon!' is not a variety name"):
        collect_audio([SAMPLE_DIR / "audio" / "gulf-te01-v1.ogg"], dialect="Klingon!")


def test_collect_audio_names_every_empty_or_undecodable_file_before_a_model_loads(tmp_path):
    from arabicpeft.audio import AudioError

    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    (tmp_path / "text.wav").write_text("not audio")
    good = SAMPLE_DIR / "audio" / "gulf-te01-v1.ogg"
    with pytest.raises(AudioError) as caught:
        collect_audio([good, tmp_path / "empty.wav", tmp_path / "text.wav"])
    message = str(caught.value)
    assert message.startswith("2 of 3 audio file(s) cannot be transcribed: ")
    assert f"{tmp_path / 'empty.wav'} is 0.000 s long (0 samples)" in message
    assert f"{tmp_path / 'text.wav'} cannot be read as audio" in message and "gulf-te01" not in message
    assert message.endswith("Leave them out of the inputs (or re-encode them as WAV, FLAC or OGG) and run again.")


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
