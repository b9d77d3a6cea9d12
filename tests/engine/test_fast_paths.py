"""Opt-in fast paths of the prior: the fixed-shape step and reduced-precision projections.

The fixed-shape decoder (what ``SamplingParams(compile=True)`` compiles) must give the KV-cache step's
logits; bf16 and int8 projections must stay close to fp32 (bounds from benchmarks/README.md, with margin).
"""

import copy

import pytest
import torch

from engine.model.fast.projections import cast_projections, quantize_projections
from engine.model.fast.static_step import StaticDecoder

from .prior_fixtures import fixture_prior, reference


def _step_logits(prior, steps: int = 40, decoder: bool = False) -> torch.Tensor:
    """Logits of ``steps`` single-token steps after a 16-token prefill, on the fixture's tokens."""
    tokens = torch.from_numpy(reference("5b_tiny", "tokens.npy"))
    y = torch.from_numpy(reference("5b_tiny", "y.npy"))
    with torch.inference_mode():
        cache = prior.start_cache(prior.conditioning(y))
        out = [prior.prefill(cache, tokens[:, :16])[:, -1]]
        step = StaticDecoder(prior, cache) if decoder else (lambda tok: prior.step(cache, tok)[:, -1])
        for t in range(16, 16 + steps):
            out.append(step(tokens[:, t : t + 1]))
    return torch.stack(out, dim=1)


@pytest.mark.parity
def test_fixed_shape_decoder_equals_the_cache_step():
    prior = fixture_prior("5b_tiny")
    ref = _step_logits(prior)
    fast = _step_logits(prior, decoder=True)
    assert (fast - ref).abs().max() <= 1e-5 * ref.abs().max()


@pytest.mark.parity
@pytest.mark.parametrize("name", ["5b_tiny", "1b_lyrics_tiny"])
def test_the_steps_own_draw_is_the_samplers_draw(name):
    """``step_and_draw`` draws in the step's graph what ``draw_with_uniforms`` draws from the same logits: the
    temperature applied once, music tokens only (1b_lyrics: shifted past the lyric ids), the same uniform."""
    from engine.generate.sampling import SamplingParams, draw_with_uniforms

    prior = fixture_prior(name)
    shift = prior.cfg.music_shift
    y = torch.from_numpy(reference(name, "y.npy"))
    n = y.shape[0]
    gen = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        cache = prior.start_cache(prior.conditioning(y))
        prior.prefill(cache, prior.to_model_tokens(torch.zeros((n, 1), dtype=torch.long), y))
        step = StaticDecoder(prior, cache)
        token = torch.full((n, 1), shift)
        for temperature in (0.5, 0.98, 1.0, 1.7):
            u = torch.rand(n, dtype=torch.float64, generator=gen)
            logits, drawn = step.step_and_draw(token, u, torch.tensor(temperature))
            want = draw_with_uniforms(logits[:, shift:], SamplingParams(temperature=temperature), u)[:, None] + shift
            assert torch.equal(drawn, want) and drawn.min() >= shift
            token = drawn
    assert (shift > 0) == (name == "1b_lyrics_tiny")  # the lyric-id shift is exercised, not assumed


