"""Benchmark of the main job: ``python -m arabicpeft.benchmark [--output-dir DIR]``.

Runs the demo (whisper-base + LoRA on the synthetic sample set) once, end to end in a fresh process, and
prints its wall time against the 10-minute budget, the time per phase, and WER/CER before vs after training
on the held-out sample test set. Timings on shared 2-core machines vary by tens of percent between runs:
repeat it before comparing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from .comparison import ALL_TEST_SETS, scores_table
from .text import DEFAULT_NORMALIZER

BUDGET_S = 600.0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/benchmark-demo")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    main()
