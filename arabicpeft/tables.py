"""The descriptive tables of a study's runs: one method or one group of runs at a time, the train x test matrix,
the efficiency summary and the pooled train sets' sizes (:class:`arabicpeft.report.StudyReport` writes them).

Public: :func:`by_method`, :func:`group_label`, :func:`by_group`, :func:`matrix_table`, :func:`scored_start`,
:func:`efficiency_summary`, :func:`published_pool_size`, :func:`pool_sizes`, :data:`RELATIONS`, :func:`noise_curve`,
:func:`held_out_table`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analysis import scored_rows
from .dialects import POOLED
from .dialects import get as dialect_entry
from .plots import heatmap_labels, require_columns
from .results import MIB, START, TRAINED, TRAINING
from .transforms import split_name

RELATIONS = ("trained", "related", "held-out")  # how a scored set stands to the training data, in table order


def by_method(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``Runs.scores()`` rows of trained models split per fine-tuning method (the ``variant`` column), training
    runs only: {variant: rows}. Each value holds one method, so a figure drawn from it never mixes methods."""
    rows = scored_rows(scores, TRAINED)
    rows = rows[rows["kind"] == TRAINING] if "kind" in rows.columns else rows
    return {variant: part for variant, part in rows.groupby("variant", sort=False)}


def group_label(variant: str, context: str) -> str:
    """A method in its context as one label: "lora fp32 ... | stage=pool mixture=balanced" ("all": the variant)."""
    return str(variant) if str(context) == "all" else f"{variant} | {context}"


