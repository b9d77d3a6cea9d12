"""Tiny random-weight models for fast CPU tests and demos (the official structure, shrunk)."""

from __future__ import annotations

import torch

from .config import VQVAEConfig
from .vqvae import VQVAE


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
