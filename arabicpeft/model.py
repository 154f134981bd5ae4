"""Build a model for training (full fine-tuning or an adapter of :mod:`arabicpeft.methods`, at fp32/fp16/bf16 or
8/4-bit) and load any saved model for inference; what differs between model families is asked of the model's
backbone (:mod:`arabicpeft.backbones`, found from its config's ``model_type``).

Current APIs only: quantization through ``BitsAndBytesConfig``, generation settings in ``generation_config``.

Public: :func:`load_processor`, :func:`build_model`, :func:`model_source`, :func:`count_parameters`,
:func:`save_trained`, :data:`MAX_NEW_TOKENS`, :class:`LoadedModel`, :func:`saved_kind`, :func:`load_model`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn

from . import backbones, methods
from .config import CONFIG_FILE, QUANTIZED, ExperimentConfig
from .device import check_gpu, half_dtype
from .hub import check_model_name


def load_processor(reference, window_seconds: Optional[int] = None):
    """The processor (feature extractor and tokenizer, Arabic and transcription forced) of ``reference`` (an
    offline name, a hub id, or a directory: a transformers model, an adapter or a CTranslate2 export with their
    processor files), without its weights: what audio needs to become model inputs and what decodes the tokens.
    ``window_seconds``: a log-mel window of that many seconds (the features of an encoder cut to that window;
    CTranslate2's Whisper encoder takes them as they are), else the extractor's own (30 s for OpenAI Whisper)."""
    from .offline_model import resolve_model

    path = resolve_model(os.fspath(reference))
    return backbones.get(path).load_processor(path, window_seconds)


def _quantization(precision: str, backbone):
    """transformers' ``BitsAndBytesConfig`` of a quantized precision (int8; nf4 with double quantization, computing
    in the GPU's native half type) for a model of ``backbone``, whose ``unquantized`` layers stay at full precision
    (none named: transformers' default, the output layer); None for the other precisions."""
    if precision not in QUANTIZED:
        return None
    from transformers import BitsAndBytesConfig

    skip = dict(llm_int8_skip_modules=list(backbone.unquantized) or None)
    if precision == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, **skip)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=half_dtype(), **skip)


def _load_base(cfg: ExperimentConfig):
    """The starting model and its processor, quantized if asked, window cut, generation set to Arabic."""
    from .offline_model import resolve_model

    check_gpu(cfg.precision)
    path = resolve_model(cfg.model)
    # Weights stay fp32 for fp16/bf16 (the Trainer runs mixed precision with fp32 master weights), also when a
    # checkpoint was saved in half precision: transformers 5 would otherwise keep the saved dtype.
    try:
        backbone = backbones.get(path)
        quantization = _quantization(cfg.precision, backbone)
        with _no_file_progress_bars() if Path(path).exists() else contextlib.nullcontext():
            model = backbone.load_model(
                path, quantization_config=quantization,  # on this process's GPU (its rank's under DDP)
                device_map={"": torch.cuda.current_device()} if quantization else None, dtype=torch.float32)
    except OSError as e:  # a hub id that cannot be fetched (offline, or no such repo)
        if Path(path).exists():
            raise
        from .errors import HubUnreachableError
        from .hub import NO_HUB_HELP

        raise HubUnreachableError(f"could not load the model {cfg.model} from the hub or the HF cache "
                                  f"({str(e).splitlines()[0]})", f"check the hub id. {NO_HUB_HELP}") from e
    if quantization is None and torch.cuda.is_available():
        model.to("cuda")  # scoring before training (and `evaluate`) runs where training will
    processor = backbone.load_processor(path)
    if cfg.encoder_seconds:
        backbone.cut_window(model, processor, cfg.encoder_seconds)
    backbone.set_generation(model, cfg.generation_max_length)
    return model, processor


