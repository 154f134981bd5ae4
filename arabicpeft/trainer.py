"""The Seq2SeqTrainer of a run: its arguments (the global batch split over processes and accumulation passes,
mixed precision), the backbone's training collator, the token-mean loss, the validation WER, a readable
progress log, the time budget, and loading a checkpoint's weights as the Trainer ends a run.

Public: :data:`DDP_TIMEOUT_S`, :func:`per_device_batch`, :class:`TimeBudget`, :func:`training_arguments`,
:func:`make_trainer`, :func:`load_weights`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import broadcast_object_list
from transformers import (EarlyStoppingCallback, ProgressCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments,
                          TrainerCallback)
from transformers.loss.loss_utils import ForMaskedLMLoss

from . import backbones, methods, sources
from .config import QUANTIZED, ExperimentConfig
from .data import DataSplits
from .device import half_dtype
from .errors import ConfigError
from .metrics import score
from .run_dir import CHECKPOINT_DIR

# How long the processes of a multi-process (DDP) run wait for each other at a barrier: rank 0 alone scores the
# test sets before and after training (hours for whole otozz test sets on a T4) while the others wait.
DDP_TIMEOUT_S = 12 * 3600


def per_device_batch(cfg: ExperimentConfig, world_size: int) -> int:
    """Utterances per forward pass of one process: ``batch_size`` is the global batch of one optimizer step, split
    over ``world_size`` processes and ``gradient_accumulation_steps`` passes, so a recipe trains the same on one
    GPU or two. Raises ConfigError when it does not divide."""
    passes = world_size * cfg.gradient_accumulation_steps
    if cfg.batch_size < passes or cfg.batch_size % passes:
        raise ConfigError(
            f"batch_size {cfg.batch_size} (utterances per optimizer step) cannot be split evenly over {world_size} "
            f"process(es) x {cfg.gradient_accumulation_steps} gradient accumulation step(s)",
            f"choose a batch_size that is a multiple of {passes}, or change the number of processes or "
            "gradient_accumulation_steps.")
    return cfg.batch_size // passes


class _TiedOutputProjection(logging.Filter):
    """Drops the Trainer's "missing keys in the checkpoint model loaded: ['proj_out.weight']" when it reloads the
    best full fine-tune: Whisper's output projection is tied to the decoder's token embeddings, so it is not saved
    and is restored with them (silenced deliberately; any other missing key is still reported)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).endswith("missing keys in the checkpoint model loaded: ['proj_out.weight'].")


logging.getLogger("transformers.trainer").addFilter(_TiedOutputProjection())


