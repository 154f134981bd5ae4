"""Read the project's results files into one tidy table, in the columns of the paper's per-seed data.

A run writes one JSON file (schema ``arabicpeft.results/1``) with its config and, per test set and scoring
scheme, corpus WER/CER in %. :func:`results_frame` turns every such file under a directory into rows of
(train_set, test_set, seed, wer, cer, condition, method, ...), so the figure functions of
:mod:`arabicpeft.plots` and the tests of :mod:`arabicpeft.paper` run on a user's results as on the paper's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .paper import WITH_PRETRAINING, WITHOUT_PRETRAINING
from .stats import START

SCHEMA_PREFIX = "arabicpeft.results/"
SUPPORTED_SCHEMAS = ("arabicpeft.results/1",)
DEFAULT_SCHEME = "raw"  # unnormalized, as in the paper

SCORE_KEYS = ("wer", "cer", "n_utterances", "ref_words", "word_errors", "ref_chars", "char_errors")
COLUMNS = [
    "condition",
    "train_set",
    "test_set",
    "seed",
    "wer",
    "cer",
    "method",
    "model",
    "precision",
    "init_from",
    "n_utterances",
    "ref_words",
    "word_errors",
    "ref_chars",
    "char_errors",
    "scheme",
    "stage",
    "data_source",
    "synthetic",
    "run_id",
    "path",
]


def _read_json(path: Path) -> dict | None:
    """The parsed results file, or None for a JSON file that is not a results file (e.g. adapter_config.json)."""
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Failed to read results file {path}: {e}") from e
    schema = content.get("schema") if isinstance(content, dict) else None
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        return None
    if schema not in SUPPORTED_SCHEMAS:
        raise ValueError(f"{path}: results schema {schema!r} is not supported (known: {', '.join(SUPPORTED_SCHEMAS)}).")
    return content


def condition_of(config: dict) -> str:
    """The paper's condition label for a run: an explicit ``condition`` in the config wins; otherwise a run
    started from another checkpoint (``init_from`` set: in this project, the MSA-adapted model) is
    "with_msa_pretraining" and one started from the released Whisper weights "without_pretraining"."""
    if config.get("condition"):
        return str(config["condition"])
    return WITH_PRETRAINING if config.get("init_from") else WITHOUT_PRETRAINING


def _rows(content: dict, path: Path, scheme: str, include_start: bool) -> list[dict]:
    config = content.get("config") or {}
    data = content.get("data") or {}
    common = {
        "condition": condition_of(config),
        "seed": config.get("seed"),
        "method": config.get("method"),
        "model": config.get("model"),
        "precision": config.get("precision"),
        "init_from": config.get("init_from"),
        "scheme": scheme,
        "data_source": data.get("source"),
        "synthetic": data.get("synthetic"),
        "run_id": content.get("run_id"),
        "path": str(path),
    }
    stages = [("trained", config.get("dialect"), content.get("metrics") or {})]
    if include_start:
        # The starting model scored before training: the R[start, d] row of the gain/forgetting design.
        stages.append(("start", START, content.get("metrics_before") or {}))
    rows = []
    for stage, train_set, metrics in stages:
        for test_set, by_scheme in metrics.items():
            scores = (by_scheme or {}).get(scheme)
            if scores is None:
                continue  # this run did not score the scheme asked for
            rows.append(
                {
                    **common,
                    "train_set": train_set,
                    "test_set": test_set,
                    "stage": stage,
                    **{k: scores.get(k) for k in SCORE_KEYS},
                }
            )
    return rows


def results_frame(results_dir, scheme: str = DEFAULT_SCHEME, include_start: bool = False) -> pd.DataFrame:
    """Every results file (``*.json`` with schema arabicpeft.results/*) under ``results_dir``, as a tidy frame.

    One row per (run, test set) with the columns :data:`COLUMNS`: condition, train_set (the config's
    dialect), test_set, seed, wer and cer (% under ``scheme``: "raw", "leaderboard" or "ar_norm_v1"), method,
    model, precision, init_from, the corpus counts, scheme, stage ("trained"), data_source, synthetic, run_id,
    path. ``include_start=True`` adds the starting model's scores (``metrics_before``) as rows with
    train_set = "start" and stage "start". Other JSON files are skipped; an unreadable one raises.
    Filter to one method (and condition) before drawing a figure.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Results directory not found: {root}")
    rows = []
    for path in sorted(root.rglob("*.json")):
        content = _read_json(path)
        if content is not None:
            rows.extend(_rows(content, path, scheme, include_start))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("wer", "cer"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame
