"""Adapter placement: which tower of a speech model gets the adapters (``encoder``, ``decoder`` or ``both``).

Every family names its two towers by module path (:attr:`towers` of a backbone: Whisper's ``model.encoder.layers``
and ``model.decoder.layers``; Qwen3-ASR's audio tower and language model), because layer names alone do not say
where a layer sits (``q_proj`` exists in both towers of both families). Where the adapter sits matters: on
Cohere's Arabic ASR model fine-tuned on Darija, LoRA on the decoder alone gave no gain while LoRA on encoder and
decoder cut CER from 20.2 to 16.5 (research notes, section 9).

Public: :data:`PLACEMENTS`, :func:`target_modules`.
"""

from __future__ import annotations

import re

PLACEMENTS = ("both", "encoder", "decoder")  # "both": the layer names wherever they are (the default)


def _names(backbone, lora_targets: str) -> list[str]:
    """``lora_targets`` as a preset of the backbone's ``lora_targets``, else as comma-separated module names."""
    if lora_targets in backbone.lora_targets:
        return list(backbone.lora_targets[lora_targets])
    return [m.strip() for m in lora_targets.split(",") if m.strip()]


def target_modules(backbone, cfg) -> list[str] | str:
    """What peft's ``target_modules`` gets for ``cfg.lora_targets`` on ``cfg.adapter_placement``: ``both`` gives
    the layer names (every layer so named, in either tower: the behaviour before placement existed); ``encoder`` or
    ``decoder`` a regular expression that peft matches in full against module paths, naming the layers of that
    tower only (e.g. ``model\\.encoder\\.layers\\.\\d+\\.(?:.*\\.)?(?:q_proj|v_proj)``). ValueError (one line, naming
    the choices) for a placement the family has no tower for."""
    names, placement = _names(backbone, cfg.lora_targets), getattr(cfg, "adapter_placement", "both")
    if placement == "both":
        return names
    if placement not in backbone.towers:
        raise ValueError(f"adapter_placement={placement!r}: the {backbone.family} family has no such tower; "
                         f"choose one of both, {', '.join(backbone.towers)}.")
    layers = "|".join(re.escape(n) for n in names)
    return rf"{re.escape(backbone.towers[placement])}\.\d+\.(?:.*\.)?(?:{layers})"
