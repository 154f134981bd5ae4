"""Evaluation decoding paths, side by side: ``python benchmarks/eval.py [--model-path whisper-base]
[--max-clips 4] [--batch-size 16] [--threads N] [--sweep-threads 1,2] [--sweep-batch-sizes 4,16]
[--output-dir DIR]``.

Decodes the same clips (``--max-clips`` per sample test set, default 4: 24 clips) with whisper-base, side by side
in one process: a per-utterance ``generate`` loop, the batched path without bounds (dataset order, every
utterance to the generation budget, transformers' suppression processors: "today's batched path"), the
per-utterance limit with batches by duration, and the new path (that plus the precomputed suppression mask,
:mod:`arabicpeft.evaluate`'s default); then the new path at each ``--sweep-threads`` x ``--sweep-batch-sizes``,
the suppression processors alone per decoding step, and :func:`arabicpeft.transcribe.transcribe_files` of the
same clips with transformers' suppression processors vs the precomputed mask (its default). It prints clips/s,
real-time factor, hypotheses at their limit, transcripts identical to today's path and the speed ratio, writes
``benchmark.json`` and ends with a ``RESULT key=value ...`` line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

from _common import ints, result_line

CLIPS_PER_SET = 4  # 24 sample test clips, 3 of which whisper-base loops on (8 of all 72)
SUPPRESS_STEPS = 200  # calls timed per suppression processor


def paths(batch_size: int) -> dict:
    """The decoding paths compared: keyword arguments of :func:`arabicpeft.evaluate.transcribe`."""
    today = dict(tokens_per_second=None, by_duration=False, suppress="transformers")
    return {"per-utterance generate loop": dict(batch_size=1, **today),
            "today's batched path": dict(batch_size=batch_size, **today),
            "bounded + by duration": dict(batch_size=batch_size, suppress="transformers"),
            "new path (+ precomputed suppression)": dict(batch_size=batch_size)}


def suppression_step_us(model, batch_size: int) -> dict:
    """Microseconds per decoding step of transformers' two suppression processors vs :class:`SuppressTokens`
    on (batch_size, vocabulary) scores, each timed over SUPPRESS_STEPS calls."""
    import torch
    from transformers.generation.logits_process import (SuppressTokensAtBeginLogitsProcessor,
                                                        SuppressTokensLogitsProcessor)

    from arabicpeft.backbones import SuppressTokens

    gen = model.generation_config
    scores, ids = torch.randn(batch_size, model.config.vocab_size), torch.zeros(batch_size, 6, dtype=torch.long)
    ours = SuppressTokens(gen.suppress_tokens, gen.begin_suppress_tokens)
    ours.set_begin_index(4)
    stock = [SuppressTokensLogitsProcessor(gen.suppress_tokens),
             SuppressTokensAtBeginLogitsProcessor(gen.begin_suppress_tokens, begin_index=4)]
    out = {}
    for name, procs in (("transformers", stock), ("precomputed", [ours])):
        started = time.perf_counter()
        for _ in range(SUPPRESS_STEPS):
            for proc in procs:
                proc(ids, scores)
        out[name] = 1e6 * (time.perf_counter() - started) / SUPPRESS_STEPS
    return out


def transcribe_files_rows(loaded, audio: list, batch_size: int) -> dict:
    """:func:`arabicpeft.transcribe.transcribe_files` of ``audio`` with each suppression of
    :data:`arabicpeft.backbones.SUPPRESS_PROCESSORS`: {suppression: wall and CPU seconds, clips/s, segments at their
    limit, transcripts identical to the transformers processors' ("same_text"), transcripts}."""
    from arabicpeft.backbones import SUPPRESS_PROCESSORS
    from arabicpeft.transcribe import collect_audio, transcribe_files

    items = collect_audio(audio)
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


def measure(args) -> dict:
    """Every row, in this process: {"clips", "audio_s", "threads", "rows", "sweep", "suppression", "files",
    "load" (average before/after)}."""
    import datasets
    import soundfile as sf
    import torch

    from arabicpeft import dialects
    from arabicpeft.config import ExperimentConfig
    from arabicpeft.data import load_test_sets
    from arabicpeft.evaluate import transcribe
    from arabicpeft.metrics import score
    from arabicpeft.model import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load_before = os.getloadavg()
    loaded = load_model(args.model_path, precision="fp32")
    model, processor = loaded.model, loaded.processor
    spec = ExperimentConfig(dialect="all", test_sets=list(dialects.VARIETIES), source="sample",
                            max_test_samples=args.max_clips)
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

    rows = {name: {**kw, **timed(desc=name, **kw)} for name, kw in paths(args.batch_size).items()}
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
    return {"clips": clips, "audio_s": audio_s, "threads": threads, "rows": rows, "sweep": sweep,
            "suppression": suppression_step_us(model, args.batch_size),
            "files": transcribe_files_rows(loaded, list(clips["audio"]), args.batch_size),
            "load": {"before": load_before, "after": os.getloadavg()}}


def report(args, m: dict) -> None:
    """Print the table (marking each row's transcripts identical to today's path in ``same_text_as_today``)."""
    rows, n, load = m["rows"], len(m["clips"]), m["load"]
    today = rows["today's batched path"]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"eval benchmark: {args.model_path} on {n} sample test clips ({m['audio_s']:.1f} s of audio), greedy, "
          f"{m['threads']} thread(s) of {os.cpu_count()} cores, {platform.processor() or platform.machine()}, load "
          f"average {load['before'][0]:.1f} before / {load['after'][0]:.1f} after, {when}")
    print(f"{'path':<38} {'batch':>5} {'wall s':>7} {'clips/s':>8} {'RTF':>6} {'CPU s':>7} "
          f"{'at limit':>8} {'same text':>9} {'WER raw':>7} {'speed x':>7} {'CPU x':>6}")
    for name, r in list(rows.items()) + [(f"  new path, {r['threads']} thread(s)" + " (= above)" * bool(
            r.get("same_run_as_new_path")), r) for r in m["sweep"].values()]:
        same = sum(a == b for a, b in zip(r["hypotheses"], today["hypotheses"]))
        r["same_text_as_today"] = same
        print(f"{name:<38} {r['batch_size']:>5} {r['wall_s']:7.1f} {r['clips_per_s']:8.3f} {r['rtf']:6.3f} "
              f"{r['cpu_s']:7.1f} {r['at_limit']:>8} {same:>4}/{n:<4} {r['wer']:7.2f} "
              f"{today['wall_s'] / r['wall_s']:7.2f} {today['cpu_s'] / r['cpu_s']:6.2f}")
    suppression = m["suppression"]
    print(f"suppression per decoding step (batch {args.batch_size}): transformers {suppression['transformers']:.0f} us, "
          f"precomputed {suppression['precomputed']:.0f} us")
    for name, r in m["files"].items():
        print(f"transcribe_files, {name + ' suppression':<24} wall {r['wall_s']:6.1f} s, CPU {r['cpu_s']:6.1f} s, "
              f"{r['clips_per_s']:.3f} clips/s, {r['at_limit']} at limit, same text as transformers' "
              f"{r['same_text']}/{n}")
    print("wall s: elapsed seconds. speed x (CPU x): today's "
          "batched path's wall (process CPU) time / this row's; CPU time is not inflated by other processes' load, "
          "wall time is. at limit: hypotheses that reached their token limit "
          "(the generation budget on today's path) instead of ending; same text: hypotheses identical to today's "
          "path. Measured side by side in one process; timings on a shared machine vary: compare rows of one run.")


