"""The data sources: one declaration per source in one table, and the readers of their records.

A source is where a run's records come from and what they are: precomputed log-mel features with label ids
(``"features"``: the paper's otozz hub sets) or audio with its transcript (``"audio"``), or either, told apart by
their columns (``"any"``: a local folder). ``--source NAME`` picks one :class:`Source` of :data:`SOURCES`;
adding a source is one declaration in that table and its reader.

- ``hub``: the paper's otozz sets, ``otozz/{dialect}_{train,test}_set`` (:mod:`arabicpeft.dialects`; 80 x 3000
  log-mel + whisper-small's label ids), read at the commit :func:`arabicpeft.hub.dataset_revision` records;
- ``local``: a folder (``data_path``) of ``save_to_disk`` copies of those sets or of train/test manifests
  (:func:`read_manifest`: ``audio`` + ``text``, optional ``dialect`` and ``synthetic``);
- ``sample``: the embedded synthetic sample set (a manifest folder, :data:`SAMPLE_DIR`);
- ``hub`` with ``--dataset REPO[:CONFIG]`` (or a local folder ``datasets.load_dataset`` reads): any audio dataset,
  its columns named by the config (:mod:`arabicpeft.hub_audio`);
- the named recipes of public Arabic sets (``fleurs-ar``, ``casablanca`` ...): one :class:`~arabicpeft.hub_audio.
  HubDataset` each, its repo, configs, splits and columns taken from the dataset's card (``card``).

A source declares its varieties (``varieties``; None: whatever its data holds, e.g. a manifest's or a dialect
column's values) and the members of its pooled set ``all`` (``pooled``); the config checks a run's varieties
against them.

A reader is ``read(cfg, variety, split, pooled) -> SourceSplit``: one single-variety split ("train" or "test")
of an :class:`~arabicpeft.config.ExperimentConfig` (the whole config, so a reader takes what options it needs),
``pooled`` when the variety is one of several read together. The records are checked and filtered, with counts,
by :mod:`arabicpeft.data`. Torch-free: ``datasets`` and ``pandas`` are imported by the readers, since
:mod:`arabicpeft.config` validates ``source`` against this table.

Public: :data:`SAMPLE_DIR`, :data:`SAMPLE_ENCODER_SECONDS`, :data:`MANIFEST_EXTENSIONS`, :data:`RECORDS`,
:class:`Source`, :class:`SourceSplit`, :data:`SOURCES`, :func:`get`, :func:`of`, :data:`DATASET_OPTIONS`,
:func:`dataset_options`, :func:`relation`, :func:`scored_relation`, :func:`load_raw`,
:class:`ManifestError`, :func:`read_manifest`, :func:`is_saved_dataset`, :func:`dialect_names`,
:func:`read_test_path`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

from . import dialects, hub_audio, subtitles
from .errors import ConfigError, DataUnavailableError, SetupError
from .hub import HUB_HOST, dataset_revision, hub_offline_mode, hub_reachable
from .hub_audio import HubDataset
from .manifests import ManifestError, read_manifest  # noqa: F401 (public here: the manifests of local folders)

SAMPLE_DIR = Path(__file__).parent / "sample_data"  # the embedded synthetic sample set (source "sample")
SAMPLE_ENCODER_SECONDS = 8  # every clip of the embedded sample set is shorter (tests/test_sample_gen.py)
MANIFEST_EXTENSIONS = (".jsonl", ".json", ".csv")
RECORDS = ("features", "audio", "any")  # what a source's records are ("any": told apart by their columns)


class SourceSplit(NamedTuple):
    """What a reader returns: one single-variety split and where it came from."""

    dataset: Any  # a datasets.Dataset, or an IterableDataset when streamed
    revision: Optional[str] = None  # the hub dataset's commit sha, so a rerun can pin the same data
    hub_id: Optional[str] = None  # the hub dataset repo read (None: not the hub)
    synthetic: bool = False  # the data says it is synthetic (a manifest's synthetic column)


@dataclass(frozen=True)
class Source:
    """One source of records. ``read`` is its reader (see the module docstring); the flags tell the rest of the
    package what it needs and what its scores mean, so no module asks for a source by name."""

    name: str  # the --source value
    help: str  # one line, shown by --help and the widget
    records: str  # one of RECORDS
    read: Callable[..., SourceSplit]
    needs_hub: bool = False  # reads the HuggingFace hub (the early checks probe it first)
    needs_data_path: bool = False  # reads the config's data_path
    synthetic: bool = False  # its scores say nothing about real Arabic (the sample set)
    n_mels: Optional[int] = None  # features sources: mel bins of the stored log-mel (otozz: 80)
    label_tokens: Optional[str] = None  # features sources: whose token ids the labels are ("whisper": the
    # multilingual tokenizer of tiny..large-v2; large-v3 shifts the special ids by one)
    max_clip_seconds: Optional[float] = None  # every clip is shorter: the automatic encoder window
    check: Optional[Callable[[Any], None]] = None  # check(cfg): a SetupError when the data is not there (cheap:
    # no network, nothing decoded), before anything loads
    related: tuple[str, ...] = ()  # sources drawn from the same recordings (a model trained on one is not
    # held out on the other); the relation is symmetric: declared on either side
    varieties: Optional[tuple[str, ...]] = dialects.VARIETIES  # the single varieties it holds (None: whatever
    # its data names: a manifest's or a dialect column's values, or the run's --dialect for the whole dataset)
    pooled: tuple[str, ...] = dialects.DIALECTS  # what its pooled set "all" joins by default (--pool overrides)
    hub_dataset: Optional[HubDataset] = None  # an audio dataset of the hub it reads (a recipe), or how --dataset
    # is read (the hub source: hub_audio.GENERIC)

    def __post_init__(self):
        if self.records not in RECORDS:
            raise ValueError(f"Source {self.name!r}: records is one of {', '.join(RECORDS)}, not {self.records!r}.")


# --- the hub -----------------------------------------------------------------------------------------


def _load_hub(repo_id: str, streaming: bool):
    """(dataset, revision): the data read at the commit recorded, so a rerun can pin the same data."""
    import datasets

    if not hub_offline_mode() and not hub_reachable():
        raise DataUnavailableError(
            f"Cannot reach {HUB_HOST} to load {repo_id}. Turn the internet on (Kaggle: Settings -> Internet), "
            "or download the data elsewhere and use source='local' with data_path pointing at it "
            "(a directory holding e.g. egyptian_train_set/ saved with save_to_disk). If the dataset is already "
            "in your HF cache, set HF_HUB_OFFLINE=1. Nothing else will be trained on instead."
        )
    revision = dataset_revision(repo_id)
    try:
        return datasets.load_dataset(repo_id, split="train", streaming=streaming, revision=revision), revision
    except Exception as e:
        raise DataUnavailableError(
            f"Could not load the hub dataset {repo_id}: {e}. Nothing else will be trained on instead."
        ) from e


def _read_otozz(cfg, variety: str, split: str, pooled: bool) -> SourceSplit:
    """The otozz set of ``variety`` (each repo keeps its records in one split named "train", the test repos too)."""
    entry = dialects.get(variety)
    repo = (entry.hub_train if split == "train" else entry.hub_test)[0]
    ds, revision = _load_hub(repo, cfg.streaming)
    return SourceSplit(ds, revision, repo)


def _available(cfg) -> HubDataset:
    """The recipe of ``cfg``'s source; a one-line refusal when it cannot be read from the hub and no copy is given."""
    recipe = get(cfg.source).hub_dataset
    if recipe.unavailable and not cfg.dataset:
        raise SetupError(recipe.unavailable, f"then give its folder: --source {cfg.source} --dataset FOLDER.")
    return recipe


