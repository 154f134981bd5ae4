"""Batched greedy transcription with Arabic + transcribe forced, scored under every normalizer.

Public: :func:`decoding_record`, :class:`SuppressTokens`, :func:`transcribe`, :func:`evaluate_sets`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Optional

import datasets
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from tqdm import tqdm  # text bars, also in notebooks: a saved notebook keeps where they ended (a widget bar
# is saved as its first frame, "0%", wherever the widget state is not stored, e.g. Kaggle's saved versions)

from .audio import audio_frames
from .data import AnyDataset, SpeechCollator
from .metrics import score_all
from .device import half_dtype
from .offline_model import MAX_TARGET_POSITIONS
from .model import LANGUAGE, TASK


class _NotForWhisperFeatures(logging.Filter):
    """Drops two transformers generation warnings that do not apply to our ``generate`` calls (silenced here,
    deliberately, because nothing we pass can avoid them):

    - "Passing `generation_config` together with generation-related arguments ...": transformers' own Whisper
      ``generate`` passes both to its parent class (its suppress-token workaround); callers cannot change that.
    - "The attention mask is not set with a batched input ... you may observe unexpected behavior": it guards
      against batches of padded *token* sequences. Our inputs are log-mel windows of one fixed size (every clip
      padded with silence to the window, as Whisper was trained), and Whisper's encoder takes no attention mask.
    """

    PREFIXES = ("Passing `generation_config` together with generation-related arguments",
                "The attention mask is not set with a batched input")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.PREFIXES)


logging.getLogger("transformers.generation.utils").addFilter(_NotForWhisperFeatures())


def _autocast(model, precision: str):
    # Half-precision and 8/4-bit models generate under autocast in the GPU's native half type, as they train;
    # an fp32 model is decoded in fp32.
    device = next(model.parameters()).device
    if device.type == "cuda" and precision != "fp32":
        return torch.autocast("cuda", dtype=half_dtype())
    return contextlib.nullcontext()


def _generation_budget(model, tokenizer, max_new_tokens: Optional[int] = None) -> int:
    """Transcript tokens one greedy decode can produce: ``max_new_tokens``, else the generation config's
    ``max_length`` (Whisper's generate counts it after the 4-token prompt), both capped at the decoder's
    ``max_target_positions`` less the prompt (448 - 4 = 444 for every Whisper size)."""
    cap = model.config.max_target_positions - len(tokenizer.prefix_tokens)
    asked = max_new_tokens if max_new_tokens is not None else model.generation_config.max_length
    return min(int(asked), cap) if asked else cap


# Per-utterance decode limit (see _decode_limits): a transcript may hold at most MIN_NEW_TOKENS + TOKENS_PER_SECOND
# tokens per second of its audio. The sample set's 432 references (espeak-ng speech at 130-160 words per minute)
# carry 3.2-6.6 Whisper tokens per second (mean 4.7; 0.57 tokens per character). Fast conversational speech runs
# ~1.6x faster (~250 words per minute: ~11 tokens/s), and a hypothesis may spend more tokens per character than
# its reference (other words, Latin or mixed script): 20 tokens/s is 3x the sample set's fastest reference, and
# 16 tokens more leave room for a clip of under a second. On the 72 sample test clips whisper-base's
# hypotheses that end by themselves peak at 6.5 tokens/s (22 tokens on 3.4 s); those that loop run to the
# generation budget (444 tokens) unless stopped.
_TOKENS_PER_SECOND = 20.0
_MIN_NEW_TOKENS = 16
_SORT_WINDOW_BATCHES = 8  # batches read ahead and decoded in order of duration (0.96 MB of features per 30 s clip)
_SUPPRESS_PROCESSORS = ("precomputed", "transformers")


def _decode_limits(seconds, reference_tokens, budget: int, tokens_per_second: Optional[float] = _TOKENS_PER_SECOND
                  ) -> torch.Tensor:
    """Transcript tokens each utterance may decode: ``min(budget, max(reference, MIN_NEW_TOKENS +
    ceil(tokens_per_second x seconds)))``, shape (n,), int64.

    ``seconds``: audio duration of each utterance (n,), e.g. from :func:`arabicpeft.audio.audio_frames`;
    ``reference_tokens``: its reference's transcript tokens (n,), so that a hypothesis matching its reference is
    never cut; ``budget``: :func:`_generation_budget`. ``tokens_per_second`` None: the budget for every utterance
    (no per-utterance limit). A hypothesis that ends by itself within its limit is decoded exactly as without it;
    one that reaches it (a looping decode) is cut there, instead of holding its whole batch to the budget."""
    references = torch.as_tensor(reference_tokens, dtype=torch.long)
    if tokens_per_second is None:
        return torch.full_like(references, budget)
    by_audio = _MIN_NEW_TOKENS + torch.ceil(torch.as_tensor(seconds, dtype=torch.float64) * tokens_per_second).long()
    return torch.clamp(torch.maximum(by_audio, references), max=budget)


def _batch_limits(batch: dict, processor, budget: int, tokens_per_second: Optional[float]
                 ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """(reference transcript tokens, audio seconds, :func:`_decode_limits`) of a collated batch, each shape
    (batch,): the durations are read off its log-mel (:func:`arabicpeft.audio.audio_frames`); special tokens are
    not counted."""
    labels, extractor = batch["labels"], processor.feature_extractor
    special = torch.tensor(processor.tokenizer.all_special_ids)
    text_tokens = ((labels >= 0) & ~torch.isin(labels, special)).sum(dim=1)
    seconds = audio_frames(batch["input_features"].numpy()) * extractor.hop_length / extractor.sampling_rate
    return text_tokens, seconds, _decode_limits(seconds, text_tokens, budget, tokens_per_second)


def decoding_record(tokens_per_second: Optional[float] = _TOKENS_PER_SECOND, by_duration: bool = True) -> dict:
    """What :func:`transcribe` bounded and how it batched, for a results file's provenance (the torch threads are
    in its ``hardware``)."""
    rule = (f"min(generation budget, max(reference tokens, {_MIN_NEW_TOKENS} + ceil({tokens_per_second:g} x audio "
            "seconds)))" if tokens_per_second is not None else "the generation budget")
    return {"tokens_per_second": tokens_per_second, "min_new_tokens": _MIN_NEW_TOKENS if tokens_per_second else None,
            "limit_per_utterance": rule, "sorted_by_duration": by_duration}


class _TokenLimits(StoppingCriteria):
    """Stops each sequence of a batch once it holds ``limits[i]`` new tokens (shape (batch,)), as
    ``max_new_tokens`` would for a batch of one; finished sequences are padded by ``generate`` until the whole
    batch is done. New tokens are counted from the first call (one new token)."""

    def __init__(self, limits: torch.Tensor):
        self.limits, self.prompt = limits, None

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if self.prompt is None:
            self.prompt = input_ids.shape[1] - 1
            self.limits = self.limits.to(input_ids.device)
        return (input_ids.shape[1] - self.prompt) >= self.limits


def _first_timestamp_id(tokenizer) -> int:
    """The id of ``<|0.00|>``, the first of Whisper's timestamp tokens (they follow ``<|notimestamps|>``)."""
    return tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1


