"""Regenerate the embedded SYNTHETIC Arabic speech sample set (arabicpeft/sample_data/).

    python tests/make_sample_set.py [--out DIR]

The clips are espeak-ng speech, not human recordings: they exist so that the demo
and the tests can run offline, end to end, in seconds. They are NOT a benchmark.
espeak-ng reads Arabic script with one (MSA-like) phonology, so the "dialect" of a
clip lives in its words only, not in its accent.

Output is deterministic (sentences, voices, ids, audio samples); only the Ogg
container bytes differ between runs because libvorbis picks a random stream serial.

A tool beside its test (tests/test_sample_gen.py), not package code: the package ships the set it made.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

_SAMPLE_RATE = 16000          # Whisper's input rate
_MIN_SECONDS, _MAX_SECONDS = 0.5, 7.0  # the demo crops Whisper's encoder window to 8 s
_PEAK = 0.9                   # normalise below full scale so Vorbis does not clip
_TRIM_TOP_DB = 40             # gentle: only strip real silence, never soft consonants
_TRIM_PAD_SECONDS = 0.1       # keep a little silence around the speech
# soundfile compression_level (0 = best, 1 = smallest). 0.9 keeps the set ~5.5 MB (each
# Ogg file also carries ~3.5 KB of Vorbis headers); whisper-base transcribed these
# clips no worse at 0.9 than the uncompressed audio.
_VORBIS_QUALITY = 0.9
_DEFAULT_OUT = Path(__file__).resolve().parents[1] / "arabicpeft" / "sample_data"

# (espeak-ng voice+variant, words per minute, pitch 0-99). Index + 1 = the "vN" in ids.
_VOICES = [
    ("ar", 150, 50),
    ("ar+m3", 140, 40),
    ("ar+f3", 160, 60),
    ("ar+m1", 130, 45),
    ("ar+f4", 145, 70),
]
# v5 is held out of train on purpose: the test split measures an unseen speaker.
_SPLIT_VOICES = {"train": [1, 2, 3, 4], "test": [1, 5]}
_SPLIT_TAGS = {"train": "tr", "test": "te"}

_DIALECTS = ["egyptian", "gulf", "iraqi", "levantine", "maghrebi", "msa"]

# Everyday colloquial sentences, written for this set. No test sentence occurs in train.
_SENTENCES = {
    "egyptian": {
        "train": [
            "ازيك يا صاحبي عامل ايه النهارده",
            "انا عايز اروح البيت دلوقتي",
            "الجو حر قوي النهارده",
            "فين المفتاح بتاعي يا ماما",
            "هنتغدى بره ولا في البيت",
            "مش فاهم انت بتقول ايه",
            "خلاص هستناك قدام المحطة",
            "الاكل ده حلو اوي",
            "ممكن تديني كوباية شاي",
            "انا تعبان شوية ومش هنزل الشغل",
            "العربية عطلت في نص الطريق",
            "متتأخرش علينا النهارده",
            "هو ساكن جنبنا من زمان",
            "يلا بينا نتمشى على الكورنيش",
            "الفلوس خلصت قبل آخر الشهر",
        ],
        "test": [
            "عايز اشتري هدوم جديدة للعيد",
            "ازيك عامل ايه في الشغل الجديد",
            "الواد ده شاطر قوي في المدرسة",
            "دلوقتي الدنيا زحمة في وسط البلد",
            "مفيش حد في البيت خالص",
            "هنسافر اسكندرية الاسبوع الجاي",
        ],
    },
    "gulf": {
        "train": [
            "شلونك يا خوي عساك طيب",
            "ابي اروح السوق باجر",
            "الجو وايد حار اليوم",
            "وين حطيت مفتاح السيارة",
            "شقاعد تسوي الحين",
            "ما ادري شنو صار امس",
            "خلنا نتقهوى في المجلس",
            "هذا الشي وايد غالي",
            "تعال عندنا بعد العصر",
            "البيت مالنا قريب من البحر",
            "ابغي ماي بارد لو سمحت",
            "يا ريال لا تزعل مني",
            "الحين بروح الدوام",
            "عندي شغل وايد هالاسبوع",
            "ليش ما رديت على التلفون",
        ],
        "test": [
            "شلون الاهل عساهم بخير",
            "ابي اشرب شاي بالحليب",
            "الزحمة وايد اليوم في الشارع",
            "وين رحت البارحة بالليل",
            "لا تنسى تجيب الاغراض معاك",
            "سوينا عشا حق الربع",
        ],
    },
    "iraqi": {
        "train": [
            "شلونك عيني شكو ماكو",
            "اريد اروح للسوق هسه",
            "الجو كلش حار اليوم",
            "اكو هواية ناس بالشارع",
            "شنو تريد تاكل على الغدا",
            "ماكو كهربا من الصبح",
            "وين جنت البارحة بالليل",
            "اكو واحد يريد يشوفك",
            "خلي نروح نتمشى عالشط",
            "هذا الشي هواية غالي",
            "ما اعرف شكو صاير",
            "تعال اشرب جاي ويانه",
            "اني تعبان كلش اليوم",
            "البيت مالتنا بعيد شوية",
            "سولف ويايه شوية",
        ],
        "test": [
            "شكو عندك اليوم",
            "اريد اشتري قاط جديد",
            "هواية احب الدولمة",
            "هسه اجي يمك",
            "ليش زعلان مني حبيبي",
            "الجو هواية حلو بالربيع",
        ],
    },
    "levantine": {
        "train": [
            "كيفك شو اخبارك",
            "بدي روح عالبيت هلق",
            "الطقس كتير حلو اليوم",
            "شو عم تعمل هون",
            "ما بعرف وين حطيت الموبايل",
            "تعا نشرب قهوة سوا",
            "هيدا الشي كتير غالي",
            "بدنا نروح عالبحر بكرا",
            "ليش ما اجيت مبارح",
            "انا كتير تعبان اليوم",
            "خلينا نحكي بعدين",
            "في زحمة كتير عالطريق",
            "شو بدك تاكل عالغدا",
            "يلا منروح سوا",
            "اهلي ساكنين بالضيعة",
        ],
        "test": [
            "شو صار معك امبارح",
            "بدي اشتري قميص جديد",
            "كتير مبسوط اني شفتك",
            "هلق رح اطلع من الشغل",
            "وين رايحين هالمسا",
            "الاكل عند ستي كتير طيب",
        ],
    },
    "maghrebi": {
        "train": [
            "واش نتا بخير",
            "بغيت نمشي للدار دابا",
            "الجو سخون بزاف اليوم",
            "فين حطيتي الساروت",
            "اش كاتدير هنا",
            "ما عرفتش اش وقع",
            "اجي نشربو اتاي",
            "هاد الشي غالي بزاف",
            "غدا غادي نمشي للسوق",
            "انا عيان بزاف اليوم",
            "كاين بزاف ديال الناس",
            "شحال هادي ما شفتك",
            "بغيت ناكل الكسكس",
            "خويا خدام فالمدينة",
            "سير جيب الخبز من الحانوت",
        ],
        "test": [
            "واش كاين شي جديد",
            "بغيت نشري حوايج جداد",
            "الماكلة بنينة بزاف",
            "دابا غادي نرجع للخدمة",
            "فين كنتي البارح",
            "الطوموبيل خاسرة من البارح",
        ],
    },
    "msa": {
        "train": [
            "كيف حالك اليوم يا صديقي",
            "أريد أن أذهب إلى المكتبة الآن",
            "الطقس حار جدا هذا الصباح",
            "أين وضعت المفاتيح",
            "ماذا تفعل في عطلة نهاية الأسبوع",
            "لا أعرف ماذا حدث أمس",
            "هل تريد أن تشرب القهوة",
            "هذا الكتاب مفيد جدا",
            "سنسافر إلى المدينة غدا",
            "أنا متعب قليلا اليوم",
            "يوجد كثير من الناس في السوق",
            "لماذا لم تتصل بي",
            "يدرس أخي في الجامعة",
            "من فضلك أغلق النافذة",
            "البيت قريب من البحر",
        ],
        "test": [
            "ما أخبار العمل الجديد",
            "أريد أن أشتري قميصا جديدا",
            "الطعام لذيذ في هذا المطعم",
            "سأعود إلى المنزل بعد قليل",
            "أين كنت مساء أمس",
            "الحديقة جميلة في فصل الربيع",
        ],
    },
}


def voice_string(v: int) -> str:
    """Human-readable voice spec as stored in the manifest, e.g. 'ar+m3 -s 140 -p 40'."""
    name, speed, pitch = _VOICES[v - 1]
    return f"{name} -s {speed} -p {pitch}"


def build_items() -> dict[str, list[dict]]:
    """All manifest rows per split, in a fixed order. Needs no espeak-ng."""
    items: dict[str, list[dict]] = {"train": [], "test": []}
    for dialect in _DIALECTS:
        for split, tag in _SPLIT_TAGS.items():
            for n, text in enumerate(_SENTENCES[dialect][split], start=1):
                sentence_id = f"{dialect}-{tag}{n:02d}"
                for v in _SPLIT_VOICES[split]:
                    uid = f"{sentence_id}-v{v}"
                    items[split].append({
                        "id": uid,
                        "audio": f"audio/{uid}.ogg",
                        "text": text,
                        "dialect": dialect,
                        "sentence_id": sentence_id,
                        "voice": voice_string(v),
                        "synthetic": True,
                    })
    return items


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng not found: install it with `apt-get install espeak-ng` "
                         "(only needed to regenerate the sample set, not to use it)")
    return exe


def synthesize(text: str, voice: str) -> np.ndarray:
    """espeak-ng -> 16 kHz mono float32, peak-normalised, lightly trimmed."""
    name, *flags = voice.split()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        # -b 1: the text argument is UTF-8. A file (-w) rather than --stdout because
        # the streamed WAV header carries no length.
        subprocess.run([espeak_binary(), "-v", name, *flags, "-b", "1", "-w", str(wav), text],
                       check=True, capture_output=True)
        y, sr = sf.read(wav, dtype="float32", always_2d=True)
    y = y.mean(axis=1)  # espeak is mono already; this just flattens
    y = librosa.resample(y, orig_sr=sr, target_sr=_SAMPLE_RATE)
    _, (start, end) = librosa.effects.trim(y, top_db=_TRIM_TOP_DB)
    pad = int(_TRIM_PAD_SECONDS * _SAMPLE_RATE)
    y = y[max(0, start - pad): end + pad]
    return (_PEAK * y / np.max(np.abs(y))).astype(np.float32)


def write_clip(path: Path, y: np.ndarray) -> None:
    sf.write(path, y, _SAMPLE_RATE, format="OGG", subtype="VORBIS",
             compression_level=_VORBIS_QUALITY)


def check_clip(path: Path) -> float:
    """Read the clip back with both soundfile and librosa; return its duration."""
    info = sf.info(path)
    if info.samplerate != _SAMPLE_RATE or info.channels != 1:
        raise RuntimeError(f"{path}: {info.samplerate} Hz, {info.channels} ch")
    y, _ = librosa.load(path, sr=None, mono=False)
    seconds = len(y) / _SAMPLE_RATE
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise RuntimeError(f"{path}: {seconds:.2f} s outside [{_MIN_SECONDS}, {_MAX_SECONDS}] - shorten the sentence")
    return seconds


def generate(out: Path) -> dict[str, list[dict]]:
    espeak_binary()  # fail fast, before writing anything
    items = build_items()
    texts = [t for d in _SENTENCES.values() for s in d.values() for t in s]
    assert len(texts) == len(set(texts)), "duplicate sentence text"
    audio_dir = out / "audio"
    if audio_dir.exists():
        shutil.rmtree(audio_dir)  # drop clips of sentences that no longer exist
    audio_dir.mkdir(parents=True)
    durations = []
    for split, rows in items.items():
        for row in rows:
            path = out / row["audio"]
            write_clip(path, synthesize(row["text"], row["voice"]))
            durations.append(check_clip(path))
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(out / "sentences.tsv", "w", encoding="utf-8") as f:
        f.write("sentence_id\tdialect\tsplit\ttext\n")
        for split, tag in _SPLIT_TAGS.items():
            for dialect in _DIALECTS:
                for n, text in enumerate(_SENTENCES[dialect][split], start=1):
                    f.write(f"{dialect}-{tag}{n:02d}\t{dialect}\t{split}\t{text}\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(items['train'])} train + {len(items['test'])} test clips, "
          f"{min(durations):.2f}-{max(durations):.2f} s (mean {np.mean(durations):.2f}), "
          f"{size / 1e6:.2f} MB in {out}")
    return items


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=_DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    generate(args.out)


if __name__ == "__main__":
    main()
