"""Robustness transforms of a test set's waveforms: additive noise at a given SNR, the telephone band, speed.

A transform is named by a short spec (the grammar below) and applied to each 16 kHz clip before its log-mel, seeded
per clip (``numpy.random.default_rng([seed, clip index])``), so a transformed test set is the same on every run.
A transformed test set is scored under the name ``"{test set}+{spec}"`` (e.g. ``"egyptian+noise-white-10dB"``);
``"clean"`` names the untransformed set. Features-only sources (log-mel without audio) cannot be transformed.

=================== ============================ ==================================================================
spec                parameters                   what it does (source)
=================== ============================ ==================================================================
``noise-white-SdB`` SNR ``S`` dB (any number)    adds Gaussian white noise scaled so that 10·log10(P_signal /
                                                 P_noise) = S, P_signal the mean square over the clip's active
                                                 samples (:func:`active_mask`), P_noise over the whole clip, as
                                                 the SNR of MUSAN/CHiME-style mixing (Snyder et al. 2015,
                                                 arXiv:1510.08484; Barker et al. 2015)
``noise-pink-SdB``  SNR ``S`` dB                 the same with pink (1/f power) noise: white noise shaped by
                                                 1/sqrt(f) in the frequency domain (Timmer & König 1995)
``noise-babble-SdB`` SNR ``S`` dB                the same with babble: the sum of :data:`BABBLE_TALKERS` other
                                                 clips of the same test set (each at equal RMS, looped to the
                                                 clip's length from a random offset), as babble noise is made of
                                                 summed speech (Krishnamurthy & Hansen 2009)
``telephone``       --                           resampled to 8 kHz and back, with a 300-3400 Hz band-pass
                                                 (4th-order Butterworth, zero-phase) at 8 kHz: the telephone
                                                 channel's passband (ITU-T G.712); nothing is left above 4 kHz
``speed-F``         factor ``F`` in [0.5, 2]     speed perturbation: the clip resampled as if recorded at F x
                                                 16 kHz, so its duration is divided by F and its pitch scaled
                                                 by F (Ko et al. 2015, Interspeech, as Kaldi's 0.9/1.1)
=================== ============================ ==================================================================

Mixed clips are not clipped to [-1, 1] (that would change the SNR): the log-mel takes any float samples.

Public: :data:`CLEAN`, :data:`BABBLE_TALKERS`, :data:`ACTIVE_DB`, :class:`Transform`, :data:`TRANSFORMS`,
:func:`parse`, :func:`split_name`, :func:`active_mask`, :func:`snr_db`, :func:`mix_at_snr`, :func:`white`,
:func:`pink`, :func:`babble`, :func:`telephone`, :func:`speed`, :func:`apply`, :func:`transform_set`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Callable, Optional

import numpy as np

from . import audio as audio_lib
from .errors import UserError

CLEAN = "clean"  # the untransformed test set
BABBLE_TALKERS = 4  # clips summed into babble noise (a few voices: babble stays speech-like and hard to ignore)
ACTIVE_DB = 40.0  # a 20 ms frame is active when its energy is within this of the clip's loudest frame
_FRAME = 320  # 20 ms at 16 kHz
_SPEED_RANGE = (0.5, 2.0)


@dataclass(frozen=True)
class Transform:
    """One declared transform: its ``spec`` (the test set's label), ``kind`` (a :data:`TRANSFORMS` key), its
    parameters (``snr_db`` for noise, ``factor`` for speed) and what it does in words."""

    spec: str
    kind: str
    snr_db: Optional[float] = None
    factor: Optional[float] = None
    description: str = ""

    def record(self) -> dict:
        """What a results file keeps of it."""
        return asdict(self)


# kind -> (pattern of the spec, what it does). The one table of transforms: the module docstring gives the sources.
TRANSFORMS: dict[str, tuple[str, str]] = {
    "noise-white": (r"noise-white-(?P<snr>-?\d+(\.\d+)?)dB", "Gaussian white noise at the SNR (active speech)"),
    "noise-pink": (r"noise-pink-(?P<snr>-?\d+(\.\d+)?)dB", "pink (1/f) noise at the SNR (active speech)"),
    "noise-babble": (r"noise-babble-(?P<snr>-?\d+(\.\d+)?)dB",
                     f"babble of {BABBLE_TALKERS} other clips of the set at the SNR (active speech)"),
    "telephone": (r"telephone", "8 kHz telephone band: 300-3400 Hz band-pass, resampled to 8 kHz and back"),
    "speed": (r"speed-(?P<factor>\d+(\.\d+)?)", "speed perturbation: duration / factor, pitch x factor"),
}


def parse(spec: str) -> Optional[Transform]:
    """The :class:`Transform` a spec names (None for :data:`CLEAN`); :class:`UserError` naming the grammar for
    any other string."""
    spec = spec.strip()
    if spec == CLEAN:
        return None
    for kind, (pattern, what) in TRANSFORMS.items():
        match = re.fullmatch(pattern, spec)
        if not match:
            continue
        found = match.groupdict()
        factor = float(found["factor"]) if "factor" in found else None
        if factor is not None and not _SPEED_RANGE[0] <= factor <= _SPEED_RANGE[1]:
            raise UserError(f"transform {spec}: speed factor {factor:g} outside {_SPEED_RANGE}",
                            "give e.g. speed-0.9 or speed-1.1")
        return Transform(spec, kind, float(found["snr"]) if "snr" in found else None, factor, what)
    raise UserError(f"transform {spec!r} is not declared", "give clean, noise-{white,pink,babble}-SNRdB (e.g. "
                    "noise-white-10dB), telephone or speed-FACTOR (e.g. speed-0.9)")


def split_name(test_set: str) -> tuple[str, Optional[Transform]]:
    """(the clean test set's name, its transform or None) of a scored test set's name, e.g.
    "egyptian+noise-white-10dB" -> ("egyptian", Transform(...)). A name whose suffix is no transform is clean."""
    base, _, spec = test_set.rpartition("+")
    if not base:
        return test_set, None
    try:
        return base, parse(spec)
    except UserError:
        return test_set, None


# --- waveforms (16 kHz float32 mono, shape (n,)) --------------------------------------------------------------


def active_mask(clip: np.ndarray, active_db: float = ACTIVE_DB) -> np.ndarray:
    """Which samples are active speech, shape (n,), bool: those of the 20 ms frames whose mean square is within
    ``active_db`` dB of the loudest frame's (a simple energy detector; a clip too quiet to tell: all of it)."""
    n = len(clip)
    frames = np.pad(clip.astype(np.float64), (0, -n % _FRAME)).reshape(-1, _FRAME)
    energy = (frames ** 2).mean(axis=1)
    if energy.max() <= 0:
        return np.ones(n, dtype=bool)
    active = energy >= energy.max() * 10 ** (-active_db / 10)
    return np.repeat(active, _FRAME)[:n]


def snr_db(clip: np.ndarray, noise: np.ndarray) -> float:
    """10·log10(P_signal / P_noise) in dB: P_signal the mean square of ``clip`` over its active samples
    (:func:`active_mask`), P_noise the mean square of ``noise`` over the whole clip."""
    signal = clip.astype(np.float64)[active_mask(clip)]
    return float(10 * np.log10(np.mean(signal ** 2) / np.mean(noise.astype(np.float64) ** 2)))


def mix_at_snr(clip: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``clip + g·noise`` with ``g`` such that :func:`snr_db` (clip, g·noise) = ``snr``; shapes (n,), float32.
    Raises ValueError for silent noise."""
    power = np.mean(noise.astype(np.float64) ** 2)
    if power <= 0:
        raise ValueError("the noise is silent: it cannot be scaled to an SNR")
    signal = np.mean(clip.astype(np.float64)[active_mask(clip)] ** 2)
    gain = np.sqrt(signal / (power * 10 ** (snr / 10)))
    return (clip.astype(np.float64) + gain * noise).astype(np.float32)


def white(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, shape (n,), unit variance."""
    return rng.standard_normal(n)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise (power spectral density ∝ 1/f), shape (n,): white noise's spectrum scaled by 1/sqrt(f), no DC."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    scale = np.zeros_like(f)
    scale[1:] = 1 / np.sqrt(f[1:])
    return np.fft.irfft(spectrum * scale, n)


def babble(n: int, others: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The sum of ``others`` (clips of other talkers), each scaled to unit RMS and looped to ``n`` samples from a
    random offset, shape (n,)."""
    total = np.zeros(n)
    for other in others:
        other = other.astype(np.float64) / max(np.sqrt(np.mean(other.astype(np.float64) ** 2)), 1e-12)
        start = int(rng.integers(len(other)))
        total += np.resize(np.roll(other, -start), n)  # np.resize repeats the clip to fill n samples
    return total


def telephone(clip: np.ndarray) -> np.ndarray:
    """The clip through the telephone band: resampled to 8 kHz (its anti-aliasing filter removes everything above
    4 kHz), band-passed 300-3400 Hz (4th-order Butterworth, forward and backward) and resampled to 16 kHz;
    shape (n,), float32."""
    from scipy import signal

    narrow = signal.resample_poly(clip.astype(np.float64), 1, 2)
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=audio_lib.SAMPLE_RATE // 2, output="sos")
    narrow = signal.sosfiltfilt(sos, narrow)
    return signal.resample_poly(narrow, 2, 1)[:len(clip)].astype(np.float32)


def speed(clip: np.ndarray, factor: float) -> np.ndarray:
    """The clip played ``factor`` times faster (tempo and pitch): resampled by 1/factor (polyphase, scipy), so
    its length is ``ceil(n / factor)``; float32."""
    from scipy import signal

    ratio = Fraction(factor).limit_denominator(1000)
    return signal.resample_poly(clip.astype(np.float64), ratio.denominator, ratio.numerator).astype(np.float32)


def apply(transform: Transform, clip: np.ndarray, rng: np.random.Generator,
          others: Callable[[int], list[np.ndarray]] = lambda k: []) -> np.ndarray:
    """``clip`` (16 kHz, shape (n,)) under ``transform``, drawing noise from ``rng``; ``others(k)``: k other clips
    of the same set (babble). float32."""
    if transform.kind == "telephone":
        return telephone(clip)
    if transform.kind == "speed":
        return speed(clip, transform.factor)
    noise = {"noise-white": lambda: white(len(clip), rng), "noise-pink": lambda: pink(len(clip), rng),
             "noise-babble": lambda: babble(len(clip), others(BABBLE_TALKERS), rng)}[transform.kind]()
    return mix_at_snr(clip, noise, transform.snr_db)


# --- a test set --------------------------------------------------------------------------------------------


def transform_set(ds, transform: Transform, seed: int, max_seconds: float, report: dict):
    """The audio records of ``ds`` (a datasets Dataset or stream with ``audio``) with their audio replaced by the
    transformed 16 kHz samples (``{"array", "sampling_rate"}``), as an in-memory Dataset. Clip ``i`` draws from
    ``default_rng([seed, i])``; babble takes :data:`BABBLE_TALKERS` other clips of ``ds`` drawn by the same rng.
    Clips that a speed below 1 makes longer than ``max_seconds`` are dropped and counted
    (``report["transform_too_long"]``; ``report["rows_used"]`` lowered). Raises :class:`UserError` for babble on a
    set of at most :data:`BABBLE_TALKERS` clips."""
    import datasets

    rows = list(ds)
    if transform.kind == "noise-babble" and len(rows) <= BABBLE_TALKERS:
        raise UserError(f"transform {transform.spec}: the test set has {len(rows)} clip(s), babble needs more than "
                        f"{BABBLE_TALKERS}", "score a larger test set (--max-test-samples) or another noise")
    clips: dict[int, np.ndarray] = {}

    def clip_at(i: int) -> np.ndarray:
        if i not in clips:
            clips[i] = audio_lib.load_audio(rows[i]["audio"])
        return clips[i]

    kept, too_long = [], 0
    for i, row in enumerate(rows):
        rng = np.random.default_rng([seed, i])
        others = [j for j in range(len(rows)) if j != i]

        def draw(k: int) -> list[np.ndarray]:
            return [clip_at(int(j)) for j in rng.choice(others, size=k, replace=False)]

        samples = apply(transform, clip_at(i), rng, draw)
        if len(samples) > max_seconds * audio_lib.SAMPLE_RATE:
            too_long += 1
            continue
        kept.append({**row, "audio": {"array": samples, "sampling_rate": audio_lib.SAMPLE_RATE}})
    report["transform"] = transform.record()
    report["transform_too_long"] = too_long
    if "rows_used" in report:
        report["rows_used"] -= too_long
    return datasets.Dataset.from_list(kept)
