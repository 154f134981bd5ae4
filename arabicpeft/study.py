"""Several runs that differ in a few config fields (methods, seeds, dialects), one directory each."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from .config import ExperimentConfig
from .results import RESULTS_FILE


def run_name(cfg: ExperimentConfig, fields: list[str]) -> str:
    return "_".join(f"{getattr(cfg, f)}" for f in fields) or "run"


def run_many(base: ExperimentConfig, root, **axes) -> list[Path]:
    """Run ``base`` with every combination of ``axes`` (e.g. ``method=["lora", "full"], seed=[42, 84]``).

    Each run goes to ``root/<values joined by _>``; a run whose results file already exists is not repeated
    (so a rerun of a notebook resumes the study). Returns the results-file paths in run order.
    """
    from .train import run

    names = list(axes)
    paths = []
    for values in itertools.product(*(axes[n] for n in names)):
        cfg = dataclasses.replace(base, **dict(zip(names, values)))
        cfg.output_dir = str(Path(root) / run_name(cfg, names))
        done = Path(cfg.output_dir) / RESULTS_FILE
        paths.append(done if done.is_file() else run(cfg))
    return paths
