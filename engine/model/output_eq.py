"""A decoder's output EQ: a fixed, zero-phase gain curve applied to what one level's decoder produces.

A small decoder trained with spectral losses rolls off its top octave whatever the audio (the default model's
level 0 lost about 5 dB from 4 to 8 kHz on music it never saw). The roll-off is systematic, so a fixed curve
fitted once on training audio (``fit_points``) puts that energy back; the codes, and so the priors, do not
change. The curve is a few (Hz, dB) points, stored in the codec's config (``VQVAEConfig.output_eq``): no
weights, nothing for official models (they have none).
"""

from __future__ import annotations

import math

import numpy as np
import torch

Points = tuple[tuple[float, float], ...]  # (Hz, dB), rising in Hz
PAD_SECONDS = 0.1  # reflected at each edge before the FFT: the curve's impulse response is much shorter
MAX_BOOST_DB = 12.0  # a fitted point never boosts more than this (nor cuts more): noise is not music
# A fit leaves this much of each band's difference in place (half the issue's +-3 dB band goal): every dB of boost
# on the decoder's top octave also raises its error (the full correction of the default model's level 0 cost
# +0.007 spectral convergence on training audio), so the curve corrects only what is beyond it
FIT_TOLERANCE_DB = 1.5


def gain_curve(points: Points, freqs: np.ndarray) -> np.ndarray:
    """Amplitude gain at ``freqs``: dB interpolated linearly in log-frequency between the points, held flat
    below the first and above the last."""
    hz = np.log2([p[0] for p in points])
    db = np.interp(np.log2(np.maximum(freqs, 1e-3)), hz, [p[1] for p in points])
    return 10 ** (db / 20)


def equalise(audio: torch.Tensor, sample_rate: int, points: Points) -> torch.Tensor:
    """``audio`` (N, T) through the curve, zero-phase (no delay, no pre-ringing to speak of), same length.
    No points: unchanged."""
    if not points or audio.shape[-1] < 2:
        return audio
    t = audio.shape[-1]
    pad = min(t - 1, int(PAD_SECONDS * sample_rate))
    x = torch.nn.functional.pad(audio[:, None, :].float(), (pad, pad), mode="reflect")[:, 0]
    n = x.shape[-1]
    gain = torch.from_numpy(gain_curve(points, np.fft.rfftfreq(n, 1 / sample_rate))).to(x.device, torch.float32)
    y = torch.fft.irfft(torch.fft.rfft(x) * gain, n=n)
    return y[:, pad:pad + t].to(audio.dtype)


def fit_points(bands_db: dict[str, float], tolerance_db: float = FIT_TOLERANCE_DB) -> Points:
    """The curve that undoes a measured band-level difference (``evaluate.band_levels_db``: "lo-hi" -> dB of
    the reconstruction against the original) beyond ``tolerance_db``, one point at each band's geometric centre,
    within +-``MAX_BOOST_DB``."""
    points = []
    for band, db in bands_db.items():
        lo, hi = (float(v) for v in band.split("-"))
        gain = -math.copysign(max(0.0, abs(db) - tolerance_db), db)
        points.append((round(math.sqrt(lo * hi), 1), round(max(-MAX_BOOST_DB, min(MAX_BOOST_DB, gain)), 2) + 0.0))
    return tuple(sorted(points))
