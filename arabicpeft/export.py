"""Merge a LoRA adapter, export to CTranslate2 / faster-whisper, write model cards, upload.

- :func:`merge`: adapter + base -> one standalone transformers model (peft ``merge_and_unload``), with its
  processor, a generation config forcing Arabic/transcribe and the run config.
- :func:`export_ct2`: any model reference -> a CTranslate2 directory written by CTranslate2's own
  ``TransformersConverter`` (an adapter is merged on the fly), with the tokenizer and preprocessor files that
  ``faster_whisper.WhisperModel`` reads. :func:`load_ct2` loads one (converting on the fly when needed).
- :func:`write_model_card`: a Hugging Face model card (``README.md``) in every saved directory.
- :func:`upload`: the Hugging Face Hub (``huggingface_hub``) or Kaggle Models (``kagglehub``).

Adapters trained with a cut encoder window (``encoder_seconds``) are merged onto the base at its full window:
the standalone model then takes any audio, as OpenAI's does (LoRA does not touch the positional table).

Public: :func:`ct2_max_length`, :func:`merge`, :func:`export_ct2`, :func:`deployable`, :func:`load_ct2`,
:func:`write_model_card`, :func:`upload`.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import torch

from . import backbones, methods
from .model import CONFIG_FILE, load_model, load_processor, saved_kind
from .offline_model import N_FRAMES
from .sources import SOURCES

_EXPORT_FILE = "arabicpeft_export.json"  # what a merge or export was made from, and how
_CARD_FILE = "README.md"
_CT2_QUANTIZATIONS = ("float32", "float16", "int8", "int8_float16", "int8_float32")
_MERGE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
# Files faster-whisper (tokenizer.json, preprocessor_config.json) and transformers' processors read.
_PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
                   "special_tokens_map.json", "added_tokens.json", "normalizer.json")
_UPLOAD_TARGETS = ("hf", "kaggle")


def ct2_max_length(new_tokens: int) -> int:
    """The ``max_length`` to give CTranslate2's ``Whisper.generate`` for at most ``new_tokens`` transcript
    tokens. Measured with ctranslate2 4.8: it generates at most ``max_length // 2`` tokens after the prompt
    (OpenAI Whisper's ``sample_len = n_text_ctx // 2``), whatever the prompt's length; transformers'
    ``generation_config.max_length`` bounds the transcript tokens themselves."""
    return 2 * int(new_tokens)


def _write_export_info(out: Path, info: dict) -> None:
    from .results import provenance
    from .run_dir import write_json_atomic

    write_json_atomic(out / _EXPORT_FILE, {**info, "provenance": provenance()})


def _copy_run_files(src: Path, out: Path) -> None:
    if (src / CONFIG_FILE).is_file():
        shutil.copy2(src / CONFIG_FILE, out / CONFIG_FILE)


def merge(reference, output_dir, dtype: str = "fp32") -> Path:
    """Merge the adapter ``reference`` into its base and save a standalone model in ``output_dir``.

    ``dtype``: ``fp32`` or ``fp16`` weights. The directory loads with plain transformers (its family's model and
    processor classes' ``from_pretrained``); its generation config forces Arabic/transcribe (``max_length``: the
    decoder's limit, 448 for Whisper). Raises ValueError for anything but a single adapter (a merged or base model
    has nothing to merge; a bank has one model per dialect) and for an adapter of a method that does not merge
    (:attr:`arabicpeft.methods.Method.merges`).
    """
    if dtype not in _MERGE_DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(_MERGE_DTYPES)}.")
    loaded = load_model(reference, precision="fp32", full_window=True)
    if loaded.kind != "adapter":
        raise ValueError(f"{reference} is a {loaded.kind} model, not an adapter: there is nothing to merge "
                         "(export it directly; merge one bank member at a time).")
    method = methods.get(loaded.config.method) if loaded.config else None
    if method and not method.merges:
        raise ValueError(f"{reference} is a {method.title} adapter, which does not merge into its base: use it as "
                         "an adapter (evaluate, transcribe) instead.")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = loaded.model.merge_and_unload()
    backbones.of(model).set_generation(model, None)  # the decoder's limit: the merged model decodes any audio
    model.to(_MERGE_DTYPES[dtype]).save_pretrained(out)
    loaded.processor.save_pretrained(out)
    loaded.processor.feature_extractor.save_pretrained(out)  # preprocessor_config.json: what faster-whisper reads
    _copy_run_files(Path(loaded.source), out)
    _write_export_info(out, {"kind": "merged", "from": str(Path(loaded.source).resolve()), "dtype": dtype,
                             "window_seconds": loaded.window_seconds,
                             "trained_encoder_seconds": loaded.config.encoder_seconds if loaded.config else None})
    write_model_card(out)
    return out


def export_ct2(reference, output_dir, quantization: str = "int8", force: bool = False,
               merged_dir=None) -> Path:
    """Convert ``reference`` (a merged/full model directory, a run directory, a LoRA adapter, which is merged
    first at fp32, an offline name or a hub id) into a CTranslate2 model in ``output_dir`` that
    ``faster_whisper.WhisperModel`` loads, with CTranslate2's ``TransformersConverter`` and weight ``quantization``
    (one of :data:`_CT2_QUANTIZATIONS`). ``force`` replaces an existing ``output_dir``. ``merged_dir``: where to
    keep the standalone transformers model an adapter is merged into (:func:`merge`; default: a temporary
    directory); unused for any other reference. Returns ``output_dir``. Raises FileExistsError for a non-empty
    ``output_dir`` without ``force``, ValueError for an unknown quantization or a reference that holds no
    transformers model or adapter, or of a model family CTranslate2 does not run (before anything loads)."""
    from ctranslate2.converters import TransformersConverter

    from .hub import check_model_name
    from .offline_model import resolve_model

    if quantization not in _CT2_QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}; choose one of {', '.join(_CT2_QUANTIZATIONS)}.")
    check_model_name(str(reference), saved=True)
    if saved_kind(Path(str(reference)).expanduser()) != "ct2":  # refused below, as already an export
        family = backbones.family_of(resolve_model(str(reference)))
        if "ct2" not in backbones.get(family).exports:
            raise ValueError(f"CTranslate2 export supports {backbones.exporting('ct2').family}; {family} does not.")
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists and is not empty; pass force=True (--force) to replace it.")
    with tempfile.TemporaryDirectory(prefix="arabicpeft-merge-") as tmp:
        source, info = _transformers_dir(reference, Path(tmp), merged_dir)
        copy = [f for f in _PROCESSOR_FILES if (source / f).is_file()]
        TransformersConverter(str(source), copy_files=copy).convert(str(out), quantization=quantization, force=True)
        if not (out / "preprocessor_config.json").is_file():  # transformers 5 may keep it in processor_config.json
            load_processor(source).feature_extractor.save_pretrained(str(out))
        _copy_run_files(source, out)
        _write_export_info(out, {"kind": "ct2", "quantization": quantization, **info})
    write_model_card(out)
    return out


def _transformers_dir(reference, tmp: Path, merged_dir=None) -> tuple[Path, dict]:
    """A transformers directory for ``reference``: the directory itself, a merge of an adapter into
    ``merged_dir`` (else ``tmp``), or the resolved offline/hub model. Returns (directory, what it came from)."""
    from .offline_model import resolve_model

    path = Path(str(reference)).expanduser()
    if saved_kind(path) == "run":
        path = path / "model"
    if saved_kind(path) == "ct2":
        raise ValueError(f"{path} is already a CTranslate2 export; convert from its transformers model instead.")
    if saved_kind(path) == "adapter":
        merged = merge(path, merged_dir or tmp / "merged")
        info = json.loads((merged / _EXPORT_FILE).read_text(encoding="utf-8"))
        return merged, {"from": str(path.resolve()), "merged_on_the_fly": True, "window_seconds": info["window_seconds"]}
    if saved_kind(path) == "model":
        origin = path / _EXPORT_FILE
        before = json.loads(origin.read_text(encoding="utf-8")) if origin.is_file() else {}
        return path, {"from": str(path.resolve()), "merged_from": before.get("from")}
    if path.exists():
        raise ValueError(f"{path} holds no transformers model or adapter to export.")
    resolved = Path(resolve_model(str(reference)))
    if not resolved.is_dir():  # a hub id: let transformers download it once
        loaded = load_model(str(reference))
        loaded.model.save_pretrained(tmp / "base")
        loaded.processor.save_pretrained(tmp / "base")
        resolved = tmp / "base"
    return resolved, {"from": str(reference)}


def deployable(loaded, out_dir, quantization: str = "int8") -> Path:
    """What notebook 05 deploys of ``loaded`` (a :class:`arabicpeft.model.LoadedModel`): its CTranslate2 export in
    ``out_dir``/ct2-QUANTIZATION when its family converts (an adapter merged first, kept in ``out_dir``/merged),
    else a standalone model: an adapter merged into ``out_dir``/merged (Qwen3-ASR: CTranslate2 converts Whisper
    only), or the model's own folder. Returns the folder."""
    out_dir = Path(out_dir)
    if "ct2" in backbones.of(loaded.model).exports:
        return export_ct2(loaded.source, out_dir / f"ct2-{quantization}", quantization=quantization, force=True,
                          merged_dir=out_dir / "merged")
    return merge(loaded.source, out_dir / "merged") if loaded.kind == "adapter" else Path(loaded.source)


def load_ct2(reference, compute_type: str = "default", cpu_threads: int = 0, device: str = "auto",
             window_seconds: Optional[int] = None) -> tuple:
    """(``faster_whisper.WhisperModel``, its transformers processor, description) for ``reference``: a
    CTranslate2 directory as it is, anything else converted at float32 into a temporary directory first (see
    :func:`export_ct2`). ``compute_type`` is CTranslate2's (``default``: as stored; ``int8`` quantizes at load);
    ``cpu_threads`` 0: CTranslate2's default. The processor (same tokenizer and log-mel settings) gives
    references and features for scoring; its tokenizer's prefix is Arabic/transcribe/no timestamps;
    ``window_seconds`` cuts its log-mel window (:func:`arabicpeft.model.load_processor`), which CTranslate2's
    encoder takes as it is. The description, for results files: backend ``ct2``, the compute type and device the
    model runs with, and faster-whisper's own window in seconds."""
    from faster_whisper import WhisperModel

    def load(directory: Path):
        whisper = WhisperModel(str(directory), device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        description = {"backend": "ct2", "compute_type": whisper.model.compute_type, "device": whisper.model.device,
                       "window_seconds": whisper.feature_extractor.chunk_length}
        return whisper, load_processor(directory, window_seconds), description

    path = Path(str(reference)).expanduser()
    if saved_kind(path) == "ct2":
        return load(path)
    with tempfile.TemporaryDirectory(prefix="arabicpeft-ct2-") as tmp:
        # the weights are read into memory here; the temporary files are not needed afterwards
        return load(export_ct2(reference, Path(tmp) / "ct2", quantization="float32"))


# --- model cards ---------------------------------------------------------------------------------------


def _results_near(directory: Path) -> Optional[dict]:
    """The results of the run that produced ``directory`` (its parent's results.json), if any."""
    from .results import read_results
    from .run_dir import RESULTS_FILE

    for candidate in (directory / RESULTS_FILE, directory.parent / RESULTS_FILE):
        if candidate.is_file():
            return read_results(candidate)
    return None


def _model_card_text(directory, results: Optional[dict] = None) -> str:
    """The model card of ``directory`` (an adapter, merged/full model or CTranslate2 export), as Markdown with
    Hugging Face YAML metadata: base model, data source and sizes, the synthetic flag, metrics per test set and
    normalizer with the run's commit, and how to load it with peft / transformers / faster-whisper."""
    directory = Path(directory)
    cfg = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")) if (directory / CONFIG_FILE).is_file() else {}
    export = json.loads((directory / _EXPORT_FILE).read_text(encoding="utf-8")) if (directory / _EXPORT_FILE).is_file() else {}
    if results is None:
        source = Path(export.get("from") or directory)
        results = _results_near(directory) or (_results_near(source) if source.exists() else None) or {}
    kind = saved_kind(directory) if saved_kind(directory) in ("ct2", "adapter") else "model"
    library = {"ct2": "ctranslate2", "adapter": "peft", "model": "transformers"}[kind]
    data = results.get("data") or {}
    trained_on = SOURCES.get(cfg.get("source"))  # an old results file without "synthetic": its source says
    synthetic = bool(results.get("synthetic", trained_on is not None and trained_on.synthetic))
    provenance = results.get("provenance") or {}
    base = cfg.get("model") or export.get("from")  # an export of a model arabicpeft did not train: that model
    base_ref, base_is_hub_id, base_what = _card_base(base) if base else ("unknown", False, "unknown")
    hub_ids = sorted({i for part in (data.get("train_pool") or {}, *(data.get("test") or {}).values())
                      for i in ((part or {}).get("hub_ids") or [(part or {}).get("hub_id")]) if i})
    method = methods.METHODS.get(cfg.get("method"))
    adapter_method = method if method and method.peft_config else None
    meta = ["---", "language: ar", f"library_name: {library}", "pipeline_tag: automatic-speech-recognition",
            *([f"base_model: {base_ref}"] if base_is_hub_id else []), "tags: [whisper, arabic, dialects, arabicpeft"
            + (f", {adapter_method.name}" if adapter_method else "") + (", synthetic-data" if synthetic else "") + "]"]
    if hub_ids:
        meta.append("datasets: [" + ", ".join(i.split(":")[0] for i in hub_ids) + "]")
    meta.append("---")
    what = {"ct2": f"CTranslate2 export ({export.get('quantization')}) for faster-whisper",
            "adapter": f"{adapter_method.title if adapter_method else 'peft'} adapter",
            "model": "merged model" if export.get("kind") == "merged" else "Whisper model"}[kind]
    lines = meta + ["", f"# {what}: Whisper for Arabic ({cfg.get('dialect')}), trained with arabicpeft" if cfg
                    else f"# {what} of `{base}`, converted with arabicpeft (not fine-tuned)", ""]
    if synthetic:
        lines += ["**Trained and scored on the synthetic sample set (espeak-ng speech) only: its numbers show that "
                  "the pipeline runs, not how it transcribes real Arabic speech.**", ""]
    if cfg:
        lines += [f"- base model: `{base}`; method: {cfg.get('method', '?')}, precision {cfg.get('precision', '?')}, "
                  f"seed {cfg.get('seed', '?')}, {cfg.get('max_steps', '?')} max steps",
                  f"- data source: {cfg.get('source', '?')}" + (f" ({', '.join(hub_ids)})" if hub_ids else "")
                  + (f"; train {data.get('n_train')}, validation {data.get('n_validation')}, test {data.get('n_test')} "
                     "utterances" if data.get("n_train") is not None else "")]
    if provenance.get("git_commit"):
        lines.append(f"- made by arabicpeft commit `{provenance['git_commit']}`")
    if export:
        lines.append(f"- {export.get('kind')} from `{export.get('from')}`" + (
            f", encoder window {export['window_seconds']} s" if export.get("window_seconds") else ""))
    metrics = results.get("metrics") or {}
    if metrics:
        lines += ["", "## Test scores (corpus WER/CER in %, greedy decoding, scored before any merge or export)", "",
                  "| test set | normalizer | WER | CER | utterances |", "|---|---|---|---|---|"]
        for test_set, schemes in metrics.items():
            for scheme, m in schemes.items():
                wer, cer = (f"{v:.2f}" if isinstance(v, (int, float)) else "n/a" for v in (m.get("wer"), m.get("cer")))
                lines.append(f"| {test_set} | {scheme} | {wer} | {cer} | {m.get('n_utterances')} |")
        lines += ["", "Normalizers: `raw` (the paper's unnormalized text), `leaderboard` (Open Universal Arabic ASR "
                  "Leaderboard rules), `ar_norm_v1` (stricter; see arabicpeft.text)."]
    lines += ["", "## How to load", "", *_how_to_load(kind, directory, f"{json.dumps(base_ref)}  # {base_what}",
                                                      cfg.get("encoder_seconds"), export.get("quantization")), ""]
    return "\n".join(lines)


def _card_base(model: str) -> tuple[str, bool, str]:
    """(reference, is a hub id, what it is) of the base ``model`` a card's snippet loads: the hub copy of an
    offline model (:data:`arabicpeft.offline_model.HUB_COPIES`), a hub id as it is, else the local folder it was
    loaded from (an offline model without a hub copy, a local directory)."""
    from .offline_model import HUB_COPIES, OFFLINE_MODELS, resolve_model

    if model in HUB_COPIES:
        return HUB_COPIES[model], True, f"the base it was trained on: {model}, the same weights on the hub"
    if model in OFFLINE_MODELS or Path(model).expanduser().exists():
        return (str(Path(resolve_model(model)).expanduser().resolve()), False,
                "the base it was trained on: a folder on the machine that trained it")
    return model, True, "the base it was trained on"


def _how_to_load(kind: str, directory: Path, base: str, encoder_seconds: Optional[int],
                 quantization: Optional[str]) -> list[str]:
    """The card's "How to load" lines: a snippet that runs as written with plain transformers + peft (an adapter
    on ``base``, the base model's Python literal and comment; a model) or faster-whisper (a CTranslate2 export) on
    ``AUDIO``, then the arabicpeft command."""
    here = str(directory.resolve())
    model_dir = f"MODEL_DIR = {json.dumps(here)}  # this folder; once uploaded, its hub id"
    audio = 'AUDIO = "audio.wav"  # an audio file: Whisper hears one window (30 s for OpenAI\'s models)'
    if kind in ("adapter", "model"):
        imports, code = backbones.get(directory).card_snippet(adapter=kind == "adapter")
        names = [model_dir, *([f"BASE_MODEL = {base}"] if kind == "adapter" else []), audio]
        lines = ["```python", *imports, "", *names, "", *code, "```"]
        if kind == "adapter" and encoder_seconds:
            lines += ["", f"Trained with the encoder window cut to {encoder_seconds} s, and scored at that "
                      "window: the snippet runs the adapter on the base's full window, as `arabicpeft merge` does; "
                      "`arabicpeft.model.load_model(MODEL_DIR)` rebuilds the cut."]
    elif _feature_config(directory).get("nb_max_frames", N_FRAMES) != N_FRAMES:  # faster-whisper pads to 30 s
        return [f"This export's encoder window is {_feature_config(directory)['chunk_length']} s, and "
                "faster-whisper transcribes 30 s windows only: load the transformers model it was exported from, or "
                "export one with the full window (`arabicpeft merge` puts an adapter on it)."]
    else:
        lines = ["```python", "from faster_whisper import WhisperModel", "", model_dir,
                 'AUDIO = "audio.wav"  # an audio file of any length', "",
                 f'model = WhisperModel(MODEL_DIR, compute_type="{quantization or "default"}")',
                 'segments, info = model.transcribe(AUDIO, language="ar", task="transcribe", beam_size=1)',
                 'print(" ".join(segment.text.strip() for segment in segments))', "```"]
    return lines + ["", f"Or with arabicpeft: `python -m arabicpeft transcribe AUDIO --model-path {shlex.quote(here)}"
                    + (" --backend ct2" if kind == "ct2" else "") + " --output-dir OUT`."]


def _feature_config(directory: Path) -> dict:
    """The log-mel settings saved in ``directory`` (``preprocessor_config.json``, what faster-whisper reads)."""
    config = directory / "preprocessor_config.json"
    return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}


def write_model_card(directory, results: Optional[dict] = None) -> str:
    """Write the model card of ``directory`` (an adapter, merged/full model or CTranslate2 export) as its
    ``README.md`` and return the Markdown written: Hugging Face YAML metadata (base model, data sets, tags), the
    data source and sizes, the synthetic flag, test WER/CER per test set and normalizer with the run's commit, and
    how to load it with peft / transformers / faster-whisper. ``results``: the run's results (default: the
    ``results.json`` beside ``directory`` or beside what it was merged or exported from, if any)."""
    text = _model_card_text(directory, results)
    (Path(directory) / _CARD_FILE).write_text(text, encoding="utf-8")
    return text


# --- upload ------------------------------------------------------------------------------------------------


def _check_upload_folder(folder) -> str:
    """The kind of ``folder`` (``adapter``, ``model`` or ``ct2``) after checking it holds what that kind needs
    and a model card; ValueError naming what is missing otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory.")
    kind = saved_kind(folder) if saved_kind(folder) in ("ct2", "adapter") else "model"
    needs = {"ct2": ["model.bin", "config.json", "tokenizer.json", "preprocessor_config.json"],
             "adapter": ["adapter_config.json", "adapter_model.safetensors"],
             "model": ["config.json", "model.safetensors", "generation_config.json", "preprocessor_config.json"]}[kind]
    missing = [f for f in needs + [_CARD_FILE] if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{folder} (a {kind} directory) lacks {', '.join(missing)}: it is not ready to upload. "
                         "Save it with arabicpeft (train, merge or export), which writes them all.")
    return kind


def upload(folder, repo_id: str, target: str = "hf", token: Optional[str] = None, private: bool = True,
           license_name: str = "MIT"):
    """Upload a checked ``folder`` to the Hugging Face Hub (``target="hf"``, ``repo_id`` = ``user/name``; the
    repository is created if absent) or to Kaggle Models (``target="kaggle"``, ``repo_id`` =
    ``owner/model/transformers/variation``, through ``kagglehub.model_upload``).

    Needs the network and a token (``token``, or ``HF_TOKEN`` / ``huggingface-cli login``; Kaggle: its API
    credentials). Raises ConnectionError, before any upload, when the network or the hub is off.
    """
    from .hub import HUB_HOST, hub_offline_mode, hub_reachable

    if target not in _UPLOAD_TARGETS:
        raise ValueError(f"Unknown upload target {target!r}; choose one of {', '.join(_UPLOAD_TARGETS)}.")
    kind = _check_upload_folder(folder)
    host = HUB_HOST if target == "hf" else "www.kaggle.com"
    if (target == "hf" and hub_offline_mode()) or not hub_reachable(host):
        raise ConnectionError(
            f"Uploading needs the network: {host} cannot be reached"
            + (" (HF_HUB_OFFLINE is set)" if target == "hf" and hub_offline_mode() else "")
            + f". The {kind} folder {folder} is checked and ready: upload it from a machine with internet access "
            "(Kaggle: Settings -> Internet on), with a token.")
    if target == "hf":
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                 commit_message=f"arabicpeft {kind} upload")
    try:
        import kagglehub
    except ImportError as e:
        raise ImportError("Kaggle Models uploads use kagglehub (preinstalled on Kaggle): pip install kagglehub") from e
    return kagglehub.model_upload(repo_id, str(folder), license_name=license_name,
                                  version_notes=f"arabicpeft {kind} upload")