def _read_hub_audio(cfg, variety: str, split: str, pooled: bool) -> SourceSplit:
    """One split of a hub audio dataset: the source's recipe, with the config's --dataset and column options."""
    ds, revision, hub_id = hub_audio.read(cfg, _available(cfg), variety, split, pooled)
    return SourceSplit(ds, revision, hub_id)


def _check_hub_dataset(cfg) -> None:
    hub_audio.check_local(cfg, _available(cfg))


# --- manifests and local folders ------------------------------------------------------------------------


def _load_manifest(path: Path, variety: str, pooled: bool):
    """(dataset of ``audio`` (absolute paths) + ``text``, synthetic) of the rows of ``variety`` in a manifest."""
    import datasets

    frame = read_manifest(path)
    if pooled and "dialect" not in frame:
        raise ValueError(f"{path} has no 'dialect' column, so the dialects of a pooled set cannot be told apart "
                         "(every one would read the whole file). Add the column, or train one dialect.")
    if "dialect" in frame:
        frame_dialects = frame["dialect"].astype(str).map(_variety_or_value)
        frame = frame[frame_dialects == variety]
        if frame.empty:
            raise DataUnavailableError(f"{path} has no rows with dialect == {variety!r} (it has "
                                       f"{sorted(set(frame_dialects))}). Add them, or pick one of those dialects.")
    missing = {"audio", "text"} - set(frame.columns)
    if missing:
        raise ValueError(f"Manifest {path} lacks the column(s) {sorted(missing)}: it needs 'audio' and 'text'.")
    # Relative audio paths are relative to the manifest; a missing file is a broken path, so it stops the run.
    frame = frame.assign(audio=[str((path.parent / a).resolve()) for a in frame["audio"].astype(str)])
    absent = [a for a in frame["audio"] if not os.path.exists(a)]
    if absent:
        raise FileNotFoundError(f"{len(absent)} audio file(s) listed in {path} do not exist, e.g. {absent[0]}.")
    frame = frame.assign(text=frame["text"].fillna("").astype(str))  # an empty cell is an empty transcript
    synthetic = bool("synthetic" in frame and frame["synthetic"].astype(str).str.lower().eq("true").all())
    return datasets.Dataset.from_pandas(frame.reset_index(drop=True), preserve_index=False), synthetic


