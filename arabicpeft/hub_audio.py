"""Reading an audio dataset of the HuggingFace hub (or a local folder in any layout ``datasets.load_dataset``
reads: parquet, csv + audio, audiofolder) as audio records: ``audio`` + ``text`` (+ ``dialect``).

What a dataset is called and how its columns map is a :class:`HubDataset`: the generic ``--source hub --dataset
REPO[:CONFIG] --audio-column A --text-column T [--dialect-column D]``, or a named recipe of the sources registry
(:data:`arabicpeft.sources.SOURCES`), whose declaration holds the repo id, the config of each variety, the splits,
the columns, the licence, the gating and the citation, all taken from the dataset's card.

The audio column is read undecoded (``datasets.Audio(decode=False)``: datasets 5 decodes audio with torchcodec,
which our CPU machines lack); :func:`arabicpeft.audio.load_audio` decodes the bytes or paths when a record is
checked, so an undecodable clip is counted and skipped like any other. Every mistake is one line naming the
dataset, the column or split, and what to do (:class:`~arabicpeft.errors.DataUnavailableError`), raised before
the first record is decoded.

Public: :class:`HubDataset`, :data:`GENERIC`, :data:`TOKEN_HELP`, :func:`parse_dataset`, :func:`is_local`,
:func:`settings`, :func:`check_local`, :func:`read`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import dialects
from .errors import DataUnavailableError
from .hub import HUB_HOST, dataset_revision, hub_offline_mode, hub_reachable

TOKEN_HELP = ("accept its terms on its hub page, then give a HuggingFace token: on Kaggle, Add-ons -> Secrets -> add "
              "HF_TOKEN (a read token from huggingface.co/settings/tokens) and attach it to this notebook; "
              "elsewhere, set the HF_TOKEN environment variable or run `hf auth login`")


@dataclass(frozen=True)
class HubDataset:
    """How a hub audio dataset is read: where (``repo``; the config of each variety), which splits and columns.

    ``configs``: {variety: config name} when each variety is a config of the repo (Casablanca's countries); else
    the dataset is one config (``config``, None: the default) and its varieties are told apart by
    ``dialect_column`` or named by the run's ``--dialect``. ``train_split`` None: the dataset has no training
    split (a benchmark). ``segment_columns``: (start, end) columns in seconds when each row is a segment of a
    longer recording that its audio column names (SADA's episodes); ``data_files``: {split: file} of a copy whose
    split tables sit among other files (datasets then reads just the split's); ``load_options``: more keyword
    arguments of ``datasets.load_dataset`` (SADA's segment times read as text, so that a malformed one is one
    undecodable segment, not an unreadable table); ``builder``: the reader of a downloaded
    folder in a layout datasets cannot read (MASC's subtitle files: :func:`arabicpeft.subtitles.masc_split`).
    ``unavailable``: why it cannot be loaded from the hub and where to get it (then only a local copy,
    ``--dataset FOLDER``, is read). The rest documents it: the card's URL, licence, gating, citation.
    """

    repo: str
    card: str = ""
    config: Optional[str] = None
    configs: dict = field(default_factory=dict)
    train_split: Optional[str] = "train"
    test_split: str = "test"
    audio_column: str = "audio"
    text_column: str = "text"
    dialect_column: Optional[str] = None
    segment_columns: tuple = ()
    data_files: dict = field(default_factory=dict)
    load_options: dict = field(default_factory=dict)  # more keyword arguments of datasets.load_dataset
    builder: Optional[Callable] = None  # builder(folder, split) -> datasets.Dataset: a layout datasets cannot read
    licence: str = ""
    gated: str = ""  # what access needs, when the repo is gated
    citation: str = ""
    unavailable: str = ""

    @property
    def varieties(self) -> Optional[tuple[str, ...]]:
        """The varieties this declaration names (its configs), or None: whatever the data holds."""
        return tuple(self.configs) or None


GENERIC = HubDataset(repo="")  # --source hub --dataset REPO[:CONFIG]: the columns and splits the config names


def parse_dataset(spec: str) -> tuple[str, Optional[str]]:
    """(repo or folder, config or None) of ``REPO[:CONFIG]``; a local folder is taken whole (its path may hold a
    colon)."""
    if is_local(spec) or ":" not in spec:
        return spec, None
    repo, config = spec.rsplit(":", 1)
    return repo, config or None


def is_local(repo: str) -> bool:
    """Whether ``repo`` names a folder on this machine (read as it is) rather than a hub dataset."""
    return Path(repo).expanduser().exists()


def settings(cfg, recipe: HubDataset) -> dict:
    """What to read for ``cfg``: the config's options where given, else the recipe's: repo, config, the train and
    test splits and the audio, text and dialect columns."""
    repo, config = parse_dataset(cfg.dataset) if cfg.dataset else (recipe.repo, recipe.config)
    return {"repo": repo, "config": config or recipe.config,
            "train": cfg.split_train or recipe.train_split, "test": cfg.split_test or recipe.test_split,
            "audio": cfg.audio_column or recipe.audio_column, "text": cfg.text_column or recipe.text_column,
            "dialect": cfg.dialect_column or recipe.dialect_column, "segment": recipe.segment_columns}


def _gated(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the hub refusing a gated repo to an anonymous or unapproved user."""
    from huggingface_hub.errors import GatedRepoError

    while error is not None:
        if isinstance(error, GatedRepoError) or "gated" in str(error).lower():
            return True
        error = error.__cause__ or error.__context__
    return False


def _hub_call(name: str, call, *args, **kwargs):
    """``call(*args, **kwargs)`` with the hub's refusals as one line: a gated dataset says how to give a token."""
    try:
        return call(*args, **kwargs)
    except DataUnavailableError as e:
        if _gated(e):
            raise DataUnavailableError(f"The dataset {name} is gated on the hub", TOKEN_HELP + ".") from None
        raise
    except ValueError:
        raise  # a config or split datasets does not know: the caller names them
    except Exception as e:
        if _gated(e):
            raise DataUnavailableError(f"The dataset {name} is gated on the hub", TOKEN_HELP + ".") from None
        if "scripts are no longer supported" in str(e):  # datasets 4+ refuses a repo's loading script
            raise DataUnavailableError(f"The dataset {name} is a loading script, which datasets 5 does not run",
                                       "download its parquet export (huggingface_hub.snapshot_download(REPO, "
                                       "repo_type='dataset', revision='refs/convert/parquet')) and give that "
                                       "folder as --dataset.") from None
        detail = " ".join(str(e).split())
        if is_local(name.split(":")[0]):
            raise DataUnavailableError(f"Could not read the dataset folder {name}: {detail[:300]}", "check its files "
                                       "(the tables, their columns and values). Nothing else will be trained on "
                                       "instead.") from e
        raise DataUnavailableError(f"Could not load the dataset {name}: {detail[:300]}", "check the repo id and the "
                                   "internet connection. Nothing else will be trained on instead.") from e


def _open(repo: str, config: Optional[str], split: str, streaming: bool, recipe: HubDataset = GENERIC):
    """(dataset, revision, name) of one split, after checking that the config and the split exist."""
    import datasets

    local = is_local(repo)
    name = f"{repo}{':' + config if config else ''}"
    revision = None
    if recipe.builder is not None:  # a layout datasets cannot read: the recipe's own reader of the folder
        if not local:
            raise DataUnavailableError(f"{repo} is not a folder on this machine", "give the folder of the "
                                       "dataset's download as --dataset.")
        ds = recipe.builder(Path(repo).expanduser(), split)
        return (ds.to_iterable_dataset() if streaming else ds), None, name
    data_files = dict(recipe.load_options)
    if recipe.data_files:  # only the split's table: another split's missing file stops nothing
        if split not in recipe.data_files:
            raise DataUnavailableError(f"The dataset {name} has no split {split!r} (its splits: "
                                       f"{', '.join(recipe.data_files)})", "name one with --split-train / --split-test.")
        if local and not (Path(repo).expanduser() / recipe.data_files[split]).is_file():
            raise DataUnavailableError(f"The dataset folder {repo} has no {recipe.data_files[split]} (its {split} "
                                       "table)", "give the folder of the dataset as it is published, its tables "
                                       f"({', '.join(recipe.data_files.values())}) included.")
        data_files["data_files"] = {split: recipe.data_files[split]}
    if not local:
        if not hub_offline_mode() and not hub_reachable():
            raise DataUnavailableError(f"Cannot reach {HUB_HOST} to load the dataset {name}",
                                       "turn the internet on (Kaggle: Settings -> Internet), or download it and give "
                                       "its folder as --dataset.")
        revision = _hub_call(name, dataset_revision, repo)
    path = str(Path(repo).expanduser()) if local else repo
    if local and config and (Path(path) / config).is_dir() and config not in datasets.get_dataset_config_names(path):
        path, config = str(Path(path) / config), None  # a download of one config (e.g. a parquet export's folder)
    try:
        splits = _hub_call(name, datasets.get_dataset_split_names, path, config, revision=revision, **data_files)
    except ValueError as e:  # datasets names the configs it has ("BuilderConfig 'x' not found. Available: [...]")
        raise DataUnavailableError(f"The dataset {name} has no config {config!r} ({' '.join(str(e).split())})",
                                   "give one of its configs as --dataset REPO:CONFIG.") from None
    if split not in splits:
        raise DataUnavailableError(f"The dataset {name} has no split {split!r} (its splits: {', '.join(splits)})",
                                   "name one with --split-train / --split-test.")
    ds = _hub_call(name, datasets.load_dataset, path, config, split=split, streaming=streaming, revision=revision,
                   **data_files)
    return ds, revision, name


def _column_kinds(ds, peek: int = 100) -> dict[str, Any]:
    """{column: its datasets feature}; a stream whose schema is unknown is peeked at: the Python type of each
    column's first value that is not None among the first ``peek`` records (an empty CSV cell reads as None)."""
    if ds.features is not None:
        return dict(ds.features)
    kinds: dict[str, Any] = {}
    for n, record in enumerate(ds):
        for k, v in record.items():
            if kinds.get(k, type(None)) is type(None):
                kinds[k] = type(v)
        if n + 1 >= peek or type(None) not in kinds.values():
            break
    return kinds


def _is_text(kind) -> bool:
    import datasets

    return kind is str or (isinstance(kind, datasets.Value) and kind.dtype in ("string", "large_string"))


def _check_columns(ds, name: str, columns: dict) -> None:
    """One line per mistake: a column the dataset lacks, a text column that holds no text."""
    kinds = _column_kinds(ds)
    for column in columns.get("segment", ()):
        if column not in kinds:
            raise DataUnavailableError(f"The dataset {name} has no column {column!r} for the segment times (its "
                                       f"columns: {', '.join(kinds)})", "give the folder of the dataset as "
                                       "published (its segment tables), or cut the clips and use --source hub "
                                       "--dataset FOLDER with an audio column.")
    for role, column in columns.items():
        if role != "segment" and column and column not in kinds:
            raise DataUnavailableError(f"The dataset {name} has no column {column!r} for the {role} (its columns: "
                                       f"{', '.join(kinds)})", f"name the {role} column with --{role}-column.")
    text = columns["text"]
    if not _is_text(kinds[text]):
        kind = getattr(kinds[text], "dtype", None) or getattr(kinds[text], "__name__", type(kinds[text]).__name__)
        raise DataUnavailableError(f"The column {text!r} of the dataset {name} holds {kind} values, not text",
                                   "name the transcript column with --text-column.")


def _as_records(ds, columns: dict, root: Optional[Path]):
    """``ds`` with only ``audio`` (undecoded), ``text`` and ``dialect``; relative audio paths of a local folder's
    text column (a csv) are resolved against it."""
    import datasets

    keep = {columns[r]: r for r in ("audio", "text", "dialect") if columns[r]}
    segment = columns.get("segment", ())
    ds = ds.select_columns([*keep, *segment])
    kind = _column_kinds(ds)[columns["audio"]]
    audio = columns["audio"]
    if isinstance(kind, datasets.Audio):
        ds = ds.cast_column(audio, datasets.Audio(decode=False))  # decoded by arabicpeft.audio
    elif _is_text(kind) and root is not None:
        ds = ds.map(lambda r: {audio: str((root / r[audio]).resolve()) if r[audio] else r[audio]})
    text = columns["text"]
    ds = ds.map(lambda r: {text: "" if r[text] is None else r[text]})  # an empty cell: an empty transcript, counted
    if segment:  # the audio becomes {path, start, end}: arabicpeft.audio reads just that stretch of the recording
        start, end = segment
        ds = ds.map(lambda r: {audio: {"path": r[audio], "start": _seconds(r[start]), "end": _seconds(r[end])}},
                    remove_columns=list(segment))
    return ds.rename_columns({k: v for k, v in keep.items() if k != v})


def _seconds(value) -> Optional[float]:
    """A segment time as float seconds; None (the segment is then counted as undecodable) when it is no number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _of_variety(ds, name: str, column: str, variety: str, streaming: bool):
    """The rows of ``variety`` in the dialect column (its values read as variety names); one line naming the
    dataset, the column and its values when none is ``variety``, or naming a value that is no variety name (an
    empty cell included; streamed: when the stream reaches it)."""
    def named(value) -> str:
        try:
            return dialects.variety_name("" if value is None else value)
        except ValueError:
            raise DataUnavailableError(f"The dialect column {column!r} of the dataset {name} holds {value!r}, which "
                                       "is no variety name", "name another --dialect-column, or fix the value "
                                       "(letters, digits, '-' or '_').") from None

    if not streaming:
        values = {named(v) for v in set(ds["dialect"])}
        if variety not in values:
            raise DataUnavailableError(f"The dataset {name} has no rows of {variety!r} in its dialect column "
                                       f"{column!r} (its values: {', '.join(sorted(values))})",
                                       "pick one of those with --dialect / --test-sets.")
    return ds.filter(lambda record: named(record["dialect"]) == variety)


def check_local(cfg, recipe: HubDataset) -> None:
    """The configs, splits and columns a run of ``cfg`` reads from a local dataset folder, from its files' schema
    (streamed: nothing decoded or cached), so that a mistake stops the run before any model loads. A hub dataset
    is checked when it is read (that needs the network)."""
    s = settings(cfg, recipe)
    if not s["repo"] or not is_local(s["repo"]):
        return
    names = {cfg.dialect, *cfg.test_set_names()} - {dialects.POOLED}
    configs = {recipe.configs.get(v, s["config"]) for v in names | set(cfg.parts(cfg.dialect))}
    columns = {"audio": s["audio"], "text": s["text"], "dialect": None if recipe.configs else s["dialect"],
               "segment": s["segment"]}
    for config in sorted(configs, key=str):
        for split in filter(None, (s["train"], s["test"])):
            ds, _, name = _open(s["repo"], config, split, streaming=True, recipe=recipe)
            _check_columns(ds, name, columns)


def read(cfg, recipe: HubDataset, variety: str, split: str, pooled: bool):
    """(dataset of ``audio`` + ``text``, revision, the dataset's name) of one single-variety split of ``cfg``'s
    hub audio dataset (``recipe`` with the config's options). Raises
    :class:`~arabicpeft.errors.DataUnavailableError` in one line for a missing config, split or column, a text
    column that is not text, a gated dataset, a variety the data does not hold, or a dataset without a training
    split asked to train."""
    s = settings(cfg, recipe)
    if not s["repo"]:
        raise DataUnavailableError("No dataset named", "give --dataset REPO[:CONFIG] or a local folder.")
    config = recipe.configs.get(variety, s["config"])
    label = f"{s['repo']}{':' + config if config else ''}"
    wanted = s["train"] if split == "train" else s["test"]
    if not wanted:
        raise DataUnavailableError(f"The dataset {label} has no training split (it is a test set)",
                                   "train on another source and score on this one with `evaluate`.")
    if pooled and not recipe.configs and not s["dialect"]:
        raise DataUnavailableError(f"The dataset {label} has no dialect column named, so the varieties of a pooled "
                                   "set cannot be told apart", "give --dialect-column, or train one variety.")
    ds, revision, name = _open(s["repo"], config, wanted, cfg.streaming, recipe)
    columns = {"audio": s["audio"], "text": s["text"], "dialect": None if recipe.configs else s["dialect"],
               "segment": s["segment"]}
    _check_columns(ds, name, columns)
    ds = _as_records(ds, columns, Path(s["repo"]).expanduser() if is_local(s["repo"]) else None)
    if columns["dialect"]:
        ds = _of_variety(ds, name, columns["dialect"], variety, cfg.streaming)
    return ds, revision, None if is_local(s["repo"]) else name
