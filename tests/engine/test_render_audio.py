"""Rendered audio, sample by sample: a take is its own codes decoded, at the DAW's rate, with fades only at its
free edges. A continuation or re-render that faded in would put a gap of silence at its join with the source."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from engine.dev.demo import example_path
from engine.generate.render import render
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.weights.debug import debug_models

from .render_checks import assert_take_is_its_decoded_codes, decoded_span, kept_span, unfaded_clip


@pytest.fixture(scope="module")
def models():
    return debug_models(seed=0)


def _req(mode: str, **fields) -> RenderRequest:
    base = {"seconds": 0.2, "seed": 5, "sample_rate": 44100, "channels": 1}
    if mode != "generate":
        base.update(source=str(example_path()), start=1.0, length=0.4)
    return RenderRequest.from_fields(mode, {**base, **fields})


def _render(models, req):
    return render(models, req, lambda p: None, CancelToken(), None)


@pytest.mark.parametrize("mode,quality,rate,channels", [
    ("generate", "full", 48000, 2), ("generate", "draft", 22050, 1), ("continue", "full", 44100, 1),
    ("continue", "draft", 48000, 2), ("prime", "draft", 96000, 1), ("rerender", "full", 48000, 2),
    ("rerender", "draft", 44100, 1),
])
def test_a_take_is_its_codes_decoded_at_the_daws_rate_with_its_modes_fades(models, mode, quality, rate, channels):
    req = _req(mode, quality=quality, sample_rate=rate, channels=channels, takes=2)
    takes = _render(models, req)
    for take in takes:
        assert_take_is_its_decoded_codes(models, take, req)
    assert not np.allclose(takes[0].audio, takes[1].audio, atol=1e-3)  # two takes, two different clips


@pytest.mark.parametrize("mode", ["continue", "prime", "rerender"])
def test_joins_with_the_source_are_not_faded_in(models, mode):
    """The first milliseconds of a continuation, prime or re-render are as loud as what follows them; a generated
    take starts and ends at zero."""
    req = _req(mode, quality="draft", sample_rate=48000)
    y = _render(models, req)[0].audio[:, 0]
    head, after = np.sqrt(np.mean(y[:96] ** 2)), np.sqrt(np.mean(y[96:960] ** 2))  # 2 ms, then the next 18 ms
    assert after > 1e-3 and head > 0.3 * after, (head, after)
    tail = np.abs(y[-5:]).max()
    assert tail > 1e-4 if mode == "rerender" else tail < 0.01 * np.abs(y).max()  # a re-render ends unfaded
    gen = _render(models, _req("generate", quality="draft", sample_rate=48000))[0].audio[:, 0]
    assert abs(gen[0]) < 1e-6 and abs(gen[-1]) < 1e-6 and np.abs(gen[480:-480]).max() > 1e-3


@pytest.mark.parametrize("rate", [22050, 48000, 96000])
def test_the_take_is_resampled_to_the_daws_rate_not_relabelled(models, rate):
    """Against an independent polyphase resampler (scipy): the same waveform at the new rate, away from the fades."""
    req = _req("continue", quality="draft", sample_rate=rate)
    take = _render(models, req)[0]
    x = decoded_span(models, take, req)
    g = np.gcd(rate, models.sample_rate)
    ref = scipy.signal.resample_poly(x.astype(np.float64), rate // g, models.sample_rate // g)
    a, b = kept_span(models, take, req)
    start = int(round(a * rate / models.sample_rate))
    ref = ref[start: start + len(take.audio)]
    inner = slice(int(0.012 * rate), len(ref) - int(0.012 * rate))  # past the 10-ms fade-out and filter edges
    got, want = take.audio[inner, 0], ref[inner]
    corr = np.dot(got, want) / np.sqrt(np.dot(got, got) * np.dot(want, want))
    assert corr > 0.999, corr
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.02 * np.sqrt(np.mean(want ** 2))
    assert len(take.audio) == round(0.2 * rate)
    np.testing.assert_allclose(take.audio[:len(ref) // 2, 0], unfaded_clip(models, take, req)[:len(ref) // 2],
                               atol=1e-6)
