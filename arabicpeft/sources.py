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
:class:`Source`, :class:`SourceSplit`, :data:`SOURCES`, :func:`get`, :func:`of`, :func:`load_raw`,
:class:`ManifestError`, :func:`read_manifest`, :func:`is_saved_dataset`, :func:`dialect_names`,
:func:`read_test_path`.
"""

from __future__ import annotations

import codecs
import io
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

from . import dialects, hub_audio
from .errors import ConfigError, DataUnavailableError, SetupError
from .hub import HUB_HOST, dataset_revision, hub_offline_mode, hub_reachable
from .hub_audio import HubDataset

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
    # no network, no datasets), before anything loads
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


def _read_hub_audio(cfg, variety: str, split: str, pooled: bool) -> SourceSplit:
    """One split of a hub audio dataset: the source's recipe, with the config's --dataset and column options."""
    recipe = get(cfg.source).hub_dataset
    if recipe.unavailable and not cfg.dataset:
        raise DataUnavailableError(recipe.unavailable, f"then give its folder: --source {cfg.source} --dataset FOLDER.")
    ds, revision, hub_id = hub_audio.read(cfg, recipe, variety, split, pooled)
    return SourceSplit(ds, revision, hub_id)


def _check_hub_dataset(cfg) -> None:
    recipe = get(cfg.source).hub_dataset
    if recipe.unavailable and not cfg.dataset:
        raise SetupError(recipe.unavailable, f"then give its folder: --source {cfg.source} --dataset FOLDER.")


# --- manifests and local folders ------------------------------------------------------------------------


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file, the line and the likely cause."""


def _utf16_byte_order(raw: bytes) -> Optional[str]:
    """``little-endian`` or ``big-endian`` when ``raw`` looks like UTF-16 text (a UTF-16 byte-order mark, or NUL
    bytes, which UTF-8 text does not hold, in at least a tenth of its odd or even offsets: the high bytes of ASCII
    characters), else None."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "little-endian" if raw.startswith(codecs.BOM_UTF16_LE) else "big-endian"
    odd, even = raw[1::2].count(0), raw[0::2].count(0)
    if max(odd, even) < max(1, len(raw) // 20):  # not a stray NUL or two
        return None
    return "little-endian" if odd > even else "big-endian"


def read_manifest(path):
    """A manifest (``.jsonl``: one JSON object a line; ``.json``: a list of objects; ``.csv``) as a pandas frame.

    UTF-8 with or without a byte-order mark, Unix or Windows line endings. Raises :class:`ManifestError`
    naming the file, the line and the likely cause (UTF-16 text, with or without a byte-order mark, is named).
    """
    import pandas as pd

    path = Path(path)
    raw = path.read_bytes()
    utf16 = _utf16_byte_order(raw)
    if utf16:
        raise ManifestError(f"Could not read the manifest {path}: it is UTF-16 ({utf16}) text, not UTF-8. Save it as "
                            "UTF-8.")
    try:
        text = raw.decode("utf-8-sig")  # drops a byte-order mark (Excel and Notepad write one)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ManifestError(f"Could not read the manifest {path}, line {line}: it is not UTF-8 text ({e.reason} "
                            f"at byte {e.start}). Save it as UTF-8.") from e
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if path.suffix == ".csv":
        try:
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as e:
            detail = " ".join(str(e).split()).rstrip(".")  # pandas' message names the line
            raise ManifestError(f"Could not read the manifest {path}: {detail}. Likely cause: a field holding a comma, "
                                "a quote or a line break is not quoted; put such fields in double quotes.") from e
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"Could not read the manifest {path}, line {e.lineno}: not valid JSON ({e.msg}, "
                                f"column {e.colno}). A .json manifest is a list of objects; use .jsonl for one "
                                "object a line.") from e
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ManifestError(f"The manifest {path} must be a JSON list of objects like "
                                '[{"audio": "a.wav", "text": "..."}], got a ' + type(rows).__name__ + ".")
        return pd.DataFrame(rows)
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"Could not read the manifest {path}, line {number}: not valid JSON ({e.msg}, "
                                f"column {e.colno}). Each line must be one complete JSON object, e.g. "
                                '{"audio": "a.wav", "text": "..."}.') from e
        if not isinstance(row, dict):
            raise ManifestError(f"Could not read the manifest {path}, line {number}: a JSON "
                                f"{type(row).__name__}, not an object with 'audio' and 'text'.")
        rows.append(row)
    return pd.DataFrame(rows)


def _load_manifest(path: Path, variety: str, pooled: bool):
    """(dataset of ``audio`` (absolute paths) + ``text``, synthetic) of the rows of ``variety`` in a manifest."""
    import datasets

    frame = read_manifest(path)
    if pooled and "dialect" not in frame:
        raise ValueError(f"{path} has no 'dialect' column, so the dialects of a pooled set cannot be told apart "
                         "(every one would read the whole file). Add the column, or train one dialect.")
    if "dialect" in frame:
        frame_dialects = frame["dialect"].astype(str).str.lower()
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
                   label_tokens=None, varieties=varieties, pooled=varieties or ())


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
    """The sorted registry names of a 'dialect' column's ``values`` (``allow_empty``: empty cells and None are
    passed over). Raises ValueError naming ``where`` (the manifest or dataset), each unknown value and the first
    row (1-based) that holds it."""
    names, unknown = set(), {}
    for row, value in enumerate(values, start=1):
        if allow_empty and (value is None or not str(value).strip()):
            continue
        known = dialects.REGISTRY.get(str(value).strip().lower())
        if known:
            names.add(known.name)
        else:
            unknown.setdefault(str(value), row)
    if unknown:
        raise ValueError(f"{where} has unknown dialect(s) in its 'dialect' column: "
                         + ", ".join(f"{v!r} (first at row {row})" for v, row in unknown.items())
                         + f". Valid names: {', '.join(dialects.NAMES)}; fix those values.")
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
    return {n: ds.filter(lambda r, n=n: str(r["dialect"]).lower() == n) for n in names}, False
