"""Routing an adapter bank by the predicted dialect, measured: ``python benchmarks/routing.py [options]``.

Trains, through the study launcher (design ``adapter_bank``, LoRA only, one seed), one adapter per dialect and the
pooled adapter on the embedded synthetic sample set (default: whisper-base, the demo's settings), loads them as one
bank with the pooled adapter as the fallback, fits the bank's dialect identifier on the adapters' own training
data (``AdapterBank.train_router``) and scores the bank on the test sets (``AdapterBank.evaluate``): WER/CER per
test set routed by the data's label (oracle), by the predicted dialect, with the pooled adapter alone and with the
base, with the identifier's accuracy and confusion matrix. Prints the table and writes it, with what produced it,
to ``benchmarks/results/routing-<date>.json`` (``--results-file``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import time
from pathlib import Path

from _common import BENCHMARKS, result_line


def _bank_adapters(root: Path, seed: int) -> dict:
    """{dialect: adapter folder} of the study's finished LoRA runs of ``seed`` (the dialects and the pooled set)."""
    from arabicpeft.results import load_runs
    from arabicpeft.run_dir import MODEL_DIR

    runs = load_runs(root).runs
    runs = runs[(runs["kind"] == "training") & (runs["seed"] == seed) & (runs["method"] == "lora")]
    return {row.dialect: Path(row.path).parent / MODEL_DIR for row in runs.itertuples()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="whisper-base", help="the base model (default whisper-base)")
    parser.add_argument("--dialects", default="egyptian,gulf,iraqi,levantine,maghrebi",
                        help="the bank's dialects (default: the five)")
    parser.add_argument("--max-steps", type=int, default=60, help="training steps per adapter (default 60, the demo's)")
    parser.add_argument("--max-test-samples", type=int, default=12, help="test clips per dialect (default 12: all)")
    parser.add_argument("--max-per-dialect", type=int, default=200, help="router training clips per dialect at most")
    parser.add_argument("--threshold", type=float, default=None, help="route threshold (default: the package's)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", default="runs/benchmark-routing", help="the study's root")
    parser.add_argument("--results-file", help="default benchmarks/results/routing-<date>.json")
    args = parser.parse_args(argv)
    from arabicpeft import analysis, designs
    from arabicpeft.bank import AdapterBank
    from arabicpeft.config import demo_config
    from arabicpeft.results import load_runs, provenance
    from arabicpeft.routing import DEFAULT_THRESHOLD
    from arabicpeft.study import run_study

    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    dialects = [d.strip() for d in args.dialects.split(",") if d.strip()]
    base = dataclasses.replace(demo_config(), model=args.model, max_steps=args.max_steps,
                               max_test_samples=args.max_test_samples, test_sets=dialects, output_dir=args.output_dir)
    root = Path(args.output_dir)
    started = time.monotonic()
    run_study(designs.adapter_bank(base, dialects=dialects, seeds=[args.seed], variants=["lora"]), root=root,
              log=lambda m: None)
    trained_s = time.monotonic() - started
    bank = AdapterBank(_bank_adapters(root, args.seed))  # the dialect adapters and the pooled one (the fallback)
    t0 = time.monotonic()
    router = bank.train_router(max_per_dialect=args.max_per_dialect, out=root / "routed_bank")
    router_s = time.monotonic() - t0
    cfg = dataclasses.replace(base, seed=args.seed, eval_batch_size=base.eval_batch_size)
    t0 = time.monotonic()
    path = bank.evaluate(cfg, root / "routed_bank", threshold=threshold)
    evaluate_s = time.monotonic() - t0
    runs = load_runs(root).runs
    table = analysis.routing_table(runs[runs["path"] == str(Path(path).resolve())])
    routing = json.loads(Path(path).read_text(encoding="utf-8"))["evaluation"]["routing"]
    print(table.pivot_table(index="test_set", columns="routing", values=["wer", "cer"], sort=False).round(2)
          .to_string())
    ident = routing["identifier"]
    import pandas as pd

    routed = pd.read_csv(Path(path).parent / routing["routed_utterances_file"])
    sure = routed["confidence"] > threshold  # the threshold's effect: how often the sure and the unsure are right
    right = routed["predicted"] == routed["test_set"]
    by_confidence = {"above": {"n": int(sure.sum()), "accuracy": float(right[sure].mean()) if sure.any() else None},
                     "at_or_below": {"n": int((~sure).sum()),
                                     "accuracy": float(right[~sure].mean()) if (~sure).any() else None}}
    print(f"predicted dialect right: {by_confidence} (above / at or below the threshold)")
    print(f"identifier accuracy {100 * ident['accuracy']:.1f}% of {ident['n']} (chance {100 / len(ident['classes']):.0f}%),"
          f" to the fallback: {routing['to_fallback']}, threshold {threshold}")
    out = Path(args.results_file or BENCHMARKS / "results" / f"routing-{dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "routing", "command": "python benchmarks/routing.py " + " ".join(argv or []),
        "synthetic": True, "model": args.model, "dialects": dialects, "max_steps": args.max_steps,
        "threshold": threshold, "table": table.to_dict("records"), "identifier": ident,
        "to_fallback": routing["to_fallback"], "fallback": routing["fallback"], "by_confidence": by_confidence, "router": router.trained_on,
        "seconds": {"study": round(trained_s, 1), "router": round(router_s, 1), "evaluate": round(evaluate_s, 1)},
        "bank_results": str(path), "provenance": provenance()}, indent=1), encoding="utf-8")
    print(f"results: {out}")
    result_line({"identifier_accuracy": ident["accuracy"], "to_fallback": routing["to_fallback"],
                 "results": out})


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
