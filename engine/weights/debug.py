"""Tiny random-weight models for fast CPU tests and demos (the official structure, shrunk)."""

from __future__ import annotations

import torch

from engine.model.config import PriorConfig, VQVAEConfig
from engine.model.vqvae import VQVAE

from .models import Models


def debug_vqvae_config(**overrides) -> VQVAEConfig:
    """Official hop lengths (8, 32, 128) with width 8, depth 2, 16-dim codes and 64 bins per level."""
    base = dict(width=8, depth=2, multipliers=(1, 1, 1), emb_width=16, l_bins=64, linf_k=256)
    return VQVAEConfig(**{**base, **overrides})


def debug_vqvae(seed: int = 0, **overrides) -> VQVAE:
    """A tiny VQ-VAE whose codebooks are filled with random encoder-scale vectors (not all zeros)."""
    torch.manual_seed(seed)
    model = VQVAE(debug_vqvae_config(**overrides)).eval()
    with torch.no_grad():
        for book in model.bottleneck.levels:
            book.codebook.normal_(0.0, 0.1)
    return model


def debug_prior_config(level: int, **overrides) -> PriorConfig:
    """A tiny prior with the official structure of its level (v2 labels, timing at the top)."""
    base = dict(level=level, n_ctx=64, width=32, depth=3, heads=2, attn_order=2, blocks=8,
                raw_to_tokens=(8, 32, 128)[level], bins=64, cond_width=16, cond_depth=2, cond_dilation_cycle=None)
    if level == 2:
        base.update(t_bins=16, min_duration=1.0, max_duration=600.0)
    return PriorConfig(**{**base, **overrides})


def debug_models(seed: int = 0) -> Models:
    """The debug VQ-VAE with three tiny random priors: real sampling, in seconds on a CPU."""
    from engine.model.prior import Prior
    torch.manual_seed(seed)
    priors = [Prior(debug_prior_config(level)).eval() for level in range(3)]
    with torch.no_grad():  # small embeddings keep the random priors' distributions broad, so takes differ
        for prior in priors:
            for module in prior.modules():
                if isinstance(module, torch.nn.Embedding):
                    module.weight.normal_(0.0, 0.05)
    return Models("debug", debug_vqvae(seed), priors, {"licence": "random weights (the debug test model): its output is noise, under no licence"})
