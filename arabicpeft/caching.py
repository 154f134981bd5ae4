"""Caching a run's data: the compact log-mel cache (:mod:`arabicpeft.feature_cache`) of every split a run reads,
built in one pass over its source, read back in the source's stead, and what a results file says of it.

A cached split remembers what it was built from (source, data path, hub commit, feature extractor, dtype): a run
that reads it from another source, or a build that would mix dtypes or feature extractors, is refused with a
:class:`~arabicpeft.feature_cache.CacheError` that says what to do.

Public: :func:`run_splits`, :func:`build_feature_cache`, :func:`read_cached`, :func:`cache_report`.
"""

from __future__ import annotations

import collections
from dataclasses import replace

import datasets
import numpy as np
import pandas as pd

from . import backbones, dialects, sources
from .feature_cache import CacheError, FeatureCache, input_features
from .offline_model import MAX_TARGET_POSITIONS, N_FRAMES, N_MELS, resolve_model
from .records import FILTER_REASONS, check_audio_record, columns_of, filter_reason, record_format

_CACHE_REPORT_KEYS = ("dtype", "lossless", "records", "bytes_per_record", "ratio_vs_arrow_float32", "source_format",
                     "filtered", "hub_revision", "built_utc")


def run_splits(cfg) -> list[tuple[str, str]]:
    """(variety, split) of every single-variety split a run of ``cfg`` reads: its training set's varieties, then
    its test sets'."""
    train = [(v, "train") for v in cfg.parts(cfg.dialect)]
    return train + [(v, "test") for name in cfg.test_set_names() for v in cfg.parts(name)]


def _built_from(cfg) -> tuple:
    """What a cached split must have been built from to stand in for ``cfg``'s source: (source, data path)."""
    return cfg.source, cfg.data_path if sources.of(cfg).needs_data_path else None


