"""The sparse transformer stack of the Jukebox priors (paper section 3.2; Child et al. 2019).

Pre-LN residual blocks, h = x + a + mlp(ln_1(x + a)) with a = attn(ln_0(x)), and no final LayerNorm.
Widths are narrow for attention (0.25·width) and *not* widened in the MLP (m_mlp 1.0). Projections keep
the reference ``Conv1D`` layout, weight ``w`` of shape (in, out) and bias ``b``, so official tensors load
as they are. Every layer runs either a whole sequence (``cache=None``) or the next chunk of positions
against its ``KVCache`` (see ``attention.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import (ENC_DEC, PATTERNS, PRIME, Geometry, KVCache, attend, attend_one, attend_static, attn_funcs,
                        cached_attention, static_keys, static_slot, static_slots,
                        check_supported, full_attention, prime_len_rounded)


class Conv1D(nn.Module):
    """x·w + b with ``w`` stored (in, out), as the reference (and its checkpoints) do."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.w = nn.Parameter(torch.empty(n_in, n_out).normal_(std=0.02))
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:  # (..., in) -> (..., out); weights follow x's dtype
        w, b = self.w, self.b
        if w.dtype != x.dtype:
            w, b = (w.to(x.dtype), b.to(x.dtype)) if torch.compiler.is_compiling() else self._cast(x.dtype)
        if w.is_contiguous():  # the checkpoint layout (in, out)
            out = torch.addmm(b, x.reshape(-1, x.shape[-1]), w)
            return out.view(*x.shape[:-1], out.shape[-1])
        return F.linear(x, w.t(), b)  # (out, in) storage: the fast layout of reduced-precision GEMV kernels

    def _cast(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The weights in ``dtype``, cast once and kept (the reference casts on every call), stored (out, in).

        The copy is rebuilt if the parameters change; ``cast_projections`` avoids holding two copies.
        """
        w, b = self.w, self.b
        key = (dtype, w.data_ptr(), w._version, b.data_ptr(), b._version)
        cached = getattr(self, "_cast_cache", None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, w.detach().t().to(dtype, memory_format=torch.contiguous_format).t(),
                          b.detach().to(dtype))
            object.__setattr__(self, "_cast_cache", cached)  # not a parameter or buffer: no state_dict entry
        return cached[1], cached[2]


class Int8Conv1D(nn.Module):
    """Inference-only ``Conv1D`` with int8 weights: symmetric, one fp32 scale per output channel.

    Weight-only quantisation (activations keep their dtype); the fast kernel is
    ``torch._weight_int8pack_mm`` with bf16 activations. Built by ``quantize_projections``; its state dict
    (``q``, ``scale``, ``b``) is not a checkpoint layout.
    """

    def __init__(self, conv: Conv1D):
        super().__init__()
        with torch.no_grad():
            w = conv.w.detach().float().t()  # (out, in)
            scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            self.register_buffer("q", torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8))
            self.register_buffer("scale", scale)
            self.register_buffer("b", conv.b.detach().float().clone())
        self._by_dtype: dict[torch.dtype, tuple[Tensor, Tensor]] = {}

    def forward(self, x: Tensor) -> Tensor:
        scale_b = self._by_dtype.get(x.dtype)
        if scale_b is None:
            scale_b = self._by_dtype[x.dtype] = (self.scale.to(x.dtype), self.b.to(x.dtype))
        out = torch._weight_int8pack_mm(x.reshape(-1, x.shape[-1]), self.q, scale_b[0]) + scale_b[1]
        return out.view(*x.shape[:-1], out.shape[-1])


def cast_projections(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """In place: every ``Conv1D`` weight and bias to ``dtype``, the weight stored (out, in), the layout the
    fast reduced-precision kernels read. LayerNorm, embeddings and output heads keep fp32. Use it with
    ``SamplingParams(dtype=dtype)`` / ``Prior.start_cache(dtype=...)``; it replaces the fp32 copy instead
    of caching a second one as ``Conv1D`` does on its own. Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, Conv1D):
            with torch.no_grad():
                w = m.w.detach().t().to(dtype, memory_format=torch.contiguous_format).t()
                m.w = nn.Parameter(w, requires_grad=False)
                m.b = nn.Parameter(m.b.detach().to(dtype), requires_grad=False)
            m.__dict__.pop("_cast_cache", None)
    return module


