"""A compact on-disk cache of Whisper log-mel features: only the frames that carry audio are stored.

Whisper pads every clip with zeros to its window (30 s: 3000 frames) before the log-mel. After its
normalisation (``log10(max(mel, 1e-10))``, clamped at ``max - 8``, then ``(x + 4) / 4``) every frame of that
zero padding holds one value in all mel bins: ``(max(max_log - 8, -10) + 4) / 4``. So a clip is stored as its
frames up to the last one that differs (bitwise) from the padding value, plus that value (4 bytes), and the
80 x 3000 model input is rebuilt **bitwise identical** by :func:`input_features`. The value is stored, not derived:
``max - 2`` of the stored features held bitwise on all 72 sample-set clips, but float rounding makes
``fl(fl(M + 4) - 8)`` differ from ``fl(fl(M - 8) + 4)`` for ~11% of maxima M drawn uniformly in [-2, 4], and
quiet clips (``max_log < -2``) pad at the ``1e-10`` floor instead. Trailing frames that equal the padding
value (a clip's own silent end) are trimmed too; they are restored exactly all the same.

Storage: one Arrow file per split (pyarrow IPC stream, the format ``datasets`` memory-maps), written record
batch by record batch while the source is read once (streamed from the hub, or any local/sample set), and
opened with :func:`datasets.Dataset.from_file`. Columns (one record = one utterance):

- ``log_mel``: the kept frames, mel-major, flattened: ``mel_bins x kept_frames`` values, float32 (lossless)
  or float16 (half the bytes; lossy, its WER effect measured by ``python benchmarks/cache.py``);
- ``pad_value``: float32, the padding value of the frames not stored;
- ``input_shape``: ``[mel_bins, frames]`` of the model input (e.g. ``[80, 3000]``);
- ``labels``: int64 token ids, as the otozz sets hold them (prefix and ``<|endoftext|>`` included).

Each split folder ``{root}/{hub_name}_{split}_set/`` holds ``log_mel.arrow`` and ``cache.json`` (what it was
built from, counts, bytes), which is written last: a folder without it is an unfinished build.

Public: :data:`Dtype`, :data:`DTYPES`, :data:`COLUMNS`, :data:`DATA_FILE`, :class:`CacheError`, :func:`input_features`,
:class:`FeatureCache`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
import typing
from typing import Callable, Iterable, Literal, Optional

import numpy as np

from . import dialects
from .audio import audio_frames
from .errors import UserError

Dtype = Literal["float32", "float16"]  # values of a cache: float32 is lossless; float16 halves the stored frames
DTYPES = typing.get_args(Dtype)
COLUMNS = ("log_mel", "pad_value", "input_shape", "labels")
DATA_FILE = "log_mel.arrow"
_META_FILE = "cache.json"
_FORMAT_VERSION = 1
_WRITE_BATCH = 64  # records per Arrow record batch (~8 MB of 4 s clips)
_DISK_MARGIN_BYTES = 1 << 30  # a build stops while at least this much disk is still free


class CacheError(UserError):
    """A feature cache that cannot be used or written; the message says why and what to do."""


def _trim(features: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """``(kept, pad_value)``: the frames of ``features`` (mel_bins x frames, float32) up to the last frame that
    is not, in every mel bin, bitwise equal to the last frame's value (:func:`arabicpeft.audio.audio_frames`),
    and that value."""
    features = np.ascontiguousarray(features, dtype=np.float32)
    return features[:, :int(audio_frames(features))], features[0, -1]


def _compact(features: np.ndarray, labels, dtype: str = "float32") -> dict:
    """One cache record from a model input ``features`` (mel_bins x frames, float32) and its ``labels``."""
    if dtype not in DTYPES:
        raise ValueError(f"Unknown cache dtype {dtype!r}: choose one of {', '.join(DTYPES)}.")
    kept, pad_value = _trim(features)
    return {"log_mel": kept.astype(dtype).ravel(), "pad_value": np.float32(pad_value),
            "input_shape": np.asarray(features.shape, dtype=np.int32), "labels": np.asarray(labels, dtype=np.int64)}


def input_features(record: dict) -> np.ndarray:
    """The model input of a features record, float32 (mel bins x frames): an otozz record's ``input_features``,
    or rebuilt from a cache record: ``input_shape``, the kept frames, then the padding value; bitwise the
    features the record was made from when the cache is float32."""
    if "input_features" in record:
        return np.asarray(record["input_features"], dtype=np.float32)
    mel_bins, frames = (int(x) for x in np.asarray(record["input_shape"]))
    kept = np.asarray(record["log_mel"]).reshape(mel_bins, -1)
    out = np.full((mel_bins, frames), np.float32(record["pad_value"]), dtype=np.float32)
    out[:, : kept.shape[1]] = kept
    return out


class FeatureCache:
    """The feature cache in folder ``root``: one split folder per (single variety, split), see the module
    docstring."""

    def __init__(self, root):
        self.root = Path(root)

    def split_dir(self, variety: str, split: str) -> Path:
        """The folder of one single-variety split: ``{root}/{hub_name}_{split}_set`` (as a local data folder)."""
        return self.root / f"{dialects.variety(variety).hub_name}_{split}_set"

    def meta(self, variety: str, split: str) -> Optional[dict]:
        """What ``cache.json`` of a finished split says, or None when the split is not (completely) cached.
        Raises :class:`CacheError` when ``cache.json`` is not readable JSON."""
        meta = self.split_dir(variety, split) / _META_FILE
        if not meta.is_file():
            return None
        try:
            return json.loads(meta.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _broken(meta, e) from e

    def open(self, variety: str, split: str):
        """(``datasets.Dataset`` of cache records, memory-mapped; its ``cache.json``). Raises :class:`CacheError`
        when the split is not in the cache, has another format version, or its ``cache.json`` or
        :data:`DATA_FILE` is missing or broken (e.g. truncated); the message says which file and what to do."""
        import datasets
        import pyarrow as pa

        meta = self.meta(variety, split)
        if meta is None:
            raise CacheError(f"the feature cache {self.root} holds no finished {variety} {split} split",
                             f"build it: python -m arabicpeft cache --dialect {variety} --splits {split} "
                             f"--output-dir {self.root} (with the --source and --data-path of your data)")
        if meta.get("format_version") != _FORMAT_VERSION:
            raise CacheError(f"the feature cache {self.split_dir(variety, split)} has format version "
                             f"{meta.get('format_version')}, this arabicpeft reads {_FORMAT_VERSION}",
                             "delete that folder and build it again.")
        data = self.split_dir(variety, split) / DATA_FILE
        try:
            return datasets.Dataset.from_file(str(data)), meta
        except (pa.ArrowException, OSError) as e:  # ArrowInvalid for a truncated file, FileNotFoundError
            raise _broken(data, e) from e

    def write(self, variety: str, split: str, records: Iterable[tuple[np.ndarray, list]], dtype: str = "float32",
              meta: Optional[dict] = None, progress: Optional[Callable[[int], None]] = None) -> _Written:
        """Write ``(features, labels)`` pairs (features: mel_bins x frames float32) as the split's folder.

        Written into ``<folder>.partial`` and renamed when complete, ``cache.json`` (``meta`` plus counts and
        bytes) last: an interrupted build leaves no split that looks finished. Stops with :class:`CacheError`
        when the disk's free space falls below :data:`_DISK_MARGIN_BYTES`."""
        return _write_split(records, self.split_dir(variety, split), dtype, meta, progress)

    def free_bytes(self) -> int:
        """Free disk space where the cache is (or would be created), in bytes."""
        return shutil.disk_usage(next(p for p in (self.root, *self.root.parents) if p.exists())).free

    @staticmethod
    def needed_bytes(records: int, kept_frames: float, mel_bins: int, dtype: str = "float32") -> int:
        """Bytes a split of ``records`` utterances takes at ``kept_frames`` frames of ``mel_bins`` values each on
        average (worst case: the whole window), values plus ~1 KB of labels and offsets per record."""
        return int(records * (mel_bins * kept_frames * np.dtype(dtype).itemsize + 1024))


