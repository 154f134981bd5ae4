"""Audio in: decoding, integer and multi-channel arrays, resampling, the log-mel and its frames."""

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, tone

from arabicpeft import audio
from arabicpeft import audio as audio_lib

# (kind, call(tmp_path, tokenizer), exception, message: what was wrong ... what to do)
ERRORS = [
    ("raw audio array without its rate", lambda t, k: audio.load_audio(tone(1.0)), audio.AudioError,
     r"needs its sampling_rate \(e.g. load_audio\(y, sampling_rate=16000\)\)"),
    ("audio array with no channel axis", lambda t, k: audio.load_audio({"array": np.zeros((100, 16000)), "sampling_rate": SR}),
     audio.AudioError, r"shape \(100, 16000\) has no channel axis .*give mono samples"),
    ("audio samples that are not numbers", lambda t, k: audio.load_audio({"array": np.array(["a", "b"]), "sampling_rate": SR}),
     audio.AudioError, r"are not numbers: give float or integer PCM"),
    ("features at the wrong sample rate", lambda t, k: audio.log_mel(tone(1.0), None, sampling_rate=8000),
     audio.AudioError, r"need 16000 Hz audio, got 8000 Hz: decode it with arabicpeft.audio.load_audio"),
    ("an empty audio file", lambda t, k: (sf.write(t / "empty.wav", np.zeros(0), SR), audio.load_audio(t / "empty.wav")),
     audio.AudioError, r"The audio .*empty\.wav is empty \(0 samples\): give a clip with sound, or leave it out"),
    ("an empty audio file's header", lambda t, k: (sf.write(t / "empty.wav", np.zeros(0), SR), audio.file_seconds(t / "empty.wav")),
     audio.AudioError, r"empty\.wav is 0\.000 s long \(0 samples\), shorter than 0\.1 s"),
]


@pytest.mark.parametrize("kind, call, error, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_a_clear_error(kind, call, error, message, tmp_path, tiny_processor):
    with pytest.raises(error, match=message):
        call(tmp_path, tiny_processor.tokenizer)


def test_integer_pcm_gives_the_features_of_the_float_clip(tmp_path, tiny_processor):
    """A 1 s 300 Hz tone as int16 and as float32 (the float32 soundfile reads from that int16 file)
    gives the same log-mel (max abs diff < 1e-4); every integer type is scaled as soundfile scales files."""
    y = tone(1.0, 300)
    pcm = np.round(y * 32767).astype(np.int16)
    extractor = tiny_processor.feature_extractor
    sf.write(tmp_path / "pcm16.wav", pcm, SR, subtype="PCM_16")
    as_float32, _ = sf.read(tmp_path / "pcm16.wav", dtype="float32")
    as_float = audio.log_mel(audio.load_audio({"array": as_float32, "sampling_rate": SR}), extractor)
    as_int = audio.log_mel(audio.load_audio({"array": pcm, "sampling_rate": SR}), extractor)
    assert np.abs(as_int - as_float).max() < 1e-4
    # and within int16 quantization of the original float tone (before: 32768 times too loud)
    original = audio.log_mel(audio.load_audio({"array": y, "sampling_rate": SR}), extractor)
    assert np.abs(as_int - original).max() < 0.01
    np.testing.assert_array_equal(audio.load_audio(pcm, sampling_rate=SR), audio.load_audio(str(tmp_path / "pcm16.wav")))
    for dtype, zero, scale in ((np.int32, 0, 2**31), (np.int8, 0, 128), (np.uint8, 128, 128), (np.uint16, 2**15, 2**15)):
        samples = np.array([np.iinfo(dtype).min, zero, np.iinfo(dtype).max], dtype=dtype)
        expected = (samples.astype(np.float64) - zero) / scale
        np.testing.assert_allclose(audio._to_float32(samples), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_multichannel_arrays_become_mono_of_the_right_length(layout):
    """A (2, 16000) array at 16 kHz is 16,000 mono samples (before: 2 samples, filtered as 0.000 s)."""
    left, right = tone(1.0, 300), tone(1.0, 500)
    stereo = np.stack([left, right]) if layout == "channels_first" else np.stack([left, right], axis=1)
    mono = audio.load_audio({"array": stereo, "sampling_rate": SR})
    assert mono.shape == (16_000,)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    assert audio.check_duration(mono) == 1.0


def test_a_wrong_sample_rate_is_resampled(tmp_path):
    sf.write(tmp_path / "8k.wav", tone(1.0, 300)[::2], 8_000)
    assert abs(len(audio.load_audio(str(tmp_path / "8k.wav"))) - 16_000) <= 2


def test_load_audio_resamples_and_downmixes(tmp_path):
    import soundfile as sf

    stereo = np.stack([tone(1.0, 300), tone(1.0, 300)], axis=1)
    sf.write(tmp_path / "s.wav", stereo[::2], 8_000)  # 8 kHz stereo
    y = audio.load_audio(str(tmp_path / "s.wav"))
    assert y.ndim == 1 and y.dtype == np.float32 and abs(len(y) - 16_000) <= 2


def test_audio_frames_are_the_frames_before_the_padding(tiny_processor):
    extractor = tiny_processor.feature_extractor
    for seconds in (0.5, 1.37, 2.0):
        samples = tone(seconds)
        frames = audio_lib.audio_frames(audio_lib.log_mel(samples, extractor))
        # frame t covers samples t*160 +- 200 (n_fft 400, centred): audio reaches frame ceil((n + 200) / 160) - 1
        assert int(frames) == int(np.ceil((len(samples) + 200) / 160)), seconds
    batch = np.stack([audio_lib.log_mel(tone(s), extractor) for s in (0.5, 2.0)])
    assert audio_lib.audio_frames(batch).tolist() == [int(np.ceil((0.5 * SR + 200) / 160)), int(np.ceil((2 * SR + 200) / 160))]
    assert audio_lib.audio_frames(np.zeros((80, 30), np.float32)) == 0
