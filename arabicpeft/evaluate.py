"""Batched greedy transcription with Arabic + transcribe forced, scored under every normalizer.

What differs between model families (the collator, the prompt, suppressed tokens, the generation budget, how a
clip's duration is read off its model input) is asked of the model's backbone (:mod:`arabicpeft.backbones`);
this module holds the rest: per-utterance token limits, batching by duration, CTranslate2 decoding, scoring.

Public: :func:`decode_limits`, :func:`decoding_record`, :func:`generate_limited`, :func:`transcribe`,
:func:`evaluate_sets`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Optional

import datasets
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from transformers import StoppingCriteria, StoppingCriteriaList
from tqdm import tqdm  # text bars, also in notebooks: a saved notebook keeps where they ended (a widget bar
# is saved as its first frame, "0%", wherever the widget state is not stored, e.g. Kaggle's saved versions)

from . import backbones, sources
from .data import AnyDataset
from .metrics import score_all
from .device import half_dtype
from .offline_model import MAX_TARGET_POSITIONS


def _autocast(model, precision: str):
    # Half-precision and 8/4-bit models generate under autocast in the GPU's native half type, as they train;
    # an fp32 model is decoded in fp32.
    device = next(model.parameters()).device
    if device.type == "cuda" and precision != "fp32":
        return torch.autocast("cuda", dtype=half_dtype())
    return contextlib.nullcontext()


# Per-utterance decode limit (see decode_limits): a transcript may hold at most MIN_NEW_TOKENS + TOKENS_PER_SECOND
# tokens per second of its audio (the audio alone: the test transcript is never read while decoding). The sample
# set's 432 references (espeak-ng speech at 130-160 words per minute) carry 3.2-6.6 Whisper tokens per second
# (mean 4.7; 0.57 tokens per character). Fast conversational speech runs ~1.6x faster (~250 words per minute:
# ~11 tokens/s), and a hypothesis may spend more tokens per character than its reference (other words, Latin or
# mixed script): 20 tokens/s is 3x the sample set's fastest reference, and 16 tokens more leave room for a clip of
# under a second. On the 72 sample test clips whisper-base's hypotheses that end by themselves peak at 6.5
# tokens/s (22 tokens on 3.4 s); those that loop run to the generation budget (444 tokens) unless stopped.
_TOKENS_PER_SECOND = 20.0
_MIN_NEW_TOKENS = 16
_SORT_WINDOW_BATCHES = 8  # batches read ahead and decoded in order of duration (0.96 MB of features per 30 s clip)


def decode_limits(seconds, budget: int, tokens_per_second: Optional[float] = _TOKENS_PER_SECOND) -> torch.Tensor:
    """Transcript tokens each utterance may decode, from its audio and the model alone: ``min(budget,
    MIN_NEW_TOKENS + ceil(tokens_per_second x seconds))``, shape (n,), int64.

    ``seconds``: audio duration of each utterance (n,), e.g. from its backbone's ``seconds``;
    ``budget``: its backbone's ``generation_budget``. ``tokens_per_second`` None: the budget for every utterance (no
    per-utterance limit). The test transcript is never read: a hypothesis that ends by itself within its limit is
    decoded exactly as without it; one that reaches it (a looping decode) is cut there, instead of holding its
    whole batch to the budget. :func:`evaluate_sets` counts the references longer than their limit
    (``references_over_limit``), which no hypothesis could match in full."""
    seconds = torch.as_tensor(seconds, dtype=torch.float64).reshape(-1)
    if tokens_per_second is None:
        return torch.full(seconds.shape, int(budget), dtype=torch.long)
    by_audio = _MIN_NEW_TOKENS + torch.ceil(seconds * tokens_per_second).long()
    return torch.clamp(by_audio, max=int(budget))


def _batch_limits(batch: dict, backbone, processor, budget: int, tokens_per_second: Optional[float]
                 ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """(reference transcript tokens, audio seconds, :func:`decode_limits`) of a collated batch, each shape
    (batch,): the durations are read off its model input (the backbone's ``seconds``: evaluation and
    transcription alike), the limits from them alone; the reference tokens (special tokens not counted) are only
    counted, for the report."""
    labels = batch["labels"]
    special = torch.tensor(processor.tokenizer.all_special_ids)
    text_tokens = ((labels >= 0) & ~torch.isin(labels, special)).sum(dim=1)
    seconds = backbone.seconds(processor, batch)
    return text_tokens, seconds, decode_limits(seconds, budget, tokens_per_second)


def decoding_record(tokens_per_second: Optional[float] = _TOKENS_PER_SECOND, by_duration: bool = True) -> dict:
    """What :func:`transcribe` bounded and how it batched, for a results file's provenance (the torch threads are
    in its ``hardware``). The bound reads the audio's duration and the model's generation budget only, never the
    test transcript."""
    rule = (f"min(generation budget, {_MIN_NEW_TOKENS} + ceil({tokens_per_second:g} x audio seconds))"
            if tokens_per_second is not None else "the generation budget")
    return {"tokens_per_second": tokens_per_second, "min_new_tokens": _MIN_NEW_TOKENS if tokens_per_second else None,
            "limit_per_utterance": rule, "limit_reads": "audio duration and generation budget (not the transcript)",
            "sorted_by_duration": by_duration}


class _TokenLimits(StoppingCriteria):
    """Stops each sequence of a batch once it holds ``limits[i]`` new tokens (shape (batch,)), as
    ``max_new_tokens`` would for a batch of one; finished sequences are padded by ``generate`` until the whole
    batch is done. New tokens are counted from the first call (one new token). Under beam search ``generate``
    passes every beam of each sequence, one after another: each beam gets its sequence's limit."""

    def __init__(self, limits: torch.Tensor):
        self.limits, self.prompt = limits, None

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if self.prompt is None:
            self.prompt = input_ids.shape[1] - 1
            self.limits = self.limits.to(input_ids.device)
        limits = self.limits.repeat_interleave(input_ids.shape[0] // len(self.limits))
        return (input_ids.shape[1] - self.prompt) >= limits


def generate_limited(model, processor, inputs: dict, limits: torch.Tensor, options: dict, precision: str = "fp32",
                     adapter_names: Optional[list[str]] = None) -> tuple[list[str], list[bool]]:
    """One batched ``generate``: (transcripts, whether each reached its limit), in the order of the rows.

    ``inputs``: model inputs of the batch (its backbone's collator or ``audio_inputs``, without labels; moved to
    the model's device here, floating point ones to its dtype); ``limits``: transcript tokens each may decode
    (:func:`decode_limits`), shape (batch,): the largest bounds the call, each sequence stops at its own
    (:class:`_TokenLimits`); ``options``: the backbone's ``decoding_options``; ``adapter_names``: one peft adapter
    name per row ("__base__" = no adapter). A transcript reached its limit when it holds that many tokens before
    its end token (a decode that did not end by itself)."""
    backbone = backbones.of(model)
    device = next(model.parameters()).device
    dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
    inputs = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in inputs.items()}
    limits = torch.as_tensor(limits, dtype=torch.long)
    extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
    with torch.no_grad(), _autocast(model, precision):
        ids = backbone.generate(model, inputs, int(limits.max()), options, **extra,
                                stopping_criteria=StoppingCriteriaList([_TokenLimits(limits)])).cpu()
    # new tokens before the first end token (finished sequences are padded with it)
    ends = torch.tensor(model.generation_config.eos_token_id).reshape(-1)
    decoded = (~torch.isin(ids, ends)).cumprod(dim=1).sum(dim=1)
    return backbone.decode(processor, ids), (decoded >= limits).tolist()


