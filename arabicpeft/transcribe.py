"""Transcribe audio files of any length with a trained model, as JSONL and SRT/VTT subtitles.

Two backends give the same records: ``hf`` (transformers, at the encoder window the model was loaded with) and
``ct2`` (a CTranslate2 export through ``faster_whisper.WhisperModel.transcribe``, 30 s window). Both decode as
evaluation does (:mod:`arabicpeft.evaluate`: language Arabic and task transcribe forced, no timestamps, greedy
unless ``beam_size`` says otherwise, each transcript bounded by its audio's duration). A clip no longer than the
window is decoded in one piece and gets one segment spanning the clip; a longer one is cut into its speech regions
by voice-activity detection (Silero VAD from faster-whisper, as faster-whisper's batched pipeline does), each
decoded in one piece and given one segment.

Public: :data:`SUBTITLE_FORMATS`, :data:`TRANSCRIPTS_FILE`, :class:`Transcript`, :func:`collect_audio`,
:func:`sample_clips`, :func:`concatenate_clips`, :func:`speech_regions`, :func:`transcribe_files`,
:func:`transcripts_frame`.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import numpy as np

from . import audio as audio_lib
from . import dialects
from .config import SUBTITLE_FORMATS
from . import backbones
from .evaluate import decode_limits, generate_limited
from .sources import MANIFEST_EXTENSIONS, SAMPLE_DIR, dialect_names, read_manifest
from .export import ct2_max_length
from .model import MAX_NEW_TOKENS, LoadedModel
from .offline_model import MAX_TARGET_POSITIONS, N_FRAMES
from .routing import BASE_ADAPTER

if TYPE_CHECKING:  # pandas is imported where a table is made
    import pandas as pd

_BACKENDS = ("hf", "ct2")
TRANSCRIPTS_FILE = "transcripts.jsonl"  # what transcribe_files(out_dir=...) writes: one transcript per line
_TRANSCRIBE_RUN_FILE = "transcribe.json"


@dataclass
class Transcript:
    """One file's transcript. Times in seconds from the start of the file; ``segments``: dicts with
    ``start``, ``end``, ``text`` and ``at_limit`` (its decode reached its token limit and was cut there: a
    looping decode); no segment when the file holds no speech; ``reference``: the manifest's text, when it gave
    one. In a notebook it shows as its duration, its number of segments and its SRT subtitles."""

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

    @property
    def segments_at_limit(self) -> int:
        """How many segments reached their token limit (cut there)."""
        return sum(bool(s.get("at_limit")) for s in self.segments)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython's display of a cell's last expression
        cut = f" ({self.segments_at_limit} cut at their token limit)" if self.segments_at_limit else ""
        printer.text(f"{Path(self.path).name}: {self.duration:.1f} s of audio, {len(self.segments)} segment(s){cut}"
                     "\n\n" + self.subtitles("srt"))


# --- inputs ----------------------------------------------------------------------------------------


def _manifest_items(path: Path) -> list[dict]:
    frame = read_manifest(path)
    if "audio" not in frame:
        raise ValueError(f"The manifest {path} has no 'audio' column (paths relative to the manifest's folder).")
    rows = frame.to_dict("records")
    for row in rows:  # an empty cell: --dialect applies
        row["dialect"] = (row["dialect"].strip() or None) if isinstance(row.get("dialect"), str) else None
    dialect_names([row["dialect"] for row in rows], f"The manifest {path}", allow_empty=True)  # all known
    return [{"path": str((path.parent / str(row["audio"])).resolve()), "dialect": row["dialect"],
             "reference": row.get("text") if isinstance(row.get("text"), str) else None} for row in rows]


def collect_audio(inputs: Iterable, dialect: Optional[str] = None, left_out: Optional[list] = None) -> list[dict]:
    """The files to transcribe: each input is an audio file, a folder (searched recursively for
    :data:`arabicpeft.audio.AUDIO_EXTENSIONS`) or a manifest (``.jsonl``/``.csv`` with an ``audio`` column and
    optional ``dialect`` and ``text``). ``dialect`` applies to every file without a manifest dialect.
    ``left_out``: a list that receives the path of every other file in those folders (e.g. ``.m4a``, which
    libsndfile cannot decode), sorted, so that the caller can name and count them.

    Returns dicts with ``path``, ``dialect`` and ``reference``. Raises FileNotFoundError for a missing input or a
    manifest entry that does not exist, ValueError when nothing is found or a dialect is unknown (a manifest's
    named with its row), :class:`arabicpeft.audio.AudioError` naming every file that cannot be read as audio or is
    too short (e.g. empty), checked from the file headers before any model loads.
    """
    items = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"Audio input not found: {path}.")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            found = [p for p in files if p.suffix.lower() in audio_lib.AUDIO_EXTENSIONS]
            others = [str(p.resolve()) for p in files if p.suffix.lower() not in audio_lib.AUDIO_EXTENSIONS]
            if not found:
                held = f"; it holds {len(others)} other file(s), e.g. {others[0]}" if others else ""
                raise ValueError(f"{path} holds no audio files ({', '.join(audio_lib.AUDIO_EXTENSIONS)}){held}. "
                                 "Re-encode the audio as WAV, FLAC or OGG.")
            items += [{"path": str(p.resolve()), "dialect": None, "reference": None} for p in found]
            if left_out is not None:
                left_out += others
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
        item["dialect"] = dialects.variety(item["dialect"] or dialect).name if (item["dialect"] or dialect) else None
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


# --- decoding ---------------------------------------------------------------------------------------


# Silero VAD (faster-whisper's, as its BatchedInferencePipeline uses it) finds the speech of a file longer than the
# window: regions of speech with 0.4 s of audio either side, apart where at least 2 s of silence lie between
# (faster-whisper's defaults), and never longer than the window (a longer stretch is split at its last pause).
_VAD_MIN_SILENCE_MS = 2000
_VAD_SPEECH_PAD_MS = 400
_CT2_BUDGET = MAX_TARGET_POSITIONS - 4  # CTranslate2's decoder positions less the 4-token prompt


def speech_regions(clip: np.ndarray, window_seconds: float) -> list[tuple[int, int]]:
    """The speech of 16 kHz mono ``clip`` as (start, end) sample indices, in order, each at most
    ``window_seconds`` long: Silero voice-activity detection (``faster_whisper.vad``, offline; threshold 0.5, a
    region ends after 2 s of silence, 0.4 s of audio kept either side). [] when the clip holds no speech."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(max_speech_duration_s=window_seconds, min_silence_duration_ms=_VAD_MIN_SILENCE_MS,
                         speech_pad_ms=_VAD_SPEECH_PAD_MS)
    return [(int(c["start"]), int(c["end"])) for c in get_speech_timestamps(clip, options, audio_lib.SAMPLE_RATE)]


