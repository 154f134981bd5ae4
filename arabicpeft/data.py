"""Train / validation / test data for a dialect, from the hub, a local copy, or the embedded sample set.

Two record formats go through the same path:

- **features** (the otozz hub sets): ``input_features`` (80 x 3000 log-mel) and ``labels`` (token ids with
  the ``<|startoftranscript|><|ar|><|transcribe|><|notimestamps|>`` prefix and ``<|endoftext|>`` suffix);
- **audio**: ``audio`` (a path, bytes or array) and ``text``; log-mel features are computed on the fly by
  the model's collator (its backbone's, :mod:`arabicpeft.backbones`; batched on the GPU when there is one).

Either can be read from a compact feature cache instead (``feature_cache`` in the config; records of
:mod:`arabicpeft.feature_cache`, written once by :func:`build_feature_cache`): they are features records whose
model input :func:`input_features` rebuilds bitwise.

The validation split is carved from train by the seed (80/20, as the paper) and by record content (a record
listed twice never lands on both sides: :func:`_split_validation`), the test set is never used for model
selection, and every filtered record is counted by reason in :attr:`DataSplits.report`.

Public: :data:`MANIFEST_EXTENSIONS`, :data:`SYNTHETIC_NOTE`, :data:`AnyDataset`, :class:`DataUnavailableError`,
:class:`DataSplits`, :func:`settle_counts`, :class:`ManifestError`, :func:`read_manifest`, :func:`load_raw`,
:func:`load_test_sets`, :func:`is_saved_dataset`, :func:`dialect_names`, :func:`load_test_path`, :func:`load_splits`,
:func:`build_feature_cache`.
"""

from __future__ import annotations

import codecs
import collections
import hashlib
import io
import json
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import datasets
import numpy as np
import pandas as pd
import torch

from . import audio as audio_lib
from . import dialects
from . import backbones
from .feature_cache import COLUMNS as CACHE_COLUMNS, CacheError, FeatureCache, input_features
from .config import SAMPLE_DIR, ExperimentConfig
from .hub import HUB_HOST, dataset_revision, hub_offline_mode, hub_reachable
from .offline_model import MAX_TARGET_POSITIONS, N_FRAMES, N_MELS, resolve_model
from .errors import DataUnavailableError

_FILTER_REASONS = ("empty_transcript", "too_short", "too_long", "labels_too_long", "undecodable", "non_finite")
MANIFEST_EXTENSIONS = (".jsonl", ".json", ".csv")
_START_OF_TRANSCRIPT = "<|startoftranscript|>"  # the collator strips it: it takes no decoder position of its own
# Said wherever scores of synthetic data are shown (the sample set, or a manifest marked synthetic).
SYNTHETIC_NOTE = ("the sample data is synthetic (espeak-ng speech of sentences written for this set), so its "
                  "scores show that training works, not how well Whisper recognises real Arabic dialects.")
_STREAM_SHUFFLE_BUFFER = 1_000  # records held to shuffle a training stream (~1 GB of otozz features)

AnyDataset = Union[datasets.Dataset, datasets.IterableDataset]


class _InvalidRecord(ValueError):
    """One record that cannot be used; ``reason`` is one of :data:`_FILTER_REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class DataSplits:
    """What :func:`load_splits` returns: the filtered splits, their record format, where they came from, the
    DataLoader workers to read them with (the config's ``num_workers``, or chosen for audio on a GPU:
    :func:`_feature_workers`) and the report of sizes and filter counts."""

    train: AnyDataset
    validation: AnyDataset
    test: dict[str, AnyDataset]
    format: str  # "features" or "audio"
    source: str
    synthetic: bool
    num_workers: int
    report: dict = field(default_factory=dict)  # sizes and filter counts, copied into the results file


# --- record checks ---------------------------------------------------------------------------------


def _record_format(columns) -> str:
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


def _check_audio_record(record: dict, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS,
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


def _columns_of(ds: AnyDataset) -> list[str]:
    """Column names; a stream whose schema is not known up front is peeked at (one record)."""
    if ds.column_names:
        return list(ds.column_names)
    return list(next(iter(ds)).keys())


def _reason(check, *args) -> Optional[str]:
    try:
        check(*args)
    except _InvalidRecord as e:
        return e.reason
    return None


class _StreamCounts:
    """Filter counts of a stream, exact whatever the number of DataLoader worker processes.

    The filter runs in whichever process reads the stream (the main one, or each worker, which holds a copy of
    everything): so every process appends ``key<TAB>reason`` lines to a file of its own in one folder, and
    :meth:`read` merges the files, counting each record (by :func:`_record_key`) once however often it passed.
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
        counts = collections.Counter({r: 0 for r in _FILTER_REASONS})
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