def transcribe(model, processor, dataset: AnyDataset, batch_size: int = 16, num_workers: int = 0,
               max_new_tokens: Optional[int] = None, desc: str = "transcribing",
               precision: str = "fp32", reference_tokens: Optional[list] = None,
               adapter_names: Optional[list[str]] = None, tokens_per_second: Optional[float] = _TOKENS_PER_SECOND,
               by_duration: bool = True, suppress: str = "precomputed", at_limit: Optional[list] = None,
               limits: Optional[list] = None) -> tuple[list[str], list[str]]:
    """Greedy transcripts of every record in ``dataset``; returns (references, hypotheses) in order.

    Each utterance decodes at most :func:`decode_limits` tokens (``tokens_per_second`` x its audio duration, read
    off its model input by the backbone's ``seconds``, within the backbone's ``generation_budget``; None: the
    budget), so a looping hypothesis stops at its own limit; the test transcript is not read while decoding.
    ``by_duration``: records are read ``SORT_WINDOW_BATCHES`` batches at a time and decoded longest first in
    batches of similar duration (False: in dataset order). ``suppress``: see the backbone's ``decoding_options``
    (every ``generate`` option is its). ``at_limit``: a list that receives, per record, whether its hypothesis
    reached its limit (a decode that did not end by itself); ``limits``: a list that receives each record's limit.

    ``adapter_names`` (a peft model holding several named adapters): one adapter name per record, so a batch
    that mixes dialects decodes each utterance with its own adapter in one ``generate`` call (peft's
    ``adapter_names``; "__base__" = no adapter).
    References are decoded from the labels (skip_special_tokens), so features and audio records alike are
    scored against exactly what the model was trained to produce. ``reference_tokens``: a list that receives
    each reference's number of transcript tokens (special tokens not counted), to compare with the limits.
    """
    tokenizer = processor.tokenizer
    backbone = backbones.of(model)
    options = backbone.decoding_options(model, processor, suppress)
    window = batch_size * (_SORT_WINDOW_BATCHES if by_duration else 1)
    loader = DataLoader(dataset, batch_size=window, collate_fn=backbone.collator(processor, model),
                        num_workers=num_workers)
    budget = backbone.generation_budget(model, processor, max_new_tokens)
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
                text_tokens, seconds, group_limits = _batch_limits(group, backbone, processor, budget,
                                                                   tokens_per_second)
                order = np.argsort(-seconds, kind="stable") if by_duration else np.arange(len(labels))
                texts, reached = [""] * len(labels), [False] * len(labels)
                for start in range(0, len(order), batch_size):
                    rows = torch.as_tensor(order[start:start + batch_size])
                    names = (None if adapter_names is None
                             else [adapter_names[len(hypotheses) + int(i)] for i in rows])
                    inputs = {k: v[rows] for k, v in group.items() if k != "labels"}
                    batch_texts, batch_reached = generate_limited(model, processor, inputs, group_limits[rows],
                                                                  options, precision, names)
                    for row, text, hit in zip(rows.tolist(), batch_texts, batch_reached):
                        texts[row], reached[row] = text, hit
                    bar.update()
                hypotheses += texts
                references += tokenizer.batch_decode(labels.masked_fill(labels == -100, tokenizer.pad_token_id),
                                                     skip_special_tokens=True)
                if reference_tokens is not None:
                    reference_tokens += text_tokens.tolist()
                if at_limit is not None:
                    at_limit += reached
                if limits is not None:
                    limits += group_limits.tolist()
    finally:
        model.train(was_training)
    return references, hypotheses


