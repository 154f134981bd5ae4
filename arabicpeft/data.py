"""Train / validation / test data for a dialect, from the hub, a local copy, or the embedded sample set.

Two record formats go through the same path:

- **features** (the otozz hub sets): ``input_features`` (80 x 3000 log-mel) and ``labels`` (token ids with
  the ``<|startoftranscript|><|ar|><|transcribe|><|notimestamps|>`` prefix and ``<|endoftext|>`` suffix);
- **audio**: ``audio`` (a path, bytes or array) and ``text``; log-mel features are computed on the fly by
  :class:`SpeechCollator`, never stored.

The validation split is carved from train by the seed (80/20, as the paper), the test set is never used for
model selection, and every filtered record is counted by reason in :attr:`DataSplits.report`.
"""

from __future__ import annotations

import collections
import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import datasets
import numpy as np
import pandas as pd
import torch

from . import audio as audio_lib
from . import dialects
from .config import ExperimentConfig

MAX_LABEL_TOKENS = 448  # Whisper's decoder positions (max_target_positions)
FILTER_REASONS = ("empty_transcript", "too_short", "too_long", "labels_too_long", "undecodable")
SAMPLE_DIR = Path(__file__).parent / "sample_data"
MANIFEST_EXTENSIONS = (".jsonl", ".csv")
HUB_HOST = "huggingface.co"
STREAM_SHUFFLE_BUFFER = 1_000  # records held to shuffle a training stream (~1 GB of otozz features)

AnyDataset = Union[datasets.Dataset, datasets.IterableDataset]


class DataUnavailableError(RuntimeError):
    """The requested data cannot be read; we stop rather than train on anything else."""


