"""A study preset, timed: ``python benchmarks/study.py [--preset offline-mini|peft-methods-mini] [--output-dir DIR]``.

Runs ``python -m arabicpeft study --preset PRESET`` once in a fresh process and prints its wall time against the
offline mini-studies' 45-minute target on 2 CPU cores, the manifest's counts, what each run took, the peak memory of
one run, the efficiency table per variant (trainable parameters, seconds per step, peak memory, weights on disk:
means over seeds) and the manifest's path (``study.json``: the study's own record).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import check, run_python

TARGET_S = 45 * 60.0  # the offline mini-study's target on 2 CPU cores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline-mini", help="the study preset timed (default offline-mini)")
    parser.add_argument("--output-dir", help="the study's root (default runs/benchmark-PRESET)")
    args = parser.parse_args(argv)
    output_dir = args.output_dir or f"runs/benchmark-{args.preset}"
    from arabicpeft.results import load_runs

    started = time.monotonic()
    proc = run_python(["-m", "arabicpeft", "study", "--preset", args.preset, "--output-dir", output_dir])
    wall = time.monotonic() - started
    check(proc, "study")
    manifest = json.loads((Path(output_dir) / "study.json").read_text(encoding="utf-8"))
    runs = load_runs(output_dir).runs
    print(f"study {args.preset} wall time {wall:7.1f} s  = {wall / TARGET_S:.2f} x the {TARGET_S:.0f} s target")
    print(f"  runs: {manifest['counts']}")
    for row in runs.sort_values("path").itertuples():
        took = row.run_wall_time_s if row.run_wall_time_s == row.run_wall_time_s else float("nan")
        print(f"  {Path(row.path).parent.relative_to(Path(output_dir).resolve())!s:<32} {row.kind:<10} {took:7.1f} s")
    print(f"  peak memory of one run: {runs['peak_memory_bytes'].max() / 2**30:.2f} GiB "
          f"({', '.join(sorted(set(map(str, runs['peak_memory_kind']))))})")
    from arabicpeft.tables import efficiency_summary

    columns = ["variant", "k", "trainable_parameters", "train_s_per_step", "peak_memory_mib", "weights_mib"]
    print(efficiency_summary(runs)[columns].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"manifest: {Path(output_dir).resolve() / 'study.json'}")


if __name__ == "__main__":
    main()
