"""The picker starts at the parameters' values; every valid change gives a new picked config, the given one
is never changed."""

from arabicpeft.config import ExperimentConfig
from arabicpeft.widgets import _PICKER_FIELDS, config_picker


def parameters_config():
    return ExperimentConfig(dialect="levantine", method="lora", precision="fp32", seed=84, max_steps=123)


def test_defaults_equal_the_parameters():
    cfg = parameters_config()
    picker = config_picker(cfg)
    assert set(picker.controls) == set(_PICKER_FIELDS)
    assert picker.values() == {f: getattr(cfg, f) for f in _PICKER_FIELDS}


def test_a_widget_change_gives_a_new_config():
    cfg = parameters_config()
    picker = config_picker(cfg)
    assert picker.config is cfg  # nothing picked yet
    picker.controls["dialect"].value = "gulf"
    picker.controls["method"].value = "full"
    picker.controls["precision"].value = "bf16"
    picker.controls["seed"].value = 168
    picker.controls["max_steps"].value = 7
    picker.controls["source"].value = "sample"
    picker.controls["model"].value = "whisper-base"
    picked = picker.config
    assert (picked.dialect, picked.method, picked.precision, picked.seed, picked.max_steps) == (
        "gulf", "full", "bf16", 168, 7)
    assert (picked.source, picked.model) == ("sample", "whisper-base")
    assert picked.lr == 1e-5  # the method's default learning rate follows
    assert cfg == parameters_config()  # the parameters' config is unchanged
    assert "picker.config has it" in picker.message.value


def test_an_invalid_change_is_undone_and_explained():
    cfg = parameters_config()
    picker = config_picker(cfg)
    picker.controls["precision"].value = "int8"  # LoRA on an 8-bit model: valid
    picker.controls["method"].value = "full"  # full fine-tuning of int8 weights: impossible
    assert picker.config.method == "lora" and picker.controls["method"].value == "lora"
    assert "Not applied" in picker.message.value and "int8" in picker.message.value
    picker.controls["source"].value = "local"  # a local source without a data path
    assert picker.config.source == "hub" and "data_path" in picker.message.value


def test_the_picker_says_run_all_uses_the_parameters_cell():
    picker = config_picker(parameters_config())
    assert "Run All uses the parameters cell" in picker.box.children[0].value
    assert {"whisper-base", "openai/whisper-small"} <= set(picker.controls["model"].options)


def test_other_fields_and_display():
    cfg = parameters_config()
    picker = config_picker(cfg, fields=("lora_r", "use_dora", "lora_targets", "warmup_steps"))
    picker.controls["lora_r"].value = 8
    picker.controls["use_dora"].value = True
    picker.controls["lora_targets"].value = "qkvo"
    assert (picker.config.lora_r, picker.config.use_dora, picker.config.lora_targets) == (8, True, "qkvo")
    bundle = picker._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_study_picker_picks_design_axes_and_lora_fields():
    from arabicpeft.widgets import _STUDY_FIELDS, study_picker

    cfg = parameters_config()
    axes = {"variants": ["lora", "full"], "dialects": ["egyptian"], "seeds": [42, 84]}
    picker = study_picker("peft_vs_full", axes, cfg)
    assert picker.design == "peft_vs_full" and set(picker._base.controls) == set(_STUDY_FIELDS)
    picker.design_control.value = "mixing"
    picker.axis_controls["dialects"].value = ("gulf", "iraqi")
    picker.axis_controls["seeds"].value = "42, 168"
    picker._base.controls["lora_r"].value = 16
    picker._base.controls["use_dora"].value = True
    assert picker.design == "mixing"
    assert picker.axes == {"variants": ["lora", "full"], "dialects": ["gulf", "iraqi"], "seeds": [42, 168]}
    assert axes == {"variants": ["lora", "full"], "dialects": ["egyptian"], "seeds": [42, 84]}  # not changed
    assert (picker.base.lora_r, picker.base.use_dora) == (16, True) and cfg == parameters_config()
    picker.axis_controls["seeds"].value = "42, x"  # not an int: kept as it was, and said so
    assert picker.axes["seeds"] == [42, 168] and "Not applied" in picker._base.message.value


def test_a_number_outside_its_declared_range_is_refused_in_one_line_not_clamped():
    """the widgets refuse what the config refuses (the field's declared range), and say why; a bounded
    box would have clamped 0 to 1 silently."""
    picker = config_picker(parameters_config())
    picker.controls["max_steps"].value = 0
    assert picker.config.max_steps == 123 and picker.controls["max_steps"].value == 123
    assert "Not applied" in picker.message.value and "max_steps must be at least 1" in picker.message.value
    picker.controls["seed"].value = -1
    assert picker.config.seed == 84 and "seed must be at least 0" in picker.message.value
    lr = config_picker(ExperimentConfig(learning_rate=1e-3), fields=("learning_rate",))
    lr.controls["learning_rate"].value = -1.0
    assert lr.config.learning_rate == 1e-3 and "learning_rate must be greater than 0" in lr.message.value
