"""Audio decoding with soundfile/librosa (not torchcodec), to mono 16 kHz float32.

datasets >= 4 decodes audio through torchcodec, whose PyPI build needs CUDA libraries and fails on CPU
machines; so audio stays as paths or undecoded bytes in our datasets and is decoded here.

Public: :data:`SAMPLE_RATE`, :data:`MIN_SECONDS`, :data:`MAX_SECONDS`, :data:`AUDIO_EXTENSIONS`,
:class:`AudioError`, :class:`NonFiniteAudio`, :func:`load_audio`, :func:`file_seconds`, :func:`check_duration`,
:func:`audio_frames`, :func:`log_mel`.
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
SEGMENT_SLACK_SECONDS = 0.05  # how far a segment may end after its recording (times rounded in the table)
# File name endings soundfile (libsndfile) decodes: what `arabicpeft transcribe` picks up from a folder.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64",
                    ".rf64")


class AudioError(ValueError):
    """Audio that cannot be used: undecodable, missing, or of the wrong length or rate."""


class NonFiniteAudio(AudioError):
    """Audio with NaN or infinite samples."""


def _read(source) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(source, dtype="float32", always_2d=True)  # (frames, channels), scaled to [-1, 1]
    return samples.mean(axis=1), rate


def _read_segment(path, start: float, end: float) -> tuple[np.ndarray, int]:
    """The samples of ``path`` from ``start`` to ``end`` seconds, read without decoding the rest of the file (a
    corpus of long recordings cut by a table of segment times, as SADA's)."""
    try:
        start, end = float(start), float(end)
    except (TypeError, ValueError):
        raise AudioError(f"The segment times of {path} are not numbers (start {start!r}, end {end!r}).") from None
    if not 0 <= start < end:
        raise AudioError(f"The segment of {path} from {start} s to {end} s is empty or negative: its end must come "
                         "after its start.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Audio file not found: {path}. Check the path (relative paths are resolved "
                                "against the dataset's folder).")
    try:
        with sf.SoundFile(os.fspath(path)) as f:
            first = int(round(start * f.samplerate))
            if first >= f.frames:
                raise AudioError(f"The segment of {path} starts at {start} s, after the recording's end "
                                 f"({f.frames / f.samplerate:.2f} s).")
            last = int(round(end * f.samplerate))
            if last > f.frames + SEGMENT_SLACK_SECONDS * f.samplerate:  # its transcript would not match the audio
                raise AudioError(f"The segment of {path} ends at {end} s, after the recording's end "
                                 f"({f.frames / f.samplerate:.2f} s).")
            f.seek(first)
            samples = f.read(min(last, f.frames) - first, dtype="float32", always_2d=True)
            return samples.mean(axis=1), f.samplerate
    except AudioError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError for corrupt files
        raise AudioError(f"Could not decode audio file {path}: {e}. Re-encode it as WAV, FLAC or OGG.") from e


def _decode(data: Any) -> tuple[np.ndarray, int]:
    if isinstance(data, (str, os.PathLike)):
        if not os.path.exists(data):
            raise FileNotFoundError(f"Audio file not found: {data}. Check the path (relative paths in a manifest "
                                    "are resolved against the manifest's directory).")
        try:
            return _read(data)
        except Exception as e:  # soundfile raises LibsndfileError/RuntimeError for corrupt files
            raise AudioError(f"Could not decode audio file {data}: {e}. Re-encode it as WAV, FLAC or OGG.") from e
    if isinstance(data, dict):
        if data.get("array") is not None:
            if not data.get("sampling_rate"):
                raise AudioError("An audio array needs its 'sampling_rate'.")
            return _to_float32(data["array"]), int(data["sampling_rate"])
        if data.get("bytes"):
            try:
                return _read(io.BytesIO(data["bytes"]))
            except Exception as e:
                raise AudioError(f"Could not decode audio bytes ({data.get('path') or 'no path'}): {e}.") from e
        if data.get("path") and "end" in data:  # a segment (its times checked there)
            return _read_segment(data["path"], data.get("start"), data["end"])
        if data.get("path"):
            return _decode(data["path"])
    if isinstance(data, (bytes, bytearray)):
        try:
            return _read(io.BytesIO(bytes(data)))
        except Exception as e:
            raise AudioError(f"Could not decode audio bytes: {e}.") from e
    raise AudioError(f"Unsupported audio value of type {type(data).__name__}: give a path, bytes, or "
                     "{'array': ..., 'sampling_rate': ...}.")


_MAX_CHANNELS = 8  # more than this along the short axis is not a channel count: the layout is refused


def _to_float32(array) -> np.ndarray:
    """Samples as float32 in [-1, 1], integer PCM scaled as soundfile scales files.

    Signed integers are divided by 2**(bits-1) (int16: 32768), unsigned ones centred first (uint8: (x-128)/128);
    float arrays are only cast. Raises :class:`AudioError` for other dtypes (strings, objects, booleans).
    """
    array = np.asarray(array)
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(np.float32)
    if kind == "i":
        return (array.astype(np.float64) / 2.0 ** (8 * array.dtype.itemsize - 1)).astype(np.float32)
    if kind == "u":
        half = 2.0 ** (8 * array.dtype.itemsize - 1)
        return ((array.astype(np.float64) - half) / half).astype(np.float32)
    raise AudioError(f"Audio samples of dtype {array.dtype} are not numbers: give float or integer PCM samples.")


def _to_mono(audio: np.ndarray) -> np.ndarray:
    """Mono samples, shape = (n_samples,): a multi-channel array, channels first ``(C, N)`` or last ``(N, C)``
    (the short axis is taken as the channels), becomes the mean of its channels.

    Raises :class:`AudioError` for more than two dimensions, or two dimensions neither of which is a plausible
    channel count (at most :data:`_MAX_CHANNELS`).
    """
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise AudioError(f"An audio array of shape {audio.shape}: give mono samples (N,) or channels (C, N) / (N, C).")
    channel_axis = int(np.argmin(audio.shape))
    if audio.shape[channel_axis] > _MAX_CHANNELS:
        raise AudioError(f"An audio array of shape {audio.shape} has no channel axis of at most {_MAX_CHANNELS}: "
                         "give mono samples (N,) or channels (C, N) / (N, C).")
    return audio.mean(axis=channel_axis)


def load_audio(data: Any, sampling_rate: Optional[int] = None) -> np.ndarray:
    """Decode ``data`` (a path, bytes, a datasets-style dict, or an array with ``sampling_rate``). A dict
    ``{"path": ..., "start": s, "end": e}`` is the segment of the file from ``s`` to ``e`` seconds.

    Integer PCM is scaled to [-1, 1] (:func:`_to_float32`), several channels averaged (:func:`_to_mono`).
    Returns float32 mono audio at :data:`SAMPLE_RATE`, shape = (n_samples,). Raises :class:`AudioError` for
    audio that is empty, non-finite, undecodable or of an unknown layout; :class:`FileNotFoundError` for a
    missing file.
    """
    if isinstance(data, np.ndarray):
        if sampling_rate is None:
            raise AudioError("A raw audio array needs its sampling_rate (e.g. load_audio(y, sampling_rate=16000)).")
        audio, rate = _to_float32(data), int(sampling_rate)
    else:
        audio, rate = _decode(data)
    audio = _to_mono(audio)
    if audio.size == 0:
        named = f" {os.fspath(data)}" if isinstance(data, (str, os.PathLike)) else ""
        raise AudioError(f"The audio{named} is empty (0 samples): give a clip with sound, or leave it out.")
    if not np.all(np.isfinite(audio)):
        raise NonFiniteAudio("The audio contains NaN or infinite samples: re-export the clip, or drop it.")
    if rate != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
    return np.ascontiguousarray(audio, dtype=np.float32)


def file_seconds(path) -> float:
    """The duration of the audio file ``path`` in seconds, from its header (nothing is decoded: cheap enough to
    check every input before a model loads). Raises :class:`AudioError` naming the file when libsndfile cannot
    read it or it is shorter than :data:`MIN_SECONDS` (e.g. empty)."""
    try:
        info = sf.info(os.fspath(path))
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError for corrupt or unknown formats
        raise AudioError(f"{path} cannot be read as audio ({e})") from e
    seconds = info.frames / info.samplerate
    if seconds < MIN_SECONDS:
        raise AudioError(f"{path} is {seconds:.3f} s long ({info.frames} samples), shorter than {MIN_SECONDS} s")
    return seconds


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


def audio_frames(features: np.ndarray) -> np.ndarray:
    """Frames of Whisper log-mel features that carry audio: shape (..., mel_bins, frames) -> (...), int.

    Whisper pads every clip with zeros to its window before the log-mel; after its normalisation
    (``log10(max(mel, 1e-10))`` clamped at ``max - 8``, then ``(x + 4) / 4``) every padding frame holds one value
    in all mel bins. A frame counts as padding when every mel bin is bitwise equal to the last frame's first bin
    (bitwise, so that the feature cache restores the padding exactly); the count is the frames before the trailing
    run of such frames (a clip's own digitally silent end is not counted either). Frames are
    ``hop_length / sampling_rate`` seconds apart (10 ms for Whisper)."""
    bits = np.ascontiguousarray(features, dtype=np.float32).view(np.uint32)
    padding = (bits == bits[..., :1, -1:]).all(axis=-2)  # (..., frames)
    trailing = np.cumprod(padding[..., ::-1], axis=-1).sum(axis=-1)
    return features.shape[-1] - trailing


def log_mel(audio: np.ndarray, feature_extractor, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Whisper log-mel features of one clip, padded to the extractor's window: shape = (n_mels, n_frames)."""
    if sampling_rate != SAMPLE_RATE:
        raise AudioError(
            f"Features need {SAMPLE_RATE} Hz audio, got {sampling_rate} Hz: decode it with "
            "arabicpeft.audio.load_audio, which resamples."
        )
    return feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
