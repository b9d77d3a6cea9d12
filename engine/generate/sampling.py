"""Sampling the priors (paper section 3.3 and 4): ancestral, primed, windowed, level by level.

A level's codes are sampled window by window: each window holds ``n_ctx`` tokens, conditioned on what
is already there (a prime, or the overlap with the previous window) and, below the top, on the codes of
the level above. Consecutive windows advance by ``hop_fraction * n_ctx`` (the reference's 1/8 at the top,
1/2 for the upsamplers). Every window draws from its own generators, seeded by (take seed, level,
window), so a job interrupted between windows and resumed from its saved codes gives the same result as
an uninterrupted run. Each take (batch row) has its own seed, so a take reproduces alone or in a batch.

Two schedules for the upsampling levels (``SamplingParams.schedule``; the top level is always sampled
window after window, so it stays coherent over time):

- ``"reference"``: the windows of a level one after another, each primed on the previous one's tail
  (the reference implementation's schedule; parity uses it).
- ``"parallel"`` (the default): the level is split into lanes (``plan_lanes``), consecutive lanes
  overlapping by ``n_ctx / 16`` tokens. Every lane is sampled from scratch (the first one primed on the
  codes already known, e.g. a continuation's prompt), conditioned on the upper codes of its own span,
  and all lanes advance together as one batch of takes x lanes rows (``sample_lanes``), window by window
  through the same relative grid. The lanes are joined in codes at the middle of each overlap
  (``join_lanes``), so the level is one code sequence like the reference's; measured cost in sound:
  benchmarks/README.md. The lane count (``lane_count``) comes from the length (a lane holds at least one
  context), the takes and the device (at most ``max_rows`` rows per batch); a short level uses one lane,
  which is the reference schedule. A level is saved once all its lanes finish.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.model.fast.static_step import StaticDecoder
from engine.model.prior import Prior
from engine.runtime.progress import CancelToken


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    chunk_size: int = 32  # tokens per prefill call (the reference: 32, or 16 for 5b)
    hop_fractions: tuple[float, ...] = (0.5, 0.5, 0.125)  # per level, bottom first
    dtype: torch.dtype | None = None  # transformer precision; None = the weights' (fp32 on CPU)
    # Per-token steps as one torch.compile graph (``model.fast.static_step.StaticDecoder``): about 2x faster per token on CPU,
    # after a one-off compile of ~10-60 s per prior, batch size and dtype (cached on disk by Inductor).
    compile: bool = False
    # Window schedule of the upsampling levels (module docstring): "parallel" (the engine's default) or "reference"
    # (the reference implementation's sequential windows, exactly; parity uses it). The top level is always sequential.
    schedule: str = "parallel"
    lanes: int = 0  # parallel schedule: at most this many lanes per level; 0 = as many as the length and device allow

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}; got {self.schedule!r}")
        if self.lanes < 0:
            raise ValueError(f"lanes must be >= 0 (0: automatic); got {self.lanes}")


SCHEDULES = ("parallel", "reference")


@dataclass(frozen=True)
class Window:
    level: int
    index: int
    start: int  # first token of the window
    end: int  # one past its last token

    @property
    def length(self) -> int:
        return self.end - self.start


def window_starts(total: int, n_ctx: int, hop: int) -> list[int]:
    """The reference's window starts: every ``hop`` tokens, the last one flush with the end."""
    if total <= n_ctx:
        return [0]
    starts = []
    for start in range(0, total - n_ctx + hop, hop):
        starts.append(min(start, total - n_ctx))
    return starts