class InvalidRecord(ValueError):
    """One record that cannot be used; ``reason`` is one of :data:`FILTER_REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class DataSplits:
    train: AnyDataset
    validation: AnyDataset
    test: dict[str, AnyDataset]
    format: str  # "features" or "audio"
    source: str
    synthetic: bool
    report: dict = field(default_factory=dict)  # sizes and filter counts, copied into the results file


# --- record checks ---------------------------------------------------------------------------------


def record_format(columns) -> str:
    columns = set(columns)
    if {"input_features", "labels"} <= columns:
        return "features"
    if {"audio", "text"} <= columns:
        return "audio"
    raise ValueError(
        f"Unrecognised record format with columns {sorted(columns)}: expected 'input_features' + 'labels' "
        "(otozz feature sets) or 'audio' + 'text' (audio with transcripts)."
    )


def check_labels(labels, tokenizer) -> None:
    """Raise :class:`InvalidRecord` for labels longer than 448 tokens or with no transcript tokens."""
    if len(labels) > MAX_LABEL_TOKENS:
        raise InvalidRecord(
            "labels_too_long",
            f"The transcript is {len(labels)} tokens long; Whisper's decoder takes at most {MAX_LABEL_TOKENS}. "
            "Split the utterance or drop it.",
        )
    if not tokenizer.decode(labels, skip_special_tokens=True).strip():
        raise InvalidRecord("empty_transcript", "The transcript is empty: there is nothing to learn or score.")


def check_audio_record(record: dict, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS) -> None:
    """Validate one audio record (decodes it); raises :class:`InvalidRecord` with a reason and a message.

    A missing audio file raises :class:`FileNotFoundError`: that is a broken path, not a bad utterance.
    """
    text = record.get("text")
    if text is None or not str(text).strip():
        raise InvalidRecord("empty_transcript", "The transcript is empty: there is nothing to learn or score.")
    try:
        samples = audio_lib.load_audio(record["audio"])
    except audio_lib.AudioError as e:
        raise InvalidRecord("undecodable", str(e)) from e
    try:
        audio_lib.check_duration(samples, max_seconds=max_seconds)
    except audio_lib.AudioError as e:
        reason = "too_short" if len(samples) < audio_lib.MIN_SECONDS * audio_lib.SAMPLE_RATE else "too_long"
        raise InvalidRecord(reason, str(e)) from e
    check_labels(tokenizer(str(text)).input_ids, tokenizer)


def columns_of(ds: AnyDataset) -> list[str]:
    """Column names; a stream whose schema is not known up front is peeked at (one record)."""
    if ds.column_names:
        return list(ds.column_names)
    return list(next(iter(ds)).keys())


def _reason(check, *args) -> Optional[str]:
    try:
        check(*args)
    except InvalidRecord as e:
        return e.reason
    return None


def filter_records(ds: AnyDataset, fmt: str, tokenizer, max_seconds: float, report: dict) -> AnyDataset:
    """Drop invalid records, counting each by reason into ``report`` (rows_in, rows_used, filtered)."""
    counts = collections.Counter({r: 0 for r in FILTER_REASONS})
    if fmt == "features":
        check, columns = (lambda r: _reason(check_labels, r["labels"], tokenizer)), ["labels"]
    else:
        check, columns = (lambda r: _reason(check_audio_record, r, tokenizer, max_seconds)), ["audio", "text"]

    if isinstance(ds, datasets.IterableDataset):
        # Streaming: counted as records go by, each record once however often (and in whatever order, the
        # stream being shuffled) it passes; the report dict is updated in place while training runs.
        report.update(rows_in=0, rows_used=0, filtered=counts, counted="while streaming: the records seen so far")
        seen: set[bytes] = set()

        def keep(record):
            reason = check(record)
            key = record_key(record)
            if key not in seen:
                seen.add(key)
                report["rows_in"] += 1
                if reason:
                    counts[reason] += 1
                else:
                    report["rows_used"] += 1
            return reason is None

        return ds.filter(keep)

    # Only the columns a check needs are read: the 0.96 MB feature arrays are never touched here.
    reasons = [check(r) for r in ds.select_columns(columns)]
    for reason in reasons:
        if reason:
            counts[reason] += 1
    kept = [i for i, reason in enumerate(reasons) if reason is None]
    report.update(rows_in=len(reasons), rows_used=len(kept), filtered=dict(counts))
    if not kept:
        raise DataUnavailableError(f"Every one of the {len(reasons)} records was filtered out: {dict(counts)}.")
    return ds.select(kept) if len(kept) < len(reasons) else ds


# --- sources ---------------------------------------------------------------------------------------


def hub_reachable(host: str = HUB_HOST, timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_offline_mode() -> bool:
    """HF_HUB_OFFLINE is set: the hub libraries use their local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _load_hub(repo_id: str, streaming: bool) -> AnyDataset:
    if not hub_offline_mode() and not hub_reachable():
        raise DataUnavailableError(
            f"Cannot reach {HUB_HOST} to load {repo_id}. Turn the internet on (Kaggle: Settings -> Internet), "
            "or download the data elsewhere and use source='local' with data_path pointing at it "
            "(a directory holding e.g. egyptian_train_set/ saved with save_to_disk). If the dataset is already "
            "in your HF cache, set HF_HUB_OFFLINE=1. Nothing else will be trained on instead."
        )
    try:
        return datasets.load_dataset(repo_id, split="train", streaming=streaming)
    except Exception as e:
        raise DataUnavailableError(
            f"Could not load the hub dataset {repo_id}: {e}. Nothing else will be trained on instead."
        ) from e


def _load_manifest(path: Path, variety: str, pooled: bool) -> tuple[datasets.Dataset, bool]:
    try:
        frame = (pd.read_json(path, lines=True, dtype=False) if path.suffix == ".jsonl"
                 else pd.read_csv(path, dtype=str))
    except ValueError as e:
        raise ValueError(f"Could not read the manifest {path}: {e}") from e
    if pooled and "dialect" not in frame:
        raise ValueError(f"{path} has no 'dialect' column, so the dialects of a pooled set cannot be told apart "
                         "(every one would read the whole file). Add the column, or train one dialect.")
    if "dialect" in frame:
        frame = frame[frame["dialect"].str.lower() == variety]
        if frame.empty:
            raise DataUnavailableError(f"{path} has no rows with dialect == {variety!r}.")
    missing = {"audio", "text"} - set(frame.columns)
    if missing:
        raise ValueError(f"Manifest {path} lacks the column(s) {sorted(missing)}: it needs 'audio' and 'text'.")
    # Relative audio paths are relative to the manifest; a missing file is a broken path, so it stops the run.
    frame = frame.assign(audio=[str((path.parent / a).resolve()) for a in frame["audio"].astype(str)])
    absent = [a for a in frame["audio"] if not os.path.exists(a)]
    if absent:
        raise FileNotFoundError(f"{len(absent)} audio file(s) listed in {path} do not exist, e.g. {absent[0]}.")
    frame = frame.assign(text=frame["text"].fillna("").astype(str))
    synthetic = bool("synthetic" in frame and frame["synthetic"].astype(str).str.lower().eq("true").all())
    return datasets.Dataset.from_pandas(frame.reset_index(drop=True), preserve_index=False), synthetic