def _numpy_features(ds: AnyDataset, fmt: str) -> AnyDataset:
    """``ds`` in numpy format when it holds log-mel features on disk: the collator then gets 80 x 3000 arrays read
    straight from Arrow, ~20x faster than nested Python lists. Not a stream: after a filter or shuffle datasets'
    numpy formatter converts the lists value by value (1.6 s per 80 x 3000 record, measured with datasets 5.2),
    where the collator's np.asarray of the lists takes ~24 ms."""
    return ds.with_format("numpy") if fmt == "features" and not isinstance(ds, datasets.IterableDataset) else ds


def _filter_records(ds: AnyDataset, fmt: str, tokenizer, max_seconds: float, report: dict,
                   max_positions: int = MAX_TARGET_POSITIONS, score_empty: bool = False,
                   keys: Optional[list] = None) -> AnyDataset:
    """Drop invalid records, counting each by reason into ``report`` (rows_in, rows_used, filtered).

    ``score_empty`` (test sets): records with an empty transcript are kept, to be scored (their hypothesis
    words are insertions), and counted in ``report["empty_transcript_scored"]``; otherwise they are filtered.
    ``max_positions``: the model's decoder positions (``max_target_positions``), see :func:`_check_labels`.
    ``keys`` (a list, not a stream): gets the :func:`_record_key` of every kept record, in order, from the same
    read.
    """
    counts = collections.Counter({r: 0 for r in _FILTER_REASONS})
    if fmt == "features":
        def check(r):
            return _reason(_check_feature_record, r, tokenizer, max_positions, score_empty)
        columns = list(CACHE_COLUMNS) if "log_mel" in _columns_of(ds) else ["input_features", "labels"]
    else:
        def check(r):
            return _reason(_check_audio_record, r, tokenizer, max_seconds, max_positions, score_empty)
        columns = ["audio", "text"]

    if isinstance(ds, datasets.IterableDataset):
        # Streaming: counted as records go by, each record once however often (and in whatever order, the
        # stream being shuffled) it passes, in whichever process reads it; settle_counts() reads the counts.
        tally = _StreamCounts(score_empty)
        report.update(tally.read(), counted="while streaming: the records seen", **{_STREAM_COUNTS_KEY: tally})

        def keep(record):
            reason = check(record)
            tally.add(_record_key(record), reason, score_empty and not reason and _is_empty_transcript(record, tokenizer))
            return reason is None

        return ds.filter(keep)

    # Only the columns a check needs are read, as numpy (a 0.96 MB feature array is one memory-mapped read).
    view = ds.select_columns(columns)
    reasons = []
    for record in view.with_format("numpy") if fmt == "features" else view:
        reasons.append(check(record))
        if keys is not None and reasons[-1] is None:
            keys.append(_record_key(record))
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


# --- sources ---------------------------------------------------------------------------------------


def _load_hub(repo_id: str, streaming: bool) -> tuple[AnyDataset, Optional[str]]:
    """(dataset, revision): the data read at the commit recorded, so a rerun can pin the same data."""
    if not hub_offline_mode() and not hub_reachable():
        raise DataUnavailableError(
            f"Cannot reach {HUB_HOST} to load {repo_id}. Turn the internet on (Kaggle: Settings -> Internet), "
            "or download the data elsewhere and use source='local' with data_path pointing at it "
            "(a directory holding e.g. egyptian_train_set/ saved with save_to_disk). If the dataset is already "
            "in your HF cache, set HF_HUB_OFFLINE=1. Nothing else will be trained on instead."
        )
    revision = dataset_revision(repo_id)
    try:
        return datasets.load_dataset(repo_id, split="train", streaming=streaming, revision=revision), revision
    except Exception as e:
        raise DataUnavailableError(
            f"Could not load the hub dataset {repo_id}: {e}. Nothing else will be trained on instead."
        ) from e


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file, the line and the likely cause."""


def _utf16_byte_order(raw: bytes) -> Optional[str]:
    """``little-endian`` or ``big-endian`` when ``raw`` looks like UTF-16 text (a UTF-16 byte-order mark, or NUL
    bytes, which UTF-8 text does not hold, in at least a tenth of its odd or even offsets: the high bytes of ASCII
    characters), else None."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "little-endian" if raw.startswith(codecs.BOM_UTF16_LE) else "big-endian"
    odd, even = raw[1::2].count(0), raw[0::2].count(0)
    if max(odd, even) < max(1, len(raw) // 20):  # not a stray NUL or two
        return None
    return "little-endian" if odd > even else "big-endian"


def read_manifest(path) -> pd.DataFrame:
    """A manifest (``.jsonl``: one JSON object a line; ``.json``: a list of objects; ``.csv``) as a frame.

    UTF-8 with or without a byte-order mark, Unix or Windows line endings. Raises :class:`ManifestError`
    naming the file, the line and the likely cause (UTF-16 text, with or without a byte-order mark, is named).
    """
    path = Path(path)
    raw = path.read_bytes()
    utf16 = _utf16_byte_order(raw)
    if utf16:
        raise ManifestError(f"Could not read the manifest {path}: it is UTF-16 ({utf16}) text, not UTF-8. Save it as "
                            "UTF-8.")
    try:
        text = raw.decode("utf-8-sig")  # drops a byte-order mark (Excel and Notepad write one)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ManifestError(f"Could not read the manifest {path}, line {line}: it is not UTF-8 text ({e.reason} "
                            f"at byte {e.start}). Save it as UTF-8.") from e
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if path.suffix == ".csv":
        try:
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as e:
            detail = " ".join(str(e).split()).rstrip(".")  # pandas' message names the line
            raise ManifestError(f"Could not read the manifest {path}: {detail}. Likely cause: a field holding a comma, "
                                "a quote or a line break is not quoted; put such fields in double quotes.") from e
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"Could not read the manifest {path}, line {e.lineno}: not valid JSON ({e.msg}, "
                                f"column {e.colno}). A .json manifest is a list of objects; use .jsonl for one "
                                "object a line.") from e
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ManifestError(f"The manifest {path} must be a JSON list of objects like "
                                '[{"audio": "a.wav", "text": "..."}], got a ' + type(rows).__name__ + ".")
        return pd.DataFrame(rows)
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"Could not read the manifest {path}, line {number}: not valid JSON ({e.msg}, "
                                f"column {e.colno}). Each line must be one complete JSON object, e.g. "
                                '{"audio": "a.wav", "text": "..."}.') from e
        if not isinstance(row, dict):
            raise ManifestError(f"Could not read the manifest {path}, line {number}: a JSON "
                                f"{type(row).__name__}, not an object with 'audio' and 'text'.")
        rows.append(row)
    return pd.DataFrame(rows)