def summarize(args, m: dict) -> dict:
    """The RESULT line's values."""
    rows, files, suppression, n = m["rows"], m["files"], m["suppression"], len(m["clips"])
    today, new = rows["today's batched path"], rows["new path (+ precomputed suppression)"]
    loop, bounded = rows["per-utterance generate loop"], rows["bounded + by duration"]
    summary = {"clips": n, "threads": m["threads"], "batch_size": args.batch_size,
               "new_clips_per_s": round(new["clips_per_s"], 3), "today_clips_per_s": round(today["clips_per_s"], 3),
               "loop_clips_per_s": round(loop["clips_per_s"], 3),
               "new_vs_today": round(today["wall_s"] / new["wall_s"], 2),
               "new_vs_today_cpu": round(today["cpu_s"] / new["cpu_s"], 2),
               "new_vs_loop": round(loop["wall_s"] / new["wall_s"], 2),
               "new_vs_loop_cpu": round(loop["cpu_s"] / new["cpu_s"], 2),
               "suppression_vs_transformers": round(bounded["wall_s"] / new["wall_s"], 2),
               "suppression_vs_transformers_cpu": round(bounded["cpu_s"] / new["cpu_s"], 2),
               "same_text": f"{new['same_text_as_today']}/{n}", "at_limit_today": today["at_limit"],
               "at_limit_new": new["at_limit"],
               "suppress_step_us_transformers": round(suppression["transformers"]),
               "suppress_step_us_precomputed": round(suppression["precomputed"]),
               "transcribe_files_s_transformers": round(files["transformers"]["wall_s"], 1),
               "transcribe_files_s_precomputed": round(files["precomputed"]["wall_s"], 1),
               "transcribe_files_speedup": round(files["transformers"]["wall_s"] / files["precomputed"]["wall_s"], 2),
               "transcribe_files_speedup_cpu": round(files["transformers"]["cpu_s"] / files["precomputed"]["cpu_s"], 2),
               "transcribe_files_same_text": f"{files['precomputed']['same_text']}/{n}"}
    if m["sweep"]:
        best = min(m["sweep"].values(), key=lambda r: r["wall_s"])
        summary.update(best_threads=best["threads"], best_batch_size=best["batch_size"],
                       best_clips_per_s=round(best["clips_per_s"], 3))
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default="whisper-base", help="the model decoded (default whisper-base)")
    parser.add_argument("--output-dir", default="runs/benchmark-eval", help="where benchmark.json goes")
    parser.add_argument("--max-clips", type=int, default=CLIPS_PER_SET, help="clips per sample test set "
                        f"(default {CLIPS_PER_SET})")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per batch of the batched paths (default 16)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--sweep-threads", type=ints, default=[1, 2], help="thread counts to time the new path "
                        "with (comma-separated; empty: no sweep)")
    parser.add_argument("--sweep-batch-sizes", type=ints, default=[4, 16], help="batch sizes to time the new path "
                        "with at each of --sweep-threads")
    args = parser.parse_args(argv)
    from arabicpeft.evaluate import decoding_record
    from arabicpeft.results import provenance
    from arabicpeft.run_dir import write_json_atomic

    m = measure(args)
    report(args, m)
    summary = summarize(args, m)
    out = Path(args.output_dir)
    write_json_atomic(out / "benchmark.json", {
        "model": args.model_path, "clips": list(m["clips"]["id"]), "audio_seconds": m["audio_s"], "rows": m["rows"],
        "sweep": m["sweep"], "suppression_step_us": m["suppression"], "transcribe_files": m["files"],
        "decoding": decoding_record(), "load_average": m["load"], "summary": summary, "provenance": provenance()})
    print(f"results: {out.resolve() / 'benchmark.json'}")
    result_line(summary)


if __name__ == "__main__":
    main()