def _variety_or_value(value: str) -> str:
    """A manifest's dialect cell as a variety name ("Saudi Arabia" -> "saudi_arabia"); a cell that is none stays
    as it is (lower case), so that no variety matches it and the error names it."""
    try:
        return dialects.variety_name(value)
    except ValueError:
        return value.strip().lower()


def _read_folder(root: Path, variety: str, split: str, streaming: bool, pooled: bool) -> SourceSplit:
    """``root`` holds either ``{hub_name}_{split}_set/`` (save_to_disk) or ``{split}.jsonl`` / ``.json`` / ``.csv``."""
    import datasets

    if not root.exists():
        raise FileNotFoundError(f"Local data directory not found: {root}. Check data_path: it must be a folder "
                                "holding the save_to_disk copies or the train/test manifests.")
    saved = root / f"{dialects.variety(variety).hub_name}_{split}_set"
    if saved.is_dir():
        ds = datasets.load_from_disk(str(saved))
        if isinstance(ds, datasets.DatasetDict):  # the otozz repos keep everything in one split named "train"
            ds = ds["train"]
        return SourceSplit(ds.to_iterable_dataset() if streaming else ds)
    for ext in MANIFEST_EXTENSIONS:
        manifest = root / f"{split}{ext}"
        if manifest.is_file():
            ds, synthetic = _load_manifest(manifest, variety, pooled)
            return SourceSplit(ds.to_iterable_dataset() if streaming else ds, synthetic=synthetic)
    raise FileNotFoundError(
        f"No {split} data for {variety} in {root}: expected a save_to_disk directory {saved.name}/ or a manifest "
        f"{split}.jsonl / {split}.csv with 'audio' and 'text' columns."
    )


