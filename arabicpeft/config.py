"""One plain dataclass configures a run; the CLI, the widget pickers, the notebooks and the results files share it.

:class:`ExperimentConfig` is the one source of a run's allowed values (``Literal`` types and the names of a
registry: :data:`arabicpeft.sources.SOURCES`, :data:`arabicpeft.methods.METHODS`; :meth:`ExperimentConfig.choices`),
of the varieties a run may name (those its source declares: :meth:`ExperimentConfig.parts`), of each option's
help (field metadata, which the CLI prints), and of which fields a rerun may change
(:meth:`ExperimentConfig.resumable_fields`) or only say where and how a run executes
(:meth:`ExperimentConfig.runtime_fields`).

Public: :data:`Precision`, :data:`Mixture`, :data:`SubtitleFormat`, :data:`PRECISIONS`, :data:`MIXTURES`,
:data:`SUBTITLE_FORMATS`, :data:`QUANTIZED`, :data:`CONFIG_FILE`, :data:`PAPER_GENERATION_MAX_LENGTH`, :class:`ExperimentConfig`, :data:`DEMO_RUN`, :func:`demo_config`.
"""

from __future__ import annotations

import functools
import json
import numbers
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Literal, Optional

from . import dialects, methods, sources
from .errors import ConfigError
from .feature_cache import Dtype as FeatureCacheDtype
from .sources import SAMPLE_ENCODER_SECONDS

Precision = Literal["fp32", "fp16", "bf16", "int8", "nf4"]  # what each needs: arabicpeft.device.PRECISION_HARDWARE
Placement = Literal["both", "encoder", "decoder"]  # arabicpeft.placement.PLACEMENTS: which tower gets adapters
Mixture = Literal["natural", "balanced"]  # how a pooled train set ("all") draws on its dialects
SubtitleFormat = Literal["srt", "vtt"]  # what arabicpeft.transcribe writes beside its JSONL
PRECISIONS, MIXTURES, SUBTITLE_FORMATS = (typing.get_args(t) for t in (Precision, Mixture, SubtitleFormat))
# bitsandbytes-quantized base weights: only a method that declares it trains on them (QLoRA); never merged at them
QUANTIZED = ("int8", "nf4")

CONFIG_FILE = "arabicpeft_config.json"  # saved next to an adapter/model: how to rebuild its base

# The paper's decoding budget (their evaluate_dialects.py), for exact reproduction: it cuts references longer
# than 225 tokens, which the 448-position label filter admits. Our default (None) is the model's own limit.
PAPER_GENERATION_MAX_LENGTH = 225


# How a numeric field's bounds read in a message, by kind: "min"/"max" include the limit, "gt"/"lt" exclude it.
_BOUNDS = {"min": ("at least", lambda v, b: v >= b), "gt": ("greater than", lambda v, b: v > b),
           "max": ("at most", lambda v, b: v <= b), "lt": ("less than", lambda v, b: v < b)}


def _section(title: str):
    """A field maker for one section of :class:`ExperimentConfig`: every field carries its one-line help, which
    ``python -m arabicpeft train --help`` prints, so the documentation cannot drift. ``resume``: a rerun into
    the same output folder may change it and still continue the same run; ``runtime``: it says where or how the
    run executes, not what is trained or scored. ``choices``: for a field whose values are a registry's names,
    a function giving them, asked at each use (so an entry added later is allowed). A numeric field declares its
    valid range here, once, as bounds (``min=1``, ``gt=0``, ``max=1``, ``lt=1``): the config, the CLI and the
    widgets refuse a value outside it (:meth:`ExperimentConfig.check_value`)."""

    def documented(default, help: str, resume: bool = False, runtime: bool = False,
                   choices: Optional[Callable[[], tuple]] = None, **bounds):
        if set(bounds) - set(_BOUNDS):
            raise TypeError(f"bounds are {', '.join(_BOUNDS)}, got {sorted(bounds)}")
        meta = {"help": help, "section": title, "resume": resume, "runtime": runtime, "bounds": bounds,
                "choices": choices}
        if isinstance(default, (dict, list)):
            return field(default_factory=lambda: type(default)(default), metadata=meta)
        return field(default=default, metadata=meta)

    return documented


