"""Transcribe audio files of any length with a trained model, as JSONL and SRT/VTT subtitles.

Two backends give the same records: ``hf`` (transformers; clips longer than the encoder window go through
Whisper's own long-form decoding, ``generate`` with timestamps, window after window) and ``ct2`` (a
CTranslate2 export through ``faster_whisper.WhisperModel.transcribe``, which also walks the whole file).
Language Arabic and task transcribe are forced; decoding is greedy unless ``beam_size`` says otherwise. A clip
no longer than the window is decoded in one piece without timestamps, exactly as training and evaluation
decode, and gets one segment spanning the clip.

Public: :data:`SUBTITLE_FORMATS`, :data:`TRANSCRIPTS_FILE`, :class:`Transcript`, :func:`collect_audio`,
:func:`sample_clips`, :func:`concatenate_clips`, :func:`transcribe_files`, :func:`transcripts_frame`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import numpy as np
import torch

from . import audio as audio_lib
from . import dialects
from .config import SUBTITLE_FORMATS
from .sources import MANIFEST_EXTENSIONS, SAMPLE_DIR, read_manifest
from .export import ct2_max_length
from .model import LANGUAGE, MAX_NEW_TOKENS, TASK, LoadedModel
from .offline_model import N_FRAMES

if TYPE_CHECKING:  # pandas is imported where a table is made
    import pandas as pd

_BACKENDS = ("hf", "ct2")
TRANSCRIPTS_FILE = "transcripts.jsonl"  # what transcribe_files(out_dir=...) writes: one transcript per line
_TRANSCRIBE_RUN_FILE = "transcribe.json"


@dataclass
class Transcript:
    """One file's transcript. Times in seconds from the start of the file; ``segments``: dicts with
    ``start``, ``end`` and ``text``; ``reference``: the manifest's text, when it gave one. In a notebook it shows
    as its duration, its number of segments and its SRT subtitles."""

    path: str
    text: str
    duration: float
    segments: list = field(default_factory=list)
    dialect: Optional[str] = None
    reference: Optional[str] = None

    def subtitles(self, fmt: str = "srt") -> str:
        """The segments as subtitles: ``srt`` (SubRip: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm``) or ``vtt``
        (WebVTT: a ``WEBVTT`` header, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm``); segments without text are left
        out. Raises ValueError for another format."""
        if fmt not in SUBTITLE_FORMATS:
            raise ValueError(f"Unknown subtitle format {fmt!r}; choose from {', '.join(SUBTITLE_FORMATS)}.")
        return (_to_srt if fmt == "srt" else _to_vtt)(self.segments)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython's display of a cell's last expression
        printer.text(f"{Path(self.path).name}: {self.duration:.1f} s of audio, {len(self.segments)} segment(s)\n\n"
                     + self.subtitles("srt"))


# --- inputs ----------------------------------------------------------------------------------------


def _manifest_items(path: Path) -> list[dict]:
    frame = read_manifest(path)
    if "audio" not in frame:
        raise ValueError(f"The manifest {path} has no 'audio' column (paths relative to the manifest's folder).")
    items = []
    for row in frame.to_dict("records"):
        text = row.get("text")
        items.append({"path": str((path.parent / str(row["audio"])).resolve()),
                      "dialect": row.get("dialect") if isinstance(row.get("dialect"), str) else None,
                      "reference": text if isinstance(text, str) else None})
    return items


def collect_audio(inputs: Iterable, dialect: Optional[str] = None) -> list[dict]:
    """The files to transcribe: each input is an audio file, a folder (searched recursively for
    :data:`arabicpeft.audio.AUDIO_EXTENSIONS`) or a manifest (``.jsonl``/``.csv`` with an ``audio`` column and
    optional ``dialect`` and ``text``). ``dialect`` applies to every file without a manifest dialect.

    Returns dicts with ``path``, ``dialect`` and ``reference``. Raises FileNotFoundError for a missing input or a
    manifest entry that does not exist, ValueError when nothing is found or a dialect is unknown,
    :class:`arabicpeft.audio.AudioError` naming every file that cannot be read as audio or is too short (e.g.
    empty), checked from the file headers before any model loads.
    """
    items = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"Audio input not found: {path}.")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in audio_lib.AUDIO_EXTENSIONS)
            if not found:
                raise ValueError(f"{path} holds no audio files ({', '.join(audio_lib.AUDIO_EXTENSIONS)}).")
            items += [{"path": str(p.resolve()), "dialect": None, "reference": None} for p in found]
        elif path.suffix.lower() in MANIFEST_EXTENSIONS:
            items += _manifest_items(path)
        else:
            items.append({"path": str(path.resolve()), "dialect": None, "reference": None})
    if not items:
        raise ValueError("No audio to transcribe: give files, folders or a manifest.")
    missing = [i["path"] for i in items if not os.path.exists(i["path"])]
    if missing:
        raise FileNotFoundError(f"{len(missing)} listed audio file(s) do not exist, e.g. {missing[0]}.")
    unusable = []
    for item in items:
        try:
            audio_lib.file_seconds(item["path"])
        except audio_lib.AudioError as e:
            unusable.append(str(e))
    if unusable:
        raise audio_lib.AudioError(f"{len(unusable)} of {len(items)} audio file(s) cannot be transcribed: "
                                   + "; ".join(unusable) + ". Leave them out of the inputs (or re-encode them as "
                                   "WAV, FLAC or OGG) and run again.")
    for item in items:
        item["dialect"] = dialects.get(item["dialect"] or dialect).name if (item["dialect"] or dialect) else None
    return items


def sample_clips(dialect: str) -> list[dict]:
    """The embedded synthetic sample set's test clips of ``dialect`` (:func:`collect_audio` items of its
    ``test.jsonl``, in manifest order). Raises ValueError when the sample set holds no test clip of it."""
    name = dialects.get(dialect).name
    every = collect_audio([SAMPLE_DIR / "test.jsonl"])
    items = [item for item in every if item["dialect"] == name]
    if not items:
        held = sorted({item["dialect"] for item in every})
        raise ValueError(f"The sample set has no test clip of {name!r}; it holds {', '.join(held)}.")
    return items


def concatenate_clips(items: Sequence[dict], path, repeat: int = 1) -> Path:
    """Write the audio of ``items`` (:func:`collect_audio` items) one after another, the whole sequence
    ``repeat`` times, as one WAV file at :data:`arabicpeft.audio.SAMPLE_RATE` (a long file made of short
    clips, e.g. to try long-form decoding). Returns ``path``."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pieces = [audio_lib.load_audio(item["path"]) for item in items]
    sf.write(path, np.concatenate(pieces * repeat), audio_lib.SAMPLE_RATE)
    return path


