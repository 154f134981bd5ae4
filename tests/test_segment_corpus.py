"""Corpora of long recordings cut into segments, read through their recipes, built here from the sample clips laid
end to end: SADA as Kaggle publishes it (full episodes in batch_N/ folders, train.csv / valid.csv / test.csv with one
row per segment: FileName, SegmentStart, SegmentEnd in seconds, ProcessedText, SpeakerDialect ...) and MASC as IEEE
DataPort does (audios/{video_id}.wav, subtitles/{video_id}.ar.vtt, subsets/ tables of videos). Each segment decodes
to exactly its clip, trains and scores; bad segment times are counted, not fatal."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import _tiny_base, dataclasses_replace

from arabicpeft import audio as audio_lib
from arabicpeft import sources, subtitles
from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import DataUnavailableError, user_message
from arabicpeft.sources import SAMPLE_DIR

# Kaggle's column order of SADA's tables (its README; the same names on the hub's copies of them)
COLUMNS = ["FileName", "ShowName", "FullFileLength", "SegmentID", "SegmentLength", "SegmentStart", "SegmentEnd",
           "SpeakerAge", "SpeakerGender", "SpeakerDialect", "Speaker", "Environment", "GroundTruthText",
           "ProcessedText", "Category"]
GAP_S = 0.5  # silence between two segments of an episode
MS = audio_lib.SAMPLE_RATE // 1000  # samples of a millisecond: every segment starts on one (subtitle times are in ms)
DIALECT = {"egyptian": "Najdi", "gulf": "Hijazi"}  # sample clips standing for two of SADA's dialect labels


def _episode(root: Path, name: str, rows: pd.DataFrame) -> list[dict]:
    """Writes the clips of ``rows`` end to end, GAP_S apart, as one episode ``name``; its table rows. The WAV holds
    float samples (SADA's are 16-bit PCM), so that a segment read back is its clip exactly (some clips peak above
    1.0, which 16 bits would clip)."""
    clips = [audio_lib.load_audio(str(SAMPLE_DIR / a)) for a in rows.audio]
    gap = np.zeros(int(GAP_S * audio_lib.SAMPLE_RATE), dtype=np.float32)
    pieces, table, at = [], [], 0
    for clip, row in zip(clips, rows.itertuples()):
        start, end = at / audio_lib.SAMPLE_RATE, (at + len(clip)) / audio_lib.SAMPLE_RATE  # starts on a millisecond
        table.append({"FileName": name, "ShowName": "show", "SegmentID": f"{Path(name).stem}_{len(table)}",
                      "SegmentLength": end - start, "SegmentStart": start, "SegmentEnd": end, "SpeakerAge": "Adult",
                      "SpeakerGender": "Male", "SpeakerDialect": DIALECT[row.dialect], "Speaker": "Speaker1",
                      "Environment": "Clean", "GroundTruthText": row.text, "ProcessedText": row.text,
                      "Category": "Drama"})
        pad = np.zeros(-(at + len(clip) + len(gap)) % MS, dtype=np.float32)
        pieces += [clip, gap, pad]
        at += len(clip) + len(gap) + len(pad)
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    sf.write(root / name, np.concatenate(pieces), audio_lib.SAMPLE_RATE, subtype="FLOAT")
    for row in table:
        row["FullFileLength"] = at / audio_lib.SAMPLE_RATE
    return table


@pytest.fixture(scope="module")
def sada(tmp_path_factory) -> tuple[Path, dict]:
    """(the folder, {split: the clips' rows}): two training episodes of 4 + 4 clips, a validation and a test
    episode of 4 clips, each clip Najdi (Egyptian sample clips) or Hijazi (Gulf ones)."""
    root = tmp_path_factory.mktemp("sada2022")
    rows = pd.read_json(SAMPLE_DIR / "train.jsonl", lines=True, dtype=False)
    test = pd.read_json(SAMPLE_DIR / "test.jsonl", lines=True, dtype=False)
    pick = lambda frame, n: pd.concat([frame[frame.dialect == d].head(n) for d in DIALECT])  # noqa: E731
    train = pick(rows, 4)
    held = {"train": train, "validation": pick(rows.iloc[::-1], 2), "test": pick(test, 2)}
    tables = {"train": _episode(root, "batch_1/6k_SBA_1_0.wav", train.head(4))
              + _episode(root, "batch_1/6k_SBA_1_1.wav", train.tail(4)),
              "validation": _episode(root, "batch_2/6k_SBA_2_0.wav", held["validation"]),
              "test": _episode(root, "batch_3/6k_SBA_3_0.wav", held["test"])}
    for split, file in (("train", "train.csv"), ("validation", "valid.csv"), ("test", "test.csv")):
        pd.DataFrame(tables[split], columns=COLUMNS).to_csv(root / file, index=False)
    return root, held


def test_each_segment_decodes_to_its_clip(sada):
    root, held = sada
    cfg = ExperimentConfig(source="sada", dataset=str(root), dialect="saudi")
    read = sources.load_raw(cfg, "saudi", "test")
    assert set(read.dataset.column_names) == {"audio", "text"} and read.hub_id is None
    assert list(read.dataset["text"]) == list(held["test"].text)
    for record, clip in zip(read.dataset, held["test"].audio):
        segment, original = audio_lib.load_audio(record["audio"]), audio_lib.load_audio(str(SAMPLE_DIR / clip))
        assert segment.shape == original.shape
        assert np.array_equal(segment, original)


def test_the_dialect_column_gives_the_varieties(sada):
    root, held = sada
    cfg = ExperimentConfig(source="sada", dataset=str(root), dialect="najdi", dialect_column="SpeakerDialect")
    read = sources.load_raw(cfg, "najdi", "train")
    assert sorted(read.dataset["text"]) == sorted(held["train"].query("dialect == 'egyptian'").text)
    with pytest.raises(DataUnavailableError, match="has no rows of 'asiri' in its dialect column 'SpeakerDialect' "
                                                   r"\(its values: hijazi, najdi\)"):
        sources.load_raw(dataclasses_replace(cfg, dialect="asiri"), "asiri", "train")


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("value", ["نجدي", None])
def test_a_dialect_value_that_is_no_variety_name_is_one_line_streamed_or_not(sada, tmp_path, value, streaming):
    root, _ = sada
    for name in ("batch_1", "batch_2", "batch_3", "valid.csv", "test.csv"):
        (tmp_path / name).symlink_to(root / name)
    table = pd.read_csv(root / "train.csv")
    table.loc[5, "SpeakerDialect"] = value
    table.to_csv(tmp_path / "train.csv", index=False)
    cfg = ExperimentConfig(source="sada", dataset=str(tmp_path), dialect="najdi", dialect_column="SpeakerDialect",
                           streaming=streaming)
    with pytest.raises(DataUnavailableError, match=f"The dialect column 'SpeakerDialect' of the dataset {tmp_path} "
                                                   f"holds {value!r}, which is no variety name"):
        list(sources.load_raw(cfg, "najdi", "train").dataset)


def test_training_and_scoring_on_segments_counts_bad_segment_times_and_empty_transcripts(sada, tmp_path):
    from arabicpeft.results import read_results
    from arabicpeft.train import run

    root, held = sada
    bad = tmp_path / "sada-bad"  # SADA's layout without valid.csv: a run reads only the tables of its splits
    bad.mkdir()
    for name in ("batch_1", "batch_2", "batch_3"):
        (bad / name).symlink_to(root / name)
    train = pd.read_csv(root / "train.csv")
    train.loc[0, ["SegmentStart", "SegmentEnd"]] = [5.0, 4.0]  # ends before it starts
    train.loc[1, "SegmentStart"] = 10_000.0  # after the episode's end
    train.loc[2, "ProcessedText"] = None  # an empty cell
    train.to_csv(bad / "train.csv", index=False)
    test = pd.read_csv(root / "test.csv").astype({"SegmentStart": object})
    test.loc[0, "ProcessedText"] = None  # scored as an empty reference, as every test utterance
    test.loc[1, "SegmentStart"] = "abc"  # not a time
    test.to_csv(bad / "test.csv", index=False)
    cfg = dataclasses_replace(_tiny_base(), source="sada", dataset=str(bad), dialect="saudi",
                              test_sets=["saudi"], output_dir=str(tmp_path / "run"))
    results = read_results(run(cfg, log=lambda m: None))
    data = results["data"]
    assert results["training"]["global_step"] == 2
    pool, scored = data["train_pool"], data["test"]["saudi"]
    assert (pool["rows_in"], pool["rows_used"]) == (8, 5)
    assert {k: n for k, n in pool["filtered"].items() if n} == {"undecodable": 2, "empty_transcript": 1}
    assert (scored["rows_in"], scored["rows_used"], scored["empty_transcript_scored"]) == (4, 3, 1)
    assert {k: n for k, n in scored["filtered"].items() if n} == {"undecodable": 1}
    assert set(results["metrics"]) == {"saudi"}
    assert data["source_records"]["card"] == "https://www.kaggle.com/datasets/sdaiancai/sada2022"
    with pytest.raises(audio_lib.AudioError, match="ends at 99.0 s, after the recording's end"):
        audio_lib.load_audio({"path": str(root / "batch_3" / "6k_SBA_3_0.wav"), "start": 1.0, "end": 99.0})


def test_without_its_folder_sada_says_where_to_get_it_in_one_line():
    from arabicpeft import kaggle

    with pytest.raises(Exception) as caught:
        kaggle.preflight(ExperimentConfig(source="sada", dialect="saudi"))
    line = user_message(caught.value)
    assert line.startswith("SADA is published on Kaggle as full episodes") and line.endswith(
        "then give its folder: --source sada --dataset FOLDER.")


def test_a_folder_without_segment_times_is_refused_naming_the_column(sada, tmp_path):
    from arabicpeft import kaggle

    root, _ = sada
    for file in ("train.csv", "valid.csv", "test.csv"):
        pd.read_csv(root / file).drop(columns=["SegmentEnd"]).to_csv(tmp_path / file, index=False)
    cfg = dataclasses_replace(_tiny_base(), source="sada", dataset=str(tmp_path), dialect="saudi",
                              test_sets=["saudi"], output_dir=str(tmp_path / "run"))
    with pytest.raises(DataUnavailableError, match="has no column 'SegmentEnd' for the segment times"):
        kaggle.preflight(cfg)


# --- MASC: whole videos with WebVTT subtitles ------------------------------------------------------------------

def _vtt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


@pytest.fixture(scope="module")
def masc(tmp_path_factory) -> tuple[Path, dict]:
    """(the folder, {subset: the clips' rows}): clean_train of two videos (4 + 4 clips, one from Egypt, one from
    Saudi Arabia), clean_test of one video (4 clips); one subtitle cue per clip, its end rounded up to the ms."""
    root = tmp_path_factory.mktemp("masc")
    rows = pd.read_json(SAMPLE_DIR / "train.jsonl", lines=True, dtype=False)
    test = pd.read_json(SAMPLE_DIR / "test.jsonl", lines=True, dtype=False)
    videos = {"clean_train": [("v-egy01", "Egypt", rows[rows.dialect == "egyptian"].head(4)),
                              ("v-sau01", "Saudi Arabia", rows[rows.dialect == "gulf"].head(4))],
              "clean_test": [("v-egy02", "Egypt", test[test.dialect == "egyptian"].head(4))]}
    (root / "subtitles").mkdir()
    for subset, listed in videos.items():
        table = []
        for video, country, clips in listed:
            cues = _episode(root, f"audios/{video}.wav", clips)
            lines = ["WEBVTT", "Kind: captions", "Language: ar", ""]
            for n, cue in enumerate(cues, start=1):
                end = np.ceil(cue["SegmentEnd"] * 1000) / 1000
                lines += [str(n), f"{_vtt_time(cue['SegmentStart'])} --> {_vtt_time(end)}", cue["ProcessedText"], ""]
            (root / "subtitles" / f"{video}.ar.vtt").write_text("\n".join(lines), encoding="utf-8")
            table.append({"video_id": video, "category": "news", "video_duration": cues[0]["FullFileLength"],
                          "channel_id": "c1", "country": country, "dialect": "unknown", "gender": "male",
                          "transcript_duration": 1.0})
        name = f"{subset}.csv" if subset.endswith("train") else f"{subset}_meta.csv"
        (root / "subsets").mkdir(exist_ok=True)
        pd.DataFrame(table).to_csv(root / "subsets" / name, index=False)
    return root, {s: pd.concat([c for _, _, c in listed]) for s, listed in videos.items()}


def test_masc_subtitle_cues_decode_to_their_clips(masc):
    root, held = masc
    read = sources.load_raw(ExperimentConfig(source="masc", dataset=str(root), dialect="masc"), "masc", "test")
    assert list(read.dataset["text"]) == list(held["clean_test"].text)
    for record, clip in zip(read.dataset, held["clean_test"].audio):
        segment, original = audio_lib.load_audio(record["audio"]), audio_lib.load_audio(str(SAMPLE_DIR / clip))
        assert 0 <= len(segment) - len(original) < MS  # the cue's end rounded up to the millisecond
        assert np.array_equal(segment[:len(original)], original) and not segment[len(original):].any()
    by_country = ExperimentConfig(source="masc", dataset=str(root), dialect="saudi_arabia", dialect_column="country")
    texts = sources.load_raw(by_country, "saudi_arabia", "train").dataset["text"]
    assert sorted(texts) == sorted(held["clean_train"].query("dialect == 'gulf'").text)


def test_masc_mistakes_are_one_line_and_it_is_related_to_the_otozz_sets(masc, tmp_path):
    from arabicpeft import kaggle

    root, _ = masc
    with pytest.raises(DataUnavailableError, match=r"The MASC folder .* has no subset 'noisy_test' \(subsets/ holds "
                                                   r"clean_test, clean_train\) — name one of clean_train"):
        sources.load_raw(ExperimentConfig(source="masc", dataset=str(root), dialect="masc", split_test="noisy_test"),
                         "masc", "test")
    broken = tmp_path / "masc-broken"  # one cue's timing line unreadable: a row without times, counted
    broken.mkdir()
    for name in ("audios", "subsets"):
        (broken / name).symlink_to(root / name)
    (broken / "subtitles").mkdir()
    for vtt in (root / "subtitles").iterdir():
        (broken / "subtitles" / vtt.name).write_text(vtt.read_text(encoding="utf-8").replace(
            "00:00:00.000 -->", "00:00:00.000 --> garbage", 1), encoding="utf-8")
    rows = subtitles.masc_split(broken, "clean_test")
    assert len(rows) == 4 and [r["start"] for r in rows].count(None) == 1
    with pytest.raises(Exception) as caught:
        kaggle.preflight(ExperimentConfig(source="masc", dialect="masc"))
    assert user_message(caught.value).startswith("MASC is published on IEEE DataPort as whole videos")
    # the paper's otozz sets are MASC (and Common Voice) processed: a model of one is not held out on the other
    assert sources.relation({"source": "hub", "dialect": "egyptian"}, "masc", "masc") == "related"
    assert sources.relation({"source": "masc", "dialect": "masc", "dataset": str(root)}, "hub", "egyptian") == \
        "related"
    assert sources.relation({"source": "hub", "dialect": "x", "dataset": "own/set"}, "masc", "masc") == "held-out"