def _transcribe_ct2(whisper, processor, dataset: AnyDataset, batch_size: int = 16, max_length: Optional[int] = None,
                   desc: str = "transcribing (ct2)", reference_tokens: Optional[list] = None,
                   tokens_per_second: Optional[float] = _TOKENS_PER_SECOND, at_limit: Optional[list] = None,
                   limits: Optional[list] = None) -> tuple[list[str], list[str]]:
    """:func:`transcribe` through CTranslate2: the same records, references and log-mel features (the collator
    of the family CTranslate2 runs), decoded greedily in batches by the ``faster_whisper.WhisperModel``'s
    CTranslate2 model with the prompt ``<|startoftranscript|><|ar|><|transcribe|><|notimestamps|>``, timestamp tokens suppressed.
    ``max_length`` bounds the transcript tokens, as transformers' ``generation_config.max_length`` does (see
    :func:`arabicpeft.export.ct2_max_length`); each utterance is then cut at its :func:`decode_limits` (greedy
    decoding is causal: the first ``limit`` tokens are those a per-utterance stop would give), so both backends
    score the same bounded transcripts. ``reference_tokens``, ``at_limit``, ``limits``: as in :func:`transcribe`.
    Returns (references, hypotheses) in order."""
    import ctranslate2

    from .export import ct2_max_length

    tokenizer, backbone = processor.tokenizer, backbones.exporting("ct2")
    prompt = backbone.prompt_ids(processor)
    budget = max_length or MAX_TARGET_POSITIONS - len(prompt)
    suppress = [-1, *range(backbone.timestamps_from(processor), len(tokenizer))]  # -1: the model's own list
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=backbone.collator(processor))
    references, hypotheses = [], []
    for batch in tqdm(loader, desc=desc, unit="batch"):
        labels = batch["labels"]
        text_tokens, _, batch_limits = _batch_limits(batch, backbone, processor, budget, tokens_per_second)
        batch_limits = batch_limits.tolist()
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(batch["input_features"].numpy()))
        results = whisper.model.generate(features, [prompt] * len(labels), beam_size=1, suppress_tokens=suppress,
                                         max_length=ct2_max_length(max(batch_limits)))
        ids = [r.sequences_ids[0][:limit] for r, limit in zip(results, batch_limits)]
        hypotheses += tokenizer.batch_decode(ids, skip_special_tokens=True)
        references += tokenizer.batch_decode(labels.masked_fill(labels == -100, tokenizer.pad_token_id),
                                             skip_special_tokens=True)
        if reference_tokens is not None:
            reference_tokens += text_tokens.tolist()
        if at_limit is not None:
            at_limit += [len(i) >= limit for i, limit in zip(ids, batch_limits)]
        if limits is not None:
            limits += batch_limits
    return references, hypotheses


