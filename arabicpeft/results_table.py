"""Tables for publication: a clear error for a frame that lacks columns, and CSV + LaTeX output.

The frames come from the one results reader, :func:`arabicpeft.results.load_runs`.

Public: :func:`require_columns`, :func:`save_table`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def require_columns(df: pd.DataFrame, columns, what: str) -> None:
    """A clear error when ``df`` lacks ``columns`` or has no rows (``what``: the caller, for the message)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; got {list(df.columns)}.")
    if df.empty:
        raise ValueError(f"{what}: no rows.")


# Tables ----------------------------------------------------------------------------------------------------


def save_table(
    df: pd.DataFrame, path_stem, float_format: str = "%.2f", caption: str | None = None, label: str | None = None,
    index: bool = False,
) -> list[Path]:
    """Write ``df`` as ``{path_stem}.csv`` (full precision) and ``{path_stem}.tex`` (pandas ``to_latex``,
    numbers formatted with ``float_format``, booktabs rules); returns the two paths. NaN is written as "--"
    in LaTeX and as an empty field in the CSV."""
    paths = [Path(f"{path_stem}.csv"), Path(f"{path_stem}.tex")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(paths[0], index=index)
    formatter = (lambda v: float_format % v) if float_format else None
    latex = df.to_latex(index=index, float_format=formatter, na_rep="--", caption=caption, label=label,
                        escape=True)
    paths[1].write_text(latex, encoding="utf-8")
    return paths