def _read_local(cfg, variety: str, split: str, pooled: bool) -> SourceSplit:
    return _read_folder(Path(cfg.data_path or ""), variety, split, cfg.streaming, pooled)


def _read_sample(cfg, variety: str, split: str, pooled: bool) -> SourceSplit:
    return _read_folder(SAMPLE_DIR, variety, split, cfg.streaming, pooled)


def _check_data_path(cfg) -> None:
    if not Path(cfg.data_path).expanduser().exists():
        raise SetupError(f"the data folder {cfg.data_path} does not exist",
                         "check data_path (--data-path): a folder of save_to_disk sets or of train/test manifests.")


def _check_sample_audio(cfg) -> None:
    if not any((SAMPLE_DIR / "audio").glob("*.ogg")):
        raise SetupError("this copy of arabicpeft carries no sample audio (a Kaggle build of a notebook that trains "
                         "on hub data leaves it out)", "use notebook 00 for the sample set, train on source hub, or "
                         "build with `python kaggle/build.py --with-sample`.")


# --- the table ---------------------------------------------------------------------------------------

SOURCES: dict[str, Source] = {
    "hub": Source("hub", "the otozz datasets (needs internet); with --dataset: any hub audio dataset or local folder",
                  "features", _read_otozz, needs_hub=True, n_mels=80, label_tokens="whisper",
                  hub_dataset=hub_audio.GENERIC),
    "local": Source("local", "--data-path", "any", _read_local, needs_data_path=True, check=_check_data_path,
                    varieties=None),
    "sample": Source("sample", "the embedded synthetic set", "audio", _read_sample, synthetic=True,
                     max_clip_seconds=SAMPLE_ENCODER_SECONDS, check=_check_sample_audio),
    # Named recipes of public Arabic sets: every repo id, config, split and column from the dataset's card.
    "casablanca": Source("casablanca", "Casablanca, 8 dialects by country (test sets; needs internet)", "audio",
                         _read_hub_audio, needs_hub=True, check=_check_hub_dataset, hub_dataset=HubDataset(
        "UBC-NLP/Casablanca", "https://huggingface.co/datasets/UBC-NLP/Casablanca", configs={
            "algeria": "Algeria", "egypt": "Egypt", "jordan": "Jordan", "mauritania": "Mauritania",
            "morocco": "Morocco", "palestine": "Palestine", "uae": "UAE", "yemen": "Yemen"},
        train_split=None, test_split="test", text_column="transcription", licence="CC BY-NC-ND 4.0",
        citation="Talafha et al. 2024, Casablanca: Data and Models for Multidialectal Arabic Speech Recognition, "
                 "arXiv:2410.04527")),
    "mediaspeech": Source("mediaspeech", "MediaSpeech Arabic media speech (a test set; needs internet)", "audio",
                          _read_hub_audio, needs_hub=True, check=_check_hub_dataset, hub_dataset=HubDataset(
        "ymoslem/MediaSpeech", "https://huggingface.co/datasets/ymoslem/MediaSpeech",
        configs={"mediaspeech": "ar"}, train_split=None, test_split="train", text_column="sentence",
        licence="CC BY 4.0", citation="Kolobov et al. 2021, MediaSpeech: Multilanguage ASR Benchmark and Dataset, "
                                      "arXiv:2103.16193")),
    "mgb2": Source("mgb2", "MGB-2 Aljazeera broadcasts, a community copy on the hub (needs internet)", "audio",
                   _read_hub_audio, needs_hub=True, check=_check_hub_dataset, hub_dataset=HubDataset(
        "MohamedRashad/mgb2-arabic", "https://huggingface.co/datasets/MohamedRashad/mgb2-arabic",
        configs={"mgb2": "default"}, text_column="transcript",
        licence="not stated on the card; the MGB-2 challenge data is QCRI's (arabicspeech.org): check its terms",
        citation="Ali et al. 2016, The MGB-2 Challenge: Arabic Multi-Dialect Broadcast Media Recognition, "
                 "arXiv:1609.05625")),
    "cv-ar": Source("cv-ar", "Common Voice 17 Arabic (a local copy: it left the hub)", "audio", _read_hub_audio,
                    check=_check_hub_dataset, related=("hub",), hub_dataset=HubDataset(
        "mozilla-foundation/common_voice_17_0", "https://huggingface.co/datasets/mozilla-foundation/common_voice_17_0",
        configs={"common_voice": "ar"}, text_column="sentence", licence="CC0 1.0",
        gated="the hub repo asked to accept Mozilla's terms", citation="Ardila et al. 2020, Common Voice: A Massively"
        "-Multilingual Speech Corpus, arXiv:1912.06670",
        unavailable="Common Voice is no longer loadable from the hub (its repo is a gated loading script, which "
                    "datasets 5 does not run, and Mozilla distributes new releases itself): download the Arabic "
                    "release from commonvoice.mozilla.org (or a parquet copy of config 'ar' with columns audio and "
                    "sentence)")),
    "fleurs-ar": Source("fleurs-ar", "FLEURS Egyptian Arabic, ar_eg (a local copy of the hub's parquet export)",
                        "audio", _read_hub_audio, check=_check_hub_dataset, hub_dataset=HubDataset(
        "google/fleurs", "https://huggingface.co/datasets/google/fleurs", configs={"fleurs": "ar_eg"},
        text_column="transcription", licence="CC BY 4.0",
        citation="Conneau et al. 2022, FLEURS: Few-shot Learning Evaluation of Universal Representations of Speech, "
                 "arXiv:2205.12446",
        unavailable="google/fleurs is a loading-script dataset, which datasets 5 does not run: download config "
                    "ar_eg of its parquet export (huggingface_hub.snapshot_download('google/fleurs', repo_type="
                    "'dataset', revision='refs/convert/parquet', allow_patterns='ar_eg/*'); its ar_eg/ folder holds "
                    "train/, validation/ and test/)")),
    "sada": Source("sada", "SADA, Saudi TV speech by dialect (a local copy: the Kaggle dataset's folder)", "audio",
                   _read_hub_audio, check=_check_hub_dataset, hub_dataset=HubDataset(
        "sdaiancai/sada2022", "https://www.kaggle.com/datasets/sdaiancai/sada2022", audio_column="FileName",
        text_column="ProcessedText", segment_columns=("SegmentStart", "SegmentEnd"),
        data_files={"train": "train.csv", "validation": "valid.csv", "test": "test.csv"}, licence="CC BY-NC-SA 4.0",
        load_options={"converters": {"SegmentStart": str, "SegmentEnd": str}},
        citation="SDAIA and the Saudi Broadcasting Authority 2023, SADA: Saudi Audio Dataset for Arabic, "
                 "kaggle.com/datasets/sdaiancai/sada2022",
        unavailable="SADA is published on Kaggle as full episodes (batch_1/ ... batch_4/) with tables of segment "
                    "times (train.csv, valid.csv, test.csv), not on the hub: on Kaggle add the dataset "
                    "sdaiancai/sada2022 to the notebook (Add Input), elsewhere download it")),
    "masc": Source("masc", "MASC, Arabic YouTube speech with subtitles (a local copy: the IEEE DataPort download)",
                   "audio", _read_hub_audio, check=_check_hub_dataset, related=("hub",), hub_dataset=HubDataset(
        "masc", "https://ieee-dataport.org/open-access/masc-massive-arabic-speech-corpus", builder=subtitles.masc_split,
        train_split="clean_train", test_split="clean_test", segment_columns=("start", "end"), licence="CC BY 4.0",
        citation="Al-Fetyani et al. 2023, MASC: Massive Arabic Speech Corpus, IEEE SLT 2022, doi "
                 "10.1109/SLT54892.2023.10022652",
        unavailable="MASC is published on IEEE DataPort as whole videos with subtitle files (its hub copy is a "
                    "loading script datasets 5 does not run): download and unpack it (audios/, subtitles/, subsets/)")),
}