class SuppressTokens(LogitsProcessor):
    """transformers' ``SuppressTokensLogitsProcessor`` and ``SuppressTokensAtBeginLogitsProcessor`` in one, with
    their vocabulary masks built once (per vocabulary size and device) instead of at every step: transformers 5
    rebuilds both (an arange over the 51,865-token vocabulary and an ``isin``) for every generated token, ~16% of
    a CPU evaluation profile. The same scores: -inf at ``suppress_tokens`` at every step, and at
    ``begin_suppress_tokens`` too at the first generated step (``begin_index``, set by Whisper's ``generate``; else
    the length of the first call's ``input_ids``). ``timestamps_from``: the first timestamp token id
    (:func:`_first_timestamp_id`): every token from it on is suppressed too (see :func:`transcribe`)."""

    def __init__(self, suppress_tokens, begin_suppress_tokens, timestamps_from: Optional[int] = None):
        self.tokens, self.begin_tokens = list(suppress_tokens or ()), list(begin_suppress_tokens or ())
        self.timestamps_from = timestamps_from
        self.begin_index, self.masks = None, None

    def set_begin_index(self, begin_index: int) -> None:
        self.begin_index = begin_index

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
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


def transcribe(model, processor, dataset: AnyDataset, batch_size: int = 16, num_workers: int = 0,
               max_new_tokens: Optional[int] = None, desc: str = "transcribing",
               precision: str = "fp32", reference_tokens: Optional[list] = None,
               adapter_names: Optional[list[str]] = None, tokens_per_second: Optional[float] = _TOKENS_PER_SECOND,
               by_duration: bool = True, suppress: str = "precomputed", at_limit: Optional[list] = None
               ) -> tuple[list[str], list[str]]:
    """Greedy transcripts of every record in ``dataset``; returns (references, hypotheses) in order.

    Each utterance decodes at most :func:`_decode_limits` tokens (``tokens_per_second`` x its audio duration, read
    off its log-mel by :func:`arabicpeft.audio.audio_frames`; None: the generation budget,
    :func:`_generation_budget`), so a looping hypothesis stops at its own limit (:class:`_TokenLimits`).
    ``by_duration``: records are read ``SORT_WINDOW_BATCHES`` batches at a time and decoded longest first in
    batches of similar duration (False: in dataset order). ``suppress``: "precomputed" (:class:`SuppressTokens`,
    which also suppresses timestamp tokens) or "transformers" (its own processors, slower; timestamp tokens
    allowed). The transcripts are decoded without timestamps (``<|notimestamps|>``, as the training labels), so
    a timestamp token is never right here; and transformers' Whisper ``generate`` takes one as the end of a
    segment and decodes the rest of the clip again, shrinking the batch (which breaks peft's per-utterance
    ``adapter_names``) — found with a barely trained adapter that emitted them. ``at_limit``: a list that receives, per
    record, whether its hypothesis reached its limit (a decode that did not end by itself).

    ``adapter_names`` (a peft model holding several named adapters): one adapter name per record, so a batch
    that mixes dialects decodes each utterance with its own adapter in one ``generate`` call (peft's
    ``adapter_names``; "__base__" = no adapter).
    References are decoded from the labels (skip_special_tokens), so features and audio records alike are
    scored against exactly what the model was trained to produce. ``reference_tokens``: a list that receives
    each reference's number of transcript tokens (special tokens not counted), to compare with
    :func:`_generation_budget`.
    """
    if suppress not in _SUPPRESS_PROCESSORS:
        raise ValueError(f"suppress={suppress!r}: choose one of {', '.join(_SUPPRESS_PROCESSORS)}.")
    tokenizer = processor.tokenizer
    collator = SpeechCollator(processor, model.config.decoder_start_token_id)
    window = batch_size * (_SORT_WINDOW_BATCHES if by_duration else 1)
    loader = DataLoader(dataset, batch_size=window, collate_fn=collator, num_workers=num_workers)
    device = next(model.parameters()).device
    dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
    budget = _generation_budget(model, tokenizer, max_new_tokens)
    options = dict(language=LANGUAGE, task=TASK, num_beams=1, do_sample=False, max_new_tokens=max_new_tokens)
    if suppress == "precomputed":
        gen = model.generation_config
        options.update(suppress_tokens=None, begin_suppress_tokens=None, logits_processor=LogitsProcessorList(
            [SuppressTokens(gen.suppress_tokens, gen.begin_suppress_tokens, _first_timestamp_id(tokenizer))]))
    if adapter_names is not None and len(adapter_names) != len(dataset):
        raise ValueError(f"{len(adapter_names)} adapter names for {len(dataset)} records: give one per record.")
    was_training = model.training
    model.eval()
    references, hypotheses = [], []
    total = -(-len(dataset) // batch_size) if hasattr(dataset, "__len__") else None
    try:
        with tqdm(total=total, desc=desc, unit="batch") as bar:
            for group in loader:
                labels = group["labels"]
                text_tokens, seconds, limits = _batch_limits(group, processor, budget, tokens_per_second)
                order = np.argsort(-seconds, kind="stable") if by_duration else np.arange(len(labels))
                texts, reached = [""] * len(labels), [False] * len(labels)
                for start in range(0, len(order), batch_size):
                    rows = torch.as_tensor(order[start:start + batch_size])
                    per_batch = {}
                    if adapter_names is not None:
                        per_batch["adapter_names"] = [adapter_names[len(hypotheses) + int(i)] for i in rows]
                    if tokens_per_second is not None:
                        per_batch["stopping_criteria"] = StoppingCriteriaList([_TokenLimits(limits[rows])])
                    features = group["input_features"][rows].to(device=device, dtype=dtype)
                    with torch.no_grad(), _autocast(model, precision):
                        ids = model.generate(input_features=features, **options, **per_batch).cpu()
                    # new tokens before the first <|endoftext|> (also the padding of finished sequences)
                    decoded = (ids != tokenizer.eos_token_id).cumprod(dim=1).sum(dim=1)
                    for row, hypothesis, n, limit in zip(rows.tolist(), tokenizer.batch_decode(ids, skip_special_tokens=True),
                                                         decoded.tolist(), limits[rows].tolist()):
                        texts[row], reached[row] = hypothesis, n >= limit
                    bar.update()
                hypotheses += texts
                references += tokenizer.batch_decode(labels.masked_fill(labels == -100, tokenizer.pad_token_id),
                                                     skip_special_tokens=True)
                if reference_tokens is not None:
                    reference_tokens += text_tokens.tolist()
                if at_limit is not None:
                    at_limit += reached
    finally:
        model.train(was_training)
    return references, hypotheses


def _transcribe_ct2(whisper, processor, dataset: AnyDataset, batch_size: int = 16, max_length: Optional[int] = None,
                   desc: str = "transcribing (ct2)", reference_tokens: Optional[list] = None,
                   tokens_per_second: Optional[float] = _TOKENS_PER_SECOND, at_limit: Optional[list] = None
                   ) -> tuple[list[str], list[str]]:
    """:func:`transcribe` through CTranslate2: the same records, references and log-mel features (our
    collator), decoded greedily in batches by the ``faster_whisper.WhisperModel``'s CTranslate2 model with the
    prompt ``<|startoftranscript|><|ar|><|transcribe|><|notimestamps|>``, timestamp tokens suppressed.
    ``max_length`` bounds the transcript tokens, as transformers' ``generation_config.max_length`` does (see
    :func:`arabicpeft.export.ct2_max_length`); each utterance is then cut at its :func:`_decode_limits` (greedy
    decoding is causal: the first ``limit`` tokens are those a per-utterance stop would give), so both backends
    score the same bounded transcripts. ``reference_tokens``, ``at_limit``: as in :func:`transcribe`. Returns
    (references, hypotheses) in order."""
    import ctranslate2

    from .export import ct2_max_length

    tokenizer = processor.tokenizer
    prompt = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", f"<|{LANGUAGE}|>", f"<|{TASK}|>",
                                              "<|notimestamps|>"])
    budget = max_length or MAX_TARGET_POSITIONS - len(prompt)
    suppress = [-1, *range(_first_timestamp_id(tokenizer), len(tokenizer))]  # -1: the model's own list
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=SpeechCollator(processor, prompt[0]))
    references, hypotheses = [], []
    for batch in tqdm(loader, desc=desc, unit="batch"):
        labels = batch["labels"]
        text_tokens, _, limits = _batch_limits(batch, processor, budget, tokens_per_second)
        limits = limits.tolist()
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(batch["input_features"].numpy()))
        results = whisper.model.generate(features, [prompt] * len(labels), beam_size=1, suppress_tokens=suppress,
                                         max_length=ct2_max_length(max(limits)))
        ids = [r.sequences_ids[0][:limit] for r, limit in zip(results, limits)]
        hypotheses += tokenizer.batch_decode(ids, skip_special_tokens=True)
        references += tokenizer.batch_decode(labels.masked_fill(labels == -100, tokenizer.pad_token_id),
                                             skip_special_tokens=True)
        if reference_tokens is not None:
            reference_tokens += text_tokens.tolist()
        if at_limit is not None:
            at_limit += [len(i) >= limit for i, limit in zip(ids, limits)]
    return references, hypotheses


