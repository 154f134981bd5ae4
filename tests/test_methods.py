"""The methods registry: what each method declares, and that one declaration is all a new method needs (the config,
the command line, the widgets, training, saving, loading, scoring and the results reader take it)."""

import contextlib
import io
import json

import pytest

from arabicpeft import methods
from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import ConfigError

# A LoRA adapter of rank 4 whatever lora_r says: a method of its own, declared here alone.
LORA_R4 = methods.Method(
    name="lora-r4", title="LoRA of rank 4", help="a LoRA adapter of rank 4", peft_config="LoraConfig",
    fields=("lora_alpha", "lora_dropout", "lora_targets"),
    options=lambda cfg: dict(r=4, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout),
    learning_rate=1e-3, learning_rate_source="the lora entry's")


@pytest.fixture
def lora_r4(monkeypatch):
    monkeypatch.setitem(methods.METHODS, LORA_R4.name, LORA_R4)
    return LORA_R4


def test_get_names_the_valid_methods_in_one_line():
    assert methods.get("lora").peft_config == "LoraConfig" and methods.get("full").peft_config is None
    with pytest.raises(ConfigError, match=r"^Unknown method 'vera' — choose one of lora, full\.$"):
        methods.get("vera")


def test_the_declarations_hold_what_the_modules_used_to_test_by_name():
    lora, full = methods.get("lora"), methods.get("full")
    assert (lora.merges, lora.bank, lora.quantized) == (True, True, True)
    assert (full.merges, full.bank, full.quantized) == (False, False, False)
    assert methods.all_fields() == ("lora_r", "lora_alpha", "lora_dropout", "lora_targets", "use_dora")
    # the default learning rate is the method's: the paper's for full fine-tuning, the replaced project's for LoRA
    assert (ExperimentConfig(method="full").lr, ExperimentConfig(method="lora").lr) == (1e-5, 1e-3)
    assert "2506.02627" in full.learning_rate_source and "finetune-ar-dialects" in lora.learning_rate_source
    with pytest.raises(ConfigError, match="init_adapter continues a saved adapter, and method full trains no "
                                          "adapter — choose an adapter method \\(lora\\)"):
        ExperimentConfig(method="full", init_adapter="runs/msa/model")
    assert ExperimentConfig(method="full").describe().startswith("full fine-tuning of openai/whisper-small, fp32")
    assert ExperimentConfig(lora_r=8, use_dora=True).describe().startswith(
        "LoRA (lora_r=8, lora_alpha=64, lora_dropout=0.05, lora_targets=qv, use_dora=True) of ")


def test_adding_a_method_to_the_table_is_all_the_config_needs(lora_r4):
    cfg = ExperimentConfig(method="lora-r4")
    assert ExperimentConfig.choices("method") == ("lora", "full", "lora-r4") and cfg.lr == 1e-3
    # the LoRA settings this method does not read are unused (the command line refuses them), its own are not
    assert set(cfg.unused_fields()) & {"lora_r", "use_dora", "lora_alpha", "lora_targets"} == {"lora_r", "use_dora"}
    assert cfg.unused_fields()["lora_r"] == "it is a LoRA setting and --method is lora-r4"
    assert ExperimentConfig(method="full").unused_fields()["lora_alpha"] == (
        "it is a LoRA / LoRA of rank 4 setting and --method is full")
    assert cfg.describe().startswith("LoRA of rank 4 (lora_alpha=64, lora_dropout=0.05, lora_targets=qv) of ")
    with pytest.raises(ConfigError, match="LoRA of rank 4 of a nf4-quantized model is not possible"):
        ExperimentConfig(method="lora-r4", precision="nf4")


def test_the_widget_picker_lists_a_new_method(lora_r4):
    from arabicpeft.widgets import config_picker

    picker = config_picker(ExperimentConfig(model="tiny-random"))
    assert "lora-r4" in picker.controls["method"].options
    picker.controls["method"].value = "lora-r4"
    assert picker.config.method == "lora-r4"


def test_a_method_declared_in_one_place_trains_saves_reloads_scores_and_is_its_own_variant(lora_r4, tmp_path):
    """the lora-r4 entry is trained 2 steps through the command line (train.run), saved, loaded back with
    load_model, scored again by evaluate with the same result, and read by load_runs as its own variant."""
    from arabicpeft.cli import main
    from arabicpeft.model import load_model
    from arabicpeft.results import load_runs, read_results

    out = tmp_path / "runs" / "r4"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(["train", "--method", "lora-r4", "--model", "tiny-random", "--source", "sample", "--dialect", "egyptian",
              "--max-steps", "2", "--warmup-steps", "0", "--batch-size", "4", "--eval-steps", "2",
              "--max-train-samples", "8", "--max-eval-samples", "4", "--max-test-samples", "4",
              "--generation-max-length", "20", "--early-stopping-patience", "0", "--no-evaluate-before",
              "--output-dir", str(out)])
    assert "and adding LoRA of rank 4" in buffer.getvalue()
    result = read_results(out)
    assert result["config"]["method"] == "lora-r4" and result["training"]["global_step"] == 2
    # rank 4 (the declaration's options), not lora_r's 32: q and v of 2 encoder self-attention, 2 decoder
    # self-attention and 2 cross-attention layers, each A (4 x 64) + B (64 x 4)
    assert result["efficiency"]["trainable_parameters"] == 6 * 2 * (4 * 64 + 64 * 4)
    assert json.loads((out / "model" / "adapter_config.json").read_text())["r"] == 4

    loaded = load_model(out / "model")
    assert loaded.kind == "adapter" and loaded.config.method == "lora-r4"
    assert loaded.model.peft_config["default"].r == 4

    with contextlib.redirect_stdout(io.StringIO()):
        main(["evaluate", "--model-path", str(out / "model"), "--max-test-samples", "4", "--output-dir",
              str(tmp_path / "eval")])
    assert read_results(tmp_path / "eval")["metrics"] == result["metrics"]  # greedy decoding: the same scores

    runs = load_runs(tmp_path / "runs").runs
    assert list(runs["variant"]) == ["lora-r4 fp32 lora_alpha=64 lora_dropout=0.05 lora_targets=qv lr0.001"]