def _load_manifest(path: Path, variety: str, pooled: bool) -> tuple[datasets.Dataset, bool]:
    frame = read_manifest(path)
    if pooled and "dialect" not in frame:
        raise ValueError(f"{path} has no 'dialect' column, so the dialects of a pooled set cannot be told apart "
                         "(every one would read the whole file). Add the column, or train one dialect.")
    if "dialect" in frame:
        frame_dialects = frame["dialect"].astype(str).str.lower()
        frame = frame[frame_dialects == variety]
        if frame.empty:
            raise DataUnavailableError(f"{path} has no rows with dialect == {variety!r} (it has "
                                       f"{sorted(set(frame_dialects))}). Add them, or pick one of those dialects.")
    missing = {"audio", "text"} - set(frame.columns)
    if missing:
        raise ValueError(f"Manifest {path} lacks the column(s) {sorted(missing)}: it needs 'audio' and 'text'.")
    # Relative audio paths are relative to the manifest; a missing file is a broken path, so it stops the run.
    frame = frame.assign(audio=[str((path.parent / a).resolve()) for a in frame["audio"].astype(str)])
    absent = [a for a in frame["audio"] if not os.path.exists(a)]
    if absent:
        raise FileNotFoundError(f"{len(absent)} audio file(s) listed in {path} do not exist, e.g. {absent[0]}.")
    frame = frame.assign(text=frame["text"].fillna("").astype(str))  # an empty cell is an empty transcript
    synthetic = bool("synthetic" in frame and frame["synthetic"].astype(str).str.lower().eq("true").all())
    return datasets.Dataset.from_pandas(frame.reset_index(drop=True), preserve_index=False), synthetic


def _load_local(root: Path, variety: str, split: str, streaming: bool, pooled: bool) -> tuple[AnyDataset, bool]:
    """``root`` holds either ``{hub_name}_{split}_set/`` (save_to_disk) or ``{split}.jsonl`` / ``{split}.csv``."""
    if not root.exists():
        raise FileNotFoundError(f"Local data directory not found: {root}. Check data_path: it must be a folder "
                                "holding the save_to_disk copies or the train/test manifests.")
    saved = root / f"{dialects.get(variety).hub_name}_{split}_set"
    if saved.is_dir():
        ds = datasets.load_from_disk(str(saved))
        if isinstance(ds, datasets.DatasetDict):  # the otozz repos keep everything in one split named "train"
            ds = ds["train"]
        return (ds.to_iterable_dataset() if streaming else ds), False
    for ext in MANIFEST_EXTENSIONS:
        manifest = root / f"{split}{ext}"
        if manifest.is_file():
            ds, synthetic = _load_manifest(manifest, variety, pooled)
            return (ds.to_iterable_dataset() if streaming else ds), synthetic
    raise FileNotFoundError(
        f"No {split} data for {variety} in {root}: expected a save_to_disk directory {saved.name}/ or a manifest "
        f"{split}.jsonl / {split}.csv with 'audio' and 'text' columns."
    )


