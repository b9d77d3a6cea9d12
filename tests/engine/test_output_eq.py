"""The decoder's output EQ: a zero-phase curve from a few (Hz, dB) points, fitted to undo a measured roll-off."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import signal

from engine.model.config import VQVAEConfig
from engine.model.output_eq import FIT_TOLERANCE_DB, MAX_BOOST_DB, equalise, fit_points
from engine.model.vqvae import VQVAE
from engine.train.evaluate import band_levels_db

SR = 22050


def _level_db(x: torch.Tensor) -> float:
    return 20 * np.log10(float(x.pow(2).mean().sqrt()))


def test_the_curve_gains_each_frequency_as_its_points_say_without_delay_or_change_of_length():
    t = torch.arange(SR) / SR
    tones = torch.stack([torch.sin(2 * np.pi * 500 * t), torch.sin(2 * np.pi * 6000 * t)])
    points = ((500.0, 0.0), (6000.0, 6.0))
    y = equalise(tones, SR, points)
    assert y.shape == tones.shape and y.dtype == tones.dtype
    inner = slice(2000, -2000)
    assert _level_db(y[0, inner]) - _level_db(tones[0, inner]) == pytest.approx(0.0, abs=0.05)
    assert _level_db(y[1, inner]) - _level_db(tones[1, inner]) == pytest.approx(6.0, abs=0.05)
    click = torch.zeros(1, SR)
    click[0, SR // 2] = 1.0
    assert int(equalise(click, SR, points).abs().argmax()) == SR // 2  # zero-phase: the peak stays put
    assert equalise(tones, SR, ()) is tones  # no points: untouched
    assert torch.allclose(equalise(tones, SR, ((100.0, 0.0), (8000.0, 0.0))), tones, atol=1e-5)


def test_a_fitted_curve_undoes_a_roll_off_measured_on_other_audio():
    """Fitted on one noise signal through a gentle low-pass, the curve brings another signal through the same
    low-pass back within a dB of the original in every octave band: the roll-off is the system's, not the clip's."""
    sos = signal.butter(1, 3000, fs=SR, output="sos")
    rng = np.random.default_rng(0)
    fit_on, judge_on = (rng.standard_normal(4 * SR).astype(np.float32) * 0.1 for _ in range(2))
    lost = band_levels_db(fit_on, signal.sosfilt(sos, fit_on).astype(np.float32), SR)
    assert lost["4000-8000"] < -3.0  # the low-pass takes the top octave down
    rolled = signal.sosfilt(sos, judge_on).astype(np.float32)
    for tolerance in (0.0, FIT_TOLERANCE_DB):
        points = fit_points(lost, tolerance)
        assert all(-MAX_BOOST_DB <= db <= MAX_BOOST_DB for _, db in points)
        fixed = equalise(torch.from_numpy(rolled)[None], SR, points)[0].numpy()
        assert all(abs(db) < tolerance + 1.0 for db in band_levels_db(judge_on, fixed, SR).values())
    assert fit_points({"62.5-125": -1.0, "4000-8000": -2.0}) == ((88.4, 0.0), (5656.9, 2.0 - FIT_TOLERANCE_DB))
    assert fit_points({"4000-8000": -40.0}) == ((5656.9, MAX_BOOST_DB),)  # never more than the cap


def test_a_codec_decodes_through_its_configured_curve_and_the_config_round_trips():
    cfg = VQVAEConfig(width=8, depth=1, multipliers=(1, 1, 1), emb_width=8, l_bins=16, sample_rate=SR)
    points = ((1000.0, 0.0), (5000.0, 4.0))
    flat = VQVAE(cfg).eval()
    shaped = VQVAE(dataclasses.replace(cfg, output_eq=(points,))).eval()
    shaped.load_state_dict(flat.state_dict())
    codes = torch.randint(0, 16, (1, 400))
    assert torch.allclose(shaped.decode(codes, 0), equalise(flat.decode(codes, 0), SR, points), atol=1e-6)
    assert torch.equal(shaped.decode(codes[:, :100], 1), flat.decode(codes[:, :100], 1))  # other levels stay flat
    saved = shaped.cfg.to_dict()
    assert VQVAEConfig.from_dict(saved) == shaped.cfg and shaped.cfg.level_output_eq(0) == points
    assert VQVAEConfig().output_eq == ()  # the official codec has none
