"""Renders sit in the mix: DC removed, the prime's integrated loudness matched, the gain recorded; and a quiet
source reaches the model at the level it was trained at, that gain undone after decoding."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from engine.errors import RequestError
from engine.generate.render import render
from engine.io.loudness import (INPUT_PEAK_DBFS, LIMITER_MAX_DB, MAX_GAIN_DB, PEAK_CEILING_DB, input_gain_db,
                                integrated_loudness, match_loudness, remove_dc, rms_dbfs)
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.weights.debug import debug_models

SR = 22050


def sine(freq: float, seconds: float, amp: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_dc_is_removed_and_the_music_kept():
    x = sine(440, 2.0, 0.3) + 0.1
    y = remove_dc(x, SR)
    assert abs(float(y[SR // 2: -SR // 2].mean())) < 1e-3  # the 0.1 offset (-20 dBFS) is gone
    ratio = np.sqrt(np.mean(y[SR // 2: -SR // 2] ** 2)) / np.sqrt(np.mean((x - 0.1) ** 2))
    assert abs(20 * np.log10(ratio)) < 0.05


def test_loudness_is_matched_to_the_target_and_capped():
    quiet = sine(440, 3.0, 0.01)
    before = integrated_loudness(quiet, SR)
    y, report = match_loudness(quiet, SR, before + 12.0)
    assert report.gain_db == pytest.approx(12.0, abs=0.01)
    assert pyloudnorm.Meter(SR).integrated_loudness(y.astype(np.float64)) == pytest.approx(before + 12.0, abs=0.1)
    loud = sine(440, 3.0, 0.1)
    y, capped = match_loudness(loud, SR, 0.0)  # far above: the peak ceiling holds, the limiter takes what it may
    assert integrated_loudness(y, SR) < -2.0 and capped.limiter_db <= LIMITER_MAX_DB + 1e-6
    assert 20 * np.log10(np.abs(y).max()) == pytest.approx(PEAK_CEILING_DB, abs=0.05)
    _, lifted = match_loudness(sine(440, 3.0, 1e-5), SR, -10.0)  # near-silence is not lifted into noise
    assert lifted.gain_db <= MAX_GAIN_DB
    _, short = match_loudness(sine(440, 0.2, 0.1), SR, -20.0)  # under one gating block: left alone
    assert short.measured_lufs is None and short.gain_db == 0.0


def test_a_loud_prime_is_matched_through_the_limiter_without_passing_the_ceiling():
    """A render whose few peaks leave no headroom still reaches a loud (mastered) prime's loudness: the limiter
    takes the peaks down, the music between them gets the plain gain, and no sample passes the ceiling."""
    x = sine(220, 4.0, 0.05)
    x[SR // 4:: SR // 2] = 0.9  # a click every half second: headroom 0.1 dB
    before = integrated_loudness(x, SR)
    y, report = match_loudness(x, SR, before + 4.0)
    assert 20 * np.log10(np.abs(y).max()) <= PEAK_CEILING_DB + 1e-4
    assert integrated_loudness(y, SR) == pytest.approx(before + 4.0, abs=0.3)
    assert 4.0 < report.limiter_db < LIMITER_MAX_DB and report.to_json()["limiter_db"] == round(report.limiter_db, 2)
    between = slice(SR // 2 + SR // 8, SR // 2 + SR // 4 - SR // 20)  # 50 ms from the clicks: the gain alone
    clean = remove_dc(x, SR)
    assert np.allclose(y[between], clean[between] * 10 ** (report.gain_db / 20), rtol=1e-4, atol=1e-6)
    _, capped = match_loudness(x, SR, before + 20.0)  # more than the limiter may take: the gain stops there
    assert capped.limiter_db == pytest.approx(LIMITER_MAX_DB, abs=0.01)
    _, none = match_loudness(sine(220, 2.0, 0.05), SR, before)  # headroom enough: no limiting at all
    assert none.limiter_db == 0.0
    stereo, both = match_loudness(np.stack([x, x / 2], axis=1), SR, before + 4.0)  # one gain: the image stays
    assert np.abs(stereo).max() <= 10 ** (PEAK_CEILING_DB / 20) + 1e-6 and both.limiter_db > 0
    assert np.allclose(stereo[:, 0], 2 * stereo[:, 1], atol=1e-6)


def test_the_request_names_bad_loudness_values():
    assert RenderRequest.from_fields("generate", {}).loudness == "match"
    assert RenderRequest.from_fields("generate", {"loudness": -14}).loudness == -14.0
    for bad in ("loud", -70, 3):
        with pytest.raises(RequestError, match="loudness"):
            RenderRequest.from_fields("generate", {"loudness": bad})


@pytest.fixture(scope="module")
def models():
    return debug_models()


def test_a_continuation_gets_its_regions_loudness(models, tmp_path):
    region = sine(220, 3.0, 0.2) + sine(330, 3.0, 0.1)
    sf.write(tmp_path / "prime.wav", region, SR)
    target = integrated_loudness(region, SR)
    req = RenderRequest.from_fields("continue", {"source": str(tmp_path / "prime.wav"), "seconds": 1.0,
                                                 "sample_rate": SR, "channels": 1, "seed": 3})
    take = render(models, req, lambda p: None, CancelToken())[0]
    assert take.loudness["target_lufs"] == pytest.approx(target, abs=0.01)
    reached = integrated_loudness(take.audio[:, 0], SR)
    capped = take.loudness["gain_db"] >= MAX_GAIN_DB - 0.01 or \
        20 * np.log10(np.abs(take.audio).max()) >= PEAK_CEILING_DB - 0.05
    assert capped or reached == pytest.approx(target, abs=0.3)
    assert abs(float(take.audio.mean())) < 1e-3
    fields = {k: v for k, v in req.to_fields().items() if k != "mode"} | {"loudness": "off"}
    off = render(models, RenderRequest.from_fields("continue", fields), lambda p: None, CancelToken())[0]
    assert off.loudness["gain_db"] == 0.0 and off.loudness["target_lufs"] is None


@pytest.mark.parametrize("channels", [2, 3, 5])
def test_mono_measured_as_its_identical_channels_reads_what_the_meter_reads_on_them(channels):
    x = sine(220, 3.0, 0.2) + sine(1000, 3.0, 0.05)
    x[: SR // 2] *= 1e-4  # a near-silent start, so the gates have something to decide
    copies = np.repeat(remove_dc(x, SR)[:, None], channels, axis=1)  # what the mix measures: DC removed first
    on_copies = pyloudnorm.Meter(SR).integrated_loudness(copies.astype(np.float64))
    _, report = match_loudness(x[:, None], SR, -20.0, channels=channels)
    assert report.measured_lufs == pytest.approx(on_copies, abs=1e-5)  # float32 scaling's rounding
    assert report.gain_db == pytest.approx(-20.0 - on_copies, abs=1e-5)


def test_a_six_to_eight_channel_take_gets_the_sources_loudness_too(models, tmp_path):
    """pyloudnorm stops at five channels; channels past the fifth count with weight 1."""
    region = sine(220, 3.0, 0.2)
    sf.write(tmp_path / "prime.wav", region, SR)
    req = RenderRequest.from_fields("continue", {"source": str(tmp_path / "prime.wav"), "seconds": 1.0,
                                                 "sample_rate": SR, "channels": 8, "seed": 3})
    take = render(models, req, lambda p: None, CancelToken())[0]
    assert take.audio.shape[1] == 8 and all(np.array_equal(take.audio[:, 0], take.audio[:, c]) for c in range(8))
    expected_gain = take.loudness["target_lufs"] - take.loudness["measured_lufs"]
    assert take.loudness["gain_db"] == pytest.approx(expected_gain, abs=0.01) or take.loudness["gain_db"] < expected_gain


def test_the_input_gain_lifts_a_quiet_source_to_the_models_level_within_its_limits():
    quiet = sine(220, 1.0, 0.02)  # -37 dBFS RMS
    assert rms_dbfs(quiet) == pytest.approx(-37.0, abs=0.05)
    assert input_gain_db(quiet, -18.0) == pytest.approx(-18.0 - rms_dbfs(quiet), abs=1e-6)
    assert input_gain_db(quiet, None) == 0.0  # a model that states no input level (the official ones)
    assert input_gain_db(sine(220, 1.0, 0.5), -18.0) == 0.0  # loud enough already: never cut
    assert input_gain_db(np.zeros(SR, np.float32), -18.0) == 0.0  # digital silence stays silence
    assert input_gain_db(sine(220, 1.0, 1e-4), -18.0) == MAX_GAIN_DB  # near-silence is not lifted into noise
    spiky = np.zeros(SR, np.float32)
    spiky[::2205] = 0.5  # RMS about -36 dBFS, peak -6 dBFS: the peak sets the limit
    assert input_gain_db(spiky, -18.0) == pytest.approx(INPUT_PEAK_DBFS - 20 * np.log10(0.5), abs=1e-6)

