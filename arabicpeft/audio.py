"""Audio decoding with soundfile/librosa (not torchcodec), to mono 16 kHz float32.

datasets >= 4 decodes audio through torchcodec, whose PyPI build needs CUDA libraries and fails on CPU
machines; so audio stays as paths or undecoded bytes in our datasets and is decoded here.
"""

from __future__ import annotations

import io
import os
from typing import Any, Optional

import librosa
import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000  # Whisper's input rate
MIN_SECONDS = 0.1
MAX_SECONDS = 30.0  # Whisper's encoder window


class AudioError(ValueError):
    """Audio that cannot be used: undecodable, missing, or of the wrong length or rate."""


def _decode(data: Any) -> tuple[np.ndarray, int]:
    if isinstance(data, (str, os.PathLike)):
        if not os.path.exists(data):
            raise FileNotFoundError(f"Audio file not found: {data}. Check the path (relative paths in a manifest "
                                    "are resolved against the manifest's directory).")
        try:
            return sf.read(data, dtype="float32", always_2d=True)
        except Exception as e:  # soundfile raises LibsndfileError/RuntimeError for corrupt files
            raise AudioError(f"Could not decode audio file {data}: {e}. Re-encode it as WAV, FLAC or OGG.") from e
    if isinstance(data, dict):
        if data.get("array") is not None:
            if not data.get("sampling_rate"):
                raise AudioError("An audio array needs its 'sampling_rate'.")
            return np.asarray(data["array"], dtype=np.float32), int(data["sampling_rate"])
        if data.get("bytes"):
            try:
                return sf.read(io.BytesIO(data["bytes"]), dtype="float32", always_2d=True)
            except Exception as e:
                raise AudioError(f"Could not decode audio bytes ({data.get('path') or 'no path'}): {e}.") from e
        if data.get("path"):
            return _decode(data["path"])
    if isinstance(data, (bytes, bytearray)):
        try:
            return sf.read(io.BytesIO(bytes(data)), dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(f"Could not decode audio bytes: {e}.") from e
    raise AudioError(f"Unsupported audio value of type {type(data).__name__}: give a path, bytes, or "
                     "{'array': ..., 'sampling_rate': ...}.")


def load_audio(data: Any, sampling_rate: Optional[int] = None) -> np.ndarray:
    """Decode ``data`` (a path, bytes, a datasets-style dict, or an array with ``sampling_rate``).

    Returns float32 mono audio at :data:`SAMPLE_RATE`, shape = (n_samples,).
    """
    if isinstance(data, np.ndarray):
        if sampling_rate is None:
            raise AudioError("A raw audio array needs its sampling_rate (e.g. load_audio(y, sampling_rate=16000)).")
        audio, rate = data.astype(np.float32), int(sampling_rate)
    else:
        audio, rate = _decode(data)
    if audio.ndim == 2:  # (frames, channels) -> mono
        audio = audio.mean(axis=1)
    if audio.size == 0:
        raise AudioError("The audio is empty (0 samples).")
    if not np.all(np.isfinite(audio)):
        raise AudioError("The audio contains NaN or infinite samples.")
    if rate != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
    return np.ascontiguousarray(audio, dtype=np.float32)


def check_duration(audio: np.ndarray, max_seconds: float = MAX_SECONDS, min_seconds: float = MIN_SECONDS) -> float:
    """The duration of 16 kHz ``audio`` in seconds; :class:`AudioError` outside [min_seconds, max_seconds]."""
    seconds = len(audio) / SAMPLE_RATE
    if seconds < min_seconds:
        raise AudioError(f"Audio is {seconds:.3f} s long, shorter than {min_seconds} s: too short to transcribe.")
    if seconds > max_seconds:
        raise AudioError(
            f"Audio is {seconds:.1f} s long, longer than the {max_seconds:g} s the Whisper encoder sees: it would "
            "be truncated and its transcript would not match. Split it into segments of at most "
            f"{max_seconds:g} s."
        )
    return seconds


def log_mel(audio: np.ndarray, feature_extractor, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Whisper log-mel features of one clip, padded to the extractor's window: shape = (n_mels, n_frames)."""
    if sampling_rate != SAMPLE_RATE:
        raise AudioError(
            f"Features need {SAMPLE_RATE} Hz audio, got {sampling_rate} Hz: decode it with "
            "arabicpeft.audio.load_audio, which resamples."
        )
    return feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
