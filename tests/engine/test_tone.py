"""The mix step's match EQ (engine/io/tone.py): a take's octave balance moved towards its region's, bounded."""

import numpy as np
import pytest
from scipy import signal

from engine.dev.demo import example_path
from engine.generate.render import render
from engine.io import audio
from engine.io.tone import MAX_TONE_DB, TONE_CENTRES_HZ, band_levels_db, match_tone, tone_gains_db, top_hz
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.weights.debug import debug_models


def _noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def _tilted(x: np.ndarray, rate: int, hz: float = 1000.0) -> np.ndarray:
    """``x`` low-passed: ~12 dB an octave less above ``hz`` (a dull render)."""
    return signal.sosfilt(signal.butter(2, hz, "lowpass", fs=rate, output="sos"), x).astype(np.float32)


def _spread(reference: list, levels: list) -> float:
    d = np.array([r - y for r, y in zip(reference, levels) if r is not None and y is not None])
    return float(d.max() - d.min())


def test_the_same_music_at_two_rates_needs_no_correction():
    """The region at the model's rate, the take resampled to the DAW's: levels differ by a constant, which matching
    the shape removes, once both stop short of the lower Nyquist (at it, the top band read 0.6 dB apart)."""
    x = _noise(4, 22050, 1)
    for rate in (44100, 48000):
        reference = band_levels_db(x, 22050, top_hz(22050, rate))
        take = audio.resample(x, 22050, rate)
        assert max(abs(g) for g in tone_gains_db(reference, band_levels_db(take, rate, top_hz(22050, rate)))) < 0.2
        assert match_tone(take[:, None], rate, reference, top_hz(22050, rate))[1]["8000"] == pytest.approx(0, abs=0.2)
    silence = band_levels_db(np.zeros(22050 * 2, np.float32), 22050)
    assert tone_gains_db(silence, band_levels_db(x, 22050)) == [0.0] * len(TONE_CENTRES_HZ)


def test_a_dull_take_is_brightened_towards_its_region_within_the_bound():
    rate = 44100
    reference = band_levels_db(_noise(4, 22050), 22050)
    dull = _tilted(_noise(4, rate, 3), rate)
    before = band_levels_db(dull, rate)
    matched, gains = match_tone(dull[:, None], rate, reference)
    after = band_levels_db(matched[:, 0], rate)
    assert matched.shape == (len(dull), 1) and list(gains) == [f"{c:g}" for c in TONE_CENTRES_HZ]
    assert all(abs(g) <= MAX_TONE_DB for g in gains.values())
    assert gains["8000"] == MAX_TONE_DB and gains["62.5"] < 0  # the top pulled up as far as allowed, the low end down
    assert _spread(reference, after) < _spread(reference, before) - 10  # the balance moved by more than 10 dB


def test_no_reference_or_silence_changes_nothing():
    x = _noise(2, 44100)[:, None]
    for reference in (None, [], [None] * len(TONE_CENTRES_HZ)):
        y, gains = match_tone(x, 44100, reference)
        assert y is x and gains == {}
    assert match_tone(x[:100], 44100, band_levels_db(_noise(2, 22050), 22050))[1] == {}  # too short to measure


@pytest.mark.parametrize("mode,tone,matched", [("continue", "match", True), ("continue", "off", False),
                                               ("rerender", "match", False), ("generate", "match", False)])
def test_only_continuations_and_primes_are_matched_and_the_sidecar_says_how(mode, tone, matched):
    fields = {"seconds": 0.3, "seed": 3, "sample_rate": 44100, "channels": 1, "tone": tone}
    if mode != "generate":
        fields.update(source=str(example_path()), start=1.0, length=0.5)
    take = render(debug_models(seed=0), RenderRequest.from_fields(mode, fields), lambda p: None, CancelToken())[0]
    assert bool(take.loudness["tone_db"]) is matched
    if matched:
        assert set(take.loudness["tone_db"]) == {f"{c:g}" for c in TONE_CENTRES_HZ}
        assert take.reference_tone is not None and len(take.reference_tone) == len(TONE_CENTRES_HZ)


def test_the_match_eq_never_costs_a_take_the_loudness_it_would_reach():
    """Where a cap stops the gain (the limiter's allowance, the largest lift), the take keeps whichever of matched and
    unmatched comes nearer the region's loudness; where the target is reached, the match stays."""
    from engine.generate.render import _mix
    from engine.io.loudness import integrated_loudness

    rate = 44100
    reference = band_levels_db(_noise(4, 22050), 22050)
    dull = _tilted(_noise(4, rate, 5), rate, hz=300.0)
    dull = (dull * 0.5 / np.abs(dull).max())[:, None]  # peaks at -6 dBFS
    fields = {"source": "/a.wav", "sample_rate": rate, "channels": 1}

    def mixed(x, target, tone):
        req = RenderRequest.from_fields("continue", {**fields, "tone": tone})
        clip, record = _mix(x.copy(), req, target, "continue", reference)
        return record, integrated_loudness(clip[:, 0], rate)

    record, reached = mixed(dull, -30.0, "match")
    assert record["tone_db"] and abs(reached + 30.0) < 0.1  # headroom: matched, and at the target
    for target in (-8.0, -3.0):  # past the limiter's allowance
        record, reached = mixed(dull, target, "match")
        _, plain = mixed(dull, target, "off")
        _, toned = mixed(match_tone(dull, rate, reference)[0], target, "off")
        assert record["limiter_db"] > 0 and reached < target - 0.1
        assert reached >= max(plain, toned) - 0.05
        assert bool(record["tone_db"]) is (toned >= plain - 0.05)
