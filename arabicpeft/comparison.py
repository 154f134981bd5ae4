"""LoRA vs full fine-tuning (and quantized / DoRA variants): run them under one protocol, tabulate their cost
and scores from the results files, and draw training curves and efficiency bars.

Every number in a table or figure here is read from a results file (see :mod:`arabicpeft.results`).
Figures are built without pyplot (as in :mod:`arabicpeft.plots`) and returned.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .config import ExperimentConfig
from .metrics import pool
from .results import MIB, RESULTS_FILE, read_results
from .study import is_complete

PALETTE = "Set2"

# Config overrides of each variant; the base config (data, seed, steps, precision) is shared.
VARIANTS: dict[str, dict] = {
    "lora": {"method": "lora"},
    "full": {"method": "full"},
    "lora-int8": {"method": "lora", "precision": "int8"},
    "lora-nf4": {"method": "lora", "precision": "nf4"},
    "dora": {"method": "lora", "use_dora": True},
}
# Variants run only with a CUDA GPU, and why.
GPU_ONLY: dict[str, str] = {
    "lora-int8": "8-bit base weights need bitsandbytes on a CUDA GPU",
    "lora-nf4": "4-bit NF4 base weights need bitsandbytes on a CUDA GPU",
    "dora": "DoRA runs on CPU too, but slower than LoRA; without a GPU this comparison keeps to LoRA vs full",
}

ResultLike = Union[str, Path, dict]


# --- running ----------------------------------------------------------------------------------------


def run_variants(base: ExperimentConfig, study_name: str, variants: Iterable[str] = VARIANTS,
                 gpu: Optional[bool] = None, log=print) -> dict[str, Path]:
    """Run ``base`` as each variant into ``output_root()/study_name/<variant>``; returns {variant: results path}.

    GPU-only variants are skipped without a GPU, each with a printed reason. A variant whose results file
    exists and finished training is reused, not rerun; an unfinished one resumes from its checkpoint (on Kaggle
    also from a previous session's output attached as an input, see :func:`environment.prepare_run`).
    """
    from . import environment
    from .train import run

    if gpu is None:
        gpu = environment.gpu_info()["cuda"]
    names = list(variants)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ValueError(f"Unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}.")
    paths = {}
    for i, name in enumerate(names, start=1):
        if name in GPU_ONLY and not gpu:
            log(f"[{i}/{len(names)}] {name}: skipped: needs a CUDA GPU ({GPU_ONLY[name]}).")
            continue
        cfg = dataclasses.replace(base, extra=dict(base.extra), **VARIANTS[name])
        cfg.extra["variant"] = name
        log(f"[{i}/{len(names)}] {name} ({variant_label(cfg.to_dict())}):")
        try:
            environment.prepare_run(cfg, f"{study_name}/{name}", log=lambda m: log(f"    {m}"))
        except environment.SessionTimeSpent as e:
            log(f"    not started: {e}")
            continue
        done = Path(cfg.output_dir) / RESULTS_FILE
        if is_complete(done):
            log(f"    finished earlier: reusing {done}")
            paths[name] = done
            continue
        paths[name] = run(cfg)
    return paths


# --- tables -----------------------------------------------------------------------------------------


def _load(result: ResultLike) -> dict:
    return result if isinstance(result, dict) else read_results(result)


def variant_label(config: dict) -> str:
    """"LoRA fp16", "full fp32", "DoRA fp16", "LoRA nf4" ... from a results file's config."""
    if config.get("method") == "full":
        kind = "full"
    else:
        kind = "DoRA" if config.get("use_dora") else "LoRA"
    return f"{kind} {config.get('precision')}"


def efficiency_table(results: Iterable[ResultLike], scheme: str = "raw") -> pd.DataFrame:
    """One row per (run, test set): cost of training and the scores, all read from the results files.

    Columns: variant, test set, trainable parameters (and %), peak memory (MiB, and which measure: CUDA max
    allocated, or on CPU the process's peak RSS, which includes every earlier run in the same process),
    training wall time (s), training samples/s, steps, whether training ran to its end (not cut by the time
    budget), adapter/model weights on disk (MiB), saved folder
    (MiB), WER and CER (%, ``scheme``), WER before training (left out when no run scored the starting
    model), synthetic data flag, run directory.
    """
    rows = []
    for item in results:
        r = _load(item)
        cfg, eff, training = r["config"], r["efficiency"], r.get("training", {})
        before = r.get("metrics_before") or {}
        for test_set, by_scheme in (r.get("metrics") or {}).items():
            scores = by_scheme[scheme]
            rows.append({
                "variant": variant_label(cfg),
                "test set": test_set,
                "trainable params": eff["trainable_parameters"],
                "trainable %": eff["trainable_percent"],
                "peak memory (MiB)": eff["peak_memory"]["bytes"] / MIB,
                "memory measure": eff["peak_memory"]["kind"],
                "train time (s)": eff["train_wall_time_s"],
                "samples/s": eff["train_samples_per_second"],
                "steps": training.get("global_step"),
                "trained to the end": training.get("stopped_by_time_budget_at_step") is None,
                "weights on disk (MiB)": eff["weights_bytes"] / MIB,
                "saved folder (MiB)": eff["saved_dir_bytes"] / MIB,
                "WER (%)": scores["wer"],
                "CER (%)": scores["cer"],
                "WER before (%)": (before.get(test_set) or {}).get(scheme, {}).get("wer"),
                "synthetic data": r.get("synthetic"),
                "run": cfg.get("output_dir"),
            })
    if not rows:
        raise ValueError("No results to tabulate: pass results files (or dicts) of finished runs.")
    frame = pd.DataFrame(rows)
    if frame["WER before (%)"].isna().all():  # evaluate_before=False in every run
        frame = frame.drop(columns="WER before (%)")
    return frame


ALL_TEST_SETS = "all test sets"  # the row of scores_table pooled over every test set


def scores_table(result: ResultLike) -> pd.DataFrame:
    """One run's scores: rows (test set, scheme), plus rows (:data:`ALL_TEST_SETS`, scheme) pooled over the test
    sets when there are several (Σ edits / Σ reference length); columns WER/CER (%) before and after training,
    utterances and empty hypotheses."""
    r = _load(result)
    before = r.get("metrics_before") or {}
    after = r["metrics"]
    stages = {test_set: (by_scheme, before.get(test_set) or {}) for test_set, by_scheme in after.items()}
    if len(after) > 1:
        schemes = next(iter(after.values()))
        stages[ALL_TEST_SETS] = (
            {s: pool(m[s] for m in after.values()) for s in schemes},
            {s: pool(m[s] for m in before.values()) for s in schemes} if len(before) == len(after) else {})
    rows = []
    for test_set, (by_scheme, prior_by_scheme) in stages.items():
        for scheme, now in by_scheme.items():
            prior = prior_by_scheme.get(scheme) or {}
            rows.append({"test set": test_set, "scheme": scheme,
                         "WER before (%)": prior.get("wer"), "WER after (%)": now["wer"],
                         "CER before (%)": prior.get("cer"), "CER after (%)": now["cer"],
                         "utterances": now["n_utterances"], "empty hypotheses": now["empty_hypotheses"]})
    return pd.DataFrame(rows).set_index(["test set", "scheme"])


def run_summary(result: ResultLike) -> pd.Series:
    """What one run did and where it saved it: steps, best checkpoint, time budget, resume, cost, files."""
    r = _load(result)
    cfg, training, eff = r["config"], r.get("training", {}), r["efficiency"]
    out = Path(cfg["output_dir"])
    return pd.Series({
        "run": variant_label(cfg) + f", {cfg['dialect']}, seed {cfg['seed']}, model {cfg['model']}",
        "data": f"{r['data'].get('source')} ({'synthetic' if r.get('synthetic') else 'real speech'})",
        "training examples": r["data"].get("n_train", "streamed"),
        "steps trained": training.get("global_step"),
        "best validation WER (%)": training.get("best_validation_wer"),
        "best checkpoint": training.get("best_checkpoint"),
        "stopped by time budget at step": training.get("stopped_by_time_budget_at_step"),
        "resumed from": training.get("resumed_from"),
        "trainable parameters": f"{eff['trainable_parameters']:,} ({eff['trainable_percent']:.2f}%)",
        "training time (s)": eff["train_wall_time_s"],
        "saved model": str(out / "model"),
        "saved size (MiB)": round(eff["saved_dir_bytes"] / MIB, 2),
        "results file": str(out / RESULTS_FILE),
    }, name="value")


def transcripts(result_path, scheme: str = "raw", n: int = 8) -> pd.DataFrame:
    """The first ``n`` test utterances per test set with reference, hypothesis and word errors (utterances.csv)."""
    path = Path(result_path)
    r = read_results(path)
    folder = path if path.is_dir() else path.parent
    rows = pd.read_csv(folder / r["utterances_file"], keep_default_na=False)
    rows = rows[rows["scheme"] == scheme]
    return rows.groupby("test_set").head(n)[["test_set", "utt_id", "reference", "hypothesis", "word_errors",
                                              "ref_words"]].reset_index(drop=True)


def log_frame(result: ResultLike) -> pd.DataFrame:
    """The Trainer log of one run as a frame with columns step, loss, eval_loss, eval_wer (NaN where absent)."""
    history = _load(result).get("training", {}).get("log_history") or []
    frame = pd.DataFrame(history)
    for column in ("step", "loss", "eval_loss", "eval_wer"):
        if column not in frame:
            frame[column] = np.nan
    return frame[["step", "loss", "eval_loss", "eval_wer"]]


# --- figures ----------------------------------------------------------------------------------------


def _colors(n: int):
    import seaborn as sns

    return sns.color_palette(PALETTE, max(n, 3))


def training_curves(results: Iterable[ResultLike], labels: Optional[list[str]] = None) -> Figure:
    """Training and validation loss (left) and validation WER (right) against the step, one colour per run."""
    runs = [_load(r) for r in results]
    if not runs:
        raise ValueError("No runs to plot.")
    labels = labels or [variant_label(r["config"]) for r in runs]
    fig = Figure(figsize=(11, 4), layout="constrained")
    loss_ax, wer_ax = fig.subplots(1, 2)
    for run, label, color in zip(runs, labels, _colors(len(runs))):
        log = log_frame(run)
        train = log.dropna(subset=["loss"])
        evals = log.dropna(subset=["eval_loss"])
        loss_ax.plot(train["step"], train["loss"], color=color, label=f"{label} train")
        loss_ax.plot(evals["step"], evals["eval_loss"], color=color, ls="--", marker="o", label=f"{label} validation")
        wer = log.dropna(subset=["eval_wer"])
        wer_ax.plot(wer["step"], wer["eval_wer"], color=color, marker="o", label=label)
        best = run.get("training", {}).get("best_checkpoint")
        if best and not wer.empty:
            step = int(str(best).rstrip("/").split("-")[-1])
            wer_ax.axvline(step, color=color, ls=":", lw=1)
    loss_ax.set(xlabel="step", ylabel="loss", title="Loss")
    wer_ax.set(xlabel="step", ylabel="validation WER (%)", title="Validation WER (dotted: best checkpoint)")
    loss_ax.legend(fontsize="small")
    wer_ax.legend(fontsize="small")
    if any(r.get("synthetic") for r in runs):
        fig.suptitle("synthetic sample data: not a benchmark", color="firebrick")
    return fig


EFFICIENCY_PANELS = (
    ("trainable params", "trainable parameters", True),
    ("peak memory (MiB)", "peak memory (MiB)", False),
    ("train time (s)", "training time (s)", False),
    ("samples/s", "training samples / s", False),
    ("weights on disk (MiB)", "weights on disk (MiB)", True),
    ("WER (%)", "test WER (%)", False),
)


def efficiency_figure(table: pd.DataFrame, test_set: Optional[str] = None) -> Figure:
    """Bars per variant for each cost and the WER, from :func:`efficiency_table` (one test set)."""
    if table.empty:
        raise ValueError("The efficiency table is empty.")
    test_set = test_set or table["test set"].iloc[0]
    rows = table[table["test set"] == test_set]
    colors = _colors(len(rows))
    fig = Figure(figsize=(13, 6.5), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    x = np.arange(len(rows))
    for ax, (column, title, log) in zip(axes, EFFICIENCY_PANELS):
        values = rows[column].astype(float).to_numpy()
        ax.bar(x, values, color=colors[: len(rows)])
        ax.set_xticks(x, rows["variant"], rotation=20, ha="right")
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.15)  # room for the value labels
        for xi, v in zip(x, values):
            if np.isfinite(v):
                ax.annotate(f"{v:,.3g}", (xi, v), ha="center", va="bottom", fontsize="small")
    measures = set(rows["memory measure"])
    note = f"test set: {test_set}; memory: {', '.join(sorted(measures))}"
    if "peak_rss" in measures:
        note += " (CPU peak RSS of the whole process: a later run includes the earlier ones)"
    if rows["synthetic data"].any():
        note += "; synthetic sample data: not a benchmark"
    fig.suptitle(note, fontsize="medium")
    return fig
