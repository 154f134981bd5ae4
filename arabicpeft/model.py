"""Build Whisper for training: full fine-tuning or LoRA/DoRA via peft, at fp32/fp16/bf16 or 8/4-bit.

Current APIs only: quantization through ``BitsAndBytesConfig``, peft ``LoraConfig`` with ``task_type`` left
unset (SEQ_2_SEQ_LM would pass ``input_ids`` to Whisper), generation settings in ``generation_config``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

from .audio import SAMPLE_RATE
from .config import CONFIG_FILE, ExperimentConfig

LANGUAGE, TASK = "ar", "transcribe"


def native_bf16() -> bool:
    """bf16 in hardware (compute capability >= 8.0). torch.cuda.is_bf16_supported() also counts emulation,
    and so says yes on a T4 (7.5), where fp16 is the right half precision."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability(0) >= (8, 0)


def half_dtype() -> torch.dtype:
    """The half precision this GPU computes natively: bf16 on Ampere and later, else fp16."""
    return torch.bfloat16 if native_bf16() else torch.float16


def require_cuda(precision: str) -> None:
    if precision in ("fp16", "int8", "nf4") and not torch.cuda.is_available():  # bf16 runs on CPU too
        raise RuntimeError(
            f"precision={precision!r} needs a CUDA GPU (bitsandbytes / fp16 mixed precision), and none is "
            "available. On CPU use precision='fp32' (or 'bf16'); on Kaggle pick a GPU T4 accelerator."
        )


def cut_encoder(model: WhisperForConditionalGeneration, processor: WhisperProcessor, seconds: int) -> None:
    """Shrink the encoder window from 30 s to ``seconds`` (in place, model and feature extractor alike).

    Valid only when every clip is shorter than ``seconds`` and the same cut is used at inference: the
    positional embeddings are sliced, the rest of the model is unchanged. It makes CPU training ~4x faster.
    """
    if int(seconds) != seconds or seconds <= 0:
        raise ValueError(f"encoder_seconds must be a whole number of seconds, got {seconds}.")
    extractor = processor.feature_extractor
    frames = int(seconds) * SAMPLE_RATE // extractor.hop_length
    positions = frames // 2  # the encoder's two convolutions halve the frame rate once
    encoder = model.model.encoder
    if positions > encoder.embed_positions.num_embeddings:
        raise ValueError(f"encoder_seconds={seconds} exceeds this model's window "
                         f"({encoder.embed_positions.num_embeddings * 2 * extractor.hop_length // SAMPLE_RATE} s).")
    if positions < encoder.embed_positions.num_embeddings:
        table = nn.Embedding(positions, encoder.embed_positions.embedding_dim)
        table.weight.data = encoder.embed_positions.weight.data[:positions].clone()
        table.requires_grad_(False)
        encoder.embed_positions = table
        encoder.max_source_positions = positions
        model.config.max_source_positions = positions
    processor.feature_extractor = WhisperFeatureExtractor(
        feature_size=extractor.feature_size, sampling_rate=SAMPLE_RATE, hop_length=extractor.hop_length,
        chunk_length=int(seconds), n_fft=extractor.n_fft, padding_value=extractor.padding_value,
    )


def window_seconds(processor: WhisperProcessor) -> int:
    """The encoder window of ``processor``'s feature extractor, in seconds."""
    return int(processor.feature_extractor.chunk_length)


def _set_generation(model: WhisperForConditionalGeneration, max_length: Optional[int]) -> None:
    gen = model.generation_config
    gen.language, gen.task = LANGUAGE, TASK
    gen.forced_decoder_ids = None  # deprecated; language/task above are the current way
    # Whisper's generate counts max_length after the prompt and caps it at max_target_positions.
    gen.max_length = max_length or model.config.max_target_positions


