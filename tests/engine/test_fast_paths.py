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