# --- decoding --------------------------------------------------------------------------------------


def _text_of(tokenizer, ids, timestamp_begin: int) -> str:
    return tokenizer.decode([int(t) for t in ids if int(t) < timestamp_begin], skip_special_tokens=True).strip()


def _hf_batch(loaded: LoadedModel, clips: list[np.ndarray], beam_size: int, max_new_tokens: int) -> list[list[dict]]:
    """Segments for each clip of one batch; long clips (> window) take Whisper's long-form path."""
    model, processor = loaded.model, loaded.processor
    extractor, tokenizer = processor.feature_extractor, processor.tokenizer
    long_form = max(len(c) for c in clips) > extractor.n_samples
    if long_form:  # the whole clip, never truncated; the mask tells generate where each clip ends
        inputs = extractor(clips, sampling_rate=audio_lib.SAMPLE_RATE, return_tensors="pt", truncation=False,
                           padding="longest", return_attention_mask=True)
    else:
        inputs = extractor(clips, sampling_rate=audio_lib.SAMPLE_RATE, return_tensors="pt")
    parameter = next(p for p in model.parameters() if p.is_floating_point())
    kwargs = dict(input_features=inputs.input_features.to(parameter.device, parameter.dtype), language=LANGUAGE,
                  task=TASK, num_beams=beam_size, do_sample=False, max_new_tokens=max_new_tokens)
    ts_begin = model.generation_config.no_timestamps_token_id + 1
    with torch.no_grad():
        if not long_form:
            ids = model.generate(**kwargs)
            return [[{"start": 0.0, "end": len(c) / audio_lib.SAMPLE_RATE, "text": _text_of(tokenizer, row, ts_begin)}]
                    for c, row in zip(clips, ids)]
        out = model.generate(**kwargs, attention_mask=inputs.attention_mask.to(parameter.device),
                             return_timestamps=True, return_segments=True)
    result = []
    for clip, segments in zip(clips, out["segments"]):
        duration = len(clip) / audio_lib.SAMPLE_RATE
        result.append([{"start": round(float(s["start"]), 3), "end": round(min(float(s["end"]), duration), 3),
                        "text": _text_of(tokenizer, s["tokens"], ts_begin)} for s in segments])
    return result


