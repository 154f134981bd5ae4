"""The feature cache's bytes, read speed and float16 WER effect: ``python benchmarks/cache.py
[--model-path whisper-base] [--max-clips N] [--batch-size 16] [--max-length 48] [--output-dir DIR]``.

Bytes per utterance of the sample test set's log-mel (30 s window, the otozz shape) as Arrow float32 (how otozz's
input_features decode), Parquet, the lossless cache and the float16 cache; a bitwise check of every record; warm
read throughput; WER of ``--model-path`` on the float32 vs the float16 cache. Writes ``benchmark.json`` and ends
with a ``RESULT key=value ...`` line.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from pathlib import Path

from _common import result_line


def sample_test_sets(model_ref: str, max_clips, feature_cache=None, dtype: str = "float32"):
    """The config of every sample test set read through ``feature_cache`` (None: the audio)."""
    from arabicpeft import dialects
    from arabicpeft.config import ExperimentConfig

    return ExperimentConfig(dialect="all", test_sets=list(dialects.VARIETIES), source="sample", model=model_ref,
                            max_test_samples=max_clips, feature_cache=feature_cache, feature_cache_dtype=dtype)


def read_rate(ds, passes: int = 3) -> float:
    """Utterances/s of reading every record of ``ds`` (numpy format) and rebuilding its 80 x 3000 input; best of
    ``passes`` (the files are in the page cache: a warm read)."""
    from arabicpeft.feature_cache import input_features

    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for record in ds:
            input_features(record)
        best = min(best, time.perf_counter() - started)
    return len(ds) / best


def reference_copies(args, out: Path, processor, collate) -> tuple[list, float, dict]:
    """The sample test set's (log-mel, labels) pairs as otozz stores them (Arrow float32, 80 lists of 3000) and
    as Parquet, written under ``out``: (pairs, seconds of audio, {storage: bytes})."""
    import datasets

    from arabicpeft.audio import SAMPLE_RATE, load_audio
    from arabicpeft.data import load_test_sets
    from arabicpeft.results import dir_bytes

    audio_sets, _, _ = load_test_sets(sample_test_sets(args.model_path, args.max_clips), processor.tokenizer,
                                      max_seconds=30)
    pairs = [collate.features_and_labels(r) for ds in audio_sets.values() for r in ds]
    seconds = sum(len(load_audio(r["audio"])) / SAMPLE_RATE for ds in audio_sets.values() for r in ds)
    arrow = datasets.Dataset.from_dict(
        {"input_features": [f for f, _ in pairs], "labels": [l for _, l in pairs]},
        features=datasets.Features({"input_features": datasets.List(datasets.List(datasets.Value("float32"))),
                                    "labels": datasets.List(datasets.Value("int64"))}))
    arrow.save_to_disk(out / "arrow-float32")
    arrow.to_parquet(str(out / "parquet" / "data.parquet"))
    return pairs, seconds, {"arrow-float32": dir_bytes(out / "arrow-float32"), "parquet": dir_bytes(out / "parquet")}


def measure(args, out: Path) -> dict:
    """Build both caches, check them against the reference, time reads and score through each."""
    import datasets
    import numpy as np

    from arabicpeft import feature_cache
    from arabicpeft import backbones
    from arabicpeft.caching import build_feature_cache
    from arabicpeft.data import load_test_sets
    from arabicpeft.evaluate import evaluate_sets
    from arabicpeft.feature_cache import input_features
    from arabicpeft.metrics import pooled_metrics
    from arabicpeft.model import load_model

    loaded = load_model(args.model_path, precision="fp32", full_window=True)  # the 30 s window: otozz's shape
    model, processor = loaded.model, loaded.processor
    model.generation_config.max_length = args.max_length
    collate = backbones.of(model).collator(processor, model, feature_device="cpu")
    pairs, seconds, sizes = reference_copies(args, out, processor, collate)
    n = len(pairs)
    build_s, tests = {}, {}
    for dtype in feature_cache.DTYPES:
        cfg = sample_test_sets(args.model_path, args.max_clips, str(out / f"cache-{dtype}"), dtype)
        started = time.monotonic()
        metas = build_feature_cache(cfg, processor, splits=("test",), log=lambda m: None).values()
        build_s[dtype] = time.monotonic() - started
        # every clip of the test sets is cached (max_clips bounds what is read back): bytes per cached clip x n
        sizes[f"cache-{dtype}"] = sum(m["bytes"] for m in metas) / sum(m["records"] for m in metas) * n
        tests[dtype], _, _ = load_test_sets(cfg, processor.tokenizer, max_seconds=30)
    cached = [r for ds in tests["float32"].values() for r in ds]
    half = [r for ds in tests["float16"].values() for r in ds]
    scores, hyps = {}, {}
    for dtype in feature_cache.DTYPES:
        _, rows = evaluate_sets(model, processor, tests[dtype], batch_size=args.batch_size)
        scores[dtype] = pooled_metrics(rows)["raw"]
        hyps[dtype] = rows[rows.scheme == "raw"]["hypothesis"].tolist()
    return {
        "n": n, "seconds": seconds, "sizes": sizes, "build_s": build_s, "scores": scores,
        "identical": sum(np.array_equal(input_features(r).view(np.uint32), f.view(np.uint32))
                         and r["labels"].tolist() == l for r, (f, l) in zip(cached, pairs)),
        "pad_is_max_minus_2": sum(np.float32(r["pad_value"]) == np.float32(f.max() - np.float32(2))
                                  for r, (f, _) in zip(cached, pairs)),
        "kept": np.mean([r["log_mel"].size / 80 for r in cached]),
        "max_err": max(float(np.abs(input_features(r) - f).max()) for r, (f, _) in zip(half, pairs)),
        "rates": {"arrow-float32": read_rate(datasets.load_from_disk(str(out / "arrow-float32")).with_format("numpy")),
                  **{f"cache-{d}": read_rate(datasets.concatenate_datasets(list(tests[d].values()))) for d in tests}},
        "same": sum(a == b for a, b in zip(hyps["float32"], hyps["float16"]))}


def report(args, m: dict) -> None:
    import torch

    n, sizes, rates, scores, seconds = m["n"], m["sizes"], m["rates"], m["scores"], m["seconds"]
    print(f"cache benchmark: {n} sample test clips ({seconds:.1f} s of audio, {m['kept']:.0f} of 3000 frames kept on "
          f"average), log-mel of {args.model_path}'s extractor at the 30 s window; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch thread(s), {time.strftime('%Y-%m-%d')}")
    print(f"{'storage':<16} {'bytes/utt':>10} {'vs Arrow f32':>12} {'read utt/s':>11} {'note'}")
    notes = {"arrow-float32": "as otozz input_features decode", "parquet": "datasets to_parquet (snappy), not memory-mappable",
             "cache-float32": f"lossless: {m['identical']}/{n} records bitwise identical",
             "cache-float16": f"max abs error {m['max_err']:.2g}"}
    for name, size in sizes.items():
        rate = f"{rates[name]:11.0f}" if name in rates else f"{'-':>11}"
        print(f"{name:<16} {size / n:10.0f} {sizes['arrow-float32'] / size:11.2f}x {rate} {notes[name]}")
    print(f"WER/CER (raw, %) of {args.model_path} greedy (max_length {args.max_length}), float32 cache: "
          f"{scores['float32']['wer']:.2f}/{scores['float32']['cer']:.2f}, float16 cache: "
          f"{scores['float16']['wer']:.2f}/{scores['float16']['cer']:.2f}; identical transcripts {m['same']}/{n}")
    print(f"padding value == max - 2 (bitwise) on {m['pad_is_max_minus_2']}/{n} clips (stored anyway: 4 bytes); "
          f"cache build {m['build_s']['float32']:.1f} s (float32), {m['build_s']['float16']:.1f} s (float16); "
          f"disk: {sizes['cache-float32'] / seconds / 1e3:.1f} kB (float32) and {sizes['cache-float16'] / seconds / 1e3:.1f} kB "
          "(float16) per second of audio. Timings under whatever load the machine has: compare rows of one run.")


def summarize(m: dict) -> dict:
    n, sizes, rates, scores = m["n"], m["sizes"], m["rates"], m["scores"]
    return {"clips": n, "audio_s": round(m["seconds"], 1), "kept_frames_mean": round(float(m["kept"]), 1),
            "arrow_f32_bytes_per_utt": round(sizes["arrow-float32"] / n),
            "cache_f32_bytes_per_utt": round(sizes["cache-float32"] / n),
            "cache_f16_bytes_per_utt": round(sizes["cache-float16"] / n),
            "ratio_lossless": round(sizes["arrow-float32"] / sizes["cache-float32"], 2),
            "ratio_float16": round(sizes["arrow-float32"] / sizes["cache-float16"], 2),
            "ratio_parquet": round(sizes["arrow-float32"] / sizes["parquet"], 2),
            "bitwise_identical": f"{m['identical']}/{n}",
            "read_speedup_lossless": round(rates["cache-float32"] / rates["arrow-float32"], 2),
            "read_speedup_float16": round(rates["cache-float16"] / rates["arrow-float32"], 2),
            "wer_float32": round(scores["float32"]["wer"], 2), "wer_float16": round(scores["float16"]["wer"], 2),
            "wer_float16_minus_float32": round(scores["float16"]["wer"] - scores["float32"]["wer"], 2),
            "same_transcripts": f"{m['same']}/{n}"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default="whisper-base", help="the model scored (default whisper-base)")
    parser.add_argument("--output-dir", default="runs/benchmark-cache", help="where the copies, caches and "
                        "benchmark.json go (replaced)")
    parser.add_argument("--max-clips", type=int, help="at most this many clips per test set (default: all)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per batch of the WER check (default 16)")
    parser.add_argument("--max-length", type=int, default=48, help="generation max_length of the WER check "
                        "(default: the demo's 48)")
    args = parser.parse_args(argv)
    from arabicpeft.results import provenance
    from arabicpeft.run_dir import write_json_atomic

    out = Path(args.output_dir)
    shutil.rmtree(out, ignore_errors=True)
    m = measure(args, out)
    report(args, m)
    summary = summarize(m)
    write_json_atomic(out / "benchmark.json", {"summary": summary, "sizes": m["sizes"], "read_utt_per_s": m["rates"],
                                               "scores": m["scores"], "provenance": provenance()})
    result_line(summary)


if __name__ == "__main__":
    main()
