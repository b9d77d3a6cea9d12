"""Factorised attention of the Jukebox priors (Child et al. 2019; Jukebox paper appendix B.1).

A context of T positions is viewed as ``blocks`` rows of ``block_ctx`` positions. Each layer uses one
pattern (``attn_func``): attending along its row (BLOCK), down its column (TRANSPOSE_BLOCK) or to the whole
previous row (PREV_BLOCK) costs O(T·sqrt(T)) instead of O(T²), and a stack cycling through the three
still lets every position reach every earlier one. Lyrics enter through ENC_DEC layers (5b_lyrics) or
PRIME layers (1b_lyrics, which see the lyric prefix of a single stream).

Each pattern is implemented twice and tests hold the two equal:
- ``full_attention``: a whole sequence at once, reshaped into blocks (the reference's training path);
- ``cached_attention``: a chunk of new positions against the keys kept in a ``KVCache``, with an explicit
  position mask from ``PATTERNS``. Chunks of any size (one-token steps or multi-token prefill) give the
  same result as the full pass.

Numerics follow the reference: logits scaled by (1/sqrt(sqrt(head_dim)))², softmax in fp32, masked
logits set to -1e9 (not -inf), and a PREV_BLOCK query in block 0 attends to all-zero keys (output 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

DENSE, BLOCK, TRANSPOSE_BLOCK, PREV_BLOCK, SUMMARY, SUMMARY_SPREAD, ENC_DEC, PRIME = range(8)


@dataclass(frozen=True)
class Geometry:
    block_ctx: int
    n_ctx: int  # positions of the (self-attention) sequence
    prime_len: int = 0  # PRIME layers see positions < prime_len (the reference's rounded _prime_len)


def _block(p: int | Tensor, g: Geometry) -> int | Tensor:
    return p // g.block_ctx


@dataclass(frozen=True)
class Pattern:
    """Which key positions j a query at position i sees, and what a KV cache must keep for it."""

    name: str
    sees: Callable[[Tensor, Tensor, Geometry], Tensor] | None  # (i, j) -> bool; None: all encoder keys
    keys: Callable[[int, int, Geometry], range]  # key positions needed by queries [t0, t1)
    keep_from: Callable[[int, Geometry], int]  # earliest key any query >= t can need
    capacity: Callable[[Geometry], int]  # initial cache buffer length


def _transpose_keys(t0: int, t1: int, g: Geometry) -> range:
    if t1 - t0 == 1:  # one query: only its column, as the reference slices the cache
        return range(t0 % g.block_ctx, t1, g.block_ctx)
    return range(0, t1)


def _prev_block_keys(t0: int, t1: int, g: Geometry) -> range:
    first = max((_block(t0, g) - 1) * g.block_ctx, 0)
    return range(first, _block(t1 - 1, g) * g.block_ctx)  # empty while every query is in block 0


PATTERNS: dict[int, Pattern] = {
    DENSE: Pattern("dense", lambda i, j, g: j <= i,
                   lambda t0, t1, g: range(0, t1), lambda t, g: 0, lambda g: g.n_ctx),
    BLOCK: Pattern("block", lambda i, j, g: (j <= i) & (_block(j, g) == _block(i, g)),
                   lambda t0, t1, g: range(_block(t0, g) * g.block_ctx, t1),
                   lambda t, g: _block(t, g) * g.block_ctx, lambda g: 2 * g.block_ctx),
    TRANSPOSE_BLOCK: Pattern("transpose block", lambda i, j, g: (j <= i) & (j % g.block_ctx == i % g.block_ctx),
                             _transpose_keys, lambda t, g: 0, lambda g: g.n_ctx),
    PREV_BLOCK: Pattern("previous block", lambda i, j, g: _block(j, g) == _block(i, g) - 1,
                        _prev_block_keys, lambda t, g: max((_block(t, g) - 1) * g.block_ctx, 0),
                        lambda g: 3 * g.block_ctx),
    ENC_DEC: Pattern("encoder-decoder", None, lambda t0, t1, g: range(0), lambda t, g: 0, lambda g: 0),
    PRIME: Pattern("prime", lambda i, j, g: (j <= i) & (j < g.prime_len),
                   lambda t0, t1, g: range(0, min(t1, g.prime_len)), lambda t, g: 0, lambda g: g.prime_len),
}
"""attn_func -> pattern. SUMMARY (4) and SUMMARY_SPREAD (5) are used by no official model and not supported."""

ATTN_ORDERS: dict[int, Callable[[int], int]] = {
    0: lambda d: DENSE,
    1: lambda d: [BLOCK, TRANSPOSE_BLOCK][d % 2],
    2: lambda d: [BLOCK, TRANSPOSE_BLOCK, PREV_BLOCK][d % 3],  # upsamplers, 5b, the 5b_lyrics lyric encoder
    # 5b_lyrics: 9 layers of row/column/previous-row, then 7 x (9 of them + one encoder-decoder layer)
    10: lambda d: [*[1, 2, 3] * 3, *[1, 2, 3, 1, 2, 3, 1, 2, 3, ENC_DEC] * 7][d % 79],
    # 1b_lyrics: every 16th layer looks at the lyrics (PRIME) or everything (DENSE) instead
    12: lambda d: [PRIME, PRIME, DENSE][d % 3] if d % 16 == 15 else [1, 2, 3][d % 3],
}
"""The reference's ``attn_order`` -> attn_func of layer d, for the orders official models use."""


