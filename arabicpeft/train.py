"""One run: ExperimentConfig -> data -> Seq2SeqTrainer (:mod:`arabicpeft.trainer`) -> evaluation -> results file.

:func:`run` goes through its phases in order, each a function here: the resume point (:func:`_resume_point`),
the model and the data (:func:`_load`), the starting model's scores (:func:`_score_before`), training
(:func:`_train`), then scoring, saving and the results file (:func:`_score_and_save`, :func:`_results_record`).

Public: :func:`processes`, :func:`demo_model`, :func:`run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import time
from pathlib import Path
from typing import Optional

import pandas as pd
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from transformers import Seq2SeqTrainer, TrainerState, set_seed

from . import backbones, methods
from .config import DEMO_RUN, ExperimentConfig, demo_config
from .caching import build_feature_cache
from .data import SYNTHETIC_NOTE, DataSplits, load_splits, settle_counts
from .evaluate import decoding_record, evaluate_sets
from .device import PeakMemory
from .errors import ConfigError
from .export import write_model_card
from .metrics import pooled_metrics
from .model import build_model, count_parameters, model_source, save_trained
from .results import TRAINING, dir_bytes, read_results, record, write_results
from .run_dir import (BEFORE_METRICS_FILE, BEFORE_UTTERANCES_FILE, CHECKPOINT_DIR, MODEL_DIR, RESULTS_FILE,
                      TRAINER_STATE, RunDir, write_csv_atomic, write_json_atomic)
from .trainer import DDP_TIMEOUT_S, TimeBudget, load_weights, make_trainer, per_device_batch


def processes() -> PartialState:
    """The processes of this run, as torchrun, ``accelerate launch`` or
    :func:`arabicpeft.multigpu.train_on_gpus` started them (one process otherwise): ``.num_processes`` (the
    world size), ``.is_main_process`` (rank 0), ``.wait_for_everyone()``. The first call joins the process group
    (gloo on a CPU, NCCL on GPUs), which the Trainer then uses as well."""
    return PartialState(cpu=not torch.cuda.is_available(), timeout=dt.timedelta(seconds=DDP_TIMEOUT_S))


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
    ``batch_size`` does not split over the processes (:func:`arabicpeft.trainer.per_device_batch`).
    """
    ranks = processes()
    # rank 0 holds the folder for every process of the run
    with RunDir(cfg.output_dir).hold() if ranks.is_main_process else contextlib.nullcontext():
        return _run(cfg, log, rescore, ranks)


class _Clock:
    """The log of one run: each line with the seconds since the run started (rank 0 alone says them), and the
    seconds per phase, in order (:meth:`done` ends a phase): where the run's time went."""

    def __init__(self, log, main: bool):
        self.log, self.main = log, main
        self.started = self.phase_start = time.monotonic()
        self.phases: dict[str, float] = {}

    def say(self, message: str) -> None:
        if self.main:
            self.log(f"[{time.monotonic() - self.started:6.0f} s] {message}")

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.phase_start
        self.phase_start = now


@dataclasses.dataclass
class _Training:
    """What training was and gave: the Trainer (its model: the best checkpoint by validation WER; its state: the
    log), the time budget, the checkpoint it resumed from, the Trainer's metrics, the peak memory of training,
    the parameters (trainable, total) and the processes with each one's utterances per forward pass."""

    trainer: Seq2SeqTrainer
    budget: TimeBudget
    checkpoint: Optional[str]
    metrics: dict
    memory: dict
    parameters: tuple[int, int]
    world_size: int
    device_batch: int


