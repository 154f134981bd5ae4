"""One run: ExperimentConfig -> data -> Seq2SeqTrainer -> evaluation -> results file.

Public: :func:`processes`, :func:`training_arguments`, :func:`demo_model`, :func:`run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from transformers import (EarlyStoppingCallback, ProgressCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments,
                          TrainerCallback, TrainerState, set_seed)
from transformers.loss.loss_utils import ForMaskedLMLoss
from transformers.models.whisper.modeling_whisper import shift_tokens_right

from .config import DEMO_RUN, QUANTIZED, ExperimentConfig, demo_config
from .data import (SYNTHETIC_NOTE, DataSplits, SpeechCollator, build_feature_cache, load_splits,
                   settle_counts)
from .evaluate import decoding_record, evaluate_sets
from .device import PeakMemory, half_dtype
from .errors import ConfigError
from .export import write_model_card
from .metrics import pooled_metrics, score
from .model import build_model, count_parameters, model_source, save_trained
from .results import TRAINING, dir_bytes, read_results, record, write_results
from .run_dir import (BEFORE_METRICS_FILE, BEFORE_UTTERANCES_FILE, CHECKPOINT_DIR, MODEL_DIR, RESULTS_FILE,
                      TRAINER_STATE, RunDir, write_csv_atomic, write_json_atomic)

# How long the processes of a multi-process (DDP) run wait for each other at a barrier: rank 0 alone scores the
# test sets before and after training (hours for whole otozz test sets on a T4) while the others wait.
_DDP_TIMEOUT_S = 12 * 3600


def processes() -> PartialState:
    """The processes of this run, as torchrun, ``accelerate launch`` or
    :func:`arabicpeft.multigpu.train_on_gpus` started them (one process otherwise): ``.num_processes`` (the
    world size), ``.is_main_process`` (rank 0), ``.wait_for_everyone()``. The first call joins the process group
    (gloo on a CPU, NCCL on GPUs), which the Trainer then uses as well."""
    return PartialState(cpu=not torch.cuda.is_available(), timeout=dt.timedelta(seconds=_DDP_TIMEOUT_S))


def _per_device_batch(cfg: ExperimentConfig, world_size: int) -> int:
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


class _TimeBudget(TrainerCallback):
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


class _WithDecoderInputs:
    """A collator's batch plus ``decoder_input_ids`` (the labels shifted right behind the decoder start token,
    exactly as Whisper makes them from labels): with a ``compute_loss_func`` the Trainer takes the labels out of
    the model's inputs, so the decoder needs them given."""

    def __init__(self, collate, pad_token_id: int, decoder_start_token_id: int):
        self.collate, self.pad_token_id, self.decoder_start_token_id = collate, pad_token_id, decoder_start_token_id

    def __call__(self, records: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collate(records)
        batch["decoder_input_ids"] = shift_tokens_right(batch["labels"], self.pad_token_id, self.decoder_start_token_id)
        return batch


def _mixed_precision(precision: str, bf16_native: bool) -> dict:
    """Trainer flags: fp16/bf16 as asked; 8/4-bit LoRA under the GPU's native half type (fp16 on a T4)."""
    quantized = precision in QUANTIZED
    return {"fp16": precision == "fp16" or (quantized and not bf16_native),
            "bf16": precision == "bf16" or (quantized and bf16_native)}


def training_arguments(cfg: ExperimentConfig, world_size: int = 1) -> Seq2SeqTrainingArguments:
    """The Trainer's arguments for ``cfg`` run by ``world_size`` processes (see :func:`_per_device_batch`)."""
    return Seq2SeqTrainingArguments(
        output_dir=str(Path(cfg.output_dir) / CHECKPOINT_DIR),
        per_device_train_batch_size=_per_device_batch(cfg, world_size),
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
        ddp_timeout=_DDP_TIMEOUT_S,
        # every trainable weight gets a gradient each step (frozen ones are not DDP's concern): no extra graph walk
        ddp_find_unused_parameters=False,
    )


def _make_trainer(cfg: ExperimentConfig, model, processor, splits: DataSplits,
                 world_size: int = 1) -> tuple[Seq2SeqTrainer, _TimeBudget]:
    callbacks = []
    if cfg.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    budget = _TimeBudget(cfg.time_budget_s if cfg.time_budget_s else float("inf"))
    callbacks.append(budget)
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_arguments(cfg, world_size),
        train_dataset=splits.train,
        eval_dataset=splits.validation,
        data_collator=_WithDecoderInputs(SpeechCollator(processor, model.config.decoder_start_token_id),
                                        model.config.pad_token_id, model.config.decoder_start_token_id),
        processing_class=processor,
        compute_metrics=_wer_metric(processor.tokenizer),
        compute_loss_func=_token_mean_loss,
        callbacks=callbacks,
    )
    if trainer.pop_callback(ProgressCallback) is not None:  # in a terminal; notebooks keep their HTML table
        trainer.add_callback(_ReadableProgress())
    return trainer, budget