def attn_funcs(attn_order: int, depth: int) -> list[int]:
    if attn_order not in ATTN_ORDERS:
        raise ValueError(f"attn_order {attn_order} is not supported; known orders are {sorted(ATTN_ORDERS)}")
    return [ATTN_ORDERS[attn_order](d) for d in range(depth)]


def check_supported(attn_func: int) -> None:
    if attn_func not in PATTERNS:
        raise NotImplementedError(f"attn_func {attn_func} (summary attention) is used by no official model")


def prime_len_rounded(prime_len: int, blocks: int) -> int:
    """Positions a PRIME layer sees: the reference rounds up by the number of *blocks* (384 -> 448 for 1b)."""
    return (prime_len // blocks + 1) * blocks


# ----------------------------------------------------------------------------------------- attention core


def _heads(x: Tensor, n_head: int) -> Tensor:
    n, t, d = x.shape
    return x.view(n, t, n_head, d // n_head).transpose(1, 2)  # (N, H, T, head_dim); heads are contiguous


def attend(q: Tensor, k: Tensor, v: Tensor, n_head: int, mask: Tensor | None = None) -> Tensor:
    """Multi-head softmax attention: q (B, Tq, D), k/v (B, Tk, D), mask (Tq, Tk) bool or None -> (B, Tq, D)."""
    b, tq, d = q.shape
    scale = 1.0 / math.sqrt(math.sqrt(d // n_head))
    w = torch.matmul(_heads(q, n_head), _heads(k, n_head).transpose(-1, -2)) * (scale * scale)  # (B, H, Tq, Tk)
    dtype = w.dtype
    w = w.float()
    if mask is not None:
        w = w.masked_fill(~mask, -1e9)
    w = torch.softmax(w, dim=-1).to(dtype)
    return torch.matmul(w, _heads(v, n_head)).transpose(1, 2).reshape(b, tq, d)


def attend_one(q: Tensor, k: Tensor, v: Tensor, n_head: int) -> Tensor:
    """``attend`` without a mask for a single query position q (N, 1, D), as a sampling step needs.

    fp32 and bf16 go through one fused kernel (``scaled_dot_product_attention``: fp32 softmax, same
    scale; fp32 results agree with ``attend`` to float rounding). fp16 keeps ``attend``, whose rounding
    is the reference's fp16 sampling path.
    """
    if q.dtype == torch.float16:
        return attend(q, k, v, n_head)
    n, _, d = q.shape
    hd = d // n_head
    scale = 1.0 / math.sqrt(math.sqrt(hd))
    out = F.scaled_dot_product_attention(q.view(n, 1, n_head, hd).transpose(1, 2), _heads(k, n_head),
                                         _heads(v, n_head), scale=scale * scale)
    return out.transpose(1, 2).reshape(n, 1, d)


def _causal(q_len: int, k_len: int, device: torch.device) -> Tensor:
    """Query i sees keys j <= i + (k_len - q_len): the last query sees every key."""
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(max(k_len - q_len, 0))


def full_attention(func: int, q: Tensor, k: Tensor, v: Tensor, n_head: int, g: Geometry) -> Tensor:
    """Self-attention of a whole sequence q/k/v (N, T, D) starting at position 0; ENC_DEC: k/v from the encoder."""
    n, t, d = q.shape
    if func == DENSE:
        return attend(q, k, v, n_head, _causal(t, t, q.device))
    if func == ENC_DEC:
        return attend(q, k, v, n_head)
    if func == PRIME:
        k, v = k[:, : g.prime_len], v[:, : g.prime_len]
        return attend(q, k, v, n_head, _causal(t, k.shape[1], q.device))
    check_supported(func)
    bc = g.block_ctx
    pad = -t % bc  # only a partial last block needs padding; padded positions lie in everyone's future
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    nb = (t + pad) // bc

    def rows(x: Tensor) -> Tensor:  # (N, T, D) -> (N*blocks, block_ctx, D)
        return x.reshape(n * nb, bc, d)

    def cols(x: Tensor) -> Tensor:  # (N, T, D) -> (N*block_ctx, blocks, D)
        return x.view(n, nb, bc, d).transpose(1, 2).reshape(n * bc, nb, d)

    def prev_rows(x: Tensor) -> Tensor:  # row b holds block b-1; row 0 is zeros
        return F.pad(x.view(n, nb, bc, d)[:, :-1], (0, 0, 0, 0, 1, 0)).reshape(n * nb, bc, d)

    if func == BLOCK:
        out = attend(rows(q), rows(k), rows(v), n_head, _causal(bc, bc, q.device)).view(n, nb * bc, d)
    elif func == TRANSPOSE_BLOCK:
        out = attend(cols(q), cols(k), cols(v), n_head, _causal(nb, nb, q.device))
        out = out.view(n, bc, nb, d).transpose(1, 2).reshape(n, nb * bc, d)
    else:  # PREV_BLOCK: no mask; block 0 attends uniformly to zeros, i.e. outputs 0
        out = attend(rows(q), prev_rows(k), prev_rows(v), n_head).view(n, nb * bc, d)
    return out[:, :t]


def cached_attention(func: int, q: Tensor, k: Tensor, v: Tensor, t0: int, key_pos: range, n_head: int,
                     g: Geometry) -> Tensor:
    """Queries at positions [t0, t0 + C) (q: (N, C, D)) against cached keys at positions ``key_pos``."""
    if func == ENC_DEC:
        return attend(q, k, v, n_head)
    if len(key_pos) == 0:  # PREV_BLOCK queries in block 0: zero keys and values
        return torch.zeros_like(q)
    i = torch.arange(t0, t0 + q.shape[1], device=q.device)[:, None]
    j = torch.arange(key_pos.start, key_pos.stop, key_pos.step, device=q.device)[None, :]
    mask = PATTERNS[func].sees(i, j, g)  # (C, K)
    out = attend(q, k, v, n_head, None if bool(mask.all()) else mask)
    has_keys = mask.any(dim=1)
    if not bool(has_keys.all()):  # a chunk straddling block 0 of PREV_BLOCK
        out = out * has_keys[None, :, None].to(out.dtype)
    return out


# ----------------------------------------------------------------------------------------------- KV cache


class KVCache:
    """Keys and values of one layer for the absolute positions [start, end).

    Appending writes only the new chunk into a preallocated buffer (the reference concatenates, copying
    the whole cache every step); keys and values share it, k | v side by side, so the projection's
    adjacent k|v columns go in with one copy. Dropping positions no future query needs just advances
    ``start``; the buffer is compacted or grown when a chunk no longer fits.
    """

    def __init__(self, capacity: int):
        self.capacity = max(capacity, 1)
        self.kv: Tensor | None = None  # (N, capacity, 2 * D): k | v
        self.base = 0  # absolute position of buffer slot 0
        self.start = 0
        self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def k(self) -> Tensor | None:
        return None if self.kv is None else self.kv[..., : self.kv.shape[-1] // 2]

    @property
    def v(self) -> Tensor | None:
        return None if self.kv is None else self.kv[..., self.kv.shape[-1] // 2 :]

    def append(self, k: Tensor, v: Tensor) -> None:
        self.append_kv(torch.cat([k, v], dim=2))

    def append_kv(self, kv: Tensor) -> None:
        """kv (N, C, 2D): keys | values of the next C positions."""
        n, c, d2 = kv.shape
        if self.kv is None:
            self.capacity = max(self.capacity, c)
            self.kv = kv.new_empty(n, self.capacity, d2)
        if self.end + c - self.base > self.kv.shape[1]:
            self._make_room(c)
        self.kv.narrow(1, self.end - self.base, c).copy_(kv)
        self.end += c

    def _make_room(self, c: int) -> None:
        """Move the kept positions to the front of a buffer (twice as long if they and c do not fit)."""
        n, cap, d2 = self.kv.shape
        size = cap if len(self) + c <= cap else max(2 * cap, len(self) + c)
        kv = self.kv.new_empty(n, size, d2)
        kv[:, : len(self)] = self.kv[:, self.start - self.base : self.end - self.base]
        self.kv, self.base = kv, self.start

    def drop_before(self, pos: int) -> None:
        self.start = min(max(self.start, pos), self.end)

    def get_kv(self, pos: range) -> Tensor:
        """Cached k | v (N, len(pos), 2D) at absolute positions ``pos`` (a range with a step)."""
        if len(pos) and (pos.start < self.start or pos[-1] >= self.end):
            raise IndexError(f"positions {pos} are not cached (cache holds [{self.start}, {self.end}))")
        return self.kv[:, pos.start - self.base : pos.stop - self.base : pos.step]

    def get(self, pos: range) -> tuple[Tensor, Tensor]:
        """Cached keys and values (N, len(pos), D) at absolute positions ``pos`` (a range with a step)."""
        kv = self.get_kv(pos)
        d = kv.shape[-1] // 2
        return kv[..., :d], kv[..., d:]


# ------------------------------------------------------------------------- fixed-shape single-token steps
#
# A sampling step feeds one token. ``KVCache`` slices a different number of keys every step, which is
# cheap in eager mode but gives every step new shapes. The layout below keeps each layer's keys and values
# in one buffer of fixed size, (N, slots, 2·D) with k | v side by side, and turns the pattern into a mask
# over all slots computed from the position tensor ``t``: no shape depends on t, so one ``torch.compile``
# graph serves every step of every window. Masked slots get -1e9 before the fp32 softmax, as in
# ``attend``, so they weigh exactly 0 and the result equals the sliced attention up to summation order.
#   BLOCK: a ring of block_ctx slots (slot t % block_ctx; later slots of the ring are the last block's);
#   PREV_BLOCK: a ring of 2·block_ctx slots, reading the half that holds the previous block;
#   TRANSPOSE_BLOCK: all n_ctx positions, reading the column t % block_ctx;
#   DENSE: all n_ctx positions; PRIME: prime_len slots plus one sink slot for positions past the prefix;
#   ENC_DEC: the window's encoder keys/values, read-only.


def static_slots(func: int, g: Geometry, n_keys: int = 0) -> int:
    """Slots of a layer's fixed-shape buffer (``n_keys``: the encoder keys of an ENC_DEC layer)."""
    return {BLOCK: g.block_ctx, PREV_BLOCK: 2 * g.block_ctx, TRANSPOSE_BLOCK: g.n_ctx, DENSE: g.n_ctx,
            PRIME: g.prime_len + 1, ENC_DEC: n_keys}[func]


def static_slot(func: int, pos: Tensor, g: Geometry) -> Tensor:
    """Slot of absolute position(s) ``pos`` (int64 tensor) in the layer's buffer."""
    if func == BLOCK:
        return pos % g.block_ctx
    if func == PREV_BLOCK:
        return pos % (2 * g.block_ctx)
    if func == PRIME:
        return pos.clamp(max=g.prime_len)  # positions >= prime_len all land in the (never read) sink slot
    return pos


def static_keys(func: int, buf: Tensor, t: Tensor, g: Geometry) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """What a query at position t (0-d int64) reads: kv (N, K, 2D), a (K,) bool mask or None, and a 0-d
    factor (0 for a PREV_BLOCK query in block 0, whose output is 0) or None."""
    if func == ENC_DEC:
        return buf, None, None
    bc = g.block_ctx
    if func == TRANSPOSE_BLOCK:
        n, _, d2 = buf.shape
        nb = g.n_ctx // bc
        kv = buf.view(n, nb, bc, d2).index_select(2, (t % bc).view(1)).view(n, nb, d2)
        return kv, torch.arange(nb, device=buf.device) <= t // bc, None
    if func == BLOCK:
        return buf, torch.arange(bc, device=buf.device) <= t % bc, None
    if func == PREV_BLOCK:
        blk = t // bc
        mask = torch.arange(2 * bc, device=buf.device) // bc == (blk + 1) % 2  # the half holding block blk - 1
        return buf, mask, (blk > 0)
    if func == PRIME:
        return buf[:, : g.prime_len], torch.arange(g.prime_len, device=buf.device) <= t, None
    return buf, torch.arange(buf.shape[1], device=buf.device) <= t, None  # DENSE


def attend_static(q: Tensor, kv: Tensor, n_head: int, mask: Tensor | None, factor: Tensor | None) -> Tensor:
    """One query q (N, 1, D) against kv (N, K, 2D) with a (K,) mask: ``attend``'s math, fixed shapes."""
    n, _, d = q.shape
    hd = d // n_head
    scale = 1.0 / math.sqrt(math.sqrt(hd))
    qh = q.view(n, n_head, 1, hd)
    k, v = kv[..., :d], kv[..., d:]
    kh = k.reshape(n, -1, n_head, hd).permute(0, 2, 3, 1)  # (N, H, hd, K)
    vh = v.reshape(n, -1, n_head, hd).transpose(1, 2)  # (N, H, K, hd)
    w = torch.matmul(qh, kh) * (scale * scale)
    dtype = w.dtype
    w = w.float()
    if mask is not None:
        w = w.masked_fill(~mask, -1e9)
    w = torch.softmax(w, dim=-1).to(dtype)
    out = torch.matmul(w, vh).view(n, 1, d)
    return out if factor is None else out * factor.to(out.dtype)
