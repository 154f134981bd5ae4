"""A study is data: a base :class:`ExperimentConfig`, named axes and stages (:mod:`arabicpeft.study` runs it).

Every experiment of the project is a :class:`StudyDesign`: stages run in order, each the product of its axes
(config fields, or ``variant``: a named set of config overrides such as "lora", "full", "dora"); a stage may
start from the models saved by an earlier stage (:class:`Start`: the MSA model of the paper, the balanced
pooled model of the mixing study), or be an evaluation of an adapter bank (``kind="bank"``). Designs:
:func:`peft_vs_full`, :func:`paper`, :func:`mixing`, :func:`adapter_bank`, :func:`peft_methods` (:data:`DESIGNS`),
and the ready-made :data:`PRESETS`. :meth:`StudyDesign.plan` lists the runs (:class:`PlannedRun`), each with its config and the run
it starts from (:mod:`arabicpeft.plan` holds what a design is and how it plans). Nothing here trains or reads a
run: pure data.

Public: :data:`VARIANTS`, :func:`variant_fields`, :data:`BANK`, :class:`Start`, :class:`Stage`, :class:`StudyDesign`,
:class:`PlannedRun` (:mod:`arabicpeft.plan`'s), :func:`peft_vs_full`, :func:`paper`, :func:`mixing`, :func:`adapter_bank`, :func:`peft_methods`,
:data:`DESIGNS`, :func:`offline_mini_base`, :class:`Preset`, :data:`PRESETS`, :func:`design_options`, :func:`design`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Optional

from .config import ExperimentConfig
from .dialects import DIALECTS, MSA, POOLED
from .plan import BANK, VARIANTS, PlannedRun, Stage, Start, StudyDesign, variant_fields  # noqa: F401 (public here too)

_SEEDS = (42, 84, 168)  # the paper's seeds
_PAPER_DIALECTS = (*DIALECTS, POOLED)
_PAPER_TEST_SETS = (*DIALECTS, MSA)
_PAPER_MSA_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)  # paper Fig. 1
# --- the ready-made designs -------------------------------------------------------------------------


def peft_vs_full(base: ExperimentConfig, variants=("lora", "full"), dialects=DIALECTS, seeds=_SEEDS,
                 name: str = "peft_vs_full", models=None) -> StudyDesign:
    """Methods (any of :data:`VARIANTS`) x dialects x seeds under one protocol: same data, steps, selection
    and decoding (``base``); every model scored on ``base.test_sets`` (default: its own dialect). ``models``: a
    ``model`` axis too (hub ids, folders or offline names; families may mix: the results reader's ``family``
    column tells them apart), else ``base.model``."""
    axes = {"variant": list(variants), "dialect": list(dialects), "seed": list(seeds)}
    return StudyDesign(name, base, [Stage("train", {**({"model": list(models)} if models else {}), **axes})])


def paper(base: ExperimentConfig, methods=("full", "lora"), dialects=_PAPER_DIALECTS, seeds=_SEEDS,
          msa_fractions=_PAPER_MSA_FRACTIONS, test_sets=_PAPER_TEST_SETS, lora_start: str = "merge",
          name: str = "paper") -> StudyDesign:
    """Özyılmaz et al. (2025) at ``base``'s scale, for each method.

    1. ``msa``: MSA at each of ``msa_fractions`` of its train set (Fig. 1) x seeds;
    2. ``without_pretraining``: ``dialects`` (with pooled ``all``) x seeds from ``base.model``;
    3. ``with_msa_pretraining``: the same, started from the whole-MSA model of the same method and the first
       seed (the paper's single pre-trained model; ``extra["start_context"]`` "msa/frac1" says what the methods'
       starts have in common, so a comparison of methods pairs them). For LoRA (two-stage LoRA): the MSA
       adapter is merged into the base and a fresh dialect adapter trained on the merged model
       (``lora_start="continue"``: keep training the MSA adapter instead).

    Every model is scored on ``test_sets`` (the 6 x 6 matrix). The conditions are recorded as
    ``extra["condition"]``.
    """
    from .paper import WITH_PRETRAINING, WITHOUT_PRETRAINING

    fractions = sorted(set(msa_fractions))
    if any(not 0.0 < f <= 1.0 for f in fractions) or 1.0 not in fractions:
        raise ValueError(f"MSA fractions must lie in (0, 1] and include 1.0 (the pre-trained start), got {fractions}.")
    base = dataclasses.replace(base, test_sets=list(test_sets))
    methods, seeds = list(methods), list(seeds)
    return StudyDesign(name, base, [
        Stage(MSA, {"method": methods, "train_fraction": fractions, "seed": seeds}, {"dialect": MSA}),
        Stage(WITHOUT_PRETRAINING, {"method": methods, "dialect": list(dialects), "seed": seeds},
              {"extra": {"condition": WITHOUT_PRETRAINING}}),
        Stage(WITH_PRETRAINING, {"method": methods, "dialect": list(dialects), "seed": seeds},
              {"extra": {"condition": WITH_PRETRAINING}},
              start=Start(MSA, match=("method",), fixed={"train_fraction": 1.0, "seed": seeds[0]}, lora=lora_start)),
    ])


def mixing(base: ExperimentConfig, targets=("egyptian",), methods=("full", "lora"), seeds=_SEEDS,
           mixtures=("natural", "balanced"), pool_method: str = "full", max_train_per_dialect: Optional[int] = None,
           test_sets=DIALECTS, lora_start: str = "merge", name: str = "mixing") -> StudyDesign:
    """The Tibetan dialect study's design (research notes §6), for Arabic.

    1. ``pool``: the five dialects pooled with ``mixtures`` ("natural" proportions vs "balanced": equal records
       per dialect, at most ``max_train_per_dialect``, default ``base``'s), with ``pool_method``, per seed;
    2. ``finetune``: the balanced model of the same seed fine-tuned on each of ``targets`` with each of
       ``methods`` (a LoRA pooled model is merged first, or continued with ``lora_start="continue"``).

    Every model is scored on every test set; the fine-tuned runs' scores before training are the balanced
    model's (R[0, d]), so gain on the target and forgetting elsewhere come with paired bootstrap CIs
    (:meth:`arabicpeft.report.StudyReport.gain_forgetting`). The fine-tunes record their start
    (``extra["start"]``, "pool/balanced"), which the reader reports as their condition ("from pool/balanced"): no
    MSA pre-training is involved.
    """
    if "balanced" not in mixtures:
        raise ValueError("The fine-tuning stage starts from the balanced pooled model: include 'balanced'.")
    base = dataclasses.replace(base, test_sets=list(test_sets))
    seeds = list(seeds)
    return StudyDesign(name, base, [
        Stage("pool", {"mixture": list(mixtures), "seed": seeds},
              {"dialect": POOLED, "method": pool_method,
               "max_train_per_dialect": max_train_per_dialect or base.max_train_per_dialect}),
        Stage("finetune", {"method": list(methods), "dialect": list(targets), "seed": seeds},
              start=Start("pool", match=("seed",), fixed={"mixture": "balanced"}, lora=lora_start)),
    ])


def adapter_bank(base: ExperimentConfig, dialects=DIALECTS, seeds=_SEEDS, variants=("lora", "full"),
                 test_sets=None, name: str = "adapter_bank") -> StudyDesign:
    """One adapter per dialect on one base, compared with one pooled adapter, the base and full fine-tunes.

    1. ``dialect``: ``variants`` x ``dialects`` x seeds (the LoRA adapters form the bank; "full" gives the
       per-dialect full fine-tunes to compare with);
    2. ``pooled``: one LoRA adapter on the pooled dialects, per seed;
    3. ``bank``: per seed, every dialect adapter loaded on one base (peft named adapters); each test set decoded
       with its dialect's adapter, mixed-dialect batches in one ``generate`` call; the adapters disabled give
       the base model (scored too). Records what the bank costs on disk and in memory. Its results name the
       bank's dialects (``extra["bank"]``; :func:`arabicpeft.results.load_runs` reports them as its dialect,
       "egyptian+levantine", and its train set as "bank"): a config holds one dialect, and the bank stage's is
       the base config's, which the evaluation does not read.
    """
    test_sets = list(test_sets or dialects)
    base = dataclasses.replace(base, test_sets=test_sets)
    seeds = list(seeds)
    return StudyDesign(name, base, [
        Stage("dialect", {"variant": list(variants), "dialect": list(dialects), "seed": seeds}),
        Stage("pooled", {"seed": seeds}, {"method": "lora", "dialect": POOLED}),
        Stage("bank", {"seed": seeds}, kind=BANK, bank_of="dialect"),
    ])


# Every adapter method of the table, and the LoRA options that change its training (DoRA, rsLoRA; the
# initialisations change where it starts): what the methods study compares with full fine-tuning by default.
_PEFT_METHODS = ("lora", "dora", "rslora", "vera", "ia3", "loha", "lokr", "adalora")
_PLACEMENTS = ("qv", "all-linear")  # adapter placement: presets of the backbone (arabicpeft.backbones)


def peft_methods(base: ExperimentConfig, variants=_PEFT_METHODS, placements=_PLACEMENTS, dialects=DIALECTS,
                 seeds=_SEEDS, name: str = "peft_methods") -> StudyDesign:
    """PEFT methods x adapter placement x dialects x seeds vs full fine-tuning, under one protocol.

    ``variants`` (:func:`variant_fields`): a method of :data:`arabicpeft.methods.METHODS` or a LoRA
    option such as "dora"); ``placements``: ``lora_targets`` values (a preset of the backbone or module names).
    One stage, so that every run shares its data, steps, validation-WER selection and decoding (``base``), and
    each method at its own declared learning rate (``base.learning_rate`` None: :attr:`Method.learning_rate`,
    with its source). Full fine-tuning ignores the placement, so it is planned once per dialect and seed
    (:meth:`StudyDesign.plan`). The report compares every adapter variant with full fine-tuning (Δ WER/CER with
    t-intervals, TOST equivalence; :meth:`arabicpeft.report.StudyReport.comparison`) and gives each one's
    trainable parameters, step time, peak memory and bytes on disk (:meth:`~arabicpeft.report.StudyReport.efficiency`).
    """
    return StudyDesign(name, base, [Stage("train", {"variant": [*variants, "full"], "lora_targets": list(placements),
                                                    "dialect": list(dialects), "seed": list(seeds)})])


DESIGNS: dict[str, Callable[..., StudyDesign]] = {
    "peft_vs_full": peft_vs_full, "paper": paper, "mixing": mixing, "adapter_bank": adapter_bank,
    "peft_methods": peft_methods,
}


_MINI_DIALECTS = ("egyptian", "levantine")
_MINI_TEST_SETS = ("egyptian", "gulf", "levantine")


def offline_mini_base() -> ExperimentConfig:
    """whisper-base (from PyPI) on the synthetic sample set, CPU-sized: 8 s encoder window, 16 steps of 4
    clips, the learning rate of each method (its declared default, :data:`arabicpeft.methods.METHODS`), 8
    validation clips, three test sets of 8 clips."""
    from .config import demo_config

    return dataclasses.replace(
        demo_config(), dialect="egyptian", max_steps=16, batch_size=4, warmup_steps=2, eval_steps=16,
        max_eval_samples=8, max_test_samples=8, logging_steps=4, learning_rate=None, test_sets=list(_MINI_TEST_SETS),
        evaluate_before=False, output_dir="runs/offline-mini")


def _offline_mini(base: Optional[ExperimentConfig] = None) -> StudyDesign:
    """The offline mini-study: a small real ``peft_vs_full`` (LoRA vs full, Egyptian and Levantine, seeds 42
    and 84), ``mixing`` (a balanced pooled LoRA model, seed 42, then Egyptian with full vs LoRA, scored before
    and after: gain and forgetting), and the bank of the two dialect adapters of each seed (with the base
    model: adapters disabled) vs the pooled adapter. On the sample set every dialect has the same number of
    clips, so the natural mixture equals the balanced one and only "balanced" is run. Only the runs whose
    starting model the analysis needs score it before training (the others would repeat the bank's base)."""
    base = base or offline_mini_base()
    pvf = peft_vs_full(base, dialects=_MINI_DIALECTS, seeds=(42, 84)).stages
    mix = mixing(base, seeds=(42,), mixtures=("balanced",), pool_method="lora", test_sets=base.test_sets).stages
    pool_steps = base.max_steps * 3 // 2  # the pooled set is 2.5x a dialect's: a few more steps
    mix[0] = dataclasses.replace(mix[0], overrides={**mix[0].overrides, "max_steps": pool_steps,
                                                    "eval_steps": max(base.eval_steps, pool_steps)})
    mix[1] = dataclasses.replace(mix[1], overrides={**mix[1].overrides, "evaluate_before": True})
    bank = Stage("bank", {"seed": [42, 84]}, kind=BANK, bank_of="train")
    return StudyDesign("offline-mini", base, [*pvf, *mix, bank], order="seed")


# The backbones study: one protocol across model families (Whisper small and large-v3-turbo, Qwen3-ASR 0.6B),
# LoRA on the decoder, LoRA everywhere and full fine-tuning, the paper's five dialects, its three seeds. Under the
# ci profile: the tiny random models of each family on the sample set, one dialect, one seed.
BACKBONE_MODELS = ("openai/whisper-small", "openai/whisper-large-v3-turbo", "Qwen/Qwen3-ASR-0.6B-hf")
BACKBONE_VARIANTS = ("lora-decoder", "lora", "full")
BACKBONE_STEPS = 2000  # per run: 135 runs x 2000 steps; see docs/backbones.md for the sessions this takes
_CI_BACKBONE_MODELS = ("tiny-random", "tiny-random-qwen3-asr")


def _backbones(base: Optional[ExperimentConfig] = None) -> StudyDesign:
    """:data:`BACKBONE_MODELS` x :data:`BACKBONE_VARIANTS` x the five dialects x 3 seeds (``peft_vs_full`` with
    a model axis), :data:`BACKBONE_STEPS` steps a run. ``base`` must read audio (Qwen3-ASR and large-v3-turbo
    take 128-mel log-mel, not the otozz 80-mel features): ValueError, before anything loads, for a features
    source. Under the ci profile: :data:`_CI_BACKBONE_MODELS` on ``base``'s data, Egyptian, seed 42."""
    from . import sources
    from .profiles import current

    base = base or ExperimentConfig()
    if sources.of(base).records == "features":
        raise ValueError(f"the backbones preset trains Qwen3-ASR and whisper-large-v3-turbo, which cannot read "
                         f"the {base.source} source's 80-mel features: give a source with audio (e.g. --source "
                         "local --data-path FOLDER).")
    if current() == "ci":
        return peft_vs_full(base, BACKBONE_VARIANTS, ("egyptian",), (42,), "backbones", _CI_BACKBONE_MODELS)
    base = dataclasses.replace(base, max_steps=BACKBONE_STEPS)
    return peft_vs_full(base, BACKBONE_VARIANTS, DIALECTS, _SEEDS, "backbones", BACKBONE_MODELS)




def _peft_methods_mini(base: Optional[ExperimentConfig] = None) -> StudyDesign:
    """The offline methods study: :func:`peft_methods` on the offline mini base (whisper-base, the sample set,
    16 steps of 4 clips), LoRA, VeRA, IA3, LoHa, LoKr and AdaLoRA on q/v and on every linear layer, vs full
    fine-tuning; Egyptian, seeds 42 and 84, scored on Egyptian only (to spend the CPU time on training): 26 runs."""
    base = dataclasses.replace(base or offline_mini_base(), test_sets=["egyptian"],
                               output_dir="runs/peft-methods-mini")
    return peft_methods(base, variants=("lora", "vera", "ia3", "loha", "lokr", "adalora"),
                        dialects=("egyptian",), seeds=(42, 84), name="peft-methods-mini")


@dataclass(frozen=True)
class Preset:
    """A ready-made study: ``build(base)`` makes its design from ``base``, by default ``start()``: the config
    its runs start from (the command line applies the profile and its options to it first)."""
    build: Callable[[Optional[ExperimentConfig]], StudyDesign]
    start: Callable[[], ExperimentConfig] = ExperimentConfig


PRESETS: dict[str, Preset] = {"offline-mini": Preset(_offline_mini, offline_mini_base),
                              "peft-methods-mini": Preset(_peft_methods_mini, offline_mini_base),
                              "backbones": Preset(_backbones)}


def design_options(name: str, options: dict) -> dict:
    """The entries of ``options`` that design ``name`` takes (a notebook's parameters cell holds the axes of
    every design; each design uses its own). Presets and design files take none."""
    import inspect

    if name not in DESIGNS:
        return {}
    accepted = inspect.signature(DESIGNS[name]).parameters
    return {k: v for k, v in options.items() if k in accepted and k not in ("base", "name")}


def design(name: str, base: Optional[ExperimentConfig] = None, **options) -> StudyDesign:
    """A design by name (:data:`DESIGNS`, a preset of :data:`PRESETS`, or a .json/.yaml design file)."""
    if name in PRESETS:
        return PRESETS[name].build(base)
    if name in DESIGNS:
        return DESIGNS[name](base if base is not None else ExperimentConfig(), **options)
    if Path(name).suffix in (".json", ".yaml", ".yml"):
        loaded = StudyDesign.from_file(name)
        return dataclasses.replace(loaded, base=base) if base is not None else loaded
    raise ValueError(f"Unknown study design {name!r}: choose one of {', '.join([*DESIGNS, *PRESETS])} "
                     "or give a .json/.yaml design file.")


# --- the launcher -----------------------------------------------------------------------------------
