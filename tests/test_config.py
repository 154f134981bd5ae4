"""The run config: choices, validation, what a resume may change, automatic choices."""

from arabicpeft.config import ExperimentConfig


def test_the_sample_set_gets_the_short_encoder_window_automatically():
    from arabicpeft.config import SAMPLE_ENCODER_SECONDS, automatic_choices

    cfg, notes = automatic_choices(ExperimentConfig(model="whisper-base", source="sample"))
    assert cfg.encoder_seconds == SAMPLE_ENCODER_SECONDS == 8 and "chosen automatically" in notes[0]
    kept, none = automatic_choices(ExperimentConfig(source="sample", encoder_seconds=30))
    assert kept.encoder_seconds == 30 and not none
    hub, none = automatic_choices(ExperimentConfig(source="hub"))
    assert hub.encoder_seconds is None and not none