def plan_windows(level: int, total: int, n_ctx: int, hop_fraction: float) -> list[Window]:
    hop = max(1, int(hop_fraction * n_ctx))
    return [Window(level, i, s, min(s + n_ctx, total)) for i, s in enumerate(window_starts(total, n_ctx, hop))]


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Keep the ``top_k`` best and the smallest set with probability >= ``top_p``; others to -inf. (N, V)."""
    logits = logits.clone()
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits[logits < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cumulative > top_p
        remove[..., 1:] = remove[..., :-1].clone()  # keep the token that crosses top_p
        remove[..., 0] = False
        logits[remove.scatter(-1, order, remove)] = float("-inf")
    return logits


def draw(logits: Tensor, params: SamplingParams, generators: list[torch.Generator]) -> Tensor:
    """One token per row (N,) from logits (N, V), each row with its own generator.

    Inverse-CDF sampling: each row draws one float64 uniform u from its own generator and takes the first
    token whose cumulative probability exceeds u * total, which is an exact draw from that row's
    distribution (tokens of probability 0 are never chosen). One uniform per row instead of
    ``torch.multinomial``'s V exponentials, and one batched search instead of a loop over rows.
    """
    return draw_with_uniforms(logits, params, uniforms(generators, 1)[:, 0])


def uniforms(generators: list[torch.Generator], n: int) -> Tensor:
    """(N, n) float64 uniforms in [0, 1), row i the next n draws of generator i (as n one-draw calls)."""
    return torch.stack([torch.rand(n, dtype=torch.float64, generator=g) for g in generators])


def draw_with_uniforms(logits: Tensor, params: SamplingParams, u: Tensor) -> Tensor:
    """``draw`` with each row's uniform u (N,) given: a sampling loop draws a window's uniforms at once."""
    device = logits.device
    logits = logits.float() if device.type != "mps" else logits.float().cpu()  # MPS has no float64 for the CDF
    if params.temperature != 1.0:
        logits = logits / params.temperature
    if params.top_k or params.top_p < 1.0:
        logits = filter_logits(logits, params.top_k, params.top_p)
    cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1, dtype=torch.float64)
    if u.device != cdf.device:
        u = u.to(cdf.device)
    # u < 1 in steps of 2**-53, so u * total rounds strictly below total: the last positive token bounds it
    token = torch.searchsorted(cdf, u[:, None] * cdf[:, -1:], right=True)
    return token.view(-1).clamp_(max=cdf.shape[-1] - 1).to(device)


def window_generators(seeds: list[int], window: Window) -> list[torch.Generator]:
    """Independent, reproducible generators per take for one window."""
    return [torch.Generator().manual_seed(zlib.crc32(f"{s}/{window.level}/{window.index}".encode()))
            for s in seeds]


def sample_window(prior: Prior, y: Tensor, known: Tensor, length: int, params: SamplingParams, seeds: list[int],
                  window: Window, upper: Tensor | None = None, on_token: Callable[[], None] = lambda: None) -> Tensor:
    """Music codes known (N, L) at the window's start -> (N, length): the known ones kept, the rest sampled.

    ``y`` (N, y_len) is the window's label; ``upper`` the level-above codes covering this window.
    """
    return sample_rows(prior, y, known, None, length, params, window_generators(seeds, window), upper, on_token)


def sample_rows(prior: Prior, y: Tensor, known: Tensor, known_len: Tensor | None, length: int, params: SamplingParams,
                gens: list[torch.Generator], upper: Tensor | None = None,
                on_token: Callable[[], None] = lambda: None) -> Tensor:
    """``sample_window`` with each row's generator given and, optionally, its own number of known tokens.

    known (N, K): row i's first ``known_len[i]`` tokens are kept (None: all K of every row). The tokens all
    rows know are prefilled; beyond them each row steps one token at a time, fed its known token where it
    has one and a draw where not (``u`` of row i at position p is its (p - min known)-th uniform either way).
    """
    with torch.inference_mode():  # ~12 % less per-step overhead than no_grad (no version counters)
        common = known.shape[1] if known_len is None else int(known_len.min())
        forced = None
        if known_len is not None and common < known.shape[1]:
            positions = torch.arange(known.shape[1], device=known.device)
            forced = (positions[None, :] < known_len[:, None].to(known.device), known)  # (mask, tokens)
        cond = prior.conditioning(y, upper, params.dtype)
        seq = prior.to_model_tokens(known[:, :common], y)  # 1b_lyrics: [lyrics | known + 79]
        cache = prior.start_cache(cond, params.dtype)
        logits = prior.prefill(cache, seq, params.chunk_size)[:, -1]  # validates the window's inputs
        shift = prior.cfg.music_shift  # never sample a lyric id at a music position: draw among codes only
        if params.compile and length - common > 1:
            step = StaticDecoder(prior, cache, compile=True)
        else:
            step = lambda token: prior.step_unchecked(cache, token)[:, -1]  # noqa: E731
        tokens, u = [], uniforms(gens, length - common)
        for i in range(common, length):
            token = draw_with_uniforms(logits[:, shift:], params, u[:, i - common])[:, None]
            if forced is not None and i < forced[1].shape[1]:  # rows that know position i keep their token
                token = torch.where(forced[0][:, i: i + 1], forced[1][:, i: i + 1], token)
            if shift:
                token = token + shift
            tokens.append(token)
            on_token()
            if i + 1 < length:  # tokens drawn here are valid by construction: no per-step checks
                logits = step(token)
        out = prior.from_model_tokens(torch.cat([seq, *tokens], dim=1))
    return out.clone()  # a normal tensor again: callers may modify it in place


@dataclass
class LevelJob:
    """What is needed to sample one level: its prior, target length and the per-window labels."""

    prior: Prior
    total: int  # tokens this level must hold at the end
    labels: Callable[[int], Tensor]  # window start token -> y (N, y_len)
    upper: Tensor | None = None  # (N, total / upsampling) codes of the level above


def sample_level(job: LevelJob, codes: Tensor, params: SamplingParams, seeds: list[int],
                 on_token: Callable[[], None] = lambda: None,
                 on_window: Callable[[Window, Tensor], None] = lambda w, z: None,
                 cancel: CancelToken | None = None) -> Tensor:
    """Extend codes (N, have) to (N, job.total), window by window; ``on_window`` sees codes after each."""
    cfg = job.prior.cfg
    if codes.shape[1] > job.total:
        raise ValueError(f"level {cfg.level} already holds {codes.shape[1]} > {job.total} tokens")
    up = cfg.cond_stride**cfg.cond_down_t if cfg.has_upper_conditioner else 1
    for window in plan_windows(cfg.level, job.total, cfg.n_ctx, params.hop_fractions[cfg.level]):
        have = codes.shape[1]
        if have >= window.end:
            continue  # primed, or done before an interruption
        if cancel is not None:
            cancel.raise_if_cancelled()
        upper = None if job.upper is None else job.upper[:, window.start // up: -(-window.end // up)]
        out = sample_window(job.prior, job.labels(window.start), codes[:, window.start:have], window.length,
                            params, seeds, window, upper, on_token)
        codes = torch.cat([codes, out[:, have - window.start:]], dim=1)
        on_window(window, codes)
    return codes


def tokens_to_sample(prior: Prior, have: int, total: int, hop_fraction: float) -> int:
    """How many tokens ``sample_level`` will draw, for progress and ETA."""
    n, count = have, 0
    for window in plan_windows(prior.cfg.level, total, prior.cfg.n_ctx, hop_fraction):
        if n < window.end:
            count, n = count + window.end - n, window.end
    return count
