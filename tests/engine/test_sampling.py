"""Sampling modes on tiny random-weight models: shapes, primes kept, seeds, re-rendition, resume."""

import numpy as np
import pytest
import torch

from engine.dev.demo import example_path
from engine.generate.codec import encode_audio
from engine.generate.render import render
from engine.generate.sampling import (
    LevelJob,
    SamplingParams,
    draw,
    filter_logits,
    plan_windows,
    sample_level,
    tokens_to_sample,
)
from engine.generate.source import prompt_length
from engine.io import audio
from engine.io.codes import CodesFile
from engine.request import RenderRequest, RequestError
from engine.runtime.progress import Cancelled, CancelToken
from engine.weights.debug import debug_models


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops on a shared 2-core machine run faster on one thread
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def models():
    return debug_models(seed=0)


def _req(mode, **fields):
    base = {"seconds": 0.3, "seed": 11, "sample_rate": 44100, "channels": 1}
    if mode != "generate":
        base.update(source=str(example_path()), start=1.0, length=0.5)
    return RenderRequest.from_fields(mode, {**base, **fields})


def _render(models, req, workdir=None, progress=lambda p: None, cancel=None):
    return render(models, req, progress, cancel or CancelToken(), workdir)


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    # top_p keeps the smallest prefix whose mass reaches p, including the token that crosses it
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.4)).tolist() == [[False, True, True, True]]
    assert torch.equal(filter_logits(logits), logits)


def test_each_row_draws_from_its_own_generator():
    logits = torch.randn(3, 50)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    params = SamplingParams(temperature=1.5)
    batch = draw(logits, params, gens([1, 2, 3]))
    alone = draw(logits[1:2], params, gens([2]))
    assert batch[1] == alone[0]


def test_windows_follow_the_reference_hops():
    windows = plan_windows(2, total=100, n_ctx=64, hop_fraction=0.125)
    assert [w.start for w in windows] == [0, 8, 16, 24, 32, 36]
    assert all(w.end - w.start == 64 for w in windows)
    assert plan_windows(0, total=40, n_ctx=64, hop_fraction=0.5)[0].end == 40


def test_ancestral_and_primed_level_sampling(models):
    top = models.top
    y = torch.zeros(2, top.cfg.y_len, dtype=torch.long)
    y[:, 0], y[:, 2], y[:, 4:] = 44100 * 5, top.cfg.n_ctx * 128, -1
    job = LevelJob(top, total=150, labels=lambda start: y)
    params = SamplingParams()
    with torch.inference_mode():
        fresh = sample_level(job, torch.zeros(2, 0, dtype=torch.long), params, [1, 2])
        prime = fresh[:, :40]
        counted = []
        continued = sample_level(job, prime, params, [3, 4], on_token=lambda: counted.append(1))
    assert fresh.shape == continued.shape == (2, 150)
    assert fresh.dtype == torch.long and 0 <= int(fresh.min()) and int(fresh.max()) < top.cfg.bins
    assert torch.equal(continued[:, :40], prime)  # the prime is kept, the continuation starts right after it
    assert len(counted) == tokens_to_sample(top, 40, 150, params.hop_fractions[2])


@pytest.mark.parametrize("mode", ["generate", "continue", "prime", "rerender"])
@pytest.mark.parametrize("quality", ["draft", "full"])
def test_every_mode_renders_the_requested_length_rate_and_channels(models, mode, quality):
    req = _req(mode, quality=quality, takes=2, sample_rate=48000, channels=2, position=4.0)
    takes = _render(models, req)
    expected_seconds = 0.5 if mode == "rerender" else 0.3
    assert [t.take for t in takes] == [1, 2] and [t.seed for t in takes] == [11, 12]
    for t in takes:
        assert t.audio.shape == (round(expected_seconds * 48000), 2) and t.audio.dtype == np.float32
        assert np.abs(t.audio).max() <= 1.0
        assert t.position == pytest.approx(4.5 if mode in ("continue", "prime") else 4.0)


def test_bars_at_a_tempo_set_the_length(models):
    takes = _render(models, _req("generate", quality="draft", tempo=240.0, bars=0.5))  # half a bar at 240 BPM
    assert takes[0].audio.shape[0] == round(0.5 * 44100)


