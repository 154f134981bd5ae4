"""LoRA against full fine-tuning on a CPU: ``python benchmarks/memory.py [--models whisper-base] [--recipes ...]``.

Peak RSS, step time and the activations autograd keeps of LoRA (dropout 0.05 and 0, with and without gradient
checkpointing) against full fine-tuning at equal batch, whisper-base at the sample set's 8 s window, each recipe
in a fresh process. Prints ratios measured in one run and a ``RESULT key=value ...`` line, and writes
``benchmark.json`` (device, versions, settings, every row) under the runs root.
"""

from __future__ import annotations

import argparse

from _steps import Bench, StepRow, add_options, chosen, run

MODEL = "whisper-base"  # the demo's model, at the sample set's window by default


def recipes() -> list[StepRow]:
    """The demo's LoRA (q,k,v,out) against full fine-tuning, fp32."""
    lora = dict(method="lora", lora_targets="qkvo", lora_r=32, lora_alpha=64)
    return [
        StepRow("lora-dropout0.05", "LoRA r32 q,k,v,out, dropout 0.05", {**lora, "lora_dropout": 0.05}),
        StepRow("lora-dropout0", "LoRA r32 q,k,v,out, dropout 0", {**lora, "lora_dropout": 0.0}),
        StepRow("lora-dropout0-gc", "LoRA, dropout 0, gradient checkpointing",
                {**lora, "lora_dropout": 0.0, "gradient_checkpointing": True}),
        StepRow("full", "full fine-tuning", dict(method="full")),
        StepRow("full-gc", "full fine-tuning, gradient checkpointing", dict(method="full", gradient_checkpointing=True)),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser)
    parser.add_argument("--models", default=MODEL, help=f"the model (default {MODEL})")
    parser.add_argument("--encoder-seconds", type=int, help="the encoder window in seconds (default 8, the sample "
                        "set's)")
    args = parser.parse_args(argv)
    from arabicpeft.sources import SAMPLE_ENCODER_SECONDS

    seconds = args.encoder_seconds or SAMPLE_ENCODER_SECONDS
    settings = {"steps": args.steps, "warmup_steps": args.warmup_steps, "batch_size": args.batch_size,
                "encoder_seconds": seconds}
    run(Bench("memory", chosen(recipes(), args.recipes, "memory"), {args.models: args.models},
              dict(model=args.models, encoder_seconds=seconds, precision="fp32"), settings, reference="full",
              title=f"{seconds} s encoder window, fp32"), args)


if __name__ == "__main__":
    main()
