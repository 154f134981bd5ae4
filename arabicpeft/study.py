"""Several runs that differ in a few config fields (methods, seeds, dialects), one directory each."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from .config import ExperimentConfig
from .results import RESULTS_FILE, read_results


def is_complete(results_path) -> bool:
    """A results file of a run that trained to its end (not stopped by the time budget)."""
    path = Path(results_path)
    if not path.is_file():
        return False
    return read_results(path).get("training", {}).get("stopped_by_time_budget_at_step") is None


def run_name(cfg: ExperimentConfig, fields: list[str]) -> str:
    return "_".join(f"{getattr(cfg, f)}" for f in fields) or "run"


def run_many(base: ExperimentConfig, root, **axes) -> list[Path]:
    """Run ``base`` with every combination of ``axes`` (e.g. ``method=["lora", "full"], seed=[42, 84]``).

    Each run goes to ``root/<values joined by _>``; a run that already trained to its end is not repeated, and
    one stopped by its time budget resumes from its checkpoint (so a rerun of a notebook continues the study).
    Returns the results-file paths in run order.
    """
    from .train import run

    names = list(axes)
    paths = []
    for values in itertools.product(*(axes[n] for n in names)):
        cfg = dataclasses.replace(base, **dict(zip(names, values)))
        cfg.output_dir = str(Path(root) / run_name(cfg, names))
        done = Path(cfg.output_dir) / RESULTS_FILE
        paths.append(done if is_complete(done) else run(cfg))
    return paths


MSA = "msa"
PAPER_DIALECTS = ("egyptian", "gulf", "iraqi", "levantine", "maghrebi", "all")
PAPER_TEST_SETS = ("egyptian", "gulf", "iraqi", "levantine", "maghrebi", "msa")
PAPER_MSA_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)  # paper Fig. 1


def paper_grid(base: ExperimentConfig, root, dialects=PAPER_DIALECTS, seeds=(42, 84, 168),
               msa_fractions=PAPER_MSA_FRACTIONS, test_sets=PAPER_TEST_SETS) -> dict[str, list[Path]]:
    """The design of Özyılmaz et al. (2025) at any scale, with ``base``'s model, data source and steps.

    1. ``msa``: ``base`` trained on MSA with all of its train set (up to ``base.max_train_samples``), per
       seed, into ``root/msa/<max_train_samples>_<seed>``; then, for each fraction < 1 of ``msa_fractions``
       (paper Fig. 1), on the first round(fraction x n) training utterances (n: what that run trained on),
       into ``root/msa/<that many>_<seed>``.
    2. ``without_pretraining``: each of ``dialects`` x ``seeds`` from ``base.model``, into
       ``root/without_pretraining/<dialect>_<seed>``.
    3. ``with_msa_pretraining``: the same, started from the whole-MSA model of the first seed (its ``model/``
       directory), into ``root/with_msa_pretraining/<dialect>_<seed>``; the results record that start as
       ``extra["init_from"]``, which results_table reads as the condition "with_msa_pretraining".

    Every run is scored on ``test_sets`` (before and after training). Needs ``base.method == "full"``: the
    pre-trained start must be a whole model, as in the paper. Runs already done are skipped (see
    :func:`run_many`). Returns {step: results-file paths}.
    """
    from .run_dir import MODEL_DIR

    if base.method != "full":
        raise ValueError(f"paper_grid fine-tunes whole models (method='full'), as the paper; got {base.method!r}.")
    if any(not 0.0 < f <= 1.0 for f in msa_fractions):
        raise ValueError(f"MSA fractions must be in (0, 1], got {list(msa_fractions)}.")
    root = Path(root)
    base = dataclasses.replace(base, test_sets=list(test_sets))
    msa = dataclasses.replace(base, dialect=MSA)
    out = {"msa": run_many(msa, root / MSA, max_train_samples=[base.max_train_samples], seed=seeds)}
    n_train = (read_results(out["msa"][0]).get("data") or {}).get("n_train")
    caps = sorted({round(f * n_train) for f in msa_fractions if f < 1.0} - {0, n_train}) if n_train else []
    if caps:
        out["msa"] += run_many(msa, root / MSA, max_train_samples=caps, seed=seeds)
    start = out["msa"][0].parent / MODEL_DIR
    out["without_pretraining"] = run_many(base, root / "without_pretraining", dialect=dialects, seed=seeds)
    pretrained = dataclasses.replace(base, model=str(start), extra={**base.extra, "init_from": str(start)})
    out["with_msa_pretraining"] = run_many(pretrained, root / "with_msa_pretraining", dialect=dialects, seed=seeds)
    return out
