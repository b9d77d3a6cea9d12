"""Official-size models with random weights, built where they will run: no download, no second copy.

Benchmarks and the GPU check need real sizes (memory traffic is what they measure), not trained weights.
The model is made on the meta device, materialised on the target device, then filled in place.
"""

from __future__ import annotations

import torch

from engine.model.config import PriorConfig, VQVAEConfig
from engine.model.prior import Prior
from engine.model.transformer import Conv1D
from engine.model.vqvae import VQVAE


@torch.no_grad()
def _fill(module: torch.nn.Module, gen: torch.Generator) -> None:
    """In place, on the module's device (``gen`` lives there too): Conv1D/Linear/conv weights N(0, 0.02), embeddings N(0, 0.02) (positions 0.01), norms 1/0, biases 0."""
    for name, mod in module.named_modules():
        if isinstance(mod, Conv1D):
            mod.w.normal_(0.0, 0.02, generator=gen)
            mod.b.zero_()
        elif isinstance(mod, torch.nn.LayerNorm):
            mod.weight.fill_(1.0)
            mod.bias.zero_()
        elif isinstance(mod, torch.nn.Embedding):
            mod.weight.normal_(0.0, 0.01 if name.endswith("pos_emb") else 0.02, generator=gen)
        elif isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            mod.weight.normal_(0.0, 0.02, generator=gen)
            if mod.bias is not None:
                mod.bias.zero_()
    for buf_name, buf in module.named_buffers():
        if buf.is_floating_point() and "codebook" in buf_name:
            buf.normal_(0.0, 0.1, generator=gen)


def random_prior(cfg: PriorConfig, device: str | torch.device = "cpu", seed: int = 0) -> Prior:
    """A prior of ``cfg``'s size with random weights on ``device`` (tied head kept tied)."""
    with torch.device("meta"):
        prior = Prior(cfg)
    prior = prior.to_empty(device=device).eval()
    if not cfg.merged_decoder:  # to_empty unties the head from the embedding
        prior.lm.x_out.weight = prior.lm.x_emb.weight
    _fill(prior, torch.Generator(device=device).manual_seed(seed))
    return prior


def random_vqvae(cfg: VQVAEConfig = VQVAEConfig(), device: str | torch.device = "cpu", seed: int = 0) -> VQVAE:
    with torch.device("meta"):
        model = VQVAE(cfg)
    model = model.to_empty(device=device).eval()
    _fill(model, torch.Generator(device=device).manual_seed(seed))
    return model


def random_labels(cfg: PriorConfig, batch: int, device: str | torch.device = "cpu", seed: int = 1) -> torch.Tensor:
    """Labels y (batch, y_len) to drive a random prior: a 60-s song at 44.1 kHz, offset 0, one window, artist 0,
    genre 0 (other genre slots empty), and random lyric ids when the prior has lyrics."""
    y = torch.full((batch, cfg.y_len), -1, dtype=torch.long)
    y[:, 0], y[:, 1], y[:, 2], y[:, 3], y[:, 4] = 60 * 44100, 0, cfg.n_ctx * cfg.raw_to_tokens, 0, 0
    if cfg.n_tokens:
        y[:, 4 + cfg.max_bow_genre_size:] = torch.randint(1, cfg.n_vocab, (batch, cfg.n_tokens),
                                                         generator=torch.Generator().manual_seed(seed))
    return y.to(device)