def get(name: str) -> Source:
    """The declaration of source ``name``; :class:`~arabicpeft.errors.ConfigError` naming the valid ones."""
    if name not in SOURCES:
        raise ConfigError(f"Unknown source {name!r}", f"choose one of {', '.join(SOURCES)}.")
    return SOURCES[name]


def of(cfg) -> Source:
    """The declaration of the source ``cfg`` reads (``cfg.source``'s). Every module asks this, not :func:`get`,
    about a config's data, so that options of a config that refine what its source reads have one place here:
    ``--dataset`` makes the hub source (or a recipe) read that audio dataset, from the hub or a local folder."""
    source = get(cfg.source)
    dataset = getattr(cfg, "dataset", None)  # configs saved before the option read the same
    if source.hub_dataset is None or not (dataset or source.read is _read_hub_audio):
        return source
    varieties = source.hub_dataset.varieties
    local = bool(dataset) and hub_audio.is_local(hub_audio.parse_dataset(dataset)[0])
    return replace(source, records="audio", read=_read_hub_audio, needs_hub=not local, n_mels=None,
                   label_tokens=None, varieties=varieties, pooled=varieties or (), check=_check_hub_dataset)


DATASET_OPTIONS = ("dataset", "split_test", "audio_column", "text_column", "dialect_column", "pool")  # what
# scoring a hub audio dataset or a recipe's test sets reads of a config


