"""The sampler against independent references: the draw is the inverse CDF of softmax(logits / T) (T applied
once), the request's knobs reach it, every window of a long render sees its own labels, and the 1b_lyrics
branch (lyric prefix, music ids shifted by 79) samples what a teacher-forced pass over the result predicts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.generate import sampling
from engine.generate.render import default_sampling, render
from engine.generate.sampling import SamplingParams, Window, draw, draw_with_uniforms, sample_window
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.weights.debug import debug_models


@pytest.fixture(scope="module")
def models():
    return debug_models(seed=0)


def _params(**fields) -> SamplingParams:
    """Sampling parameters with the sequential (reference) window schedule where a schedule can be chosen."""
    if "schedule" in {f.name for f in dataclasses.fields(SamplingParams)}:
        fields.setdefault("schedule", "reference")
    return SamplingParams(**fields)


def _schedules() -> list[SamplingParams | None]:
    """The default sampling parameters, and the sequential schedule too when the default may be another."""
    return [None, _params()] if "schedule" in {f.name for f in dataclasses.fields(SamplingParams)} else [None]


def _reference_draw(logits: torch.Tensor, u: np.ndarray, temperature: float, top_k: int = 0,
                    top_p: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Inverse CDF of softmax(logits / T) in float64, written from the definition: (tokens, distance of each u to
    the nearest CDF step, to leave out rows a rounding difference could flip)."""
    z = logits.double().numpy() / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    if top_k:
        kth = np.sort(p, axis=1)[:, -top_k][:, None]
        p = np.where(p >= kth, p, 0.0)
    if top_p < 1.0:
        for row in p:
            order = np.argsort(-row, kind="stable")
            before = np.cumsum(row[order]) / row.sum() - row[order] / row.sum()  # mass of the better tokens
            row[order[before >= top_p]] = 0.0  # keep every token until the kept mass reaches top_p
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    tokens = np.array([np.searchsorted(c, x, side="right") for c, x in zip(cdf, u)])
    margin = np.abs(cdf - u[:, None]).min(axis=1)
    return tokens, margin


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.98, 0, 1.0), (0.5, 0, 1.0), (1.7, 0, 1.0),
                                                     (0.9, 12, 1.0), (0.9, 0, 0.8)])
def test_draw_is_the_inverse_cdf_of_softmax_of_logits_over_t(temperature, top_k, top_p):
    gen = torch.Generator().manual_seed(7)
    logits = 3.0 * torch.randn(600, 48, generator=gen)
    u = torch.rand(600, dtype=torch.float64, generator=gen)
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    got = draw_with_uniforms(logits, params, u).numpy()
    want, margin = _reference_draw(logits, u.numpy(), temperature, top_k, top_p)
    clear = margin > 1e-6  # a float32 softmax may round a u lying on a CDF step either way
    assert clear.mean() > 0.99
    assert np.array_equal(got[clear], want[clear]), f"{(got != want)[clear].sum()} of {clear.sum()} draws differ"
    # the temperature applied twice (or not at all) would move a few percent of the draws even at T = 0.98
    if temperature != 1.0:
        twice, _ = _reference_draw(logits, u.numpy(), temperature**2, top_k, top_p)
        assert (twice != want).sum() >= 5


def test_draw_takes_one_float64_uniform_per_row_from_that_rows_generator():
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(1))
    params = SamplingParams(temperature=0.8)
    got = draw(logits, params, [torch.Generator().manual_seed(s) for s in (10, 11, 12, 13)])
    u = np.array([torch.rand(1, dtype=torch.float64, generator=torch.Generator().manual_seed(s)).item()
                  for s in (10, 11, 12, 13)])
    assert got.tolist() == _reference_draw(logits, u, 0.8)[0].tolist()