def _run(cfg: ExperimentConfig, log, rescore: bool, ranks: PartialState) -> Path:
    """:func:`run`'s phases, in order."""
    main, clock = ranks.is_main_process, _Clock(log, ranks.is_main_process)
    cfg, notes = cfg.automatic_choices()
    device_batch = per_device_batch(cfg, ranks.num_processes)  # before any work
    set_seed(cfg.seed)
    out, run_dir = Path(cfg.output_dir), RunDir(cfg.output_dir)
    finished, checkpoint = _resume_point(cfg, rescore, ranks, clock.say)
    if finished:
        return finished
    clock.say(f"{cfg.describe()}; output folder {out}")
    for damaged in run_dir.damaged_checkpoints() if checkpoint and not cfg.resume_from else []:
        clock.say(f"note: {damaged}: it cannot be resumed, so the run resumes from {Path(checkpoint).name}")
    if ranks.num_processes > 1:
        clock.say(f"{ranks.num_processes} processes (DDP), {device_batch} utterances each per forward pass")
    for note in notes:
        clock.say(f"note: {note}")
    method = methods.get(cfg.method)
    clock.say(f"loading the model {cfg.model}" + (f" and adding {method.title}" if method.peft_config else ""))
    clock.done("setup")
    model, processor, splits, cfg = _load(cfg, ranks, clock)
    parameters = count_parameters(model)
    eval_kw = dict(batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers, precision=cfg.precision)
    before = before_rows = None
    if cfg.evaluate_before and main:  # once, by rank 0
        before, before_rows = _score_before(cfg, model, processor, splits, eval_kw, clock.say)
        clock.done("evaluation_before")
    trainer, budget = make_trainer(cfg, model, processor, splits, ranks.num_processes)
    if main:
        run_dir.claim(cfg)  # from here on the folder belongs to this experiment
        if before_rows is not None and not (out / BEFORE_METRICS_FILE).is_file():
            write_csv_atomic(out / BEFORE_UTTERANCES_FILE, before_rows)
            write_json_atomic(out / BEFORE_METRICS_FILE, before)  # last: the pair is complete once it exists
    ranks.wait_for_everyone()  # the others waited here while rank 0 scored the starting model
    metrics, memory = _train(cfg, trainer, checkpoint, splits.report.get("n_train", "streamed"), parameters,
                             clock.say)
    clock.done("training")
    training = _Training(trainer, budget, checkpoint, metrics, memory, parameters, ranks.num_processes, device_batch)
    if not main:  # rank 0 scores, saves and writes alone; the path is the same for every process
        ranks.wait_for_everyone()
        return out / RESULTS_FILE
    path = _score_and_save(cfg, training, processor, splits, (before, before_rows), eval_kw, clock)
    ranks.wait_for_everyone()
    return path


def _resume_point(cfg: ExperimentConfig, rescore: bool, ranks: PartialState, say) -> tuple[Optional[Path],
                                                                                           Optional[str]]:
    """(the results of this run when it is finished and not to be scored again, else None; the checkpoint to
    resume from, else None: every process gets rank 0's). Refuses, before any work, an output folder of another
    experiment, a checkpoint of another schedule, and rescoring a run that kept no checkpoint."""
    out = Path(cfg.output_dir)
    run_dir = RunDir(out)
    run_dir.check(cfg)  # before any work: a folder of another experiment is refused now
    finished = run_dir.finished(cfg)
    if finished and not rescore:
        say(f"this run is finished: its results are in {finished}. Nothing to train or score (rescore scores its "
            "best checkpoint again).")
        return finished, None
    checkpoint = _resume_checkpoint(cfg)  # and a checkpoint of another schedule
    if finished and checkpoint is None:
        raise ConfigError(f"{out} keeps no checkpoint to score again (checkpoints/ was deleted)",
                          "score the saved model instead: python -m arabicpeft evaluate --model-path "
                          f"{out / MODEL_DIR} --output-dir <another folder>.")
    if ranks.num_processes > 1:  # every process resumes what rank 0 found
        checkpoint = broadcast_object_list([checkpoint], from_process=0)[0]
    return None, checkpoint


