"""The main job, timed as a user runs it: ``python benchmarks/demo.py [--output-dir DIR]``.

Runs ``python -m arabicpeft demo`` (whisper-base + LoRA on the synthetic sample set) once, end to end in a fresh
process, and prints its wall time against the 10-minute budget, the time per phase (start-up and imports outside
``train.run``, then the phases ``train.run`` records in its results' ``efficiency.phase_seconds``), and WER/CER
before vs after training on the held-out sample test set, then a ``RESULT key=value ...`` line. Its results file
is the demo's own ``results.json``. Timings on shared 2-core machines vary by tens of percent between runs:
repeat it before comparing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import check, result_line, run_python

BUDGET_S = 600.0  # the demo's target: 10 minutes on 2 CPU cores
_PHASE_NOTES = {"setup": "  (config, output folder checks)", "model": "  (whisper-base from PyPI, LoRA added)",
                "data": "  (sample set, filters)", "saving": "  (adapter, model card)"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/benchmark-demo", help="where the demo writes (default "
                        "runs/benchmark-demo; a rerun there finds the run finished)")
    args = parser.parse_args(argv)
    from arabicpeft.comparison import ALL_TEST_SETS, scores_table
    from arabicpeft.text import DEFAULT_NORMALIZER

    started = time.monotonic()
    # A separate process, as a user runs it: imports, model resolution and everything else are timed.
    proc = run_python(["-m", "arabicpeft", "demo", "--output-dir", args.output_dir])
    wall = time.monotonic() - started
    check(proc, "demo")
    path = Path(proc.stdout.strip().splitlines()[-1])
    result = json.loads(path.read_text(encoding="utf-8"))
    eff, training = result["efficiency"], result["training"]

    print(f"demo wall time        {wall:7.1f} s  = {wall / BUDGET_S:.2f} x the {BUDGET_S:.0f} s budget")
    print(f"  start-up, imports   {wall - eff['run_wall_time_s']:7.1f} s  (outside train.run: interpreter, imports, "
          "results files)")
    for name, seconds in eff["phase_seconds"].items():
        note = (f"  ({training['global_step']} steps, {eff['train_samples_per_second']:.2f} samples/s, Trainer setup "
                "and validation included)") if name == "training" else _PHASE_NOTES.get(name, "")
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
    result_line({"wall_s": round(wall, 1), "budget_fraction": round(wall / BUDGET_S, 2),
                 "startup_s": round(wall - eff["run_wall_time_s"], 1),
                 **{f"{name}_s": round(seconds, 1) for name, seconds in eff["phase_seconds"].items()},
                 "wer_raw_before": round(raw["WER before (%)"], 2), "wer_raw_after": round(raw["WER after (%)"], 2)})


if __name__ == "__main__":
    main()
