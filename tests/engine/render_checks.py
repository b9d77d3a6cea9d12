"""What a rendered take must contain, derived from its own codes: shared by the render tests.

A take's audio is its codes decoded at the last sampled level, resampled to the DAW's rate, cut to the
requested span, mixed (DC removed, the gain its sidecar reports) and given the fade its mode calls for: a
generated take fades in and out (both edges are free), a continuation or prime only fades out (its start
joins the source), a re-render not at all (it joins the audio on both sides of its region). The fades come
last: whatever the mix does, a faded edge ends at exactly zero.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.generate.source import read_source
from engine.io import audio
from engine.request import RenderRequest
from engine.weights.models import Models

FADE_SECONDS = 0.01  # engine.io.takes.FADE_SECONDS, restated: a test of the product must not read it back


def decode_level(req: RenderRequest) -> int:
    """The level a take is decoded from: 0 for a full render; the first sampled level for a draft."""
    if req.quality == "full":
        return req.stop_level or 0
    if req.mode == "rerender":
        return 1 if req.level is None else req.level
    return 2


def decoded_span(models: Models, take, req: RenderRequest) -> np.ndarray:
    """The take's whole decoded span (prompt included) at the model rate, clipped as a DAW file is."""
    level = decode_level(req)
    z = torch.from_numpy(np.ascontiguousarray(take.codes[level]))[None]
    with torch.no_grad():
        x = models.vqvae.decode(z, level, precision="fp32")[0].numpy()
    return np.clip(x, -1.0, 1.0)


def kept_span(models: Models, take, req: RenderRequest) -> tuple[int, int]:
    """Model-rate samples of the decoded span that become the clip."""
    sr, top_hop = models.sample_rate, models.vqvae.hop_lengths[-1]
    new = int(round(req.target_seconds * sr))
    if req.mode == "generate":
        return 0, new
    if req.mode == "rerender":
        return 0, len(read_source(req, sr)[0])
    level = decode_level(req)
    total = len(take.codes[level]) * models.vqvae.hop_lengths[level]
    prompt = total - -(-new // top_hop) * top_hop
    return prompt, prompt + new


def envelope(mode: str, n: int, rate: int) -> np.ndarray:
    fade = min(n // 2, int(FADE_SECONDS * rate))
    env = np.ones(n, np.float32)
    if mode != "rerender" and fade:
        env[n - fade:] = np.linspace(1.0, 0.0, fade, dtype=np.float32)
    if mode == "generate" and fade:
        env[:fade] = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    return env


def unfaded_clip(models: Models, take, req: RenderRequest) -> np.ndarray:
    """The clip before its fades, mono, at the request's rate."""
    ratio = req.sample_rate / models.sample_rate
    y = audio.resample(decoded_span(models, take, req), models.sample_rate, req.sample_rate)
    a, b = kept_span(models, take, req)
    start = int(round(a * ratio))
    return y[start: start + int(round((b - a) * ratio))]


def mixed(clip: np.ndarray, take, rate: int) -> np.ndarray:
    """The mix step on an unfaded clip: the reported tone curve (engine.io.tone), DC removed (engine.io.loudness,
    both tested on their own) and the reported gain."""
    try:
        from engine.io.loudness import remove_dc
    except ImportError:  # an engine without the mix step
        return clip
    report = getattr(take, "loudness", None) or {}
    if report.get("tone_db"):
        import torch

        from engine.model.output_eq import equalise
        points = tuple(sorted((float(c), g) for c, g in report["tone_db"].items()))
        clip = equalise(torch.from_numpy(np.ascontiguousarray(clip).reshape(1, -1)), rate, points)[0].numpy()
    return remove_dc(clip, rate) * np.float32(10 ** ((report.get("gain_db") or 0.0) / 20))


def assert_take_is_its_decoded_codes(models: Models, take, req: RenderRequest) -> None:
    """Content, length, channels and the mode's envelope, exactly (within the fast decoder's rounding and the
    sidecar's 0.01-dB gain)."""
    clip = mixed(unfaded_clip(models, take, req), take, req.sample_rate)
    peak = float(np.abs(clip).max())
    assert peak > 1e-3, "the decoded take is silent"
    assert take.audio.shape == (len(clip), req.channels)
    expected = clip * envelope(req.mode, len(clip), req.sample_rate)
    report = getattr(take, "loudness", None) or {}
    tol = (2e-3 if report.get("gain_db") or report.get("tone_db") else 1e-4) * peak + 1e-7  # rounded in the sidecar
    for c in range(req.channels):
        err = np.abs(take.audio[:, c] - expected)
        assert err.max() <= tol, (f"channel {c}: off by {err.max():.3g} (peak {peak:.3g}) at sample "
                                  f"{int(err.argmax())} of {len(err)}")
