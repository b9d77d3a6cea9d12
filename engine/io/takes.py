"""A rendered take: what the renderer hands to publishing and effects (audio, timeline position, seed, codes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FADE_SECONDS = 0.01  # the fade at a take's free edges (a generated take's start, every take's end but re-renders')


@dataclass(frozen=True)
class RenderedTake:
    take: int  # 1-based
    audio: np.ndarray  # (T, channels) float32 at the request's sample rate
    position: float  # timeline seconds where the DAW should place it
    seed: int
    codes: dict[int, np.ndarray]  # level -> (T_level,) codes of the whole sampled span (prompt included)
    loudness: dict = field(default_factory=dict)  # what the mix step did (io.loudness.LoudnessReport.to_json)
