"""What the evaluate command scores: the test sets of a source or of one path, each under the robustness transforms
asked (:mod:`arabicpeft.transforms`), and how each stands to the model's training data (trained on, related,
held out: :func:`arabicpeft.sources.relation`).

Public: :func:`parse_transforms`, :func:`check_transforms`, :func:`evaluation_sets`, :func:`transformed`,
:func:`pooled_rows`, :func:`trained_on`,
:func:`synthetic_note`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import sources, transforms
from .errors import UserError


def parse_transforms(specs) -> list:
    """The transforms ``specs`` names (a list or a comma-separated string; :data:`transforms.CLEAN` as None), in
    order, each once; [] for none given. Raises :class:`UserError` for an undeclared spec."""
    if isinstance(specs, str):
        specs = specs.split(",")
    names = list(dict.fromkeys(s.strip() for s in specs or () if s.strip()))
    return [transforms.parse(s) for s in names]


def check_transforms(specs, source: Optional[str], trained, feature_cache: Optional[str]) -> list:
    """:func:`parse_transforms`, and a one-line refusal, before any model loads, of transforms on log-mel features
    (a features-only source, or a feature cache): they have no waveform to transform."""
    parsed = parse_transforms(specs)
    wanted = [t.spec for t in parsed if t is not None]
    if not wanted:
        return parsed
    source = source or (trained.source if trained else None)
    if source and sources.get(source).records == "features":
        raise UserError(f"transform {wanted[0]}: the {source} source holds log-mel features, not waveforms, so "
                        "there is no audio to transform", "score a source with audio (e.g. --source sample, or a "
                        "local folder of audio manifests)")
    if feature_cache:
        raise UserError(f"transform {wanted[0]}: a feature cache holds log-mel features, not waveforms",
                        "leave out --feature-cache to score a transformed set")
    return parsed


def transformed(tests: dict, report: dict, parsed: list, seed: int, max_seconds: float) -> tuple[dict, dict]:
    """The test sets under each transform of ``parsed`` (None: the clean set), named ``"{set}+{spec}"``, with
    their reports (the clean set's counts plus the transform's; :func:`arabicpeft.transforms.transform_set`).
    Raises :class:`UserError` when a set holds features (no waveform). Unchanged when nothing is asked."""
    import copy

    from .records import columns_of, record_format

    if not parsed or parsed == [None]:
        return tests, report
    out, out_report = {}, {}
    for name, ds in tests.items():
        for transform in parsed:
            label = name if transform is None else f"{name}+{transform.spec}"
            out_report[label] = copy.deepcopy(report[name])
            if transform is None:
                out[label] = ds
                continue
            if record_format(columns_of(ds)) != "audio":
                raise UserError(f"transform {transform.spec}: test set {name} holds log-mel features, not "
                                "waveforms", "score a test set of audio records")
            out[label] = transforms.transform_set(ds, transform, seed, max_seconds, out_report[label])
    for name in report:  # sets reported empty stay reported
        out_report.setdefault(name, report[name])
    return out, out_report


def pooled_rows(rows, parsed: list):
    """The per-utterance rows the pooled scores are summed over: all of them, or with several conditions those of
    the first one asked (pooling clean and noisy clips would describe neither)."""
    if len(parsed) < 2 or rows.empty:
        return rows
    first = parsed[0]
    suffix = rows["test_set"].map(lambda name: transforms.split_name(name)[1])
    return rows[suffix.map(lambda t: (t.spec if t else None) == (first.spec if first else None))]


def trained_on(trained, test_sets, source: str, data_path) -> dict:
    """The record of what the model was trained on (its saved config's source, dataset or data_path, and
    varieties; None for a base model) and how each scored set stands to it (:func:`arabicpeft.sources.relation`,
    the transform's label left aside)."""
    from . import dialects

    config = trained.to_dict() if trained else None
    data = None if data_path is None else str(data_path)
    relation = {name: sources.relation(config, source, transforms.split_name(name)[0], data) for name in test_sets}
    if not config:
        return {"trained_on": None, "relation": relation}
    dialect = config.get("dialect")
    varieties = list(dialects.get(dialect).parts) if str(dialect).lower() in dialects.REGISTRY else [dialect]
    return {"trained_on": {"source": config.get("source"), "dataset": config.get("dataset"),
                           "data_path": config.get("data_path"), "varieties": varieties},
            "relation": relation}


def evaluation_sets(trained, processor, max_seconds: float, max_positions: int, *, dialect, test_sets, source,
                    data_path, max_test_samples, streaming, feature_cache, data_options=None, log=print) -> tuple:
    """(test sets, their report, synthetic, the source read) that the evaluate command scores: one manifest or
    saved dataset given as ``data_path`` read as it is, else the test sets of ``test_sets`` or of ``dialect``
    (default: the training dialect) from ``source`` (default: a local folder when ``data_path`` is given, else the
    model's training source, else the hub); ``data_options``: a hub dataset and its columns
    (:func:`arabicpeft.sources.dataset_options`)."""
    from . import dialects
    from .caching import build_feature_cache
    from .config import ExperimentConfig
    from .data import load_test_path, load_test_sets
    from .sources import dataset_options, is_saved_dataset

    test_sets = test_sets or (list(dialects.variety(dialect).parts) if dialect else None)
    path = Path(data_path) if data_path is not None else None
    if path is not None and (path.is_file() or is_saved_dataset(path)):  # one manifest or saved dataset
        tests, report, synthetic = load_test_path(path, processor.tokenizer, max_seconds, test_sets,
                                                  max_test_samples, max_positions)
        if not tests:  # every set asked for is absent: nothing to score
            held = sorted(sources.read_test_path(path)[0])
            raise UserError(f"{path} has no rows for {', '.join(report)}", f"name some of its sets with --test-sets "
                            f"({', '.join(held)}), or leave --test-sets out to score them all.")
        return tests, report, synthetic, "local"
    source = source or ("local" if path else trained.source if trained else "hub")
    dialect = dialect or (trained.dialect if trained else None)
    if not (dialect or test_sets):
        raise UserError("a base model has no training dialect", "give a dialect or test sets (--dialect, --test-sets).")
    spec = ExperimentConfig(dialect=dialect or test_sets[0], source=source,
                            data_path=None if path is None else str(data_path), test_sets=test_sets,
                            max_test_samples=max_test_samples, streaming=bool(streaming), feature_cache=feature_cache,
                            **dataset_options(trained, source, data_options),
                            feature_cache_dtype=trained.feature_cache_dtype if trained else "float32")
    if spec.feature_cache:
        build_feature_cache(spec, processor, splits=("test",), log=log)
    return (*load_test_sets(spec, processor.tokenizer, max_seconds, max_positions, skip_empty=True), source)


def synthetic_note(source: str, data_path) -> str:
    """What to say of scores on synthetic data: the sample set's note, or which data marked itself synthetic."""
    from .data import SYNTHETIC_NOTE

    if sources.get(source).synthetic:  # the source itself (the sample set), not the data it was pointed at
        return SYNTHETIC_NOTE
    return (f"{data_path} marks its records synthetic (its 'synthetic' column), so their scores show that training "
            "works, not how well Whisper recognises real Arabic dialects.")