def _load_local(root: Path, variety: str, split: str, streaming: bool, pooled: bool) -> tuple[AnyDataset, bool]:
    """``root`` holds either ``{hub_name}_{split}_set/`` (save_to_disk) or ``{split}.jsonl`` / ``{split}.csv``."""
    if not root.exists():
        raise FileNotFoundError(f"Local data directory not found: {root}.")
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
             streaming: bool = False, pooled: bool = False) -> tuple[AnyDataset, bool]:
    """One single-variety split ("train" or "test") from ``source``; returns (dataset, synthetic).

    ``pooled``: the variety is one of several read together (a manifest must then say which row is which)."""
    entry = dialects.get(variety)
    if entry.is_pooled:
        raise ValueError(f"load_raw takes a single variety, not the pooled {variety!r}.")
    if source == "hub":
        repo = entry.hub_train[0] if split == "train" else entry.hub_test[0]
        return _load_hub(repo, streaming), False
    root = SAMPLE_DIR if source == "sample" else Path(data_path or "")
    ds, synthetic = _load_local(root, variety, split, streaming, pooled)
    return ds, synthetic or source == "sample"


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


def record_key(record: dict) -> bytes:
    """A short digest of what a record says (its labels, or its audio and text), independent of its position."""
    if "labels" in record:
        content = np.asarray(record["labels"], dtype=np.int64).tobytes()
    else:
        audio = record["audio"]
        if isinstance(audio, dict):
            audio = audio.get("path") or hashlib.sha1(audio.get("bytes") or b"").hexdigest()
        content = f"{audio}\x00{record['text']}".encode()
    return hashlib.blake2b(content, digest_size=16).digest()


def _split_validation(ds: AnyDataset, fraction: float, seed: int) -> tuple[AnyDataset, AnyDataset]:
    if isinstance(ds, datasets.IterableDataset):
        # A stream has no random access and its order changes when shuffled: each record goes to validation by
        # a seeded hash of its content, so it lands on the same side in every pass.
        def is_val(record):
            digest = hashlib.blake2b(record_key(record), digest_size=8, key=str(seed).encode()).digest()
            return int.from_bytes(digest, "little") / 2**64 < fraction

        return ds.filter(lambda r: not is_val(r)), ds.filter(is_val)
    if len(ds) < 2:
        raise DataUnavailableError(f"Only {len(ds)} usable training record(s): too few to carve a validation split.")
    parts = ds.train_test_split(test_size=fraction, seed=seed)  # the paper's 80/20 split by seed
    return parts["train"], parts["test"]


def load_test_sets(cfg: ExperimentConfig, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS
                   ) -> tuple[dict[str, AnyDataset], dict, bool]:
    """The test sets named by ``cfg.test_set_names()`` (one per variety), filtered and counted.

    Returns ({variety: dataset}, {variety: report}, synthetic). The training data are not touched.
    """
    tests, report, synthetic = {}, {}, cfg.source == "sample"
    varieties = [v for name in cfg.test_set_names() for v in dialects.get(name).parts]
    for variety in varieties:
        ds, synth = load_raw(variety, "test", cfg.source, cfg.data_path, cfg.streaming, len(varieties) > 1)
        synthetic |= synth
        report[variety] = {"hub_id": dialects.get(variety).hub_test[0] if cfg.source == "hub" else None}
        fmt = record_format(columns_of(ds))
        ds = _take(filter_records(ds, fmt, tokenizer, max_seconds, report[variety]), cfg.max_test_samples)
        tests[variety] = ds.with_format("numpy") if fmt == "features" else ds
    return tests, report, synthetic