def load_base(cfg: ExperimentConfig) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    """The starting model and its processor, quantized if asked, window cut, generation set to Arabic."""
    from .offline_model import resolve_model

    require_cuda(cfg.precision)
    path = resolve_model(cfg.model)
    quantization = None
    if cfg.precision in ("int8", "nf4"):
        from transformers import BitsAndBytesConfig

        compute = half_dtype()
        quantization = (
            BitsAndBytesConfig(load_in_8bit=True)
            if cfg.precision == "int8"
            else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype=compute)
        )
    # Weights stay fp32 for fp16/bf16 (the Trainer runs mixed precision with fp32 master weights), also when a
    # checkpoint was saved in half precision: transformers 5 would otherwise keep the saved dtype.
    try:
        with _no_file_progress_bars() if Path(path).exists() else contextlib.nullcontext():
            model = WhisperForConditionalGeneration.from_pretrained(
                path, quantization_config=quantization, device_map={"": 0} if quantization else None,
                dtype=torch.float32)
    except OSError as e:  # transformers' message for a hub id it cannot fetch (offline, or no such repo)
        if Path(path).exists():
            raise
        from .environment import NO_HUB_HELP, HubUnreachableError

        raise HubUnreachableError(f"could not load the model {cfg.model} from the hub or the HF cache "
                                  f"({str(e).splitlines()[0]})", f"check the hub id. {NO_HUB_HELP}") from e
    if quantization is None and torch.cuda.is_available():
        model.to("cuda")  # scoring before training (and `evaluate`) runs where training will
    processor = WhisperProcessor.from_pretrained(path)
    processor.tokenizer.set_prefix_tokens(language=LANGUAGE, task=TASK, predict_timestamps=False)
    if cfg.encoder_seconds:
        cut_encoder(model, processor, cfg.encoder_seconds)
    _set_generation(model, cfg.generation_max_length)
    return model, processor


@contextlib.contextmanager
def _peft_alias_warning_silenced():
    """peft's PeftModel reads transformers' deprecated ``is_gradient_checkpointing`` alias: a FutureWarning about
    peft's code, not ours, harmless until transformers 6 removes the alias. Silenced deliberately, here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


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


def add_lora(model: WhisperForConditionalGeneration, cfg: ExperimentConfig):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.precision in ("int8", "nf4"):
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules(), use_dora=cfg.use_dora)
    with _peft_alias_warning_silenced():
        return get_peft_model(model, lora)


def build_model(cfg: ExperimentConfig):
    """(model, processor) ready for training with ``cfg.method``."""
    model, processor = load_base(cfg)
    if cfg.method == "lora":
        model = add_lora(model, cfg)
    if cfg.gradient_checkpointing:
        # With a frozen base, re-entrant checkpointing sees no input that requires grad and breaks.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model, processor


WEIGHT_FILES = ("*.safetensors", "*.bin", "config.json")  # what a local model's checksum covers


def model_source(cfg: ExperimentConfig, model) -> dict:
    """Where the starting model came from, enough to load the same weights again: the hub commit of a hub id
    (``config._commit_hash``), or for a local directory the sha256 over its weight and config files."""
    from .offline_model import resolve_model

    path = Path(resolve_model(cfg.model))
    source = {"name": cfg.model, "path": str(path) if path.is_dir() else None,
              "revision": getattr(model.config, "_commit_hash", None), "sha256": None}
    if path.is_dir():
        digest = hashlib.sha256()
        for pattern in WEIGHT_FILES:
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
        model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    return out_dir


def load_trained(path, precision: Optional[str] = None):
    """Load what :func:`save_trained` wrote: returns (model, processor, config)."""
    path = Path(path)
    cfg = ExperimentConfig.saved_in(path)
    if precision:
        cfg = dataclasses.replace(cfg, precision=precision)  # validated like any config
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base, processor = load_base(cfg)
        with _peft_alias_warning_silenced(), _no_file_progress_bars():
            model = PeftModel.from_pretrained(base, str(path))
    else:
        require_cuda(cfg.precision)
        if cfg.precision in ("int8", "nf4"):
            raise ValueError(f"{path} holds a fully fine-tuned model; evaluate it at fp32, fp16 or bf16.")
        with _no_file_progress_bars():
            model = WhisperForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
        if torch.cuda.is_available():
            model.to("cuda")
        processor = WhisperProcessor.from_pretrained(path)
        processor.tokenizer.set_prefix_tokens(language=LANGUAGE, task=TASK, predict_timestamps=False)
        _set_generation(model, cfg.generation_max_length)
    model.eval()
    return model, processor, cfg
