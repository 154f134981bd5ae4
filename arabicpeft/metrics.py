"""Corpus-level WER and CER with per-utterance edit counts (jiwer does the alignment).

Corpus WER = sum of word edits / sum of reference words, never the mean of per-utterance rates.
No utterance is ever dropped: an empty hypothesis counts as deletions of every reference word, and an
empty reference (counted in ``empty_references``) contributes its hypothesis words as insertions to the
numerator and nothing to the denominator. CER counts spaces as characters, as jiwer does.

Public: :func:`utterance_errors`, :func:`pool`, :func:`score`, :func:`score_all`, :func:`pooled_metrics`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jiwer
import pandas as pd

from .text import SCHEMES, normalize

_PER_UTTERANCE_COLUMNS = ("reference", "hypothesis", "ref_words", "word_errors", "ref_chars", "char_errors")


def utterance_errors(references: Sequence[str], hypotheses: Sequence[str], scheme: str = "raw") -> pd.DataFrame:
    """Per-utterance edit counts after normalizing both sides with ``scheme``.

    Returns a DataFrame with one row per utterance (same order) and the columns
    :data:`_PER_UTTERANCE_COLUMNS` (the normalized texts and integer counts).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses: they must pair up.")
    rows = []
    for ref, hyp in zip(references, hypotheses):
        ref_n, hyp_n = normalize(ref, scheme), normalize(hyp, scheme)
        words = jiwer.process_words(ref_n, hyp_n)
        chars = jiwer.process_characters(ref_n, hyp_n)
        rows.append(
            (
                ref_n,
                hyp_n,
                len(ref_n.split()),
                words.substitutions + words.deletions + words.insertions,
                len(ref_n),
                chars.substitutions + chars.deletions + chars.insertions,
            )
        )
    return pd.DataFrame(rows, columns=list(_PER_UTTERANCE_COLUMNS))


def _summarize(per_utterance: pd.DataFrame) -> dict:
    """Corpus WER/CER (percent) and the counts behind them from :func:`utterance_errors` output."""
    ref_words = int(per_utterance["ref_words"].sum())
    ref_chars = int(per_utterance["ref_chars"].sum())
    word_errors = int(per_utterance["word_errors"].sum())
    char_errors = int(per_utterance["char_errors"].sum())
    return {
        # With no reference words at all a rate is undefined: NaN, never the bare insertion count.
        "wer": 100.0 * word_errors / ref_words if ref_words else float("nan"),
        "cer": 100.0 * char_errors / ref_chars if ref_chars else float("nan"),
        "n_utterances": int(len(per_utterance)),
        "ref_words": ref_words,
        "word_errors": word_errors,
        "ref_chars": ref_chars,
        "char_errors": char_errors,
        "empty_references": int((per_utterance["ref_words"] == 0).sum()),
        "empty_hypotheses": int((per_utterance["hypothesis"] == "").sum()),
    }


def pool(summaries) -> dict:
    """One corpus score over several test sets scored under the same scheme (each a :func:`_summarize` dict):
    Σ edits / Σ reference words (characters), as if the test sets were one corpus. Same keys as _summarize."""
    summaries = list(summaries)
    counts = {k: sum(s[k] for s in summaries) for k in
              ("n_utterances", "ref_words", "word_errors", "ref_chars", "char_errors", "empty_references",
               "empty_hypotheses")}
    return {"wer": 100.0 * counts["word_errors"] / counts["ref_words"] if counts["ref_words"] else float("nan"),
            "cer": 100.0 * counts["char_errors"] / counts["ref_chars"] if counts["ref_chars"] else float("nan"),
            **counts}


def score(references: Sequence[str], hypotheses: Sequence[str], scheme: str = "raw") -> dict:
    """Corpus WER and CER in percent under one normalization ``scheme``.

    Returns a dict with ``wer``, ``cer``, ``n_utterances``, ``ref_words``, ``word_errors``, ``ref_chars``,
    ``char_errors``, ``empty_references`` and ``empty_hypotheses``.
    """
    return _summarize(utterance_errors(references, hypotheses, scheme))


def score_all(references: list[str], hypotheses: list[str], ids: Optional[list] = None) -> tuple[dict, pd.DataFrame]:
    """Scores under every normalization scheme (:data:`arabicpeft.text.SCHEMES`): ({scheme: summary as
    :func:`score` gives it}, per-utterance rows of all schemes: ``utt_index``, ``utt_id`` (``ids``, else the
    index), ``scheme``, then :func:`utterance_errors`' columns). ValueError when the lists do not pair up."""
    metrics, frames = {}, []
    for scheme in SCHEMES:
        rows = utterance_errors(references, hypotheses, scheme)
        metrics[scheme] = _summarize(rows)
        rows.insert(0, "scheme", scheme)
        rows.insert(0, "utt_id", ids if ids is not None else range(len(rows)))
        rows.insert(0, "utt_index", range(len(rows)))
        frames.append(rows)
    return metrics, pd.concat(frames, ignore_index=True)


def pooled_metrics(rows: pd.DataFrame) -> dict:
    """Corpus WER/CER over every test set at once ({scheme: summary as :func:`score` gives it}) from the rows of
    :func:`score_all` (:func:`arabicpeft.evaluate.evaluate_sets` concatenates them over its test sets):
    Σ edits / Σ reference words over all utterances, never a mean of the per-set rates; {} for no rows."""
    if rows.empty:
        return {}
    return {scheme: _summarize(part) for scheme, part in rows.groupby("scheme", sort=False)}