"""The fine-tuning methods: one declaration per method in one table, as peft maps a method name to its config class.

A :class:`Method` says which peft config class builds its adapter (None: full fine-tuning, every weight
trained, no adapter), which :class:`~arabicpeft.config.ExperimentConfig` fields it reads (their type, help and
default live in the config, typed once) and how they become the peft config's arguments, whether its adapter
merges into the base, whether an adapter bank can mix its adapters per utterance, whether it trains on a
quantized base, what it needs around training (a check of the config, a hook on the Trainer), and its default
learning rate with the source of that value. The config, the command line, the widgets, the model, the training
run, the results reader (variant labels; what a PEFT-vs-full table compares) and the study launcher ask this
table; no other module names a method. Adding a method is one entry in :data:`METHODS`. DoRA, rsLoRA and the
initialisations (PiSSA, OLoRA, EVA: :data:`LORA_INITS`) are LoRA options, not methods of their own.

No torch or peft at import (the config and the command line import this module): peft is imported inside the
functions that build, initialise or save an adapter. The peft configs leave ``task_type`` unset: SEQ_2_SEQ_LM
would pass ``input_ids`` to Whisper.

Public: :class:`Method`, :data:`METHODS`, :data:`LoraInit`, :data:`LORA_INITS`, :data:`INITIAL_ADAPTER_DIR`,
:func:`get`, :func:`mixes_in_bank`, :func:`all_fields`, :func:`add_adapter`, :func:`save_options`,
:func:`peft_warnings_silenced`.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional

from .errors import ConfigError

LoraInit = Literal["default", "gaussian", "pissa", "olora", "eva"]
# lora_init -> (peft's LoraConfig.init_lora_weights, what it does: the config's help)
LORA_INITS: dict[str, tuple[Any, str]] = {
    "default": (True, "B = 0, A Kaiming-uniform (the LoRA paper)"),
    "gaussian": ("gaussian", "B = 0, A Gaussian"),
    "pissa": ("pissa", "A and B from the base weight's principal singular vectors, the base keeps the residual "
              "(PiSSA, arXiv 2404.02948)"),
    "olora": ("olora", "A and B from a QR decomposition of the base weight, the base keeps the residual (OLoRA, "
              "arXiv 2406.01775)"),
    "eva": ("eva", "A from the SVD of the layers' inputs on the training data, one pass before training (EVA, "
            "arXiv 2410.07170)"),
}
_MOVES_BASE = ("pissa", "olora")  # initialisations that change the base weights the adapter sits on
# Where a PiSSA/OLoRA run keeps its adapter as initialised (in the output folder): the saved adapter is converted
# against it into a plain LoRA (rank 2r) on the unchanged base, so that it loads, scores and merges like any other.
INITIAL_ADAPTER_DIR = "initial_adapter"


@dataclass(frozen=True)
class Method:
    """One fine-tuning method.

    ``name``: the ``--method`` value. ``title``: what it is in a sentence ("LoRA", "full fine-tuning").
    ``help``: one line for ``--help`` and the widgets. ``peft_config``: the peft config class that builds its
    adapter ("LoraConfig"), None for full fine-tuning (not an adapter). ``fields``: the config fields it reads;
    the results reader, variant labels, :meth:`ExperimentConfig.describe` and ``unused_fields``, the widgets and
    the study picker derive from them. ``options(cfg)``: the peft config's keyword arguments from a config
    (``target_modules`` is added by :func:`add_adapter`'s caller). ``merges``: peft's ``merge_and_unload`` gives
    a standalone model with the same transcripts. ``bank``: an adapter bank can hold its adapters and mix them
    per utterance in one batch (peft ``adapter_names``), or a function of the saved config saying so
    (:func:`mixes_in_bank`). ``quantized``: it trains on an int8/nf4 base (QLoRA
    style). ``learning_rate``: the default peak learning rate, ``learning_rate_source`` where that value comes
    from. ``label(config)``: the words that name a run of it in a results table (first its kind), from a saved
    config (a dict, possibly an old one); default: its name and ``field=value`` for each of ``fields``.
    ``feedforward``: its peft config also takes ``feedforward_modules``, the targets that the backbone declares
    feed-forward (IA3 scales their inputs, not their outputs). ``check(cfg)``: raises ConfigError for a config
    it cannot run (the config calls it). ``hook(cfg, trainer)``: called by
    :func:`arabicpeft.trainer.make_trainer` once the Trainer is built, before training: adds a callback
    (AdaLoRA's rank budget) or initialises the adapter from the training data (EVA).
    """

    name: str
    title: str
    help: str
    peft_config: Optional[str]
    learning_rate: float
    learning_rate_source: str
    fields: tuple[str, ...] = ()
    options: Callable[[Any], dict] = lambda cfg: {}
    merges: bool = True
    bank: bool | Callable[[Mapping], bool] = False
    quantized: bool = False
    label: Optional[Callable[[Mapping], tuple[str, ...]]] = None
    feedforward: bool = False
    check: Optional[Callable[[Any], None]] = None
    hook: Optional[Callable[[Any, Any], None]] = None

    def label_words(self, config: Mapping) -> tuple[str, ...]:
        """The words naming a run of this method with saved config ``config`` (:attr:`label`)."""
        if self.label is not None:
            return self.label(config)
        words = [f"{f}={config.get(f)}" for f in self.fields if f != "adapter_placement"]
        placement = config.get("adapter_placement", "both")  # named only for an adapter on one tower, as LoRA's
        return (self.name, *words, *([f"on {placement}"] if placement != "both" else []))


def _lora_label(config: Mapping) -> tuple[str, ...]:
    """"lora r32 a64 d0.05 qv" ("dora ..." with use_dora): the labels results files have always had, then
    "rslora" and "init=pissa" when those options are set (older configs have neither), and "on encoder" for an
    adapter on one tower."""
    init = config.get("lora_init") or "default"
    return ("dora" if config.get("use_dora") else "lora", f"r{config.get('lora_r')}", f"a{config.get('lora_alpha')}",
            f"d{config.get('lora_dropout')}", str(config.get("lora_targets")),
            *(("rslora",) if config.get("use_rslora") else ()), *((f"init={init}",) if init != "default" else ()),
            *([f"on {config['adapter_placement']}"] if config.get("adapter_placement", "both") != "both" else []))


def _lora_options(cfg) -> dict:
    options = dict(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, use_dora=cfg.use_dora,
                   use_rslora=cfg.use_rslora, init_lora_weights=LORA_INITS[cfg.lora_init][0])
    if cfg.lora_init == "eva":
        from peft import EvaConfig

        # rho 1: every layer keeps rank lora_r (no redistribution), so a checkpoint resumes into the same shapes
        options["eva_config"] = EvaConfig(rho=1.0)
    return options


def _lora_check(cfg) -> None:
    if cfg.lora_init in _MOVES_BASE and cfg.evaluate_before:
        raise ConfigError(f"lora_init={cfg.lora_init} moves part of the base weights into the adapter, so switching "
                          "the adapter off no longer gives the starting model to score",
                          "set evaluate_before false (--no-evaluate-before) and score the base model with evaluate.")


def _lora_hook(cfg, trainer) -> None:
    """EVA: the adapter's A matrices from the SVD of each target layer's inputs over the training data, one pass
    (peft's initialize_lora_eva_weights) before the first step; a continued adapter is not initialised again."""
    if cfg.lora_init != "eva" or cfg.init_adapter:
        return
    from peft import initialize_lora_eva_weights

    def forward(model, inputs):
        return model(**{k: v.to(model.device) for k, v in inputs.items()})

    def rows(layer_input, model_input, layer_name):  # every position of every utterance (encoder or decoder)
        x = layer_input[0] if isinstance(layer_input, (tuple, list)) else layer_input
        return x.reshape(-1, x.shape[-1])

    with peft_warnings_silenced():
        initialize_lora_eva_weights(trainer.model, trainer.get_train_dataloader(), forward_fn=forward,
                                    prepare_model_inputs_fn=None, prepare_layer_inputs_fn=rows, show_progress_bar=False)


def _adalora_check(cfg) -> None:
    if cfg.adalora_target_r > cfg.lora_r:
        raise ConfigError(f"adalora_target_r {cfg.adalora_target_r} is above lora_r {cfg.lora_r}, the rank AdaLoRA "
                          "starts from and prunes", "give adalora_target_r <= lora_r.")


def _adalora_hook(cfg, trainer) -> None:
    """AdaLoRA's rank budget: ``update_and_allocate(step)`` after each optimizer step, while the gradients are
    still there (peft: after ``optimizer.step()``, before ``zero_grad()``): the Trainer's on_optimizer_step."""
    from transformers import TrainerCallback

    class AdaLoraBudget(TrainerCallback):
        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            model.base_model.update_and_allocate(state.global_step)

    trainer.add_callback(AdaLoraBudget())


# The defaults' learning rates come from the method's paper or peft's own method comparison (MetaMathQA on
# Llama-3.2-3B, huggingface/peft method_comparison/), as each source says; none was tuned on Whisper here.
_ADAPTER = ("lora_targets", "adapter_placement")  # every adapter's layers: the backbone's preset or module names, on
# which of its towers
METHODS: dict[str, Method] = {
    "lora": Method(
        name="lora", title="LoRA", help="train a LoRA adapter (peft; DoRA, rsLoRA, PiSSA / OLoRA / EVA init as "
        "options)", peft_config="LoraConfig",
        fields=("lora_r", "lora_alpha", "lora_dropout", *_ADAPTER, "use_dora", "use_rslora", "lora_init"),
        options=_lora_options, check=_lora_check, hook=_lora_hook,
        merges=True, quantized=True, label=_lora_label,
        bank=lambda config: not config.get("use_dora"),  # peft 0.21: "Cannot pass adapter_names when DoRA is enabled"
        learning_rate=1e-3, learning_rate_source="the LoRA recipe the replaced project (ziadtarek12/finetune-ar-"
        "dialects) ran: r 32, alpha 64, 1e-3"),
    "full": Method(
        name="full", title="full fine-tuning", help="fine-tune every weight", peft_config=None,
        merges=False,  # nothing to merge: the saved model is whole
        learning_rate=1e-5, learning_rate_source="Özyılmaz et al. 2025 (arXiv 2506.02627), full fine-tuning of "
        "whisper-small"),
    "vera": Method(
        name="vera", title="VeRA", help="train VeRA scaling vectors on frozen shared random projections (peft)",
        peft_config="VeraConfig", fields=("vera_r", "vera_d_initial", "lora_dropout", *_ADAPTER),
        options=lambda cfg: dict(r=cfg.vera_r, d_initial=cfg.vera_d_initial, vera_dropout=cfg.lora_dropout),
        merges=True, bank=False, quantized=False,  # peft 0.21 has no mixed-batch or bitsandbytes VeRA layer
        learning_rate=1e-2, learning_rate_source="VeRA (Kopiczko et al. 2024, arXiv 2310.11454) trains at about "
        "ten times LoRA's learning rate (instruction tuning: 4e-3 vs 4e-4): ten times our LoRA default"),
    "ia3": Method(
        name="ia3", title="IA3", help="train IA3 vectors that rescale the targets' activations (peft)",
        peft_config="IA3Config", fields=_ADAPTER, feedforward=True,
        merges=True, bank=False, quantized=True,  # peft 0.21: no mixed-batch IA3 layer; a bitsandbytes one
        learning_rate=3e-3, learning_rate_source="T-Few (Liu et al. 2022, arXiv 2205.05638), (IA)3 at 3e-3; peft's "
        "method comparison runs IA3 at 5e-3"),
    "loha": Method(
        name="loha", title="LoHa", help="train a LoHa adapter (Hadamard product of two low-rank pairs; peft)",
        peft_config="LoHaConfig", fields=("lora_r", "lora_alpha", *_ADAPTER),
        options=lambda cfg: dict(r=cfg.lora_r, alpha=cfg.lora_alpha),
        merges=True, bank=False, quantized=False,  # peft 0.21: no mixed-batch or bitsandbytes LoHa layer
        learning_rate=1e-3, learning_rate_source="peft's method comparison runs LoHa at its LoRA learning rate "
        "(no tuned value published for it): our LoRA default"),
    "lokr": Method(
        name="lokr", title="LoKr", help="train a LoKr adapter (Kronecker product with a low-rank factor; peft)",
        peft_config="LoKrConfig", fields=("lora_r", "lora_alpha", *_ADAPTER),
        options=lambda cfg: dict(r=cfg.lora_r, alpha=cfg.lora_alpha),
        merges=True, bank=False, quantized=False,  # peft 0.21: no mixed-batch or bitsandbytes LoKr layer
        learning_rate=3e-3, learning_rate_source="peft's method comparison, LoKr rank 32 factor 4 at 3e-3 (its "
        "best LoKr run)"),
    "adalora": Method(
        name="adalora", title="AdaLoRA", help="train an AdaLoRA adapter whose ranks are pruned to a budget while "
        "training (peft)", peft_config="AdaLoraConfig",
        fields=("lora_r", "adalora_target_r", "lora_alpha", "lora_dropout", *_ADAPTER),
        # total_step: the schedule of the rank budget spans the run's steps
        options=lambda cfg: dict(init_r=cfg.lora_r, target_r=cfg.adalora_target_r, lora_alpha=cfg.lora_alpha,
                                 lora_dropout=cfg.lora_dropout, total_step=cfg.max_steps),
        check=_adalora_check, hook=_adalora_hook,
        merges=True, bank=False, quantized=True,  # its SVD layers ignore peft's adapter_names; a bitsandbytes one
        learning_rate=1e-3, learning_rate_source="AdaLoRA (Zhang et al. 2023, arXiv 2303.10512) fine-tuned "
        "DeBERTaV3 at 5e-4 to 1.2e-3: our LoRA default lies in that range"),
}


def get(name: str) -> Method:
    """The declaration of method ``name``; :class:`~arabicpeft.errors.ConfigError` naming the valid methods
    for an unknown one."""
    if name not in METHODS:
        raise ConfigError(f"Unknown method {name!r}", f"choose one of {', '.join(METHODS)}.")
    return METHODS[name]


def mixes_in_bank(config) -> bool:
    """Whether an adapter bank can hold an adapter trained with ``config`` (an ExperimentConfig or a saved config
    dict) and mix it with others per utterance: its method's :attr:`Method.bank`, asked of the config where the
    declaration is a function (LoRA: not with DoRA). Raises ConfigError for an unknown method."""
    values = config if isinstance(config, Mapping) else vars(config)
    bank = get(values["method"]).bank
    return bank(values) if callable(bank) else bank


def all_fields() -> tuple[str, ...]:
    """Every config field some method reads, in table order, once each."""
    return tuple(dict.fromkeys(f for method in METHODS.values() for f in method.fields))


@contextlib.contextmanager
def peft_warnings_silenced():
    """peft's PeftModel reads transformers' deprecated ``is_gradient_checkpointing`` alias: a FutureWarning about
    peft's code, not ours, harmless until transformers 6 removes the alias. Silenced deliberately, here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def add_adapter(model, cfg, target_modules: list[str], feedforward_modules=()):
    """``model`` (a transformers model) with a trainable adapter of method ``cfg.method`` on the layers named
    ``target_modules`` (e.g. ["q_proj", "v_proj"]): a peft ``PeftModel`` whose base weights are frozen.
    ``feedforward_modules``: the backbone's feed-forward layer names; those among the targets are passed as
    ``feedforward_modules`` to a method that declares ``feedforward`` (IA3).

    A base loaded quantized (bitsandbytes int8/nf4) is first prepared for k-bit training (peft's
    ``prepare_model_for_kbit_training``: norms in fp32, inputs that carry gradients, with gradient checkpointing
    when ``cfg.gradient_checkpointing``). ``cfg.init_adapter``: the saved adapter in that folder, trainable,
    instead of a fresh one (e.g. the MSA adapter of a two-stage study continued). Else a fresh adapter from the
    method's peft config class with ``options(cfg)``; a LoRA initialised by PiSSA/OLoRA is saved as initialised
    to ``cfg.output_dir``/:data:`INITIAL_ADAPTER_DIR` (:func:`save_options`). Raises ConfigError for a method
    that is not an adapter."""
    import peft

    method = get(cfg.method)
    if not method.peft_config:
        raise ConfigError(f"method {method.name} trains every weight: it has no adapter to add",
                          f"choose an adapter method ({', '.join(n for n, m in METHODS.items() if m.peft_config)}).")
    if getattr(model, "hf_quantizer", None) is not None:
        model = peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    with peft_warnings_silenced():
        if cfg.init_adapter:
            return peft.PeftModel.from_pretrained(model, str(cfg.init_adapter), is_trainable=True)
        extra = {"feedforward_modules": [m for m in target_modules if m in feedforward_modules]} \
            if method.feedforward else {}
        config = getattr(peft, method.peft_config)(**method.options(cfg), target_modules=target_modules, **extra)
        model = peft.get_peft_model(model, config)
        if save_options(cfg):  # keep the adapter as initialised: the saved one is converted against it
            model.peft_config["default"].init_lora_weights = True  # so that it loads as a plain LoRA (peft's recipe)
            model.save_pretrained(save_options(cfg)["path_initial_model_for_weight_conversion"])
            model.peft_config["default"].init_lora_weights = LORA_INITS[cfg.lora_init][0]
        return model


def save_options(cfg) -> dict:
    """The keyword arguments of ``save_pretrained`` for the adapter of a run of ``cfg``: for a LoRA initialised by
    PiSSA or OLoRA (which moved part of the base weights into it), peft's conversion into a plain LoRA of rank
    2r on the unchanged base, against the adapter as initialised (:data:`INITIAL_ADAPTER_DIR`); else none."""
    if "lora_init" not in get(cfg.method).fields or cfg.lora_init not in _MOVES_BASE or cfg.init_adapter:
        return {}
    return {"path_initial_model_for_weight_conversion": str(Path(cfg.output_dir) / INITIAL_ADAPTER_DIR)}