@contextlib.contextmanager
def _no_file_progress_bars():
    """Silences transformers' "Loading weights" / "Writing model shards" bars while it reads or writes local files
    (deliberately: under a second here, and in a notebook they are widgets that a saved notebook shows frozen at
    0 %). Downloads from the hub keep their bars: this is used only for local folders."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def build_model(cfg: ExperimentConfig):
    """(model, processor) ready for training with ``cfg.method``."""
    model, processor = _load_base(cfg)
    if methods.get(cfg.method).peft_config:
        backbone = backbones.of(model)
        model = methods.add_adapter(model, cfg, backbone.target_modules(cfg), backbone.feedforward)
    if cfg.gradient_checkpointing:
        # With a frozen base, re-entrant checkpointing sees no input that requires grad and breaks.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model, processor


_WEIGHT_FILES = ("*.safetensors", "*.bin", "config.json")  # what a local model's checksum covers


def model_source(cfg: ExperimentConfig, model) -> dict:
    """Where the starting model came from, enough to load the same weights again: the hub commit of a hub id
    (``config._commit_hash``), or for a local directory the sha256 over its weight and config files."""
    from .offline_model import resolve_model

    path = Path(resolve_model(cfg.model))
    source = {"name": cfg.model, "path": str(path) if path.is_dir() else None,
              "revision": getattr(model.config, "_commit_hash", None), "sha256": None}
    if path.is_dir():
        digest = hashlib.sha256()
        for pattern in _WEIGHT_FILES:
            for file in sorted(path.glob(pattern)):
                digest.update(file.name.encode())
                with open(file, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
        source["sha256"] = digest.hexdigest()
    return source


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a 4-bit weight counts as its unpacked number of values."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel() * (2 if p.__class__.__name__ == "Params4bit" else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def save_trained(model, processor, cfg: ExperimentConfig, out_dir: Path) -> Path:
    """Save the adapter (LoRA) or the whole model (full), the processor and the run config."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _no_file_progress_bars():
        model.save_pretrained(out_dir, **methods.save_options(cfg))
    processor.save_pretrained(out_dir)
    (out_dir / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    return out_dir


MAX_NEW_TOKENS = 224  # tokens per 30 s window when transcribing: OpenAI Whisper's sample_len (448 // 2)


@dataclasses.dataclass
class LoadedModel:
    """What :func:`load_model` resolved a reference to.

    ``kind``: ``base`` (an untrained model: offline name, hub id or plain transformers directory), ``model``
    (a merged or fully fine-tuned directory), ``adapter`` (one LoRA adapter on its base) or ``bank`` (one base
    with one named adapter per dialect; :meth:`use_dialect` picks one). ``config`` is the training config saved
    with the model (None for a base model); ``adapters`` maps each bank dialect to its adapter directory.
    """

    model: Any
    processor: Any
    config: Optional[ExperimentConfig]
    kind: str
    source: str
    adapters: dict = dataclasses.field(default_factory=dict)
    precision: str = "fp32"  # what the model runs at now (a merged QLoRA model: fp32, not its base's int8)

    @property
    def window_seconds(self) -> int:
        """The encoder window of the processor's feature extractor, in seconds."""
        return int(self.processor.feature_extractor.chunk_length)

    def cut_window(self, seconds: int) -> None:
        """Shrink the encoder window to ``seconds`` (in place, model and feature extractor alike; an adapter's
        base is cut under it): only valid when every clip is shorter, as training with ``encoder_seconds`` did.
        Raises ValueError for a window longer than the model's or not a whole number of seconds."""
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        backbones.of(base).cut_window(base, self.processor, seconds)

    def use_dialect(self, dialect: str) -> None:
        """Activate the bank's adapter for ``dialect``; a clear error when the bank has none for it."""
        if self.kind != "bank":
            return
        from . import dialects

        name = dialects.variety(dialect).name
        if name not in self.adapters:
            raise ValueError(f"The adapter bank {self.source} has no adapter for {name!r}; it holds "
                             f"{', '.join(sorted(self.adapters))}. Give each file one of those dialects.")
        self.model.set_adapter(name)

    def describe(self) -> dict:
        """A JSON-able record of what was loaded, for results files."""
        return {"reference": self.source, "kind": self.kind, "window_seconds": self.window_seconds,
                "precision": self.precision,
                "adapters": dict(self.adapters) or None,
                "trained_config": self.config.to_dict() if self.config else None}


def saved_kind(path) -> Optional[str]:
    """What the directory ``path`` holds: ``adapter`` (a peft ``adapter_config.json``), ``ct2`` (a CTranslate2
    export's ``model.bin``), ``model`` (a transformers ``config.json``: merged, fully fine-tuned or a base), ``run``
    (a run directory whose ``model/`` holds an adapter or a model), else None (not a directory, an adapter bank
    or nothing loadable)."""
    def marked(folder: Path) -> Optional[str]:
        for kind, marker in (("adapter", "adapter_config.json"), ("ct2", "model.bin"), ("model", "config.json")):
            if (folder / marker).is_file():
                return kind
        return None

    path = Path(path)
    return marked(path) or ("run" if marked(path / "model") in ("adapter", "model") else None)


def _is_adapter(path: Path) -> bool:
    return saved_kind(path) == "adapter"


def _adapter_base_config(path: Path, precision: Optional[str], full_window: bool) -> ExperimentConfig:
    """The config that rebuilds an adapter's base: the saved run config, else peft's base_model_name_or_path."""
    cfg = ExperimentConfig.saved_with(path)
    if cfg is None:
        base = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{path} is a peft adapter without {CONFIG_FILE} or base_model_name_or_path: "
                             "its base model is unknown.")
        cfg = ExperimentConfig(model=base)
    if precision:
        cfg = dataclasses.replace(cfg, precision=precision)  # validated like any config
    if full_window:
        cfg = dataclasses.replace(cfg, encoder_seconds=None)
    return cfg


