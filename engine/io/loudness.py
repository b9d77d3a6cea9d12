"""Renders that sit in the mix: no DC, and the prime's loudness (ITU-R BS.1770 integrated, via pyloudnorm); and
sources that reach the model at the level it was trained at.

A small model's decoder can leave a DC offset and a level far from its prompt's; a producer should not have
to fix either by hand. The gains applied are returned, so the sidecar can say what was done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyloudnorm
from scipy import signal

HIGHPASS_HZ = 10.0  # below what any monitor reproduces; removes DC and sub-sonic drift
GENERATE_LUFS = -16.0  # target for generated takes, which have no prime to match
MAX_GAIN_DB = 24.0  # never lift near-silence into loud noise
PEAK_CEILING_DB = -1.0  # the sample peak of a take never passes this
# A prime mastered loud (-8 LUFS is common) needs more gain than the render's peaks allow: up to this much of it is
# taken by a peak limiter (its gain reduction at the loudest peak), beyond it the gain stops (the render would pump)
LIMITER_MAX_DB = 6.0
INPUT_PEAK_DBFS = 0.0  # a source's input gain never lifts its peak past full scale (the codec never heard more)
MIN_SECONDS = 0.4  # one BS.1770 gating block: shorter audio has no integrated loudness
# BS.1770 channel weights (L, R, C, Ls, Rs), as pyloudnorm applies them; channels past the fifth count as 1.0
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)


def copies_gain(channels: int) -> float:
    """The amplitude factor that makes one channel read, on the BS.1770 meter, what ``channels`` identical copies
    of it read: the meter sums the channels' weighted mean-square powers, block by block, so the gating and the
    result are exactly those of the copies (pyloudnorm itself stops at five channels)."""
    weights = sum(CHANNEL_WEIGHTS[:channels]) + max(0, channels - len(CHANNEL_WEIGHTS))
    return math.sqrt(weights)


@dataclass(frozen=True)
class LoudnessReport:
    target_lufs: float | None
    measured_lufs: float | None
    gain_db: float
    limiter_db: float = 0.0  # the limiter's largest gain reduction (0: not used)

    def to_json(self) -> dict:
        r = lambda v: None if v is None else round(v, 2)  # noqa: E731
        return {"target_lufs": r(self.target_lufs), "measured_lufs": r(self.measured_lufs), "gain_db": r(self.gain_db),
                "limiter_db": r(self.limiter_db)}


def remove_dc(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Zero-phase 2nd-order high-pass at ``HIGHPASS_HZ`` along axis 0 (T,) or (T, C).

    The mean goes first and the edges are mirrored over up to 0.2 s (ten of the filter's time constants): with
    scipy's default padding (odd, a few samples) a clip starting away from zero got a low thump of about its first
    sample's size over its first 30 ms, a step at a continuation's join with its source."""
    x = x - x.mean(axis=0)
    if len(x) < 64:
        return x
    sos = signal.butter(2, HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0, padtype="even", padlen=min(len(x) - 1, int(0.2 * sample_rate))
                              ).astype(np.float32)


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (floored at -200 dB for digital silence)."""
    return 20 * math.log10(max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-10))


def input_gain_db(x: np.ndarray, target_rms_dbfs: float | None) -> float:
    """The gain that brings a source region ``x`` to the RMS level its model was trained at (``target_rms_dbfs``,
    the model's ``input_rms_dbfs``; None: the model states none, as the official ones, and the gain is 0).

    A codec trained on peak-normalised music encodes a quiet stem badly: the default model's top level rebuilds
    held-out music at spectral convergence 0.43 at a 0 dBFS peak but 1.03 at -24 dBFS (another song's codes
    score about 1), so a region selected off a quiet track gave its priors noise to continue. The gain is undone
    after decoding, so the render keeps the region's level. Only ever a lift (a loud master is within what the model
    heard, and undoing a cut could clip the decoded audio), at most ``MAX_GAIN_DB`` (silence stays silence), with
    the peak at or under ``INPUT_PEAK_DBFS``."""
    if target_rms_dbfs is None or x.size == 0:
        return 0.0
    peak = float(np.max(np.abs(x)))
    if peak == 0.0:
        return 0.0
    return max(0.0, min(target_rms_dbfs - rms_dbfs(x), MAX_GAIN_DB, INPUT_PEAK_DBFS - 20 * math.log10(peak)))


def meter_lufs(x: np.ndarray, sample_rate: int) -> float:
    """BS.1770 integrated loudness in LUFS as the meter reads it: -inf for silence, nan under one gating block."""
    if len(x) < MIN_SECONDS * sample_rate:
        return float("nan")
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(x, dtype=np.float64)))


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float | None:
    """BS.1770 integrated loudness in LUFS; None for audio too short or too quiet to gate."""
    value = meter_lufs(x, sample_rate)
    return value if math.isfinite(value) else None


def match_loudness(x: np.ndarray, sample_rate: int, target_lufs: float | None,
                   channels: int = 1) -> tuple[np.ndarray, LoudnessReport]:
    """``x`` with DC removed and, when ``target_lufs`` is given, gained to it (capped; see the constants).
    ``channels``: mono ``x`` (T,) or (T, 1) is measured as that many identical channels will play it."""
    x = remove_dc(np.asarray(x, dtype=np.float32), sample_rate)
    if channels > 1 and x.ndim == 2 and x.shape[1] != 1:
        raise ValueError(f"channels={channels} is for mono audio; got {x.shape[1]} channels")
    measured = played_loudness(x, sample_rate, channels)
    if target_lufs is None or measured is None:
        return x, LoudnessReport(target_lufs, measured, 0.0)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    headroom = PEAK_CEILING_DB - 20 * math.log10(peak) if peak > 0 else MAX_GAIN_DB
    gain = min(target_lufs - measured, MAX_GAIN_DB, headroom + LIMITER_MAX_DB)
    if gain <= headroom:
        return (x * 10 ** (gain / 20)).astype(np.float32), LoudnessReport(target_lufs, measured, gain)
    y = _limited(x, gain, sample_rate)
    reached = played_loudness(y, sample_rate, channels)
    if reached is not None and reached < target_lufs - 0.05:  # the limiter took some loudness: one correction
        gain = min(gain + target_lufs - reached, MAX_GAIN_DB, headroom + LIMITER_MAX_DB)
        y = _limited(x, gain, sample_rate)
    return y, LoudnessReport(target_lufs, measured, gain, gain - headroom)


def played_loudness(x: np.ndarray, sample_rate: int, channels: int) -> float | None:
    """Integrated loudness of mono ``x`` as ``channels`` identical copies of it read on the meter."""
    return integrated_loudness(x * np.float32(copies_gain(channels)) if channels > 1 else x, sample_rate)


def _limited(x: np.ndarray, gain_db: float, sample_rate: int) -> np.ndarray:
    """``x`` (T,) or (T, C) gained by ``gain_db`` through the effects' brick-wall ``PeakLimiter`` at the ceiling:
    its gain reduction at the loudest peak is what the gain exceeds the headroom by."""
    from engine.io.effects import PeakLimiter

    y = (x * np.float32(10 ** (gain_db / 20))).reshape(len(x), -1).T  # the limiter takes (C, T)
    return PeakLimiter(PEAK_CEILING_DB)(y, sample_rate).T.reshape(x.shape)
