"""Benchmarks: ``python -m arabicpeft.benchmark [demo] [--output-dir DIR]``,
``python -m arabicpeft.benchmark inference [--model-path REF] [--max-clips N]`` and
``python -m arabicpeft.benchmark --study offline-mini [--output-dir DIR]`` (the offline mini-study: its wall time
and what each run took).

``demo`` (the default) runs the demo (whisper-base + LoRA on the synthetic sample set) once, end to end in a fresh process, and
prints its wall time against the 10-minute budget, the time per phase, and WER/CER before vs after training
on the held-out sample test set. Timings on shared 2-core machines vary by tens of percent between runs:
repeat it before comparing.

``inference`` transcribes the same clips (the sample test set) with transformers fp32 (batched greedy),
CTranslate2 float32 and CTranslate2 int8 (the same batches, greedy), each in a fresh process so that peak RSS
is its own, and prints real-time factor, clips/s, peak RSS, WER/CER and the ratio to transformers fp32, then
the size on disk of each export and a ``RESULT key=value ...`` line. An adapter is merged first (fp32, full
30 s window); its unmerged transcripts are scored too, so the merge's effect on WER is measured. Every backend
scores at the encoder window the model was trained with (``--window trained``, the default: a model trained with
``encoder_seconds`` is cut to it, as its own evaluation did) or at the full 30 s (``--window full``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .comparison import ALL_TEST_SETS, scores_table
from .text import DEFAULT_NORMALIZER

BUDGET_S = 600.0
STUDY_BUDGET_S = 45 * 60.0  # the offline mini-study's target on 2 CPU cores


def study_benchmark(preset: str, output_dir: str) -> None:
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
    print(f"study {preset} wall time {wall:7.1f} s  = {wall / STUDY_BUDGET_S:.2f} x the {STUDY_BUDGET_S:.0f} s target")
    print(f"  runs: {manifest['counts']}")
    for row in runs.sort_values("path").itertuples():
        took = row.run_wall_time_s if row.run_wall_time_s == row.run_wall_time_s else float("nan")
        print(f"  {Path(row.path).parent.relative_to(Path(output_dir).resolve())!s:<32} {row.kind:<10} {took:7.1f} s")
    print(f"  peak memory of one run: {runs['peak_memory_bytes'].max() / 2**30:.2f} GiB "
          f"({', '.join(sorted(set(map(str, runs['peak_memory_kind']))))})")
    print(f"manifest: {Path(output_dir).resolve() / 'study.json'}")


INFERENCE_ROWS = ("hf-adapter", "hf", "ct2-float32", "ct2-int8")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("demo", "inference", "_worker"), default="demo",
                        help="demo: the main job end to end (default); inference: transcription speed by backend")
    parser.add_argument("--output-dir", help="where results go (default runs/benchmark-demo or "
                        "runs/benchmark-inference)")
    parser.add_argument("--model-path", default="whisper-base", help="inference: any model reference "
                        "(an adapter is merged first)")
    parser.add_argument("--max-clips", type=int, help="inference: at most this many clips per test set")
    parser.add_argument("--batch-size", type=int, default=16, help="inference: clips per batch, every backend")
    parser.add_argument("--threads", type=int, default=0, help="inference: CPU threads for torch and CTranslate2 "
                        "alike (0: torch's default)")
    parser.add_argument("--window", choices=("trained", "full"), default="trained",
                        help="inference: the encoder window every backend scores at: the one the model was trained "
                        "with (its run config's encoder_seconds; default) or Whisper's full 30 s")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # _worker: which row to measure
    parser.add_argument("--study", help="benchmark a study preset instead (offline-mini)")
    args = parser.parse_args(argv)
    if args.study:
        return study_benchmark(args.study, args.output_dir or f"runs/benchmark-{args.study}")
    if args.mode == "inference":
        return inference(args)
    if args.mode == "_worker":
        return _inference_worker(args)
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

    print(f"demo wall time        {wall:7.1f} s  = {wall / BUDGET_S:.2f} x the {BUDGET_S:.0f} s budget")
    print(f"  training            {eff['train_wall_time_s']:7.1f} s  ({training['global_step']} steps, "
          f"{eff['train_samples_per_second']:.2f} samples/s, includes validation)")
    print(f"  everything else     {wall - eff['train_wall_time_s']:7.1f} s  (imports, model, data, 2 test evaluations)")
    print(f"  peak memory         {eff['peak_memory']['bytes'] / 2**30:7.2f} GiB ({eff['peak_memory']['kind']})")
    print(f"  trainable params    {eff['trainable_parameters']:,} of {eff['total_parameters']:,}")
    print("held-out synthetic test set (pooled over its test sets):  before -> after")
    table = scores_table(result)
    for scheme in ("raw", DEFAULT_NORMALIZER):
        row = table.loc[(ALL_TEST_SETS, scheme)]
        for rate in ("WER", "CER"):
            print(f"  {rate} {scheme:<11} {row[f'{rate} before (%)']:6.2f} -> {row[f'{rate} after (%)']:6.2f}")
    print(f"results: {path}")


def _inference_worker(args) -> None:
    """One row of the inference benchmark, in its own process: writes {row}.json into the output dir."""
    import soundfile as sf
    import torch

    from .config import ExperimentConfig
    from .data import load_test_sets
    from .evaluate import evaluate_sets, pooled_metrics
    from .results import peak_memory, reset_peak_memory, write_json_atomic

    out = Path(args.output_dir)
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    reset_peak_memory()
    started = time.monotonic()
    window = plan["window_seconds"]
    if args.row.startswith("ct2"):
        from .export import describe_ct2, load_ct2
        from .model import cut_features

        model, processor = load_ct2(plan["exports"][args.row], cpu_threads=threads)
        record = describe_ct2(model)
        if window:
            cut_features(processor, window)  # CTranslate2's encoder takes the shorter features as they are
    else:
        from .model import cut_encoder, load_model

        loaded = load_model(plan["adapter"] if args.row == "hf-adapter" else plan["hf_model"], precision="fp32",
                            full_window=True)
        model, processor = loaded.model, loaded.processor
        if window:
            cut_encoder(model.get_base_model() if hasattr(model, "get_base_model") else model, processor, window)
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
        "encoder_s_per_batch": encoder_s, "clips": len(raw), "peak_memory": peak_memory(), "metrics_pooled": pooled,
        "hypotheses": raw["hypothesis"].tolist()})


def _encoder_seconds(model, processor, dataset, batch_size: int) -> float:
    """Seconds the encoder alone takes for one full batch (``batch_size`` clips, the dataset's first clip
    repeated), the mean of 2 timed passes after a warm-up: how much of transcription the encoder is."""
    import numpy as np
    import torch

    from .data import SpeechCollator

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


def inference(args) -> None:
    import platform

    from . import dialects
    from .export import export_ct2, merge
    from .config import ExperimentConfig
    from .results import MIB, dir_bytes, provenance, write_json_atomic

    out = Path(args.output_dir or "runs/benchmark-inference")
    out.mkdir(parents=True, exist_ok=True)
    reference = args.model_path
    adapter = None
    path = Path(reference)
    if path.is_dir() and ((path / "adapter_config.json").is_file() or (path / "model" / "adapter_config.json").is_file()):
        adapter = str(path if (path / "adapter_config.json").is_file() else path / "model")
        hf_model = str(merge(adapter, out / "merged", dtype="fp32"))
    else:
        hf_model = reference
    cfg = ExperimentConfig.saved_with(adapter or hf_model)
    window = cfg.encoder_seconds if cfg and args.window == "trained" else None
    exports = {f"ct2-{q}": str(export_ct2(hf_model, out / f"ct2-{q}", quantization=q, force=True))
               for q in ("float32", "int8")}
    rows = [r for r in INFERENCE_ROWS if r != "hf-adapter" or adapter]
    plan = {"model": reference, "adapter": adapter, "hf_model": hf_model, "exports": exports,
            "test_sets": list(dialects.VARIETIES), "max_length": (cfg or ExperimentConfig()).generation_max_length,
            "window_seconds": window}
    write_json_atomic(out / "plan.json", plan)
    results = {}
    for row in rows:  # a fresh process per row: its own peak RSS, no thread pools left over from another backend
        cmd = [sys.executable, "-m", "arabicpeft.benchmark", "_worker", "--row", row, "--output-dir", str(out),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        if args.max_clips:
            cmd += ["--max-clips", str(args.max_clips)]
        # the package's own folder on the path: a notebook may have imported it from a folder added at run time
        path = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path})
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"inference benchmark row {row} failed with exit code {proc.returncode}")
        results[row] = json.loads((out / f"{row}.json").read_text(encoding="utf-8"))

    hf = results["hf"]
    audio_s = hf["audio_s"]
    print(f"inference benchmark: {reference} on {hf['clips']} sample test clips ({audio_s:.1f} s of audio), "
          f"{hf['window_seconds']:g} s encoder window, batch {args.batch_size}, greedy, {hf['threads']} thread(s), {platform.processor() or platform.machine()}")
    print(f"{'backend':<12} {'compute':<14} {'RTF':>7} {'clips/s':>8} {'peak RSS':>10} {'WER':>7} {'CER':>7} "
          f"{'speed x':>8} {'RSS x':>6} {'same text':>9} {'encoder':>8}")
    summary = {}
    for row, r in results.items():
        raw = r["metrics_pooled"]["raw"]
        rtf, speed = r["transcribe_s"] / audio_s, hf["transcribe_s"] / r["transcribe_s"]
        same = sum(a == b for a, b in zip(r["hypotheses"], hf["hypotheses"])) / len(hf["hypotheses"])
        rss = r["peak_memory"]["bytes"] / MIB
        # the encoder's share of transcription time: one full batch timed alone, times the batches run
        encoder = r["encoder_s_per_batch"] * r["clips"] / args.batch_size / r["transcribe_s"]
        print(f"{row:<12} {r['compute_type']:<14} {rtf:7.3f} {r['clips'] / r['transcribe_s']:8.2f} {rss:8.0f} MiB "
              f"{raw['wer']:7.2f} {raw['cer']:7.2f} {speed:8.2f} {rss / (hf['peak_memory']['bytes'] / MIB):6.2f} "
              f"{100 * same:8.0f}% {100 * encoder:7.0f}%")
        key = row.replace("-", "_")
        summary.update({f"{key}_rtf": round(rtf, 4), f"{key}_speedup": round(speed, 3), f"{key}_wer": round(raw["wer"], 2),
                        f"{key}_cer": round(raw["cer"], 2), f"{key}_peak_rss_mib": round(rss),
                        f"{key}_encoder_share": round(encoder, 3)})
    sizes = {name: dir_bytes(p) / MIB for name, p in {"merged": out / "merged", **exports}.items() if Path(p).is_dir()}
    print("size on disk: " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in sizes.items()))
    print("WER/CER: raw (unnormalized) corpus rates pooled over the sample test sets, in %; RTF = transcription "
          "time / audio time (model loading excluded); encoder: its share of that time (one full batch timed alone, "
          "scaled to the clips); timings on a shared machine vary: compare rows of one run.")
    summary.update({f"{k.replace('-', '_')}_mib": round(v, 1) for k, v in sizes.items()})
    summary["ct2_int8_wer_minus_hf"] = round(summary["ct2_int8_wer"] - summary["hf_wer"], 2)
    if adapter:
        summary["merged_wer_minus_adapter"] = round(summary["hf_wer"] - summary["hf_adapter_wer"], 2)
    write_json_atomic(out / "benchmark.json", {"plan": plan, "audio_seconds": audio_s, "rows": results,
                                               "summary": summary, "provenance": provenance()})
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