def _load(cfg: ExperimentConfig, ranks: PartialState, clock: _Clock) -> tuple:
    """(model, processor, splits, cfg): the model ready for training, its processor, the data splits, and ``cfg``
    with the DataLoader workers the data chose (recorded in the results' config)."""
    with ranks.main_process_first():  # rank 0 fills the download and model caches, the others then read them
        model, processor = build_model(cfg)
    clock.done("model")
    with ranks.main_process_first():  # the same for the data and feature caches
        if cfg.feature_cache:
            clock.say(f"reading the data through the feature cache {cfg.feature_cache}")
            build_feature_cache(cfg, processor, log=clock.say)  # the splits not cached yet: one pass over the source
        clock.say("loading the data")
        splits = load_splits(cfg, processor.tokenizer, max_seconds=processor.feature_extractor.chunk_length,
                             max_positions=backbones.of(model).label_positions(model))
    if splits.synthetic:
        clock.say(f"note: {SYNTHETIC_NOTE}")
    workers = splits.num_workers
    if workers != cfg.num_workers:  # recorded: config.num_workers and data.feature_path of the results
        clock.say(f"note: log-mel of the audio computed in {workers} DataLoader workers, chosen automatically so "
                  "that the GPU does not wait for it; set num_workers to choose")
        cfg = dataclasses.replace(cfg, num_workers=workers)
    clock.done("data")
    return model, processor, splits, cfg


def _score_before(cfg: ExperimentConfig, model, processor, splits: DataSplits, eval_kw: dict,
                  say) -> tuple[dict, pd.DataFrame]:
    """The starting model's (metrics, per-utterance rows) on the test sets: read back when an earlier session of
    this run saved them, else scored (an adapter disabled: exactly the starting model)."""
    out = Path(cfg.output_dir)
    earlier = _before_scores(out) if RunDir(out).owned_by(cfg) else None
    if earlier:
        say(f"the starting model's scores are already in {out / BEFORE_UTTERANCES_FILE}: not scored again")
        return earlier
    say(f"scoring the starting model on {_clips(splits.test)}")
    off = model.disable_adapter() if methods.get(cfg.method).peft_config else contextlib.nullcontext()
    with off:
        return evaluate_sets(model, processor, splits.test, label="before: ", **eval_kw)


def _train(cfg: ExperimentConfig, trainer: Seq2SeqTrainer, checkpoint: Optional[str], n_train,
           parameters: tuple[int, int], say) -> tuple[dict, dict]:
    """Train (or resume) to the end and load the best checkpoint; (the Trainer's metrics, the peak memory of
    training). A checkpoint where training already ended is loaded, not resumed (:func:`_training_done`)."""
    ended = _training_done(Path(checkpoint), cfg) if checkpoint else None
    if checkpoint:
        folder = Path(checkpoint).parent
        folder = folder.parent if folder.name == CHECKPOINT_DIR else folder
        say(f"resuming from {Path(checkpoint).name} of {folder}; " + (
            f"training ended there ({ended}): nothing left to train" if ended else f"training to step {cfg.max_steps}"))
    else:
        trainable, total = parameters
        say(f"training {cfg.max_steps} steps of {cfg.batch_size} utterances ({n_train} training utterances, "
            f"{trainable:,} of {total:,} parameters trainable)")
    peak = PeakMemory()  # the peak of training alone, not of evaluation or of earlier runs in this process
    if ended:  # the checkpoint's state, and its best checkpoint's weights, as the Trainer ends a run
        trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE))
        best = trainer.state.best_model_checkpoint
        load_weights(trainer.model, Path(best) if best and Path(best).is_dir() else Path(checkpoint))
        metrics = {"train_runtime": 0.0}
    else:
        metrics = trainer.train(resume_from_checkpoint=checkpoint).metrics
    return metrics, peak.read()


