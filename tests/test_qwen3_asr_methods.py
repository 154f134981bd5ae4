"""Every fine-tuning method of the table on Qwen3-ASR (the random-weight ``tiny-random-qwen3-asr``): DoRA and the other
peft methods train 2 steps, save, load back and merge into a standalone model with the adapter's transcripts at fp32;
a quantized base (int8/nf4) is refused on a CPU before loading, and on a GPU gets the BitsAndBytesConfig the
loader builds for every family, with the layers the backbone keeps unquantized."""

import json
import math

import datasets
import pytest
import torch

from arabicpeft import methods
from arabicpeft.config import ExperimentConfig
from arabicpeft.results import read_results
from test_qwen3_asr import GEN, TINY, _cfg, _records

# Each method of the table but LoRA and full (their Qwen3-ASR runs are in tests/test_qwen3_asr.py), and the LoRA
# options that change how an adapter initialises, trains or saves: DoRA, rsLoRA, PiSSA, OLoRA, EVA.
_SMALL = dict(lora_r=4, lora_alpha=8, vera_r=8, adalora_target_r=2, lora_targets="all-linear", max_test_samples=2,
              max_eval_samples=2)
_CASES = {"dora": ("lora", {"use_dora": True}),
          **{name: (name, {}) for name in methods.METHODS if name not in ("lora", "full")},
          "rslora": ("lora", {"use_rslora": True}),
          **{f"init={init}": ("lora", {"lora_init": init}) for init in ("pissa", "olora", "eva")}}


@pytest.mark.parametrize("case", list(_CASES))
def test_every_method_trains_on_qwen3_asr_reloads_and_merges(case, tmp_path):
    from transformers import Qwen3ASRForConditionalGeneration

    from arabicpeft import export
    from arabicpeft.evaluate import transcribe
    from arabicpeft.model import load_model
    from arabicpeft.offline_model import resolve_model
    from arabicpeft.train import run

    name, options = _CASES[case]
    out = tmp_path / "run"
    result = read_results(run(_cfg(out, method=name, **_SMALL, **options), log=lambda m: None))
    losses = [h["loss"] for h in result["training"]["log_history"] if "loss" in h]
    assert result["training"]["global_step"] == 2 and len(losses) == 2 and all(math.isfinite(x) for x in losses)
    saved = json.loads((out / "model" / "adapter_config.json").read_text())
    assert saved["peft_type"] == methods.get(name).peft_config.removesuffix("Config").upper()
    assert saved.get("use_dora", False) == bool(options.get("use_dora"))
    assert result["metrics"]["egyptian"]["raw"]["n_utterances"] == 2

    unmerged = load_model(out / "model", full_window=True)
    assert unmerged.kind == "adapter" and unmerged.config.method == name
    merged = export.merge(out / "model", tmp_path / "merged")
    tests = datasets.Dataset.from_list(_records(3))
    plain = Qwen3ASRForConditionalGeneration.from_pretrained(merged).eval()  # no peft
    with_adapter = transcribe(unmerged.model, unmerged.processor, tests, max_new_tokens=GEN)[1]
    assert any(with_adapter) and transcribe(plain, unmerged.processor, tests, max_new_tokens=GEN)[1] == with_adapter
    base = Qwen3ASRForConditionalGeneration.from_pretrained(resolve_model(TINY)).state_dict()
    changed = plain.state_dict()
    assert any(not torch.equal(base[k], changed[k]) for k in base if k in changed)