def test_an_adapter_of_a_method_that_does_not_merge_is_refused_by_merge(monkeypatch, tmp_path):
    import dataclasses

    from conftest import _adapter

    from arabicpeft.export import merge

    monkeypatch.setitem(methods.METHODS, "lora-kept", dataclasses.replace(LORA_R4, name="lora-kept", merges=False))
    adapter = _adapter(tmp_path / "model", "egyptian", 0, method="lora-kept")
    with pytest.raises(ValueError, match="is a LoRA of rank 4 adapter, which does not merge into its base"):
        merge(adapter, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


# --- every method of the table end to end on tiny-random ----------------------------------------------------------
# Each declared method, and the LoRA options that change how it initialises, trains or saves (DoRA + rsLoRA, PiSSA,
# OLoRA, EVA), trained 2 steps through train.run (no scoring before) on all-linear targets (IA3 gets feed-forward layers), saved,
# loaded back, scored again by evaluate with the same scores, and merged where it merges: the merged model's
# transcripts equal the adapter's at fp32, and its weights differ from the base's (the adapter changed something).
_SMALL = dict(lora_r=4, lora_alpha=8, vera_r=8, adalora_target_r=2, lora_targets="all-linear", test_sets=["egyptian"],
              evaluate_before=False)
_CASES = {**{name: (name, {}) for name in methods.METHODS},
          "dora+rslora": ("lora", {"use_dora": True, "use_rslora": True}),
          **{f"init={init}": ("lora", {"lora_init": init}) for init in ("pissa", "olora", "eva")}}


@pytest.mark.parametrize("case", list(_CASES))
def test_every_method_trains_saves_reloads_scores_and_merges(case, tmp_path):
    import torch
    from conftest import _tiny_base, dataclasses_replace
    from transformers import WhisperForConditionalGeneration

    from arabicpeft import export
    from arabicpeft.cli import main
    from arabicpeft.model import load_model
    from arabicpeft.offline_model import resolve_model
    from arabicpeft.results import read_results
    from arabicpeft.train import run
    from test_export import _hypotheses, _sample_tests

    name, options = _CASES[case]
    method, out = methods.get(name), tmp_path / "run"
    cfg = dataclasses_replace(_tiny_base(), method=name, output_dir=str(out), **_SMALL, **options)
    run(cfg, log=lambda m: None)
    result = read_results(out)
    assert result["config"]["method"] == name and result["training"]["global_step"] == 2
    efficiency = result["efficiency"]
    assert 0 < efficiency["trainable_parameters"] <= efficiency["total_parameters"]
    assert (efficiency["trainable_parameters"] < efficiency["total_parameters"]) == bool(method.peft_config)

    loaded = load_model(out / "model")
    assert loaded.kind == ("adapter" if method.peft_config else "model") and loaded.config.method == name
    if method.peft_config:
        saved = loaded.model.peft_config["default"]
        assert type(saved).__name__ == method.peft_config
        if options.get("lora_init") in ("pissa", "olora"):  # converted to a plain LoRA of rank 2r on the base
            assert saved.r == 2 * cfg.lora_r and saved.init_lora_weights is True
    with contextlib.redirect_stdout(io.StringIO()):
        main(["evaluate", "--model-path", str(out / "model"), "--max-test-samples", "4", "--output-dir",
              str(tmp_path / "eval")])
    assert read_results(tmp_path / "eval")["metrics"] == result["metrics"]  # greedy decoding: the same scores

    if not method.merges:
        with pytest.raises(ValueError, match="nothing to merge|does not merge"):
            export.merge(out / "model", tmp_path / "merged")
        return
    merged = export.merge(out / "model", tmp_path / "merged")
    unmerged = load_model(out / "model", full_window=True)
    tests = _sample_tests(unmerged.processor, n=4)
    assert _hypotheses(load_model(merged).model, unmerged.processor, tests) == _hypotheses(
        unmerged.model, unmerged.processor, tests)
    base = WhisperForConditionalGeneration.from_pretrained(resolve_model("tiny-random")).state_dict()
    changed = WhisperForConditionalGeneration.from_pretrained(merged).state_dict()
    assert any(not torch.equal(base[k], changed[k]) for k in base if k in changed)