def _resume_checkpoint(cfg: ExperimentConfig) -> Optional[str]:
    """The checkpoint to resume from: ``resume_from`` (a checkpoint, or a run directory such as a previous
    Kaggle output attached as a dataset), else the latest complete checkpoint in this run's own output
    directory. Raises ValueError when the checkpoint belongs to another schedule (max_steps) or config."""
    checkpoint = RunDir(cfg.resume_from or cfg.output_dir).resume_checkpoint()
    if checkpoint is None:
        if cfg.resume_from:
            raise FileNotFoundError(f"No complete checkpoint-* directory (with {TRAINER_STATE}) found in "
                                    f"resume_from={cfg.resume_from}.")
        return None
    planned = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8")).get("max_steps")
    if planned != cfg.max_steps:
        raise ValueError(
            f"{checkpoint} was trained towards max_steps={planned}: its learning rate decays to 0 at step {planned}, "
            f"so resuming it with max_steps={cfg.max_steps} would train on a broken schedule. Rerun with "
            f"max_steps={planned} to finish it, or start a new run (another output_dir) with max_steps={cfg.max_steps}."
        )
    changed = RunDir(checkpoint.parent.parent).config_changes(cfg)
    if changed and cfg.resume_from:
        raise ValueError(f"{checkpoint} comes from a run with another config ({changed}): resume it with its own "
                         "config, or start a new run without resume_from.")
    return str(checkpoint)


def _training_done(checkpoint: Path, cfg: ExperimentConfig) -> Optional[str]:
    """Why training ended at ``checkpoint`` ("step 8 of 8", "early stopping after 3 validations without a better
    WER"), or None when it has steps left. Resuming such a checkpoint would train one more step (the Trainer
    checks for the end only after a step; transformers#35782), so it is not resumed but loaded."""
    state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    step = state.get("global_step", 0)
    if step >= cfg.max_steps:
        return f"step {step} of {cfg.max_steps}"
    waited = (((state.get("stateful_callbacks") or {}).get("EarlyStoppingCallback") or {}).get("attributes") or {}).get(
        "early_stopping_patience_counter", 0)
    if cfg.early_stopping_patience and waited >= cfg.early_stopping_patience:
        return f"early stopping at step {step} after {waited} validations without a better WER"
    return None


def _load_weights(model, folder: Path) -> None:
    """The trained weights of checkpoint ``folder`` into ``model``: its LoRA adapter (as the Trainer loads the best
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


def _before_scores(folder: Path) -> Optional[tuple[dict, pd.DataFrame]]:
    """The starting model's scores saved in ``folder`` by an earlier session of this run, or None."""
    rows, metrics = folder / BEFORE_UTTERANCES_FILE, folder / BEFORE_METRICS_FILE
    if not (rows.is_file() and metrics.is_file()):
        return None
    return json.loads(metrics.read_text(encoding="utf-8")), pd.read_csv(rows, keep_default_na=False)