def _bank_members(path: Path) -> dict[str, Path]:
    """{dialect: adapter dir} for a directory whose subdirectories are adapters (or runs holding model/); hidden
    subdirectories (``.ipynb_checkpoints``) are not members. {} when no subdirectory is an adapter; ValueError
    naming each subdirectory that is not a LoRA adapter with its saved run config, when some are."""
    members: dict[str, list[Path]] = {}
    bad: dict[str, str] = {}
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        adapter, why = _member_adapter(sub)
        cfg = None if why else ExperimentConfig.saved_with(adapter)
        if cfg is not None:
            members.setdefault(cfg.dialect, []).append(adapter)
        else:
            bad[sub.name] = why or f"an adapter without {CONFIG_FILE}: its dialect is unknown"
    if members and bad:
        raise ValueError(f"The adapter bank {path} has subfolders that are not LoRA adapters: "
                         + "; ".join(f"{name}/ ({why})" for name, why in bad.items())
                         + ". Move them out of the bank folder (or fix their names), or pass load_model a mapping "
                         "{dialect: adapter folder} of the adapters you want.")
    twice = {d: [str(p) for p in ps] for d, ps in members.items() if len(ps) > 1}
    if twice:
        raise ValueError(f"The adapter bank {path} holds several adapters for one dialect: {twice}. "
                         "Keep one adapter per dialect in a bank directory.")
    return {d: ps[0] for d, ps in members.items()}


_NOT_A_MEMBER = {  # why a bank member of each saved_kind is not an adapter
    None: "holds no adapter_config.json, nor a run's model/",
    "model": "a full or merged model, not an adapter",
    "ct2": "a CTranslate2 export, not an adapter",
}


def _member_adapter(path: Path) -> tuple[Path, Optional[str]]:
    """(the adapter folder of a bank member: ``path`` or its run's ``model/``, why it is not an adapter or None)."""
    if not path.exists():
        return path, "does not exist"
    adapter = path / "model" if saved_kind(path) == "run" else path
    kind = saved_kind(adapter)
    return adapter, None if kind == "adapter" else _NOT_A_MEMBER[kind]


def _mapped_members(reference: Mapping) -> dict[str, Path]:
    """{dialect name: adapter dir} of a bank given as a mapping; ValueError for an empty mapping, an unknown
    dialect, or a value that is not an adapter (nor a run holding one)."""
    from . import dialects

    if not reference:
        raise ValueError("An adapter bank needs at least one adapter: give a mapping {dialect: adapter folder}, "
                         "not an empty one.")
    members, bad = {}, {}
    for dialect, folder in reference.items():
        adapter, why = _member_adapter(Path(folder).expanduser())
        members[dialects.variety(dialect).name] = adapter
        if why:
            bad[dialect] = f"{folder} ({why})"
    if bad:
        raise ValueError("Adapter bank members that are not LoRA adapters: "
                         + "; ".join(f"{d}: {where}" for d, where in bad.items())
                         + ". Give each dialect an adapter folder (or the run folder holding it in model/).")
    return members


