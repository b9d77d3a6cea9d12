"""Dilated residual stacks (paper section 3.1; Dieleman et al. 2018).

Shared by the VQ-VAE encoders and decoders and by the upsamplers' conditioner on upper-level codes.

Two inference paths share the same parameters. ``forward`` is the reference one (NCT tensors, the
reference kernels; without autograd it updates its own temporaries in place, which changes no bit).
``forward_fast`` runs on the *fast layout*: (N, C, 1, T) tensors in ``torch.channels_last`` memory
(physically NTC), in a chosen dtype. PyTorch only hands channels-last tensors to oneDNN's brgemm
convolutions for 4-D inputs, and those need no reorder between layers and have no slow fallback for
large dilations; the results are fp32-rounding-close (~1e-6 relative), not bit-identical, to ``forward``.

``valid`` (fast path): the true length of a time axis that was zero-padded to a bucketed length
(``device.bucket_length``) so oneDNN's per-shape kernels are reused. Every convolution output is
zeroed past ``valid``, which is exactly the zero padding the unpadded sequence would see, so outputs
before ``valid`` do not depend on the padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """x + res_scale * conv1x1(relu(conv3_dilated(relu(x)))): the only nonlinearities of the codec."""

    def __init__(self, channels: int, hidden: int, dilation: int, res_scale: float = 1.0):
        super().__init__()
        self.dilation = dilation
        self.conv_dilated = nn.Conv1d(channels, hidden, 3, 1, padding=dilation, dilation=dilation)
        self.conv_pointwise = nn.Conv1d(hidden, channels, 1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T) -> (N, C, T)
        if torch.is_grad_enabled():
            h = self.conv_pointwise(F.relu(self.conv_dilated(F.relu(x))))
            return x + self.res_scale * h if self.res_scale != 1.0 else x + h
        # Same arithmetic without two of the four full-size temporaries (x + s*h == (s*h) + x exactly).
        h = self.conv_pointwise(F.relu_(self.conv_dilated(F.relu(x))))
        if self.res_scale != 1.0:
            h.mul_(self.res_scale)
        return h.add_(x)

    def forward_fast(self, x: torch.Tensor, dtype: torch.dtype, valid: int | None = None) -> torch.Tensor:
        """Inference only: ``forward`` on the fast layout (see the module docstring)."""
        h = conv_fast(F.relu(x), self.conv_dilated, dtype, relu=True, valid=valid)
        if self.res_scale != 1.0:
            return _zero_tail(conv_fast(h, self.conv_pointwise, dtype).mul_(self.res_scale).add_(x), valid)
        return conv_fast(h, self.conv_pointwise, dtype, add=x, valid=valid)


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

    def forward_fast(self, x: torch.Tensor, dtype: torch.dtype, valid: int | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block.forward_fast(x, dtype, valid)
        return x


def to_fast_layout(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, C, T) -> (N, C, 1, T) channels-last in ``dtype`` (a view when ``x`` is already NTC in memory)."""
    return x.unsqueeze(2).to(dtype=dtype, memory_format=torch.channels_last)


def from_fast_layout(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 1, T) -> contiguous float32 (N, C, T)."""
    return x[:, :, 0, :].to(torch.float32).contiguous()


_fused_state = {"ok": None}  # None: untried; False: the oneDNN fused ops failed once, never retried


def _fused_available(x: torch.Tensor) -> bool:
    if _fused_state["ok"] is False or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16):
        return False
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def conv_fast(x: torch.Tensor, conv: nn.Conv1d | nn.ConvTranspose1d, dtype: torch.dtype, relu: bool = False,
              add: torch.Tensor | None = None, valid: int | None = None) -> torch.Tensor:
    """Apply a ``Conv1d``/``ConvTranspose1d`` module to a fast-layout tensor: ``relu(conv(x))`` or ``conv(x) + add``.

    ``valid``: true length of the *output* time axis; positions from there on are set to zero.

    On CPU the ReLU or the residual add runs inside the oneDNN convolution (the post-ops PyTorch's
    inductor uses), saving a pass over memory; bf16 elementwise ops are slow in eager PyTorch, so this
    is most of the bf16 speed-up. If those private ops are missing or fail, plain ops are used from then
    on (same values in fp32; in bf16 the fused add rounds once instead of twice). The (tiny) weights
    are cast and re-laid out on every call, so the module itself stays fp32 and trainable.
    """
    if relu and add is not None:
        raise ValueError("conv_fast fuses a ReLU or an add, not both")
    w = conv.weight.unsqueeze(2).to(dtype=dtype, memory_format=torch.channels_last)
    b = None if conv.bias is None else conv.bias.to(dtype)
    if isinstance(conv, nn.ConvTranspose1d):
        y = F.conv_transpose2d(x, w, b, (1, conv.stride[0]), (0, conv.padding[0]), (0, conv.output_padding[0]),
                               conv.groups, (1, conv.dilation[0]))
        return _zero_tail(_unfused_tail(y, relu, add), valid)
    if isinstance(conv.padding, str):
        raise ValueError("conv_fast needs numeric padding")
    stride, padding, dilation = [1, conv.stride[0]], [0, conv.padding[0]], [1, conv.dilation[0]]
    if (relu or add is not None) and _fused_available(x):
        try:
            if relu:
                y = torch.ops.mkldnn._convolution_pointwise(x, w, b, padding, stride, dilation, conv.groups,
                                                            "relu", [], None)
            else:
                y = torch.ops.mkldnn._convolution_pointwise.binary(x, add, w, b, padding, stride, dilation,
                                                                   conv.groups, "add", None, None, [], None)
            _fused_state["ok"] = True
            return _zero_tail(y, valid)
        except (RuntimeError, NotImplementedError):
            if _fused_state["ok"]:  # worked before: a genuine error, not a missing kernel
                raise
            _fused_state["ok"] = False
    y = F.conv2d(x, w, b, stride, padding, dilation, conv.groups)
    return _zero_tail(_unfused_tail(y, relu, add), valid)


def _zero_tail(y: torch.Tensor, valid: int | None) -> torch.Tensor:
    if valid is not None and valid < y.shape[-1]:
        y[..., valid:] = 0
    return y


def _unfused_tail(y: torch.Tensor, relu: bool, add: torch.Tensor | None) -> torch.Tensor:
    if relu:
        return F.relu_(y)
    return y if add is None else y.add_(add)