def quantize_projections(module: nn.Module) -> nn.Module:
    """In place: every ``Conv1D`` becomes an ``Int8Conv1D`` (weight-only int8, per-output-channel scales).

    Inference only; run it with bf16 activations (``SamplingParams(dtype=torch.bfloat16)``), the fast path
    of the int8 kernel. Returns ``module``.
    """
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                setattr(parent, name, Int8Conv1D(child))
    return module


class LayerNorm(nn.LayerNorm):
    """eps 1e-5, always computed in fp32 and cast back (the reference does this for fp16 sampling)."""

    def __init__(self, width: int):
        super().__init__(width, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias, self.eps).to(x.dtype)


def quick_gelu(x: Tensor) -> Tensor:
    """The sigmoid approximation of GELU the weights were trained with (not the exact erf form)."""
    return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = Conv1D(width, hidden)
        self.c_proj = Conv1D(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(quick_gelu(self.c_fc(x)))


class FactoredAttention(nn.Module):
    """One attention layer: q|k|v from ``c_attn`` (contiguous thirds, heads contiguous in each), one pattern.

    ENC_DEC layers (5b_lyrics) take only queries from ``c_attn``; keys and values come from the lyric
    encoder's states through ``c_enc_kv``.
    """

    def __init__(self, width: int, n_state: int, n_head: int, attn_func: int, geometry: Geometry):
        super().__init__()
        check_supported(attn_func)
        self.attn_func, self.n_head, self.geometry = attn_func, n_head, geometry
        self.c_attn = Conv1D(width, n_state if attn_func == ENC_DEC else 3 * n_state)
        if attn_func == ENC_DEC:
            self.c_enc_kv = Conv1D(width, 2 * n_state)
        self.c_proj = Conv1D(n_state, width)

    def new_cache(self) -> KVCache:
        return KVCache(PATTERNS[self.attn_func].capacity(self.geometry))

    def forward(self, x: Tensor, encoder_kv: Tensor | None = None, cache: KVCache | None = None,
                t0: int = 0) -> Tensor:
        """x (N, C, width) at positions [t0, t0 + C) -> (N, C, width). Without a cache, t0 must be 0."""
        h = self.c_attn(x)
        if self.attn_func == ENC_DEC:
            a = attend(h, *self._encoder_kv(x, encoder_kv, cache), self.n_head)
        elif cache is None:
            q, k, v = h.chunk(3, dim=2)
            a = full_attention(self.attn_func, q, k, v, self.n_head, self.geometry)
        else:
            a = self._cached(h, cache, t0)
        return self.c_proj(a)

    def _encoder_kv(self, x: Tensor, encoder_kv: Tensor | None, cache: KVCache | None) -> tuple[Tensor, Tensor]:
        if cache is not None and len(cache):  # projected once per window, at the first chunk
            return cache.get(range(cache.start, cache.end))
        if encoder_kv is None:
            raise ValueError("an encoder-decoder layer needs the lyric encoder's states (encoder_kv)")
        k, v = self.c_enc_kv(encoder_kv.to(x.dtype)).chunk(2, dim=2)
        if cache is not None:
            cache.append(k, v)
        return k, v

    def _cached(self, h: Tensor, cache: KVCache, t0: int) -> Tensor:
        q, k, v = h.chunk(3, dim=2)
        g, pattern, t1 = self.geometry, PATTERNS[self.attn_func], t0 + h.shape[1]
        n_new = h.shape[1] if self.attn_func != PRIME else max(0, min(t1, g.prime_len) - t0)
        if n_new:  # PRIME layers stop storing once the lyric prefix is cached
            if cache.end != t0:
                raise ValueError(f"cache holds positions up to {cache.end}, got a chunk starting at {t0}")
            cache.append(k, v) if n_new == h.shape[1] else cache.append(k[:, :n_new], v[:, :n_new])
        key_pos = pattern.keys(t0, t1, g)
        if t1 - t0 == 1 and len(key_pos):  # one query: every key of its pattern's range is visible
            a = attend_one(q, *cache.get(key_pos), self.n_head)
        else:
            a = cached_attention(self.attn_func, q, *cache.get(key_pos), t0, key_pos, self.n_head, g)
        cache.drop_before(pattern.keep_from(t1, g))
        return a


    def step_static(self, x: Tensor, t: Tensor, buf: Tensor) -> Tensor:
        """One position x (N, 1, width) at t (0-d int64) against the fixed-shape buffer of ``static_slots``."""
        h, func = self.c_attn(x), self.attn_func
        if func == ENC_DEC:
            q = h
        else:
            d = h.shape[-1] // 3
            q = h[..., :d]
            buf.index_copy_(1, static_slot(func, t, self.geometry).view(1), h[..., d:])
        kv, mask, factor = static_keys(func, buf, t, self.geometry)
        return self.c_proj(attend_static(q, kv, self.n_head, mask, factor))


class ResAttnBlock(nn.Module):
    """Pre-LN residual block: h = x + a + mlp(ln_1(x + a)), a = attn(ln_0(x))."""

    def __init__(self, width: int, n_state: int, n_head: int, hidden: int, attn_func: int, geometry: Geometry):
        super().__init__()
        self.attn = FactoredAttention(width, n_state, n_head, attn_func, geometry)
        self.ln_0 = LayerNorm(width)
        self.mlp = MLP(width, hidden)
        self.ln_1 = LayerNorm(width)

    def forward(self, x: Tensor, encoder_kv: Tensor | None = None, cache: KVCache | None = None,
                t0: int = 0) -> Tensor:
        x = x + self.attn(self.ln_0(x), encoder_kv, cache, t0)  # (x + a) + m, as the reference sums
        return x + self.mlp(self.ln_1(x))


    def step_static(self, x: Tensor, t: Tensor, buf: Tensor) -> Tensor:
        x = x + self.attn.step_static(self.ln_0(x), t, buf)
        return x + self.mlp(self.ln_1(x))


class Transformer(nn.Module):
    """``depth`` residual blocks whose attention patterns follow ``attn_order``; no final LayerNorm."""

    def __init__(self, width: int, depth: int, heads: int, attn_order: int, blocks: int, n_ctx: int,
                 m_attn: float = 0.25, m_mlp: float = 1.0, prime_len: int | None = None):
        super().__init__()
        if n_ctx % blocks:
            raise ValueError(f"n_ctx {n_ctx} must be a multiple of blocks {blocks}")
        self.attn_funcs = attn_funcs(attn_order, depth)
        plen = prime_len_rounded(prime_len, blocks) if prime_len is not None else 0
        self.geometry = Geometry(block_ctx=n_ctx // blocks, n_ctx=n_ctx, prime_len=plen)
        n_state, hidden = int(m_attn * width), int(m_mlp * width)
        if n_state % heads:
            raise ValueError(f"attention width {n_state} must split into {heads} heads")
        self.layers = nn.ModuleList(
            ResAttnBlock(width, n_state, heads, hidden, f, self.geometry) for f in self.attn_funcs
        )

    def new_cache(self) -> list[KVCache]:
        return [layer.attn.new_cache() for layer in self.layers]

    def static_buffers(self, cache: list[KVCache]) -> list[Tensor]:
        """The fixed-shape buffers (see ``attention.static_keys``) holding what the per-layer caches hold."""
        bufs = []
        for layer, c in zip(self.layers, cache):
            if c.k is None:
                raise ValueError("prefill the cache (at least position 0) before switching to fixed-shape steps")
            func, kv = layer.attn.attn_func, torch.cat(c.get(range(c.start, c.end)), dim=2)
            buf = kv.new_zeros(kv.shape[0], static_slots(func, self.geometry, len(c)), kv.shape[2])
            pos = torch.arange(c.start, c.end, device=kv.device)
            buf.index_copy_(1, pos if func == ENC_DEC else static_slot(func, pos, self.geometry), kv)
            bufs.append(buf)
        return bufs

    def step_static(self, x: Tensor, t: Tensor, bufs: list[Tensor]) -> Tensor:
        """One position x (N, 1, width) at t (0-d int64 tensor) through fixed-shape buffers (updated in place)."""
        for layer, buf in zip(self.layers, bufs):
            x = layer.step_static(x, t, buf)
        return x

    def forward(self, x: Tensor, encoder_kv: Tensor | None = None, cache: list[KVCache] | None = None,
                t0: int = 0) -> Tensor:
        """x (N, C, width) for positions [t0, t0 + C): the whole sequence (cache None, t0 0) or the next chunk."""
        if cache is None and t0 != 0:
            raise ValueError("a pass without a KV cache must start at position 0")
        for i, layer in enumerate(self.layers):
            x = layer(x, encoder_kv, None if cache is None else cache[i], t0)
        return x