def evaluate_sets(model, processor, test_sets: dict[str, AnyDataset], batch_size: int = 16,
                  num_workers: int = 0, label: str = "", precision: str = "fp32",
                  max_length: Optional[int] = None, tokens_per_second: Optional[float] = _TOKENS_PER_SECOND
                  ) -> tuple[dict, pd.DataFrame]:
    """Score ``model`` on each test set: ({test_set: {scheme: summary}}, per-utterance rows).

    ``model``: a transformers/peft model, decoded by :func:`transcribe` (each utterance bounded by
    ``tokens_per_second``, see :func:`decode_limits`; None: by the generation budget only), or a
    ``faster_whisper.WhisperModel`` (the CTranslate2 backend, see :func:`_transcribe_ct2`; ``max_length`` then
    bounds its transcripts; None: the decoder's limit). Each summary also holds ``generation_budget_tokens``
    (the backbone's ``generation_budget``), ``references_over_budget``: references longer than that budget, which no
    hypothesis could match in full (a warning is printed when there are any), ``references_over_limit``:
    references longer than their own per-utterance limit (the budget's among them; a warning too when the
    per-utterance limit cut any), and ``hypotheses_at_limit``: hypotheses that reached their token limit instead
    of ending by themselves (looping decodes, cut at their limit). The references are only counted, after
    decoding: no limit reads them."""
    ct2 = type(model).__module__.startswith("faster_whisper")
    metrics, frames = {}, []
    if ct2:  # the same cap as transformers: the decoder's 448 positions less the 4-token prompt
        budget = min(max_length or MAX_TARGET_POSITIONS, MAX_TARGET_POSITIONS - len(processor.tokenizer.prefix_tokens))
    else:
        budget = backbones.of(model).generation_budget(model, processor)
    for name, ds in test_sets.items():
        lengths: list[int] = []
        reached: list[bool] = []
        limits: list[int] = []
        desc = f"{label}{name}".strip()
        if ct2:
            refs, hyps = _transcribe_ct2(model, processor, ds, batch_size, budget, desc=desc, reference_tokens=lengths,
                                        tokens_per_second=tokens_per_second, at_limit=reached, limits=limits)
        else:
            refs, hyps = transcribe(model, processor, ds, batch_size, num_workers, desc=desc, precision=precision,
                                    reference_tokens=lengths, tokens_per_second=tokens_per_second, at_limit=reached,
                                    limits=limits)
        ids = list(ds["id"]) if isinstance(ds, datasets.Dataset) and "id" in ds.column_names else None
        metrics[name], rows = score_all(refs, hyps, ids)
        over = sum(n > budget for n in lengths)
        over_limit = sum(n > limit for n, limit in zip(lengths, limits))
        if over:
            warnings.warn(f"{name}: {over} of {len(lengths)} references are longer than the generation budget of "
                          f"{budget} tokens (longest {max(lengths)}): their hypotheses are cut short and scored so. "
                          "Raise generation_max_length (evaluate --generation-max-length; None: the model's limit) "
                          "unless you reproduce the paper's 225.", stacklevel=2)
        if over_limit > over:
            warnings.warn(f"{name}: {over_limit - over} of {len(lengths)} references are longer than their "
                          f"per-utterance limit ({_MIN_NEW_TOKENS} + {tokens_per_second:g} tokens per second of "
                          "audio): their hypotheses are cut short and scored so. Decode with tokens_per_second=None "
                          "to bound by the generation budget alone.", stacklevel=2)
        for summary in metrics[name].values():
            summary.update(generation_budget_tokens=budget, references_over_budget=over,
                           references_over_limit=over_limit, hypotheses_at_limit=sum(reached))
        rows.insert(0, "test_set", name)
        frames.append(rows)
    return metrics, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- the evaluate command's pipeline (python -m arabicpeft evaluate; a notebook calls run() alike) -------------