class _ReadableProgress(ProgressCallback):
    """The Trainer's progress bar (terminal), with each log written as one sentence instead of a dict."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_world_process_zero and self.training_bar is not None and logs):
            return
        if "eval_wer" in logs:
            line = (f"step {state.global_step}: validation WER {logs['eval_wer']:.2f}, CER {logs['eval_cer']:.2f}, "
                    f"loss {logs['eval_loss']:.3f}")
        elif "loss" in logs:
            line = (f"step {state.global_step}/{state.max_steps}: training loss {logs['loss']:.3f}, "
                    f"learning rate {logs.get('learning_rate', float('nan')):.1e}")
        elif "train_runtime" in logs:
            line = (f"trained to step {state.global_step} in {logs['train_runtime']:.0f} s "
                    f"({logs['train_samples_per_second']:.2f} utterances/s)")
        else:
            return
        self.training_bar.write(line)


class TimeBudget(TrainerCallback):
    """Stop training cleanly, with a checkpoint, once it has run ``seconds`` (e.g. Kaggle's 12 h limit). Under
    DDP rank 0's clock decides for every process: one that stopped alone would leave the others waiting."""

    def __init__(self, seconds: float):
        self.seconds, self.start, self.stopped_at_step = seconds, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds == float("inf"):
            return
        stop = time.monotonic() - self.start > self.seconds
        if args.world_size > 1:
            stop = broadcast_object_list([stop], from_process=0)[0]
        if stop:
            control.should_training_stop = control.should_save = True
            self.stopped_at_step = state.global_step


def _wer_metric(tokenizer):
    """compute_metrics for Seq2SeqTrainer: corpus WER/CER (raw) on the validation set."""

    def compute(pred):
        preds = np.where(pred.predictions == -100, tokenizer.pad_token_id, pred.predictions)
        labels = np.where(pred.label_ids == -100, tokenizer.pad_token_id, pred.label_ids)
        result = score(tokenizer.batch_decode(labels, skip_special_tokens=True),
                       tokenizer.batch_decode(preds, skip_special_tokens=True), scheme="raw")
        return {"wer": result["wer"], "cer": result["cer"]}

    return compute


def _token_mean_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """The Trainer's ``compute_loss_func``: cross-entropy summed over this batch's label tokens (labels (batch,
    tokens), -100 ignored; logits (batch, tokens, vocabulary)) and divided by ``num_items_in_batch``, the label
    tokens of the whole optimizer step — every accumulation pass and, with DDP, every process (the Trainer counts
    them; ``average_tokens_across_devices``). So a step's loss and gradient are the token mean over the global
    batch, however it is split. Needed because Whisper's own loss is its batch's mean and ignores
    ``num_items_in_batch``, while the Trainer, seeing ``**kwargs`` in its forward, treats it as normalised: under
    DDP the loss and gradient came out multiplied by the world size, and accumulation passes were summed."""
    logits = outputs["logits"]
    return ForMaskedLMLoss(logits, labels, logits.shape[-1], num_items_in_batch=num_items_in_batch)


def _mixed_precision(precision: str, bf16_native: bool) -> dict:
    """Trainer flags: fp16/bf16 as asked; 8/4-bit LoRA under the GPU's native half type (fp16 on a T4)."""
    quantized = precision in QUANTIZED
    return {"fp16": precision == "fp16" or (quantized and not bf16_native),
            "bf16": precision == "bf16" or (quantized and bf16_native)}


def training_arguments(cfg: ExperimentConfig, world_size: int = 1) -> Seq2SeqTrainingArguments:
    """The Trainer's arguments for ``cfg`` run by ``world_size`` processes (see :func:`per_device_batch`)."""
    return Seq2SeqTrainingArguments(
        output_dir=str(Path(cfg.output_dir) / CHECKPOINT_DIR),
        per_device_train_batch_size=per_device_batch(cfg, world_size),
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps,
        lr_scheduler_type="linear",
        adam_beta2=cfg.adam_beta2,
        weight_decay=cfg.weight_decay,
        **_mixed_precision(cfg.precision, half_dtype() == torch.bfloat16),
        use_cpu=not torch.cuda.is_available(),  # lets bf16 autocast run on a CPU
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.eval_steps,
        save_total_limit=2,  # the best and the latest checkpoint
        load_best_model_at_end=True,
        metric_for_best_model="wer",  # validation WER, never the test set
        greater_is_better=False,
        predict_with_generate=True,
        generation_max_length=cfg.generation_max_length,
        logging_steps=cfg.logging_steps,
        report_to=[],
        remove_unused_columns=False,  # the collator needs the raw audio/text or feature columns
        label_names=["labels"],
        dataloader_num_workers=cfg.num_workers,
        seed=cfg.seed,
        data_seed=cfg.seed,
        ddp_timeout=DDP_TIMEOUT_S,
        # every trainable weight gets a gradient each step (frozen ones are not DDP's concern): no extra graph walk
        ddp_find_unused_parameters=False,
    )


class _Trainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose validation decodes a decoder-only family (the backbone's ``decoder_only``: Qwen3-ASR,
    whose training ``input_ids`` hold the transcript after the prompt) from the prompt alone (the backbone's
    ``prompt_part``), as evaluation does: the loss on the whole batch, the prediction its new tokens. Other
    families: Seq2SeqTrainer's own step."""

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        backbone = backbones.of(self.model)  # self.model: never a DDP wrapper (as Seq2SeqTrainer's generate)
        if not backbone.decoder_only or prediction_loss_only:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)
        loss, _, _ = super().prediction_step(model, inputs, True, ignore_keys)
        processor = self.processing_class
        gen = self.model
        budget, options = backbone.generation_budget(gen, processor), backbone.decoding_options(gen, processor)
        with torch.no_grad():
            ids = backbone.generate(gen, backbone.prompt_part(processor, inputs), budget, options)
        return loss, ids, inputs["labels"]


def make_trainer(cfg: ExperimentConfig, model, processor, splits: DataSplits,
                 world_size: int = 1) -> tuple[Seq2SeqTrainer, TimeBudget]:
    callbacks = []
    if cfg.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    budget = TimeBudget(cfg.time_budget_s if cfg.time_budget_s else float("inf"))
    callbacks.append(budget)
    trainer = _Trainer(
        model=model,
        args=training_arguments(cfg, world_size),
        train_dataset=splits.train,
        eval_dataset=splits.validation,
        data_collator=backbones.of(model).collator(processor, model, training=True,
                                                   label_tokens=sources.of(cfg).label_tokens),
        processing_class=processor,
        compute_metrics=_wer_metric(processor.tokenizer),
        compute_loss_func=_token_mean_loss,
        callbacks=callbacks,
    )
    hook = methods.get(cfg.method).hook
    if hook:  # what the method needs around training (AdaLoRA's rank budget, EVA's initialisation)
        hook(cfg, trainer)
    if trainer.pop_callback(ProgressCallback) is not None:  # in a terminal; notebooks keep their HTML table
        trainer.add_callback(_ReadableProgress())
    return trainer, budget


def load_weights(model, folder: Path) -> None:
    """The trained weights of checkpoint ``folder`` into ``model``: its adapter (as the Trainer loads the best
    adapter at the end of training), or every weight of a full fine-tune (the output projection, tied to the
    token embeddings, is not saved)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.load_adapter(str(folder), model.active_adapter, is_trainable=True)
        return
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(folder / "model.safetensors", device="cpu"), strict=False)
    if unexpected or set(missing) - {"proj_out.weight"}:
        raise RuntimeError(f"{folder}/model.safetensors does not fit the model: missing {missing}, unexpected "
                           f"{unexpected}")