def _extractor_settings(extractor) -> dict:
    return {k: getattr(extractor, k) for k in ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft")}


def read_cached(cfg, variety: str, split: str) -> sources.SourceSplit:
    """One single-variety split from the feature cache ``cfg.feature_cache``, in the source's order (streamed when
    ``cfg.streaming``). :class:`~arabicpeft.feature_cache.CacheError` when it is not there or was built from
    another source (:func:`build_feature_cache` writes it)."""
    cache = FeatureCache(cfg.feature_cache)
    ds, meta = cache.open(variety, split)
    built = (meta.get("source"), meta.get("data_path"))
    if built != _built_from(cfg):
        raise CacheError(
            f"the feature cache {cache.split_dir(variety, split)} was built from source "
            f"{built[0]}{' ' + str(built[1]) if built[1] else ''}, this run reads source {cfg.source}",
            "point --feature-cache at another folder, or delete that split to rebuild it.")
    return sources.SourceSplit(ds.to_iterable_dataset() if cfg.streaming else ds, meta.get("hub_revision"),
                               meta.get("hub_id"), bool(meta.get("synthetic")))


def build_feature_cache(cfg, processor=None, splits: tuple[str, ...] = ("train", "test"),
                        log=print) -> dict[str, dict]:
    """Write into ``cfg.feature_cache`` every split a run of ``cfg`` reads (``splits`` of them: the training
    set's varieties and the test sets) that is not there yet, by one pass over ``cfg.source``; a hub source is
    streamed, so nothing but the cache is written to disk. Returns {"variety/split": its cache.json}, new or old.

    Features records (otozz) keep their ``input_features`` and ``labels`` (bitwise, float32; or float16 when
    ``cfg.feature_cache_dtype`` says so). Audio records get the log-mel of ``processor``'s feature extractor, as
    the model's collator (:mod:`arabicpeft.backbones`) computes it on the CPU, and the tokenizer's labels; audio that cannot
    be used (undecodable, too short, longer than the window) is counted in the split's ``filtered``, not stored.
    Raises :class:`~arabicpeft.feature_cache.CacheError` for a split cached with another dtype or feature
    extractor.
    """
    cache = FeatureCache(cfg.feature_cache)
    wanted = [(v, s) for v, s in dict.fromkeys(run_splits(cfg)) if s in splits]
    settings = _extractor_settings(processor.feature_extractor) if processor is not None else None
    out = {}
    for variety, split in wanted:
        meta = cache.meta(variety, split)
        if meta is None:
            pooled = sum(s == split for _, s in wanted) > 1
            meta = _build_split(cfg, cache, processor, variety, split, pooled, log)
        else:
            _check_built(meta, cfg, settings, cache.split_dir(variety, split))
        out[f"{variety}/{split}"] = meta
    return out


def _check_built(meta: dict, cfg, settings, folder) -> None:
    """A cached split may be reused by ``cfg``: the same dtype, and log-mel of the same feature extractor."""
    if meta["dtype"] != cfg.feature_cache_dtype:
        raise CacheError(f"{folder} is cached as {meta['dtype']}, this run asks for {cfg.feature_cache_dtype}",
                         "use another --feature-cache folder.")
    if meta.get("feature_extractor") and settings and meta["feature_extractor"] != settings:
        raise CacheError(
            f"{folder} holds log-mel of another feature extractor ({meta['feature_extractor']}; this model's: "
            f"{settings})", "use another --feature-cache folder (e.g. one per encoder window).")


def _model_inputs(ds, fmt: str, processor, model: str, counts: collections.Counter):
    """(frames and mel bins of the model input, the (log-mel, label ids) of each usable record of ``ds``, lazily: audio as the
    collator of ``model``'s backbone computes it on the CPU); unusable audio is counted into ``counts`` as it is
    met."""
    if fmt != "audio":
        return N_FRAMES, N_MELS, ((input_features(r), r["labels"]) for r in ds.with_format("numpy"))
    if processor is None:
        raise ValueError("Caching audio needs the model's processor (its feature extractor and tokenizer).")
    extractor, tokenizer = processor.feature_extractor, processor.tokenizer
    collator = backbones.get(resolve_model(model)).collator(processor, feature_device="cpu")

    def records():
        for record in ds:
            reason = filter_reason(check_audio_record, record, tokenizer, extractor.chunk_length,
                                   MAX_TARGET_POSITIONS, True)  # empty transcripts: kept (test sets score them)
            if reason:
                counts[reason] += 1
                continue
            yield collator.features_and_labels(record)  # tests/test_feature_cache.py: bitwise as in training

    return extractor.nb_max_frames, extractor.feature_size, records()


def _build_split(cfg, cache: FeatureCache, processor, variety: str, split: str, pooled: bool, log) -> dict:
    """Cache one single-variety split of ``cfg.source``; returns its cache.json."""
    from tqdm.auto import tqdm

    read = sources.load_raw(replace(cfg, streaming=sources.of(cfg).needs_hub), variety, split, pooled)
    ds, folder = read.dataset, cache.split_dir(variety, split)
    fmt = record_format(columns_of(ds))
    entry = dialects.variety(variety)
    rows = len(ds) if hasattr(ds, "__len__") else (entry.train_rows if split == "train" else entry.test_rows)
    counts = collections.Counter({r: 0 for r in FILTER_REASONS})
    frames, mel_bins, records = _model_inputs(ds, fmt, processor, cfg.model, counts)
    need, free = cache.needed_bytes(rows, frames, mel_bins, cfg.feature_cache_dtype), cache.free_bytes()
    log(f"caching {variety} {split} ({rows} utterances, {fmt} records from {cfg.source}) into {folder}: "
        f"at most {need / 2**30:.1f} GiB (every clip filling the {frames}-frame window), {free / 2**30:.1f} GiB free")
    audio = fmt == "audio"
    info = {"source": cfg.source, "data_path": _built_from(cfg)[1], "variety": variety, "split": split,
            "source_format": fmt, "synthetic": read.synthetic, "hub_id": read.hub_id, "hub_revision": read.revision,
            "feature_extractor": _extractor_settings(processor.feature_extractor) if audio else None,
            "model": cfg.model if audio else None, "filtered": counts,
            "built_utc": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "versions": {"datasets": datasets.__version__, "numpy": np.__version__}}
    with tqdm(total=rows, desc=f"cache {variety} {split}", unit="utt", leave=False) as bar:
        cache.write(variety, split, records, cfg.feature_cache_dtype, info, progress=lambda n: bar.update(1))
    written = cache.meta(variety, split)
    log(f"  {written['records']} utterances, {written['bytes'] / 2**20:.1f} MiB, "
        f"{written['bytes_per_record'] / 1e3:.1f} kB each: {written['ratio_vs_arrow_float32']:.1f}x fewer bytes "
        "than Arrow float32 features" + (f"; not cached: {dict((k, n) for k, n in counts.items() if n)}"
                                          if sum(counts.values()) else ""))
    return written


def cache_report(cfg) -> dict:
    """For the results file: {"variety/split": what its cache.json says} of every cached split ``cfg`` reads."""
    out = {"root": str(cfg.feature_cache)}
    for variety, split in dict.fromkeys(run_splits(cfg)):
        meta = FeatureCache(cfg.feature_cache).meta(variety, split)
        if meta is not None:
            out[f"{variety}/{split}"] = {k: meta.get(k) for k in _CACHE_REPORT_KEYS}
    return out
