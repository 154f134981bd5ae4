"""The model families arabicpeft fine-tunes: one plain class per family (in its own module: :mod:`arabicpeft.whisper`,
:mod:`arabicpeft.qwen3_asr`), one entry in :data:`BACKBONES`.

A family is keyed by the transformers ``model_type`` of the model's ``config.json`` (``"whisper"``), never by its
name (:func:`family_of`; :func:`get`, :func:`of`). A backbone holds what differs between families: loading, the
processor (Arabic and transcription forced), labels, collators, language forcing, the decoding pieces evaluation
calls (:mod:`arabicpeft.evaluate` keeps per-utterance limits, batching, scoring), the encoder-window cut, LoRA
target presets, the test-model builder and what export supports. torch and transformers load inside functions.

Public: :data:`LANGUAGE`, :data:`SUPPRESS_PROCESSORS`, :class:`SuppressTokens` (:mod:`arabicpeft.whisper_tokens`),
:class:`WhisperCollator` and :class:`Whisper` (:mod:`arabicpeft.whisper`'s), :data:`BACKBONES`, :func:`config_of`, :func:`family_of`, :func:`get`,
:func:`of`, :func:`exporting`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .qwen3_asr import Qwen3ASR
from .whisper import LANGUAGE, SUPPRESS_PROCESSORS, Whisper, WhisperCollator  # noqa: F401 (public here)
from .whisper_tokens import SuppressTokens  # noqa: F401 (Whisper's decoding piece, public here as before)


BACKBONES: dict[str, Whisper] = {"whisper": Whisper(), "qwen3_asr": Qwen3ASR(LANGUAGE, SUPPRESS_PROCESSORS)}


# --- which family -----------------------------------------------------------------------------------------------


def _read_config(reference: str) -> dict:
    """The ``config.json`` of a model folder or hub id (through huggingface_hub: that one file; under
    HF_HUB_OFFLINE from the local cache only). Raises OSError when it cannot be read."""
    file = Path(reference).expanduser() / "config.json"
    try:
        if not file.parent.is_dir():
            from huggingface_hub import hf_hub_download

            file = Path(hf_hub_download(reference, "config.json"))
        return json.loads(file.read_text(encoding="utf-8"))
    except Exception as e:  # offline and not cached, no such repo, no network, a broken file: one answer here
        raise OSError(f"cannot read the config.json of {reference}: {str(e).splitlines()[0]}") from e


def _registered(model_type: str, what: str) -> Whisper:
    if model_type not in BACKBONES:
        raise ValueError(f"{what} is a {model_type!r} model (the model_type of its config.json), which arabicpeft "
                         f"does not support: use a model of the family {', '.join(BACKBONES)}.")
    return BACKBONES[model_type]


def _model_folder(reference) -> str:
    """A run folder's ``model/``, an adapter's base (peft's ``base_model_name_or_path``), else ``reference``."""
    text = os.fspath(reference)
    path = Path(text).expanduser()
    if (path / "model").is_dir() and not (path / "config.json").is_file():  # a run folder
        path = path / "model"
    if (path / "adapter_config.json").is_file():
        base = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base:
            raise OSError(f"{path} is a peft adapter without base_model_name_or_path: its base model is unknown.")
        return _model_folder(base)
    return str(path) if path.is_dir() else text


def config_of(reference) -> dict:
    """The ``config.json`` of a model folder, a run folder (its ``model/``), an adapter (its base) or a hub id (that
    one file, :func:`_read_config`); OSError when it cannot be read."""
    return _read_config(_model_folder(reference))


def family_of(reference) -> str:
    """The family (the ``model_type`` in ``config.json``) of a model folder, a run folder (its ``model/``), an
    adapter (its base: peft's ``base_model_name_or_path``), a CTranslate2 export (the family exporting to it) or a
    hub id (config.json only). Offline names resolve to folders first (:func:`arabicpeft.offline_model.resolve_model`).
    OSError when the config cannot be read; ValueError for an unregistered model_type, naming the supported ones."""
    folder = _model_folder(reference)
    if (Path(folder) / "model.bin").is_file():
        return exporting("ct2").family
    return _registered(_read_config(folder).get("model_type"), os.fspath(reference)).family


def get(reference) -> Whisper:
    """The backbone of a family name (a key of :data:`BACKBONES`) or of a model reference (:func:`family_of`)."""
    text = os.fspath(reference)
    return BACKBONES[text] if text in BACKBONES else BACKBONES[family_of(text)]


def of(model) -> Whisper:
    """The backbone of a loaded model (transformers or peft): its config's ``model_type``; ValueError for a family
    no backbone is registered for."""
    return _registered(model.config.model_type, "this model")


def exporting(fmt: str) -> Whisper:
    """The backbone whose models export to ``fmt`` (``ct2``: the family faster-whisper runs); ValueError if none."""
    found = [backbone for backbone in BACKBONES.values() if fmt in backbone.exports]
    if not found:
        raise ValueError(f"no model family exports to {fmt}.")
    return found[0]