def load_at_window(reference, precision: Optional[str] = None, window="trained"):
    """The transformers model of ``reference`` (:func:`arabicpeft.model.load_model`; ``precision`` None: as it
    was trained) at ``window``: ``"trained"`` (the window it was trained with), ``"full"`` (its base's full
    window) or a whole number of seconds. Evaluation and transcription load a model alike. Raises
    :class:`~arabicpeft.errors.UserError` for a window a model cannot take (a cut-window full fine-tune cannot be
    widened; no window longer than the model's)."""
    from .errors import UserError
    from .model import load_model

    loaded = load_model(reference, precision=precision, full_window=window != "trained")
    if window == "full" and loaded.kind == "model" and loaded.config and loaded.config.encoder_seconds:
        raise UserError(f"window full: {reference} was fully fine-tuned with a {loaded.window_seconds} s encoder "
                        "window, which cannot be widened", "keep its trained window (window trained)")
    if isinstance(window, int):
        try:
            loaded.cut_window(window)
        except ValueError as e:
            raise UserError(f"window {window}: {e}", "give a window no longer than the model's") from e
    return loaded


def run(model_path, output_dir, *, dialect: Optional[str] = None, test_sets: Optional[list] = None,
        source: Optional[str] = None, data_path=None, max_test_samples: Optional[int] = None,
        streaming: bool = False, feature_cache: Optional[str] = None, generation_max_length: Optional[int] = None,
        window="trained", batch_size: int = 16, backend: str = "hf", precision: Optional[str] = None,
        compute_type: str = "default", cpu_threads: int = 0, transforms=None, transform_seed: int = 0,
        data_options: Optional[dict] = None, log=print):
    """Score the model ``model_path`` (any reference :func:`arabicpeft.model.load_model` takes; with ``backend``
    "ct2" also a CTranslate2 export) and write its results file and per-utterance rows into ``output_dir``;
    returns the results file's path (what ``python -m arabicpeft evaluate`` runs).

    The data: ``data_path`` given as one manifest or one ``save_to_disk`` folder is read as it is
    (:func:`arabicpeft.data.load_test_path`; ``test_sets`` keeps those names); otherwise the test sets of
    ``test_sets`` or of ``dialect`` (default: the training dialect) from ``source`` (default: a local folder when
    ``data_path`` is given, else the source the model was trained on, else the hub), at most ``max_test_samples``
    each, read through ``feature_cache`` when given (written first where missing), ``data_options`` as
    :func:`arabicpeft.sources.dataset_options` takes them (a hub dataset and its columns). Decoded at ``window`` (see
    :func:`load_at_window`; CTranslate2: "trained" or "full") with ``batch_size`` utterances per batch, transcripts
    bounded by ``generation_max_length`` tokens (default: as trained); ``precision`` (hf) or ``compute_type`` and
    ``cpu_threads`` (ct2) as :func:`arabicpeft.export.load_ct2` takes them. ``transforms``: robustness transforms
    (specs, :mod:`arabicpeft.transforms`; "clean" keeps the set as it is), each set scored under each as
    ``"{set}+{spec}"``, seeded by ``transform_seed``. ``log`` receives what is scored.

    The record (:func:`arabicpeft.results.record`, kind "evaluation") keeps the training config (``config``,
    untouched) apart from the evaluation's own settings (``evaluation``: window, generation bound, backend, ...),
    describes the model (``evaluated_model``), what it was trained on and how each set relates to that
    (:func:`arabicpeft.evaluation_sets.trained_on`), and gives each test set and the pooled corpus WER/CER. Raises
    :class:`~arabicpeft.errors.UserError` when a base model is given neither ``dialect`` nor ``test_sets``, or
    for a transform of log-mel features (before the model loads)."""
    from . import evaluation_sets as sets
    from . import transforms as transforms_lib
    from .data import settle_counts
    from .metrics import pooled_metrics
    from .results import EVALUATION, record, write_results

    parsed = sets.check_transforms(transforms, source, _trained_config(model_path), feature_cache)
    scorer, processor, trained, evaluated = _scorer(model_path, backend, window, precision, compute_type,
                                                    cpu_threads, generation_max_length)
    max_length = generation_max_length or (trained.generation_max_length if trained else None)
    max_seconds = processor.feature_extractor.chunk_length  # the encoder window, in seconds
    # label positions: the model's; a CTranslate2 model's are every Whisper size's
    max_positions = backbones.of(scorer).label_positions(scorer) if backend == "hf" else MAX_TARGET_POSITIONS
    tests, report, synthetic, source = sets.evaluation_sets(
        trained, processor, max_seconds, max_positions, dialect=dialect, test_sets=test_sets, source=source,
        data_path=data_path, max_test_samples=max_test_samples, streaming=streaming, feature_cache=feature_cache,
        data_options=data_options, log=log)
    tests, report = sets.transformed(tests, report, parsed, transform_seed, max_seconds)
    log(f"Scoring {model_path} ({backend}) on {', '.join(report)} ({source} data), {max_seconds:g} s encoder window.")
    if synthetic:
        log(f"note: {sets.synthetic_note(source, data_path)}")
    if backend == "ct2":
        metrics, rows = evaluate_sets(scorer, processor, tests, batch_size=batch_size, max_length=max_length)
        evaluated.update(requested_compute_type=compute_type, max_length=max_length)
    else:
        metrics, rows = evaluate_sets(scorer, processor, tests, batch_size=batch_size, precision=evaluated["precision"])
        evaluated.update(max_length=max_length)
    result = record(
        output_dir, kind=EVALUATION, config=trained.to_dict() if trained else None,
        data={"source": source, "synthetic": synthetic, "test": settle_counts(report)},
        # a model trained on the synthetic set gives synthetic numbers on any data
        synthetic=synthetic or bool(trained and sources.of(trained).synthetic),
        metrics=metrics, metrics_pooled=pooled_metrics(sets.pooled_rows(rows, parsed)), evaluated_model=evaluated,
        evaluation={"test_sets": list(report), "source": source,
                    "data_path": None if data_path is None else str(data_path), "max_test_samples": max_test_samples,
                    "streaming": bool(streaming), "batch_size": batch_size, "backend": backend,
                    "compute_type": evaluated.get("compute_type", evaluated.get("precision")), "window": window,
                    "window_seconds": max_seconds, "generation_max_length": max_length,
                    "transforms": [t.record() if t else {"spec": transforms_lib.CLEAN} for t in parsed],
                    "transform_seed": transform_seed,
                    **sets.trained_on(trained, report, source, data_path)},
        provenance={"decoding": decoding_record(), "model_family": (
            backbones.of(scorer) if backend == "hf" else backbones.exporting(backend)).family})
    return write_results(output_dir, result, rows)


