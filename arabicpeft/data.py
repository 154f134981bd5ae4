"""Train / validation / test data of a run: read from its source (:mod:`arabicpeft.sources`) or its feature cache
(:mod:`arabicpeft.caching`), checked and filtered with counts (:mod:`arabicpeft.records`), the validation split, the
pooled mixture; and the batching of records into model inputs.

Two record formats go through the same path: **features** (the otozz hub sets, or a feature cache: 80 x 3000
log-mel and label ids) and **audio** (audio and its transcript; log-mel features are computed on the fly by the
model's collator: its backbone's, :mod:`arabicpeft.backbones`, batched on the GPU when there is one).

The validation split is carved from train by the seed (80/20, as the paper) and by record content (a record
listed twice never lands on both sides: :func:`_split_validation`), the test set is never used for model
selection, and every filtered record is counted by reason in :attr:`DataSplits.report`.

Public: :data:`SYNTHETIC_NOTE`, :data:`AnyDataset`, :class:`DataUnavailableError`, :class:`DataSplits`,
:func:`settle_counts`, :func:`load_test_sets`, :func:`load_test_path`, :func:`load_splits`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import datasets
import numpy as np
import torch

from . import audio as audio_lib
from . import dialects, sources
from .caching import cache_report, read_cached
from .config import ExperimentConfig
from .errors import DataUnavailableError
from .offline_model import MAX_TARGET_POSITIONS
from .records import AnyDataset, columns_of, filter_records, record_format, record_key, settle_counts
from .whisper_tokens import to_remake

# Said wherever scores of synthetic data are shown (the sample set, or a manifest marked synthetic).
SYNTHETIC_NOTE = ("the sample data is synthetic (espeak-ng speech of sentences written for this set), so its "
                  "scores show that training works, not how well Whisper recognises real Arabic dialects.")
_STREAM_SHUFFLE_BUFFER = 1_000  # records held to shuffle a training stream (~1 GB of otozz features)


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


def _read(cfg: ExperimentConfig, variety: str, split: str, pooled: bool) -> sources.SourceSplit:
    """One single-variety split, unfiltered: from the feature cache when ``cfg`` names one, else its source."""
    return read_cached(cfg, variety, split) if cfg.feature_cache else sources.load_raw(cfg, variety, split, pooled)


def _numpy_features(ds: AnyDataset, fmt: str) -> AnyDataset:
    """``ds`` in numpy format when it holds log-mel features on disk: the collator then gets 80 x 3000 arrays read
    straight from Arrow, ~20x faster than nested Python lists. Not a stream: after a filter or shuffle datasets'
    numpy formatter converts the lists value by value (1.6 s per 80 x 3000 record, measured with datasets 5.2),
    where the collator's np.asarray of the lists takes ~24 ms."""
    return ds.with_format("numpy") if fmt == "features" and not isinstance(ds, datasets.IterableDataset) else ds


# --- the training pool: mixture and validation split ----------------------------------------------------


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


