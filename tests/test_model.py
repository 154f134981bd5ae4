"""Building the model: LoRA on the base, its trainable parameters, the precisions a CPU cannot run."""

import pytest
import torch

from arabicpeft.backbones import BACKBONES
from arabicpeft.config import ExperimentConfig
from arabicpeft.methods import add_adapter
from arabicpeft.model import build_model, count_parameters, _load_base


def test_lora_with_adapter_disabled_is_exactly_the_base_model():
    cfg = ExperimentConfig(model="tiny-random", method="lora", lora_targets="all-linear", seed=0)
    base, _ = _load_base(cfg)
    base.eval()
    torch.manual_seed(0)
    feats = torch.randn(2, 80, 800)
    dec = torch.tensor([[50258, 50272, 50359, 50363]] * 2)
    with torch.no_grad():
        reference = base(input_features=feats, decoder_input_ids=dec).logits.clone()
        model = add_adapter(base, cfg, BACKBONES["whisper"].target_modules(cfg))
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a trained-looking adapter that really changes the output
        model.eval()
        with model.disable_adapter():
            off = model(input_features=feats, decoder_input_ids=dec).logits
        on = model(input_features=feats, decoder_input_ids=dec).logits
    assert torch.equal(off, reference)
    assert not torch.allclose(on, reference)


def test_lora_trainable_parameters_are_what_the_config_says():
    cfg = ExperimentConfig(model="tiny-random", method="lora")  # r 32 on q_proj, v_proj
    model, _ = build_model(cfg)
    trainable, total = count_parameters(model)
    # 2 encoder self-attn + 2 decoder self-attn + 2 decoder cross-attn, q and v each: A (32x64) + B (64x32)
    assert trainable == 6 * 2 * (32 * 64 + 64 * 32)
    assert total == trainable + count_parameters(_load_base(cfg)[0])[1]
    dora, _ = build_model(ExperimentConfig(model="tiny-random", method="lora", use_dora=True))
    assert any("lora_magnitude_vector" in n for n, _ in dora.named_parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
@pytest.mark.parametrize("precision", ["int8", "nf4", "fp16"])
def test_gpu_precisions_fail_clearly_on_cpu(precision):
    with pytest.raises(RuntimeError, match=f"precision {precision} needs a CUDA GPU.*use precision fp32"):
        build_model(ExperimentConfig(model="tiny-random", precision=precision))


def test_a_bank_folder_with_members_that_are_not_adapters_is_refused_naming_each(adapters, tmp_path):
    import shutil

    from arabicpeft.model import load_model

    bank = tmp_path / "bank"
    shutil.copytree(adapters["egyptian"], bank / "egyptian")
    (bank / "full_gulf" / "model").mkdir(parents=True)
    (bank / "full_gulf" / "model" / "config.json").write_text("{}")  # a full fine-tune's run: not an adapter
    (bank / "levantin").mkdir()  # a typo'd, empty folder
    (bank / ".ipynb_checkpoints").mkdir()  # hidden: not a member, not an error
    with pytest.raises(ValueError) as caught:
        load_model(bank)
    message = str(caught.value)
    assert "full_gulf/ (a full or merged model, not an adapter)" in message
    assert "levantin/ (holds no adapter_config.json" in message
    assert "ipynb" not in message and "egyptian/" not in message
    assert "Move them out of the bank folder" in message


def test_a_bank_mapping_is_checked_and_takes_run_folders(adapters, tmp_path):
    from arabicpeft.model import load_model

    runs = {d: p.parent for d, p in adapters.items()}  # the run folders holding model/
    loaded = load_model(runs)
    assert loaded.kind == "bank" and loaded.adapters == {d: str(p) for d, p in adapters.items()}
    with pytest.raises(ValueError, match=r"needs at least one adapter: give a mapping \{dialect: adapter folder\}"):
        load_model({})
    with pytest.raises(ValueError, match="'klingon!' is not a variety name: use lower-case letters"):
        load_model({"klingon!": adapters["egyptian"]})  # any variety name (a bank of one's own varieties) is fine
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as caught:
        load_model({"egyptian": adapters["egyptian"], "gulf": tmp_path / "nope", "levantine": tmp_path / "empty"})
    assert str(caught.value) == (
        f"Adapter bank members that are not LoRA adapters: gulf: {tmp_path / 'nope'} (does not exist); "
        f"levantine: {tmp_path / 'empty'} (holds no adapter_config.json, nor a run's model/). Give each dialect an "
        "adapter folder (or the run folder holding it in model/).")
