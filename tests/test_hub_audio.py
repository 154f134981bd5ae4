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
                       config: str = "default", folder: str = "", readme: bool = True, features=None) -> None:
    """``root/{folder}/{split}-00000-of-00001.parquet`` for each split (``folder``: the config's name unless
    given; ``{split}/0000.parquet`` without a README, as the hub's parquet export lays a config out), the audio
    (bytes of the sample clips) as a datasets ``Audio`` column ``audio``, the other ``columns`` {name: values per
    split, concatenated} as given (``features``: their datasets types); and a README whose YAML names the
    config's data files, as a hub dataset repo holds them."""
    folder, at = folder or config, 0
    for split, rows in splits.items():
        data = {audio: [{"bytes": (SAMPLE_DIR / a).read_bytes(), "path": Path(a).name} for a in rows.audio]}
        data.update({name: values[at:at + len(rows)] for name, values in columns.items()})
        at += len(rows)
        ds = datasets.Dataset.from_dict(data).cast_column(audio, datasets.Audio(sampling_rate=16_000))
        for name, kind in (features or {}).items():
            ds = ds.cast_column(name, kind)
        name = f"{split}-00000-of-00001.parquet" if readme else f"{split}/0000.parquet"
        (root / folder / name).parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(root / folder / name))
    if readme:
        card = root / "README.md"
        head = card.read_text(encoding="utf-8").split("---")[1] if card.exists() else "\nconfigs:\n"
        files = "".join(f"  - split: {s}\n    path: {folder}/{s}-*\n" for s in splits)
        card.write_text(f"---{head}- config_name: {config}\n  data_files:\n{files}---\n", encoding="utf-8")


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


def test_a_hub_audio_dataset_with_own_varieties_is_read_filtered_and_counted(repo, tiny_processor):
    """The run's splits as train.run reads them (the training through a hub audio dataset: the recipe test below)."""
    from arabicpeft.data import load_splits

    cfg = _cfg(repo)
    source = sources.of(cfg)
    assert (source.records, source.needs_hub, source.n_mels, source.varieties) == ("audio", False, None, None)
    splits = load_splits(cfg, tiny_processor.tokenizer, max_seconds=8)
    data = splits.report
    pool = data["train_pool"]
    # 8 Sudanese training rows read (no Najdi row), one undecodable, counted and skipped
    assert (pool["rows_in"], pool["rows_used"], pool["filtered"]["undecodable"]) == (8, 7, 1)
    assert (data["n_train"], data["n_validation"]) == (5, 2)  # 7: 2 to validation (20 %, rounded up), 5 train
    assert {k: v["rows_used"] for k, v in data["test"].items()} == {"sudanese": 4, "najdi": 4}
    assert data["format"] == "audio" and pool["hub_ids"] is None  # a local folder, not a hub repo
    assert data["test"]["najdi"]["dataset"] == str(repo)
    assert sorted(splits.test["najdi"]["text"]) == sorted(_sample_rows("test", 4).query("dialect == 'gulf'").text)


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
     "The column 'n' of the dataset {repo} holds int64 values, not text — name the transcript column with "
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


# --- the named recipes: a local copy in each one's exact schema (its card's columns, configs and splits) --------

