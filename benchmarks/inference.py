"""Transcription speed by backend: ``python benchmarks/inference.py [--model-path REF] [--max-clips N]
[--batch-size 16] [--threads N] [--window trained|full] [--device cpu|cuda] [--output-dir DIR]``.

Transcribes the same clips (the sample test sets) with transformers fp32 (batched greedy), CTranslate2 float32
and CTranslate2 int8 (the same batches, greedy) on the CPU, or with ``--device cuda`` transformers in the GPU's
half precision (autocast), CTranslate2 float16 and int8_float16 on the GPU, each in a fresh process so that peak RSS is its own
(:func:`arabicpeft.inference.compare_backends`, the table notebook 05 shows), and prints real-time factor,
clips/s, peak RSS, WER/CER and the ratio to transformers fp32, then the size on disk of each export and a
``RESULT key=value ...`` line; writes ``benchmark.json`` (plan, every row, summary, provenance). An adapter is
merged first (fp32, full 30 s window); its unmerged transcripts are scored too, so the merge's effect on WER is
measured. Every backend scores at the encoder window the model was trained with (``--window trained``, the
default: a model trained with ``encoder_seconds`` is cut to it, as its own evaluation did) or at the full 30 s
(``--window full``).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from _common import result_line


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default="whisper-base", help="any model reference (an adapter is merged "
                        "first; default whisper-base)")
    parser.add_argument("--output-dir", default="runs/benchmark-inference", help="where the exports and results "
                        "go (default runs/benchmark-inference)")
    parser.add_argument("--max-clips", type=int, help="at most this many clips per test set (default: all)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per batch, every backend (default 16)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch and CTranslate2 alike "
                        "(0: torch's default)")
    parser.add_argument("--window", choices=("trained", "full"), default="trained",
                        help="the encoder window every backend scores at: the one the model was trained with (its "
                        "run config's encoder_seconds; default) or Whisper's full 30 s")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu: transformers fp32 vs "
                        "CTranslate2 float32 and int8 (default); cuda: transformers half-precision autocast vs "
                        "CTranslate2 float16 and int8_float16 on the GPU")
    args = parser.parse_args(argv)
    from arabicpeft.inference import compare_backends
    from arabicpeft.results import provenance
    from arabicpeft.run_dir import write_json_atomic

    try:
        done = compare_backends(args.model_path, args.output_dir, args.max_clips, args.batch_size, args.threads,
                                args.window, args.device)
    except (RuntimeError, ValueError) as e:
        raise SystemExit(str(e)) from e
    hf = done.rows["hf"]
    print(f"inference benchmark: {args.model_path} on {hf['clips']} sample test clips ({hf['audio_s']:.1f} s of "
          f"audio), {hf['window_seconds']:g} s encoder window, batch {args.batch_size}, greedy, {hf['threads']} "
          f"thread(s), {_device_name(args.device)}")
    summary = _print_table(done.table)
    sizes = {("merged" if row == "hf" else row): mib for row, mib in done.disk_mib.items()
             if row.startswith("ct2") or (row == "hf" and done.plan["adapter"])}
    print("size on disk: " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in sizes.items()))
    print("WER/CER: raw (unnormalized) corpus rates pooled over the sample test sets, in %; RTF = transcription "
          "time / audio time (model loading excluded); encoder: its share of that time (one full batch timed alone, "
          "scaled to the clips); timings on a shared machine vary: compare rows of one run.")
    summary.update({f"{k.replace('-', '_')}_mib": round(v, 1) for k, v in sizes.items()})
    int8 = next(row for row in done.rows if row.startswith("ct2-int8")).replace("-", "_")
    summary[f"{int8}_wer_minus_hf"] = round(summary[f"{int8}_wer"] - summary["hf_wer"], 2)
    if done.plan["adapter"]:
        summary["merged_wer_minus_adapter"] = round(summary["hf_wer"] - summary["hf_adapter_wer"], 2)
    write_json_atomic(Path(args.output_dir) / "benchmark.json", {
        "plan": done.plan, "audio_seconds": hf["audio_s"], "rows": done.rows, "summary": summary,
        "provenance": provenance()})
    result_line(summary)


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def _print_table(table) -> dict:
    """Print one line per backend; returns their summary values (the RESULT line's)."""
    print(f"{'backend':<16} {'compute':<19} {'RTF':>7} {'clips/s':>8} {'peak RSS':>10} {'WER':>7} {'CER':>7} "
          f"{'speed x':>8} {'RSS x':>6} {'same text':>9} {'encoder':>8}")
    summary = {}
    for row, r in table.iterrows():
        print(f"{row:<16} {r['compute']:<19} {r['RTF']:7.3f} {r['clips/s']:8.2f} {r['peak RSS MiB']:8.0f} MiB "
              f"{r['WER']:7.2f} {r['CER']:7.2f} {r['speed x']:8.2f} {r['RSS x']:6.2f} {r['same text %']:8.0f}% "
              f"{r['encoder %']:7.0f}%")
        key = row.replace("-", "_")
        summary.update({f"{key}_rtf": round(r["RTF"], 4), f"{key}_speedup": round(r["speed x"], 3),
                        f"{key}_wer": round(r["WER"], 2), f"{key}_cer": round(r["CER"], 2),
                        f"{key}_peak_rss_mib": round(r["peak RSS MiB"]),
                        f"{key}_encoder_share": round(r["encoder %"] / 100, 3)})
    return summary


if __name__ == "__main__":
    main()
