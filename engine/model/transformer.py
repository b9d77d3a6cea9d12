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

from .attention import (
    ENC_DEC,
    PATTERNS,
    PRIME,
    Geometry,
    KVCache,
    attend,
    attend_one,
    attend_static,
    attn_funcs,
    cached_attention,
    check_supported,
    full_attention,
    prime_len_rounded,
    static_keys,
    static_slot,
    static_slots,
)


class Conv1D(nn.Module):
    """x·w + b with ``w`` stored (in, out), as the reference (and its checkpoints) do."""

    compute_dtype: torch.dtype | None = None  # set by cast_projections: multiply in the weights' dtype

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.w = nn.Parameter(torch.empty(n_in, n_out).normal_(std=0.02))
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:  # (..., in) -> (..., out); weights follow x's dtype
        p = self._parameters  # hot path (16+ calls per token): a dict lookup, not nn.Module.__getattr__
        w, b = p["w"], p["b"]
        if self.compute_dtype is not None and x.dtype != self.compute_dtype:  # reduced-precision weights
            return F.linear(x.to(w.dtype), w.t(), b).to(x.dtype)
        if w.dtype != x.dtype or b.dtype != x.dtype:  # e.g. fp16 sampling of fp32 weights, or fp32 sampling of the
            w, b = w.to(x.dtype), b.to(x.dtype)  # 5b tops' fp16 weights (fp32 biases): a copy per call, as the
            # reference does (cast_projections converts once instead)
        if w.is_contiguous():  # the checkpoint layout (in, out)
            out = torch.addmm(b, x.reshape(-1, x.shape[-1]), w)
            return out.view(*x.shape[:-1], out.shape[-1])
        return F.linear(x, w.t(), b)  # stored (out, in) by cast_projections: the fast layout of bf16 kernels


class LayerNorm(nn.LayerNorm):
    """eps 1e-5, always computed in fp32 and cast back (the reference does this for fp16 sampling)."""

    def __init__(self, width: int):
        super().__init__(width, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        p = self._parameters  # hot path: a dict lookup, not nn.Module.__getattr__
        if x.dtype == torch.float32:
            return torch.layer_norm(x, self.normalized_shape, p["weight"], p["bias"], self.eps)
        return torch.layer_norm(x.float(), self.normalized_shape, p["weight"], p["bias"], self.eps).to(x.dtype)


def quick_gelu(x: Tensor) -> Tensor:
    """The sigmoid approximation of GELU the weights were trained with (not the exact erf form)."""
    return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = Conv1D(width, hidden)
        self.c_proj = Conv1D(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        m = self._modules  # the per-token hot path calls submodules' forward directly (no hooks are used)
        return m["c_proj"].forward(quick_gelu(m["c_fc"].forward(x)))


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
        m = self._modules  # the per-token hot path calls submodules' forward directly (no hooks are used)
        h = m["c_attn"].forward(x)
        if self.attn_func == ENC_DEC:
            a = attend(h, *self._encoder_kv(x, encoder_kv, cache), self.n_head)
        elif cache is None:
            q, k, v = h.chunk(3, dim=2)
            a = full_attention(self.attn_func, q, k, v, self.n_head, self.geometry)
        else:
            a = self._cached(h, cache, t0)
        return m["c_proj"].forward(a)

    def _encoder_kv(self, x: Tensor, encoder_kv: Tensor | None, cache: KVCache | None) -> tuple[Tensor, Tensor]:
        if cache is not None and len(cache):  # projected once per window, at the first chunk
            return cache.get(range(cache.start, cache.end))
        if encoder_kv is None:
            raise ValueError("an encoder-decoder layer needs the lyric encoder's states (encoder_kv)")
        kv = self.c_enc_kv(encoder_kv.to(x.dtype))  # k | v
        if cache is not None:
            cache.append_kv(kv)
        return kv.chunk(2, dim=2)

    def _cached(self, h: Tensor, cache: KVCache, t0: int) -> Tensor:
        d = h.shape[2] // 3
        q, kv = h[..., :d], h[..., d:]  # q | k | v: k and v adjacent, one copy into the cache
        g, pattern, t1 = self.geometry, PATTERNS[self.attn_func], t0 + h.shape[1]
        n_new = h.shape[1] if self.attn_func != PRIME else max(0, min(t1, g.prime_len) - t0)
        if n_new:  # PRIME layers stop storing once the lyric prefix is cached
            if cache.end != t0:
                raise ValueError(f"cache holds positions up to {cache.end}, got a chunk starting at {t0}")
            cache.append_kv(kv if n_new == h.shape[1] else kv[:, :n_new])
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
        m = self._modules  # the per-token hot path calls submodules' forward directly (no hooks are used)
        x = x + m["attn"].forward(m["ln_0"].forward(x), encoder_kv, cache, t0)  # (x + a) + m, as the reference
        return x + m["mlp"].forward(m["ln_1"].forward(x))


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
            if c.kv is None:
                raise ValueError("prefill the cache (at least position 0) before switching to fixed-shape steps")
            func, kv = layer.attn.attn_func, c.get_kv(range(c.start, c.end))
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
            x = layer.forward(x, encoder_kv, None if cache is None else cache[i], t0)
        return x
