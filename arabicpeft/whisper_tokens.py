"""Whisper's special tokens: their layouts (the ids a tokenizer gives the tokens of Arabic transcription, read
from the tokenizer of the model in hand; the layout stored labels carry; large-v3's tokenizer made from an earlier
one) and their suppression while decoding (:class:`SuppressTokens`).

Multilingual Whisper's special tokens follow its text vocabulary in a fixed order (openai/whisper,
``whisper/tokenizer.py``, ``get_encoding``): ``<|endoftext|>``, ``<|startoftranscript|>``, one token per language,
``<|translate|>``, ``<|transcribe|>``, ``<|startoflm|>``, ``<|startofprev|>``, ``<|nospeech|>``,
``<|notimestamps|>``, then 1501 timestamps. tiny ... large-v2 have 99 languages; large-v3 and large-v3-turbo 100
(``<|yue|>``, last in that file's ``LANGUAGES``; ``num_languages = n_vocab - 51765 - 1`` in ``whisper/model.py``,
n_vocab 51866), so every token after the languages sits one id higher: whisper-small's labels
``<|transcribe|><|notimestamps|>`` (50359, 50363) read as ``<|translate|><|nospeech|>`` to large-v3.

Torch-free at import (the early checks of :func:`arabicpeft.kaggle.preflight` use it before anything loads).

Public: :data:`PROMPT_TOKENS`, :data:`LABEL_LAYOUTS`, :func:`of_tokenizer`, :func:`of_files`, :func:`to_remake`,
:func:`remake_labels`, :func:`with_cantonese`, :class:`SuppressTokens`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

# The tokens every label sequence of an Arabic transcript holds: the decoder prompt and the end of text.
PROMPT_TOKENS = ("<|startoftranscript|>", "<|ar|>", "<|transcribe|>", "<|notimestamps|>", "<|endoftext|>")

# Declared layouts of stored labels, by name (a features source's ``label_tokens``). "whisper": the multilingual
# tokenizer of tiny ... large-v2, the ids of the otozz sets' labels (whisper-small's). "whisper-v3": large-v3 and
# large-v3-turbo (openai/whisper tokenizer.py with 100 languages).
LABEL_LAYOUTS: dict[str, dict[str, int]] = {
    "whisper": dict(zip(PROMPT_TOKENS, (50258, 50272, 50359, 50363, 50257))),
    "whisper-v3": dict(zip(PROMPT_TOKENS, (50258, 50272, 50360, 50364, 50257))),
}
_LAST_LANGUAGE_V2, _NEW_LANGUAGE = "<|su|>", "<|yue|>"  # the 99th language token; the one large-v3 adds after it


def of_tokenizer(tokenizer) -> dict[str, Optional[int]]:
    """The ids ``tokenizer`` (a loaded transformers tokenizer) gives :data:`PROMPT_TOKENS`; None for a token it
    lacks (an English-only Whisper has no ``<|ar|>``)."""
    vocab = tokenizer.get_vocab()
    return {token: vocab.get(token) for token in PROMPT_TOKENS}


def _tokenizer_file(reference: str) -> Path:
    """The ``tokenizer.json`` of a model folder, or of a hub id (that one file, through huggingface_hub; under
    HF_HUB_OFFLINE from the local cache only). OSError when it cannot be had."""
    folder = Path(reference).expanduser()
    if folder.is_dir():
        if not (folder / "tokenizer.json").is_file():
            raise OSError(f"{folder} holds no tokenizer.json (a transformers tokenizer saved with save_pretrained)")
        return folder / "tokenizer.json"
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(reference, "tokenizer.json"))
    except Exception as e:  # offline and not cached, no such repo, no network: one answer here
        raise OSError(f"cannot read the tokenizer.json of {reference}: {str(e).splitlines()[0]}") from e


def of_files(reference: str) -> dict[str, Optional[int]]:
    """:func:`of_tokenizer` read from the ``tokenizer.json`` of a model folder or hub id (its ``added_tokens``),
    without loading the tokenizer; OSError when the file cannot be read."""
    added = json.loads(_tokenizer_file(reference).read_text(encoding="utf-8")).get("added_tokens", [])
    ids = {t["content"]: t["id"] for t in added}
    return {token: ids.get(token) for token in PROMPT_TOKENS}


def to_remake(label_tokens: Optional[str], tokenizer) -> Optional[dict[str, int]]:
    """The layout of stored labels (``label_tokens``, a key of :data:`LABEL_LAYOUTS`; None: labels made by the
    model's own tokenizer) when it differs from ``tokenizer``'s, so the labels must be re-made; else None."""
    stored = LABEL_LAYOUTS[label_tokens] if label_tokens else None
    return stored if stored and stored != of_tokenizer(tokenizer) else None


def remake_labels(labels, layout: dict[str, int], tokenizer) -> list[int]:
    """Label ids stored in another ``layout`` (ids of :data:`PROMPT_TOKENS`) made again for ``tokenizer`` (the
    model's, its prefix Arabic/transcribe/no timestamps set): the text (every id below the layout's
    ``<|endoftext|>``: its text vocabulary) decoded and encoded again, with the model's prefix and end of text."""
    text_ids = [int(t) for t in labels if int(t) < layout["<|endoftext|>"]]
    return tokenizer(tokenizer.decode(text_ids)).input_ids


def with_cantonese(tokenizer_json: dict) -> dict:
    """A copy of a tiny ... large-v2 multilingual ``tokenizer.json`` (as a dict) in large-v3's layout:
    ``<|yue|>`` inserted after the last language token ``<|su|>`` (50357 -> ``<|yue|>`` 50358) and every later
    added token one id higher (``<|translate|>`` 50359 ... ``<|notimestamps|>`` 50364). ``<|nocaptions|>``, the
    name older tokenizer files give ``<|nospeech|>``, is renamed as large-v3's files name it. ValueError when the
    file has no ``<|su|>`` or already has ``<|yue|>``."""
    data = json.loads(json.dumps(tokenizer_json))
    added = data["added_tokens"]
    by_content = {t["content"]: t for t in added}
    if _LAST_LANGUAGE_V2 not in by_content or _NEW_LANGUAGE in by_content:
        raise ValueError(f"not a 99-language Whisper tokenizer.json (needs {_LAST_LANGUAGE_V2}, no {_NEW_LANGUAGE})")
    after = by_content[_LAST_LANGUAGE_V2]["id"]
    for token in added:
        if token["id"] > after:
            token["id"] += 1
        if token["content"] == "<|nocaptions|>":
            token["content"] = "<|nospeech|>"
    added.append({**by_content[_LAST_LANGUAGE_V2], "id": after + 1, "content": _NEW_LANGUAGE})
    added.sort(key=lambda t: t["id"])
    return data


class SuppressTokens:
    """transformers' ``SuppressTokensLogitsProcessor`` and ``SuppressTokensAtBeginLogitsProcessor`` in one logits
    processor, their vocabulary masks built once (per vocabulary size and device) instead of at every step (~16% of
    a CPU evaluation profile in transformers 5). The same scores: -inf at ``suppress_tokens`` at every step, and at
    ``begin_suppress_tokens`` too at the first generated step (``begin_index``, set by Whisper's ``generate``; else
    the length of the first call's ``input_ids``); with ``timestamps_from`` (:meth:`Whisper.timestamps_from`)
    every token from it on as well (see :meth:`Whisper.decoding_options`)."""

    def __init__(self, suppress_tokens, begin_suppress_tokens, timestamps_from: Optional[int] = None):
        self.tokens, self.begin_tokens = list(suppress_tokens or ()), list(begin_suppress_tokens or ())
        self.timestamps_from = timestamps_from
        self.begin_index, self.masks = None, None

    def set_begin_index(self, begin_index: int) -> None:
        self.begin_index = begin_index

    def __call__(self, input_ids, scores):
        import torch

        vocab = scores.shape[-1]
        if self.masks is None or self.masks[0].shape[0] != vocab or self.masks[0].device != scores.device:
            every = torch.zeros(vocab, dtype=torch.bool, device=scores.device)
            every[[t for t in self.tokens if t < vocab]] = True
            if self.timestamps_from is not None:
                every[self.timestamps_from:] = True
            first = every.clone()
            first[[t for t in self.begin_tokens if t < vocab]] = True
            self.masks = every, first
        if self.begin_index is None:  # not set by the caller: the first call is the first generated step
            self.begin_index = input_ids.shape[-1]
        first_step = input_ids.shape[-1] == self.begin_index
        return scores.masked_fill(self.masks[1] if first_step else self.masks[0], -float("inf"))