def _pieces(clip: np.ndarray, window_seconds: float) -> list[tuple[int, int]]:
    """What is decoded of a clip: the whole clip when it fits the window (as training and evaluation decode),
    else its :func:`speech_regions`."""
    if len(clip) <= window_seconds * audio_lib.SAMPLE_RATE:
        return [(0, len(clip))]
    return speech_regions(clip, window_seconds)


def _routes(loaded: LoadedModel, clips: list, pieces: list, items: Sequence[dict], threshold: float,
            batch_size: int) -> dict[int, dict]:
    """{piece index: its route} for each piece of a file without a dialect: the bank's router
    (:func:`arabicpeft.routing.router_of`) on the piece's pooled base-encoder states, at ``threshold``."""
    from .routing import pooled_states, router_of

    router, backbone = router_of(loaded), backbones.of(loaded.model)
    window = loaded.processor.feature_extractor.chunk_length
    wanted = [n for n, (i, _, _) in enumerate(pieces) if not items[i].get("dialect")]
    routes = {}
    for start in range(0, len(wanted), batch_size):
        batch = wanted[start:start + batch_size]
        inputs = backbone.audio_inputs(loaded.processor, [clips[pieces[n][0]][pieces[n][1]:pieces[n][2]]
                                                          for n in batch])
        chosen = router.routes(pooled_states(loaded.model, inputs, window, backbone.seconds(loaded.processor, inputs)),
                               loaded.adapters, threshold)
        for k, n in enumerate(batch):
            routes[n] = {key: chosen[key][k] for key in ("adapter", "predicted", "confidence")}
    return routes