def _recipe_copy(root: Path, name: str) -> tuple[Path, dict]:
    """A local copy of recipe ``name`` in its card's schema, from the sample clips; returns (folder, {(variety,
    split): the transcripts it holds})."""
    egy, gulf = (_sample_rows("train", 4).query(f"dialect == '{d}'") for d in OWN)
    held = {}

    def put(variety, config, splits, columns, **kw):
        frames = {s: f for s, f in splits.items()}
        values = {c: [v for f in frames.values() for v in fill(f)] for c, fill in columns.items()}
        write_parquet_repo(root, frames, "audio", values, config=config, **kw)
        held.update({(variety, s): sorted(f.text) for s, f in frames.items()})

    text = lambda f: list(f.text)  # noqa: E731
    strings = lambda f: [str(i) for i in range(len(f))]  # noqa: E731
    if name == "casablanca":  # a config per country, splits validation + test, no training split
        for variety, config, rows in (("egypt", "Egypt", egy), ("morocco", "Morocco", gulf)):
            put(variety, config, {"validation": rows, "test": rows.head(2)},
                {"seg_id": strings, "transcription": text, "gender": lambda f: ["female"] * len(f),
                 "duration": lambda f: [2.5] * len(f)})
    elif name == "mediaspeech":  # config ar, one split named train
        put("mediaspeech", "ar", {"train": egy}, {"sentence": text})
    elif name == "mgb2":  # the default config in data/, splits train / validation / test
        put("mgb2", "default", {"train": egy, "validation": gulf.head(2), "test": gulf},
            {"transcript": text, **{c: strings for c in ("duration", "quality", "segment_id", "recording_id",
                                                         "show_title", "broadcast_date", "genre", "service")}},
            folder="data")
    elif name == "cv-ar":  # config ar, splits train / validation / test, 48 kHz audio in the card (any rate reads)
        put("common_voice", "ar", {"train": egy, "validation": gulf.head(2), "test": gulf},
            {"sentence": text, **{c: strings for c in ("client_id", "path", "age", "gender", "accent", "locale",
                                                       "segment", "variant", "continuation")},
             "up_votes": lambda f: [2] * len(f), "down_votes": lambda f: [0] * len(f)})
    elif name == "fleurs-ar":  # the parquet export's ar_eg/{train,validation,test}/0000.parquet, no README
        put("fleurs", "ar_eg", {"train": egy, "validation": gulf.head(2), "test": gulf},
            {"id": lambda f: list(range(len(f))), "num_samples": lambda f: [1] * len(f), "path": strings,
             "transcription": text, "raw_transcription": text, "gender": lambda f: [0] * len(f),
             "lang_id": lambda f: [2] * len(f), "language": lambda f: ["Arabic"] * len(f),
             "lang_group_id": lambda f: [0] * len(f)}, readme=False,
            features={"gender": datasets.ClassLabel(names=["male", "female", "other"])})
    return root, held


RECIPES = ("casablanca", "mediaspeech", "mgb2", "cv-ar", "fleurs-ar")


@pytest.fixture(scope="module")
def recipe_copies(tmp_path_factory) -> dict:
    return {name: _recipe_copy(tmp_path_factory.mktemp(name), name) for name in RECIPES}


@pytest.mark.parametrize("name", RECIPES)
def test_a_recipe_reads_a_copy_in_its_cards_schema(recipe_copies, name):
    folder, held = recipe_copies[name]
    recipe = sources.get(name).hub_dataset
    assert recipe.card.startswith("https://huggingface.co/datasets/") and recipe.licence and recipe.citation
    varieties = sorted({v for v, _ in held})
    assert sources.of(ExperimentConfig(source=name, dataset=str(folder), dialect=varieties[0])).varieties == \
        tuple(recipe.configs)
    for (variety, split), texts in held.items():
        if split not in (recipe.train_split, recipe.test_split):
            continue
        cfg = ExperimentConfig(source=name, dataset=str(folder), dialect=variety)
        read = sources.load_raw(cfg, variety, "train" if split == recipe.train_split else "test")
        assert sorted(read.dataset["text"]) == texts and set(read.dataset.column_names) == {"audio", "text"}
        assert read.hub_id is None  # a local copy


def test_a_recipe_that_left_the_hub_refuses_in_one_line_before_anything_loads():
    from arabicpeft import kaggle

    cfg = ExperimentConfig(source="cv-ar", dialect="common_voice")
    with pytest.raises(Exception) as caught:
        kaggle.preflight(cfg)
    line = user_message(caught.value)
    assert line.startswith("Common Voice is no longer loadable from the hub") and line.endswith(
        "then give its folder: --source cv-ar --dataset FOLDER.")
    with pytest.raises(ConfigError, match="Unknown dialect 'egyptian' for source casablanca — choose one of algeria, "
                                          "egypt, jordan, mauritania, morocco, palestine, uae, yemen or all"):
        ExperimentConfig(source="casablanca")
    with pytest.raises(DataUnavailableError, match="has no training split .* — train on another source"):
        sources.load_raw(ExperimentConfig(source="casablanca", dataset="x/y", dialect="egypt"), "egypt", "train")


