"""Transcription by backend, side by side: transformers fp32 against CTranslate2 float32 and int8 on the same
sample clips (real-time factor, clips/s, peak RSS, WER/CER, identical transcripts, the encoder's share, size on
disk). Notebook 05 shows the table; ``python benchmarks/inference.py`` prints it with its summary line.

Each backend runs in a fresh process, ``python -m arabicpeft.inference --row ROW --output-dir DIR`` (started by
:func:`compare_backends`), so that its peak RSS is its own and no thread pool is left over from another backend.

Public: :data:`BACKENDS`, :class:`Comparison`, :func:`compare_backends`, :func:`backend_table`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from . import backbones

if TYPE_CHECKING:  # pandas is imported where a table is made
    import pandas as pd

# The rows per device, in order (the unmerged adapter for an adapter only), and what each runs: the transformers
# precision, or the CTranslate2 compute type of the export. On a GPU transformers generates under autocast in the
# GPU's native half type (fp16 on a T4, bf16 on Ampere and later, as evaluation does) and CTranslate2 runs float16
# weights, and int8 weights with float16 activations.
BACKENDS = {"cpu": {"hf-adapter": "fp32", "hf": "fp32", "ct2-float32": "float32", "ct2-int8": "int8"},
            "cuda": {"hf-adapter": "fp16", "hf": "fp16", "ct2-float16": "float16",
                     "ct2-int8_float16": "int8_float16"}}
_PLAN_FILE = "plan.json"  # what every row's process reads: the model, its exports, the test sets, the window


@dataclasses.dataclass
class Comparison:
    """What :func:`compare_backends` measured: ``table`` (:func:`backend_table`), ``plan`` (model, adapter, merged
    model, exports, test sets, generation bound, window), ``rows`` ({row: its process's record: load and
    transcription seconds, audio seconds, clips, threads, peak memory, pooled metrics, hypotheses, provenance})
    and ``disk_mib`` ({row: MiB on disk of the directory it loads})."""

    table: "pd.DataFrame"
    plan: dict
    rows: dict
    disk_mib: dict


def compare_backends(model_path: str = "whisper-base", output_dir=None, max_clips: Optional[int] = None,
                     batch_size: int = 16, threads: int = 0, window: str = "trained",
                     device: str = "cpu") -> Comparison:
    """``model_path`` (any model reference; an adapter or a run's adapter is merged first, fp32, full window) in
    transformers against CTranslate2 on the sample test sets (``max_clips`` per set), each backend in a fresh
    process with ``threads`` CPU threads (0: torch's default), at the window ``window`` says (``trained``: the
    model's own ``encoder_seconds``, as its evaluation decoded; ``full``: 30 s). ``device`` (:data:`BACKENDS`):
    ``cpu``, transformers fp32 against CTranslate2 float32 and int8; ``cuda``, transformers in the GPU's half
    precision (autocast) against CTranslate2 float16 and int8_float16. The merged model, the exports, the plan and each row's record
    are written under ``output_dir`` (default ``runs/benchmark-inference``). Raises ValueError for an unknown
    ``device`` or ``cuda`` without a visible GPU, RuntimeError when a row's process fails (its stderr is shown)."""
    from . import dialects
    from .config import ExperimentConfig
    from .export import export_ct2, merge
    from .model import saved_kind
    from .offline_model import resolve_model
    from .results import MIB, dir_bytes
    from .run_dir import write_json_atomic

    if device not in BACKENDS:
        raise ValueError(f"device {device!r} is not one of {', '.join(BACKENDS)}")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: no CUDA GPU is visible; compare the backends on the CPU (device cpu)")
    backends = BACKENDS[device]
    out = Path(output_dir or "runs/benchmark-inference")
    out.mkdir(parents=True, exist_ok=True)
    path = Path(model_path)
    model_dir = path / "model" if saved_kind(path) == "run" else path
    adapter = str(model_dir) if saved_kind(model_dir) == "adapter" else None
    hf_model = str(merge(adapter, out / "merged", dtype="fp32")) if adapter else str(model_path)
    cfg = ExperimentConfig.saved_with(adapter or hf_model)
    exports = {row: str(export_ct2(hf_model, out / row, quantization=q, force=True))
               for row, q in backends.items() if row.startswith("ct2")} \
        if "ct2" in backbones.get(resolve_model(hf_model)).exports else {}
    plan = {"model": str(model_path), "adapter": adapter, "hf_model": hf_model, "exports": exports,
            "device": device, "backends": backends,
            "test_sets": list(dialects.VARIETIES), "max_length": (cfg or ExperimentConfig()).generation_max_length,
            "window_seconds": cfg.encoder_seconds if cfg and window == "trained" else None}
    write_json_atomic(out / _PLAN_FILE, plan)
    rows = {row: _run_row(row, out, batch_size, threads, max_clips) for row in backends
            if (row != "hf-adapter" or adapter) and (not row.startswith("ct2") or row in exports)}
    directories = {"hf-adapter": adapter, "hf": hf_model, **exports}
    disk = {row: dir_bytes(d) / MIB for row, d in directories.items() if row in rows and Path(d).is_dir()}
    return Comparison(backend_table(rows, batch_size, disk), plan, rows, disk)


def _run_row(row: str, out: Path, batch_size: int, threads: int, max_clips: Optional[int]) -> dict:
    """One row of :func:`compare_backends` in a fresh process; its record."""
    cmd = [sys.executable, "-m", "arabicpeft.inference", "--row", row, "--output-dir", str(out),
           "--batch-size", str(batch_size), "--threads", str(threads)]
    if max_clips:
        cmd += ["--max-clips", str(max_clips)]
    # the package's own folder on the path: a notebook may have imported it from a folder added at run time
    pythonpath = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": pythonpath})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"inference row {row} failed with exit code {proc.returncode} (its stderr is above)")
    return json.loads((out / f"{row}.json").read_text(encoding="utf-8"))


def _measure_row(row: str, out: Path, batch_size: int, threads: int, max_clips: Optional[int]) -> None:
    """One row, in this process: load, transcribe the sample test sets, time the encoder; writes ``{row}.json``."""
    import soundfile as sf
    import torch

    from .config import ExperimentConfig
    from .data import load_test_sets
    from .evaluate import evaluate_sets
    from .metrics import pooled_metrics
    from .device import PeakMemory
    from .results import provenance
    from .run_dir import write_json_atomic

    plan = json.loads((out / _PLAN_FILE).read_text(encoding="utf-8"))
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    peak = PeakMemory()
    started = time.monotonic()
    model, processor, record = _load(row, plan, threads)
    record["window_seconds"] = processor.feature_extractor.chunk_length
    load_s = time.monotonic() - started
    spec = ExperimentConfig(dialect="all", test_sets=list(plan["test_sets"]), source="sample",
                            max_test_samples=max_clips)
    tests, _, _ = load_test_sets(spec, processor.tokenizer, max_seconds=processor.feature_extractor.chunk_length)
    audio_s = sum(sf.info(r["audio"]).duration for ds in tests.values() for r in ds.select_columns(["audio"]))
    started = time.monotonic()
    _, rows = evaluate_sets(model, processor, tests, batch_size=batch_size, max_length=plan["max_length"],
                            precision=record.get("precision", "fp32"))
    wall = time.monotonic() - started
    raw = rows[rows.scheme == "raw"]
    encoder_s = _encoder_seconds(model, processor, next(iter(tests.values())), batch_size, record.get("precision"))
    write_json_atomic(out / f"{row}.json", {
        **record, "row": row, "threads": threads, "audio_s": audio_s, "load_s": load_s, "transcribe_s": wall,
        "encoder_s_per_batch": encoder_s, "clips": len(raw), "peak_memory": peak.read(),
        "metrics_pooled": pooled_metrics(rows), "hypotheses": raw["hypothesis"].tolist(), "provenance": provenance()})


def _load(row: str, plan: dict, threads: int) -> tuple:
    """(model, processor, description) of one row at the plan's window and generation bound."""
    window, device = plan["window_seconds"], plan.get("device", "cpu")
    kind = plan.get("backends", BACKENDS["cpu"])[row]  # plans written before devices: the CPU rows
    if row.startswith("ct2"):
        from .export import load_ct2

        # CTranslate2's encoder takes the shorter features of a cut window as they are
        return load_ct2(plan["exports"][row], compute_type=kind, cpu_threads=threads, device=device,
                        window_seconds=window)
    from .model import load_model

    loaded = load_model(plan["adapter"] if row == "hf-adapter" else plan["hf_model"], precision=kind,
                        full_window=True)
    if window:
        loaded.cut_window(window)
    if plan["max_length"]:  # the bound CTranslate2 gets too
        backbones.of(loaded.model).set_generation(loaded.model, plan["max_length"])
    if kind == "fp32":
        compute = "float32"
    else:  # evaluate's autocast: the GPU's native half type (bfloat16 on Ampere and later)
        from .device import half_dtype

        compute = f"{str(half_dtype()).removeprefix('torch.')} (autocast)"
    return loaded.model, loaded.processor, {"backend": "hf", "compute_type": compute, "precision": kind,
                                            "device": str(next(loaded.model.parameters()).device)}


def _encoder_seconds(model, processor, dataset, batch_size: int, precision: Optional[str] = None) -> float:
    """Seconds the encoder alone takes for one full batch (``batch_size`` clips, the dataset's first clip
    repeated), the mean of 2 timed passes after a warm-up: how much of transcription the encoder is. On a GPU the
    transformers encoder runs under the autocast it transcribes with, and the time is read after a synchronise."""
    import numpy as np
    import torch

    from .device import half_dtype

    ct2 = type(model).__module__.startswith("faster_whisper")
    backbone = backbones.exporting("ct2") if ct2 else backbones.of(model)  # CTranslate2 runs the family it exports
    # log-mel on the CPU (the timing is the encoder's alone), moved to the model's device below
    batch = backbone.collator(processor, feature_device="cpu")([dataset[0]] * batch_size)
    if ct2:
        import ctranslate2

        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(batch["input_features"].numpy()))
        run = lambda: model.model.encode(view, to_cpu=True)  # noqa: E731  (to_cpu: waits for the GPU's result)
        mixed = contextlib.nullcontext()
    else:
        device = next(model.parameters()).device
        # transformers' get_encoder: Whisper's encoder; a model of several modalities gives itself unless asked
        # for its audio encoder (Qwen3-ASR's audio tower, which takes the frames' mask too)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model's, adapted
        encoder = base.get_encoder()
        encoder = base.get_encoder(modality="audio") if encoder is base else encoder
        audio = {k: v.to(device) for k, v in batch.items() if k.startswith("input_features")}
        run = lambda: encoder(**audio)  # noqa: E731
        # as evaluation runs it: the GPU's native half type under autocast, fp32 on a CPU
        half = device.type == "cuda" and precision not in (None, "fp32")
        mixed = torch.autocast("cuda", dtype=half_dtype()) if half else contextlib.nullcontext()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    with torch.inference_mode(), mixed:
        run()
        sync()
        started = time.monotonic()
        for _ in range(2):
            run()
        sync()
    return (time.monotonic() - started) / 2


def backend_table(rows: dict, batch_size: int, disk_mib: dict) -> "pd.DataFrame":
    """The rows ({row: its record}, with the ``hf`` row) side by side, one row per backend: the compute type,
    "RTF" (real-time factor: transcription s / audio s, loading excluded), clips/s, peak RSS (MiB), raw pooled WER
    and CER (%), "speed x" (the hf row's transcription time / this row's), "RSS x" (this row's peak RSS / the hf
    row's), "same text %" (hypotheses identical to the hf row's), "encoder %" (the encoder's share of
    transcription time: one full batch of ``batch_size`` timed alone, scaled to the clips) and "MiB on disk"
    (``disk_mib``: of the directory the row loads; NaN for a model from the hub cache)."""
    import pandas as pd

    from .results import MIB

    hf = rows["hf"]
    return pd.DataFrame.from_dict({row: {
        "compute": r["compute_type"], "RTF": r["transcribe_s"] / r["audio_s"],
        "clips/s": r["clips"] / r["transcribe_s"], "peak RSS MiB": r["peak_memory"]["bytes"] / MIB,
        "WER": r["metrics_pooled"]["raw"]["wer"], "CER": r["metrics_pooled"]["raw"]["cer"],
        "speed x": hf["transcribe_s"] / r["transcribe_s"],
        "RSS x": r["peak_memory"]["bytes"] / hf["peak_memory"]["bytes"],
        "same text %": 100 * sum(a == b for a, b in zip(r["hypotheses"], hf["hypotheses"])) / len(hf["hypotheses"]),
        "encoder %": 100 * r["encoder_s_per_batch"] * r["clips"] / batch_size / r["transcribe_s"],
        "MiB on disk": disk_mib.get(row, float("nan"))} for row, r in rows.items()}, orient="index")


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="one row of compare_backends, in its own process")
    parser.add_argument("--row", choices=sorted({r for rows in BACKENDS.values() for r in rows}), required=True)
    parser.add_argument("--output-dir", required=True, help=f"where {_PLAN_FILE} is and the row's record goes")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--max-clips", type=int)
    args = parser.parse_args(argv)
    _measure_row(args.row, Path(args.output_dir), args.batch_size, args.threads, args.max_clips)


if __name__ == "__main__":
    _main()
