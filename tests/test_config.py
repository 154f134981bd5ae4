"""The run config: choices, validation, what a resume may change, automatic choices."""

import pytest

from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import ConfigError


def test_the_sample_set_gets_the_short_encoder_window_automatically():
    from arabicpeft.sources import SAMPLE_ENCODER_SECONDS

    cfg, notes = ExperimentConfig(model="whisper-base", source="sample").automatic_choices()
    assert cfg.encoder_seconds == SAMPLE_ENCODER_SECONDS == 8 and "chosen automatically" in notes[0]
    kept, none = ExperimentConfig(source="sample", encoder_seconds=30).automatic_choices()
    assert kept.encoder_seconds == 30 and not none
    hub, none = ExperimentConfig(source="hub").automatic_choices()
    assert hub.encoder_seconds is None and not none


def test_bad_config_values_fail_clearly():
    with pytest.raises(ValueError, match="Unknown method 'prefix' — choose one of lora, full"):
        ExperimentConfig(method="prefix")
    with pytest.raises(ValueError, match="Full fine-tuning of a int8-quantized model is not possible"):
        ExperimentConfig(method="full", precision="int8")
    with pytest.raises(ValueError, match="source='local' needs data_path"):
        ExperimentConfig(source="local")


def test_every_numeric_field_declares_its_range_once_and_the_config_holds_it():
    """each int/float field has bounds in its metadata; a value just outside is refused, the bound itself
    (when it is included) and the default are accepted, and NaN is refused."""
    from dataclasses import fields, replace

    from arabicpeft.config import _numeric_type

    numeric = [f for f in fields(ExperimentConfig) if _numeric_type(f.name)]
    assert len(numeric) == 28 and all(f.metadata["bounds"] for f in numeric)
    assert [f.name for f in fields(ExperimentConfig) if f.metadata["bounds"]] == [f.name for f in numeric]
    base = ExperimentConfig()
    for f in numeric:
        integer = _numeric_type(f.name) is int
        for kind, limit in f.metadata["bounds"].items():
            outside = {"min": limit - 1 if integer else limit - 1e-9, "gt": limit, "max": limit + 1 if integer
                       else limit + 1e-9, "lt": limit}[kind]
            with pytest.raises(ConfigError, match=f"^{f.name} = .* is out of its range — {f.name} must be "):
                replace(base, **{f.name: outside})
            if kind in ("min", "max"):
                assert getattr(replace(base, **{f.name: limit}), f.name) == limit
        if not integer:
            with pytest.raises(ConfigError, match="out of its range"):
                replace(base, **{f.name: float("nan")})
    assert ExperimentConfig.valid_range("val_fraction") == "greater than 0 and less than 1"
    assert ExperimentConfig.valid_range("seed") == "at least 0 and at most 4294967295"
    assert ExperimentConfig.valid_range("model") is None


def test_unused_fields_name_what_a_config_leaves_unused():
    # a LoRA run leaves the settings only other methods read (VeRA's, AdaLoRA's) unused
    assert set(ExperimentConfig().unused_fields()) == {"data_path", "mixture", "max_train_per_dialect",
                                                       "feature_cache_dtype", "pool", "vera_r", "vera_d_initial",
                                                       "adalora_target_r"}
    full = ExperimentConfig(method="full", dialect="all", source="local", data_path="d", feature_cache="c")
    assert set(full.unused_fields()) == {"lora_r", "lora_alpha", "lora_dropout", "lora_targets", "use_dora",
                                         "adapter_placement", "dataset", "split_train", "split_test",
                                         "audio_column", "text_column", "dialect_column", "use_rslora", "lora_init",
                                         "vera_r", "vera_d_initial", "adalora_target_r"}


# --- bad input: a clear error that says what was wrong and what to do ------------------------------------

# (kind, call(tmp_path, tokenizer), exception, message: what was wrong ... what to do)
ERRORS = [
    ("unknown dialect", lambda t, k: ExperimentConfig(dialect="sudanese"), ValueError,
     r"Unknown dialect 'sudanese' for source hub — choose one of egyptian, gulf"),
    ("unknown method", lambda t, k: ExperimentConfig(method="prefix"), ValueError,
     r"Unknown method 'prefix' — choose one of lora, full"),
    ("unknown precision", lambda t, k: ExperimentConfig(precision="int3"), ValueError,
     r"Unknown precision 'int3' — choose one of fp32"),
    ("full fine-tuning of a quantized model", lambda t, k: ExperimentConfig(method="full", precision="nf4"),
     ValueError, r"not possible .*use method='lora'"),
    ("local source without a path", lambda t, k: ExperimentConfig(source="local"), ValueError,
     r"source='local' needs data_path"),
    ("validation fraction out of range", lambda t, k: ExperimentConfig(val_fraction=1.5), ValueError,
     r"val_fraction = 1.5 is out of its range — val_fraction must be greater than 0 and less than 1"),
    ("zero training steps", lambda t, k: ExperimentConfig(max_steps=0), ConfigError,
     r"^max_steps = 0 is out of its range — max_steps must be at least 1\.$"),
    ("a negative learning rate", lambda t, k: ExperimentConfig(learning_rate=-1), ConfigError,
     r"learning_rate = -1 is out of its range — learning_rate must be greater than 0"),
    ("a zero generation budget", lambda t, k: ExperimentConfig(generation_max_length=0), ConfigError,
     r"generation_max_length = 0 is out of its range — generation_max_length must be at least 1"),
    ("a count given as text", lambda t, k: ExperimentConfig(max_steps="60"), ConfigError,
     r"max_steps = '60' is not an integer — max_steps must be an integer at least 1"),
    ("unknown config field", lambda t, k: ExperimentConfig.from_dict({"lr": 1}), ValueError,
     r"Unknown config fields: lr — remove them"),
    ("no LoRA targets", lambda t, k: ExperimentConfig(lora_targets=" , "), ConfigError,
     r"^lora_targets is empty — give a preset of the model's family \(e.g. qv\) or module names\.$"),
    ("choices of an unknown field", lambda t, k: ExperimentConfig.choices("bogus"), ConfigError,
     r"^ExperimentConfig has no field 'bogus' — ask for a field; these have choices: method, precision, source, "),
]


@pytest.mark.parametrize("kind, call, error, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_a_clear_error(kind, call, error, message, tmp_path, tiny_processor):
    with pytest.raises(error, match=message):
        call(tmp_path, tiny_processor.tokenizer)