def _hf_batch(loaded: LoadedModel, pieces: list[np.ndarray], max_new_tokens: int, options: dict
              ) -> tuple[list[str], list[bool]]:
    """(transcript, reached its limit) of each piece (at most one window each) of one batch, decoded as
    :func:`arabicpeft.evaluate.transcribe` decodes: the backbone's ``decoding_options``, each piece bounded by
    :func:`arabicpeft.evaluate.decode_limits` of its duration (read off its model input, as evaluation reads it)
    within ``max_new_tokens``."""
    model, processor = loaded.model, loaded.processor
    backbone = backbones.of(model)
    inputs = backbone.audio_inputs(processor, pieces)
    limits = decode_limits(backbone.seconds(processor, inputs),
                           backbone.generation_budget(model, processor, max_new_tokens))
    texts, reached = generate_limited(model, processor, inputs, limits, options, loaded.precision)
    return [t.strip() for t in texts], reached


def _hf_adapter(loaded: LoadedModel, adapter: Optional[str], pieces: list[np.ndarray], batch_size: int,
                max_new_tokens: int, options: dict, bar) -> tuple[list[str], list[bool]]:
    """:func:`_hf_batch` of ``pieces`` in batches of ``batch_size`` with one bank ``adapter`` (a dialect,
    :data:`~arabicpeft.routing.BASE_ADAPTER` for the adapters disabled, None for a model that is not a bank)."""
    if adapter and adapter != BASE_ADAPTER:
        loaded.use_dialect(adapter)
    texts, reached = [], []
    with loaded.model.disable_adapter() if adapter == BASE_ADAPTER else contextlib.nullcontext():
        for start in range(0, len(pieces), batch_size):
            batch_texts, batch_reached = _hf_batch(loaded, pieces[start:start + batch_size], max_new_tokens, options)
            texts += batch_texts
            reached += batch_reached
            bar.update(len(batch_texts))
    return texts, reached


def _ct2_piece(whisper, piece: np.ndarray, beam_size: int, max_new_tokens: int) -> tuple[str, bool]:
    """(transcript, reached its limit) of one piece (at most one window) through faster-whisper, bounded by
    :func:`arabicpeft.evaluate.decode_limits` of its duration in samples."""
    window = whisper.feature_extractor.chunk_length
    if whisper.feature_extractor.nb_max_frames != N_FRAMES:  # faster-whisper pads every window to 30 s
        raise ValueError(f"This CTranslate2 model has a {window} s encoder window; faster-whisper's transcribe "
                         "only handles 30 s windows. Use --backend hf, or export a model with the standard window.")
    [limit] = decode_limits([len(piece) / audio_lib.SAMPLE_RATE], min(max_new_tokens, _CT2_BUDGET)).tolist()
    task = backbones.exporting("ct2").task  # of the family faster-whisper runs
    # faster-whisper asks CTranslate2 for max_length = prompt + max_new_tokens, of which CTranslate2 generates
    # half (export.ct2_max_length): ask for what yields `limit` transcript tokens after the 4-token prompt.
    segments, _ = whisper.transcribe(
        piece, language=backbones.LANGUAGE, task=task, beam_size=beam_size, temperature=0.0, vad_filter=False,
        condition_on_previous_text=False, without_timestamps=True, max_new_tokens=ct2_max_length(limit) - 4,
        no_speech_threshold=None,  # never drop a piece as "silence": voice-activity detection chose it
    )
    segments = list(segments)
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    return text, sum(len(s.tokens) for s in segments) >= limit


