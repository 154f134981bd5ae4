"""Reading a manifest: a ``.jsonl`` / ``.json`` / ``.csv`` file listing audio files and their transcripts (``audio`` +
``text``, optional ``dialect``, ``synthetic``), in any encoding a spreadsheet or editor writes that is UTF-8, with
one-line errors naming the file, the line and the likely cause.

Public: :class:`ManifestError`, :func:`read_manifest` (also reached as ``arabicpeft.sources.read_manifest``).
"""

from __future__ import annotations

import codecs
import io
import json
from pathlib import Path
from typing import Optional


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file, the line and the likely cause."""


def _utf16_byte_order(raw: bytes) -> Optional[str]:
    """``little-endian`` or ``big-endian`` when ``raw`` looks like UTF-16 text (a UTF-16 byte-order mark, or NUL
    bytes, which UTF-8 text does not hold, in at least a tenth of its odd or even offsets: the high bytes of ASCII
    characters), else None."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "little-endian" if raw.startswith(codecs.BOM_UTF16_LE) else "big-endian"
    odd, even = raw[1::2].count(0), raw[0::2].count(0)
    if max(odd, even) < max(1, len(raw) // 20):  # not a stray NUL or two
        return None
    return "little-endian" if odd > even else "big-endian"


def read_manifest(path):
    """A manifest (``.jsonl``: one JSON object a line; ``.json``: a list of objects; ``.csv``) as a pandas frame.

    UTF-8 with or without a byte-order mark, Unix or Windows line endings. Raises :class:`ManifestError`
    naming the file, the line and the likely cause (UTF-16 text, with or without a byte-order mark, is named).
    """
    import pandas as pd

    path = Path(path)
    raw = path.read_bytes()
    utf16 = _utf16_byte_order(raw)
    if utf16:
        raise ManifestError(f"Could not read the manifest {path}: it is UTF-16 ({utf16}) text, not UTF-8. Save it as "
                            "UTF-8.")
    try:
        text = raw.decode("utf-8-sig")  # drops a byte-order mark (Excel and Notepad write one)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ManifestError(f"Could not read the manifest {path}, line {line}: it is not UTF-8 text ({e.reason} "
                            f"at byte {e.start}). Save it as UTF-8.") from e
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if path.suffix == ".csv":
        try:
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as e:
            detail = " ".join(str(e).split()).rstrip(".")  # pandas' message names the line
            raise ManifestError(f"Could not read the manifest {path}: {detail}. Likely cause: a field holding a comma, "
                                "a quote or a line break is not quoted; put such fields in double quotes.") from e
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"Could not read the manifest {path}, line {e.lineno}: not valid JSON ({e.msg}, "
                                f"column {e.colno}). A .json manifest is a list of objects; use .jsonl for one "
                                "object a line.") from e
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ManifestError(f"The manifest {path} must be a JSON list of objects like "
                                '[{"audio": "a.wav", "text": "..."}], got a ' + type(rows).__name__ + ".")
        return pd.DataFrame(rows)
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"Could not read the manifest {path}, line {number}: not valid JSON ({e.msg}, "
                                f"column {e.colno}). Each line must be one complete JSON object, e.g. "
                                '{"audio": "a.wav", "text": "..."}.') from e
        if not isinstance(row, dict):
            raise ManifestError(f"Could not read the manifest {path}, line {number}: a JSON "
                                f"{type(row).__name__}, not an object with 'audio' and 'text'.")
        rows.append(row)
    return pd.DataFrame(rows)
