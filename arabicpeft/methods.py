"""The fine-tuning methods: one declaration per method in one table, as peft maps a method name to its config class.

A :class:`Method` says which peft config class builds its adapter (None: full fine-tuning, every weight
trained, no adapter), which :class:`~arabicpeft.config.ExperimentConfig` fields it reads (their type, help and
default live in the config, typed once) and how they become the peft config's arguments, whether its adapter
merges into the base, whether an adapter bank can mix its adapters per utterance, whether it trains on a
quantized base, and its default learning rate with the source of that value. The config, the command line, the
widgets, the model, the training run, the results reader (variant labels; what a PEFT-vs-full table compares)
and the study launcher ask this table; no other module names a method. Adding a method is one entry in
:data:`METHODS`. DoRA is a LoRA option (``use_dora``), not a method of its own.

No torch or peft at import (the config and the command line import this module): peft is imported inside
:func:`add_adapter`. The peft configs leave ``task_type`` unset: SEQ_2_SEQ_LM would pass ``input_ids`` to Whisper.

Public: :class:`Method`, :data:`METHODS`, :func:`get`, :func:`all_fields`, :func:`add_adapter`,
:func:`peft_warnings_silenced`.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from .errors import ConfigError


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
    per utterance in one batch (peft ``adapter_names``). ``quantized``: it trains on an int8/nf4 base (QLoRA
    style). ``learning_rate``: the default peak learning rate, ``learning_rate_source`` where that value comes
    from. ``label(config)``: the words that name a run of it in a results table (first its kind), from a saved
    config (a dict, possibly an old one); default: its name and ``field=value`` for each of ``fields``.
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
    bank: bool = False
    quantized: bool = False
    label: Optional[Callable[[Mapping], tuple[str, ...]]] = None

    def label_words(self, config: Mapping) -> tuple[str, ...]:
        """The words naming a run of this method with saved config ``config`` (:attr:`label`)."""
        if self.label is not None:
            return self.label(config)
        return (self.name, *(f"{f}={config.get(f)}" for f in self.fields))


def _lora_label(config: Mapping) -> tuple[str, ...]:
    """"lora r32 a64 d0.05 qv" ("dora ..." with use_dora; "... on encoder" for an adapter on one tower): the labels
    results files have always had."""
    return ("dora" if config.get("use_dora") else "lora", f"r{config.get('lora_r')}", f"a{config.get('lora_alpha')}",
            f"d{config.get('lora_dropout')}", str(config.get("lora_targets")),
            *([f"on {config['adapter_placement']}"] if config.get("adapter_placement", "both") != "both" else []))


METHODS: dict[str, Method] = {
    "lora": Method(
        name="lora", title="LoRA", help="train a LoRA adapter (peft; DoRA with use_dora)", peft_config="LoraConfig",
        fields=("lora_r", "lora_alpha", "lora_dropout", "lora_targets", "adapter_placement", "use_dora"),
        options=lambda cfg: dict(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 use_dora=cfg.use_dora),
        merges=True, bank=True, quantized=True, label=_lora_label,
        learning_rate=1e-3, learning_rate_source="the LoRA recipe the replaced project (ziadtarek12/finetune-ar-"
        "dialects) ran: r 32, alpha 64, 1e-3"),
    "full": Method(
        name="full", title="full fine-tuning", help="fine-tune every weight", peft_config=None,
        merges=False,  # nothing to merge: the saved model is whole
        learning_rate=1e-5, learning_rate_source="Özyılmaz et al. 2025 (arXiv 2506.02627), full fine-tuning of "
        "whisper-small"),
}


def get(name: str) -> Method:
    """The declaration of method ``name``; :class:`~arabicpeft.errors.ConfigError` naming the valid methods
    for an unknown one."""
    if name not in METHODS:
        raise ConfigError(f"Unknown method {name!r}", f"choose one of {', '.join(METHODS)}.")
    return METHODS[name]


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


def add_adapter(model, cfg, target_modules: list[str]):
    """``model`` (a transformers model) with a trainable adapter of method ``cfg.method`` on the layers named
    ``target_modules`` (e.g. ["q_proj", "v_proj"]): a peft ``PeftModel`` whose base weights are frozen.

    A base loaded quantized (bitsandbytes int8/nf4) is first prepared for k-bit training (peft's
    ``prepare_model_for_kbit_training``: norms in fp32, inputs that carry gradients, with gradient checkpointing
    when ``cfg.gradient_checkpointing``). ``cfg.init_adapter``: the saved adapter in that folder, trainable,
    instead of a fresh one (e.g. the MSA adapter of a two-stage study continued). Else a fresh adapter from the
    method's peft config class with ``options(cfg)``. Raises ConfigError for a method that is not an adapter."""
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
        config = getattr(peft, method.peft_config)(**method.options(cfg), target_modules=target_modules)
        return peft.get_peft_model(model, config)
