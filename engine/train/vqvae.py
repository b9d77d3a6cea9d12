"""Training the VQ-VAE: Adam on reconstruction + spectral + commitment losses, EMA codebooks with restarts.

Gradients reach the encoders through the straight-through estimator; the codebooks are not trained by
gradient but by an exponential moving average of the encoder outputs assigned to them (paper 3.1). As
in the reference, a batch is quantised with the current codebook, then the codebook is updated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.model.bottleneck import EMACodebookTrainer
from engine.model.losses import vqvae_losses
from engine.model.vqvae import VQVAE


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 3e-4
    grad_clip: float = 100.0
    seed: int = 0


class VQVAETrainer:
    def __init__(self, model: VQVAE, cfg: TrainConfig = TrainConfig()):
        self.model, self.cfg = model, cfg
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.codebooks = [EMACodebookTrainer(book, model.cfg.mu, model.cfg.revival_threshold, self.generator)
                          for book in model.bottleneck.levels]
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.steps = 0

    def warm_start(self) -> None:
        """Train on from the model's current (e.g. shipped) weights and codebooks; the optimiser starts afresh."""
        for ema in self.codebooks:
            ema.warm_start()

    @staticmethod
    def _flat(latents: torch.Tensor) -> torch.Tensor:
        return latents.detach().permute(0, 2, 1).reshape(-1, latents.shape[1])  # (N*T, emb_width)

    def step(self, audio: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch of audio (N, T); returns float metrics."""
        self.model.train()
        if self.codebooks[0].k_sum is None:  # the reference initialises each codebook from the first batch's outputs
            with torch.no_grad():
                x = self.model._as_nct(audio)
                for enc, ema in zip(self.model.encoders, self.codebooks):
                    ema.init(self._flat(enc(x)))
        out = self.model(audio)
        losses = vqvae_losses(audio, out.recons, out.commit, self.model.cfg)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        metrics = {k: float(v.detach()) for k, v in losses.items()}
        for level, (ema, latents, codes) in enumerate(zip(self.codebooks, out.latents, out.codes)):
            for name, value in ema.update(self._flat(latents), codes.reshape(-1)).items():
                metrics[f"{name}_l{level + 1}"] = value
        self.steps += 1
        self.model.eval()
        return metrics
