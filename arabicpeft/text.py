"""Arabic text normalizers for scoring.

Four schemes, applied identically to references and hypotheses:

- ``raw``: the decoded text with whitespace collapsed and stripped. This is what Özyılmaz et al. (2025)
  report (unnormalized WER/CER).
- ``leaderboard``: the rules of the Open Universal Arabic ASR Leaderboard (``eval.py``, commit 8fce859), in
  their order. Nothing else changes: ى, ة, ٱ, tatweel, U+0670 and Latin case are kept.
- ``ar_norm_v2`` (the default): our stricter orthographic normalizer (see ``_ar_norm_v2``), for analyses where
  spelling variation (hamza seats, ta marbuta, alef maqsura, diacritics, Persian letter forms) should not count
  as a recognition error. It applies the leaderboard rules first, so two texts equal under ``leaderboard``
  are equal under ``ar_norm_v2``: it is stricter on every input.
- ``ar_norm_v1``: the first version, kept unchanged so that earlier results can be rescored identically. It
  lower-cases every cased letter (not only Latin), keeps ی and ک, and does not join a standalone و.

Whisper's ``BasicTextNormalizer`` is deliberately not used: it replaces every combining mark with a space
and so splits Arabic words at their diacritics (``السَّلامُ`` -> ``الس لام``).

Public: :data:`SCHEMES`, :data:`DEFAULT_NORMALIZER`, :func:`normalize`.
"""

from __future__ import annotations

import re
import string
import unicodedata

SCHEMES = ("raw", "leaderboard", "ar_norm_v1", "ar_norm_v2")
DEFAULT_NORMALIZER = "ar_norm_v2"  # the Arabic normalizer of new runs and analyses (raw stays the paper's headline)

_WHITESPACE = re.compile(r"\s+")

# --- leaderboard (pinned to 8fce859) -------------------------------------------------------------
_LB_PUNCTUATION = re.compile("[" + re.escape(string.punctuation) + "،؛؟]")
_LB_HARAKAT = re.compile("[\u064b-\u0652]")
_LB_MAP = str.maketrans({"پ": "ب", "ڤ": "ف", "آ": "ا", "أ": "ا", "إ": "ا", "ؤ": "و", "ئ": "ي", "ء": None})
_EASTERN_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789")
# A conjunction و written as its own word ("و قال") is joined to the word after it ("وقال").
_STANDALONE_WAW = re.compile(r"(^|\s)و\s+(?=\S)")

# --- ar_norm_v1 ------------------------------------------------------------------------------------
_FORMAT_CHARS = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]")
_TATWEEL = "\u0640"
_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_V1_MAP = str.maketrans(
    {"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي", "ء": None}
)
_PERSIAN_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _leaderboard(text: str) -> str:
    text = _LB_PUNCTUATION.sub("", text)  # deleted, not replaced by a space (as the leaderboard does)
    text = _LB_HARAKAT.sub("", text)
    text = text.translate(_LB_MAP)
    text = text.translate(_EASTERN_DIGITS)
    text = _STANDALONE_WAW.sub(r"\1و", text)
    return _collapse(text)


def _is_punctuation_or_symbol(char: str) -> bool:
    # Unicode punctuation (P*) plus ASCII symbols such as $ + < = > ^ ` | ~ (category S*).
    return unicodedata.category(char).startswith("P") or (char.isascii() and char in string.punctuation)


def _ar_norm_v1(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)  # presentation forms (ﻻ, ﷲ ...) -> base letters
    text = _FORMAT_CHARS.sub("", text)
    text = text.replace(_TATWEEL, "")
    text = _MARKS.sub("", text)
    text = text.translate(_V1_MAP)
    text = text.translate(_EASTERN_DIGITS).translate(_PERSIAN_DIGITS)
    text = "".join(" " if _is_punctuation_or_symbol(c) else c for c in text)
    return _collapse(text).lower()


# --- ar_norm_v2 ------------------------------------------------------------------------------------
_V2_MAP = str.maketrans({"ٱ": "ا", "ى": "ي", "ی": "ي", "ک": "ك", "ة": "ه"})  # after the leaderboard's own map


def _lower_latin(text: str) -> str:
    return "".join(c.lower() if unicodedata.name(c, "").startswith("LATIN") else c for c in text)


def _join_standalone_waw(text: str) -> str:
    while True:  # "و و قال" needs two passes: a match consumes the space the next one starts from
        joined = _STANDALONE_WAW.sub(r"\1و", text)
        if joined == text:
            return text
        text = joined


def _ar_norm_v2(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)  # presentation forms (ﻻ, ﷲ ...) -> base letters
    text = _leaderboard(text)  # first: whatever the leaderboard equates, v2 equates too
    text = unicodedata.normalize("NFKC", text)
    text = _FORMAT_CHARS.sub("", text)
    text = text.replace(_TATWEEL, "")
    text = _MARKS.sub("", text)
    text = text.translate(_V1_MAP).translate(_V2_MAP)
    text = text.translate(_EASTERN_DIGITS).translate(_PERSIAN_DIGITS)
    text = "".join(" " if _is_punctuation_or_symbol(c) else c for c in text)
    return _join_standalone_waw(_collapse(_lower_latin(text)))


_NORMALIZERS = {"raw": _collapse, "leaderboard": _leaderboard, "ar_norm_v1": _ar_norm_v1, "ar_norm_v2": _ar_norm_v2}


def normalize(text: str, scheme: str = DEFAULT_NORMALIZER) -> str:
    """Normalize one transcript with ``scheme`` (one of :data:`SCHEMES`)."""
    if scheme not in _NORMALIZERS:
        raise ValueError(f"Unknown normalization scheme {scheme!r}; choose one of {', '.join(SCHEMES)}.")
    if not isinstance(text, str):
        raise TypeError(f"normalize() expects a str, got {type(text).__name__}.")
    return _NORMALIZERS[scheme](text)
