import math

import pytest

from arabicpeft.metrics import score, utterance_errors


def test_hand_computed_corpus_wer_and_cer():
    refs = ["ذهب الولد الى المدرسة", "انا بخير"]
    hyps = ["ذهب الولد المدرسة", "انا بخير جدا"]
    # utt 1: one deletion (4 words); utt 2: one insertion (2 words) -> corpus 2 / 6, not mean(1/4, 1/2)
    result = score(refs, hyps, scheme="raw")
    assert result["word_errors"] == 2 and result["ref_words"] == 6
    assert result["wer"] == pytest.approx(100 * 2 / 6)
    # characters (spaces count): utt 1 deletes "الى " (4 chars) of 21; utt 2 inserts " جدا" (4) on 8
    assert result["ref_chars"] == 21 + 8
    assert result["char_errors"] == 8
    assert result["cer"] == pytest.approx(100 * 8 / 29)
    assert result["n_utterances"] == 2


def test_substitution_counts_once():
    result = score(["كتب الولد"], ["كتب البنت"], scheme="raw")
    assert result["word_errors"] == 1 and result["wer"] == pytest.approx(50.0)


def test_empty_hypothesis_counts_as_deletions_and_is_kept():
    result = score(["واحد اثنان ثلاثة", "نعم"], ["", "نعم"], scheme="raw")
    assert result["n_utterances"] == 2
    assert result["empty_hypotheses"] == 1
    assert result["word_errors"] == 3 and result["ref_words"] == 4
    assert result["wer"] == pytest.approx(75.0)


def test_empty_reference_is_counted_and_adds_insertions():
    result = score(["", "نعم لا"], ["كلمة زائدة", "نعم لا"], scheme="raw")
    assert result["empty_references"] == 1
    assert result["word_errors"] == 2 and result["ref_words"] == 2
    assert result["wer"] == pytest.approx(100.0)


def test_all_references_empty_gives_nan_not_a_count():
    result = score(["", ""], ["كلمة", ""], scheme="raw")
    assert math.isnan(result["wer"]) and result["word_errors"] == 1


def test_normalization_is_applied_to_both_sides():
    refs, hyps = ["أحمد في المدرسة"], ["احمد في المدرسه"]
    assert score(refs, hyps, "raw")["word_errors"] == 2
    assert score(refs, hyps, "leaderboard")["word_errors"] == 1  # leaderboard keeps ة
    assert score(refs, hyps, "ar_norm_v1")["word_errors"] == 0


def test_per_utterance_rows_sum_to_corpus_counts():
    refs, hyps = ["a b c", "d e", ""], ["a c", "", "x"]
    rows = utterance_errors(refs, hyps, "raw")
    assert list(rows["word_errors"]) == [1, 2, 1]
    assert list(rows["ref_words"]) == [3, 2, 0]
    assert score(refs, hyps, "raw")["word_errors"] == rows["word_errors"].sum()


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        score(["a", "b"], ["a"])