def _clips(test_sets: dict) -> str:
    sizes = [len(ds) for ds in test_sets.values() if hasattr(ds, "__len__")]
    n = f"{sum(sizes)} " if len(sizes) == len(test_sets) else ""
    return f"{n}held-out clips ({len(test_sets)} test set{'s' * (len(test_sets) != 1)}: {', '.join(test_sets)})"


def demo_model(root=None) -> Path:
    """The model folder of the demo run (:func:`arabicpeft.config.demo_config` under the current profile) in
    ``root``/:data:`~arabicpeft.config.DEMO_RUN` (default root: the runs root), trained there first when it holds
    no adapter yet."""
    from . import kaggle, profiles

    model_dir = Path(root or kaggle.output_root()) / DEMO_RUN / MODEL_DIR
    if not (model_dir / "adapter_config.json").is_file():
        run(kaggle.prepare_run(profiles.apply(demo_config()), DEMO_RUN, root=root))
    return model_dir


def run(cfg: ExperimentConfig, log=print, rescore: bool = False) -> Path:
    """Train and evaluate as ``cfg`` says; returns the path of the results JSON.

    Says what it does, phase by phase, through ``log`` (elapsed seconds first); the evaluations and the
    training show progress bars. The output folder is claimed only when training starts; a rerun resumes from
    the latest complete checkpoint (passing over, and naming, newer ones cut short) and reads the starting
    model's scores back instead of recomputing them. A rerun of a finished run (:meth:`RunDir.finished`) says
    where its results are and returns them; ``rescore``: score its best checkpoint again (nothing is trained).
    One process at a time runs in an output folder (:meth:`RunDir.hold`): another one raises
    :class:`~arabicpeft.run_dir.RunInUseError`.

    Launched as N processes (``torchrun --nproc_per_node N -m arabicpeft train ...``, ``accelerate launch``,
    :func:`arabicpeft.multigpu.train_on_gpus`), the Trainer trains with DDP, each process taking
    ``batch_size / N`` of every step's utterances; rank 0 alone scores the test sets, writes the output folder
    and logs, while the others wait for it; every process returns the same path. Raises ConfigError when
    ``batch_size`` does not split over the processes (:func:`_per_device_batch`).
    """
    ranks = processes()
    # rank 0 holds the folder for every process of the run
    with RunDir(cfg.output_dir).hold() if ranks.is_main_process else contextlib.nullcontext():
        return _run(cfg, log, rescore, ranks)


