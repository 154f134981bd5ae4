"""Training steps of several recipes side by side, each in a fresh process: what ``gpu.py`` and ``memory.py``
share. Run as ``python benchmarks/_steps.py --row JOB --output-dir DIR``, it measures one job of the plan in
``DIR/plan.json`` (what :func:`run_jobs` starts) and writes ``DIR/<job>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

from _common import BENCHMARKS, result_line, run_python

LABEL_TOKENS = (20, 120)  # transcript tokens of a synthetic utterance, uniform (otozz-like lengths)


@dataclasses.dataclass(frozen=True)
class StepRow:
    """One measured recipe: ``config`` are the :class:`ExperimentConfig` fields it sets (the rest are defaults);
    rows whose precision this machine lacks (:data:`arabicpeft.device.PRECISION_HARDWARE`) are skipped with the
    reason printed; ``autocast``: a mixed precision that overrides the one the project would pick for ``config``
    (the replaced project's fp16 also on a GPU whose native half precision is bf16); ``trainer_args`` and
    ``attention``: training-step levers the Trainer and the model take as they are."""

    name: str
    what: str
    config: dict
    autocast: Optional[str] = None
    trainer_args: Optional[dict] = None  # Seq2SeqTrainingArguments fields (torch_compile, optim) this row sets
    attention: Optional[str] = None  # an attention implementation other than the project's (sdpa)
    needs_cuda: Optional[str] = None  # why this row is measured on a GPU only (skipped on a CPU with this reason)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options every step benchmark takes."""
    parser.add_argument("--output-dir", help="where the plan, each row and benchmark.json go (default: "
                        "benchmark-MODE under the runs root)")
    parser.add_argument("--batch-size", type=int, default=8, help="training utterances per step (default 8)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per recipe (default 5)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--recipes", help="comma-separated recipe names to measure (default: all; the ratios are to "
                        "the reference recipe when measured, else the first)")
    parser.add_argument("--in-process", action="store_true", help="measure every row in this process instead of a "
                        "fresh one each (a quick check; each row's peak memory then includes what earlier rows left)")


def chosen(rows: list[StepRow], recipes: Optional[str], mode: str) -> dict[str, StepRow]:
    """The rows ``--recipes`` names (all when None); an unknown name stops with the valid ones."""
    rows = {r.name: r for r in rows}
    if not recipes:
        return rows
    wanted = [r.strip() for r in recipes.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in rows]
    if unknown:
        raise SystemExit(f"error: unknown {mode} recipe(s) {', '.join(unknown)} — choose from {', '.join(rows)}")
    return {r: rows[r] for r in wanted}


def synthetic_records(count: int, frames: int, seed: int = 0) -> list[dict]:
    """``count`` otozz-shaped records: ``input_features`` 80 x ``frames`` float32 (uniform in [-1, 1), the range of
    Whisper's normalised log-mel) and ``labels`` = the Arabic transcribe prefix, LABEL_TOKENS text tokens (uniform,
    ordinary text ids) and <|endoftext|>, in the otozz sets' token layout (whisper tiny ... large-v2's ids). Random
    content: for speed and memory, not for accuracy."""
    import numpy as np

    from arabicpeft.offline_model import N_MELS
    from arabicpeft.whisper_tokens import LABEL_LAYOUTS, PROMPT_TOKENS

    *prompt, end = (LABEL_LAYOUTS["whisper"][token] for token in PROMPT_TOKENS)

    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        n = int(rng.integers(LABEL_TOKENS[0], LABEL_TOKENS[1] + 1))
        text = rng.integers(220, end, size=n).tolist()
        records.append({"id": f"synthetic-{i}",
                        "input_features": rng.uniform(-1, 1, size=(N_MELS, frames)).astype(np.float32),
                        "labels": [*prompt, *text, end]})
    return records


def job_file(job: str) -> str:
    return job.replace("/", "__") + ".json"  # jobs are named model/row


def measure_job(name: str, out: Path) -> None:
    """One job of ``out/plan.json`` in this process (its own peak memory when the process is fresh): writes
    ``out/<job>.json``."""
    from arabicpeft.device import pin_single_gpu

    pin_single_gpu()  # before torch touches CUDA: one process, one GPU
    import tempfile

    import torch
    from transformers import set_seed

    from arabicpeft.config import ExperimentConfig
    from arabicpeft.model import build_model, count_parameters
    from arabicpeft.device import PeakMemory
    from arabicpeft.run_dir import write_json_atomic

    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    job = plan["jobs"][name]
    record = {"job": name, "threads": torch.get_num_threads()}
    scratch = tempfile.mkdtemp(prefix="arabicpeft-benchmark-")
    cfg = ExperimentConfig(**{**job["config"], "output_dir": scratch})
    set_seed(0)
    peak = PeakMemory()
    try:
        model, processor = build_model(cfg)
        record["after_load"] = peak.read()
        record["trainable_parameters"], record["total_parameters"] = count_parameters(model)
        if job.get("attention"):
            model.set_attn_implementation(job["attention"])  # a peft model passes it to its base
        record["attention"] = getattr(model.config, "_attn_implementation", None)
        frames = processor.feature_extractor.nb_max_frames
        if job["kind"] == "eval":
            record.update(eval_clips(model, processor, cfg, synthetic_records(plan["eval_clips"], frames), plan))
        else:
            record.update(train_steps(model, processor, cfg, job, plan, frames))
    except torch.cuda.OutOfMemoryError as e:  # a result too: this recipe does not fit this GPU
        record["error"] = f"out of memory: {str(e).splitlines()[0]}"
    record["peak_memory"] = peak.read()
    shutil.rmtree(scratch, ignore_errors=True)
    write_json_atomic(out / job_file(name), record)


def train_steps(model, processor, cfg, job: dict, plan: dict, frames: int) -> dict:
    """Warm-up and timed steps of the Trainer on synthetic records: each step's seconds (synchronised), the
    median after warm-up, the losses, the autocast used and what autograd keeps for backward."""
    import torch
    from transformers import Seq2SeqTrainer, TrainerCallback

    from arabicpeft import backbones
    from arabicpeft.trainer import training_arguments

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    steps = plan["warmup_steps"] + plan["steps"]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds, self.started = [], None

        def on_step_begin(self, *a, **k):
            sync()
            self.started = time.perf_counter()

        def on_step_end(self, *a, **k):
            sync()
            self.seconds.append(time.perf_counter() - self.started)

    timer = StepTimer()
    targs = dataclasses.replace(training_arguments(dataclasses.replace(cfg, max_steps=steps)),
                                eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                predict_with_generate=False, logging_steps=1, disable_tqdm=True)
    if job.get("autocast"):
        targs = dataclasses.replace(targs, fp16=job["autocast"] == "fp16", bf16=job["autocast"] == "bf16")
    targs = dataclasses.replace(targs, **(job.get("trainer_args") or {}))
    record = {"autocast": "fp16" if targs.fp16 else "bf16" if targs.bf16 else None, "batch_size": cfg.batch_size,
              "optim": getattr(targs.optim, "value", targs.optim), "torch_compile": targs.torch_compile}
    collate = backbones.of(model).collator(processor, model)
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(record["autocast"])
    record["saved_for_backward_bytes"] = saved_for_backward(model, collate(synthetic_records(cfg.batch_size, frames)),
                                                            half)
    trainer = Seq2SeqTrainer(model=model, args=targs, train_dataset=synthetic_records(steps * cfg.batch_size, frames),
                             data_collator=collate, callbacks=[timer])
    trainer.train()
    measured = timer.seconds[plan["warmup_steps"]:]
    return {**record, "step_seconds": timer.seconds, "step_s": sorted(measured)[len(measured) // 2],
            "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h], "world_size": targs.world_size}


def saved_for_backward(model, batch: dict, autocast=None) -> int:
    """Bytes of activations autograd keeps for the backward pass of one training forward on ``batch`` (each storage
    counted once, parameters excluded), under ``autocast`` (a torch dtype) as the Trainer runs it: what LoRA dropout
    copies or gradient checkpointing drops shows here first."""
    import contextlib

    import torch

    model.train()
    device = next(model.parameters()).device
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    mixed = torch.autocast(device.type, dtype=autocast) if autocast else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), mixed:
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
    del loss
    return sum(kept.values())


def eval_clips(model, processor, cfg, records: list[dict], plan: dict) -> dict:
    """clips/s of a per-utterance ``generate`` loop vs :func:`arabicpeft.evaluate.transcribe`'s batches."""
    from arabicpeft.evaluate import transcribe

    timed = {}
    for name, batch in (("per_utterance", 1), ("batched", plan["eval_batch_size"])):
        started = time.perf_counter()
        _, hyps = transcribe(model, processor, records, batch_size=batch, max_new_tokens=plan["max_new_tokens"],
                             precision=cfg.precision, desc=f"eval {name}")
        timed[name] = (time.perf_counter() - started, hyps)
    (one_s, one), (batched_s, many) = timed["per_utterance"], timed["batched"]
    return {"clips": len(records), "eval_batch_size": plan["eval_batch_size"],
            "per_utterance_clips_per_s": len(records) / one_s, "batched_clips_per_s": len(records) / batched_s,
            "same_transcripts": sum(a == b for a, b in zip(one, many))}


def run_jobs(jobs: dict, settings: dict, out: Path, in_process: bool = False) -> dict:
    """Each job in a fresh process (its own peak memory, no allocator state left by another row), or with
    ``in_process`` one after another in this one (quick checks: a row's peak memory includes what earlier rows
    left)."""
    from arabicpeft.run_dir import write_json_atomic

    write_json_atomic(out / "plan.json", {**settings, "jobs": jobs})
    results = {}
    for name in jobs:
        print(f"  measuring {name} ...", flush=True)
        if in_process:
            measure_job(name, out)
            results[name] = json.loads((out / job_file(name)).read_text(encoding="utf-8"))
            continue
        proc = run_python([BENCHMARKS / "_steps.py", "--row", name, "--output-dir", out], row=True)
        if proc.returncode != 0:  # recorded and reported; the other recipes are still measured
            sys.stderr.write(proc.stderr[-4000:])
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            results[name] = {"job": name, "failed": True, "error": f"failed (exit code {proc.returncode}): {last}"}
            continue
        results[name] = json.loads((out / job_file(name)).read_text(encoding="utf-8"))
    return results


def _gib(memory: dict) -> float:
    return memory["bytes"] / 2**30


def print_steps(results: dict, rows: dict, reference: str) -> dict:
    """The step table with ratios to ``reference``; returns {job: {step_s, peak_gib, speedup, memory_ratio}}."""
    ref = results[reference]

    def per_utterance(r: dict) -> float:  # rows of another batch size compare by time per utterance
        return r["step_s"] / r.get("batch_size", 1)

    print(f"{'recipe':<28} {'trainable':>12} {'step s':>8} {'peak GiB':>9} {'saved GiB':>9} {'speed x':>8} "
          f"{'memory x':>9}  what")
    table = {}
    for name, r in results.items():
        if name not in rows:
            continue
        if "error" in r:
            print(f"{name:<28} {r['error']}")
            table[name] = {"error": r["error"]}
            continue
        speed, memory = per_utterance(ref) / per_utterance(r), _gib(r["peak_memory"]) / _gib(ref["peak_memory"])
        saved = r["saved_for_backward_bytes"] / 2**30
        print(f"{name:<28} {r['trainable_parameters']:>12,} {r['step_s']:8.3f} {_gib(r['peak_memory']):9.2f} "
              f"{saved:9.2f} {speed:8.2f} {memory:9.2f}  {rows[name].what}")
        table[name] = {"step_s": round(r["step_s"], 4), "peak_gib": round(_gib(r["peak_memory"]), 3),
                       "saved_for_backward_gib": round(saved, 3),
                       "speedup": round(speed, 3), "memory_ratio": round(memory, 3)}
    print(f"speed x = time per utterance of {reference} / that of the row (step time / batch); memory x = peak of the row / peak of "
          f"{reference}; saved = activations autograd keeps for backward in one forward (parameters excluded). Step = "
          "forward + backward + optimizer step (median after warm-up, batch loading excluded).")
    return table


@dataclasses.dataclass
class Bench:
    """One step benchmark's plan: ``mode`` (gpu or memory), ``rows`` (the recipes), ``models`` ({model as named:
    the reference it loads}), ``base`` (config fields of every job), ``settings`` (recorded), ``reference`` (the
    recipe the ratios are to, when measured), ``title`` (a model's section heading) and ``eval`` (config fields
    of an evaluation job per model, or None)."""

    mode: str
    rows: dict
    models: dict
    base: dict
    settings: dict
    reference: str
    title: str
    eval: Optional[dict] = None


def plan_jobs(bench: Bench, batch_size: int) -> tuple[dict, dict]:
    """({job: its plan}, {job: why it was skipped}): a job per model and recipe this machine can run."""
    from arabicpeft.device import gpu_info, precision_problem

    jobs, skipped = {}, {}
    for model, path in bench.models.items():
        for row in bench.rows.values():
            why = precision_problem(row.config.get("precision", "fp32"))
            if not why and row.needs_cuda and not gpu_info()["cuda"]:
                why = row.needs_cuda
            key = f"{model}/{row.name}"
            if why:
                skipped[key] = why
                print(f"skipped {key}: {why}")
                continue
            jobs[key] = {"kind": "train", "row": row.name, "model": model, "autocast": row.autocast,
                         "trainer_args": row.trainer_args, "attention": row.attention,
                         "config": {**bench.base, "batch_size": batch_size, **row.config, "model": path}}
        if bench.eval is not None:
            jobs[f"{model}/eval"] = {"kind": "eval", "model": model,
                                     "config": {**bench.base, "model": path, **bench.eval}}
    return jobs, skipped


def report(bench: Bench, results: dict) -> tuple[dict, dict, dict]:
    """Print each model's table and evaluation line: (summary, {model: table}, {model: reference recipe})."""
    worlds = sorted({r["world_size"] for r in results.values() if "world_size" in r})
    summary, tables, references = {"world_size": worlds[0] if len(worlds) == 1 else worlds}, {}, {}
    for model in bench.models:
        mine = {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(f"{model}/")}
        train = [k for k in mine if k != "eval" and "error" not in mine[k]]
        if not train:
            continue
        references[model] = bench.reference if bench.reference in train else train[0]
        print(f"\n{model}, {bench.title}")
        tables[model] = print_steps(mine, bench.rows, references[model])
        key = model.replace("whisper-", "").replace("-", "_")
        for name, t in tables[model].items():
            if "error" not in t:
                row_key = name.replace("-", "_").replace(".", "")
                summary.update({f"{key}_{row_key}_step_s": t["step_s"], f"{key}_{row_key}_peak_gib": t["peak_gib"],
                                f"{key}_{row_key}_speedup": t["speedup"],
                                f"{key}_{row_key}_memory_ratio": t["memory_ratio"]})
        if "eval" in mine and "error" not in mine["eval"]:
            e = mine["eval"]
            ratio = e["batched_clips_per_s"] / e["per_utterance_clips_per_s"]
            print(f"evaluation, {e['clips']} clips, {bench.settings['max_new_tokens']} new tokens at most: "
                  f"per-utterance generate {e['per_utterance_clips_per_s']:.2f} clips/s, batched "
                  f"({e['eval_batch_size']}) {e['batched_clips_per_s']:.2f} clips/s = {ratio:.2f}x; same transcripts "
                  f"{e['same_transcripts']}/{e['clips']}")
            summary.update({f"{key}_eval_per_utterance_clips_s": round(e["per_utterance_clips_per_s"], 3),
                            f"{key}_eval_batched_clips_s": round(e["batched_clips_per_s"], 3),
                            f"{key}_eval_batched_speedup": round(ratio, 3)})
        elif "eval" in mine:
            print(f"evaluation: {mine['eval']['error']}")
    return summary, tables, references


def run(bench: Bench, args) -> None:
    """Measure every job of ``bench``, print the tables, write ``benchmark.json`` and the RESULT line; stop with
    exit code 1 when a job's process failed (after reporting the others)."""
    import platform

    import torch

    from arabicpeft.kaggle import output_root
    from arabicpeft.results import provenance
    from arabicpeft.run_dir import write_json_atomic

    out = Path(args.output_dir or output_root() / f"benchmark-{bench.mode}")
    out.mkdir(parents=True, exist_ok=True)
    jobs, skipped = plan_jobs(bench, args.batch_size)
    started = time.monotonic()
    bench.settings["in_process"] = args.in_process
    results = run_jobs(jobs, bench.settings, out, in_process=args.in_process)
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else (platform.processor() or platform.machine())
    isolation = "all rows in one process (peak memory not isolated)" if args.in_process else "fresh process per row"
    print(f"\n{bench.mode} benchmark on {device}: batch {args.batch_size}, {args.steps} timed steps after "
          f"{args.warmup_steps} warm-up, {isolation}, {time.monotonic() - started:.0f} s in all")
    summary, tables, references = report(bench, results)
    threads = sorted({r["threads"] for r in results.values() if "threads" in r})
    print(f"timings: {device}, {threads} torch thread(s); on a shared machine compare rows of one run only.")
    path = write_json_atomic(out / "benchmark.json", {
        "benchmark": bench.mode, "device": device, "settings": bench.settings, "models": list(bench.models),
        "references": references, "jobs": jobs, "skipped": skipped, "rows": results, "tables": tables,
        "summary": summary, "provenance": provenance()})
    print(f"results: {path}")
    result_line(summary)
    failed = [name for name, r in results.items() if r.get("failed")]
    if failed:
        raise SystemExit(f"{len(failed)} benchmark job(s) failed: {', '.join(failed)} (see above and {path})")


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="one job of a step benchmark's plan, in its own process")
    parser.add_argument("--row", required=True, help="the job (model/recipe)")
    parser.add_argument("--output-dir", required=True, help="where plan.json is and the job's record goes")
    args = parser.parse_args(argv)
    measure_job(args.row, Path(args.output_dir))


if __name__ == "__main__":
    _main()