def load_splits(cfg: ExperimentConfig, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS) -> DataSplits:
    """Train, validation and test sets for ``cfg.dialect`` from ``cfg.source``, filtered and counted."""
    if cfg.streaming and not cfg.max_eval_samples:
        raise ValueError("streaming=True needs max_eval_samples: the validation set is read from the stream once "
                         "and kept in memory (e.g. 500 utterances).")
    entry = dialects.get(cfg.dialect)
    synthetic = cfg.source == "sample"
    report: dict[str, Any] = {"source": cfg.source, "data_path": cfg.data_path, "streaming": cfg.streaming}

    train_parts, fmt = [], None
    for variety in entry.parts:
        ds, synth = load_raw(variety, "train", cfg.source, cfg.data_path, cfg.streaming, entry.is_pooled)
        synthetic |= synth
        fmt = record_format(columns_of(ds))
        train_parts.append(ds)
    pool = _concat(train_parts, cfg.seed)
    report["train_pool"] = {"hub_ids": list(entry.hub_train) if cfg.source == "hub" else None}
    pool = filter_records(pool, fmt, tokenizer, max_seconds, report["train_pool"])
    train, validation = _split_validation(pool, cfg.val_fraction, cfg.seed)
    train, validation = _take(train, cfg.max_train_samples), _take(validation, cfg.max_eval_samples)
    if isinstance(train, datasets.IterableDataset):
        train = train.shuffle(seed=cfg.seed, buffer_size=STREAM_SHUFFLE_BUFFER)
        report["split_method"] = "streaming: seeded hash of each record's content (differs from the non-streamed split)"
    else:
        report["split_method"] = "datasets.train_test_split(test_size=val_fraction, seed=seed), as the paper"
    if fmt == "features":
        # numpy format hands the collator 80 x 3000 arrays directly: ~20x faster than nested Python lists.
        train, validation = train.with_format("numpy"), validation.with_format("numpy")
    if isinstance(validation, datasets.IterableDataset):
        # Validation runs every eval_steps: read its records from the stream once, not at every evaluation.
        validation = datasets.Dataset.from_list(list(validation))
        if fmt == "features":
            validation = validation.with_format("numpy")

    tests, report["test"], test_synthetic = load_test_sets(cfg, tokenizer, max_seconds)
    synthetic |= test_synthetic
    if not cfg.streaming:
        report.update(n_train=len(train), n_validation=len(validation),
                      n_test={k: len(v) for k, v in tests.items()})
    report["synthetic"] = synthetic
    report["format"] = fmt
    return DataSplits(train, validation, tests, fmt, cfg.source, synthetic, report)


# --- batching --------------------------------------------------------------------------------------


@dataclass
class SpeechCollator:
    """Pads a batch of either record format into ``input_features`` and ``labels`` (-100 = ignored).

    A leading ``<|startoftranscript|>`` is removed from each label sequence by comparing with
    ``decoder_start_token_id`` (50258), not ``bos_token_id`` (50257, <|endoftext|>): the model prepends it
    again when it shifts the labels right, so the decoder sees the otozz prefix exactly once.
    """

    processor: Any
    decoder_start_token_id: int

    def features_and_labels(self, record: dict) -> tuple[np.ndarray, list[int]]:
        extractor = self.processor.feature_extractor
        if "input_features" in record:
            features = np.asarray(record["input_features"], dtype=np.float32)
            expected = (extractor.feature_size, extractor.nb_max_frames)
            if features.shape != expected:
                raise ValueError(
                    f"input_features of shape {features.shape}, but the model takes {expected} "
                    "(mel bins x frames). otozz features are 80 x 3000: use an 80-mel Whisper (not large-v3) "
                    "and keep the full 30 s encoder window (encoder_seconds unset)."
                )
            return features, list(record["labels"])
        samples = audio_lib.load_audio(record["audio"])
        return audio_lib.log_mel(samples, extractor), self.processor.tokenizer(record["text"]).input_ids

    def __call__(self, records: list[dict]) -> dict[str, torch.Tensor]:
        features, labels = zip(*(self.features_and_labels(r) for r in records))
        labels = [ids[1:] if ids and ids[0] == self.decoder_start_token_id else ids for ids in labels]
        width = max(len(ids) for ids in labels)
        padded = torch.full((len(labels), width), -100, dtype=torch.long)
        for row, ids in enumerate(labels):
            padded[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return {"input_features": torch.from_numpy(np.stack(features)), "labels": padded}
