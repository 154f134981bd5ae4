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
from arabicpeft.device import _no_gpu_driver
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


@pytest.mark.skipif(not _no_gpu_driver(), reason="this machine has a GPU driver")
@pytest.mark.parametrize("precision", ["int8", "nf4"])
def test_a_quantized_qwen3_asr_base_is_refused_on_a_cpu_before_loading(precision, tmp_path):
    from arabicpeft.errors import GPUUnavailableError
    from arabicpeft.kaggle import preflight

    cfg = ExperimentConfig(model=TINY, source="sample", precision=precision, output_dir=str(tmp_path / "run"))
    with pytest.raises(GPUUnavailableError, match=rf"^precision {precision} needs a CUDA GPU \(.*\(bitsandbytes\)\) and "
                                                  r"none is visible — ") as refused:
        preflight(cfg)  # no torch, no model
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("precision", ["int8", "nf4"])
def test_the_loader_quantizes_every_layer_of_both_towers_but_the_front_end_projector_and_output(precision,
                                                                                                monkeypatch):
    """What ``_load_base`` would hand transformers on a GPU (captured, not run: bitsandbytes needs CUDA here), and
    which Linear layers transformers' own bitsandbytes replacement turns into 8/4-bit ones with that config, on the
    tiny Qwen3-ASR and, for comparison, tiny-random Whisper (built on the meta device: no weights)."""
    from transformers import AutoConfig, Qwen3ASRForConditionalGeneration, WhisperForConditionalGeneration
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear
    from transformers.quantizers.base import HfQuantizer

    from arabicpeft import backbones, model as model_lib
    from arabicpeft.offline_model import resolve_model

    class Loaded(Exception):
        pass

    def capture(self, path, **kwargs):
        raise Loaded(kwargs)

    monkeypatch.setattr(model_lib, "check_gpu", lambda precision: None)  # the GPU check a CPU fails (test above)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    left = {}
    for reference, cls in ((TINY, Qwen3ASRForConditionalGeneration), ("tiny-random", WhisperForConditionalGeneration)):
        backbone = backbones.get(resolve_model(reference))
        monkeypatch.setattr(type(backbone), "load_model", capture)
        with pytest.raises(Loaded) as loaded:
            model_lib._load_base(ExperimentConfig(model=reference, source="sample", precision=precision))
        kwargs = loaded.value.args[0]
        quantization = kwargs["quantization_config"]
        assert kwargs["device_map"] == {"": 0} and kwargs["dtype"] == torch.float32
        assert (quantization.load_in_8bit, quantization.load_in_4bit) == (precision == "int8", precision == "nf4")
        if precision == "nf4":
            assert quantization.bnb_4bit_quant_type == "nf4" and quantization.bnb_4bit_use_double_quant
        assert quantization.llm_int8_skip_modules == (list(backbone.unquantized) or None)
        with torch.device("meta"):
            model = cls(AutoConfig.from_pretrained(resolve_model(reference)))
        skip = HfQuantizer.get_modules_to_not_convert(model, quantization.llm_int8_skip_modules,
                                                      model._keep_in_fp32_modules)
        model = replace_with_bnb_linear(model, modules_to_not_convert=skip, quantization_config=quantization)
        quantized = {n for n, m in model.named_modules() if type(m).__name__ in ("Linear8bitLt", "Linear4bit")}
        left[reference] = {n for n, m in model.named_modules() if type(m) is torch.nn.Linear}
        assert all(".layers." in n for n in quantized) and len(quantized) > 0
        assert not any(".layers." in n for n in left[reference])  # every Linear of both towers' layers quantized
    assert left == {TINY: {"model.audio_tower.conv_out", "model.multi_modal_projector.linear_1",
                           "model.multi_modal_projector.linear_2", "lm_head"},
                    "tiny-random": {"proj_out"}}  # Whisper: transformers' default, the output layer
