"""Read the project's results files into one tidy table, in the columns of the paper's per-seed data.

A run writes one JSON file (schema ``arabicpeft.results/1``) with its config and, per test set and scoring
scheme, corpus WER/CER in %. :func:`results_frame` turns every such file under a directory into rows of
(train_set, test_set, seed, wer, cer, condition, method, ...), so the figure functions of
:mod:`arabicpeft.plots` and the tests of :mod:`arabicpeft.paper` run on a user's results as on the paper's.
:func:`utterances_frame` reads the per-utterance edit counts written next to each results file (after and,
optionally, before training), :func:`efficiency_frame` the cost of each run, and :func:`save_table` writes a
table as CSV and LaTeX.
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
    "n_train",
    "run_id",
    "path",
]


def require_columns(df: pd.DataFrame, columns, what: str) -> None:
    """A clear error when ``df`` lacks ``columns`` or has no rows (``what``: the caller, for the message)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; got {list(df.columns)}.")
    if df.empty:
        raise ValueError(f"{what}: no rows.")


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


def _config_value(config: dict, key: str):
    """``config[key]``, else ``config["extra"][key]`` (ExperimentConfig's free-form notes), else None."""
    if config.get(key):
        return config[key]
    extra = config.get("extra")
    return extra.get(key) if isinstance(extra, dict) else None


def condition_of(config: dict) -> str:
    """The paper's condition label for a run: an explicit ``condition`` in the config (or in its ``extra``
    notes) wins; otherwise a run started from another checkpoint (``init_from`` set, in the config or its
    ``extra``: in this project, the MSA-adapted model) is "with_msa_pretraining" and one started from the
    released Whisper weights "without_pretraining"."""
    condition = _config_value(config, "condition")
    if condition:
        return str(condition)
    return WITH_PRETRAINING if _config_value(config, "init_from") else WITHOUT_PRETRAINING