def _ct2_clip(whisper, clip: np.ndarray, beam_size: int, max_new_tokens: int) -> list[dict]:
    window = whisper.feature_extractor.chunk_length
    if whisper.feature_extractor.nb_max_frames != N_FRAMES:  # faster-whisper pads every window to 30 s
        raise ValueError(f"This CTranslate2 model has a {window} s encoder window; faster-whisper's transcribe "
                         "only handles 30 s windows. Use --backend hf, or export a model with the standard window.")
    duration = len(clip) / audio_lib.SAMPLE_RATE
    # faster-whisper asks CTranslate2 for max_length = prompt + max_new_tokens, of which CTranslate2 generates
    # half (export.ct2_max_length): ask for what yields max_new_tokens transcript tokens.
    prompt = 4 if duration <= window else 3  # <|notimestamps|> only without timestamps
    segments, _ = whisper.transcribe(
        clip, language=LANGUAGE, task=TASK, beam_size=beam_size, temperature=0.0, vad_filter=False,
        condition_on_previous_text=False, without_timestamps=duration <= window,
        max_new_tokens=ct2_max_length(max_new_tokens) - prompt,
        no_speech_threshold=None,  # never drop a window as "silence": every window is transcribed
    )
    out = [{"start": round(s.start, 3), "end": round(min(s.end, duration), 3), "text": s.text.strip()}
           for s in segments]
    if duration <= window and len(out) == 1:
        out[0].update(start=0.0, end=round(duration, 3))
    return out


def transcribe_files(model, items: Sequence[dict], backend: str = "hf", batch_size: int = 8, beam_size: int = 1,
                     max_new_tokens: int = MAX_NEW_TOKENS, progress: bool = True, out_dir=None,
                     subtitles: Sequence[str] = (), run_info: Optional[dict] = None) -> list[Transcript]:
    """Transcribe every item of :func:`collect_audio` (in order).

    ``model``: a :class:`arabicpeft.model.LoadedModel` for ``backend="hf"`` (an adapter bank switches to each
    file's dialect adapter), a ``faster_whisper.WhisperModel`` for ``backend="ct2"``. ``max_new_tokens`` bounds
    each window's transcript (224: Whisper's own default). With ``out_dir``, also writes there
    :data:`TRANSCRIPTS_FILE` (one transcript per line, with its subtitle files' names), the ``subtitles`` asked
    for (``srt``/``vtt``, one file per audio file, named after it) and ``transcribe.json`` (what produced them:
    ``run_info`` plus provenance). Raises AudioError for undecodable or empty audio, ValueError for an unknown
    backend or subtitle format (before any decoding).
    """
    from tqdm.auto import tqdm

    if backend not in _BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(_BACKENDS)}.")
    unknown = set(subtitles) - set(SUBTITLE_FORMATS)
    if unknown:
        raise ValueError(f"Unknown subtitle format(s) {sorted(unknown)}; choose from {', '.join(SUBTITLE_FORMATS)}.")
    if backend == "hf" and model.kind == "bank":
        lacking = [i["path"] for i in items if not i.get("dialect")]
        if lacking:
            raise ValueError(f"An adapter bank needs each file's dialect ({len(lacking)} without, e.g. {lacking[0]}): "
                             "give --dialect or a manifest with a 'dialect' column.")
    results: list[Optional[Transcript]] = [None] * len(items)
    clips = {}
    for i, item in enumerate(items):
        clip = audio_lib.load_audio(item["path"])
        audio_lib.check_duration(clip, max_seconds=float("inf"))
        clips[i] = clip
    bar = tqdm(total=len(items), desc="transcribing", unit="file", disable=not progress)
    if backend == "ct2":
        for i in range(len(items)):
            results[i] = _transcript(items[i], clips[i], _ct2_clip(model, clips[i], beam_size, max_new_tokens))
            bar.update()
    else:
        window = model.processor.feature_extractor.n_samples
        groups: dict = {}
        for i, item in enumerate(items):  # one adapter and one decoding mode per batch
            groups.setdefault((item.get("dialect") if model.kind == "bank" else None, len(clips[i]) > window), []).append(i)
        for (dialect, _), indices in groups.items():
            if dialect:
                model.use_dialect(dialect)
            for start in range(0, len(indices), batch_size):
                batch = indices[start:start + batch_size]
                for i, segments in zip(batch, _hf_batch(model, [clips[i] for i in batch], beam_size, max_new_tokens)):
                    results[i] = _transcript(items[i], clips[i], segments)
                bar.update(len(batch))
    bar.close()
    if out_dir is not None:
        _write_transcripts(results, out_dir, subtitles, run_info)
    return results


