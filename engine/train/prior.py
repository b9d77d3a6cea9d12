"""Training one prior: Adam on ``Prior.losses`` (bits per token of the level's codes), teacher forcing.

Kept as small as ``VQVAETrainer``: the loss is the model's own, so the numbers printed in training
are the same bits per token that the held-out metric and the model card report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.model.prior import Prior


@dataclass(frozen=True)
class PriorTrainConfig:
    lr: float = 3e-4
    warmup: int = 100  # linear warm-up steps; transformers trained from scratch diverge without it
    total_steps: int = 3000  # cosine decay to 10 % of lr over this many steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0


@torch.no_grad()
def init_prior(prior: Prior) -> Prior:
    """GPT-style init for training from scratch: embeddings and the (tied) head N(0, 0.02).

    PyTorch's default N(0, 1) embeddings, read back through the tied output head, start the model at
    ~200 bits per token instead of ~log2(bins); the reference also initialises at 0.02 (its init_scale).
    The transformer's Conv1D layers already start at N(0, 0.02).
    """
    for module in prior.modules():
        if isinstance(module, torch.nn.Embedding):
            module.weight.normal_(0.0, 0.02)
        elif isinstance(module, torch.nn.Linear):
            module.weight.normal_(0.0, 0.02)
    return prior


class PriorTrainer:
    def __init__(self, prior: Prior, cfg: PriorTrainConfig = PriorTrainConfig()):
        self.prior, self.cfg = prior, cfg
        self.opt = torch.optim.AdamW(prior.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     betas=(0.9, 0.95))
        self.steps = 0

    def lr_at(self, step: int) -> float:
        c = self.cfg
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        frac = min(1.0, (step - c.warmup) / max(1, c.total_steps - c.warmup))
        return c.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def step(self, tokens: torch.Tensor, y: torch.Tensor, upper: torch.Tensor | None = None,
             weights: torch.Tensor | None = None) -> dict[str, float]:
        """One step on codes (N, T), labels y (N, y_len), the level-above codes and per-token loss weights
        (``Prior.losses``); returns float metrics."""
        self.prior.train()
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.steps)
        losses = self.prior.losses(tokens, y, upper, weights)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        norm = torch.nn.utils.clip_grad_norm_(self.prior.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.steps += 1
        self.prior.eval()
        return {"loss": float(losses["loss"].detach()), "bpd": float(losses["bpd"].detach()), "grad_norm": float(norm),
                "lr": self.opt.param_groups[0]["lr"]}

    @torch.no_grad()
    def evaluate(self, tokens: torch.Tensor, y: torch.Tensor, upper: torch.Tensor | None = None,
                 weights: torch.Tensor | None = None) -> float:
        """Held-out bits per token (no update)."""
        self.prior.eval()
        return float(self.prior.losses(tokens, y, upper)["bpd"])

    def state_dict(self) -> dict:
        return {"model": self.prior.state_dict(), "opt": self.opt.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.prior.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.steps = int(state["steps"])
