"""Rendered audio, sample by sample: a take is its own codes decoded, at the DAW's rate, with fades only at its
free edges. A continuation or re-render that faded in would put a gap of silence at its join with the source."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.dev.demo import example_path
from engine.generate.render import render
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.weights.debug import debug_models

from .render_checks import assert_take_is_its_decoded_codes, decode_level, kept_span


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
    level = decode_level(req)
    assert not np.array_equal(takes[0].codes[level], takes[1].codes[level])  # two takes, two different clips


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


CHORD = ((440.0, 0.3), (1000.0, 0.2), (3000.0, 0.1))  # Hz, amplitude


def _chord(seconds: np.ndarray) -> np.ndarray:
    return sum(a * np.sin(2 * np.pi * f * seconds) for f, a in CHORD)


@pytest.mark.parametrize("mode,rate", [("continue", 22050), ("continue", 48000), ("generate", 96000),
                                       ("rerender", 48000)])
def test_the_take_is_resampled_to_the_daws_rate_not_relabelled(monkeypatch, mode, rate):
    """A decoder that plays a chord (sample n of the decoded span at n / 44100 s): the take holds that chord at the
    DAW's rate, in tune and in phase with the span, sample by sample away from its fades."""
    models = debug_models(seed=0)
    sr = models.sample_rate

    def chord_decoder(z, level, precision=None, on_chunk=None):
        n = z.shape[1] * models.vqvae.hop_lengths[level]
        return torch.from_numpy(np.tile(_chord(np.arange(n) / sr), (z.shape[0], 1)).astype(np.float32))

    monkeypatch.setattr(models.vqvae, "decode", chord_decoder)
    req = _req(mode, quality="draft", sample_rate=rate, channels=1, tone="off")  # no match EQ on the chord
    take = _render(models, req)[0]
    a, _ = kept_span(models, take, req)
    first = int(round(a * rate / sr))  # the take's first sample is this sample of the resampled span
    gain = 10 ** ((take.loudness.get("gain_db") or 0.0) / 20) if hasattr(take, "loudness") else 1.0  # the mix's
    want = gain * _chord((first + np.arange(len(take.audio))) / rate)
    inner = slice(int(0.012 * rate), len(want) - int(0.012 * rate))  # past the fades
    err = np.abs(take.audio[inner, 0] - want[inner])
    assert err.max() < 1e-2 * gain, (err.max(), int(err.argmax()))  # a sample's shift: ~0.1; a wrong rate: ~1
    expected_seconds = 0.4 if mode == "rerender" else 0.2
    assert len(take.audio) == round(expected_seconds * rate)
    spectrum = np.abs(np.fft.rfft(take.audio[:, 0] * np.hanning(len(take.audio))))
    peak_hz = np.argmax(spectrum) * rate / len(take.audio)
    assert abs(peak_hz - 440.0) < rate / len(take.audio), peak_hz  # in tune: not 440 * rate / 44100
