"""A hub audio dataset as a source (``--source hub --dataset REPO[:CONFIG]`` with its columns), read from local
folders in the hub's layouts (parquet with a README's configs, csv + audio files): it trains and is scored with
counts, varieties of one's own come from a dialect column, and each mistake is one line naming the dataset, the
column or split and what to do."""

import inspect
import sys
from pathlib import Path

import datasets
import pandas as pd
import pytest
from conftest import _tiny_base, dataclasses_replace

from arabicpeft import caching, sources
from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import ConfigError, DataUnavailableError, user_message
from arabicpeft.sources import SAMPLE_DIR

# The sample set's Egyptian and Gulf clips stand for two varieties the paper does not have.
OWN = {"egyptian": "Sudanese", "gulf": "Najdi"}


def _sample_rows(split: str, per_variety: int) -> pd.DataFrame:
    rows = pd.read_json(SAMPLE_DIR / f"{split}.jsonl", lines=True, dtype=False)
    return pd.concat([rows[rows.dialect == d].head(per_variety) for d in OWN])


def write_parquet_repo(root: Path, splits: dict[str, pd.DataFrame], audio: str, columns: dict[str, list],
                       config: str = "default") -> None:
    """``root/{config}/{split}-00000-of-00001.parquet`` for each split, the audio (bytes of the sample clips) as a
    datasets ``Audio`` column named ``audio``, the other ``columns`` {name: values per split, concatenated} as
    given; and a README whose YAML names the config's data files, as a hub dataset repo holds them."""
    at = 0
    for split, rows in splits.items():
        data = {audio: [{"bytes": (SAMPLE_DIR / a).read_bytes(), "path": Path(a).name} for a in rows.audio]}
        data.update({name: values[at:at + len(rows)] for name, values in columns.items()})
        at += len(rows)
        ds = datasets.Dataset.from_dict(data).cast_column(audio, datasets.Audio(sampling_rate=16_000))
        (root / config).mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
    readme = root / "README.md"
    head = readme.read_text(encoding="utf-8").split("---")[1] if readme.exists() else "\nconfigs:\n"
    files = "".join(f"  - split: {s}\n    path: {config}/{s}-*\n" for s in splits)
    readme.write_text(f"---{head}- config_name: {config}\n  data_files:\n{files}---\n", encoding="utf-8")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A parquet dataset repo: ``clip`` (audio), ``sentence`` (text), ``accent`` (Sudanese / Najdi), ``n`` (int);
    splits train (8 + 8 clips, one of them undecodable bytes) and test (4 + 4)."""
    root = tmp_path_factory.mktemp("hub") / "own-arabic"
    train, test = _sample_rows("train", 8), _sample_rows("test", 4)
    frames = {"train": train, "test": test}
    texts = [*train.text, *test.text]
    accents = [OWN[d] for d in [*train.dialect, *test.dialect]]
    write_parquet_repo(root, frames, "clip", {"sentence": texts, "accent": accents, "n": list(range(len(texts)))})
    # one clip of the training split whose bytes are not audio: counted as undecodable, not a failed run
    table = pd.read_parquet(root / "default" / "train-00000-of-00001.parquet")
    table.at[0, "clip"] = {"bytes": b"not audio at all", "path": "broken.wav"}
    table.to_parquet(root / "default" / "train-00000-of-00001.parquet")
    return root


def _cfg(repo: Path, **kw) -> ExperimentConfig:
    fields = dict(source="hub", dataset=str(repo), audio_column="clip", text_column="sentence",
                  dialect_column="accent", dialect="sudanese", test_sets=["sudanese", "najdi"])
    return dataclasses_replace(_tiny_base(), **{**fields, **kw})


def test_a_hub_audio_dataset_with_own_varieties_trains_and_is_scored(repo, tmp_path):
    from arabicpeft.results import read_results
    from arabicpeft.train import run

    cfg = _cfg(repo, output_dir=str(tmp_path / "run"))
    source = sources.of(cfg)
    assert (source.records, source.needs_hub, source.n_mels, source.varieties) == ("audio", False, None, None)
    results = read_results(run(cfg, log=lambda m: None))
    assert results["training"]["global_step"] == 2
    data = results["data"]
    pool = data["train_pool"]
    # 8 Sudanese training rows read (no Najdi row), one undecodable, counted and skipped
    assert (pool["rows_in"], pool["rows_used"], pool["filtered"]["undecodable"]) == (8, 7, 1)
    assert (data["n_train"], data["n_validation"]) == (5, 2)  # 7: 2 to validation (20 %, rounded up), 5 train
    assert {k: v["rows_used"] for k, v in data["test"].items()} == {"sudanese": 4, "najdi": 4}
    assert data["format"] == "audio" and pool["hub_ids"] is None  # a local folder, not a hub repo
    assert results["config"]["dataset"] == str(repo) and results["config"]["dialect_column"] == "accent"
    assert set(results["metrics"]) == {"sudanese", "najdi"}


def test_streamed_and_pooled_reads_hold_the_same_records(repo):
    rows = pd.concat([_sample_rows("test", 4)])
    for streaming in (False, True):
        cfg = _cfg(repo, streaming=streaming, max_eval_samples=4)
        read = sources.load_raw(cfg, "najdi", "test")
        assert sorted(r["text"] for r in read.dataset) == sorted(rows[rows.dialect == "gulf"].text)
        assert set(next(iter(read.dataset))) == {"audio", "text", "dialect"}
    pooled = _cfg(repo, dialect="all", pool=["sudanese", "najdi"], test_sets=None)
    assert pooled.parts("all") == ("sudanese", "najdi") and pooled.test_set_names() == ["sudanese", "najdi"]
    assert caching.run_splits(pooled) == [("sudanese", "train"), ("najdi", "train"), ("sudanese", "test"),
                                          ("najdi", "test")]


def test_a_csv_with_audio_files_is_a_dataset_folder(tmp_path):
    """csv + audio files (relative paths) read by datasets' csv builder, the whole dataset one variety."""
    folder = tmp_path / "kaggle-set"
    (folder / "wavs").mkdir(parents=True)
    for split, n in (("train", 6), ("test", 3)):
        rows = _sample_rows(split, n).query("dialect == 'egyptian'")
        for a in rows.audio:
            (folder / "wavs" / Path(a).name).write_bytes((SAMPLE_DIR / a).read_bytes())
        pd.DataFrame({"file": [f"wavs/{Path(a).name}" for a in rows.audio], "transcript": list(rows.text)}
                     ).to_csv(folder / f"{split}.csv", index=False)
    cfg = ExperimentConfig(source="hub", dataset=str(folder), audio_column="file", text_column="transcript",
                           dialect="tunisian")
    assert cfg.test_set_names() == ["tunisian"]
    read = sources.load_raw(cfg, "tunisian", "train")
    assert len(read.dataset) == 6 and Path(read.dataset[0]["audio"]).is_file()
    from arabicpeft import audio

    assert audio.load_audio(read.dataset[0]["audio"]).ndim == 1  # the path resolves against the folder


