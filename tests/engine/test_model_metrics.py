"""The metric functions behind issue 14's goals (``engine/train/evaluate.py``), on synthetic signals whose
answer is known, and one end-to-end smoke run of the continuation report on the tiny debug models."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from engine.train import evaluate as ev

SR = 22050


def noise(seconds: float, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def tone(freqs, seconds: float = 2.0, harmonics: int = 1, amp: float = 0.1, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(amp / k * np.sin(2 * np.pi * f * k * t + k) for f in freqs for k in range(1, harmonics + 1))
    return np.asarray(x, dtype=np.float32)


def test_spectral_convergence_is_zero_on_itself_and_grows_with_the_cut() -> None:
    x = noise(2.0)
    assert ev.spectral_convergence_np(x, x) == pytest.approx(0.0, abs=1e-9)
    assert ev.spectral_convergence_np(x, np.zeros_like(x)) == pytest.approx(1.0)
    sc = [ev.spectral_convergence_np(x, ev.lowpass(x, SR, cut)) for cut in (8000, 4000, 2000, 1000)]
    assert all(a < b for a, b in itertools.pairwise(sc)), sc
    # white noise keeps about sqrt(cut / nyquist) of its magnitude norm: SC ~ sqrt(1 - cut / nyquist)
    assert sc[1] == pytest.approx(math.sqrt(1 - 4000 / (SR / 2)), abs=0.05)
    assert ev.to_db(0.1) == pytest.approx(-20.0)


def test_resample_roundtrip_keeps_a_low_tone_and_drops_a_high_one() -> None:
    low, high = tone([300.0]), tone([3000.0])
    assert ev.spectral_convergence_np(low, ev.resample_roundtrip(low, SR, 4000)) < 0.05
    assert ev.spectral_convergence_np(high, ev.resample_roundtrip(high, SR, 4000)) > 0.95


def test_octave_band_report_finds_a_12_db_cut_at_2_to_4_khz() -> None:
    x = noise(3.0)
    spec = np.fft.rfft(x.astype(np.float64))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    spec[(f >= 2000) & (f < 4000)] *= 10 ** (-12 / 20)
    y = np.fft.irfft(spec, len(x)).astype(np.float32)
    bands = ev.band_levels_db(x, y, SR)
    assert list(bands) == ["62.5-125", "125-250", "250-500", "500-1000", "1000-2000", "2000-4000", "4000-8000"]
    assert bands["2000-4000"] == pytest.approx(-12.0, abs=0.5)
    assert all(abs(v) < 0.5 for k, v in bands.items() if k != "2000-4000"), bands
    assert len(ev.band_levels_db(x[:8000], y[:8000], 12000)) == 6  # no 4-8 kHz band above a 6 kHz Nyquist


def test_chroma_hears_the_chord_not_the_octave_or_timbre() -> None:
    a_major = tone([220.0, 277.18, 329.63])  # A3 C#4 E4, sines
    a_major_up = tone([440.0, 554.37, 659.26], harmonics=4)  # A4 C#5 E5, a brighter timbre
    e_flat = tone([311.13, 392.0, 466.16])  # Eb4 G4 Bb4
    assert ev.chroma_distance(a_major, a_major_up, SR) < ev.chroma_distance(a_major, e_flat, SR)
    assert ev.chroma_distance(a_major, a_major_up, SR) < 0.25 < ev.chroma_distance(a_major, e_flat, SR)
    assert int(np.argmax(ev.chroma_mean(tone([440.0]), SR))) == 9  # A, with C = 0


def test_mfcc_mean_tells_noise_from_a_sine_whatever_the_level() -> None:
    n1, n2, sine = noise(2.0, 1), noise(2.0, 2, level=0.03), tone([1000.0])
    assert ev.mfcc_distance(n1, n2, SR) < 0.2 * ev.mfcc_distance(n1, sine, SR)
    assert ev.mfcc_mean(n1, SR).shape == (12,)


def test_log_mel_distance_and_envelope_correlation() -> None:
    n1, n2 = noise(3.0, 1), noise(3.0, 2)
    assert ev.log_mel_distance(n1, n2, SR) < 1.0
    assert ev.log_mel_distance(n1, ev.lowpass(n1, SR, 1000), SR) > 10.0
    t = np.arange(len(n1)) / SR
    swell = (0.1 + 0.9 * (t / t[-1]) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t))).astype(np.float32)  # a wavy crescendo
    assert ev.envelope_correlation(n1 * swell, n2 * swell, SR) > 0.9
    assert ev.envelope_correlation(n1 * swell, n2 * swell[::-1], SR) < 0.0
    assert math.isnan(ev.envelope_correlation(np.zeros_like(n1), n2, SR))  # a flat envelope has no correlation


def test_silence_detector_finds_a_one_and_a_half_second_gap() -> None:
    gap = np.concatenate([noise(1.0), np.zeros(int(1.5 * SR), np.float32), noise(1.0, 1)])
    assert ev.longest_silence(gap, SR) == pytest.approx(1.5, abs=0.051)
    assert ev.longest_silence(noise(3.0), SR) == 0.0
    quiet = np.concatenate([noise(1.0), noise(0.6, level=10 ** (-56 / 20)), noise(1.0)])  # -56 dBFS counts as silent
    assert ev.longest_silence(quiet, SR) == pytest.approx(0.6, abs=0.051)


def test_loudness_of_a_minus_20_dbfs_sine_is_minus_23_lufs() -> None:
    sine = tone([997.0], seconds=3.0, amp=0.1, sr=48000)  # BS.1770: a 0 dBFS 997 Hz sine reads -3.01 LUFS
    assert ev.loudness_lufs(sine, 48000) == pytest.approx(-23.01, abs=0.1)
    assert ev.rms_dbfs(sine) == pytest.approx(-23.01, abs=0.02)
    assert math.isnan(ev.loudness_lufs(sine[:1000], 48000))  # shorter than one 400-ms gating block
    assert ev.dc_offset(sine + 0.01) == pytest.approx(0.01, abs=1e-4)


def test_own_closer_fraction_counts_ordered_pairs() -> None:
    d = np.array([[0.1, 0.5, 0.05], [0.9, 0.2, 0.3], [0.4, 0.4, 0.4]])
    # row 0: 0.1 < 0.5 yes, < 0.05 no; row 1: both yes; row 2: ties are not closer
    assert ev.own_closer_fraction(d) == pytest.approx(3 / 6)
    # 3 continuations, 3 closer in all (of 6): under the null each counts 0, 1 or 2 alike; P(sum >= 3) = 17/27
    assert ev.own_closer_p_value(d) == pytest.approx(17 / 27)
    assert ev.own_closer_p_value(np.eye(3)) == pytest.approx(1.0)  # never closer
    assert ev.own_closer_p_value(1.0 - np.eye(3)) == pytest.approx(1 / 27)  # always closer: 2+2+2 only


def test_the_own_prime_test_finds_real_structure_and_not_noise() -> None:
    """Distances with a real own-prime pull come out significant over 17 primes; unrelated ones rarely do."""
    rng = np.random.default_rng(0)
    noise = [ev.own_closer_p_value(rng.random((17, 17))) for _ in range(200)]
    assert 0.01 < np.mean(np.array(noise) < 0.05) < 0.12  # about alpha, as a p-value should
    pulled = rng.random((17, 17)) - 0.3 * np.eye(17)
    assert ev.own_closer_p_value(pulled) < 0.001
    assert ev.level_bitrate(8, 1024, 22050) == pytest.approx(27562.5)


@pytest.fixture(scope="module")
def debug_models():
    from engine.weights.bundle import load_models

    torch.set_num_threads(1)
    return load_models("debug")


def test_codec_report_on_the_debug_model(debug_models) -> None:
    sr = debug_models.sample_rate
    clips = [np.asarray(np.resize(tone([220.0 * (i + 1)], 0.3, sr=sr), int(0.3 * sr)), np.float32) for i in range(2)]
    r = ev.codec_report(debug_models, clips)
    assert [lv["hop"] for lv in r["levels"]] == list(debug_models.vqvae.hop_lengths)
    for lv in r["levels"]:
        assert math.isfinite(lv["sc"]) and lv["sc"] >= 0 and 0 < lv["bandwidth_hz"] <= sr / 2
        assert lv["sc_bandwidth"] >= 0 and math.isfinite(lv["sc_other_codes"]) and "4000-8000" in lv["bands_db"]
    assert r["levels"][0]["bitrate_bps"] == pytest.approx(4 * r["levels"][1]["bitrate_bps"])


def test_continuation_report_runs_end_to_end_on_the_debug_model(debug_models) -> None:
    sr = debug_models.sample_rate
    primes = [(0.1 * np.random.default_rng(seed).standard_normal(sr)).astype(np.float32) for seed in (0, 1)]  # 1 s
    r = ev.continuation_report(debug_models, primes, seconds=1.0, seed=3, quality="draft")
    assert r["pairs"] == 2 and len(r["renders"]) == 2
    for take in r["renders"]:
        assert take["seconds"] == pytest.approx(1.0, abs=0.01)
        for key in ("rms_db", "rms_diff_db", "longest_silence_s", "dc", "prime_lufs", "wall_s"):
            assert math.isfinite(take[key]), (key, take)
        assert "lufs" in take and "lufs_diff" in take  # -inf for a silent take
    for key in ("chroma_own_closer", "mfcc_own_closer", "max_abs_rms_diff_db", "max_silence_s"):
        assert 0.0 <= r[key] < math.inf
    assert np.array(r["chroma_distance"]).shape == (2, 2) and set(r["ceiling"]) == {"chroma_own_closer", "mfcc_own_closer"}


def test_the_continuation_chain_scores_every_link_and_the_truth_keeps_its_prime(debug_models, tmp_path) -> None:
    """``benchmarks/eval_continuation_chain.py`` end to end on the debug model: three clips, each one chord held
    throughout, so the truth row (each clip's own next seconds) is closer in chroma to its own prime every time."""
    import soundfile as sf

    from benchmarks.eval_continuation_chain import main

    chords = ([220.0, 277.2, 329.6], [246.9, 311.1, 370.0], [261.6, 311.1, 392.0])
    for i, chord in enumerate(chords):
        sf.write(tmp_path / f"clip{i}.flac", tone(chord, 2.0, harmonics=3), SR)
    r = main(["--model", "debug", "--no-default-heldout", "--heldout", str(tmp_path), "--prime-seconds", "1.0",
              "--truth-seconds", "0.5", "--json", str(tmp_path / "chain.json")])
    levels = debug_models.levels
    assert list(r["rows"]) == ["truth", *[f"codec level {lv}" for lv in reversed(range(levels))],
                               *[f"upsampled from level {lv}" for lv in reversed(range(1, levels))],
                               "continuation draft", "continuation full"]
    assert r["pairs"] == 6 and r["rows"]["truth"]["chroma_own_closer"] == 1.0
    for row in r["rows"].values():
        assert 0.0 <= row["chroma_own_closer"] <= 1.0 and 0.0 < row["mfcc_own_closer_p"] <= 1.0
    assert (tmp_path / "chain.json").exists()