def _results(results_dir) -> list[tuple[Path, dict]]:
    """(path, parsed content) of every results file under ``results_dir``, in path order."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Results directory not found: {root}")
    found = []
    for path in sorted(root.rglob("*.json")):
        content = _read_json(path)
        if content is not None:
            found.append((path, content))
    return found


def results_files(results_dir) -> list[Path]:
    """Paths of the results files under ``results_dir`` (empty for a missing or empty directory)."""
    if not Path(results_dir).is_dir():
        return []
    return [path for path, _ in _results(results_dir)]


def _run_columns(content: dict, path: Path) -> dict:
    """The columns that say which run a row comes from."""
    config = content.get("config") or {}
    data = content.get("data") or {}
    return {
        "condition": condition_of(config),
        "method": config.get("method"),
        "dialect": config.get("dialect"),
        "seed": config.get("seed"),
        "model": config.get("model"),
        "precision": config.get("precision"),
        "synthetic": data.get("synthetic", content.get("synthetic")),
        "run_id": content.get("run_id"),
        "path": str(path),
    }


def _rows(content: dict, path: Path, scheme: str, include_start: bool) -> list[dict]:
    config = content.get("config") or {}
    data = content.get("data") or {}
    common = {
        "condition": condition_of(config),
        "seed": config.get("seed"),
        "method": config.get("method"),
        "model": config.get("model"),
        "precision": config.get("precision"),
        "init_from": _config_value(config, "init_from"),
        "scheme": scheme,
        "data_source": data.get("source"),
        "synthetic": data.get("synthetic"),
        "n_train": data.get("n_train"),
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
    dialect), test_set, seed, wer and cer (% under ``scheme``: "raw", "leaderboard", "ar_norm_v2" or "ar_norm_v1"), method,
    model, precision, init_from, the corpus counts, scheme, stage ("trained"), data_source, synthetic, n_train
    (training utterances used), run_id, path. ``include_start=True`` adds the starting model's scores
    (``metrics_before``) as rows with train_set = "start" and stage "start". Other JSON files are skipped; an
    unreadable one raises. Filter to one method (and condition) before drawing a figure.
    """
    rows = []
    for path, content in _results(results_dir):
        rows.extend(_rows(content, path, scheme, include_start))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("wer", "cer"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


# Per-utterance errors --------------------------------------------------------------------------------------

UTTERANCE_COLUMNS = ["test_set", "utt_index", "utt_id", "reference", "hypothesis", "ref_words", "word_errors",
                     "ref_chars", "char_errors"]
RUN_COLUMNS = ["stage", "train_set", "condition", "method", "seed", "model", "precision", "synthetic", "run_id",
               "path"]
COUNT_COLUMNS = ["ref_words", "word_errors", "ref_chars", "char_errors"]


def _read_utterances(csv_path: Path, scheme: str) -> pd.DataFrame:
    try:
        # keep_default_na=False: an empty hypothesis is the string "", not NaN (it is scored as deletions)
        rows = pd.read_csv(csv_path, keep_default_na=False, dtype={"utt_id": str, "reference": str,
                                                                  "hypothesis": str})
    except (OSError, pd.errors.ParserError) as e:
        raise ValueError(f"Failed to read per-utterance file {csv_path}: {e}") from e
    missing = [c for c in ["scheme", *UTTERANCE_COLUMNS] if c not in rows.columns]
    if missing:
        raise ValueError(f"{csv_path} lacks column(s) {missing}.")
    rows = rows[rows["scheme"] == scheme]
    return rows[UTTERANCE_COLUMNS].astype({c: int for c in ["utt_index", *COUNT_COLUMNS]})


def utterances_frame(results_dir, scheme: str = DEFAULT_SCHEME, include_start: bool = False) -> pd.DataFrame:
    """Per-utterance edit counts of every run under ``results_dir``, one row per (run, test set, utterance).

    Reads the ``utterances_file`` (and, with ``include_start``, the ``utterances_before_file``: the starting
    model scored before training) named in each results file, relative to that file's directory, rows of
    ``scheme`` only. Columns: stage ("trained" | "start"), train_set (the config's dialect; ``"start"`` on
    the starting model's rows, as in :func:`results_frame`), condition, method, seed, model, precision,
    synthetic, run_id, path (the results file), then test_set, utt_index, utt_id, reference, hypothesis,
    ref_words, word_errors, ref_chars, char_errors. A run that wrote no per-utterance file is skipped; a file
    that is named but missing raises FileNotFoundError.
    """
    frames = []
    for path, content in _results(results_dir):
        run = _run_columns(content, path)
        stages = [("trained", run["dialect"], content.get("utterances_file"))]
        if include_start:
            stages.append(("start", START, content.get("utterances_before_file")))
        for stage, train_set, name in stages:
            if not name:
                continue
            csv_path = path.parent / name
            if not csv_path.is_file():
                raise FileNotFoundError(f"{path} names per-utterance file {name!r}, but {csv_path} does not exist.")
            labels = {k: v for k, v in run.items() if k in RUN_COLUMNS}
            frames.append(_read_utterances(csv_path, scheme).assign(stage=stage, train_set=train_set, **labels))
    if not frames:
        return pd.DataFrame(columns=RUN_COLUMNS + UTTERANCE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[RUN_COLUMNS + UTTERANCE_COLUMNS]


# Efficiency ------------------------------------------------------------------------------------------------

EFFICIENCY_COLUMNS = ["trainable_parameters", "total_parameters", "trainable_percent", "train_wall_time_s",
                      "train_samples_per_second", "run_wall_time_s", "peak_memory_bytes", "peak_memory_kind",
                      "weights_bytes", "saved_dir_bytes"]


def efficiency_frame(results_dir) -> pd.DataFrame:
    """The ``efficiency`` record of every run under ``results_dir``, one row per run.

    Columns: train_set, condition, method, seed, model, precision, synthetic, run_id, path, then
    trainable_parameters, total_parameters, trainable_percent, train_wall_time_s (s), train_samples_per_second,
    run_wall_time_s (s, the whole run with evaluation), peak_memory_bytes, peak_memory_kind ("cuda_max_allocated"
    on GPU, "peak_rss" of the whole process on CPU: not comparable with each other), weights_bytes (the saved
    weights: the adapter for LoRA) and saved_dir_bytes. Missing values are NaN.
    """
    rows = []
    for path, content in _results(results_dir):
        run = _run_columns(content, path)
        eff = content.get("efficiency") or {}
        memory = eff.get("peak_memory") or {}
        values = {k: eff.get(k) for k in EFFICIENCY_COLUMNS}
        values.update(peak_memory_bytes=memory.get("bytes"), peak_memory_kind=memory.get("kind"))
        rows.append({"train_set": run.pop("dialect"), **run, **values})
    columns = ["train_set", "condition", "method", "seed", "model", "precision", "synthetic", "run_id", "path",
               *EFFICIENCY_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns)
    numeric = [c for c in EFFICIENCY_COLUMNS if c != "peak_memory_kind"]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    return frame


# Tables ----------------------------------------------------------------------------------------------------


def save_table(
    df: pd.DataFrame, path_stem, float_format: str = "%.2f", caption: str | None = None, label: str | None = None,
    index: bool = False,
) -> list[Path]:
    """Write ``df`` as ``{path_stem}.csv`` (full precision) and ``{path_stem}.tex`` (pandas ``to_latex``,
    numbers formatted with ``float_format``, booktabs rules); returns the two paths. NaN is written as "--"
    in LaTeX and as an empty field in the CSV."""
    paths = [Path(f"{path_stem}.csv"), Path(f"{path_stem}.tex")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(paths[0], index=index)
    formatter = (lambda v: float_format % v) if float_format else None
    latex = df.to_latex(index=index, float_format=formatter, na_rep="--", caption=caption, label=label,
                        escape=True)
    paths[1].write_text(latex, encoding="utf-8")
    return paths
