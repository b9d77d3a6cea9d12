"""The embedded default model: it loads with no path, knows its own labels, and meets its held-out metrics.

The held-out clips in ``tests/engine/data/default_model_heldout`` (three 5-second excerpts of corpus
files never trained on, with their labels) make the test self-contained. Thresholds sit a little above
the values measured when the model was exported (docs/default-model.md), so a regression fails while
float noise does not.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.weights.bundle import DEFAULT_MODEL_DIR, load_models

CLIPS = Path(__file__).parent / "data" / "default_model_heldout"

MAX_SPECTRAL_CONVERGENCE = (0.17, 0.27, 0.52)  # per level, bottom first (measured 0.142 / 0.230 / 0.454, round 3)
MAX_UPSAMPLER_BITS = (5.7, 7.8)  # measured 5.36 / 7.48


@pytest.fixture(scope="module")
def models():
    return load_models(None)


@pytest.fixture(scope="module")
def metrics(models):
    from engine.train.evaluate import evaluate, load_clips

    clips, counts = load_clips(CLIPS)
    return evaluate(models, clips, counts)


def test_loads_as_the_default_with_its_own_vocabulary(models) -> None:
    assert models.levels == 3 and models.sample_rate == 22050
    assert models.vocab is not None and models.info()["label_vocab"] == "model"
    total, names = models.search_labels("artist", "wansti")
    assert total == 1 and names == ["marek moeckel (wansti)"]
    assert models.vocab["genre"].resolve("Chiptune") == models.vocab["genre"].ids["chiptune"]


def test_size_budget() -> None:
    size = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.iterdir())
    assert size < 20e6, f"the default model is {size / 1e6:.1f} MB"


def test_heldout_clips_are_small() -> None:
    assert sum(f.stat().st_size for f in CLIPS.iterdir()) < 1e6


def test_vqvae_spectral_convergence(metrics) -> None:
    for level, (sc, limit) in enumerate(zip(metrics["spectral_convergence"], MAX_SPECTRAL_CONVERGENCE)):
        assert sc < limit, f"level {level}: spectral convergence {sc:.3f} >= {limit}"


def test_every_spectral_limit_is_below_what_silence_scores() -> None:
    """A codec that decodes to silence, or to hiss at -60 dBFS, fails every level's limit (the same metric and
    clips as ``evaluate``): the top level's limit sits close to 1, so this is what keeps it meaningful."""
    import torch

    from engine.model.losses import spectral_convergence
    from engine.train.evaluate import load_clips

    silent, hiss = [], []
    for clip in load_clips(CLIPS)[0]:
        x = torch.from_numpy(clip["audio"][: len(clip["audio"]) // 256 * 256])[None]
        silent.append(float(spectral_convergence(x, torch.zeros_like(x))))
        noise = 1e-3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        hiss.append(float(spectral_convergence(x, noise)))
    for level, limit in enumerate(MAX_SPECTRAL_CONVERGENCE):
        assert limit < min(np.mean(silent), np.mean(hiss)), (level, limit, np.mean(silent), np.mean(hiss))


def test_top_prior_beats_the_unigram_baselines(metrics) -> None:
    """The top prior beats what a context-free model trained on the same data gets on these clips. (On all 17
    held-out files it also beats the codes' own empirical entropy, 7.34 vs 9.24 bits; on three 5-s clips that
    plug-in estimate is biased ~0.3 bits low by its 2 580 tokens over 1 024 codes, so it is not asserted here.)"""
    bits = metrics["bits_per_token"][2]
    assert bits < metrics["top_unigram_train_cross_entropy"] - 0.2, metrics


def test_upsamplers_bits_per_token(models, metrics) -> None:
    for level, limit in enumerate(MAX_UPSAMPLER_BITS):
        bits = metrics["bits_per_token"][level]
        assert bits < limit < math.log2(models.vqvae.cfg.l_bins), f"level {level}: {bits:.2f} bits per token"


def test_model_vocab_labels_reach_the_prior(models) -> None:
    from engine.generate.conditioning import label_fn
    from engine.request import RenderRequest

    req = RenderRequest.from_fields("generate", {"artist": "Marek Moeckel (Wansti)", "genre": "chiptune", "seconds": 2})
    y = label_fn(models, 2, req, 22050 * 4, 1)(0)
    assert y[0, 3] == models.vocab["artist"].ids["marek moeckel (wansti)"] and y[0, 4] == models.vocab["genre"].ids["chiptune"]
    assert np.all(y[0, 5:].numpy() == -1)


def test_the_shipped_files_match_their_pins() -> None:
    from engine.weights.registry import verify

    checked = verify("default")
    assert len(checked) == len(list(DEFAULT_MODEL_DIR.iterdir())) - 1  # every file but the pins themselves
    assert all(status.startswith("ok") for _, status in checked), checked


def test_a_quiet_region_is_continued_as_the_same_region_played_louder(models, tmp_path) -> None:
    """The default model states the level it was trained at (``input_rms_dbfs``), so a region selected off a quiet
    stem is lifted to it before encoding: its codes are the louder copy's (the codes a draft continues), and the take
    keeps the quiet region's level (loudness off: the lift is undone after decoding, as the sidecar's
    ``input_gain_db`` says). Without the stated level the quiet copy encodes to other codes (what the check
    guards against)."""
    import dataclasses

    import soundfile as sf

    from engine.generate.render import render
    from engine.io.loudness import rms_dbfs
    from engine.request import RenderRequest
    from engine.runtime.progress import CancelToken
    from engine.train.evaluate import load_clips

    region = load_clips(CLIPS)[0][0]["audio"][: 3 * models.sample_rate]
    region = region * np.float32(10 ** ((models.input_rms_dbfs - rms_dbfs(region)) / 20))  # "loud": at that level
    as_is = dataclasses.replace(models, meta={k: v for k, v in models.meta.items() if k != "input_rms_dbfs"})
    takes = {}
    for name, amp in (("loud", 1.0), ("quiet", 0.1)):  # the quiet copy 20 dB down (-37 dBFS RMS)
        sf.write(tmp_path / f"{name}.wav", region * amp, models.sample_rate, subtype="FLOAT")
        req = RenderRequest.from_fields("continue", {
            "source": str(tmp_path / f"{name}.wav"), "seconds": 0.5, "quality": "draft", "seed": 3,
            "sample_rate": models.sample_rate, "channels": 1, "loudness": "off"})
        takes[name] = {key: render(m, req, lambda p: None, CancelToken())[0]
                       for key, m in (("leveled", models), ("as_is", as_is))}
    quiet, loud = takes["quiet"]["leveled"], takes["loud"]["leveled"]
    assert quiet.loudness["input_gain_db"] - loud.loudness["input_gain_db"] == pytest.approx(20.0, abs=0.01)
    assert takes["quiet"]["as_is"].loudness["input_gain_db"] == 0.0
    for level in (2, 1, 0):  # the prompt's codes at every level (float rounding may flip a code at a margin)
        n = loud.keep[0] // models.vqvae.hop_lengths[level]
        same = float(np.mean(quiet.codes[level][:n] == loud.codes[level][:n]))
        unlifted = float(np.mean(takes["quiet"]["as_is"].codes[level][:n] == loud.codes[level][:n]))
        assert same > 0.99 and unlifted < 0.5, (level, same, unlifted)
    # 20 dB down, as its source (not undone, it would be ~0 dB); the two drafts may part after a flipped code
    assert rms_dbfs(quiet.audio) - rms_dbfs(loud.audio) == pytest.approx(-20.0, abs=3.0)


def test_the_timing_labels_put_a_short_render_at_the_start_of_a_song_of_the_stated_length(models) -> None:
    """A 9-s render is told it is the start of a ``song_seconds`` song (it rendered a 9-s piece's fade-out before),
    and the windows still advance the offset; a model that states no length keeps the reference's rule."""
    import dataclasses

    from engine.generate.conditioning import label_fn
    from engine.request import RenderRequest

    top, sr = models.levels - 1, models.sample_rate
    total = 9 * sr // 128 * 128
    req = RenderRequest.from_fields("generate", {"seconds": 9.0, "genre": models.vocab["genre"].names[1]})
    assert models.song_seconds is not None and models.song_seconds * sr > total
    labels_at = label_fn(models, top, req, total, 1)
    assert labels_at(0)[0, 0] == int(models.song_seconds * sr) and labels_at(0)[0, 1] == 0
    assert labels_at(512)[0, 1] == 512 * models.priors[top].cfg.raw_to_tokens
    as_is = dataclasses.replace(models, meta={k: v for k, v in models.meta.items() if k != "song_seconds"})
    assert label_fn(as_is, top, req, total, 1)(0)[0, 0] == total
    long_render = int(models.song_seconds * sr) + 10 * sr  # longer than the stated song: the render's own length
    assert label_fn(models, top, req, long_render, 1)(0)[0, 0] == long_render