_what, _data, _lora, _peft, _optim, _where = (_section(t) for t in (
    "what to train", "data", "LoRA", "other PEFT methods", "optimisation (Seq2SeqTrainer)", "where"))


@dataclass
class ExperimentConfig:
    """Everything one run needs. The defaults are the paper's protocol on the hub data: LoRA on
    openai/whisper-small, Egyptian, 5000 steps with early stopping (a GPU job); ``demo_config`` is the offline
    CPU job. Each field's help (``dataclasses.fields(ExperimentConfig)[i].metadata["help"]``) is what the CLI
    shows."""

    dialect: dialects.Name = _what("egyptian", "training set: one variety its source declares (the paper's: "
                                   + ", ".join(dialects.VARIETIES) + "), or all (pooled: --pool, by default the "
                                   "paper's five dialects, no MSA)")
    method: str = _what("lora", "; ".join(f"{m.name}: {m.help}" for m in methods.METHODS.values()),
                        choices=lambda: tuple(methods.METHODS))
    model: str = _what("openai/whisper-small", "starting model: a hub id, a local directory, or an offline name")
    precision: Precision = _what("fp32", "weights/compute precision; fp16, int8 and nf4 need a CUDA GPU")
    seed: int = _what(42, "picks the 80/20 train/validation split and the initialisation (paper: 42, 84, 168)",
                    min=0, max=2**32 - 1)  # numpy's seeds

    source: str = _data("hub", "; ".join(f"{s.name}: {s.help}" for s in sources.SOURCES.values()),
                        choices=lambda: tuple(sources.SOURCES))
    data_path: Optional[str] = _data(None, "for source local: a folder of save_to_disk sets or a train/test "
                                     ".jsonl/.csv manifest with audio and text")
    dataset: Optional[str] = _data(None, "for source hub or a recipe: an audio dataset REPO[:CONFIG] of the hub, or "
                                   "a local folder datasets.load_dataset reads (parquet, csv + audio, audiofolder); "
                                   "source hub without it: the paper's otozz sets")
    split_train: Optional[str] = _data(None, "with --dataset: the training split (default: the recipe's, else train)")
    split_test: Optional[str] = _data(None, "with --dataset: the test split (default: the recipe's, else test)")
    audio_column: Optional[str] = _data(None, "with --dataset: the audio column (default: the recipe's, else audio)")
    text_column: Optional[str] = _data(None, "with --dataset: the transcript column (default: the recipe's, else "
                                       "text)")
    dialect_column: Optional[str] = _data(None, "with --dataset: the column naming each row's variety (its values "
                                          "are varieties; default: none, the whole dataset is --dialect)")
    pool: Optional[list[str]] = _data(None, "comma-separated varieties the pooled set 'all' joins (default: the "
                                      "source's: the paper's five dialects, or a recipe's varieties)")
    streaming: bool = _data(False, "stream the hub data instead of caching it (one dialect decoded is ~20 GB)")
    val_fraction: float = _data(0.2, "share of the training set held out for validation (model selection)",
                                gt=0, lt=1)
    test_sets: Optional[list[dialects.Name]] = _data(None, "comma-separated varieties to score on (default: the training "
                                           "set's own)")
    max_train_samples: Optional[int] = _data(None, "use at most this many training utterances (default: all)",
                                            min=1)
    train_fraction: float = _data(1.0, "train on the first round(fraction x n) training utterances (the paper's "
                                  "MSA train-size curve)", gt=0, max=1)
    mixture: Mixture = _data("natural", "pooled sets: natural proportions, or balanced (equal utterances per "
                             "dialect)")
    max_train_per_dialect: Optional[int] = _data(None, "pooled sets: at most this many utterances of each dialect",
                                                min=1)
    max_eval_samples: Optional[int] = _data(None, "validation utterances per evaluation (default: all; "
                                            "needed with streaming)", min=1)
    max_test_samples: Optional[int] = _data(None, "score at most this many utterances per test set (default: all)",
                                           min=1)
    feature_cache: Optional[str] = _data(None, "folder of a compact log-mel cache (python -m arabicpeft cache): the "
                                         "data are read from it, the same model inputs bitwise (float32); "
                                         "splits not there yet are written first, in one pass over the source",
                                         resume=True, runtime=True)
    feature_cache_dtype: FeatureCacheDtype = _data("float32", "values of a new feature cache: float32 (lossless) or "
                                                   "float16 (half the bytes, not lossless)")
    encoder_seconds: Optional[float] = _data(None, "cut the encoder window to this many seconds (faster on CPU; "
                                             "every clip must be shorter). Default: 8 for source sample, "
                                             "else the model's 30", gt=0)

    lora_r: int = _lora(32, "LoRA rank", min=1)
    lora_alpha: int = _lora(64, "LoRA scaling alpha (the update is scaled by alpha / r)", gt=0)
    lora_dropout: float = _lora(0.05, "dropout on the LoRA branch", min=0, lt=1)
    lora_targets: str = _lora("qv", "layers that get an adapter: a preset of the model's family (Whisper: qv, "
                              "qkvo, all-linear; Qwen3-ASR: the same) or comma-separated module names")
    adapter_placement: Placement = _lora("both", "which tower gets the adapters: both (every layer named by "
                                         "lora_targets), encoder (Whisper's encoder, Qwen3-ASR's audio tower) or "
                                         "decoder (Whisper's decoder, Qwen3-ASR's language model)")
    use_dora: bool = _lora(False, "DoRA: weight-decomposed LoRA")
    use_rslora: bool = _lora(False, "rsLoRA: scale the update by alpha / sqrt(r) instead of alpha / r")
    lora_init: methods.LoraInit = _lora("default", "how the LoRA matrices start: " + "; ".join(
        f"{name}: {what}" for name, (_, what) in methods.LORA_INITS.items()))
    init_adapter: Optional[str] = _lora(None, "a saved adapter to continue training (instead of a fresh one)")
    vera_r: int = _peft(256, "VeRA: rank of the frozen random projections shared by every layer", min=1)
    vera_d_initial: float = _peft(0.1, "VeRA: initial value of the trained scaling vector d", gt=0)
    adalora_target_r: int = _peft(8, "AdaLoRA: mean rank per layer left after the rank budget is allocated "
                                  "(lora_r is the rank it starts from)", min=1)

    learning_rate: Optional[float] = _optim(None, "peak learning rate (default: the method's own, " + ", ".join(
        f"{m.name} {m.learning_rate:g}" for m in methods.METHODS.values()) + ")", gt=0)
    warmup_steps: int = _optim(500, "linear warm-up steps", min=0)
    max_steps: int = _optim(5000, "training steps (optimizer updates); a rerun may raise it while the run has no "
                            "checkpoint (the learning-rate schedule belongs to it)", resume=True, min=1)
    batch_size: int = _optim(8, "training utterances per optimizer step, all processes (GPUs) and accumulation "
                             "passes together: each pass of each process takes batch_size / (processes x "
                             "gradient_accumulation_steps)", min=1)
    eval_batch_size: int = _optim(16, "utterances per batch when scoring", resume=True, runtime=True,
                                 min=1)
    gradient_accumulation_steps: int = _optim(1, "forward/backward passes per optimizer step, each on a share of "
                                              "batch_size (less memory; the step still trains on batch_size)",
                                              min=1)
    adam_beta2: float = _optim(0.999, "AdamW beta2 (the paper: 0.99)", min=0, lt=1)
    weight_decay: float = _optim(0.0, "AdamW weight decay", min=0)
    gradient_checkpointing: bool = _optim(False, "recompute activations to save GPU memory (slower)")
    eval_steps: int = _optim(250, "validate and save a checkpoint every this many steps", min=1)
    early_stopping_patience: Optional[int] = _optim(3, "stop after this many validations without a better WER "
                                                    "(0: never)", min=0)
    logging_steps: int = _optim(25, "log the training loss every this many steps", min=1)
    generation_max_length: Optional[int] = _optim(None, "longest transcript decoded, in tokens (default: the model's "
                                                  "limit, so every admitted reference can be matched; "
                                                  f"{PAPER_GENERATION_MAX_LENGTH} reproduces the paper)", min=1)
    num_workers: int = _optim(0, "data-loader worker processes", resume=True, runtime=True, min=0)
    time_budget_s: Optional[float] = _optim(None, "stop training cleanly (and save) after this many seconds",
                                            resume=True, runtime=True, gt=0)
    evaluate_before: bool = _optim(True, "score the starting model on the test sets too", resume=True)

    output_dir: str = _where("runs/experiment", "folder for checkpoints, the model and results.json (a rerun "
                             "with the same config resumes there)", resume=True, runtime=True)
    resume_from: Optional[str] = _where(None, "a checkpoint or run folder to resume from (default: this run's "
                                        "own latest checkpoint)", resume=True, runtime=True)
    extra: dict = _where({}, "free-form notes carried into the results file (not a command-line option)",
                         resume=True)

    def __post_init__(self) -> None:
        try:
            self.dialect = dialects.variety(self.dialect).name
            if self.test_sets is not None:
                self.test_sets = [dialects.variety(t).name for t in self.test_sets]
            if self.pool is not None:
                self.pool = [dialects.variety(t).name for t in self.pool]
        except ValueError as e:
            raise ConfigError(str(e)) from None
        for f in fields(self):
            allowed, value = self.choices(f.name), getattr(self, f.name)
            if allowed and value not in allowed:
                raise ConfigError(f"Unknown {f.name} {value!r}", f"choose one of {', '.join(allowed)}.")
        self._check_varieties()
        for f in fields(self):
            self.check_value(f.name, getattr(self, f.name))
        if sources.of(self).needs_data_path and not self.data_path:
            raise ConfigError(f"source={self.source!r} needs data_path",
                              "give a save_to_disk directory or an audio manifest folder (--data-path).")
        method = methods.get(self.method)
        if self.init_adapter and not method.peft_config:
            raise ConfigError(f"init_adapter continues a saved adapter, and method {self.method} trains no adapter",
                              f"choose an adapter method ({', '.join(_methods_with('peft_config'))}).")
        if self.precision in QUANTIZED and not method.quantized:
            raise ConfigError(
                f"{method.title[0].upper()}{method.title[1:]} of a {self.precision}-quantized model is not possible "
                "(its base weights are frozen integers)",
                f"use {' or '.join(f'method={n!r}' for n in _methods_with('quantized'))} or precision fp32/fp16/bf16.")
        if method.check:
            method.check(self)
        if not any(m.strip() for m in self.lora_targets.split(",")):
            raise ConfigError("lora_targets is empty", "give a preset of the model's family (e.g. qv) or module names.")

    def _check_varieties(self) -> None:
        """Every variety the run names is one its source declares (a source whose data names them, a manifest or a
        dialect column, is checked when read); the pooled set has members."""
        source = sources.of(self)
        if self.dialect == dialects.POOLED and not self.parts(dialects.POOLED):
            raise ConfigError(f"The pooled set {dialects.POOLED!r} of source {self.source} has no declared members",
                              "name them with --pool A,B (varieties of its data), or train one variety.")
        if source.varieties is None:
            return
        named = {self.dialect, *(self.test_sets or []), *(self.pool or [])} - {dialects.POOLED}
        for name in sorted(named - set(source.varieties)):
            raise ConfigError(f"Unknown dialect {name!r} for source {self.source}",
                              f"choose one of {', '.join(source.varieties)} or {dialects.POOLED}.")

    def parts(self, name: str) -> tuple[str, ...]:
        """The single varieties set ``name`` is made of: the pooled set's members (``pool``, else the source's
        ``pooled``), or ``name`` itself."""
        if name != dialects.POOLED:
            return (name,)
        return tuple(self.pool) if self.pool else sources.of(self).pooled

    @property
    def lr(self) -> float:
        """The peak learning rate: ``learning_rate``, else the method's default (``methods.get(method)
        .learning_rate``, with its source)."""
        return self.learning_rate if self.learning_rate is not None else methods.get(self.method).learning_rate

    def test_set_names(self) -> list[str]:
        return list(self.test_sets) if self.test_sets else list(self.parts(self.dialect))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown config fields: {', '.join(unknown)}", "remove them; the fields are those of "
                              "ExperimentConfig (python -m arabicpeft train --help).")
        return cls(**values)

    @classmethod
    def from_json(cls, path) -> "ExperimentConfig":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def saved_with(cls, model_dir) -> Optional["ExperimentConfig"]:
        """The config saved next to an adapter or model in ``model_dir``, or None when there is none (a model
        not trained by arabicpeft); :meth:`saved_in` when one is required."""
        path = Path(model_dir) / CONFIG_FILE
        return cls.from_json(path) if path.is_file() else None

    @classmethod
    def saved_in(cls, model_dir) -> "ExperimentConfig":
        """The config saved next to a trained adapter or model (``model_dir/arabicpeft_config.json``)."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ConfigError(f"the model folder {model_dir} does not exist",
                              "give the 'model' folder a train run saved (e.g. runs/demo/model).")
        if not (model_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"{model_dir} holds no {CONFIG_FILE}, so it is not a model saved by arabicpeft",
                              "give the 'model' folder inside a train run's output folder.")
        return cls.from_json(model_dir / CONFIG_FILE)

    @classmethod
    def choices(cls, name: str) -> Optional[tuple]:
        """The values field ``name`` allows (its ``Literal`` type, also inside Optional or a list, or the names in
        its registry: ``method``), or None for a free value. The CLI's choices, the widget pickers and the
        validation in ``__post_init__`` use it. Raises :class:`~arabicpeft.errors.ConfigError` (a ValueError)
        when ``name`` is not a field."""
        if name not in _hints():
            with_choices = [f for f in _hints() if cls.choices(f)]
            raise ConfigError(f"ExperimentConfig has no field {name!r}",
                              f"ask for a field; these have choices: {', '.join(with_choices)}.")
        registry = _fields()[name].metadata["choices"]
        if registry:
            return tuple(registry())
        hint = _hints()[name]
        while typing.get_origin(hint) in (typing.Union, list):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        return typing.get_args(hint) if typing.get_origin(hint) is Literal else None

    @classmethod
    def valid_range(cls, name: str) -> Optional[str]:
        """Field ``name``'s valid range in words ("at least 1", "greater than 0 and less than 1"), or None for a
        field without bounds."""
        bounds = _fields()[name].metadata["bounds"]
        return " and ".join(f"{_BOUNDS[kind][0]} {limit:g}" if isinstance(limit, float) else
                            f"{_BOUNDS[kind][0]} {limit}" for kind, limit in bounds.items()) or None

    @classmethod
    def check_value(cls, name: str, value) -> None:
        """Raise :class:`~arabicpeft.errors.ConfigError` when ``value`` is not a number of field ``name``'s type
        (an int for an int field) inside the range the field declares (:meth:`valid_range`). None passes (an
        Optional field left unset); a field without bounds accepts anything."""
        bounds = _fields()[name].metadata["bounds"]
        if value is None or not bounds:
            return
        integer = _numeric_type(name) is int
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
            raise ConfigError(f"{name} = {value!r} is not {'an integer' if integer else 'a number'}",
                              f"{name} must be {'an integer' if integer else 'a number'} {cls.valid_range(name)}.")
        if not all(_BOUNDS[kind][1](value, limit) for kind, limit in bounds.items()):  # NaN fails every bound
            raise ConfigError(f"{name} = {value!r} is out of its range", f"{name} must be {cls.valid_range(name)}.")

    @classmethod
    def resumable_fields(cls) -> frozenset[str]:
        """The fields a rerun into the same output folder may change and still continue the same run."""
        return frozenset(f.name for f in fields(cls) if f.metadata["resume"])

    @classmethod
    def runtime_fields(cls) -> frozenset[str]:
        """The fields that say where or how a run executes (folders, workers, time budget), not what it trains
        or scores."""
        return frozenset(f.name for f in fields(cls) if f.metadata["runtime"])

    def automatic_choices(self) -> tuple["ExperimentConfig", list[str]]:
        """This config with the values it leaves to us filled in (a new config), and a note for each: the encoder
        window is cut to the source's ``max_clip_seconds`` when it declares one (the sample set: every clip is
        shorter than :data:`~arabicpeft.sources.SAMPLE_ENCODER_SECONDS`; ~4x faster training on a CPU)."""
        seconds = sources.of(self).max_clip_seconds
        if self.encoder_seconds is not None or seconds is None:
            return self, []
        return replace(self, encoder_seconds=seconds), [
            f"encoder window cut to {seconds:g} s, chosen automatically for the {self.source} set (every "
            "clip is shorter; ~4x faster on a CPU). Set encoder_seconds to choose another."]

    def unused_fields(self) -> dict[str, str]:
        """{field: why} for the fields this config leaves unused, whatever their value: a data path of a source
        that reads none, the settings of the other methods (LoRA settings of a full fine-tune), a mixture of a single
        dialect, a cache type without a cache. The command line refuses such an option when it is given."""
        unused = {}
        if not sources.of(self).needs_data_path:
            unused["data_path"] = "it is read only with " + " or ".join(
                f"--source {s.name}" for s in sources.SOURCES.values() if s.needs_data_path)
        mine = methods.get(self.method).fields
        for name in methods.all_fields():
            if name not in mine:
                owners = " / ".join(m.title for m in methods.METHODS.values() if name in m.fields)
                unused[name] = f"it is a {owners} setting and --method is {self.method}"
        if self.dialect != dialects.POOLED:
            unused.update({name: f"it mixes the dialects of the pooled set (--dialect {dialects.POOLED}), and "
                           f"{self.dialect} is one" for name in ("mixture", "max_train_per_dialect")})
            if dialects.POOLED not in (self.test_sets or []):
                unused["pool"] = (f"it names the members of the pooled set {dialects.POOLED}, which this run does "
                                  "not read")
        if sources.of(self).hub_dataset is None:
            unused.update({name: "it is read only with --source hub or a recipe (" + ", ".join(
                s.name for s in sources.SOURCES.values() if s.hub_dataset is not None) + ")" for name in
                ("dataset", "split_train", "split_test", "audio_column", "text_column", "dialect_column")})
        if not self.feature_cache:
            unused["feature_cache_dtype"] = "it is the value type of --feature-cache, which is not given"
        return unused

    def describe(self) -> str:
        """One line: what this config trains, on what, for how long."""
        method = methods.get(self.method)
        settings = ", ".join(f"{f}={getattr(self, f)}" for f in method.fields)
        what = f"{method.title} ({settings})" if settings else method.title
        window = f", encoder window {self.encoder_seconds:g} s" if self.encoder_seconds else ""
        return (f"{what} of {self.model}{window}, {self.precision}, on {self.dialect} ({self.source} data), "
                f"{self.max_steps} steps of {self.batch_size}, seed {self.seed}")


@functools.cache
def _hints() -> dict:
    return typing.get_type_hints(ExperimentConfig)


@functools.cache
def _fields() -> dict:
    return {f.name: f for f in fields(ExperimentConfig)}


def _methods_with(flag: str) -> list[str]:
    """The names of the methods whose declaration has ``flag`` (e.g. ``quantized``) set."""
    return [name for name, method in methods.METHODS.items() if getattr(method, flag)]


def _numeric_type(name: str):
    """int or float for a numeric field (also inside Optional), else None."""
    hint = _hints()[name]
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint if hint in (int, float) else None


DEMO_RUN = "00_quickstart"  # the demo's run folder under the runs root (notebooks 00 and 05)


def demo_config(output_dir: str = "runs/demo") -> ExperimentConfig:
    """The main job: whisper-base (from PyPI, no hub) + LoRA on the embedded synthetic sample set, on CPU.

    The encoder window is cut to 8 s (every sample clip is shorter) so that it trains on 2 CPU cores in
    minutes; validation runs once, at the end, to keep the time for training. LoRA dropout is 0: on this job it
    trained 1.09x faster with 0.33 GiB less peak memory than 0.05 and scored within 3 words of it (README, "The main
    job, measured"; benchmarks/results/demo-lora-dropout*.json).
    """
    return ExperimentConfig(
        dialect="all", method="lora", model="whisper-base", precision="fp32", seed=42, source="sample",
        encoder_seconds=SAMPLE_ENCODER_SECONDS, lora_targets="qkvo", lora_dropout=0.0, learning_rate=1e-3,
        warmup_steps=10, max_steps=60,
        batch_size=8, eval_batch_size=16, eval_steps=60, early_stopping_patience=None, max_eval_samples=30,
        logging_steps=10, generation_max_length=48, output_dir=output_dir,
    )