def _trained_config(model_path):
    """The training config saved with the model ``model_path`` (or its run's ``model`` folder); None if none."""
    from pathlib import Path

    from .config import ExperimentConfig

    return ExperimentConfig.saved_with(model_path) or ExperimentConfig.saved_with(Path(str(model_path)) / "model")


def _scorer(model_path, backend: str, window, precision, compute_type: str, cpu_threads: int,
            generation_max_length: Optional[int]) -> tuple:
    """(model, processor, training config or None, description of the model) as :func:`run` decodes them."""
    trained = _trained_config(model_path)
    if backend == "ct2":
        from .export import load_ct2

        seconds = {"trained": trained.encoder_seconds if trained else None, "full": None}.get(window, window)
        scorer, processor, described = load_ct2(model_path, compute_type=compute_type, cpu_threads=cpu_threads,
                                                window_seconds=seconds)
        return scorer, processor, trained, {"reference": str(model_path), "backend": "ct2", **described}
    loaded = load_at_window(model_path, precision, window)
    if generation_max_length is not None:  # else as loaded: the trained value
        loaded.model.generation_config.max_length = generation_max_length
    evaluated = {"backend": "hf", **loaded.describe()}
    evaluated.pop("trained_config")
    return loaded.model, loaded.processor, loaded.config, evaluated
