"""Dilated residual stacks (paper section 3.1; Dieleman et al. 2018).

Shared by the VQ-VAE encoders and decoders and by the upsamplers' conditioner on upper-level codes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    """x + res_scale * conv1x1(relu(conv3_dilated(relu(x)))): the only nonlinearities of the codec."""

    def __init__(self, channels: int, hidden: int, dilation: int, res_scale: float = 1.0):
        super().__init__()
        self.dilation = dilation
        self.conv_dilated = nn.Conv1d(channels, hidden, 3, 1, padding=dilation, dilation=dilation)
        self.conv_pointwise = nn.Conv1d(hidden, channels, 1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T) -> (N, C, T)
        h = self.conv_pointwise(F.relu(self.conv_dilated(F.relu(x))))
        return x + self.res_scale * h if self.res_scale != 1.0 else x + h


def dilations(depth: int, growth_rate: int, cycle: int | None, reverse: bool) -> list[int]:
    """Dilation of each block in application order: growth**i (or growth**(i % cycle)), maybe reversed."""
    ds = [growth_rate ** (i if cycle is None else i % cycle) for i in range(depth)]
    return ds[::-1] if reverse else ds


class Resnet1D(nn.Module):
    def __init__(
        self,
        channels: int,
        depth: int,
        m_conv: float = 1.0,
        growth_rate: int = 1,
        cycle: int | None = None,
        scale_residual: bool = False,
        reverse: bool = False,
    ):
        super().__init__()
        res_scale = 1.0 / math.sqrt(depth) if scale_residual else 1.0
        hidden = int(m_conv * channels)
        self.blocks = nn.ModuleList(
            ResBlock(channels, hidden, d, res_scale) for d in dilations(depth, growth_rate, cycle, reverse)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x
