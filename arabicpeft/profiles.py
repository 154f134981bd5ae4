"""Run profiles: the notebooks read ``ARABICPEFT_PROFILE`` so that CI (nbval) runs them on CPU in minutes.

- ``full`` (default): the parameters cell's values are used as they are (Kaggle, a GPU, real data).
- ``ci``: the same code path on a tiny randomly initialised Whisper, the embedded synthetic sample set and a
  few steps. Its numbers only show that the pipeline runs; they are labelled synthetic in every results file.

Public: :func:`current`, :func:`apply`, :func:`profile_notice`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from .config import ExperimentConfig

_ENV_VAR = "ARABICPEFT_PROFILE"
_PROFILES = ("full", "ci")

_CI_OVERRIDES = dict(
    model="tiny-random", source="sample", data_path=None, streaming=False, precision="fp32", encoder_seconds=None,
    max_steps=6, warmup_steps=0, learning_rate=1e-3, batch_size=8, eval_batch_size=16, eval_steps=6,
    early_stopping_patience=0, max_train_samples=48, max_eval_samples=8, max_test_samples=6,
    generation_max_length=12, logging_steps=2, time_budget_s=None,
)


def current() -> str:
    """The run profile named by the environment variable ``ARABICPEFT_PROFILE`` ("full" when unset or empty);
    raises ValueError for a name that is not a profile."""
    profile = os.environ.get(_ENV_VAR, "full").strip().lower() or "full"
    if profile not in _PROFILES:
        raise ValueError(f"{_ENV_VAR}={profile!r} is not a profile; choose one of {', '.join(_PROFILES)}.")
    return profile


def apply(cfg: ExperimentConfig, profile: str | None = None) -> ExperimentConfig:
    """``cfg`` as the profile runs it: unchanged for ``full``, shrunk to the CI settings for ``ci``."""
    profile = profile or current()
    if profile == "full":
        return cfg
    return dataclasses.replace(cfg, **_CI_OVERRIDES)


def profile_notice() -> Optional[str]:
    """A line saying the ci profile is active and what it means; None in the full profile."""
    if current() != "ci":
        return None
    o = _CI_OVERRIDES
    return (f"CI profile ({_ENV_VAR}=ci): a tiny randomly initialised Whisper, the synthetic espeak "
            f"sample set, {o['max_steps']} training steps, {o['max_test_samples']} test utterances. This only "
            "proves that the notebook runs end to end: its scores are not meaningful.")