def _gated_hub(monkeypatch):
    """The hub refusing a gated repo as datasets 5 reports it (DatasetNotFoundError raised from GatedRepoError)."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import GatedRepoError
    from huggingface_hub.errors import HfHubHTTPError

    def refuse(path, *a, **k):
        # the HTTP client whose responses huggingface_hub's errors hold (httpx2 in huggingface_hub 2.4)
        http = sys.modules[inspect.signature(HfHubHTTPError).parameters["response"].annotation.__module__.split(".")[0]]
        response = http.Response(401, request=http.Request("GET", f"https://huggingface.co/datasets/{path}"))
        try:
            raise GatedRepoError("Access to this dataset is restricted.", response=response)
        except GatedRepoError as e:
            raise DatasetNotFoundError(f"Dataset '{path}' is a gated dataset on the Hub. You must be authenticated "
                                       "to access it.") from e

    monkeypatch.setattr(datasets, "get_dataset_split_names", refuse)
    monkeypatch.setattr(datasets, "load_dataset", refuse)


# (what is wrong, config fields, variety, split, message)
BAD = [
    ("missing column", {"text_column": "transcript"}, "sudanese", "train",
     "The dataset {repo} has no column 'transcript' for the text (its columns: clip, sentence, accent, n) — name the "
     "text column with --text-column."),
    ("text column not text", {"text_column": "n"}, "sudanese", "train",
     "The column 'n' of the dataset {repo} holds Value('int64'), not text — name the transcript column with "
     "--text-column."),
    ("missing split", {"split_train": "training"}, "sudanese", "train",
     "The dataset {repo} has no split 'training' (its splits: train, test) — name one with --split-train / "
     "--split-test."),
    ("variety not in the dialect column", {"dialect": "tunisian"}, "tunisian", "test",
     "The dataset {repo} has no rows of 'tunisian' in its dialect column 'accent' (its values: najdi, sudanese) — "
     "pick one of those with --dialect / --test-sets."),
    ("dialect column of no variety names", {"dialect_column": "sentence"}, "sudanese", "test",
     "The dialect column 'sentence' of the dataset {repo} holds"),
    ("pooled without a dialect column", {"dialect_column": None, "dialect": "all", "pool": ["sudanese", "najdi"]},
     "sudanese", "train", "The dataset {repo} has no dialect column named, so the varieties of a pooled set cannot "
     "be told apart — give --dialect-column, or train one variety."),
]


@pytest.mark.parametrize("what,fields,variety,split,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_dataset_option_is_one_line_naming_it(repo, what, fields, variety, split, message):
    cfg = _cfg(repo, **fields)
    with pytest.raises(DataUnavailableError) as caught:
        sources.load_raw(cfg, variety, split, pooled=cfg.dialect == "all")
    line = user_message(caught.value)
    assert line.startswith(message.format(repo=repo)) and "\n" not in line


def test_a_config_the_dataset_lacks_names_its_configs(repo):
    cfg = _cfg(repo, dataset=f"{repo}:egypt")
    with pytest.raises(DataUnavailableError, match=r"has no config 'egypt' .*Available: \['default'\].* — give one "
                                                   "of its configs as --dataset REPO:CONFIG"):
        sources.load_raw(cfg, "sudanese", "test")


def test_a_gated_dataset_says_how_to_give_a_token(monkeypatch):
    _gated_hub(monkeypatch)
    cfg = ExperimentConfig(source="hub", dataset="someone/gated-arabic", dialect="najdi")
    assert sources.of(cfg).needs_hub
    with pytest.raises(DataUnavailableError) as caught:
        sources.load_raw(cfg, "najdi", "train")
    line = user_message(caught.value)
    assert line.startswith("The dataset someone/gated-arabic is gated on the hub — accept its terms on its hub page, "
                           "then give a HuggingFace token: on Kaggle, Add-ons -> Secrets -> add HF_TOKEN")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chained traceback


def test_varieties_are_checked_against_what_the_source_declares():
    with pytest.raises(ConfigError) as caught:
        ExperimentConfig(source="sample", dialect="sudanese")
    assert str(caught.value) == ("Unknown dialect 'sudanese' for source sample — choose one of egyptian, gulf, "
                                 "iraqi, levantine, maghrebi, msa or all.")
    with pytest.raises(ConfigError, match=r"'Sudanese Arabic!' is not a variety name: use lower-case letters"):
        ExperimentConfig(source="hub", dataset="x/y", dialect="Sudanese Arabic!")
    with pytest.raises(ConfigError, match="The pooled set 'all' of source hub has no declared members — name them "
                                          "with --pool"):
        ExperimentConfig(source="hub", dataset="x/y", dialect="all")
    # a manifest folder declares whatever its dialect column holds; the paper's six keep their meaning
    assert ExperimentConfig(source="local", data_path="d", dialect="najdi").test_set_names() == ["najdi"]
    assert ExperimentConfig(source="sample", dialect="all").test_set_names() == [
        "egyptian", "gulf", "iraqi", "levantine", "maghrebi"]
    assert ExperimentConfig(source="hub").unused_fields().get("dataset") is None  # hub without --dataset: otozz
    assert sources.of(ExperimentConfig(source="hub")).read is sources.get("hub").read