def load_model(reference, precision: Optional[str] = None, full_window: bool = False) -> LoadedModel:
    """Load any model reference for inference (eval mode, Arabic + transcribe forced).

    ``reference``: an adapter directory saved by arabicpeft (or any peft adapter on a supported model), a merged or fully
    fine-tuned model directory, a run directory (its ``model/`` is used), an adapter bank (a directory whose
    subdirectories are adapters, or runs, on one base; one per dialect, or a mapping {dialect: adapter
    directory}, e.g. of several runs; hidden subdirectories are ignored), an offline name (``whisper-base``,
    ``tiny-random``) or a hub id.
    ``precision`` overrides the trained precision (e.g. ``fp32`` on a CPU for a QLoRA adapter). ``full_window``:
    an adapter trained with a cut encoder window (``encoder_seconds``) is put on its base at the base's own window (30 s for OpenAI Whisper) instead of the cut one, as merge, export and
    long-form transcription need; a cut-window full fine-tune cannot be widened and keeps its window.

    Raises :class:`arabicpeft.errors.SetupError` for a path that does not exist or a folder that holds no
    model, ValueError for a CTranslate2 export (load it with :func:`arabicpeft.export.load_ct2`) and for a bank
    folder with a subfolder that is not an adapter with its run config (a full model, an empty or misnamed folder)
    or a bank mapping that is empty, has an unknown dialect or a value that is not an adapter (nor a run holding
    one).
    """
    if isinstance(reference, Mapping):  # a bank of adapters from anywhere, e.g. the runs of a study
        adapters = _mapped_members(reference)
        parent = Path(os.path.commonpath([str(p.resolve()) for p in adapters.values()]))
        return _load_bank(parent, adapters, precision, full_window)
    check_model_name(reference, saved=True)
    text = os.fspath(reference)
    path = Path(text).expanduser()
    if not path.exists():  # an offline name or a hub id
        return _load_base_reference(text, precision)
    if saved_kind(path) == "run":
        path = path / "model"
    if _is_adapter(path):
        cfg = _adapter_base_config(path, precision, full_window)
        from peft import PeftModel

        base, processor = _load_base(cfg)
        with methods.peft_warnings_silenced(), _no_file_progress_bars():
            model = PeftModel.from_pretrained(base, str(path))
        model.eval()
        return LoadedModel(model, processor, ExperimentConfig.saved_with(path), "adapter", str(path),
                           precision=cfg.precision)
    if (path / "model.bin").is_file():
        raise ValueError(f"{path} is a CTranslate2 export: load it with arabicpeft.export.load_ct2 "
                         "(evaluate/transcribe --backend ct2).")
    if (path / "config.json").is_file():
        cfg = ExperimentConfig.saved_with(path)
        if cfg is None:  # a plain transformers model directory (e.g. a local copy of a hub model)
            return _load_base_reference(str(path), precision)
        return _load_full(path, cfg, precision)
    bank = _bank_members(path) if path.is_dir() else {}
    if not bank:
        raise ValueError(f"{path} holds no model: expected adapter_config.json (an adapter), config.json (a "
                         "transformers model), model.bin (a CTranslate2 export), a run directory with model/, or "
                         "subdirectories that are adapters (an adapter bank).")
    return _load_bank(path, bank, precision, full_window)


def _load_base_reference(name: str, precision: Optional[str]) -> LoadedModel:
    model, processor = _load_base(ExperimentConfig(model=name, precision=precision or "fp32"))
    model.eval()
    return LoadedModel(model, processor, None, "base", name, precision=precision or "fp32")


def _load_full(path: Path, trained: ExperimentConfig, precision: Optional[str]) -> LoadedModel:
    if precision:
        cfg = dataclasses.replace(trained, precision=precision)
    elif trained.precision in QUANTIZED:  # a merged QLoRA adapter: its base was quantized, it is not
        cfg = dataclasses.replace(trained, precision="fp32")
    else:
        cfg = trained
    check_gpu(cfg.precision)
    if cfg.precision in QUANTIZED:
        raise ValueError(f"{path} holds a fully fine-tuned or merged model; load it at fp32, fp16 or bf16.")
    backbone = backbones.get(path)
    with _no_file_progress_bars():
        model = backbone.load_model(path, dtype=torch.float32)
    if torch.cuda.is_available():
        model.to("cuda")
    processor = backbone.load_processor(path)
    backbone.set_generation(model, cfg.generation_max_length)
    model.eval()
    return LoadedModel(model, processor, trained, "model", str(path), precision=cfg.precision)


def _load_bank(path: Path, bank: dict[str, Path], precision: Optional[str], full_window: bool) -> LoadedModel:
    from peft import PeftModel

    cfgs = {d: _adapter_base_config(p, precision, full_window) for d, p in bank.items()}
    unmixable = {d: methods.get(c.method).label_words(c.to_dict())[0] for d, c in cfgs.items()
                 if not methods.mixes_in_bank(c)}
    if unmixable:  # before any weight loads
        raise ValueError("An adapter bank mixes its adapters per utterance, which peft cannot do with " + "; ".join(
            f"{kind} adapters ({d}: {bank[d]})" for d, kind in unmixable.items()) + ". Build the bank from "
            f"adapters a bank mixes ({', '.join(n for n, m in methods.METHODS.items() if m.bank)}), or evaluate "
            "each adapter alone.")
    bases = {(c.model, c.encoder_seconds, c.precision) for c in cfgs.values()}
    if len(bases) > 1:
        raise ValueError(f"The adapters in {path} do not share one base (model, encoder_seconds, precision): "
                         f"{sorted(map(str, bases))}. A bank needs one base model.")
    first, *rest = bank
    base, processor = _load_base(cfgs[first])
    with methods.peft_warnings_silenced(), _no_file_progress_bars():
        model = PeftModel.from_pretrained(base, str(bank[first]), adapter_name=first)
        for dialect in rest:
            model.load_adapter(str(bank[dialect]), adapter_name=dialect)
    model.eval()
    return LoadedModel(model, processor, ExperimentConfig.saved_with(bank[first]), "bank", str(path),
                       {d: str(p) for d, p in bank.items()}, precision=cfgs[first].precision)
