"""The VQ bottleneck: one codebook of ``l_bins`` vectors per level (paper section 3.1).

Inference needs only quantise (nearest code in L2) and dequantise (lookup). Training keeps the
codebook as an exponential moving average of the encoder outputs assigned to each code and restarts
dead codes with random current encoder outputs (``EMACodebookTrainer``), as the paper describes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Codebook(nn.Module):
    def __init__(self, bins: int, width: int):
        super().__init__()
        self.bins, self.width = bins, width
        self.register_buffer("codebook", torch.zeros(bins, width))

    def quantise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (M, width) -> codes (M,) int64 and the squared distance to the chosen code (M,).

        The distance is ||x||^2 - 2 x.k + ||k||^2 in exactly this order, as the reference computes it,
        so that near-ties resolve to the same code in float32.
        """
        k_t = self.codebook.t()
        distance = (
            torch.sum(x**2, dim=-1, keepdim=True) - 2 * torch.matmul(x, k_t) + torch.sum(k_t**2, dim=0, keepdim=True)
        )
        min_distance, codes = torch.min(distance, dim=-1)
        return codes, min_distance

    def dequantise(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (...) -> vectors (..., width)."""
        return F.embedding(codes, self.codebook)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, width, T) encoder output -> codes (N, T)."""
        n, _, t = x.shape
        codes, _ = self.quantise(x.permute(0, 2, 1).reshape(n * t, self.width))
        return codes.view(n, t)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (N, T) -> quantised latents (N, width, T)."""
        return self.dequantise(codes).permute(0, 2, 1).contiguous()


class Bottleneck(nn.Module):
    def __init__(self, levels: int, bins: int, width: int):
        super().__init__()
        self.levels = nn.ModuleList(Codebook(bins, width) for _ in range(levels))

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Training/eval pass: per level codes (N, T), straight-through latents (N, C, T) and commit loss ()."""
        codes, quantised, commit = [], [], []
        for book, x in zip(self.levels, xs):
            z = book.encode(x)
            x_q = book.decode(z)
            commit.append(torch.norm(x_q.detach() - x) ** 2 / x.numel())
            quantised.append(x + (x_q - x).detach())  # straight-through: identity going forward
            codes.append(z)
        return codes, quantised, commit


class EMACodebookTrainer:
    """EMA codebook updates with random restarts of dead codes, for one ``Codebook``.

    The reference keeps this state on the module; here it lives beside it so inference models carry
    only the codebook buffer. Counts below ``threshold`` mark a dead code, which is replaced by a random
    encoder output of the current batch (tiled with small noise when the batch is smaller than the book).
    """

    def __init__(self, book: Codebook, mu: float = 0.99, threshold: float = 1.0, generator: torch.Generator | None = None):
        self.book, self.mu, self.threshold, self.generator = book, mu, threshold, generator
        self.k_sum: torch.Tensor | None = None
        self.k_elem: torch.Tensor | None = None

    def _random_vectors(self, x: torch.Tensor) -> torch.Tensor:
        bins = self.book.bins
        if x.shape[0] < bins:
            repeats = (bins + x.shape[0] - 1) // x.shape[0]
            x = x.repeat(repeats, 1)
            x = x + torch.randn(x.shape, generator=self.generator, device=x.device) * (0.01 / x.shape[1] ** 0.5)
        perm = torch.randperm(x.shape[0], generator=self.generator, device=x.device)
        return x[perm][:bins]

    @torch.no_grad()
    def init(self, x: torch.Tensor) -> None:
        """Fill the codebook with random encoder outputs x: (M, width)."""
        k = self._random_vectors(x)
        self.book.codebook.copy_(k)
        self.k_sum = k.clone()
        self.k_elem = torch.ones(self.book.bins, device=x.device)

    @torch.no_grad()
    def warm_start(self) -> None:
        """Continue from the codebook as it is (trained weights): every code alive with a count of one."""
        self.k_sum = self.book.codebook.clone()
        self.k_elem = torch.ones(self.book.bins, device=self.k_sum.device)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor) -> dict[str, float]:
        """One EMA step from encoder outputs x: (M, width) and their codes (M,). Returns usage metrics."""
        if self.k_sum is None:
            raise RuntimeError("EMACodebookTrainer.update() before init(): initialise from a first batch")
        bins = self.book.bins
        onehot = torch.zeros(bins, x.shape[0], device=x.device)
        onehot.scatter_(0, codes.view(1, -1), 1)
        batch_sum, batch_elem = onehot @ x, onehot.sum(dim=-1)
        k_rand = self._random_vectors(x)
        self.k_sum = self.mu * self.k_sum + (1.0 - self.mu) * batch_sum
        self.k_elem = self.mu * self.k_elem + (1.0 - self.mu) * batch_elem
        alive = (self.k_elem >= self.threshold).float().unsqueeze(1)
        self.book.codebook.copy_(alive * (self.k_sum / self.k_elem.unsqueeze(1)) + (1 - alive) * k_rand)
        prob = batch_elem / batch_elem.sum()
        return {
            "entropy": float(-(prob * torch.log(prob + 1e-8)).sum()),
            "used_in_batch": int((batch_elem >= self.threshold).sum()),
            "alive": int(alive.sum()),
            "restarted": int(bins - alive.sum()),
        }