def dataset_options(trained, source: str, given: Optional[dict] = None) -> dict:
    """The :data:`DATASET_OPTIONS` of test sets of ``source``: those ``given`` (None: not given), and, when no
    ``dataset`` is given and ``source`` is the one the config ``trained`` read, that config's (the same dataset
    and columns)."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    if "dataset" in given or trained is None or trained.source != source:
        return given
    inherited = {f: getattr(trained, f, None) for f in DATASET_OPTIONS}
    return {**{k: v for k, v in inherited.items() if v is not None}, **given}


def relation(trained: Optional[dict], source: str, test_set: str, data: Optional[str] = None) -> Optional[str]:
    """How the test set ``test_set`` of ``source`` (``data``: its data_path or dataset, if any) stands to the training
    data of a model whose saved config is ``trained`` (a dict: source, dialect, data_path/dataset): "trained" (one of
    its training varieties, from the same data), "related" (other data of the same or a related source, see
    :attr:`Source.related`), "held-out"; None for a model with no training config (a base model)."""
    if not trained or not trained.get("source"):
        return None

    def where(name: str, value: Optional[str]) -> Optional[str]:  # a path counts only for a source that reads one
        return value if name not in SOURCES or SOURCES[name].needs_data_path else None

    if trained["source"] == source:
        if (trained.get("dataset") or where(source, trained.get("data_path"))) == where(source, data):
            dialect = trained.get("dialect")
            parts = dialects.get(dialect).parts if str(dialect).lower() in dialects.REGISTRY else (dialect,)
            return "trained" if test_set in parts else "related"
        return "related"
    if (trained["source"] == "hub" and trained.get("dataset")) or (source == "hub" and data):
        return "held-out"  # the hub source with --dataset reads another dataset, not the otozz sets recipes relate to
    declared = [(SOURCES[a], b) for a, b in ((trained["source"], source), (source, trained["source"])) if a in SOURCES]
    return "related" if any(b in s.related for s, b in declared) else "held-out"


def scored_relation(result: dict, test_set: str) -> Optional[str]:
    """:func:`relation` of a results file's scored set ``test_set`` (a transformed one's label ``"{set}+{spec}"``
    read as its set): as its evaluation recorded it, else from its training config and the data scored."""
    from .transforms import split_name

    ev, config = result.get("evaluation") or {}, result.get("config") or {}
    if test_set in (ev.get("relation") or {}):
        return ev["relation"][test_set]
    return relation(config, ev.get("source") or config.get("source"), split_name(test_set)[0],
                    ev.get("data_path") if ev else config.get("data_path"))


def load_raw(cfg, variety: str, split: str, pooled: bool = False) -> SourceSplit:
    """One single-variety split ("train" or "test") of ``cfg.source``, as its reader gives it (unfiltered), marked
    synthetic when the source is. ``pooled``: the variety is one of several read together (a manifest must then
    say which row is which)."""
    if variety == dialects.POOLED:
        raise ValueError(f"load_raw takes a single variety, not the pooled {variety!r}.")
    source = of(cfg)
    read = source.read(cfg, variety, split, pooled)
    return read._replace(synthetic=read.synthetic or source.synthetic)


# --- one test set from a path --------------------------------------------------------------------------


def is_saved_dataset(path) -> bool:
    """A directory written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict)."""
    path = Path(path)
    return path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json"))


def dialect_names(values: list, where: str, allow_empty: bool = False) -> list[str]:
    """The sorted variety names of a 'dialect' column's ``values`` (:func:`arabicpeft.dialects.variety_name`: the
    paper's names keep their meaning, any other is a variety the data declares; ``allow_empty``: empty cells and
    None are passed over). Raises ValueError naming ``where`` (the manifest or dataset), each value that is no
    variety name and the first row (1-based) that holds it."""
    names, bad = set(), {}
    for row, value in enumerate(values, start=1):
        if allow_empty and (value is None or not str(value).strip()):
            continue
        try:
            names.add(dialects.variety_name(value))
        except ValueError:
            bad.setdefault(str(value), row)
    if bad:
        raise ValueError(f"{where} has values in its 'dialect' column that are no variety names: "
                         + ", ".join(f"{v!r} (first at row {row})" for v, row in bad.items())
                         + ". Use lower-case letters, digits, '-' or '_', starting with a letter (e.g. sudanese).")
    return sorted(names)


def read_test_path(path) -> tuple[dict, bool]:
    """({name: dataset}, synthetic) of one manifest file (``.jsonl``/``.json``/``.csv``: ``audio`` + ``text``,
    optional ``dialect``) or one ``save_to_disk`` directory (features or audio records; a DatasetDict's ``test``
    split, else its only split), whatever its name. Rows with a ``dialect`` column form one set per dialect;
    otherwise the data is one set named after the file or directory."""
    import datasets

    path = Path(path)
    if path.is_file() and path.suffix in MANIFEST_EXTENSIONS:
        columns = read_manifest(path)
        if "dialect" not in columns:
            ds, synthetic = _load_manifest(path, "", pooled=False)
            return {path.stem: ds}, synthetic
        parts, synthetic = {}, False
        for name in dialect_names(columns["dialect"].astype(str).tolist(), f"The manifest {path}"):
            parts[name], synth = _load_manifest(path, name, pooled=True)
            synthetic |= synth
        return parts, synthetic
    if not is_saved_dataset(path):
        raise FileNotFoundError(f"{path} is neither a manifest ({', '.join(MANIFEST_EXTENSIONS)}) nor a "
                                "save_to_disk directory.")
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["test"] if "test" in ds else ds[next(iter(ds))] if len(ds) == 1 else None
        if ds is None:
            raise ValueError(f"{path} holds the splits {sorted(datasets.load_from_disk(str(path)))}: "
                             "which one is the test set? Save only it, or name it 'test'.")
    if "dialect" not in ds.column_names:
        return {path.name: ds}, False
    names = dialect_names(ds["dialect"], f"The dataset {path}")
    return {n: ds.filter(lambda r, n=n: dialects.variety_name(r["dialect"]) == n) for n in names}, False
