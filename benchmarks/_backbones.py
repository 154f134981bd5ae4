"""Training step time and peak memory per backbone: what ``python benchmarks/gpu.py --backbones ...`` measures.

Each architecture is built from its published configuration with random weights (step time and memory do not
depend on the weights; nothing is downloaded) straight from transformers' classes, and trained with a plain loop
(AdamW, fused on a GPU) on random otozz-length batches: 30 s of log-mel and 20-120 transcript tokens per clip.
Rows: LoRA (r 32, alpha 64, q and v projections of the encoder/audio tower and the decoder/language model) vs full
fine-tuning, fp16 and bf16 autocast (fp32 on a CPU), with and without gradient checkpointing. All rows of one
architecture run in one process (``python benchmarks/_backbones.py --arch NAME ...``, started once per
architecture by gpu.py), the peak memory of each row read alone (``torch.cuda.reset_peak_memory_stats``).

The Qwen3-ASR sizes: the audio tower of 0.6B (d_model 896, 18 layers, 14 heads, FFN 3584, output 1024) and 1.7B
(1024, 24, 16, 4096, 2048) as the Qwen3-ASR model reference lists them (ivan-digital/qwen3-asr-swift,
docs/asr-model.md; Qwen3-ASR technical report, arXiv 2601.21337), on the Qwen3-0.6B (hidden 1024, intermediate
3072) and Qwen3-1.7B (hidden 2048, intermediate 6144; transformers' Qwen3ASRConfig default) language models, 28
layers, 16 heads, 8 key-value heads, head size 128. whisper-large-v3-turbo: large-v3's encoder (1280, 32 layers,
20 heads, 128 mel bins) with 4 decoder layers. The ``tiny-`` names shrink each family for the CPU test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import REPO  # noqa: F401  (puts this checkout's arabicpeft on the path)

T4_USABLE_GIB = 14.5  # a 16 GB T4 as Kaggle gives it: ~15 GiB visible, less the CUDA context and fragmentation
FRAMES = 3000  # 30 s of log-mel at 10 ms, as otozz stores it
LABEL_TOKENS = (20, 120)

_QWEN_TEXT = dict(num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                  vocab_size=151936, tie_word_embeddings=True)
ARCHS = {  # name: (family, its configuration's fields)
    "whisper-small": ("whisper", dict(d_model=768, encoder_layers=12, decoder_layers=12, encoder_attention_heads=12,
                                      decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                                      num_mel_bins=80, vocab_size=51865)),
    "whisper-large-v3-turbo": ("whisper", dict(d_model=1280, encoder_layers=32, decoder_layers=4,
                                               encoder_attention_heads=20, decoder_attention_heads=20,
                                               encoder_ffn_dim=5120, decoder_ffn_dim=5120, num_mel_bins=128,
                                               vocab_size=51866)),
    "qwen3-asr-0.6b": ("qwen3_asr", dict(audio=dict(d_model=896, encoder_layers=18, encoder_attention_heads=14,
                                                    encoder_ffn_dim=3584, output_dim=1024),
                                         text=dict(hidden_size=1024, intermediate_size=3072, **_QWEN_TEXT))),
    "qwen3-asr-1.7b": ("qwen3_asr", dict(audio=dict(d_model=1024, encoder_layers=24, encoder_attention_heads=16,
                                                    encoder_ffn_dim=4096, output_dim=2048),
                                         text=dict(hidden_size=2048, intermediate_size=6144, **_QWEN_TEXT))),
    # the CPU test's: the same families, shrunk
    "tiny-whisper-v3": ("whisper", dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                                        decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
                                        num_mel_bins=128, vocab_size=51866)),
    "tiny-qwen3-asr": ("qwen3_asr", dict(audio=dict(d_model=64, encoder_layers=2, encoder_attention_heads=2,
                                                    encoder_ffn_dim=128, output_dim=64, downsample_hidden_size=32),
                                         text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                   num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                                   vocab_size=151936, tie_word_embeddings=True))),
}


def build(arch: str, device):
    """(model, family, number of mel bins) of ``arch`` with random weights, in fp32 on ``device``."""
    import torch
    import transformers

    family, fields = ARCHS[arch]
    with torch.device(device):
        if family == "whisper":
            config = transformers.WhisperConfig(**fields, max_source_positions=FRAMES // 2,
                                                attn_implementation="sdpa")
            return transformers.WhisperForConditionalGeneration(config), family, fields["num_mel_bins"]
        config = transformers.Qwen3ASRConfig(audio_config={"model_type": "qwen3_asr_encoder", **fields["audio"]},
                                             text_config={"model_type": "qwen3", **fields["text"]},
                                             attn_implementation="sdpa")
        return transformers.Qwen3ASRForConditionalGeneration(config), family, config.audio_config.num_mel_bins


def batch(family: str, model, mels: int, size: int, seed: int, device) -> dict:
    """A random batch of ``size`` 30 s clips with LABEL_TOKENS-long transcripts, as the family's forward takes
    it (Qwen3-ASR: the audio placeholder tokens its encoder output fills, then the transcript; loss on the
    transcript only)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(LABEL_TOKENS[0], LABEL_TOKENS[1] + 1, (size,), generator=g)
    longest = int(lengths.max())
    features = torch.rand(size, mels, FRAMES, generator=g) * 2 - 1
    text = torch.randint(300, 50000, (size, longest), generator=g)
    mask = torch.arange(longest)[None, :] < lengths[:, None]
    if family == "whisper":
        labels = text.masked_fill(~mask, -100)
        return {"input_features": features.to(device), "labels": labels.to(device)}
    from transformers.models.qwen3_asr.modeling_qwen3_asr import _get_feat_extract_output_lengths

    cfg = model.config
    audio = int(_get_feat_extract_output_lengths(torch.tensor(FRAMES), cfg.audio_config.n_window))
    ids = torch.cat([torch.full((size, audio), cfg.audio_token_id), text.masked_fill(~mask, cfg.pad_token_id)], 1)
    labels = torch.cat([torch.full((size, audio), -100), text.masked_fill(~mask, -100)], 1)
    attention = torch.cat([torch.ones(size, audio, dtype=torch.long), mask.long()], 1)
    return {"input_ids": ids.to(device), "attention_mask": attention.to(device), "labels": labels.to(device),
            "input_features": features.to(device),
            "input_features_mask": torch.ones(size, FRAMES, dtype=torch.long, device=device)}