@pytest.mark.parametrize("name", ["5b_tiny", "1b_lyrics_tiny"])
def test_unrolled_steps_draw_what_single_steps_draw(name):
    """``draw_steps`` (K steps in one graph, each drawn token fed to the next) gives the tokens, and leaves the
    cache, that K ``step_and_draw`` calls with the same uniforms do: positions, uniforms and the shift line up."""
    from engine.model.fast.static_step import steps_per_call

    prior = fixture_prior(name)
    shift = prior.cfg.music_shift
    y = torch.from_numpy(reference(name, "y.npy"))
    n, k = y.shape[0], 8
    u = torch.rand((2 * k, n), dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    temperature = torch.tensor(0.9)
    runs = []
    for unrolled in (False, True):
        with torch.inference_mode():
            cache = prior.start_cache(prior.conditioning(y))
            prior.prefill(cache, prior.to_model_tokens(torch.zeros((n, 1), dtype=torch.long), y))
            step = StaticDecoder(prior, cache)
            token, drawn = torch.full((n, 1), shift), []
            if unrolled:
                drawn.append(step.draw_steps(token, u[:k], temperature))
                token = drawn[-1][:, -1:]
            else:
                for i in range(k):
                    token = step.step_and_draw(token, u[i], temperature)[1]
                    drawn.append(token)
            for i in range(k, 2 * k):  # single steps after the block: the cache and position moved on alike
                token = step.step_and_draw(token, u[i], temperature)[1]
                drawn.append(token)
            runs.append(torch.cat(drawn, dim=1))
    assert runs[0].shape == (n, 2 * k) and torch.equal(runs[0], runs[1]) and runs[0].min() >= shift
    assert len(set(runs[0][0].tolist())) > 1  # really drawn, not one token repeated
    assert steps_per_call(prior) == 8  # small CPU priors take the unrolled call in the sampler


@pytest.mark.parity
@pytest.mark.parametrize("convert,max_std,min_agree", [
    (lambda p: cast_projections(p, torch.bfloat16), 0.2, 0.9),
    (lambda p: quantize_projections(p, "w8a16"), 0.4, 0.8),
])
def test_reduced_precision_projections_stay_close(convert, max_std, min_agree):
    prior = fixture_prior("5b_tiny")
    ref = _step_logits(prior)
    fast = _step_logits(convert(copy.deepcopy(prior)))
    err = (fast - ref).abs().max() / ref.std()
    agree = (fast.argmax(-1) == ref.argmax(-1)).float().mean()
    assert err <= max_std and agree >= min_agree, (float(err), float(agree))
    assert err > 0  # really a different arithmetic, not the fp32 path again


@pytest.mark.slow
def test_warm_compile_never_waits_and_serves_compiled_once_ready():
    """``compile="warm"``: the first window runs eager and queues its shape; once the background compiler has
    it, the same shape runs compiled with the same draws (logits agree to float rounding)."""
    from engine.generate.sampling import SamplingParams, Window, sample_window
    from engine.model.fast.static_step import WARM, WarmSteps
    from engine.weights.debug import debug_models

    prior = debug_models().priors[2]
    cfg = prior.cfg
    y = torch.zeros((2, cfg.y_len), dtype=torch.long)
    y[:, 0], y[:, 2] = 60 * cfg.sample_rate, cfg.n_ctx * cfg.raw_to_tokens
    known = torch.zeros((2, 4), dtype=torch.long)
    params = SamplingParams(compile="warm")
    window = Window(2, 0, 0, cfg.n_ctx)
    assert not WARM.ready(prior, 2, None)
    eager = sample_window(prior, y, known, cfg.n_ctx, params, [1, 2], window)
    assert WARM.wait(timeout=300) and not WARM.errors, WARM.errors
    assert WARM.ready(prior, 2, None) and not WARM.ready(prior, 3, None)
    compiled = sample_window(prior, y, known, cfg.n_ctx, params, [1, 2], window)
    assert (compiled == eager).float().mean() > 0.95
    with pytest.raises(ValueError, match="compile"):
        SamplingParams(compile="sometimes")
    assert WarmSteps.MAX_SHAPES >= 2


@pytest.mark.parametrize("block", [1, 3, 8])
def test_the_sampler_draws_the_same_tokens_whatever_the_block(monkeypatch, block):
    """``sample_rows`` with the fused draw, steps unrolled ``block`` at a time (graphs left eager here, so the
    arithmetic is op for op the same): every row's known tokens kept, the same tokens drawn as one step per call,
    also where rows know different numbers of tokens (the lanes' first window) and near the window's end."""
    from engine.generate.sampling import SamplingParams, sample_rows
    from engine.model.fast import static_step
    from engine.weights.debug import debug_models

    prior = debug_models().priors[2]
    cfg = prior.cfg
    y = torch.zeros((3, cfg.y_len), dtype=torch.long)
    y[:, 0], y[:, 2] = 60 * cfg.sample_rate, cfg.n_ctx * cfg.raw_to_tokens
    known = torch.randint(0, cfg.bins, (3, 12), generator=torch.Generator().manual_seed(5))
    known_len = torch.tensor([2, 12, 7])
    monkeypatch.setattr(static_step, "_compiled", lambda prior, fn: fn)  # eager graphs, exact comparison

    def sample(k: int) -> torch.Tensor:
        monkeypatch.setattr(static_step, "steps_per_call", lambda prior: k)
        gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
        return sample_rows(prior, y, known, known_len, 45, SamplingParams(compile=True, temperature=0.9), gens)

    one, blocked = sample(1), sample(block)
    assert blocked.shape == (3, 45) and torch.equal(one, blocked)
    for row, n in enumerate(known_len.tolist()):
        assert torch.equal(blocked[row, :n], known[row, :n])


@pytest.mark.slow
def test_a_window_shorter_than_the_context_runs_the_warm_graph_without_compiling():
    """Lanes are half a context long: the compiled shape warmed on a whole-context dummy decode must serve them
    (the upper conditioning is padded to the context), or every new lane length would compile inside a request."""
    import torch._dynamo

    from engine.generate.sampling import SamplingParams, Window, sample_window
    from engine.model.fast.static_step import _compile_shape
    from engine.weights.debug import debug_models

    prior = debug_models().priors[0]
    cfg = prior.cfg
    _compile_shape(prior, 2, None)
    y = torch.zeros((2, cfg.y_len), dtype=torch.long)
    y[:, 0], y[:, 2] = 60 * cfg.sample_rate, cfg.n_ctx * cfg.raw_to_tokens
    length = cfg.n_ctx // 2 + 4
    upper = torch.randint(0, cfg.bins, (2, -(-length // cfg.upsampling)), generator=torch.Generator().manual_seed(6))
    with torch._dynamo.config.patch(error_on_recompile=True):
        z = sample_window(prior, y, torch.zeros((2, 0), dtype=torch.long), length, SamplingParams(compile=True),
                          [1, 2], Window(0, 0, 0, length), upper[:, : length // cfg.upsampling])
    assert z.shape == (2, length)