def test_continuation_keeps_the_encoded_prompt(models):
    takes = _render(models, _req("continue", quality="full"))
    x = audio.to_model_input(audio.read_region(example_path(), 1.0, 0.5))
    prime = x[len(x) - prompt_length(models, len(x)):]
    assert 0 < len(prime) <= len(x) and len(prime) % 128 == 0
    expected = encode_audio(models.vqvae, prime)
    for level in range(3):
        n = expected[level].shape[1]
        assert np.array_equal(takes[0].codes[level][:n], expected[level][0])
        assert len(takes[0].codes[level]) == n + round(0.3 * 44100 / 128 + 0.4999) * 128 // models.vqvae.hop_lengths[level]


def test_rerender_keeps_the_codes_above_and_resamples_below(models):
    x = audio.to_model_input(audio.read_region(example_path(), 1.0, 0.5))
    encoded = encode_audio(models.vqvae, x)
    takes = _render(models, _req("rerender", quality="full", level=1, artist="the beatles"))
    assert np.array_equal(takes[0].codes[2], encoded[2][0])
    assert not np.array_equal(takes[0].codes[1], encoded[1][0])
    assert takes[0].codes[1].shape == encoded[1][0].shape


def test_seed_reproduces_a_take_alone_or_in_a_batch(models):
    batch = _render(models, _req("generate", quality="draft", takes=3, seed=100))
    alone = _render(models, _req("generate", quality="draft", takes=1, seed=101))
    other = _render(models, _req("generate", quality="draft", takes=1, seed=7))
    assert np.array_equal(batch[1].codes[2], alone[0].codes[2])
    np.testing.assert_allclose(batch[1].audio, alone[0].audio, atol=1e-5)  # batched convs round differently
    assert (batch[0].codes[2] != other[0].codes[2]).mean() > 0.5


@pytest.mark.slow
def test_resume_after_interruption_equals_an_uninterrupted_run(models, tmp_path):
    req = _req("generate", quality="full", seconds=0.4)
    reference = _render(models, req, tmp_path / "straight")
    cancel = CancelToken()

    def stop_in_the_middle(p):  # once the first level-1 window is saved
        if p.level == 1 and (tmp_path / "interrupted" / "codes_level1.npz").exists():
            cancel.cancel()

    with pytest.raises(Cancelled):
        _render(models, req, tmp_path / "interrupted", stop_in_the_middle, cancel)
    saved = sorted(f.name for f in (tmp_path / "interrupted").iterdir())
    assert "codes_level2.npz" in saved and "codes_level1.npz" in saved and "codes_level0.npz" not in saved
    partial = CodesFile.load(tmp_path / "interrupted" / "codes_level1.npz").codes[1]
    assert 0 < partial.shape[1] < len(reference[0].codes[1])
    resumed = _render(models, req, tmp_path / "interrupted")
    for a, b in zip(reference, resumed):
        assert np.array_equal(a.audio, b.audio)


def test_bad_requests_raise_protocol_errors(models, tmp_path):
    with pytest.raises(RequestError) as err:
        _render(models, _req("continue", source=str(tmp_path / "gone.wav")))
    assert err.value.code == "source_not_found"
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(RequestError) as err:
        _render(models, _req("continue", source=str(tmp_path / "text.wav")))
    assert err.value.code == "not_audio"
    with pytest.raises(RequestError) as err:
        _render(models, _req("generate", artist="Beatels"))
    assert err.value.code == "unknown_label" and "the_beatles" in str(err.value)


def test_lengths_beyond_the_cap_and_oversized_genre_bags_are_bad_values(models):
    for fields in ({"seconds": 301}, {"bars": 64, "tempo": 40}):
        with pytest.raises(RequestError) as err:
            RenderRequest.from_fields("generate", fields)
        assert err.value.code == "bad_value" and "300" in str(err.value)
    with pytest.raises(RequestError) as err:  # the v2 genre bag holds 5 words
        _render(models, _req("generate", quality="draft", genre="rock pop soul jazz blues folk"))
    assert err.value.code == "bad_value" and err.value.field == "genre"