def test_draw_follows_the_distribution():
    """Ten thousand draws of one row: frequencies within 5 sigma of softmax(logits / T)."""
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    n, t = 10000, 0.7
    u = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    counts = np.bincount(draw_with_uniforms(logits.expand(n, -1), SamplingParams(temperature=t), u).numpy(),
                         minlength=6)
    p = torch.softmax(logits.double() / t, 0).numpy()
    assert np.all(np.abs(counts / n - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-9), (counts / n, p)


def _generate(models, sampling_params=None, **fields):
    req = RenderRequest.from_fields("generate", {"seconds": 0.3, "seed": 11, "sample_rate": 44100, "channels": 1,
                                                 **fields})
    return req, render(models, req, lambda p: None, CancelToken(), None, sampling=sampling_params)


def test_the_requests_temperature_top_k_and_top_p_reach_the_sampler(models, monkeypatch):
    seen = []
    real = sampling.draw_with_uniforms

    def spy(logits, params, u):
        seen.append((params.temperature, params.top_k, params.top_p))
        return real(logits, params, u)

    monkeypatch.setattr(sampling, "draw_with_uniforms", spy)
    _generate(models, quality="draft", seconds=0.1, temperature=0.61, top_k=7, top_p=0.9)
    assert seen and set(seen) == {(0.61, 7, 0.9)}
    seen.clear()
    _generate(models, SamplingParams(temperature=1.5, top_k=3), quality="draft", seconds=0.1, temperature=0.7)
    assert seen and set(seen) == {(0.7, 0, 1.0)}  # the request's knobs win over the caller's defaults


def test_a_near_zero_temperature_samples_the_same_codes_for_every_seed(models):
    """What a producer hears: at T -> 0 every take is the one most likely continuation, at T = 1 they differ."""
    _, cold = _generate(models, quality="draft", takes=2, temperature=1e-6)
    _, warm = _generate(models, quality="draft", takes=2, temperature=1.0)
    assert cold[0].seed != cold[1].seed
    assert np.array_equal(cold[0].codes[2], cold[1].codes[2])
    assert (warm[0].codes[2] != warm[1].codes[2]).mean() > 0.5


@pytest.mark.parametrize("sampling_params", _schedules(), ids=lambda p: "default" if p is None else "reference")
def test_every_window_of_a_long_render_gets_its_own_label_offset(models, monkeypatch, sampling_params):
    labels_seen: dict[int, list[list[int]]] = {lv: [] for lv in range(3)}
    for level, prior in enumerate(models.priors):
        real = prior.conditioning

        def spy(y, *args, _real=real, _level=level, **kw):
            labels_seen[_level].extend(y.tolist())
            return _real(y, *args, **kw)

        monkeypatch.setattr(prior, "conditioning", spy)
    req, takes = _generate(models, sampling_params, seconds=0.3, quality="full")
    params = sampling_params or default_sampling(models)  # the windows render used
    total = 13312  # 0.3 s at 44.1 kHz, padded to whole top-level codes (128 samples)
    for level, prior in enumerate(models.priors):
        cfg = prior.cfg
        hop = max(1, int(params.hop_fractions[level] * cfg.n_ctx))
        tokens = total // cfg.raw_to_tokens
        starts = sorted({min(s, tokens - cfg.n_ctx) for s in range(0, tokens - cfg.n_ctx + hop, hop)})
        lanes = sampling.level_lanes(prior, 0, tokens, params, 1)
        if lanes:  # the parallel schedule: every lane's windows, from the lane's own start
            starts = sorted({lane.start + w.start for lane in lanes
                             for w in sampling.plan_windows(level, lane.length, cfg.n_ctx, hop / cfg.n_ctx)})
        assert len(starts) >= 3
        offsets = sorted({y[1] for y in labels_seen[level]})
        assert offsets == [s * cfg.raw_to_tokens for s in starts], f"level {level}"
        assert {y[2] for y in labels_seen[level]} == {cfg.n_ctx * cfg.raw_to_tokens}
        assert {y[0] for y in labels_seen[level]} == {44100 if level == 2 else total}  # the top's 1-s minimum
    assert len(takes[0].codes[2]) == total // 128


# ---------------------------------------------------------------- 1b_lyrics on the shared fixture


@pytest.mark.parity
def test_1b_lyrics_samples_music_codes_a_teacher_forced_pass_predicts():
    """The 1b_lyrics branch: sampled codes are music codes (never a lyric id) and, shifted by 79 behind the lyric
    prefix, every sampled token is the draw a teacher-forced pass over that sequence gives for the same uniforms."""
    from .prior_fixtures import fixture_prior, reference

    prior = fixture_prior("1b_lyrics_tiny")
    cfg = prior.cfg
    assert cfg.single_enc_dec and cfg.music_shift == 79
    y = torch.from_numpy(reference("1b_lyrics_tiny", "y.npy")).repeat(2, 1)
    known = torch.from_numpy(reference("1b_lyrics_tiny", "tokens.npy"))[:, :192].repeat(2, 1)
    # the random fixture's logits spread over ~60 nats: T = 40 makes every step a real draw among many codes
    window, params, seeds = Window(cfg.level, 0, 0, cfg.n_ctx), SamplingParams(temperature=40.0, top_k=400), [5, 6]
    out = sample_window(prior, y, known, cfg.n_ctx, params, seeds, window)
    assert out.shape == (2, cfg.n_ctx) and torch.equal(out[:, :192], known)
    new = out[:, 192:]
    assert int(new.min()) >= 0 and int(new.max()) < cfg.bins
    assert (new[0] != new[1]).float().mean() > 0.5 and len(set(new.flatten().tolist())) > 20  # real draws

    seq = prior.to_model_tokens(out, y)
    assert torch.equal(seq[:, :cfg.n_prime], y[:, -cfg.n_tokens:]) and torch.equal(seq[:, cfg.n_prime:], out + 79)
    with torch.no_grad():
        logits = prior.logits(seq, prior.conditioning(y))  # (2, n_prime + n_ctx, 79 + bins)
    u = sampling.uniforms(sampling.window_generators(seeds, window), cfg.n_ctx - 192)
    first = cfg.n_prime + 192
    predicted = torch.stack([draw_with_uniforms(logits[:, i, 79:], params, u[:, i - first]) + 79
                             for i in range(first, cfg.n_prime + cfg.n_ctx)], dim=1)
    assert torch.equal(predicted, seq[:, first:]), (predicted != seq[:, first:]).sum()
