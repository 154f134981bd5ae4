"""One record of a run's data: can it be used, and if not why (counted, never silent); its content key; filtering
a dataset or a stream with counts.

Two record formats: **features** (the otozz sets, or a feature cache: ``input_features`` (80 x 3000 log-mel) or
the cache's columns, and ``labels``, token ids with the ``<|startoftranscript|><|ar|><|transcribe|><|notimestamps|>``
prefix and ``<|endoftext|>`` suffix) and **audio** (``audio``: a path, bytes or array, and ``text``). A record
that cannot be used is filtered for one of :data:`FILTER_REASONS` and counted by reason: exactly, also on a
stream read by several DataLoader worker processes (:func:`settle_counts` reads those counts).

Public: :data:`FILTER_REASONS`, :data:`AnyDataset`, :func:`record_format`, :func:`columns_of`,
:func:`check_audio_record`, :func:`filter_reason`, :func:`filter_records`, :func:`settle_counts`,
:func:`record_key`.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Optional, Union

import datasets
import numpy as np

from . import audio as audio_lib
from .errors import DataUnavailableError
from .feature_cache import COLUMNS as CACHE_COLUMNS, input_features
from .offline_model import MAX_TARGET_POSITIONS

FILTER_REASONS = ("empty_transcript", "too_short", "too_long", "labels_too_long", "undecodable", "non_finite")
_START_OF_TRANSCRIPT = "<|startoftranscript|>"  # the collator strips it: it takes no decoder position of its own

AnyDataset = Union[datasets.Dataset, datasets.IterableDataset]


class _InvalidRecord(ValueError):
    """One record that cannot be used; ``reason`` is one of :data:`FILTER_REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# --- record checks ---------------------------------------------------------------------------------


def record_format(columns) -> str:
    """"features" (otozz ``input_features`` + ``labels``, or feature-cache records) or "audio" (``audio`` +
    ``text``); ValueError for anything else."""
    columns = set(columns)
    if {"input_features", "labels"} <= columns or set(CACHE_COLUMNS) <= columns:
        return "features"
    if {"audio", "text"} <= columns:
        return "audio"
    raise ValueError(
        f"Unrecognised record format with columns {sorted(columns)}: expected 'input_features' + 'labels' "
        "(otozz feature sets) or 'audio' + 'text' (audio with transcripts)."
    )


def _decoder_positions(labels, tokenizer) -> int:
    """Decoder positions a label sequence takes: its length, less a leading <|startoftranscript|>, which the
    collator strips (the model prepends it again as the decoder start)."""
    labels = list(labels)
    start = tokenizer.convert_tokens_to_ids(_START_OF_TRANSCRIPT)
    return len(labels) - (1 if labels and labels[0] == start else 0)


def _is_empty_transcript(record: dict, tokenizer) -> bool:
    """No transcript words: an audio record's text is blank, or a feature record's labels decode to nothing."""
    if "labels" in record:
        return not tokenizer.decode(list(record["labels"]), skip_special_tokens=True).strip()
    text = record.get("text")
    return text is None or not str(text).strip()


_EMPTY = _InvalidRecord("empty_transcript", "The transcript is empty: there is nothing to learn from. (Test sets "
                                           "keep such clips and score them: hypothesis words count as insertions.)")


def _check_labels(labels, tokenizer, max_positions: int = MAX_TARGET_POSITIONS, allow_empty: bool = False) -> None:
    """Raise :class:`_InvalidRecord` for labels that need more than ``max_positions`` decoder positions (the
    model's ``max_target_positions``; see :func:`_decoder_positions`), or, unless ``allow_empty``, that hold no
    transcript tokens."""
    positions = _decoder_positions(labels, tokenizer)
    if positions > max_positions:
        raise _InvalidRecord(
            "labels_too_long",
            f"The transcript is {len(labels)} tokens long and needs {positions} decoder positions; this Whisper's "
            f"decoder takes at most {max_positions} (max_target_positions). Split the utterance or drop it.",
        )
    if not allow_empty and not tokenizer.decode(list(labels), skip_special_tokens=True).strip():
        raise _EMPTY


def _check_feature_record(record: dict, tokenizer, max_positions: int = MAX_TARGET_POSITIONS,
                         allow_empty: bool = False) -> None:
    """Validate one precomputed-feature record (otozz or feature cache): finite features, usable ``labels``."""
    values = [record["log_mel"], record["pad_value"]] if "log_mel" in record else [record["input_features"]]
    if not all(np.all(np.isfinite(np.asarray(v, dtype=np.float32))) for v in values):
        raise _InvalidRecord("non_finite", "The input_features hold NaN or infinite values: the model would "
                                          "transcribe noise. Recompute the features of this clip, or drop it.")
    _check_labels(record["labels"], tokenizer, max_positions, allow_empty)


def check_audio_record(record: dict, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS,
                       max_positions: int = MAX_TARGET_POSITIONS, allow_empty: bool = False) -> None:
    """Validate one audio record (decodes it); raises :class:`_InvalidRecord` with a reason and a message.

    A missing audio file raises :class:`FileNotFoundError`: that is a broken path, not a bad utterance.
    """
    text = record.get("text")
    text = "" if text is None else str(text)
    if not allow_empty and not text.strip():
        raise _EMPTY
    try:
        samples = audio_lib.load_audio(record["audio"])
    except audio_lib.AudioError as e:
        raise _InvalidRecord("non_finite" if isinstance(e, audio_lib.NonFiniteAudio) else "undecodable", str(e)) from e
    try:
        audio_lib.check_duration(samples, max_seconds=max_seconds)
    except audio_lib.AudioError as e:
        reason = "too_short" if len(samples) < audio_lib.MIN_SECONDS * audio_lib.SAMPLE_RATE else "too_long"
        raise _InvalidRecord(reason, str(e)) from e
    _check_labels(tokenizer(text).input_ids, tokenizer, max_positions, allow_empty)


def columns_of(ds: AnyDataset) -> list[str]:
    """Column names; a stream whose schema is not known up front is peeked at (one record)."""
    if ds.column_names:
        return list(ds.column_names)
    return list(next(iter(ds)).keys())


def filter_reason(check, *args) -> Optional[str]:
    """The reason (one of :data:`FILTER_REASONS`) why ``check(*args)`` refuses a record, or None."""
    try:
        check(*args)
    except _InvalidRecord as e:
        return e.reason
    return None


# --- counts -----------------------------------------------------------------------------------------


class _StreamCounts:
    """Filter counts of a stream, exact whatever the number of DataLoader worker processes.

    The filter runs in whichever process reads the stream (the main one, or each worker, which holds a copy of
    everything): so every process appends ``key<TAB>reason`` lines to a file of its own in one folder, and
    :meth:`read` merges the files, counting each record (by :func:`record_key`) once however often it passed.
    """

    def __init__(self, score_empty: bool = False):
        self.score_empty = score_empty  # a test set: also count the empty transcripts kept for scoring
        self.folder = Path(tempfile.mkdtemp(prefix="arabicpeft-stream-counts-"))
        self._seen: set[bytes] = set()  # per process (a worker's copy starts from the parent's)
        weakref.finalize(self, _remove_if_owner, self.folder, os.getpid())

    def add(self, key: bytes, reason: Optional[str], empty: bool = False) -> None:
        if key in self._seen:
            return
        self._seen.add(key)
        with open(self.folder / f"{os.getpid()}.tsv", "a", encoding="ascii") as f:
            f.write(f"{key.hex()}\t{reason or ''}\t{'E' if empty else ''}\n")

    def read(self) -> dict:
        """{rows_in, rows_used, filtered: {reason: count}} over every record seen so far by any process."""
        reasons: dict[str, str] = {}
        empty: set[str] = set()
        for part in self.folder.glob("*.tsv"):
            for line in part.read_text(encoding="ascii").splitlines():
                key, reason, flag = line.split("\t")
                reasons[key] = reason
                if flag:
                    empty.add(key)
        counts = collections.Counter({r: 0 for r in FILTER_REASONS})
        counts.update(r for r in reasons.values() if r)
        out = {"rows_in": len(reasons), "rows_used": sum(not r for r in reasons.values()), "filtered": dict(counts)}
        if self.score_empty:
            out["empty_transcript_scored"] = len(empty)
        return out


def _remove_if_owner(folder: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


_STREAM_COUNTS_KEY = "_stream_counts"  # where a streamed report keeps its StreamCounts; never written out


def settle_counts(report: dict) -> dict:
    """``report`` (nested) with every streamed filter count read up to now; a copy without private keys,
    ready for a results file. Call it after training/evaluation: counts of a stream grow as it is read."""
    out = {}
    for key, value in report.items():
        if key == _STREAM_COUNTS_KEY:
            continue
        out[key] = settle_counts(value) if isinstance(value, dict) else value
    if _STREAM_COUNTS_KEY in report:
        counts = report[_STREAM_COUNTS_KEY].read()
        report.update(counts)
        out.update(counts)
    return out


def filter_records(ds: AnyDataset, fmt: str, tokenizer, max_seconds: float, report: dict,
                   max_positions: int = MAX_TARGET_POSITIONS, score_empty: bool = False,
                   keys: Optional[list] = None) -> AnyDataset:
    """Drop invalid records, counting each by reason into ``report`` (rows_in, rows_used, filtered).

    ``score_empty`` (test sets): records with an empty transcript are kept, to be scored (their hypothesis
    words are insertions), and counted in ``report["empty_transcript_scored"]``; otherwise they are filtered.
    ``max_positions``: the model's decoder positions (``max_target_positions``), see :func:`_check_labels`.
    ``keys`` (a list, not a stream): gets the :func:`record_key` of every kept record, in order, from the same
    read.
    """
    counts = collections.Counter({r: 0 for r in FILTER_REASONS})
    if fmt == "features":
        def check(r):
            return filter_reason(_check_feature_record, r, tokenizer, max_positions, score_empty)
        columns = list(CACHE_COLUMNS) if "log_mel" in columns_of(ds) else ["input_features", "labels"]
    else:
        def check(r):
            return filter_reason(check_audio_record, r, tokenizer, max_seconds, max_positions, score_empty)
        columns = ["audio", "text"]

    if isinstance(ds, datasets.IterableDataset):
        # Streaming: counted as records go by, each record once however often (and in whatever order, the
        # stream being shuffled) it passes, in whichever process reads it; settle_counts() reads the counts.
        tally = _StreamCounts(score_empty)
        report.update(tally.read(), counted="while streaming: the records seen", **{_STREAM_COUNTS_KEY: tally})

        def keep(record):
            reason = check(record)
            tally.add(record_key(record), reason, score_empty and not reason and _is_empty_transcript(record, tokenizer))
            return reason is None

        return ds.filter(keep)

    # Only the columns a check needs are read, as numpy (a 0.96 MB feature array is one memory-mapped read).
    view = ds.select_columns(columns)
    reasons = []
    for record in view.with_format("numpy") if fmt == "features" else view:
        reasons.append(check(record))
        if keys is not None and reasons[-1] is None:
            keys.append(record_key(record))
    for reason in reasons:
        if reason:
            counts[reason] += 1
    kept = [i for i, reason in enumerate(reasons) if reason is None]
    report.update(rows_in=len(reasons), rows_used=len(kept), filtered=dict(counts))
    if score_empty:
        report["empty_transcript_scored"] = sum(_is_empty_transcript(r, tokenizer)
                                                for r in ds.select(kept).select_columns(columns[-1:]))
    if not kept:
        raise DataUnavailableError(f"Every one of the {len(reasons)} records was filtered out: {dict(counts)}. "
                                   "Check the data (see the reasons) or the model's limits.")
    return ds.select(kept) if len(kept) < len(reasons) else ds


# --- a record's content key --------------------------------------------------------------------------


def _audio_bytes(audio) -> bytes:
    if isinstance(audio, dict) and audio.get("path") and "end" in audio:
        # A segment of a long recording: its file's name and times (reading the recording would cost more than
        # the segment, and its folder differs from machine to machine).
        return f"{os.path.basename(str(audio['path']))}\x00{audio.get('start')}\x00{audio['end']}".encode()
    if isinstance(audio, dict):
        if audio.get("array") is not None:
            return np.ascontiguousarray(audio["array"]).tobytes() + str(audio.get("sampling_rate")).encode()
        audio = audio.get("bytes") or audio.get("path") or b""
    if isinstance(audio, (str, os.PathLike)):
        with open(audio, "rb") as f:  # the recording itself: the same file under two paths is one record
            return f.read()
    if isinstance(audio, np.ndarray):
        return audio.tobytes()
    return bytes(audio)


def record_key(record: dict) -> bytes:
    """A short digest of a record's content (its features or audio, and its labels or text), independent of
    its position: distinct recordings of one transcript have distinct keys, a record read twice has one."""
    digest = hashlib.blake2b(digest_size=16)
    if "labels" in record:
        digest.update(np.ascontiguousarray(input_features(record)).tobytes())  # a cached record: the same key
        digest.update(np.asarray(record["labels"], dtype=np.int64).tobytes())
    else:
        digest.update(_audio_bytes(record["audio"]))
        digest.update(b"\x00" + str(record["text"]).encode())
    return digest.digest()

