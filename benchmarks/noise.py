"""WER against SNR: whisper-base zero-shot vs the demo's LoRA adapter on the sample test set under additive noise.

``python benchmarks/noise.py [--output-dir DIR] [--snrs 20,10,5,0] [--noises white,babble]``

Trains the demo first when ``DIR`` holds no demo adapter yet (``train.demo_model``: whisper-base + LoRA on the
synthetic sample set, ~10 minutes on 2 CPU cores), then scores both models through ``evaluate.run`` on the demo's
test sets (its five dialects, 12 held-out clips each) clean and under each noise at each SNR
(:mod:`arabicpeft.transforms`: the noise scaled to the SNR over each clip's active speech, seeded per clip), both at
the demo's 8 s encoder window and its generation budget (zero-shot whisper-base scored as the demo scores it
before training). Prints the
pooled WER/CER table per model and condition, writes ``benchmarks/results/noise-<date>.json`` (the table, the
evaluation results files' paths and provenance) and ends with a ``RESULT key=value ...`` line. WER values do not
depend on the machine's load; the seconds printed do.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from _common import BENCHMARKS, ints, result_line

MODELS = ("zero-shot", "demo")  # the demo's base model (whisper-base; the ci profile's tiny one), its adapter
_SCHEMES = ("raw", "leaderboard")


def conditions(snrs: list[int], noises: list[str]) -> list[str]:
    """The transform specs scored: clean, then each noise at each SNR (highest first)."""
    return ["clean"] + [f"noise-{noise}-{snr}dB" for noise in noises for snr in sorted(snrs, reverse=True)]


def pooled(result_path: Path, scheme: str) -> dict:
    """{condition: (WER %, CER %, utterances)} pooled over the test sets of each condition, from the per-utterance
    counts (Σ errors / Σ reference words), read through ``load_runs``."""
    from arabicpeft.results import load_runs
    from arabicpeft.transforms import split_name

    scores = load_runs(result_path.parent).scores(scheme)
    scores["condition"] = [(t.spec if t else "clean") for t in (split_name(s)[1] for s in scores["test_set"])]
    out = {}
    for condition, part in scores.groupby("condition", sort=False):
        out[condition] = (100 * part["word_errors"].sum() / part["ref_words"].sum(),
                          100 * part["char_errors"].sum() / part["ref_chars"].sum(), int(part["n_utterances"].sum()))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/benchmark-noise", help="a runs root: the demo (trained there "
                        "when missing) and the evaluations (default runs/benchmark-noise)")
    parser.add_argument("--snrs", type=ints, default=[20, 10, 5, 0], help="SNRs in dB (default 20,10,5,0)")
    parser.add_argument("--noises", default="white", help="comma-separated: white, pink, babble (default white)")
    parser.add_argument("--max-test-samples", type=int, default=None, help="clips per test set (default: all)")
    parser.add_argument("--results", default=None, help="the results file to write (default "
                        "benchmarks/results/noise-<date>.json)")
    args = parser.parse_args(argv)
    from arabicpeft import evaluate, profiles, train
    from arabicpeft.config import demo_config
    from arabicpeft.results import provenance
    from arabicpeft.sources import SAMPLE_ENCODER_SECONDS

    root, cfg = Path(args.output_dir), profiles.apply(demo_config())
    started = time.monotonic()
    demo = train.demo_model(root)
    trained_s = time.monotonic() - started
    specs = conditions(args.snrs, [n.strip() for n in args.noises.split(",") if n.strip()])
    table, files, seconds = {}, {}, {}
    for name in MODELS:
        begun = time.monotonic()
        path = evaluate.run(demo if name == "demo" else cfg.model, root / f"noise-{name}", dialect=cfg.dialect,
                            source="sample", max_test_samples=args.max_test_samples, window=SAMPLE_ENCODER_SECONDS,
                            # the demo's generation budget for both (a looping zero-shot decode is cut where the
                            # demo's own scoring before training cuts it)
                            generation_max_length=cfg.generation_max_length, transforms=specs, log=print)
        seconds[name] = round(time.monotonic() - begun, 1)
        files[name] = str(path)
        table[name] = {scheme: pooled(path, scheme) for scheme in _SCHEMES}
    report(table, specs, seconds, trained_s)
    out = Path(args.results or BENCHMARKS / "results" / f"noise-{dt.date.today().isoformat()}.json")
    out.write_text(json.dumps({"conditions": specs, "models": {"zero-shot": cfg.model, "demo": str(demo)},
                               "encoder_seconds": SAMPLE_ENCODER_SECONDS, "max_test_samples": args.max_test_samples,
                               "pooled": {m: {s: {c: dict(zip(("wer", "cer", "n_utterances"), v))
                                                  for c, v in by.items()} for s, by in t.items()}
                                          for m, t in table.items()},
                               "evaluation_results": files, "seconds": {"demo_training_or_found": round(trained_s, 1),
                                                                        **seconds},
                               "provenance": provenance()}, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"results: {out}")
    result_line({f"wer_{m}_{c}": round(table[m]["raw"][c][0], 2) for m in MODELS for c in specs})


def report(table: dict, specs: list[str], seconds: dict, trained_s: float) -> None:
    """Print WER / CER (%) pooled over the test sets, per condition (rows) and model (columns)."""
    print(f"\nWER / CER (%) pooled over the sample test sets; demo trained (or found) in {trained_s:.0f} s; scored in "
          + ", ".join(f"{m} {s:.0f} s" for m, s in seconds.items()) + " (shared machine)")
    for scheme in _SCHEMES:
        print(f"{scheme:<20}" + "".join(f"{m:>22}" for m in MODELS))
        for condition in specs:
            cells = [table[m][scheme].get(condition) for m in MODELS]
            print(f"  {condition:<18}" + "".join(f"{c[0]:>12.2f} / {c[1]:6.2f}" if c else f"{'-':>22}"
                                                 for c in cells))


if __name__ == "__main__":
    main()
