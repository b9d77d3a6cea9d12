"""Renders with their region's tonal balance: a gentle match EQ, the mix step's second half beside loudness.

A continuation should sit in the arrangement the way its region does. A small model's render can come out brighter
or duller than its prime (its top-level codes keep pitch better than spectral shape, see docs/default-model.md), and
a producer would reach for a match EQ. This is one: the render's long-term octave-band balance is moved towards the
region's, at most ``MAX_TONE_DB`` per band, through the zero-phase curve of ``model.output_eq.equalise``. Only the
shape is matched (both balances are taken about their own mean); loudness is ``io.loudness``'s.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.model.output_eq import equalise

# Octave bands by centre (Hz): the codec's octave-band measure's range, the default model's whole band (11 kHz)
TONE_CENTRES_HZ = (62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
MAX_TONE_DB = 6.0  # the most a band is moved, up or down: a match, not a re-voicing (chosen, not fitted)
FLOOR_DB = 60.0  # a band this far below the region's loudest is left alone (nothing there to match)
# Bands stop short of the lower of the two Nyquists (the region's at the model's rate, the take's at the DAW's): the
# resamplers' transition bands lie above it, and one passes the region, another the take (0.4 dB apart at 11 kHz)
NYQUIST_FRACTION = 0.9
SILENT_DB = -150.0  # a region whose loudest band is below this is digital silence (an empty band reads -200)
N_FFT, HOP = 4096, 2048
FRAMES_PER_BLOCK = 256


def top_hz(*rates: int) -> float:
    """Where the bands of a region and a take at these rates stop (``NYQUIST_FRACTION`` of the lowest Nyquist)."""
    return NYQUIST_FRACTION * min(rates) / 2


def band_levels_db(x: np.ndarray, sample_rate: int, top_hz: float | None = None) -> list[float | None]:
    """Mono audio (T,) -> its long-term level per ``TONE_CENTRES_HZ`` octave band (mean power per bin, dB), bands cut
    at ``top_hz`` (default: Nyquist); None for a band above it or a signal too short for one frame. Levels from
    different rates differ by a constant, which matching the shape removes, as long as both stop at the same
    ``top_hz``."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if len(x) < N_FFT:
        return [None] * len(TONE_CENTRES_HZ)
    frames, window = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP], np.hanning(N_FFT)
    power = np.zeros(N_FFT // 2 + 1)
    for i in range(0, len(frames), FRAMES_PER_BLOCK):  # in blocks: an hour-long region is 39 000 frames
        power += (np.abs(np.fft.rfft(frames[i: i + FRAMES_PER_BLOCK] * window, axis=-1)) ** 2).sum(axis=0)
    power /= len(frames)
    freqs = np.fft.rfftfreq(N_FFT, 1 / sample_rate)
    levels: list[float | None] = []
    for centre in TONE_CENTRES_HZ:
        lo, hi = centre / math.sqrt(2), min(centre * math.sqrt(2), sample_rate / 2, top_hz or sample_rate / 2)
        band = power[(freqs >= lo) & (freqs < hi)]
        levels.append(10 * math.log10(band.mean() + 1e-20) if hi > lo and band.size else None)
    return levels


def tone_gains_db(reference: list[float | None], render: list[float | None]) -> list[float]:
    """Per band, the gain (dB) that moves the render's balance to the reference's: both taken about their mean over
    the bands they share with something in them, the difference bounded by ``MAX_TONE_DB``; 0 elsewhere."""
    loudest = max((r for r in reference if r is not None), default=None)
    if loudest is not None and loudest < SILENT_DB:  # digital silence: no balance to match
        return [0.0] * len(reference)
    shared = [i for i, (r, y) in enumerate(zip(reference, render))
              if r is not None and y is not None and loudest is not None and r > loudest - FLOOR_DB]
    if len(shared) < 2:
        return [0.0] * len(reference)
    offset = np.mean([reference[i] for i in shared]) - np.mean([render[i] for i in shared])
    gains = [0.0] * len(reference)
    for i in shared:
        gains[i] = float(np.clip(reference[i] - render[i] - offset, -MAX_TONE_DB, MAX_TONE_DB))
    return gains


def match_tone(clip: np.ndarray, sample_rate: int, reference: list[float | None] | None,
               top_hz: float | None = None) -> tuple[np.ndarray, dict]:
    """``clip`` (T,) or (T, 1) with its octave balance moved towards ``reference`` (``band_levels_db`` of the region,
    at its own rate), both measured up to ``top_hz`` (the lower of the two Nyquists) -> (the clip, {band centre:
    gain dB} as the sidecar records it; {} when nothing was matched)."""
    if not reference:
        return clip, {}
    gains = tone_gains_db(reference, band_levels_db(clip, sample_rate, top_hz))
    if not any(gains):
        return clip, {}
    points = tuple((c, g) for c, g in zip(TONE_CENTRES_HZ, gains))
    y = equalise(torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32).reshape(1, -1)), sample_rate, points)
    return y[0].numpy().reshape(clip.shape), {f"{c:g}": round(g, 2) for c, g in zip(TONE_CENTRES_HZ, gains)}
