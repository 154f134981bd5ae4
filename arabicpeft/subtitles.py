"""Reading a corpus of whole recordings with WebVTT subtitles as one row per subtitle cue: MASC as IEEE DataPort
publishes it (Al-Fetyani et al. 2023, https://ieee-dataport.org/open-access/masc-massive-arabic-speech-corpus).

The layout (as NVIDIA's NeMo speech data processor reads it, ``CreateInitialManifestMASC``): ``audios/{video_id}.wav``
(a YouTube video's sound track), ``subtitles/{video_id}.ar.vtt`` (its Arabic subtitles) and one table per subset in
``subsets/``: ``clean_train.csv`` / ``noisy_train.csv`` and ``{clean,noisy}_{dev,test}_meta.csv``, a row per video
(``video_id``, ``category``, ``video_duration``, ``channel_id``, ``country``, ``dialect``, ``gender``,
``transcript_duration``). The subtitles are parsed with webvtt-py; each cue becomes a row: ``audio`` (the
recording's path), ``start`` and ``end`` (seconds), ``text`` (the cue's text, tags removed, lines joined), and
the video's columns; a cue webvtt-py cannot read is a row without times (counted as undecodable).
:mod:`arabicpeft.hub_audio` reads the rows as segments (``segment_columns``).

Public: :data:`SUBSETS`, :data:`UNREAD_CUE`, :func:`masc_split`.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataUnavailableError

UNREAD_CUE = "(a subtitle cue webvtt-py could not read)"  # the text of such a row, which is never decoded
SUBSETS = ("clean_train", "noisy_train", "clean_dev", "noisy_dev", "clean_test", "noisy_test")


def _table(root: Path, subset: str) -> Path:
    """The video table of ``subset``: ``subsets/{subset}.csv`` (the training subsets) or ``{subset}_meta.csv``."""
    for name in (f"{subset}.csv", f"{subset}_meta.csv"):
        if (root / "subsets" / name).is_file():
            return root / "subsets" / name
    held = sorted({p.name.removesuffix(".csv").removesuffix("_meta") for p in (root / "subsets").glob("*.csv")})
    raise DataUnavailableError(f"The MASC folder {root} has no subset {subset!r} (subsets/ holds "
                               f"{', '.join(held) or 'no table'})", f"name one of {', '.join(SUBSETS)} with "
                               "--split-train / --split-test, or give the folder MASC's archive unpacks to.")


def _seconds(timestamp) -> float:
    """A webvtt-py timestamp in seconds, milliseconds kept (its ``in_seconds`` drops them)."""
    return timestamp.hours * 3600 + timestamp.minutes * 60 + timestamp.seconds + timestamp.milliseconds / 1000


def masc_split(root, subset: str):
    """One MASC subset (:data:`SUBSETS`) of the folder ``root`` as a ``datasets.Dataset`` of subtitle cues (see the
    module docstring), in video-table order. Raises :class:`~arabicpeft.errors.DataUnavailableError` for a
    subset the folder lacks, FileNotFoundError naming how many videos of the table have no sound track or no
    subtitles (and the first), ValueError naming a subtitle file webvtt-py cannot parse."""
    import datasets
    import pandas as pd
    import webvtt

    root = Path(root).expanduser()
    videos = pd.read_csv(_table(root, subset), dtype=str, keep_default_na=False)
    if "video_id" not in videos:
        raise DataUnavailableError(f"The MASC table {_table(root, subset)} has no video_id column",
                                   "give the folder MASC's archive unpacks to (its subsets/ tables).")
    files = [(root / "audios" / f"{v}.wav", root / "subtitles" / f"{v}.ar.vtt") for v in videos["video_id"]]
    absent = [str(p) for pair in files for p in pair if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{len(absent)} file(s) of the {len(videos)} videos of MASC's {subset} do not exist "
                                f"in {root}, e.g. {absent[0]}. Unpack the whole archive, or leave those videos out "
                                "of the table.")
    rows = []
    for video, (wav, vtt) in zip(videos.to_dict("records"), files):
        try:
            cues = webvtt.read(str(vtt))
        except Exception as e:  # webvtt-py raises MalformedFileError/MalformedCaptionError
            raise ValueError(f"Could not parse the subtitles {vtt}: {e}. Fix or remove that video.") from e
        rows += [{**video, "audio": str(wav), "start": _seconds(c.start_time), "end": _seconds(c.end_time),
                  "text": " ".join(c.text.split())} for c in cues]
        # webvtt-py passes over a cue whose timing it cannot read (or that holds no text): each stays a row, with
        # no times, so that it is counted as undecodable rather than lost
        skipped = vtt.read_text(encoding="utf-8", errors="replace").count("-->") - len(cues)
        rows += [{**video, "audio": str(wav), "start": None, "end": None, "text": UNREAD_CUE}] * max(skipped, 0)
    return datasets.Dataset.from_list(rows)