def evaluate_sets(model, processor, test_sets: dict[str, AnyDataset], batch_size: int = 16,
                  num_workers: int = 0, label: str = "", precision: str = "fp32",
                  max_length: Optional[int] = None, tokens_per_second: Optional[float] = _TOKENS_PER_SECOND
                  ) -> tuple[dict, pd.DataFrame]:
    """Score ``model`` on each test set: ({test_set: {scheme: summary}}, per-utterance rows).

    ``model``: a transformers/peft Whisper, decoded by :func:`transcribe` (each utterance bounded by
    ``tokens_per_second``, see :func:`_decode_limits`; None: by the generation budget only), or a
    ``faster_whisper.WhisperModel`` (the CTranslate2 backend, see :func:`_transcribe_ct2`; ``max_length`` then
    bounds its transcripts; None: the decoder's limit). Each summary also holds ``generation_budget_tokens``
    (:func:`_generation_budget`), ``references_over_budget``: references longer than that budget, which no
    hypothesis could match in full (a warning is printed when there are any), and ``hypotheses_at_limit``:
    hypotheses that reached their token limit instead of ending by themselves (looping decodes, cut at their
    limit)."""
    ct2 = type(model).__module__.startswith("faster_whisper")
    metrics, frames = {}, []
    if ct2:  # the same cap as transformers: the decoder's 448 positions less the 4-token prompt
        budget = min(max_length or MAX_TARGET_POSITIONS, MAX_TARGET_POSITIONS - len(processor.tokenizer.prefix_tokens))
    else:
        budget = _generation_budget(model, processor.tokenizer)
    for name, ds in test_sets.items():
        lengths: list[int] = []
        reached: list[bool] = []
        desc = f"{label}{name}".strip()
        if ct2:
            refs, hyps = _transcribe_ct2(model, processor, ds, batch_size, budget, desc=desc, reference_tokens=lengths,
                                        tokens_per_second=tokens_per_second, at_limit=reached)
        else:
            refs, hyps = transcribe(model, processor, ds, batch_size, num_workers, desc=desc, precision=precision,
                                    reference_tokens=lengths, tokens_per_second=tokens_per_second, at_limit=reached)
        ids = list(ds["id"]) if isinstance(ds, datasets.Dataset) and "id" in ds.column_names else None
        metrics[name], rows = score_all(refs, hyps, ids)
        over = sum(n > budget for n in lengths)
        if over:
            warnings.warn(f"{name}: {over} of {len(lengths)} references are longer than the generation budget of "
                          f"{budget} tokens (longest {max(lengths)}): their hypotheses are cut short and scored so. "
                          "Raise generation_max_length (None: the model's limit) unless you reproduce the paper's 225.",
                          stacklevel=2)
        for summary in metrics[name].values():
            summary.update(generation_budget_tokens=budget, references_over_budget=over)
            summary["hypotheses_at_limit"] = sum(reached)
        rows.insert(0, "test_set", name)
        frames.append(rows)
    return metrics, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