def by_group(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``Runs.scores()`` rows of trained models of training runs, one group per (context, variant): runs that
    differ only in their train set and seed, {:func:`group_label`: rows}. A matrix or figure drawn from one
    group never mixes methods, stages, starts, mixtures or anything else that makes another system."""
    rows = scored_rows(scores, TRAINED)
    rows = rows[rows["kind"] == TRAINING] if "kind" in rows.columns else rows
    return {group_label(variant, context): part
            for (context, variant), part in rows.groupby(["context", "variant"], sort=False)}


def matrix_table(scores: pd.DataFrame, metric: str = "wer", decimals: int = 2) -> pd.DataFrame:
    """The train x test matrix of one method: cells "mean (± sd)" over seeds of ``metric`` (%), rows train sets,
    columns test sets (trained models only; raises when a (train, test, seed) cell holds several runs)."""
    trained = scored_rows(scores, TRAINED)
    require_columns(trained, ["train_set", "test_set", "seed", metric], "matrix_table")
    if trained.duplicated(["train_set", "test_set", "seed"]).any():
        raise ValueError("matrix_table: several runs per (train set, test set, seed): pass one method and condition.")
    cells = trained.groupby(["train_set", "test_set"])[metric].agg(["mean", "std"]).reset_index()
    mean = cells.pivot(index="train_set", columns="test_set", values="mean")
    sd = cells.pivot(index="train_set", columns="test_set", values="std")
    return pd.DataFrame(heatmap_labels(mean, sd, decimals), index=mean.index, columns=mean.columns)


def scored_start(utts: pd.DataFrame) -> pd.DataFrame:
    """The rows of the training runs that also scored their starting model (``evaluate_before``): the input of
    :func:`gain_forgetting_table` (runs without a start have no gain or forgetting to report)."""
    training = utts[utts["kind"] == TRAINING] if "kind" in utts.columns else utts
    return training[training["path"].isin(set(training.loc[training["scored"] == START, "path"]))]


_EFFICIENCY_SUMMARY = {  # output column: (Runs.runs column, scale)
    "trainable_parameters": ("trainable_parameters", 1.0),
    "trainable_percent": ("trainable_percent", 1.0),
    "peak_memory_mib": ("peak_memory_bytes", 1.0 / MIB),
    "train_wall_time_s": ("train_wall_time_s", 1.0),
    "train_s_per_step": ("train_s_per_step", 1.0),  # training wall time (validations included) per optimizer step
    "train_samples_per_second": ("train_samples_per_second", 1.0),
    "run_wall_time_s": ("run_wall_time_s", 1.0),
    "weights_mib": ("weights_bytes", 1.0 / MIB),
    "saved_dir_mib": ("saved_dir_bytes", 1.0 / MIB),
}


def efficiency_summary(eff: pd.DataFrame, by=("system", "study", "stage", "variant", "train_set", "model_name")
                       ) -> pd.DataFrame:
    """The efficiency table (the only one): mean and SD (ddof = 1) over seeds of each efficiency quantity, per
    system (``by``: a system and its readable parts; never wider than a system).

    ``eff``: ``load_runs(root).runs`` (training runs; evaluations have no training cost and are left out).
    Returns the ``by`` columns, k (runs),
    peak_memory_kind, then for each quantity of :data:`_EFFICIENCY_SUMMARY` (bytes converted to MiB) its mean
    and ``{name}_sd``.
    """
    by = list(by)
    if "kind" in eff.columns:
        eff = eff[eff["kind"] == TRAINING]
    if "model_name" in by and "model_name" not in eff.columns and "model" in eff.columns:
        eff = eff.assign(model_name=eff["start_model"] if "start_model" in eff.columns else eff["model"])
    eff = eff.assign(train_s_per_step=eff["train_wall_time_s"].astype(float) / eff["steps"].astype(float)
                     if "steps" in eff.columns else float("nan"))  # NaN for a frame without step counts
    require_columns(eff, by + [src for src, _ in _EFFICIENCY_SUMMARY.values()] + ["peak_memory_kind"], "efficiency_summary")
    scaled = eff[by].copy()
    for name, (source, scale) in _EFFICIENCY_SUMMARY.items():
        scaled[name] = eff[source].astype(float) * scale
    kinds = eff.groupby(by, sort=False, dropna=False)["peak_memory_kind"].agg(
        lambda k: ", ".join(sorted(set(map(str, k)))))
    grouped = scaled.groupby(by, sort=False, dropna=False)
    out = grouped.size().rename("k").to_frame().join(kinds)
    for name in _EFFICIENCY_SUMMARY:
        out[name] = grouped[name].mean()
        out[f"{name}_sd"] = grouped[name].std()
    return out.reset_index()


def published_pool_size(mixture: str, cap: float | None = None) -> int:
    """Records of the pooled set ``all`` drawn as ``mixture`` from the published train sizes of its dialects
    (:data:`arabicpeft.dialects.REGISTRY`), at most ``cap`` per dialect: natural = their sum (75,300),
    balanced = 5 x the smallest (5 x 11,500 = 57,500)."""
    cap = cap if cap is not None and np.isfinite(cap) else float("inf")
    sizes = [min(cap, dialect_entry(d).train_rows) for d in dialect_entry(POOLED).parts]
    return int(len(sizes) * min(sizes) if mixture == "balanced" else sum(sizes))


def pool_sizes(runs: pd.DataFrame) -> pd.DataFrame:
    """The pooled (``all``) training runs' train pools: per system and seed its mixture, cap per dialect,
    records per dialect (JSON, where capped or balanced), pool_records (in the pool after the mixture, before
    filters and the validation split; the run's data report) and n_train (after them), with published_records:
    the same mixture and cap over the full otozz train sets (:func:`published_pool_size`). Empty without
    pooled training runs."""
    columns = ["system", "mixture", "max_train_per_dialect", "seed", "records_per_dialect", "pool_records", "n_train",
               "published_records"]
    pooled = runs[(runs["kind"] == TRAINING) & (runs["dialect"] == POOLED)] if not runs.empty else runs
    if pooled.empty:
        return pd.DataFrame(columns=columns)
    pooled = pooled.assign(published_records=[published_pool_size(m, c) for m, c in
                                              zip(pooled["mixture"], pooled["max_train_per_dialect"])])
    return pooled[columns].reset_index(drop=True)


def noise_curve(scores: pd.DataFrame) -> pd.DataFrame:
    """WER/CER (%) against SNR of each system that holds scores on noisy test sets ("{set}+noise-KIND-SNRdB",
    :mod:`arabicpeft.transforms`): per run, each condition's scores pooled over its test sets (Σ errors / Σ
    reference words), then the mean over the system's runs (seeds). Columns system, noise (white, pink, babble;
    "clean" for the untransformed sets, snr_db inf), snr_db, wer, cer, runs, n_utterances; empty when no run holds
    noisy scores."""
    rows = scored_rows(scores, TRAINED).copy()
    transforms = [split_name(t)[1] for t in rows["test_set"]]
    rows["noise"] = [t.kind.removeprefix("noise-") if t and t.snr_db is not None else None if t else "clean"
                     for t in transforms]
    rows["snr_db"] = [t.snr_db if t else np.inf for t in transforms]
    rows = rows[rows["noise"].notna() & rows["path"].isin(rows.loc[rows["noise"].ne("clean"), "path"])]
    if rows.empty:
        return pd.DataFrame(columns=["system", "noise", "snr_db", "wer", "cer", "runs", "n_utterances"])
    per_run = rows.groupby(["system", "path", "noise", "snr_db"], sort=False).agg(
        word_errors=("word_errors", "sum"), ref_words=("ref_words", "sum"), char_errors=("char_errors", "sum"),
        ref_chars=("ref_chars", "sum"), n_utterances=("n_utterances", "sum")).reset_index()
    per_run["wer"] = 100 * per_run["word_errors"] / per_run["ref_words"]
    per_run["cer"] = 100 * per_run["char_errors"] / per_run["ref_chars"]
    table = per_run.groupby(["system", "noise", "snr_db"], sort=False).agg(
        wer=("wer", "mean"), cer=("cer", "mean"), runs=("path", "nunique"), n_utterances=("n_utterances", "first"))
    return table.reset_index().sort_values(["system", "noise", "snr_db"], ascending=[True, True, False],
                                           ignore_index=True)


def held_out_table(scores: pd.DataFrame) -> pd.DataFrame:
    """WER/CER (%) of each system per scored test set, marked by how the set stands to the system's training
    data (relation: trained on, related (same or a related source: :func:`arabicpeft.sources.relation`), held
    out), in that order: mean over runs; columns relation, system, test_set, wer, cer, runs. Sets of models with
    no training config (base models) have no relation and are left out."""
    rows = scored_rows(scores, TRAINED)
    rows = rows[rows["relation"].notna()]
    table = rows.groupby(["relation", "system", "test_set"], sort=False).agg(
        wer=("wer", "mean"), cer=("cer", "mean"), runs=("path", "nunique")).reset_index()
    table["relation"] = pd.Categorical(table["relation"], categories=RELATIONS, ordered=True)
    return table.sort_values(["relation", "system", "test_set"], ignore_index=True)
