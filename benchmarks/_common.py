"""What several benchmark scripts share: this checkout's arabicpeft on the path, a fresh Python process per
measured row, and the closing ``RESULT key=value ...`` line.

Imported first by every script (``python benchmarks/NAME.py`` puts benchmarks/ on the path, not the repository
root): the scripts measure the arabicpeft of the checkout they sit in, as ``python -m arabicpeft`` run from its
root does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))  # after the script's folder, before any installed copy


def run_python(args: list, row: bool = False) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process (its own imports, peak memory and thread pools), output captured, with
    this checkout first on PYTHONPATH. ``row``: one measured row of a side-by-side table, with tokenizers'
    thread pool off (as every row alike)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if row:
        env["TOKENIZERS_PARALLELISM"] = "false"
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env)


def ints(text: str) -> list[int]:
    """A comma-separated list of whole numbers (an argparse type); empty: none."""
    return [int(x) for x in text.split(",") if x.strip()]


def result_line(summary: dict) -> None:
    """The last line a benchmark prints: ``RESULT key=value ...`` (scripts and tests read it)."""
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()))


def check(proc: subprocess.CompletedProcess, what: str) -> None:
    """Stop with the end of ``proc``'s stderr when it failed."""
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{what} failed with exit code {proc.returncode}")