def _transcript(item: dict, clip: np.ndarray, segments: list[dict]) -> Transcript:
    text = " ".join(s["text"] for s in segments if s["text"]).strip()
    return Transcript(item["path"], text, round(len(clip) / audio_lib.SAMPLE_RATE, 3), segments,
                      item.get("dialect"), item.get("reference"))


def transcripts_frame(transcripts: Sequence[Transcript]) -> "pd.DataFrame":
    """One row per :class:`Transcript`: file (name), seconds (duration), reference and transcript."""
    import pandas as pd

    return pd.DataFrame([{"file": Path(t.path).name, "seconds": t.duration, "reference": t.reference,
                          "transcript": t.text} for t in transcripts], columns=["file", "seconds", "reference", "transcript"])


# --- subtitles and files ---------------------------------------------------------------------------


def _timestamp(seconds: float, separator: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _to_srt(segments: Sequence[dict]) -> str:
    cues = [s for s in segments if s["text"].strip()]
    return "".join(f"{n}\n{_timestamp(s['start'], ',')} --> {_timestamp(s['end'], ',')}\n{s['text'].strip()}\n\n"
                   for n, s in enumerate(cues, start=1))


def _to_vtt(segments: Sequence[dict]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_timestamp(s['start'], '.')} --> {_timestamp(s['end'], '.')}\n{s['text'].strip()}\n\n"
                                  for s in segments if s["text"].strip())


def _write_transcripts(transcripts: Sequence[Transcript], out_dir, subtitles: Sequence[str] = (),
                       run_info: Optional[dict] = None) -> Path:
    """Write :data:`TRANSCRIPTS_FILE` (one :class:`Transcript` per line, plus its subtitle files' names), the
    subtitle files asked for (named after each audio file) and ``transcribe.json`` (what produced them:
    ``run_info`` plus provenance). Returns the JSONL path."""
    from .results import provenance
    from .run_dir import write_json_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    lines = []
    for t in transcripts:
        row = asdict(t)
        stem = Path(t.path).stem
        name = stem if stem not in used else f"{stem}-{len(used)}"  # two files of one name in two folders
        used.add(name)
        for fmt in subtitles:
            (out_dir / f"{name}.{fmt}").write_text(t.subtitles(fmt), encoding="utf-8")
            row[fmt] = f"{name}.{fmt}"
        lines.append(json.dumps(row, ensure_ascii=False))
    path = out_dir / TRANSCRIPTS_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json_atomic(out_dir / _TRANSCRIBE_RUN_FILE, {**(run_info or {}), "n_files": len(transcripts),
                                                      "audio_seconds": sum(t.duration for t in transcripts),
                                                      "provenance": provenance()})
    return path