def _broken(file: Path, error: Exception) -> CacheError:
    return CacheError(f"the feature cache file {file} is missing or broken ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''})",
                      f"delete that split folder ({file.parent}) and build it again with python -m arabicpeft "
                      "cache.")


def _schema(dtype: str):
    import datasets

    return datasets.Features({"log_mel": datasets.List(datasets.Value(dtype)), "pad_value": datasets.Value("float32"),
                              "input_shape": datasets.List(datasets.Value("int32"), length=2),
                              "labels": datasets.List(datasets.Value("int64"))}).arrow_schema


@dataclass
class _Written:
    """What :meth:`FeatureCache.write` wrote: records, bytes of the Arrow file, frames kept and model-input values
    (mel bins x frames) summed over the records."""

    records: int
    bytes: int
    kept_frames: int
    input_values: int

    @property
    def ratio(self) -> float:
        """Bytes of the same model inputs as Arrow float32 / bytes of this cache."""
        return 4 * self.input_values / self.bytes if self.bytes else float("nan")


def _write_split(records: Iterable[tuple[np.ndarray, list]], folder: Path, dtype: str, meta: Optional[dict],
                 progress: Optional[Callable[[int], None]]) -> _Written:
    """:meth:`FeatureCache.write` into ``folder``."""
    import pyarrow as pa

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    schema = _schema(dtype)
    n = kept_frames = input_values = 0
    batch: list[dict] = []

    def flush(writer) -> None:
        if batch:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
            batch.clear()
            free = shutil.disk_usage(partial).free
            if free < _DISK_MARGIN_BYTES:
                raise CacheError(f"only {free / 2**30:.2f} GiB of disk left after {n} records of {folder.name} "
                                 f"({(partial / DATA_FILE).stat().st_size / 2**30:.2f} GiB written)",
                                 "free disk space or put the cache elsewhere (--feature-cache), then rerun.")

    with pa.OSFile(str(partial / DATA_FILE), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for features, labels in records:
            record = _compact(features, labels, dtype)
            kept_frames += record["log_mel"].size // features.shape[0]
            input_values += features.size
            batch.append(record)
            n += 1
            if len(batch) == _WRITE_BATCH:
                flush(writer)
            if progress:
                progress(n)
        flush(writer)
    size = (partial / DATA_FILE).stat().st_size
    written = _Written(n, size, kept_frames, input_values)
    info = {**(meta or {}), "format_version": _FORMAT_VERSION, "dtype": dtype, "lossless": dtype == "float32",
            "records": n, "bytes": size, "bytes_per_record": size / n if n else None,
            "kept_frames_mean": kept_frames / n if n else None,
            # the same model inputs as Arrow float32 (otozz: 80 x 3000 x 4 bytes each) / this file
            "ratio_vs_arrow_float32": written.ratio if n else None}
    (partial / _META_FILE).write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return written