def measure_row(arch: str, method: str, precision: str, checkpointing: bool, plan: dict) -> dict:
    """One row: build, adapt (LoRA) or not (full), warm-up and timed steps; step seconds and peak memory."""
    import torch
    from peft import LoraConfig, get_peft_model

    from arabicpeft.device import PeakMemory

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    peak = PeakMemory()
    torch.manual_seed(0)  # every row of an architecture starts from the same random weights
    model, family, mels = build(arch, device)
    if checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method == "lora":
        model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj"]))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=cuda)
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model.train()
    seconds, losses = [], []
    for step in range(plan["warmup_steps"] + plan["steps"]):
        inputs = batch(family, model, mels, plan["batch_size"], step, device)
        sync()
        started = time.perf_counter()
        with torch.autocast(device, dtype=half, enabled=half is not None):
            loss = model(**inputs).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        sync()
        seconds.append(time.perf_counter() - started)
        losses.append(float(loss))
    timed = sorted(seconds[plan["warmup_steps"]:])
    return {"arch": arch, "family": family, "method": method, "precision": precision,
            "gradient_checkpointing": checkpointing, "trainable_parameters": sum(p.numel() for p in params),
            "total_parameters": sum(p.numel() for p in model.parameters()), "step_seconds": seconds,
            "step_s": timed[len(timed) // 2], "losses": losses, "peak_memory": peak.read()}


def rows(precisions: list[str]) -> list[tuple]:
    """(method, precision, gradient checkpointing) of every row, in table order."""
    return [(m, p, gc) for m in ("lora", "full") for p in precisions for gc in (False, True)]


def measure_arch(arch: str, out: Path, plan: dict) -> None:
    """Every row of ``arch`` in this process; writes ``out/<arch>.json`` ({row name: record or error})."""
    import torch

    records = {}
    for method, precision, gc in rows(plan["precisions"]):
        name = f"{arch}/{method}-{precision}{'-gc' if gc else ''}"
        print(f"  measuring {name} ...", flush=True)
        try:
            records[name] = measure_row(arch, method, precision, gc, plan)
        except torch.cuda.OutOfMemoryError as e:  # a result too: this row does not fit this GPU
            records[name] = {"arch": arch, "method": method, "precision": precision, "gradient_checkpointing": gc,
                             "error": f"out of memory: {str(e).splitlines()[0]}"}
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    (out / f"{arch}.json").write_text(json.dumps(records, indent=1), encoding="utf-8")


def table(records: dict, cuda: bool) -> list[str]:
    """The printed table: step time, peak memory and (on a GPU) whether the row fits a 16 GB T4."""
    lines = [f"{'backbone / recipe':<44} {'trainable':>13} {'step s':>8} {'peak GiB':>9}  T4 16 GB"]
    for name, r in records.items():
        if "error" in r:
            lines.append(f"{name:<44} {r['error']}")
            continue
        gib = r["peak_memory"]["bytes"] / 2**30
        # a T4 has no bf16 arithmetic: only the fp16 rows say whether it fits
        fits = ("fits" if gib <= T4_USABLE_GIB else "does not fit") if cuda and r["precision"] == "fp16" else "-"
        lines.append(f"{name:<44} {r['trainable_parameters']:>13,} {r['step_s']:8.3f} {gib:9.2f}  {fits}")
    return lines


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="every row of one backbone, in this process")
    parser.add_argument("--arch", required=True, choices=sorted(ARCHS))
    parser.add_argument("--output-dir", required=True, help="where plan.json is and <arch>.json goes")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    measure_arch(args.arch, out, json.loads((out / "backbones-plan.json").read_text(encoding="utf-8")))


if __name__ == "__main__":
    _main()
