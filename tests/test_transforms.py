"""The robustness transforms: exact SNR, determinism by seed, the telephone band, speed, the spec grammar."""

import numpy as np
import pytest

from arabicpeft import audio, transforms
from arabicpeft.errors import UserError
from arabicpeft.sources import SAMPLE_DIR

CLIP = SAMPLE_DIR / "audio" / "egyptian-te01-v1.ogg"


@pytest.fixture(scope="module")
def clip():
    return audio.load_audio(CLIP)


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("snr", [20.0, 10.0, 5.0, 0.0, -5.0])
def test_noise_is_mixed_at_the_exact_snr_over_active_speech(clip, kind, snr):
    mixed = transforms.apply(transforms.parse(f"noise-{kind}-{snr:g}dB"), clip, np.random.default_rng(3))
    noise = mixed.astype(np.float64) - clip
    active = transforms.active_mask(clip)
    measured = 10 * np.log10(np.mean(clip[active].astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert abs(measured - snr) < 0.1
    assert 0.5 < active.mean() < 1  # the clip's silences are not counted as signal


def test_babble_is_other_clips_summed_at_the_snr(clip):
    others = [audio.load_audio(SAMPLE_DIR / "audio" / f"gulf-te0{i}-v1.ogg") for i in (1, 2, 3, 4)]
    transform = transforms.parse("noise-babble-5dB")
    mixed = transforms.apply(transform, clip, np.random.default_rng(0), lambda k: others[:k])
    assert abs(transforms.snr_db(clip, mixed.astype(np.float64) - clip) - 5.0) < 0.1
    # the babble is speech: its envelope varies like speech, unlike white noise
    envelope = np.abs(mixed - clip).reshape(-1, 8)[:len(clip) // 3200 * 400].mean(axis=1)
    assert envelope.std() / envelope.mean() > 0.3


def test_pink_noise_falls_by_one_decade_of_power_per_decade_of_frequency():
    noise = transforms.pink(1 << 16, np.random.default_rng(0))
    power, f = np.abs(np.fft.rfft(noise)) ** 2, np.fft.rfftfreq(1 << 16)
    band = (f > 1e-3) & (f < 0.4)
    assert np.polyfit(np.log10(f[band]), np.log10(power[band]), 1)[0] == pytest.approx(-1.0, abs=0.05)


def test_a_transform_is_the_same_for_the_same_seed_and_differs_for_another(clip):
    transform = transforms.parse("noise-white-10dB")
    first, again, other = (transforms.apply(transform, clip, np.random.default_rng([s, 0])) for s in (1, 1, 2))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_the_telephone_band_removes_everything_above_4_khz_and_below_300_hz(clip):
    out = transforms.apply(transforms.parse("telephone"), clip, np.random.default_rng(0))
    assert out.shape == clip.shape and out.dtype == np.float32
    power = np.abs(np.fft.rfft(out)) ** 2
    f = np.fft.rfftfreq(len(out), 1 / audio.SAMPLE_RATE)
    before = np.abs(np.fft.rfft(clip)) ** 2
    assert 10 * np.log10(before[f > 4000].sum() / before.sum()) > -25  # the clip had energy up there
    assert 10 * np.log10(power[f > 4000].sum() / power.sum()) < -50
    assert 10 * np.log10(power[f < 150].sum() / power.sum()) < -30


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_divides_the_duration_by_its_factor(clip, factor):
    out = transforms.apply(transforms.parse(f"speed-{factor}"), clip, np.random.default_rng(0))
    assert abs(len(out) - len(clip) / factor) <= 1


def test_the_spec_grammar_and_the_test_set_label():
    assert transforms.parse("clean") is None
    white = transforms.parse("noise-white-7.5dB")
    assert (white.kind, white.snr_db, white.factor) == ("noise-white", 7.5, None)
    assert transforms.parse("speed-1.1").factor == 1.1
    assert transforms.split_name("egyptian+noise-babble-0dB") == ("egyptian", transforms.parse("noise-babble-0dB"))
    assert transforms.split_name("egyptian") == ("egyptian", None)
    assert transforms.split_name("a+b") == ("a+b", None)  # a '+' that names no transform is part of the name
    with pytest.raises(UserError, match="transform 'noise-white-loud' is not declared.*noise-white-10dB"):
        transforms.parse("noise-white-loud")
    with pytest.raises(UserError, match="speed factor 3 outside"):
        transforms.parse("speed-3")
