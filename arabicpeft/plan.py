"""What a study design is and how it plans its runs: a base :class:`ExperimentConfig`, named axes and stages
(:class:`StudyDesign`), each stage the product of its axes (config fields, or ``variant``: a named set of config
overrides, :data:`VARIANTS`), possibly starting from the models of an earlier stage (:class:`Start`) or evaluating
an adapter bank (``kind`` :data:`BANK`); :meth:`StudyDesign.plan` lists the runs (:class:`PlannedRun`). The designs
themselves are in :mod:`arabicpeft.designs`. Pure data: nothing here trains or reads a run.

Public: :data:`BANK`, :data:`VARIANTS`, :func:`variant_fields`, :class:`Start`, :class:`Stage`,
:class:`StudyDesign`, :class:`PlannedRun`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .config import ExperimentConfig
from .methods import METHODS
from .methods import get as get_method
from .results import TRAINING

BANK = "bank"  # a stage kind: evaluate an adapter bank (the other kind: results.TRAINING)

# Config overrides of each named variant; the base config (data, seed, steps, decoding) is shared. Every method's
# name is a variant too (:func:`variant_fields`), so a method added to arabicpeft.methods is one here as well.
# PiSSA/OLoRA move part of the base into the adapter: the starting model cannot be scored with it switched off.
VARIANTS: dict[str, dict] = {
    "lora-int8": {"method": "lora", "precision": "int8"},
    "lora-nf4": {"method": "lora", "precision": "nf4"},
    "dora": {"method": "lora", "use_dora": True},
    "lora-decoder": {"method": "lora", "adapter_placement": "decoder"},  # Whisper's decoder, Qwen3-ASR's LM
    "lora-encoder": {"method": "lora", "adapter_placement": "encoder"},  # Whisper's encoder, Qwen3-ASR's audio tower
    "rslora": {"method": "lora", "use_rslora": True},
    "pissa": {"method": "lora", "lora_init": "pissa", "evaluate_before": False},
    "olora": {"method": "lora", "lora_init": "olora", "evaluate_before": False},
    "eva": {"method": "lora", "lora_init": "eva"},
}


def variant_fields(name: str) -> dict:
    """The config overrides of variant ``name``: a :data:`VARIANTS` entry, or a method of
    :data:`arabicpeft.methods.METHODS` ({"method": name}); ValueError naming the valid ones."""
    if name in VARIANTS:
        return VARIANTS[name]
    if name in METHODS:
        return {"method": name}
    raise ValueError(f"Unknown variant {name!r}; choose from {', '.join([*METHODS, *VARIANTS])}.")
@dataclass
class Start:
    """A stage's runs start from the model saved by a run of ``stage``: the run whose axis values equal this
    run's on ``match`` and equal ``fixed`` (e.g. ``{"train_fraction": 1.0, "seed": 42}``).

    ``lora``: how an adapter start is used — "merge" (merge the adapter into its base, then a fresh adapter or
    full fine-tuning on the merged model) or "continue" (runs of the start's method keep training that adapter).
    """

    stage: str
    match: tuple = ("seed",)
    fixed: dict = field(default_factory=dict)
    lora: str = "merge"

    def __post_init__(self):
        if self.lora not in ("merge", "continue"):
            raise ValueError(f"Start.lora must be 'merge' or 'continue', got {self.lora!r}.")
        self.match = tuple(self.match)

    def use(self, start: ExperimentConfig, cfg: ExperimentConfig) -> Optional[str]:
        """How a run configured ``cfg`` uses the model of its start run configured ``start``: None for a whole
        model (used as it is), else "continue" (it trains the start's adapter on: ``lora`` "continue" and the
        same method) or "merge" (the adapter merged into its base first)."""
        if not get_method(start.method).peft_config:
            return None
        return "continue" if self.lora == "continue" and cfg.method == start.method else "merge"


@dataclass
class Stage:
    """One step of a study: every combination of ``axes`` (config field or "variant" -> values) is a run of
    ``base`` + ``overrides`` + those values. ``kind="bank"``: no training; per combination (usually per seed),
    the adapters of stage ``bank_of`` (one per dialect, of a method a bank holds) are loaded together and each
    test set is decoded with its dialect's adapter (:mod:`arabicpeft.bank`)."""

    name: str
    axes: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    start: Optional[Start] = None
    kind: str = TRAINING
    bank_of: Optional[str] = None

    def __post_init__(self):
        if isinstance(self.start, dict):
            self.start = Start(**self.start)
        if self.kind not in (TRAINING, BANK):
            raise ValueError(f"Stage {self.name!r}: kind must be {TRAINING!r} or {BANK!r}, got {self.kind!r}.")
        if self.kind == BANK and not self.bank_of:
            raise ValueError(f"Stage {self.name!r}: a bank stage needs bank_of (the stage of its adapters).")
        self.axes = {k: list(v) for k, v in self.axes.items()}


@dataclass
class StudyDesign:
    """A named study: ``base`` config and ``stages`` (run in order). Saved whole in the study manifest."""

    name: str
    base: ExperimentConfig
    stages: list
    order: str = "stage"  # "stage": stage by stage; "seed": all stages of the first seed first (results sooner)

    def __post_init__(self):
        if self.order not in ("stage", "seed"):
            raise ValueError(f"order must be 'stage' or 'seed', got {self.order!r}.")
        if isinstance(self.base, dict):
            self.base = ExperimentConfig.from_dict(self.base)
        self.stages = [Stage(**s) if isinstance(s, dict) else s for s in self.stages]
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"Stage names must be unique, got {names}.")

    def to_dict(self) -> dict:
        return {"name": self.name, "base": self.base.to_dict(), "stages": [dataclasses.asdict(s) for s in self.stages],
                "order": self.order}

    @classmethod
    def from_file(cls, path) -> "StudyDesign":
        """A design from a JSON or YAML file with keys name, base (config fields), stages (see :class:`Stage`)."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
        return cls(**values)

    def plan(self) -> list["PlannedRun"]:
        """Every run in order, with its config; a started stage's runs name their start run.

        With ``order="seed"`` the runs of the first seed (in every stage) come first, then the next seed's; a
        start run always comes before the runs that start from it (starts share the seed or use the first)."""
        runs: list[PlannedRun] = []
        for stage in self.stages:
            names, seen = list(stage.axes), set()
            for values in itertools.product(*(stage.axes[n] for n in names)):
                run = _planned(self, stage, dict(zip(names, values)), runs)
                # the same run again but for a field its method leaves unused (full fine-tuning x adapter
                # placement): planned once
                key = json.dumps({k: v for k, v in run.cfg.to_dict().items() if k not in run.cfg.unused_fields()},
                                 sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    runs.append(run)
        if self.order == "seed":
            seeds = list(dict.fromkeys(r.cfg.seed for r in runs))
            runs = sorted(runs, key=lambda r: seeds.index(r.cfg.seed))  # stable: stage order within a seed
            for i, run in enumerate(runs):
                if run.start is not None and runs.index(run.start) > i:
                    raise ValueError(f"order='seed' would run {run.name} before its start {run.start.name}.")
        return runs


@dataclass
class PlannedRun:
    name: str  # "<stage>/<axis values>": the run's directory under the study root
    stage: Stage
    values: dict  # this run's axis values
    cfg: ExperimentConfig
    start: Optional["PlannedRun"] = None

    @property
    def label(self) -> str:
        """Progress label: the axis values, e.g. "gulf lora seed 84"."""
        parts = [f"seed {v}" if k == "seed" else _value_text(k, v) for k, v in self.values.items()]
        return f"{self.stage.name}: " + (" ".join(parts) or "run")


def _value_text(key: str, value) -> str:
    if isinstance(value, bool):
        return key if value else f"no-{key}"
    if key == "train_fraction":
        return f"frac{value:g}"
    if key == "seed":
        return f"seed{value}"
    return str(value).replace("/", "-").replace(" ", "")


def _planned(design: StudyDesign, stage: Stage, values: dict, earlier: list) -> PlannedRun:
    fields = dict(stage.overrides)
    variant = values.get("variant")
    if variant is not None:
        fields.update(variant_fields(variant))
    fields.update({k: v for k, v in values.items() if k != "variant"})
    extra = {**design.base.extra, **fields.pop("extra", {}), "study": design.name, "stage": stage.name}
    if variant is not None:
        extra["variant"] = variant
    cfg = dataclasses.replace(design.base, **fields, extra=extra)
    name = f"{stage.name}/" + ("_".join(_value_text(k, v) for k, v in values.items()) or "run")
    start = None
    if stage.start is not None:
        want = {**{k: values[k] for k in stage.start.match if k in values}, **stage.start.fixed}
        found = [r for r in earlier if r.stage.name == stage.start.stage
                 and all(r.values.get(k, getattr(r.cfg, k, None)) == v for k, v in want.items())]
        if len(found) != 1:
            raise ValueError(f"Stage {stage.name!r}, run {name}: {len(found)} runs of stage {stage.start.stage!r} "
                             f"match {want} (need exactly one): fix Start.match / Start.fixed.")
        start = found[0]
        cfg = dataclasses.replace(cfg, extra={**cfg.extra, "start": _start_label(start, stage.start, cfg),
                                              "start_context": _start_label(start, stage.start)})
    return PlannedRun(name, stage, values, cfg, start)


def _start_label(start: PlannedRun, how: Start, cfg: Optional[ExperimentConfig] = None) -> str:
    """The start model as a seed-free label (so one system's seeds share it): "<stage>/<values>[+merged]", how an
    adapter start is used read from ``cfg`` (:meth:`Start.use`). Without ``cfg``: the start without what varies
    with the run (``how.match``, e.g. its method) nor how it is used ("msa/frac1"): what runs of several methods
    that each start from their own method's model have in common, so that a comparison of methods pairs them."""
    skip = {"seed"} if cfg is not None else {"seed", *how.match}
    values = "_".join(_value_text(k, v) for k, v in start.values.items() if k not in skip)
    label = f"{start.stage.name}/{values}" if values else start.stage.name
    use = how.use(start.cfg, cfg) if cfg is not None else None
    if use:
        label += "+continued" if use == "continue" else "+merged"
    return label
