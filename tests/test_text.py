import pytest

from arabicpeft.text import SCHEMES, normalize


def lb(text):
    return normalize(text, "leaderboard")


def v1(text):
    return normalize(text, "ar_norm_v1")


# --- raw -------------------------------------------------------------------------------------------
def test_raw_only_collapses_whitespace():
    assert normalize("  السَّلامُ   عليكم،\tيا  أحمد  ", "raw") == "السَّلامُ عليكم، يا أحمد"


# --- leaderboard -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("قال: نعم! (حقا)", "قال نعم حقا"),  # ASCII punctuation deleted, not replaced by a space
        ("نعم، لا؛ لماذا؟", "نعم لا لماذا"),  # Arabic comma, semicolon, question mark deleted
        ("a,b", "ab"),
        ("السَّلامُ عَلَيْكُمْ", "السلام عليكم"),  # harakat U+064B-U+0652 deleted, word kept whole
        ("پاپا ڤيلا", "بابا فيلا"),
        ("آمن أحمد إلى", "امن احمد الى"),  # alef forms -> ا, ى kept
        ("مؤمن", "مومن"),
        ("رئيس", "رييس"),
        ("سماء", "سما"),  # ء deleted
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
        ("قال و ذهب", "قال وذهب"),  # standalone و joined to the next word
        ("و ذهب", "وذهب"),
        ("مدرسة ٱلولد ـ Hello", "مدرسة ٱلولد ـ Hello"),  # ة, ٱ, tatweel, Latin case kept
        ("ذٰلك", "ذٰلك"),  # U+0670 superscript alef kept (outside U+064B-U+0652)
        ("  كلمة   كلمة  ", "كلمة كلمة"),
    ],
)
def test_leaderboard_rules(text, expected):
    assert lb(text) == expected


def test_leaderboard_keeps_alef_maqsura_and_ta_marbuta():
    assert lb("مستشفى المدينة") == "مستشفى المدينة"


# --- ar_norm_v1 ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("ﻻ", "لا"),  # NFKC: presentation form -> base letters
        ("كتاب\u200f جديد\u200b", "كتاب جديد"),  # RLM / ZWSP deleted
        ("a\u061cb\ufeff", "ab"),  # ALM, BOM deleted
        ("\u202bنص\u202c \u2067نص\u2069", "نص نص"),  # bidi embeddings / isolates deleted
        ("كتـــاب", "كتاب"),  # tatweel deleted
        ("السَّلامُ عَلَيْكُمْ", "السلام عليكم"),  # harakat deleted
        ("ذٰلك", "ذلك"),  # U+0670 deleted
        ("صلى الله عليه وسلمؐ", "صلي الله عليه وسلم"),  # U+0610 honorific deleted; ى -> ي
        ("قۖال", "قال"),  # Quranic mark U+06D6 deleted
        ("أحمد إبراهيم آمن ٱلولد", "احمد ابراهيم امن الولد"),
        ("على", "علي"),
        ("مدرسة", "مدرسه"),
        ("مؤمن رئيس سماء", "مومن رييس سما"),
        ("٣ ۴", "3 4"),  # Arabic-Indic and Persian digits
        ("نعم،لا؟ (حقا)", "نعم لا حقا"),  # punctuation -> space
        ("a+b=c$", "a b c"),  # ASCII symbols -> space
        ("«مرحبا»", "مرحبا"),
        ("Hello WORLD", "hello world"),  # Latin lower-cased and kept
        ("  كتاب \n كتاب  ", "كتاب كتاب"),
    ],
)
def test_ar_norm_v1_rules(text, expected):
    assert v1(text) == expected


def test_ar_norm_v1_does_not_split_words_at_diacritics():
    # Whisper's BasicTextNormalizer gives "الس لام" here: the reason we do not use it.
    assert v1("السَّلامُ") == "السلام"


def test_schemes_and_errors():
    assert SCHEMES == ("raw", "leaderboard", "ar_norm_v1")
    assert normalize("") == ""
    with pytest.raises(ValueError, match="Unknown normalization scheme 'basic'.*raw, leaderboard, ar_norm_v1"):
        normalize("نص", "basic")
    with pytest.raises(TypeError):
        normalize(None)