def _in_validation(record: dict, fraction: float, seed: int) -> bool:
    """Whether a streamed ``record`` belongs to the validation split: a seeded hash of its content
    (:func:`record_key`) below ``fraction``."""
    digest = hashlib.blake2b(record_key(record), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


def _split_validation(ds: AnyDataset, fraction: float, seed: int, keys: Optional[list] = None
                      ) -> tuple[AnyDataset, AnyDataset, dict]:
    """(train, validation, what the split did) of a filtered training pool, by record content on both paths, so
    that a record listed twice (a duplicate in a manifest or a hub set) never lands on both sides.

    A stream: each record goes to validation by :func:`_in_validation`, the same side in every pass. A dataset
    (``keys``: its records' :func:`record_key`): the paper's ``train_test_split(test_size=fraction, seed=seed)``,
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


# --- test sets -------------------------------------------------------------------------------------


def load_test_sets(cfg: ExperimentConfig, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS,
                   max_positions: int = MAX_TARGET_POSITIONS, skip_empty: bool = False
                   ) -> tuple[dict[str, AnyDataset], dict, bool]:
    """The test sets named by ``cfg.test_set_names()`` (one per variety), filtered and counted.

    Clips with an empty transcript are kept and scored (counted in ``empty_transcript_scored``): hallucination
    on silence must show in the WER. ``skip_empty``: a test set of a source read from disk that is missing or
    has no rows is reported (``rows_used`` 0 and ``empty``: why) and left out instead of raising (hub sets always
    raise: that is a network or name problem). Returns ({variety: dataset}, {variety: report}, synthetic). The
    training data are not touched.
    """
    source = sources.of(cfg)
    tests, report, synthetic = {}, {}, source.synthetic
    varieties = [v for name in cfg.test_set_names() for v in cfg.parts(name)]
    for variety in varieties:
        report[variety] = {"hub_id": None, **({"dataset": cfg.dataset} if cfg.dataset else {})}
        try:
            read = _read(cfg, variety, "test", len(varieties) > 1)
            synthetic |= read.synthetic
            report[variety].update(hub_id=read.hub_id, hub_revision=read.revision)
            fmt = record_format(columns_of(read.dataset))
            ds = _take(filter_records(read.dataset, fmt, tokenizer, max_seconds, report[variety], max_positions,
                                      score_empty=True), cfg.max_test_samples)
        except (DataUnavailableError, FileNotFoundError) as e:
            if not skip_empty or source.needs_hub:
                raise
            report[variety].update(rows_used=0, empty=str(e))  # reported, and scored as no test set
            continue
        tests[variety] = _numpy_features(ds, fmt)
    return tests, report, synthetic


def _set_name(name: str) -> str:
    """A requested test set's name as the data's sets are named: a variety name ("Najdi" -> "najdi"), else as
    given (a set named after its file)."""
    try:
        return dialects.variety_name(name)
    except ValueError:
        return name


def load_test_path(path, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS, test_sets: Optional[list] = None,
                   max_test_samples: Optional[int] = None, max_positions: int = MAX_TARGET_POSITIONS
                   ) -> tuple[dict[str, AnyDataset], dict, bool]:
    """Test data from one manifest file or one ``save_to_disk`` directory, whatever its name
    (:func:`arabicpeft.sources.read_test_path`: one test set per dialect when it has a ``dialect`` column, else
    one named after it), filtered and counted. ``test_sets`` keeps only those names; a requested name with no
    rows is reported (``rows_used`` 0, ``empty``), not an error.

    Returns ({name: dataset}, {name: report}, synthetic), like :func:`load_test_sets`.
    """
    parts, synthetic = sources.read_test_path(path)
    wanted = [_set_name(t) for t in test_sets] if test_sets else list(parts)
    tests, report = {}, {}
    for name in wanted:
        report[name] = {"path": str(path)}
        if name not in parts:
            report[name].update(rows_in=0, rows_used=0, empty=f"{path} has no rows for {name!r}.")
            continue
        fmt = record_format(columns_of(parts[name]))
        ds = _take(filter_records(parts[name], fmt, tokenizer, max_seconds, report[name], max_positions,
                                  score_empty=True), max_test_samples)
        tests[name] = _numpy_features(ds, fmt)
    return tests, report, synthetic


# --- a run's splits ---------------------------------------------------------------------------------


def _train_pool(cfg: ExperimentConfig, report: dict) -> tuple[AnyDataset, str, bool]:
    """(pool, record format, synthetic): the unfiltered training records of ``cfg.dialect``, its varieties mixed as
    ``cfg.mixture`` asks; ``report["train_pool"]`` (hub ids and commits) and ``report["mixture"]`` filled in."""
    varieties = cfg.parts(cfg.dialect)
    pooled = cfg.dialect == dialects.POOLED
    reads = [_read(cfg, variety, "train", pooled) for variety in varieties]
    fmt = record_format(columns_of(reads[-1].dataset))
    parts, per_dialect = _mix([r.dataset for r in reads], varieties, cfg)
    hub = any(r.hub_id for r in reads)
    report["train_pool"] = {"hub_ids": [r.hub_id for r in reads] if hub else None,
                            "hub_revisions": [r.revision for r in reads] if hub else None}
    if per_dialect:
        report["mixture"] = {"mixture": cfg.mixture, "max_train_per_dialect": cfg.max_train_per_dialect,
                             "records_per_dialect": per_dialect}
    return _concat(parts, cfg.seed), fmt, any(r.synthetic for r in reads)


def _train_and_validation(pool: AnyDataset, keys: Optional[list], cfg: ExperimentConfig, report: dict
                          ) -> tuple[AnyDataset, AnyDataset]:
    """The filtered pool split into training and validation records, each cut to the config's sizes; raises
    :class:`DataUnavailableError` when either comes out empty."""
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
    return train, validation


def load_splits(cfg: ExperimentConfig, tokenizer, max_seconds: float = audio_lib.MAX_SECONDS,
                max_positions: int = MAX_TARGET_POSITIONS) -> DataSplits:
    """Train, validation and test sets for ``cfg.dialect`` from ``cfg.source``, filtered and counted.

    ``max_seconds`` / ``max_positions``: the model's encoder window and decoder positions (records beyond them
    are filtered, counted). Raises :class:`DataUnavailableError` when the validation or the training split
    comes out empty: at load time, before any training step."""
    if cfg.streaming and not cfg.max_eval_samples:
        raise ValueError("streaming=True needs max_eval_samples: the validation set is read from the stream once "
                         "and kept in memory (e.g. 500 utterances).")
    source = sources.of(cfg)
    report: dict[str, Any] = {"source": cfg.source, "data_path": cfg.data_path, "streaming": cfg.streaming,
                              "source_records": {"records": source.records, "n_mels": source.n_mels,
                                                 "label_tokens": source.label_tokens,
                                                 "labels_remade": bool(to_remake(source.label_tokens, tokenizer))}}
    recipe = source.hub_dataset
    if recipe is not None and recipe.repo:  # a named recipe: where its data is described, under which licence
        report["source_records"].update(card=recipe.card, licence=recipe.licence)
    pool, fmt, synthetic = _train_pool(cfg, report)
    keys = None if isinstance(pool, datasets.IterableDataset) else []
    pool = filter_records(pool, fmt, tokenizer, max_seconds, report["train_pool"], max_positions, keys=keys)
    train, validation = _train_and_validation(pool, keys, cfg, report)
    train, validation = _numpy_features(train, fmt), _numpy_features(validation, fmt)

    tests, report["test"], test_synthetic = load_test_sets(cfg, tokenizer, max_seconds, max_positions)
    synthetic = source.synthetic or synthetic or test_synthetic
    if not cfg.streaming:
        report.update(n_train=len(train), n_validation=len(validation),
                      n_test={k: len(v) for k, v in tests.items()})
    report["synthetic"] = synthetic
    report["format"] = fmt
    workers = _feature_workers(fmt, cfg.num_workers)
    report["feature_path"] = _feature_path(fmt, workers, cfg.feature_cache)
    if cfg.feature_cache:
        report["feature_cache"] = cache_report(cfg)
    return DataSplits(train, validation, tests, fmt, cfg.source, synthetic, workers, report)


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
