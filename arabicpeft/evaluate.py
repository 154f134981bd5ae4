"""Batched greedy transcription with Arabic + transcribe forced, scored under every normalizer."""

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
from tqdm import tqdm  # text bars, also in notebooks: a saved notebook keeps where they ended (a widget bar
# is saved as its first frame, "0%", wherever the widget state is not stored, e.g. Kaggle's saved versions)

from .data import MAX_LABEL_TOKENS, AnyDataset, SpeechCollator
from .metrics import summarize, utterance_errors
from .model import LANGUAGE, TASK, half_dtype
from .text import SCHEMES


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


def generation_budget(model, tokenizer, max_new_tokens: Optional[int] = None) -> int:
    """Transcript tokens one greedy decode can produce: ``max_new_tokens``, else the generation config's
    ``max_length`` (Whisper's generate counts it after the 4-token prompt), both capped at the decoder's
    ``max_target_positions`` less the prompt (448 - 4 = 444 for every Whisper size)."""
    cap = model.config.max_target_positions - len(tokenizer.prefix_tokens)
    asked = max_new_tokens if max_new_tokens is not None else model.generation_config.max_length
    return min(int(asked), cap) if asked else cap


def transcribe(model, processor, dataset: AnyDataset, batch_size: int = 16, num_workers: int = 0,
               max_new_tokens: Optional[int] = None, desc: str = "transcribing",
               precision: str = "fp32", reference_tokens: Optional[list] = None,
               adapter_names: Optional[list[str]] = None) -> tuple[list[str], list[str]]:
    """Greedy transcripts of every record in ``dataset``; returns (references, hypotheses) in order.

    ``adapter_names`` (a peft model holding several named adapters): one adapter name per record, so a batch
    that mixes dialects decodes each utterance with its own adapter in one ``generate`` call (peft's
    ``adapter_names``; "__base__" = no adapter).
    References are decoded from the labels (skip_special_tokens), so features and audio records alike are
    scored against exactly what the model was trained to produce. ``reference_tokens``: a list that receives
    each reference's number of transcript tokens (special tokens not counted), to compare with
    :func:`generation_budget`.
    """
    tokenizer = processor.tokenizer
    collator = SpeechCollator(processor, model.config.decoder_start_token_id)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator, num_workers=num_workers)
    device = next(model.parameters()).device
    dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
    was_training = model.training
    model.eval()
    references, hypotheses = [], []
    if adapter_names is not None and len(adapter_names) != len(dataset):
        raise ValueError(f"{len(adapter_names)} adapter names for {len(dataset)} records: give one per record.")
    try:
        for batch in tqdm(loader, desc=desc, unit="batch"):
            features = batch["input_features"].to(device=device, dtype=dtype)
            per_utterance = {}
            if adapter_names is not None:
                per_utterance["adapter_names"] = list(adapter_names[len(hypotheses):len(hypotheses) + len(features)])
            with torch.no_grad(), _autocast(model, precision):
                ids = model.generate(input_features=features, language=LANGUAGE, task=TASK, num_beams=1,
                                     do_sample=False, max_new_tokens=max_new_tokens, **per_utterance)
            hypotheses += tokenizer.batch_decode(ids, skip_special_tokens=True)
            labels = batch["labels"].masked_fill(batch["labels"] == -100, tokenizer.pad_token_id)
            references += tokenizer.batch_decode(labels, skip_special_tokens=True)
            if reference_tokens is not None:
                text = (batch["labels"] >= 0) & ~torch.isin(batch["labels"], torch.tensor(tokenizer.all_special_ids))
                reference_tokens += text.sum(dim=1).tolist()
    finally:
        model.train(was_training)
    return references, hypotheses


def transcribe_ct2(whisper, processor, dataset: AnyDataset, batch_size: int = 16, max_length: Optional[int] = None,
                   desc: str = "transcribing (ct2)", reference_tokens: Optional[list] = None
                   ) -> tuple[list[str], list[str]]:
    """:func:`transcribe` through CTranslate2: the same records, references and log-mel features (our
    collator), decoded greedily in batches by the ``faster_whisper.WhisperModel``'s CTranslate2 model with the
    prompt ``<|startoftranscript|><|ar|><|transcribe|><|notimestamps|>``. ``max_length`` bounds the transcript
    tokens, as transformers' ``generation_config.max_length`` does (see :func:`arabicpeft.export.ct2_max_length`).
    ``reference_tokens``: as in :func:`transcribe`. Returns (references, hypotheses) in order."""
    import ctranslate2

    from .export import ct2_max_length

    tokenizer = processor.tokenizer
    prompt = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", f"<|{LANGUAGE}|>", f"<|{TASK}|>",
                                              "<|notimestamps|>"])
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=SpeechCollator(processor, prompt[0]))
    references, hypotheses = [], []
    for batch in tqdm(loader, desc=desc, unit="batch"):
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(batch["input_features"].numpy()))
        results = whisper.model.generate(features, [prompt] * len(batch["labels"]), beam_size=1,
                                         max_length=ct2_max_length(max_length or MAX_LABEL_TOKENS - len(prompt)))
        hypotheses += tokenizer.batch_decode([r.sequences_ids[0] for r in results], skip_special_tokens=True)
        labels = batch["labels"].masked_fill(batch["labels"] == -100, tokenizer.pad_token_id)
        references += tokenizer.batch_decode(labels, skip_special_tokens=True)
        if reference_tokens is not None:
            text = (batch["labels"] >= 0) & ~torch.isin(batch["labels"], torch.tensor(tokenizer.all_special_ids))
            reference_tokens += text.sum(dim=1).tolist()
    return references, hypotheses


