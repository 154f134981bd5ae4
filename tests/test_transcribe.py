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
from arabicpeft.transcribe import Transcript, collect_audio, transcribe_files


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