def load_raw(variety: str, split: str, source: str, data_path: Optional[str] = None,
             streaming: bool = False, pooled: bool = False, cache: Optional[str] = None
             ) -> tuple[AnyDataset, bool, Optional[str]]:
    """One single-variety split ("train" or "test") from ``source``; returns (dataset, synthetic, hub revision:
    the dataset repo's commit sha, None for local data).

    ``pooled``: the variety is one of several read together (a manifest must then say which row is which).
    ``cache``: a feature cache folder (:mod:`arabicpeft.feature_cache`): the split is read from it, in the
    source's order; :class:`~arabicpeft.feature_cache.CacheError` if it is not there or was built from
    another source (:func:`build_feature_cache` writes it)."""
    entry = dialects.get(variety)
    if entry.is_pooled:
        raise ValueError(f"load_raw takes a single variety, not the pooled {variety!r}.")
    if cache:
        ds, meta = FeatureCache(cache).open(variety, split)
        built = (meta.get("source"), meta.get("data_path"))
        if built != (source, data_path if source == "local" else None):
            raise CacheError(
                f"the feature cache {FeatureCache(cache).split_dir(variety, split)} was built from source "
                f"{built[0]}{' ' + str(built[1]) if built[1] else ''}, this run reads source {source}",
                "point --feature-cache at another folder, or delete that split to rebuild it.")
        return (ds.to_iterable_dataset() if streaming else ds), bool(meta.get("synthetic")), meta.get("hub_revision")
    if source == "hub":
        repo = entry.hub_train[0] if split == "train" else entry.hub_test[0]
        ds, revision = _load_hub(repo, streaming)
        return ds, False, revision
    root = SAMPLE_DIR if source == "sample" else Path(data_path or "")
    ds, synthetic = _load_local(root, variety, split, streaming, pooled)
    return ds, synthetic or source == "sample", None


def _concat(parts: list[AnyDataset], seed: int) -> AnyDataset:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], datasets.IterableDataset):
        # Streams cannot be shuffled globally: interleave them so every batch mixes dialects.
        return datasets.interleave_datasets(parts, seed=seed, stopping_strategy="all_exhausted_without_replacement")
    return datasets.concatenate_datasets(parts)


def _take(ds: AnyDataset, n: Optional[int]) -> AnyDataset:
    if n is None:
        return ds
    if isinstance(ds, datasets.IterableDataset):
        return ds.take(n)
    return ds.select(range(min(n, len(ds))))


def _mix(parts: list[AnyDataset], varieties, cfg: ExperimentConfig) -> tuple[list[AnyDataset], dict]:
    """The dialect parts of a pooled train set as ``cfg.mixture`` asks; returns (parts, {variety: records}).

    "natural" keeps each dialect's records (at most ``max_train_per_dialect``); "balanced" takes the same
    number from each: the smallest dialect's size, capped at ``max_train_per_dialect``. Where fewer records
    than a dialect has are taken, they are drawn at random without replacement (seeded by ``cfg.seed`` and the
    dialect's position; kept in their order), not its first ones; a stream is shuffled in a buffer of
    :data:`_STREAM_SHUFFLE_BUFFER` records first, so its draw is only as random as that. Counted before the
    record filters (which then report what they drop). A single-dialect set is returned unchanged.
    """
    if len(parts) == 1 or (cfg.mixture == "natural" and not cfg.max_train_per_dialect):
        return parts, {}
    streamed = isinstance(parts[0], datasets.IterableDataset)
    if streamed and not cfg.max_train_per_dialect:
        raise ValueError("A streamed pooled set has no known sizes: a balanced mixture needs max_train_per_dialect.")
    cap = cfg.max_train_per_dialect or float("inf")
    if streamed:
        counts = [cap] * len(parts)
    elif cfg.mixture == "balanced":
        counts = [min(cap, min(len(p) for p in parts))] * len(parts)
    else:
        counts = [min(cap, len(p)) for p in parts]
    parts = [_draw(p, int(n), [cfg.seed, i]) for i, (p, n) in enumerate(zip(parts, counts))]
    return parts, {v: int(n) for v, n in zip(varieties, counts)}


def _draw(ds: AnyDataset, n: int, seed) -> AnyDataset:
    """``n`` records of ``ds`` drawn at random without replacement (numpy ``default_rng(seed)``), in their order in
    ``ds``; all of it when it has no more. A stream: its first ``n`` after a seeded buffer shuffle."""
    if isinstance(ds, datasets.IterableDataset):
        return ds.shuffle(seed=int(np.random.default_rng(seed).integers(2**31)),
                          buffer_size=_STREAM_SHUFFLE_BUFFER).take(n)
    if n >= len(ds):
        return ds
    return ds.select(np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False)))


def _audio_bytes(audio) -> bytes:
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


def _record_key(record: dict) -> bytes:
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