def transcribe_files(model, items: Sequence[dict], backend: str = "hf", batch_size: int = 8, beam_size: int = 1,
                     max_new_tokens: int = MAX_NEW_TOKENS, progress: bool = True, out_dir=None,
                     subtitles: Sequence[str] = (), run_info: Optional[dict] = None,
                     suppress: str = "precomputed", route_threshold: Optional[float] = None) -> list[Transcript]:
    """Transcribe every item of :func:`collect_audio` (in order).

    ``model``: a :class:`arabicpeft.model.LoadedModel` for ``backend="hf"`` (an adapter bank switches to each
    file's dialect adapter; decoded at the window it was loaded with), a ``faster_whisper.WhisperModel`` for
    ``backend="ct2"`` (30 s window). A file no longer than the window is decoded whole, exactly as
    :func:`arabicpeft.evaluate.transcribe` decodes a test clip, and gets one segment spanning it; a longer file is
    cut into its :func:`speech_regions` (voice-activity detection: silence is not decoded, so it cannot be
    hallucinated over, and speech after a long pause is found), each decoded the same way and one segment with the
    region's times. ``max_new_tokens`` bounds each segment's transcript (224: Whisper's own default), within
    which each segment may decode at most :func:`arabicpeft.evaluate.decode_limits` tokens of its duration; a
    segment that reaches its limit (a looping decode, cut there) is marked ``at_limit``. ``suppress``: the
    suppression processors of the hf backend (the backbone's ``decoding_options``). With ``out_dir``,
    also writes there :data:`TRANSCRIPTS_FILE` (one transcript per line, with its subtitle files' names), the
    ``subtitles`` asked for (``srt``/``vtt``, one file per audio file, named after it, unique) and
    ``transcribe.json`` (what produced them: ``run_info`` plus counts and provenance). ``route_threshold``
    (an adapter bank with a router, :mod:`arabicpeft.routing`): each piece of a file without a dialect goes to
    the adapter its router picks at that threshold (else the fallback), recorded in its segment (``adapter``,
    ``predicted``, ``confidence``). Raises AudioError for undecodable or empty audio, ValueError for an unknown
    backend, suppression or subtitle format, or files a bank has no dialect for (before any decoding).
    """
    from tqdm.auto import tqdm

    if backend not in _BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(_BACKENDS)}.")
    unknown = set(subtitles) - set(SUBTITLE_FORMATS)
    if unknown:
        raise ValueError(f"Unknown subtitle format(s) {sorted(unknown)}; choose from {', '.join(SUBTITLE_FORMATS)}.")
    if backend == "hf":
        options = backbones.of(model.model).decoding_options(model.model, model.processor, suppress,
                                                             num_beams=beam_size)
        if model.kind == "bank":
            lacking = [i["path"] for i in items if not i.get("dialect")]
            if lacking and route_threshold is None:
                raise ValueError(f"An adapter bank needs each file's dialect ({len(lacking)} without, e.g. "
                                 f"{lacking[0]}): give --dialect or a manifest with a 'dialect' column.")
    window = (model.processor.feature_extractor.chunk_length if backend == "hf"
              else model.feature_extractor.chunk_length)
    clips, pieces = [], []  # pieces: (file index, start, end) in samples
    for i, item in enumerate(items):
        clip = audio_lib.load_audio(item["path"])
        audio_lib.check_duration(clip, max_seconds=float("inf"))
        clips.append(clip)
        pieces += [(i, start, end) for start, end in _pieces(clip, window)]
    decoded: dict[int, tuple[str, bool]] = {}
    routes = (_routes(model, clips, pieces, items, route_threshold, batch_size)
              if backend == "hf" and model.kind == "bank" and route_threshold is not None else {})
    bar = tqdm(total=len(pieces), desc="transcribing", unit="segment", disable=not progress)
    if backend == "ct2":
        for n, (i, start, end) in enumerate(pieces):
            decoded[n] = _ct2_piece(model, clips[i][start:end], beam_size, max_new_tokens)
            bar.update()
    else:
        groups: dict = {}  # one adapter per batch, the longest pieces first
        for n in sorted(range(len(pieces)), key=lambda n: pieces[n][1] - pieces[n][2]):  # start - end: longest first
            adapter = routes[n]["adapter"] if n in routes else items[pieces[n][0]].get("dialect")
            groups.setdefault(adapter if model.kind == "bank" else None, []).append(n)
        for adapter, indices in groups.items():
            audio = [clips[pieces[n][0]][pieces[n][1]:pieces[n][2]] for n in indices]
            for n, text, hit in zip(indices, *_hf_adapter(model, adapter, audio, batch_size, max_new_tokens, options,
                                                          bar)):
                decoded[n] = text, hit
    bar.close()
    segments: list[list[dict]] = [[] for _ in items]
    for n, (i, start, end) in enumerate(pieces):
        text, hit = decoded[n]
        segments[i].append({"start": round(start / audio_lib.SAMPLE_RATE, 3),
                            "end": round(end / audio_lib.SAMPLE_RATE, 3), "text": text, "at_limit": hit,
                            **routes.get(n, {})})
    results = [_transcript(item, clip, segs) for item, clip, segs in zip(items, clips, segments)]
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