def score_all(references: list[str], hypotheses: list[str], ids: Optional[list] = None) -> tuple[dict, pd.DataFrame]:
    """Scores under every scheme: ({scheme: summary}, per-utterance rows for all schemes)."""
    metrics, frames = {}, []
    for scheme in SCHEMES:
        rows = utterance_errors(references, hypotheses, scheme)
        metrics[scheme] = summarize(rows)
        rows.insert(0, "scheme", scheme)
        rows.insert(0, "utt_id", ids if ids is not None else range(len(rows)))
        rows.insert(0, "utt_index", range(len(rows)))
        frames.append(rows)
    return metrics, pd.concat(frames, ignore_index=True)


def evaluate_sets(model, processor, test_sets: dict[str, AnyDataset], batch_size: int = 16,
                  num_workers: int = 0, label: str = "", precision: str = "fp32",
                  max_length: Optional[int] = None) -> tuple[dict, pd.DataFrame]:
    """Score ``model`` on each test set: ({test_set: {scheme: summary}}, per-utterance rows).

    ``model``: a transformers/peft Whisper, or a ``faster_whisper.WhisperModel`` (the CTranslate2 backend, see
    :func:`transcribe_ct2`; ``max_length`` then bounds its transcripts; None: the decoder's limit). Each summary also holds
    ``generation_budget_tokens`` (:func:`generation_budget`) and ``references_over_budget``: references longer
    than that budget, which no hypothesis could match in full (a warning is printed when there are any)."""
    ct2 = type(model).__module__.startswith("faster_whisper")
    metrics, frames = {}, []
    if ct2:  # the same cap as transformers: the decoder's 448 positions less the 4-token prompt
        budget = min(max_length or MAX_LABEL_TOKENS, MAX_LABEL_TOKENS - len(processor.tokenizer.prefix_tokens))
    else:
        budget = generation_budget(model, processor.tokenizer)
    for name, ds in test_sets.items():
        lengths: list[int] = []
        desc = f"{label}{name}".strip()
        if ct2:
            refs, hyps = transcribe_ct2(model, processor, ds, batch_size, budget, desc=desc, reference_tokens=lengths)
        else:
            refs, hyps = transcribe(model, processor, ds, batch_size, num_workers, desc=desc, precision=precision,
                                    reference_tokens=lengths)
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
        rows.insert(0, "test_set", name)
        frames.append(rows)
    return metrics, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def pooled_metrics(rows: pd.DataFrame) -> dict:
    """Corpus WER/CER over every test set at once ({scheme: summary}) from :func:`evaluate_sets`' rows:
    Σ edits / Σ reference words over all utterances, never a mean of the per-set rates."""
    if rows.empty:
        return {}
    return {scheme: summarize(part) for scheme, part in rows.groupby("scheme", sort=False)}


def evaluate_ct2(reference, test_sets: dict[str, AnyDataset], compute_type: str = "int8", batch_size: int = 16,
                 max_length: Optional[int] = None, cpu_threads: int = 0, label: str = "") -> tuple[dict, pd.DataFrame, dict]:
    """Score any model reference through CTranslate2 (the study launcher's and ``evaluate --backend ct2``'s
    final test scoring): the same test sets, references, normalizers and per-utterance rows as
    :func:`evaluate_sets` with transformers. A reference that is not a CTranslate2 directory is converted on
    the fly (adapters merged at their base's full window). Returns (metrics, rows, backend record with the
    compute type CTranslate2 actually runs)."""
    from .export import describe_ct2, load_ct2

    whisper, processor = load_ct2(reference, compute_type=compute_type, cpu_threads=cpu_threads)
    metrics, rows = evaluate_sets(whisper, processor, test_sets, batch_size=batch_size, label=label,
                                  max_length=max_length)
    return metrics, rows, {**describe_ct2(whisper), "requested_compute_type": compute_type, "max_length": max_length}