def _in_validation(record: dict, fraction: float, seed: int) -> bool:
    """Whether a streamed ``record`` belongs to the validation split: a seeded hash of its content
    (:func:`_record_key`) below ``fraction``."""
    digest = hashlib.blake2b(_record_key(record), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


def _split_validation(ds: AnyDataset, fraction: float, seed: int, keys: Optional[list] = None
                      ) -> tuple[AnyDataset, AnyDataset, dict]:
    """(train, validation, what the split did) of a filtered training pool, by record content on both paths, so
    that a record listed twice (a duplicate in a manifest or a hub set) never lands on both sides.

    A stream: each record goes to validation by :func:`_in_validation`, the same side in every pass. A dataset
    (``keys``: its records' :func:`_record_key`): the paper's ``train_test_split(test_size=fraction, seed=seed)``,
    then every record whose content repeats an earlier one's is put on the side of that first occurrence; with
    no duplicates the split is exactly the paper's. The dict counts ``duplicates`` (records repeating an earlier
    one) and ``moved`` (records that changed side), with the ``split_method`` in words."""
    if isinstance(ds, datasets.IterableDataset):
        # A stream has no random access and its order changes when shuffled.
        return (ds.filter(lambda r: not _in_validation(r, fraction, seed)),
                ds.filter(lambda r: _in_validation(r, fraction, seed)),
                {"split_method": "streaming: seeded hash of each record's content, so identical records share a "
                                 "side (differs from the non-streamed split)"})
    if len(ds) < 2:
        raise DataUnavailableError(f"Only {len(ds)} usable training record(s): too few to carve a validation split.")
    # The paper's split by seed, of positions (the permutation depends only on the length and the seed).
    positions = datasets.Dataset.from_dict({"i": np.arange(len(ds))}).train_test_split(test_size=fraction, seed=seed)
    validation = set(positions["test"]["i"])
    first: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    side = [first[key] in validation for key in keys]  # the side of the content's first occurrence
    moved = sum(side[i] != (i in validation) for i in range(len(ds)))
    order = [*positions["test"]["i"], *positions["train"]["i"]]
    info = {"duplicates": len(keys) - len(first), "moved": moved,
            "split_method": "datasets.train_test_split(test_size=val_fraction, seed=seed), as the paper, then each "
                            "record repeating an earlier one's content kept on that one's side "
                            f"({len(keys) - len(first)} duplicate(s), {moved} moved)"}
    return ds.select([i for i in order if not side[i]]), ds.select([i for i in order if side[i]]), info


def _is_empty(ds: AnyDataset) -> bool:
    """No record in ``ds``; a stream is read up to its first record (all of it, when it has none)."""
    if isinstance(ds, datasets.IterableDataset):
        return next(iter(ds), None) is None
    return len(ds) == 0


def load_test_sets(cfg: ExperimentConfig, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS,
                   max_positions: int = MAX_TARGET_POSITIONS, skip_empty: bool = False
                   ) -> tuple[dict[str, AnyDataset], dict, bool]:
    """The test sets named by ``cfg.test_set_names()`` (one per variety), filtered and counted.

    Clips with an empty transcript are kept and scored (counted in ``empty_transcript_scored``): hallucination
    on silence must show in the WER. ``skip_empty``: a local test set that is missing or has no rows is
    reported (``rows_used`` 0 and ``empty``: why) and left out instead of raising (hub sets always raise: that
    is a network or name problem). Returns ({variety: dataset}, {variety: report}, synthetic). The training
    data are not touched.
    """
    tests, report, synthetic = {}, {}, cfg.source == "sample"
    varieties = [v for name in cfg.test_set_names() for v in dialects.get(name).parts]
    for variety in varieties:
        report[variety] = {"hub_id": dialects.get(variety).hub_test[0] if cfg.source == "hub" else None}
        try:
            ds, synth, revision = load_raw(variety, "test", cfg.source, cfg.data_path, cfg.streaming,
                                           len(varieties) > 1, cfg.feature_cache)
            synthetic |= synth
            report[variety]["hub_revision"] = revision
            fmt = _record_format(_columns_of(ds))
            ds = _take(_filter_records(ds, fmt, tokenizer, max_seconds, report[variety], max_positions,
                                      score_empty=True), cfg.max_test_samples)
        except (DataUnavailableError, FileNotFoundError) as e:
            if not skip_empty or cfg.source == "hub":
                raise
            report[variety].update(rows_used=0, empty=str(e))  # reported, and scored as no test set
            continue
        tests[variety] = _numpy_features(ds, fmt)
    return tests, report, synthetic


def is_saved_dataset(path) -> bool:
    """A directory written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict)."""
    path = Path(path)
    return path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json"))


def dialect_names(values: list, where: str, allow_empty: bool = False) -> list[str]:
    """The sorted registry names of a 'dialect' column's ``values`` (``allow_empty``: empty cells and None are
    passed over). Raises ValueError naming ``where`` (the manifest or dataset), each unknown value and the first
    row (1-based) that holds it."""
    names, unknown = set(), {}
    for row, value in enumerate(values, start=1):
        if allow_empty and (value is None or not str(value).strip()):
            continue
        known = dialects.REGISTRY.get(str(value).strip().lower())
        if known:
            names.add(known.name)
        else:
            unknown.setdefault(str(value), row)
    if unknown:
        raise ValueError(f"{where} has unknown dialect(s) in its 'dialect' column: "
                         + ", ".join(f"{v!r} (first at row {row})" for v, row in unknown.items())
                         + f". Valid names: {', '.join(dialects.NAMES)}; fix those values.")
    return sorted(names)


def load_test_path(path, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS, test_sets: Optional[list] = None,
                   max_test_samples: Optional[int] = None, max_positions: int = MAX_TARGET_POSITIONS
                   ) -> tuple[dict[str, AnyDataset], dict, bool]:
    """Test data from one manifest file (``.jsonl``/``.csv``: ``audio`` + ``text``, optional ``dialect``) or
    one ``save_to_disk`` directory (features or audio records; a DatasetDict's ``test`` split, else its only
    split), whatever its name. Rows with a ``dialect`` column form one test set per dialect; otherwise the
    data is one test set named after the file or directory. ``test_sets`` keeps only those names; a requested
    name with no rows is reported (``rows_used`` 0, ``empty``), not an error.

    Returns ({name: dataset}, {name: report}, synthetic), like :func:`load_test_sets`.
    """
    path = Path(path)
    if path.is_file() and path.suffix in MANIFEST_EXTENSIONS:
        columns = read_manifest(path)
        if "dialect" in columns:
            parts, synthetic = {}, False
            for name in dialect_names(columns["dialect"].astype(str).tolist(), f"The manifest {path}"):
                parts[name], synth = _load_manifest(path, name, pooled=True)
                synthetic |= synth
        else:
            ds, synthetic = _load_manifest(path, "", pooled=False)
            parts = {path.stem: ds}
    elif is_saved_dataset(path):
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["test"] if "test" in ds else ds[next(iter(ds))] if len(ds) == 1 else None
            if ds is None:
                raise ValueError(f"{path} holds the splits {sorted(datasets.load_from_disk(str(path)))}: "
                                 "which one is the test set? Save only it, or name it 'test'.")
        if "dialect" in ds.column_names:
            names = dialect_names(ds["dialect"], f"The dataset {path}")
            parts = {n: ds.filter(lambda r, n=n: str(r["dialect"]).lower() == n) for n in names}
        else:
            parts = {path.name: ds}
        synthetic = False
    else:
        raise FileNotFoundError(f"{path} is neither a manifest ({', '.join(MANIFEST_EXTENSIONS)}) nor a "
                                "save_to_disk directory.")
    wanted = [dialects.get(t).name if t.lower() in dialects.REGISTRY else t for t in test_sets] if test_sets else list(parts)
    tests, report = {}, {}
    for name in wanted:
        report[name] = {"path": str(path)}
        if name not in parts:
            report[name].update(rows_in=0, rows_used=0, empty=f"{path} has no rows for {name!r}.")
            continue
        fmt = _record_format(_columns_of(parts[name]))
        ds = _take(_filter_records(parts[name], fmt, tokenizer, max_seconds, report[name], max_positions,
                                  score_empty=True), max_test_samples)
        tests[name] = _numpy_features(ds, fmt)
    return tests, report, synthetic


def load_splits(cfg: ExperimentConfig, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS,
                max_positions: int = MAX_TARGET_POSITIONS) -> DataSplits:
    """Train, validation and test sets for ``cfg.dialect`` from ``cfg.source``, filtered and counted.

    ``max_seconds`` / ``max_positions``: the model's encoder window and decoder positions (records beyond them
    are filtered, counted). Raises :class:`DataUnavailableError` when the validation or the training split
    comes out empty: at load time, before any training step."""
    if cfg.streaming and not cfg.max_eval_samples:
        raise ValueError("streaming=True needs max_eval_samples: the validation set is read from the stream once "
                         "and kept in memory (e.g. 500 utterances).")
    entry = dialects.get(cfg.dialect)
    synthetic = cfg.source == "sample"
    report: dict[str, Any] = {"source": cfg.source, "data_path": cfg.data_path, "streaming": cfg.streaming}

    train_parts, revisions, fmt = [], [], None
    for variety in entry.parts:
        ds, synth, revision = load_raw(variety, "train", cfg.source, cfg.data_path, cfg.streaming, entry.is_pooled,
                                       cfg.feature_cache)
        synthetic |= synth
        revisions.append(revision)
        fmt = _record_format(_columns_of(ds))
        train_parts.append(ds)
    train_parts, per_dialect = _mix(train_parts, entry.parts, cfg)
    pool = _concat(train_parts, cfg.seed)
    hub = cfg.source == "hub"
    report["train_pool"] = {"hub_ids": list(entry.hub_train) if hub else None, "hub_revisions": revisions if hub else None}
    if per_dialect:
        report["mixture"] = {"mixture": cfg.mixture, "max_train_per_dialect": cfg.max_train_per_dialect,
                             "records_per_dialect": per_dialect}
    keys = None if isinstance(pool, datasets.IterableDataset) else []
    pool = _filter_records(pool, fmt, tokenizer, max_seconds, report["train_pool"], max_positions, keys=keys)
    train, validation, split = _split_validation(pool, cfg.val_fraction, cfg.seed, keys)
    report["split_method"] = split.pop("split_method")
    report["train_pool"].update(split)  # duplicates and moved (not on a stream)
    train, validation = _take(train, cfg.max_train_samples), _take(validation, cfg.max_eval_samples)
    if cfg.train_fraction < 1.0:
        if isinstance(train, datasets.IterableDataset):
            raise ValueError("train_fraction < 1 needs a dataset of known size: set streaming=False.")
        train = _take(train, max(1, round(cfg.train_fraction * len(train))))
    if isinstance(validation, datasets.IterableDataset):
        # Validation runs every eval_steps: read its records from the stream once, not at every evaluation.
        validation = datasets.Dataset.from_list(list(validation))
    for name, empty in (("validation", len(validation) == 0), ("training", _is_empty(train))):
        if empty:
            seen = settle_counts(report["train_pool"]).get("rows_used")
            raise DataUnavailableError(
                f"The {name} split is empty ({seen} usable training records read, val_fraction={cfg.val_fraction}, "
                f"max_eval_samples={cfg.max_eval_samples}): training would fail at its first "
                f"{'evaluation' if name == 'validation' else 'step'}. Use more training data, "
                f"{'a larger' if name == 'validation' else 'a smaller'} val_fraction"
                f"{' or max_eval_samples' if name == 'validation' else ''}, or another seed.")
    if isinstance(train, datasets.IterableDataset):
        train = train.shuffle(seed=cfg.seed, buffer_size=_STREAM_SHUFFLE_BUFFER)
    train, validation = _numpy_features(train, fmt), _numpy_features(validation, fmt)

    tests, report["test"], test_synthetic = load_test_sets(cfg, tokenizer, max_seconds, max_positions)
    synthetic |= test_synthetic
    if not cfg.streaming:
        report.update(n_train=len(train), n_validation=len(validation),
                      n_test={k: len(v) for k, v in tests.items()})
    report["synthetic"] = synthetic
    report["format"] = fmt
    workers = _feature_workers(fmt, cfg.num_workers)
    report["feature_path"] = _feature_path(fmt, workers, cfg.feature_cache)
    if cfg.feature_cache:
        report["feature_cache"] = _cache_report(cfg)
    return DataSplits(train, validation, tests, fmt, cfg.source, synthetic, workers, report)


# --- the feature cache ---------------------------------------------------------------------------


def _cached_splits(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """(variety, split) of every single-variety split a run of ``cfg`` reads."""
    train = [(v, "train") for v in dialects.get(cfg.dialect).parts]
    return train + [(v, "test") for name in cfg.test_set_names() for v in dialects.get(name).parts]


def _extractor_settings(extractor) -> dict:
    return {k: getattr(extractor, k) for k in ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft")}


def build_feature_cache(cfg: ExperimentConfig, processor=None, splits: tuple[str, ...] = ("train", "test"),
                        log=print) -> dict[str, dict]:
    """Write into ``cfg.feature_cache`` every split a run of ``cfg`` reads (``splits`` of them: the training
    set's varieties and the test sets) that is not there yet, by one pass over ``cfg.source``; a hub source is
    streamed, so nothing but the cache is written to disk. Returns {"variety/split": its cache.json}, new or old.

    Features records (otozz) keep their ``input_features`` and ``labels`` (bitwise, float32; or float16 when
    ``cfg.feature_cache_dtype`` says so). Audio records get the log-mel of ``processor``'s feature extractor and
    the labels, as the model's collator computes them on the CPU; audio that cannot be used
    (undecodable, too short, longer than the window) is counted in the split's ``filtered``, not stored. Raises
    :class:`~arabicpeft.feature_cache.CacheError` for a split cached with another dtype or feature extractor.
    """
    from tqdm.auto import tqdm

    cache = FeatureCache(cfg.feature_cache)
    wanted = [(v, s) for v, s in dict.fromkeys(_cached_splits(cfg)) if s in splits]
    out = {}
    for variety, split in wanted:
        meta = cache.meta(variety, split)
        folder = cache.split_dir(variety, split)
        settings = _extractor_settings(processor.feature_extractor) if processor is not None else None
        if meta is not None:
            if meta["dtype"] != cfg.feature_cache_dtype:
                raise CacheError(f"{folder} is cached as {meta['dtype']}, this run asks for "
                                 f"{cfg.feature_cache_dtype}", "use another --feature-cache folder.")
            if meta.get("feature_extractor") and settings and meta["feature_extractor"] != settings:
                raise CacheError(
                    f"{folder} holds log-mel of another feature extractor ({meta['feature_extractor']}; this "
                    f"model's: {settings})", "use another --feature-cache folder (e.g. one per encoder window).")
            out[f"{variety}/{split}"] = meta
            continue
        pooled = sum(s == split for _, s in wanted) > 1
        ds, synthetic, revision = load_raw(variety, split, cfg.source, cfg.data_path, cfg.source == "hub", pooled)
        fmt = _record_format(_columns_of(ds))
        entry = dialects.get(variety)
        rows = len(ds) if hasattr(ds, "__len__") else (entry.train_rows if split == "train" else entry.test_rows)
        frames, mel_bins = N_FRAMES, N_MELS
        counts = collections.Counter({r: 0 for r in _FILTER_REASONS})
        if fmt == "audio":
            if processor is None:
                raise ValueError("Caching audio needs the model's processor (its feature extractor and tokenizer).")
            extractor = processor.feature_extractor
            frames, mel_bins = extractor.nb_max_frames, extractor.feature_size
            collator = backbones.get(resolve_model(cfg.model)).collator(processor, feature_device="cpu")

            def records():
                for record in ds:
                    reason = _reason(_check_audio_record, record, processor.tokenizer, extractor.chunk_length,
                                     MAX_TARGET_POSITIONS, True)  # empty transcripts: kept (test sets score them)
                    if reason:
                        counts[reason] += 1
                        continue
                    yield collator.features_and_labels(record)
        else:
            def records():
                for record in ds.with_format("numpy"):
                    yield input_features(record), record["labels"]
        need = cache.needed_bytes(rows, frames, mel_bins, cfg.feature_cache_dtype)
        free = cache.free_bytes()
        log(f"caching {variety} {split} ({rows} utterances, {fmt} records from {cfg.source}) into {folder}: "
            f"at most {need / 2**30:.1f} GiB (every clip filling the {frames}-frame window), {free / 2**30:.1f} GiB free")
        info = {"source": cfg.source, "data_path": cfg.data_path if cfg.source == "local" else None,
                "variety": variety, "split": split, "source_format": fmt, "synthetic": synthetic,
                "hub_id": (entry.hub_train if split == "train" else entry.hub_test)[0] if cfg.source == "hub" else None,
                "hub_revision": revision, "feature_extractor": settings if fmt == "audio" else None,
                "model": cfg.model if fmt == "audio" else None, "filtered": counts,
                "built_utc": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
                "versions": {"datasets": datasets.__version__, "numpy": np.__version__}}
        with tqdm(total=rows, desc=f"cache {variety} {split}", unit="utt", leave=False) as bar:
            cache.write(variety, split, records(), cfg.feature_cache_dtype, info, progress=lambda n: bar.update(1))
        out[f"{variety}/{split}"] = cache.meta(variety, split)
        written = out[f"{variety}/{split}"]
        log(f"  {written['records']} utterances, {written['bytes'] / 2**20:.1f} MiB, "
            f"{written['bytes_per_record'] / 1e3:.1f} kB each: {written['ratio_vs_arrow_float32']:.1f}x fewer bytes "
            "than Arrow float32 features" + (f"; not cached: {dict((k, n) for k, n in counts.items() if n)}"
                                              if sum(counts.values()) else ""))
    return out


_CACHE_REPORT_KEYS = ("dtype", "lossless", "records", "bytes_per_record", "ratio_vs_arrow_float32", "source_format",
                     "filtered", "hub_revision", "built_utc")


def _cache_report(cfg: ExperimentConfig) -> dict:
    """For the results file: {"variety/split": what its cache.json says} of every cached split ``cfg`` reads."""
    out = {"root": str(cfg.feature_cache)}
    for variety, split in dict.fromkeys(_cached_splits(cfg)):
        meta = FeatureCache(cfg.feature_cache).meta(variety, split)
        if meta is not None:
            out[f"{variety}/{split}"] = {k: meta.get(k) for k in _CACHE_REPORT_KEYS}
    return out


# --- batching --------------------------------------------------------------------------------------


_MAX_FEATURE_WORKERS = 4  # DataLoader workers chosen for audio on a GPU: 8 clips of log-mel take ~0.1 s on one core


def _feature_workers(fmt: str, num_workers: int) -> int:
    """DataLoader workers for a run: ``num_workers`` as asked, except audio on a GPU with none asked, which gets
    up to :data:`_MAX_FEATURE_WORKERS` (one core left to the main process), so the log-mel of the next batches is
    computed on the CPU while the GPU steps. Measured on an H200 (whisper-small shape, LoRA q/v, bf16, batch 8):
    a step takes 65 ms; the log-mel of its 8 clips 105 ms on one core, 16.5 ms batched on the GPU; in workers
    it overlaps the step. With a single core: 0 (the collator then batches the log-mel on the GPU)."""
    if fmt != "audio" or num_workers or not torch.cuda.is_available():
        return num_workers
    return min(_MAX_FEATURE_WORKERS, max(0, (os.cpu_count() or 1) - 1))


def _feature_path(fmt: str, num_workers: int = 0, cache: Optional[str] = None) -> str:
    """How the log-mel model inputs of a run are obtained, in words, for the results file (where the model's
    collator computes them, chosen automatically: :mod:`arabicpeft.backbones`)."""
    if cache:
        return f"read from the feature cache {cache} (computed once, when it was built)"
    if fmt == "features":
        return "precomputed (the records' input_features)"
    if torch.cuda.is_available() and num_workers == 0:
        return "computed per batch on the GPU (feature extractor's torch path) in the collator"
    where = f"in {num_workers} DataLoader worker processes" if num_workers else "in the main process"
    return f"computed per clip on the CPU {where}"