def _score_and_save(cfg: ExperimentConfig, training: _Training, processor, splits: DataSplits, before: tuple,
                    eval_kw: dict, clock: _Clock) -> Path:
    """Rank 0's last phases: score the trained model, save it (the adapter, or the whole model) and write the
    results file and the model card; the folder is marked incomplete until both are written."""
    out, model, state = Path(cfg.output_dir), training.trainer.model, training.trainer.state
    run_dir = RunDir(out)
    clock.say(f"scoring the trained model (step {state.global_step}) on {_clips(splits.test)}")
    after, after_rows = evaluate_sets(model, processor, splits.test, label="after: ", **eval_kw)
    clock.done("evaluation_after")
    clock.say(f"saving the {'adapter' if methods.get(cfg.method).peft_config else 'model'} and the results")
    run_dir.mark_incomplete(state.global_step)  # model/ and results.json are replaced together from here
    saved = save_trained(model, processor, cfg, out / MODEL_DIR)
    clock.done("saving")
    result = _results_record(cfg, training, processor, splits, (after, after_rows, *before), saved, clock)
    path = write_results(out, result, after_rows)
    write_model_card(saved, read_results(path))  # README.md beside the adapter/model, with these scores
    run_dir.mark_complete()
    clock.say("done")
    return path


def _results_record(cfg: ExperimentConfig, training: _Training, processor, splits: DataSplits, scores: tuple,
                    saved: Path, clock: _Clock) -> dict:
    """The results record of a training run (:func:`arabicpeft.results.record`); ``scores``: (after, after_rows,
    before, before_rows) of :func:`evaluate_sets`."""
    after, after_rows, before, before_rows = scores
    model, state, checkpoint = training.trainer.model, training.trainer.state, training.checkpoint
    trainable, total = training.parameters
    return record(
        cfg.output_dir, kind=TRAINING, config=cfg.to_dict(), data=settle_counts(splits.report),
        synthetic=splits.synthetic, metrics=after, metrics_pooled=pooled_metrics(after_rows), metrics_before=before,
        utterances_before_file=BEFORE_UTTERANCES_FILE if before_rows is not None else None,
        training={
            "resumed_from": checkpoint,
            "global_step": state.global_step,
            "best_checkpoint": state.best_model_checkpoint,
            # False when the best checkpoint came from elsewhere (a resume) and is gone: the model saved and
            # scored is then the last one, not the best.
            "best_checkpoint_loaded": bool(state.best_model_checkpoint and Path(state.best_model_checkpoint).is_dir()),
            "best_validation_wer": state.best_metric,
            "stopped_by_time_budget_at_step": training.budget.stopped_at_step,
            "log_history": state.log_history,
            # processes that trained (DDP world size) and each one's share of a step's batch_size utterances
            "world_size": training.world_size,
            "per_device_batch_size": training.device_batch,
        },
        efficiency={
            "trainable_parameters": trainable,
            "total_parameters": total,
            "trainable_percent": 100.0 * trainable / total,
            # After a resume, time, speed and memory cover the training since the resume only.
            "measured_since_resume": checkpoint is not None,
            "train_wall_time_s": training.metrics.get("train_runtime"),
            "train_samples_per_second": training.metrics.get("train_samples_per_second"),
            "run_wall_time_s": time.monotonic() - clock.started,
            # seconds per phase of this process (setup, model, data, evaluation_before, training — the
            # Trainer's setup, steps and validation —, evaluation_after, saving): they add up to run_wall_time_s
            # but for the results file written after them
            "phase_seconds": clock.phases,
            "peak_memory": training.memory,  # rank 0's process (or GPU) under DDP
            "weights_bytes": sum(p.stat().st_size for p in saved.glob("*.safetensors")),
            "saved_dir_bytes": dir_bytes(saved),
        },
        # What a rerun needs beyond the config: the values the config left to defaults, and the model's origin.
        provenance={
            "model": model_source(cfg, model),
            "model_family": backbones.of(model).family,  # the model_type of its config.json
            "learning_rate": cfg.lr,
            "lr_scheduler": "linear",
            "decoding": decoding_record(),
            "max_label_positions": backbones.of(model).label_positions(model),
            "encoder_window_s": processor.feature_extractor.chunk_length,
        },
    )
