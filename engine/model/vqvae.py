"""Hierarchical VQ-VAE (paper section 3.1): three independent encoder/decoder pairs over raw audio.

Level L's encoder reads the waveform through L+1 downsampling blocks (hop 8, 32, 128 samples per code);
its decoder turns that level's codes alone back into audio. Codes at the top are coarse, at the bottom
best. Tensors inside are NCT (batch, channels, time); the public API takes audio as (N, T) or (N, T, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from engine.runtime.device import Precision, bucket_length, compute_dtype, inference_context

from .bottleneck import Bottleneck, Codebook
from .config import VQVAEConfig
from .output_eq import equalise
from .resnet import Resnet1D, conv_fast, from_fast_layout, to_fast_layout

# Rows of latents quantised per Codebook.quantise call in VQVAE.encode: the (rows x 2048) float32
# distance block then stays in L2 (2 MB) instead of a 135 MB matrix for 3 s of audio at level 0.
_QUANTISE_ROWS = 256
# Audio samples per chunk of ``encode``/``decode`` (plus the halo each side; at least the halo's length): memory
# stays bounded for any length, and a caller's ``on_chunk`` (progress, cancel) runs every chunk: ~0.1 s for the
# default codec on one CPU core, ~2 s for the official level 0, whose receptive field is a second either side.
CHUNK_SAMPLES = 1 << 16

ALIGN_CODES = 64  # chunks start at multiples of this many codes (see ``_chunks``)
MIN_CHUNK_CODES = 1024  # and are at least this long: oneDNN convolves narrower inputs another way (~1e-6 apart)

ChunkCallback = Callable[[int, int], None]  # (chunks done, chunks in all); may raise (a cancel) to stop


class DownStage(nn.Module):
    """Strided conv (kernel 2*stride) halving time, then a dilated resnet."""

    def __init__(self, in_channels: int, width: int, stride: int, resnet: Resnet1D):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, width, stride * 2, stride, stride // 2)
        self.resnet = resnet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnet(self.conv(x))


class UpStage(nn.Module):
    """A dilated resnet (dilations reversed), then a transposed conv doubling time."""

    def __init__(self, width: int, out_channels: int, stride: int, resnet: Resnet1D):
        super().__init__()
        self.resnet = resnet
        self.conv_t = nn.ConvTranspose1d(width, out_channels, stride * 2, stride, stride // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_t(self.resnet(x))


def _resnet(width: int, depth: int, m_conv: float, growth: int, cycle: int | None, scale: bool, reverse: bool) -> Resnet1D:
    return Resnet1D(width, depth, m_conv, growth, cycle, scale_residual=scale, reverse=reverse)


class EncoderBlock(nn.Module):
    """``down_t`` DownStages then a 3-tap projection to the code width: one level's worth of downsampling."""

    def __init__(self, in_channels: int, out_channels: int, down_t: int, stride: int, width: int, depth: int,
                 m_conv: float, growth: int, cycle: int | None, scale_residual: bool = False):
        super().__init__()
        self.downs = nn.ModuleList(
            DownStage(in_channels if i == 0 else width, width, stride,
                      _resnet(width, depth, m_conv, growth, cycle, scale_residual, reverse=False))
            for i in range(down_t)
        )
        self.proj_out = nn.Conv1d(width, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.downs:
            x = stage(x)
        return self.proj_out(x)


class DecoderBlock(nn.Module):
    """A 3-tap projection from ``channels`` to ``width`` then ``down_t`` UpStages back to ``channels``.

    The upsamplers' conditioner (``conditioners.py``) reuses this block on embedded upper-level codes.
    """

    def __init__(self, channels: int, down_t: int, stride: int, width: int, depth: int, m_conv: float,
                 growth: int, cycle: int | None, scale_residual: bool = False, reverse_dilation: bool = True):
        super().__init__()
        self.proj_in = nn.Conv1d(channels, width, 3, 1, 1)
        self.ups = nn.ModuleList(
            UpStage(width, channels if i == down_t - 1 else width, stride,
                    _resnet(width, depth, m_conv, growth, cycle, scale_residual, reverse_dilation))
            for i in range(down_t)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(x)
        for stage in self.ups:
            x = stage(x)
        return x

    def forward_fast(self, x: torch.Tensor, dtype: torch.dtype, valid: int | None = None) -> torch.Tensor:
        """Inference only: ``forward`` on the fast layout (``resnet.py``): (N, C, 1, T) channels-last.

        ``valid``: true input length when ``x`` is zero-padded past it (see ``resnet.py``).
        """
        x = conv_fast(x, self.proj_in, dtype, valid=valid)
        for stage in self.ups:
            x = stage.resnet.forward_fast(x, dtype, valid)
            valid = None if valid is None else valid * stage.conv_t.stride[0]
            x = conv_fast(x, stage.conv_t, dtype, valid=valid)
        return x

    def _upsampling(self) -> int:
        return math.prod(stage.conv_t.stride[0] for stage in self.ups)


class Encoder(nn.Module):
    """Waveform (N, 1, T) -> latents (N, emb_width, T / hop[level])."""

    def __init__(self, cfg: VQVAEConfig, level: int):
        super().__init__()
        w, d = cfg.level_width(level), cfg.level_depth(level)
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg.input_channels if i == 0 else cfg.emb_width, cfg.emb_width, cfg.downs_t[i],
                         cfg.strides_t[i], w, d, cfg.m_conv, cfg.dilation_growth_rate, cfg.dilation_cycle)
            for i in range(level + 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Decoder(nn.Module):
    """Quantised latents (N, emb_width, T / hop[level]) -> waveform (N, 1, T). No output nonlinearity."""

    def __init__(self, cfg: VQVAEConfig, level: int):
        super().__init__()
        w, d = cfg.level_width(level), cfg.level_depth(level)
        self.blocks = nn.ModuleList(
            DecoderBlock(cfg.emb_width, cfg.downs_t[i], cfg.strides_t[i], w, d, cfg.m_conv,
                         cfg.dilation_growth_rate, cfg.dilation_cycle,
                         reverse_dilation=cfg.reverse_decoder_dilation)
            for i in range(level + 1)
        )
        self.out = nn.Conv1d(cfg.emb_width, cfg.input_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in reversed(self.blocks):  # the top block upsamples first
            x = block(x)
        return self.out(x)

    def forward_fast(self, x: torch.Tensor, dtype: torch.dtype, valid: int | None = None) -> torch.Tensor:
        """Inference only: (N, C, 1, T) channels-last latents in ``dtype`` -> same-layout waveform.

        ``valid``: true latent length when ``x`` is zero-padded past it (see ``resnet.py``).
        """
        for block in reversed(self.blocks):
            x = block.forward_fast(x, dtype, valid)
            valid = None if valid is None else valid * block._upsampling()
        return conv_fast(x, self.out, dtype, valid=valid)


class VQVAE(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoders = nn.ModuleList(Encoder(cfg, level) for level in range(cfg.levels))
        self.decoders = nn.ModuleList(Decoder(cfg, level) for level in range(cfg.levels))
        self.bottleneck = Bottleneck(cfg.levels, cfg.l_bins, cfg.emb_width)

    @property
    def hop_lengths(self) -> tuple[int, ...]:
        return self.cfg.hop_lengths

    @staticmethod
    def _as_nct(audio: torch.Tensor) -> torch.Tensor:
        """(T,), (N, T) or reference-layout (N, T, 1) audio -> (N, 1, T) float."""
        if audio.dim() == 1:
            audio = audio[None]
        if audio.dim() == 3:
            if audio.shape[-1] != 1:
                raise ValueError(f"audio must be mono (N, T, 1); got shape {tuple(audio.shape)}")
            audio = audio[..., 0]
        if audio.dim() != 2:
            raise ValueError(f"audio must be (T,), (N, T) or (N, T, 1); got shape {tuple(audio.shape)}")
        return audio.float()[:, None, :]

    def encode(self, audio: torch.Tensor, levels: tuple[int, ...] | None = None, chunk: int | None = CHUNK_SAMPLES,
               on_chunk: ChunkCallback | None = None) -> list[torch.Tensor]:
        """audio (N, T) in [-1, 1] at 44.1 kHz -> codes per level, each (N, T // hop[level]) int64.

        T should be a multiple of the top hop (128) so every level covers exactly the same audio.
        Always exact: the reference fp32 kernels, so codes are bit-identical to the reference (codebook
        margins can be ~6e-5, below what any reordered or lower-precision arithmetic preserves). Runs
        under ``device.inference_context()``; no autograd. The levels' encoders share no work.

        Runs in chunks of about ``chunk`` samples along time (None: all at once), each read with the halo its
        receptive field needs (``encode_halo``), so the codes are the unchunked ones and memory does not grow
        with the length. ``on_chunk(done, total)`` after every chunk (progress; raise there to cancel).
        """
        x = self._as_nct(audio)
        levels = tuple(range(self.cfg.levels)) if levels is None else levels
        plans = {lv: _chunks(x.shape[-1] // self.hop_lengths[lv], self.hop_lengths[lv], self.encode_halo(lv),
                             _chunk_size(chunk, self.encode_halo(lv)), x.shape[-1], ALIGN_CODES) for lv in levels}
        total, done, codes = sum(len(p) for p in plans.values()), 0, []
        with inference_context(x.device):
            for lv in levels:
                parts = []
                for (lo, hi), (a, b) in plans[lv]:  # input samples [lo, hi) -> this chunk's codes [a, b)
                    latents = self.encoders[lv](x[..., lo:hi])[..., a:b]
                    parts.append(_quantise_chunked(self.bottleneck.levels[lv], latents))
                    del latents
                    done += 1
                    if on_chunk is not None:
                        on_chunk(done, total)
                codes.append(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
        return [z.clone() for z in codes]  # ordinary tensors, not inference tensors

    def encode_halo(self, level: int) -> tuple[int, int]:
        """Audio samples before and after a span that level ``level``'s codes of that span depend on (the encoder's
        receptive field), rounded up to whole codes."""
        return _halo(_encoder_layers(self.encoders[level]), self.hop_lengths[level], backward_to_input=True)

    def decode_halo(self, level: int) -> tuple[int, int]:
        """Codes before and after a span that the decoded audio of that span depends on (the decoder's receptive
        field, in codes)."""
        return _halo(_decoder_layers(self.decoders[level]), self.hop_lengths[level], backward_to_input=False)

    def decode(self, codes: torch.Tensor, level: int, precision: Precision | str | None = None,
               chunk: int | None = CHUNK_SAMPLES, on_chunk: ChunkCallback | None = None) -> torch.Tensor:
        """codes (N, T_level) of one level -> audio (N, T_level * hop[level]) float32; not clamped.

        In chunks of about ``chunk`` audio samples (None: all at once), each decoded from its codes and the halo of
        codes its receptive field needs (``decode_halo``): memory stays bounded, and ``on_chunk(done, total)`` runs
        after every chunk (progress; raise there to cancel). The chunks' audio is the unchunked audio up to fp32
        rounding (``EXACT``: the reference kernels on every chunk).

        ``precision`` (``device.Precision``; default ``EXACT``):
          * ``EXACT``: the reference kernels, bit-identical to the reference implementation.
          * ``FP32``: fp32 in the channels-last fast layout (``resnet.py``), ~2x faster than ``EXACT``
            on one AVX-512 core; differs from it by ~1e-6 of the peak (120 dB SNR), the size of the
            fp32-vs-fp64 error of ``EXACT`` itself. Bits can depend on the padded length.
          * ``BF16``: bfloat16 weights and activations (AMX on the Xeon, tensor cores on CUDA; fp16 on
            MPS), ~5x faster than ``EXACT``; ~2-4 % of the peak max error, 31-38 dB SNR against fp32 on
            the random-weight official-architecture fixture. For previews, not for final renders.
        The fast paths zero-pad the codes to ``device.bucket_length(T)`` (<= 12.5 % more work) so the
        per-shape oneDNN kernels are reused: the first call at a new length bucket builds them (~0.35 s
        fp32, ~2.5 s bf16 at level 0); so does ``EXACT`` for every new length (~0.4 s).
        Inference only (runs under ``device.inference_context()``); figures in ``benchmarks/README.md``.
        A level with an output EQ in the config (``output_eq.py``) has it applied to the whole result.
        """
        if codes.dim() != 2:
            raise ValueError(f"codes must be (N, T); got shape {tuple(codes.shape)}")
        if not 0 <= level < self.cfg.levels:
            raise ValueError(f"level must be in 0..{self.cfg.levels - 1}; got {level}")
        hop, t, halo = self.hop_lengths[level], codes.shape[1], self.decode_halo(level)
        size = _chunk_size(chunk, (halo[0] * hop, halo[1] * hop))
        plan = _chunks(t, 1, halo, None if size is None else max(1, size // hop), t, ALIGN_CODES)
        if len(plan) == 1:
            out = self._decode(codes, level, precision)
            if on_chunk is not None:
                on_chunk(1, 1)
        else:
            out = torch.empty(codes.shape[0], t * hop, dtype=torch.float32, device=codes.device)
            for i, ((lo, hi), (a, b)) in enumerate(plan):  # codes [lo, hi) -> the audio of codes [lo + a, lo + b)
                audio = self._decode(codes[:, lo:hi], level, precision)
                out[:, (lo + a) * hop:(lo + b) * hop] = audio[:, a * hop:b * hop]
                if on_chunk is not None:
                    on_chunk(i + 1, len(plan))
        return equalise(out, self.cfg.sample_rate, self.cfg.level_output_eq(level))

    def _decode(self, codes: torch.Tensor, level: int, precision: Precision | str | None) -> torch.Tensor:
        precision = Precision.parse(precision)
        book, decoder = self.bottleneck.levels[level], self.decoders[level]
        with inference_context(codes.device):
            if precision is Precision.EXACT:
                audio = decoder(book.decode(codes))[:, 0, :]
            else:
                # Zero-pad the time axis to a bucketed length so oneDNN's per-shape kernels (0.3-2.5 s to
                # build per new length) are reused across requests. Every layer's output is zeroed past the
                # true length (``valid``), so the padding changes nothing but fp32 rounding.
                dtype = compute_dtype(precision, codes.device)
                t = codes.shape[1]
                latents = book.dequantise(codes)  # (N, T, C)
                latents = torch.nn.functional.pad(latents, (0, 0, 0, bucket_length(t) - t))
                # (N, T, C) seen as (N, C, T): already the fast layout's memory order, no copy in fp32.
                latents = to_fast_layout(latents.permute(0, 2, 1), dtype)
                audio = from_fast_layout(decoder.forward_fast(latents, dtype, valid=t))
                audio = audio[:, 0, : t * self.hop_lengths[level]]
        return audio.clone()  # an ordinary tensor, not an inference tensor

    def forward(self, audio: torch.Tensor) -> "VQVAEOutput":
        """Training pass: every level encoded, quantised (straight-through) and decoded independently."""
        x = self._as_nct(audio)
        latents = [enc(x) for enc in self.encoders]
        codes, quantised, commit = self.bottleneck(latents)
        recons = [dec(q)[:, 0, :] for dec, q in zip(self.decoders, quantised)]
        return VQVAEOutput(latents, codes, recons, commit)


@dataclass
class VQVAEOutput:
    latents: list[torch.Tensor]  # per level (N, emb_width, T_level), before quantisation
    codes: list[torch.Tensor]  # per level (N, T_level) int64
    recons: list[torch.Tensor]  # per level (N, T) audio decoded from that level alone
    commit: list[torch.Tensor]  # per level () commitment loss


def _encoder_layers(encoder: Encoder) -> list[nn.Module]:
    """The encoder's time convolutions in the order they apply (pointwise convolutions leave the span alone)."""
    layers: list[nn.Module] = []
    for block in encoder.blocks:
        for stage in block.downs:
            layers += [stage.conv, *(b.conv_dilated for b in stage.resnet.blocks)]
        layers.append(block.proj_out)
    return layers


def _decoder_layers(decoder: Decoder) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for block in reversed(decoder.blocks):  # the top block upsamples first
        layers.append(block.proj_in)
        for stage in block.ups:
            layers += [*(b.conv_dilated for b in stage.resnet.blocks), stage.conv_t]
    layers.append(decoder.out)
    return layers


def _input_span(layer: nn.Module, lo: int, hi: int) -> tuple[int, int]:
    """The input positions [lo', hi'] (inclusive) that outputs [lo, hi] of ``layer`` read."""
    k, s, p, d = layer.kernel_size[0], layer.stride[0], layer.padding[0], layer.dilation[0]
    if isinstance(layer, nn.ConvTranspose1d):  # output o = i * s - p + j * d, j < k
        return -((d * (k - 1) - p - lo) // s), (hi + p) // s
    return lo * s - p, hi * s - p + d * (k - 1)


def _halo(layers: list[nn.Module], hop: int, backward_to_input: bool) -> tuple[int, int]:
    """(before, after) of a code's span that it depends on: in audio samples, whole codes' worth, for an encoder
    (``backward_to_input``: output code 0 back to the audio); in codes for a decoder (audio of code 0 back to the
    codes)."""
    lo, hi = (0, 0) if backward_to_input else (0, hop - 1)
    for layer in reversed(layers):
        lo, hi = _input_span(layer, lo, hi)
    if backward_to_input:
        before, after = -lo, hi - (hop - 1)
        return -(-max(before, 0) // hop) * hop, -(-max(after, 0) // hop) * hop
    return max(-lo, 0), max(hi, 0)


def _chunk_size(chunk: int | None, halo: tuple[int, int]) -> int | None:
    """At least as long as the halo it is read with, so recomputed context at most doubles the work (the official
    level-0 codec sees a second either side)."""
    return None if chunk is None else max(chunk, halo[0] + halo[1])


def _chunks(n: int, unit: int, halo: tuple[int, int], chunk: int | None, length: int, align: int = 1
            ) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Split ``n`` outputs into chunks of about ``chunk // unit`` (all at once when ``chunk`` is None or covers them):
    ((input lo, input hi), (a, b)) per chunk, the input span in input units (``unit`` per output, ``halo`` each side,
    clipped to ``length``) and the chunk's outputs as offsets into that span's outputs.

    Chunks hold at least ``MIN_CHUNK_CODES`` outputs, and their starts, lengths and halos are whole multiples of
    ``align`` outputs: every layer then sees a chunk as wide as oneDNN needs to pick the kernel it picks for the whole
    signal, at the same offset within its blocks along time, so each output is rounded exactly as unchunked. (A
    narrow or misplaced chunk differs by ~1e-6, which flips the rare code whose two nearest codebook entries are that
    close.)"""
    step = n if chunk is None else max(1, chunk // unit)
    if step >= n:
        return [((0, length), (0, n))]
    block = align * unit
    step = -(-max(step, MIN_CHUNK_CODES) // align) * align
    if step >= n:
        return [((0, length), (0, n))]
    halo = (-(-halo[0] // block) * block, -(-halo[1] // block) * block)
    out = []
    starts = list(range(0, n, step))
    if n - starts[-1] < step:  # a short last chunk joins the one before: no chunk is narrower than ``step``
        starts.pop()
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else n
        lo, hi = max(0, start * unit - halo[0]), min(length, end * unit + halo[1])
        out.append(((lo, hi), (start - lo // unit, end - lo // unit)))
    return out


def _quantise_chunked(book: Codebook, latents: torch.Tensor) -> torch.Tensor:
    """``book.encode(latents)`` computed ``_QUANTISE_ROWS`` rows at a time: bit-identical codes.

    Each row's distances come from the same ``Codebook.quantise`` arithmetic (one dot product per
    code, then ``||x||^2 - 2 x.k + ||k||^2``), so splitting the rows changes no bit; it only avoids
    materialising (and page-faulting in) the whole (T, 2048) distance matrix.
    """
    n, width, t = latents.shape
    rows = latents.permute(0, 2, 1).reshape(n * t, width)
    codes = torch.empty(n * t, dtype=torch.int64, device=latents.device)
    for start in range(0, n * t, _QUANTISE_ROWS):
        codes[start:start + _QUANTISE_ROWS] = book.quantise(rows[start:start + _QUANTISE_ROWS])[0]
    return codes.view(n, t)
