"""Views of single runs for the notebooks: a run's summary, scores before/after, transcripts, training curves.

Every number here is read from a results file (see :mod:`arabicpeft.results`); studies of many runs are read
with :func:`arabicpeft.results.load_runs` and tabulated by :mod:`arabicpeft.analysis` (the efficiency table
included).
Figures are built without pyplot (as in :mod:`arabicpeft.plots`) and returned.

Public: :data:`ALL_TEST_SETS`, :func:`scores_table`, :func:`run_summary`, :func:`transcripts`,
:func:`training_curves`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .metrics import pool
from .results import MIB, TRAINING, read_results, variant_of
from .run_dir import RESULTS_FILE, checkpoint_step

_PALETTE = "Set2"

_ResultLike = Union[str, Path, dict]


# --- tables -----------------------------------------------------------------------------------------


def _load(result: _ResultLike) -> dict:
    return result if isinstance(result, dict) else read_results(result)


ALL_TEST_SETS = "all test sets"  # the row of scores_table pooled over every test set


def scores_table(result: _ResultLike) -> pd.DataFrame:
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
    columns = ["test set", "scheme", "WER before (%)", "WER after (%)", "CER before (%)", "CER after (%)",
               "utterances", "empty hypotheses"]  # named also when nothing was scored (every test set empty)
    return pd.DataFrame(rows, columns=columns).set_index(["test set", "scheme"])


def run_summary(result: _ResultLike) -> pd.Series:
    """What one run did and where it saved it: steps, best checkpoint, time budget, resume, cost, files."""
    r = _load(result)
    cfg, training, eff = r["config"], r.get("training", {}), r["efficiency"]
    out = Path(cfg["output_dir"])
    return pd.Series({
        "run": variant_of(cfg) + f", {cfg['dialect']}, seed {cfg['seed']}, model {cfg['model']}",
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


def _log_frame(result: _ResultLike) -> pd.DataFrame:
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

    return sns.color_palette(_PALETTE, max(n, 3))


def training_curves(results: Union[Iterable[_ResultLike], pd.DataFrame], labels: Optional[list[str]] = None) -> Figure:
    """Training and validation loss (left) and validation WER (right) against the step, one colour per run.

    ``results``: results files, run directories or results dicts (labelled by their variant unless ``labels``
    are given), or a study's ``load_runs(root).runs`` frame: its training runs (evaluations have no training
    log), each labelled "<system> seed <seed>" (the reader's system label: every field that differs between the
    systems). Raises ValueError when there is no run to plot.
    """
    if isinstance(results, pd.DataFrame):
        trained = results[results["kind"] == TRAINING]
        results = trained["path"]
        labels = labels or list(trained["system"].astype(str) + " seed " + trained["seed"].astype(str))
    runs = [_load(r) for r in results]
    if not runs:
        raise ValueError("No runs to plot.")
    labels = labels or [variant_of(r["config"]) for r in runs]
    fig = Figure(figsize=(11, 4), layout="constrained")
    loss_ax, wer_ax = fig.subplots(1, 2)
    for run, label, color in zip(runs, labels, _colors(len(runs))):
        log = _log_frame(run)
        train = log.dropna(subset=["loss"])
        evals = log.dropna(subset=["eval_loss"])
        loss_ax.plot(train["step"], train["loss"], color=color, label=f"{label} train")
        loss_ax.plot(evals["step"], evals["eval_loss"], color=color, ls="--", marker="o", label=f"{label} validation")
        wer = log.dropna(subset=["eval_wer"])
        wer_ax.plot(wer["step"], wer["eval_wer"], color=color, marker="o", label=label)
        best = run.get("training", {}).get("best_checkpoint")
        if best and not wer.empty:
            step = checkpoint_step(best)
            wer_ax.axvline(step, color=color, ls=":", lw=1)
    loss_ax.set(xlabel="step", ylabel="loss", title="Loss")
    wer_ax.set(xlabel="step", ylabel="validation WER (%)", title="Validation WER (dotted: best checkpoint)")
    loss_ax.legend(fontsize="small")
    wer_ax.legend(fontsize="small")
    if any(r.get("synthetic") for r in runs):
        fig.suptitle("synthetic sample data: not a benchmark", color="firebrick")
    return fig

