"""A corpus of long recordings cut by tables of segment times, read through its recipe: SADA as Kaggle publishes it
(full episodes in batch_N/ folders, train.csv / valid.csv / test.csv with one row per segment: FileName,
SegmentStart, SegmentEnd in seconds, ProcessedText, SpeakerDialect ...), built here from the sample clips laid end
to end. Each segment decodes to exactly its clip, trains and scores; bad segment times are counted, not fatal."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import _tiny_base, dataclasses_replace

from arabicpeft import audio as audio_lib
from arabicpeft import sources
from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import DataUnavailableError, user_message
from arabicpeft.sources import SAMPLE_DIR

# Kaggle's column order of SADA's tables (its README; the same names on the hub's copies of them)
COLUMNS = ["FileName", "ShowName", "FullFileLength", "SegmentID", "SegmentLength", "SegmentStart", "SegmentEnd",
           "SpeakerAge", "SpeakerGender", "SpeakerDialect", "Speaker", "Environment", "GroundTruthText",
           "ProcessedText", "Category"]
GAP_S = 0.5  # silence between two segments of an episode
DIALECT = {"egyptian": "Najdi", "gulf": "Hijazi"}  # sample clips standing for two of SADA's dialect labels


def _episode(root: Path, name: str, rows: pd.DataFrame) -> list[dict]:
    """Writes the clips of ``rows`` end to end, GAP_S apart, as one 16-bit episode ``name``; its table rows."""
    clips = [audio_lib.load_audio(str(SAMPLE_DIR / a)) for a in rows.audio]
    gap = np.zeros(int(GAP_S * audio_lib.SAMPLE_RATE), dtype=np.float32)
    pieces, table, at = [], [], 0
    for clip, row in zip(clips, rows.itertuples()):
        start, end = at / audio_lib.SAMPLE_RATE, (at + len(clip)) / audio_lib.SAMPLE_RATE
        table.append({"FileName": name, "ShowName": "show", "SegmentID": f"{Path(name).stem}_{len(table)}",
                      "SegmentLength": end - start, "SegmentStart": start, "SegmentEnd": end, "SpeakerAge": "Adult",
                      "SpeakerGender": "Male", "SpeakerDialect": DIALECT[row.dialect], "Speaker": "Speaker1",
                      "Environment": "Clean", "GroundTruthText": row.text, "ProcessedText": row.text,
                      "Category": "Drama"})
        pieces += [clip, gap]
        at += len(clip) + len(gap)
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    sf.write(root / name, np.concatenate(pieces), audio_lib.SAMPLE_RATE, subtype="PCM_16")
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
        assert np.abs(segment - original).max() <= 1 / 2 ** 15  # the episode is 16-bit PCM


def test_the_dialect_column_gives_the_varieties(sada):
    root, held = sada
    cfg = ExperimentConfig(source="sada", dataset=str(root), dialect="najdi", dialect_column="SpeakerDialect")
    read = sources.load_raw(cfg, "najdi", "train")
    assert sorted(read.dataset["text"]) == sorted(held["train"].query("dialect == 'egyptian'").text)
    with pytest.raises(DataUnavailableError, match="has no rows of 'asiri' in its dialect column 'SpeakerDialect' "
                                                   r"\(its values: hijazi, najdi\)"):
        sources.load_raw(dataclasses_replace(cfg, dialect="asiri"), "asiri", "train")


def test_training_and_scoring_on_segments_counts_bad_segment_times(sada, tmp_path):
    from arabicpeft.results import read_results
    from arabicpeft.train import run

    root, held = sada
    bad = tmp_path / "sada-bad"
    bad.mkdir()
    for name in ("batch_1", "batch_2", "batch_3", "valid.csv", "test.csv"):
        (bad / name).symlink_to(root / name)
    table = pd.read_csv(root / "train.csv")
    table.loc[0, ["SegmentStart", "SegmentEnd"]] = [5.0, 4.0]  # ends before it starts
    table.loc[1, "SegmentStart"] = 10_000.0  # after the episode's end
    table.to_csv(bad / "train.csv", index=False)
    cfg = dataclasses_replace(_tiny_base(), source="sada", dataset=str(bad), dialect="saudi",
                              test_sets=["saudi"], output_dir=str(tmp_path / "run"))
    results = read_results(run(cfg, log=lambda m: None))
    data = results["data"]
    assert results["training"]["global_step"] == 2
    pool = data["train_pool"]
    assert (pool["rows_in"], pool["rows_used"]) == (8, 6)
    assert {k: n for k, n in pool["filtered"].items() if n} == {"undecodable": 2}
    assert data["test"]["saudi"]["rows_used"] == 4 and set(results["metrics"]) == {"saudi"}
    assert data["source_records"]["card"] == "https://www.kaggle.com/datasets/sdaiancai/sada2022"


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