def test_training_and_scoring_through_a_recipe(recipe_copies, tmp_path):
    """Casablanca's validation split trained on (--split-train), its test splits of two countries scored."""
    from arabicpeft.results import read_results
    from arabicpeft.train import run

    folder, held = recipe_copies["casablanca"]
    cfg = dataclasses_replace(_tiny_base(), source="casablanca", dataset=str(folder), split_train="validation",
                              dialect="egypt", test_sets=["egypt", "morocco"], output_dir=str(tmp_path / "run"))
    results = read_results(run(cfg, log=lambda m: None))
    data = results["data"]
    assert results["training"]["global_step"] == 2
    assert (data["train_pool"]["rows_in"], data["train_pool"]["rows_used"]) == (4, 4)
    assert {k: v["rows_used"] for k, v in data["test"].items()} == {"egypt": 2, "morocco": 2}
    assert data["source_records"]["card"] == "https://huggingface.co/datasets/UBC-NLP/Casablanca"
    assert data["source_records"]["licence"] == "CC BY-NC-ND 4.0"
    assert data["test"]["egypt"]["dataset"] == str(folder)
    # `evaluate` of the trained model reads the dataset it was trained on, unless given another
    assert sources.dataset_options(cfg, "casablanca") == {"dataset": str(folder)}
    assert sources.dataset_options(cfg, "casablanca", {"dataset": "x/y"}) == {"dataset": "x/y"}
    assert sources.dataset_options(cfg, "hub", {"text_column": "t"}) == {"text_column": "t"}


def test_evaluate_scores_a_base_model_on_a_recipes_test_sets(recipe_copies, tmp_path):
    from arabicpeft import evaluate
    from arabicpeft.results import read_results

    folder, held = recipe_copies["casablanca"]
    base = read_results(evaluate.run("tiny-random", tmp_path / "base", source="casablanca", test_sets=["egypt"],
                                     max_test_samples=2, data_options={"dataset": str(folder)}, log=lambda m: None))
    assert base["data"]["test"]["egypt"]["rows_used"] == 2 and set(base["metrics"]) == {"egypt"}


def test_a_study_design_takes_own_varieties(repo):
    from arabicpeft import designs

    base = _cfg(repo, test_sets=None)
    plan = designs.peft_vs_full(base, dialects=["sudanese", "najdi"], seeds=[42]).plan()
    assert sorted({(r.cfg.dialect, r.cfg.method) for r in plan}) == [
        ("najdi", "full"), ("najdi", "lora"), ("sudanese", "full"), ("sudanese", "lora")]
    assert all(r.cfg.dataset == str(repo) and r.cfg.test_set_names() == [r.cfg.dialect] for r in plan)


def test_the_early_checks_stop_a_bad_column_before_any_model_loads(repo):
    """kaggle.preflight (no model, no torch) reads a local dataset's schema: a missing column stops the run there."""
    from arabicpeft import kaggle

    with pytest.raises(DataUnavailableError, match="has no column 'transcript' for the text"):
        kaggle.preflight(_cfg(repo, text_column="transcript", model="tiny-random"))
    kaggle.preflight(_cfg(repo, model="tiny-random"))  # the right columns pass


def test_a_loading_script_dataset_says_how_to_read_its_parquet_export(monkeypatch):
    def script(path, *a, **k):  # what datasets 5 raises for a repo that ships a loading script
        raise RuntimeError("Dataset scripts are no longer supported, but found fleurs.py")

    monkeypatch.setattr(datasets, "get_dataset_split_names", script)
    cfg = ExperimentConfig(source="hub", dataset="someone/scripted-arabic", dialect="najdi")
    with pytest.raises(DataUnavailableError) as caught:
        sources.load_raw(cfg, "najdi", "test")
    assert user_message(caught.value) == (
        "The dataset someone/scripted-arabic is a loading script, which datasets 5 does not run — download its "
        "parquet export (huggingface_hub.snapshot_download(REPO, repo_type='dataset', "
        "revision='refs/convert/parquet')) and give that folder as --dataset.")