def _run(cfg: ExperimentConfig, log, rescore: bool, ranks: PartialState) -> Path:
    main = ranks.is_main_process
    started = time.monotonic()
    phases: dict[str, float] = {}  # seconds per phase, in order: where the run's time went
    phase_start = started

    def say(message: str) -> None:
        if main:
            log(f"[{time.monotonic() - started:6.0f} s] {message}")

    def done(name: str) -> None:
        nonlocal phase_start
        now = time.monotonic()
        phases[name] = phases.get(name, 0.0) + now - phase_start
        phase_start = now

    cfg, notes = cfg.automatic_choices()
    device_batch = _per_device_batch(cfg, ranks.num_processes)  # before any work
    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    run_dir = RunDir(out)
    run_dir.check(cfg)  # before any work: a folder of another experiment is refused now
    finished = run_dir.finished(cfg)
    if finished and not rescore:
        say(f"this run is finished: its results are in {finished}. Nothing to train or score (rescore scores its "
            "best checkpoint again).")
        return finished
    checkpoint = _resume_checkpoint(cfg)  # and a checkpoint of another schedule
    if finished and checkpoint is None:
        raise ConfigError(f"{out} keeps no checkpoint to score again (checkpoints/ was deleted)",
                          "score the saved model instead: python -m arabicpeft evaluate --model-path "
                          f"{out / MODEL_DIR} --output-dir <another folder>.")
    if ranks.num_processes > 1:  # every process resumes what rank 0 found
        checkpoint = broadcast_object_list([checkpoint], from_process=0)[0]
    say(f"{cfg.describe()}; output folder {out}")
    for damaged in run_dir.damaged_checkpoints() if checkpoint and not cfg.resume_from else []:
        say(f"note: {damaged}: it cannot be resumed, so the run resumes from {Path(checkpoint).name}")
    if ranks.num_processes > 1:
        say(f"{ranks.num_processes} processes (DDP), {device_batch} utterances each per forward pass")
    for note in notes:
        say(f"note: {note}")
    say(f"loading the model {cfg.model}" + (" and adding LoRA" if cfg.method == "lora" else ""))
    done("setup")
    with ranks.main_process_first():  # rank 0 fills the download and model caches, the others then read them
        model, processor = build_model(cfg)
    done("model")
    with ranks.main_process_first():  # the same for the data and feature caches
        if cfg.feature_cache:
            say(f"reading the data through the feature cache {cfg.feature_cache}")
            build_feature_cache(cfg, processor, log=say)  # the splits not cached yet: one pass over the source
        say("loading the data")
        splits = load_splits(cfg, processor.tokenizer, max_seconds=processor.feature_extractor.chunk_length,
                             max_positions=model.config.max_target_positions)
    if splits.synthetic:
        say(f"note: {SYNTHETIC_NOTE}")
    workers = splits.num_workers
    if workers != cfg.num_workers:  # recorded: config.num_workers and data.feature_path of the results
        say(f"note: log-mel of the audio computed in {workers} DataLoader workers, chosen automatically so that "
            "the GPU does not wait for it; set num_workers to choose")
        cfg = dataclasses.replace(cfg, num_workers=workers)
    done("data")
    trainable, total = count_parameters(model)
    eval_kw = dict(batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers, precision=cfg.precision)

    before = before_rows = None
    if cfg.evaluate_before and main:  # once, by rank 0
        earlier = _before_scores(out) if run_dir.owned_by(cfg) else None
        if earlier:
            say(f"the starting model's scores are already in {out / BEFORE_UTTERANCES_FILE}: not scored again")
            before, before_rows = earlier
        else:
            say(f"scoring the starting model on {_clips(splits.test)}")
            # LoRA with the adapter disabled is exactly the starting model.
            off = model.disable_adapter() if cfg.method == "lora" else contextlib.nullcontext()
            with off:
                before, before_rows = evaluate_sets(model, processor, splits.test, label="before: ", **eval_kw)
        done("evaluation_before")

    trainer, budget = _make_trainer(cfg, model, processor, splits, ranks.num_processes)
    if main:
        run_dir.claim(cfg)  # from here on the folder belongs to this experiment
        if before_rows is not None and not (out / BEFORE_METRICS_FILE).is_file():
            write_csv_atomic(out / BEFORE_UTTERANCES_FILE, before_rows)
            write_json_atomic(out / BEFORE_METRICS_FILE, before)  # last: the pair is complete once it exists
    ranks.wait_for_everyone()  # the others waited here while rank 0 scored the starting model
    n_train = splits.report.get("n_train", "streamed")
    ended = _training_done(Path(checkpoint), cfg) if checkpoint else None
    if checkpoint:
        folder = Path(checkpoint).parent
        folder = folder.parent if folder.name == CHECKPOINT_DIR else folder
        say(f"resuming from {Path(checkpoint).name} of {folder}; " + (
            f"training ended there ({ended}): nothing left to train" if ended else f"training to step {cfg.max_steps}"))
    else:
        say(f"training {cfg.max_steps} steps of {cfg.batch_size} utterances ({n_train} training utterances, "
            f"{trainable:,} of {total:,} parameters trainable)")
    peak = PeakMemory()  # the peak of training alone, not of evaluation or of earlier runs in this process
    if ended:  # the checkpoint's state, and its best checkpoint's weights, as the Trainer ends a run
        trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE))
        best = trainer.state.best_model_checkpoint
        _load_weights(model, Path(best) if best and Path(best).is_dir() else Path(checkpoint))
        train_metrics = {"train_runtime": 0.0}
    else:
        train_metrics = trainer.train(resume_from_checkpoint=checkpoint).metrics
    memory = peak.read()
    done("training")
    model = trainer.model  # the best checkpoint by validation WER (load_best_model_at_end)
    state = trainer.state
    if not main:  # rank 0 scores, saves and writes alone; the path is the same for every process
        ranks.wait_for_everyone()
        return out / RESULTS_FILE
    say(f"scoring the trained model (step {state.global_step}) on {_clips(splits.test)}")
    after, after_rows = evaluate_sets(model, processor, splits.test, label="after: ", **eval_kw)
    done("evaluation_after")

    say(f"saving the {'adapter' if cfg.method == 'lora' else 'model'} and the results")
    run_dir.mark_incomplete(state.global_step)  # model/ and results.json are replaced together from here
    saved = save_trained(model, processor, cfg, out / MODEL_DIR)
    done("saving")
    result = record(
        out, kind=TRAINING, config=cfg.to_dict(), data=settle_counts(splits.report), synthetic=splits.synthetic,
        metrics=after, metrics_pooled=pooled_metrics(after_rows), metrics_before=before,
        utterances_before_file=BEFORE_UTTERANCES_FILE if before_rows is not None else None,
        training={
            "resumed_from": checkpoint,
            "global_step": state.global_step,
            "best_checkpoint": state.best_model_checkpoint,
            # False when the best checkpoint came from elsewhere (a resume) and is gone: the model saved and
            # scored is then the last one, not the best.
            "best_checkpoint_loaded": bool(state.best_model_checkpoint and Path(state.best_model_checkpoint).is_dir()),
            "best_validation_wer": state.best_metric,
            "stopped_by_time_budget_at_step": budget.stopped_at_step,
            "log_history": state.log_history,
            # processes that trained (DDP world size) and each one's share of a step's batch_size utterances
            "world_size": ranks.num_processes,
            "per_device_batch_size": device_batch,
        },
        efficiency={
            "trainable_parameters": trainable,
            "total_parameters": total,
            "trainable_percent": 100.0 * trainable / total,
            # After a resume, time, speed and memory cover the training since the resume only.
            "measured_since_resume": checkpoint is not None,
            "train_wall_time_s": train_metrics.get("train_runtime"),
            "train_samples_per_second": train_metrics.get("train_samples_per_second"),
            "run_wall_time_s": time.monotonic() - started,
            # seconds per phase of this process (setup, model, data, evaluation_before, training — the
            # Trainer's setup, steps and validation —, evaluation_after, saving): they add up to run_wall_time_s
            # but for the results file written after them
            "phase_seconds": phases,
            "peak_memory": memory,  # rank 0's process (or GPU) under DDP
            "weights_bytes": sum(p.stat().st_size for p in saved.glob("*.safetensors")),
            "saved_dir_bytes": dir_bytes(saved),
        },
        # What a rerun needs beyond the config: the values the config left to defaults, and the model's origin.
        provenance={
            "model": model_source(cfg, model),
            "learning_rate": cfg.lr,
            "lr_scheduler": "linear",
            "decoding": decoding_record(),
            "max_label_positions": model.config.max_target_positions,
            "encoder_window_s": processor.feature_extractor.chunk_length,
        },
    )
    path = write_results(out, result, after_rows)
    write_model_card(saved, read_results(path))  # README.md beside the adapter/model, with these scores
    run_dir.mark_complete()
    say("done")
    ranks.wait_for_everyone()
    return path