def _subtitle_names(paths: Sequence[str]) -> list[str]:
    """A unique file name stem for each path: its own stem, or for a later file of the same stem ``stem-2``,
    ``stem-3``, ... skipping every name taken or held by another input (``x/a-2.wav``, ``x/a.wav`` and ``y/a.wav``
    give ``a-2``, ``a``, ``a-3``). Compared case-insensitively, for file systems that are."""
    stems = [Path(p).stem for p in paths]
    taken = {stem.casefold() for stem in stems}
    used: set[str] = set()
    names = []
    for stem in stems:
        name, k = stem, 1
        while name.casefold() in used or (k > 1 and name.casefold() in taken):
            k += 1
            name = f"{stem}-{k}"
        used.add(name.casefold())
        names.append(name)
    return names


def _write_transcripts(transcripts: Sequence[Transcript], out_dir, subtitles: Sequence[str] = (),
                       run_info: Optional[dict] = None) -> Path:
    """Write :data:`TRANSCRIPTS_FILE` (one :class:`Transcript` per line, plus its subtitle files' names), the
    subtitle files asked for (named after each audio file, unique: :func:`_subtitle_names`) and
    ``transcribe.json`` (what produced them: ``run_info`` plus the files, seconds, segments cut at their limit,
    files without speech and provenance). Returns the JSONL path."""
    from .results import provenance
    from .run_dir import write_json_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for t, name in zip(transcripts, _subtitle_names([t.path for t in transcripts])):
        row = asdict(t)
        for fmt in subtitles:
            (out_dir / f"{name}.{fmt}").write_text(t.subtitles(fmt), encoding="utf-8")
            row[fmt] = f"{name}.{fmt}"
        lines.append(json.dumps(row, ensure_ascii=False))
    path = out_dir / TRANSCRIPTS_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json_atomic(out_dir / _TRANSCRIBE_RUN_FILE, {
        **(run_info or {}), "n_files": len(transcripts), "audio_seconds": sum(t.duration for t in transcripts),
        "segments": sum(len(t.segments) for t in transcripts),
        "segments_at_limit": sum(t.segments_at_limit for t in transcripts),
        "files_without_speech": [t.path for t in transcripts if not t.segments], "provenance": provenance()})
    return path
