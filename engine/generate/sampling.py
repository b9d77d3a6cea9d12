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
  (``join_lanes``), so the level is one code sequence like the reference's, decoded and saved as before
  (an equal-power crossfade of the lanes' audio measured no better; figures: benchmarks/README.md,
  "Upsampling schedules"). The lane count (``lane_count``) comes from the length (a lane holds at least
  half a context), the takes and the device (at most ``max_rows`` rows per batch); a short level uses one
  lane, which is the reference schedule. A level is saved once all its lanes finish. A take's upsampled
  codes depend on its lanes, so under this schedule a take reproduces alone or in a batch as long as
  the lane count is the same (it is while takes x lanes fit the device's rows).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.model.fast.static_step import WARM, StaticDecoder, inverse_cdf
from engine.model.prior import START, Prior
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
    # after a one-off compile of ~10-60 s per prior, batch size and dtype (cached on disk by Inductor). True compiles
    # before the first step (the caller waits); "warm" runs compiled only shapes already compiled and queues the others
    # for the background compiler (``static_step.WARM``), so nothing ever waits: the engine's and CLI's choice.
    compile: bool | str = False
    # Window schedule of the upsampling levels (module docstring): "parallel" (the engine's default) or "reference"
    # (the reference implementation's sequential windows, exactly; parity uses it). The top level is always sequential.
    schedule: str = "parallel"
    lanes: int = 0  # parallel schedule: at most this many lanes per level; 0 = as many as the length and device allow
    # Prime adherence (``PromptPhrases``, ``adhere``): the share of each draw of the top level taken from the phrases
    # of its prompt (a cache model); 0 = off (the reference's sampling). Needs ``LevelJob.prime``.
    adherence: float = 0.0

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}; got {self.schedule!r}")
        if self.lanes < 0:
            raise ValueError(f"lanes must be >= 0 (0: automatic); got {self.lanes}")
        if not 0.0 <= self.adherence <= 1.0:
            raise ValueError(f"adherence must be from 0 (off) to 1; got {self.adherence}")
        if self.compile not in (False, True, "warm"):
            raise ValueError(f'compile must be False, True or "warm"; got {self.compile!r}')


SCHEDULES = ("parallel", "reference")


def _compiled_now(prior: Prior, rows: int, params: SamplingParams) -> bool:
    """Whether this window runs the compiled step: always for ``compile=True``; for "warm" only once the
    background compiler has this shape (else it is queued there and this window runs eager)."""
    if params.compile is True:
        return True
    if WARM.ready(prior, rows, params.dtype):
        return True
    WARM.want(prior, rows, params.dtype)
    return False


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


PHRASE_ORDER = 3  # n-grams of the prompt's codes: up to two codes of context (orders 2, 3 and 5 measured)


class PromptPhrases:
    """The prompt's codes as an n-gram cache (a cache language model: Kuhn & De Mori 1990): for the last tokens
    drawn, which codes followed the same tokens in the prompt. The top level's codes carry pitch in their
    sequence, not one by one (benchmarks: the prompt's codes shuffled keep no chroma, in 46-ms blocks most of it),
    so what is cached is what follows what: a draw from it continues one of the prompt's phrases."""

    def __init__(self, prime: Tensor, bins: int, order: int = PHRASE_ORDER):
        self.bins, self.context = bins, order - 1
        self.tables: list[dict[tuple[int, ...], list[int]]] = []
        for row in prime.tolist():
            table: dict[tuple[int, ...], list[int]] = {}
            for k in range(1, self.context + 1):
                for i in range(k, len(row)):
                    table.setdefault(tuple(row[i - k: i]), []).append(row[i])
            self.tables.append(table)

    def follow(self, history: list[list[int]]) -> tuple[Tensor, Tensor]:
        """Each row's recent codes -> (the prompt's next-code distribution (N, bins), whether it has one (N, 1)):
        the longest context the prompt holds, backing off to one token; no match leaves the row to the prior."""
        dist, has = torch.zeros(len(history), self.bins), torch.zeros(len(history), 1)
        for r, (table, recent) in enumerate(zip(self.tables, history)):
            for k in range(min(self.context, len(recent)), 0, -1):
                following = table.get(tuple(recent[-k:]))
                if following:
                    dist[r] = torch.bincount(torch.tensor(following), minlength=self.bins).float() / len(following)
                    has[r] = 1.0
                    break
        return dist, has


def adhere(logits: Tensor, phrases: tuple[Tensor, Tensor], adherence: float) -> Tensor:
    """Music logits (N, V) and ``PromptPhrases.follow``'s (dist, has) -> log of (1 - a) p_prior + a p_prompt
    where the prompt has a continuation of the recent codes, else the prior's log-probabilities."""
    dist, has = phrases
    weight = adherence * has.to(logits.device)
    return torch.log((1.0 - weight) * F.softmax(logits.float(), dim=-1) + weight * dist.to(logits.device))


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
    return inverse_cdf(logits, u.to(logits.device)).view(-1).to(device)


def window_generators(seeds: list[int], window: Window) -> list[torch.Generator]:
    """Independent, reproducible generators per take for one window."""
    return [torch.Generator().manual_seed(zlib.crc32(f"{s}/{window.level}/{window.index}".encode()))
            for s in seeds]


def sample_window(prior: Prior, y: Tensor, known: Tensor, length: int, params: SamplingParams, seeds: list[int],
                  window: Window, upper: Tensor | None = None, on_token: Callable[[], None] = lambda: None,
                  pool: "PromptPhrases | None" = None) -> Tensor:
    """Music codes known (N, L) at the window's start -> (N, length): the known ones kept, the rest sampled.

    ``y`` (N, y_len) is the window's label; ``upper`` the level-above codes covering this window; ``pool``
    the prompt's phrases that ``params.adherence`` mixes in (``adhere``).
    """
    return sample_rows(prior, y, known, None, length, params, window_generators(seeds, window), upper, on_token,
                       pool)


def sample_rows(prior: Prior, y: Tensor, known: Tensor, known_len: Tensor | None, length: int, params: SamplingParams,
                gens: list[torch.Generator], upper: Tensor | None = None,
                on_token: Callable[[], None] = lambda: None, pool: "PromptPhrases | None" = None) -> Tensor:
    """``sample_window`` with each row's generator given and, optionally, its own number of known tokens.

    known (N, K): row i's first ``known_len[i]`` tokens are kept (None: all K of every row). The tokens all
    rows know are prefilled; beyond them each row steps one token at a time, fed its known token where it
    has one and a draw where not (``u`` of row i at position p is its (p - min known)-th uniform either way).
    """
    mix = pool is not None and params.adherence > 0  # each draw partly from the prompt's phrases (``adhere``)
    with torch.inference_mode():  # ~12 % less per-step overhead than no_grad (no version counters)
        common = known.shape[1] if known_len is None else int(known_len.min())
        forced = None
        if known_len is not None and common < known.shape[1]:
            positions = torch.arange(known.shape[1], device=known.device)
            forced = (positions[None, :] < known_len[:, None].to(known.device),  # (mask, model tokens)
                      known + prior.cfg.music_shift)
        cond = prior.conditioning(y, upper, params.dtype)
        seq = prior.to_model_tokens(known[:, :common], y)  # 1b_lyrics: [lyrics | known + 79]
        cache = prior.start_cache(cond, params.dtype)
        # ``Prior.prefill`` chunk by chunk (validating the window's inputs), keeping the last position's logits only:
        # all of them would be rows x known x bins floats (84 MB for 20 rows of a 512-token prime over 2048 bins)
        for chunk in F.pad(seq, (1, 0), value=START).split(params.chunk_size, dim=1):
            logits = prior.step(cache, chunk)[:, -1]
        shift = prior.cfg.music_shift  # never sample a lyric id at a music position: draw among codes only
        fused = None  # the compiled step draws the next token in its own graph (no top-k/top-p to apply)
        if params.compile and length - common > 1 and _compiled_now(prior, known.shape[0], params):
            step = StaticDecoder(prior, cache, compile=True)
            if not (params.top_k or params.top_p < 1.0 or mix) and known.device.type != "mps":  # MPS: no float64 CDF
                fused = torch.tensor(params.temperature, device=known.device)
        else:
            step = lambda token: prior.step_unchecked(cache, token)[:, -1]  # noqa: E731
        tokens, u = [], uniforms(gens, length - common)
        history = known[:, :common].tolist() if mix else None  # codes so far, for the prompt's phrases
        if fused is not None:  # (positions, N), strides (N, 1) even for N = 1: the compiled step guards on strides
            u_steps = torch.empty((u.shape[1], u.shape[0]), dtype=u.dtype, device=known.device).copy_(u.t())
        drawn, unforced = None, common if forced is None else forced[1].shape[1]
        block = step.steps_per_call if fused is not None else 1
        i = common
        while i < length:
            if drawn is None:
                scores = adhere(logits[:, shift:], pool.follow(history), params.adherence) if mix else logits[:, shift:]
                token = draw_with_uniforms(scores, params, u[:, i - common])[:, None] + shift
            else:
                token = drawn
            if forced is not None and i < forced[1].shape[1]:  # rows that know position i keep their token
                token = torch.where(forced[0][:, i: i + 1], forced[1][:, i: i + 1], token)
            tokens.append(token)
            if mix:
                for row, code in zip(history, (token[:, 0] - shift).tolist()):
                    row.append(code)
            on_token()
            if block > 1 and i + block < length and i + 1 >= unforced:  # K drawn in one call; the last one goes round
                drawn = step.draw_steps(token, u_steps[i + 1 - common: i + 1 - common + block], fused)
                for k in range(block - 1):
                    tokens.append(drawn[:, k: k + 1])
                    on_token()
                # the next step's input with a plain column's strides (a strided view would fail a guard: recompile)
                drawn, i = drawn[:, -1:].clone(memory_format=torch.contiguous_format), i + block
                continue
            if i + 1 < length:  # tokens drawn here are valid by construction: no per-step checks
                if fused is not None:
                    logits, drawn = step.step_and_draw(token, u_steps[i + 1 - common], fused)
                else:
                    logits = step(token)
            i += 1
        out = prior.from_model_tokens(torch.cat([seq, *tokens], dim=1))
    return out.clone()  # a normal tensor again: callers may modify it in place


@dataclass
class LevelJob:
    """What is needed to sample one level: its prior, target length and the per-window labels."""

    prior: Prior
    total: int  # tokens this level must hold at the end
    labels: Callable[[int], Tensor]  # window start token -> y (N, y_len)
    upper: Tensor | None = None  # (N, total / upsampling) codes of the level above
    prime: int = 0  # the first ``prime`` codes are the prompt (continue, prime): what prime adherence draws from


def sample_level(job: LevelJob, codes: Tensor, params: SamplingParams, seeds: list[int],
                 on_token: Callable[[], None] = lambda: None,
                 on_window: Callable[[Window, Tensor], None] = lambda w, z: None,
                 cancel: CancelToken | None = None, lane_runner: "LaneRunner | None" = None) -> Tensor:
    """Extend codes (N, have) to (N, job.total), window by window; ``on_window`` sees codes after each.

    Under the parallel schedule an upsampling level is sampled in lanes (``lane_runner``, by default
    ``sample_lanes`` in this process) and joined; ``on_window`` then sees the level once, complete, with a window
    spanning the lanes."""
    cfg = job.prior.cfg
    if codes.shape[1] > job.total:
        raise ValueError(f"level {cfg.level} already holds {codes.shape[1]} > {job.total} tokens")
    lanes = level_lanes(job.prior, codes.shape[1], job.total, params, codes.shape[0]) if job.upper is not None else []
    if lanes:
        codes = join_lanes(codes, (lane_runner or sample_lanes)(job, codes, params, seeds, lanes, on_token, cancel),
                           lanes)
        on_window(Window(cfg.level, 0, lanes[0].start, job.total), codes)
        return codes
    up = cfg.upsampling
    # the whole prompt's phrases, not just the window's: a long continuation keeps drawing on them
    pool = PromptPhrases(codes[:, :job.prime], cfg.bins) if params.adherence > 0 and job.prime else None
    for window in plan_windows(cfg.level, job.total, cfg.n_ctx, params.hop_fractions[cfg.level]):
        have = codes.shape[1]
        if have >= window.end:
            continue  # primed, or done before an interruption
        if cancel is not None:
            cancel.raise_if_cancelled()
        upper = None if job.upper is None else job.upper[:, window.start // up: -(-window.end // up)]
        out = sample_window(job.prior, job.labels(window.start), codes[:, window.start:have], window.length,
                            params, seeds, window, upper, on_token, pool)
        codes = torch.cat([codes, out[:, have - window.start:]], dim=1)
        on_window(window, codes)
    return codes


# ------------------------------------------------------------------------------------ parallel schedule

# Rows (takes x lanes) of one batch per device: on a CPU a tiny prior's step costs 1.1 ms at 1 row, 2.2 ms at 16 and
# 3.4 ms at 32 (the default model's level 0, 1 thread), so up to ~32 rows cost little more than one.
MAX_ROWS = {"cpu": 32, "mps": 64, "cuda": 256}
OVERLAP_FRACTION = 16  # lanes overlap by at least n_ctx / 16 tokens (default model level 0: 32 tokens, 23 ms)
# A lane holds at least n_ctx / LANE_FRACTION tokens. Half a context: as good as whole ones in the sound
# measurements (bench_schedule.py --part sound: spectral convergence, flux and > 5 kHz energy at the joins) and
# half the sequential steps per level (benchmarks/README.md, "Upsampling schedules").
LANE_FRACTION = 2


@dataclass(frozen=True)
class Lane:
    """One lane of a level under the parallel schedule: tokens [start, end), the first ``known`` of them known."""

    level: int
    index: int
    start: int
    end: int
    known: int = 0  # lane 0: the level's codes already there (a prime) that it starts from

    @property
    def length(self) -> int:
        return self.end - self.start


def max_rows(device: torch.device | str) -> int:
    """Rows (takes x lanes) the parallel schedule batches on this kind of device."""
    return MAX_ROWS.get(torch.device(device).type, MAX_ROWS["cpu"])


def lane_count(new: int, n_ctx: int, takes: int, device: torch.device | str, limit: int = 0) -> int:
    """Lanes for a level with ``new`` tokens to sample: each lane holds at least ``n_ctx / LANE_FRACTION`` tokens,
    takes x lanes at most ``max_rows(device)`` (but at least one lane), and at most ``limit`` lanes when given."""
    count = min(new // max(1, n_ctx // LANE_FRACTION), max(1, max_rows(device) // max(1, takes)))
    return max(1, min(count, limit) if limit else count)


def plan_lanes(level: int, have: int, total: int, n_ctx: int, count: int, overlap: int, align: int = 1) -> list[Lane]:
    """``count`` equal lanes covering tokens [have, total) with consecutive lanes overlapping by at least ``overlap``;
    [] when the level is too short to split (then the reference schedule applies).

    Lane 0 starts up to ``n_ctx / 2`` tokens before ``have``, on the known codes (its prime); the last lane ends
    at ``total``. Starts and lengths are multiples of ``align`` (the upsampling factor), so every lane's windows
    line up with the codes of the level above as the reference's windows do.
    """
    if count < 2 or total % align:
        return []
    first = (have - min(have, n_ctx // 2)) // align * align
    region = total - first
    length = -(-(region + (count - 1) * (overlap + align)) // count)
    length = -(-length // align) * align
    if length >= region or length <= have - first:
        return []
    starts = [first + i * (region - length) // (count - 1) // align * align for i in range(count)]
    return [Lane(level, i, s, s + length, have - first if i == 0 else 0) for i, s in enumerate(starts)]


def level_lanes(prior: Prior, have: int, total: int, params: SamplingParams, takes: int) -> list[Lane]:
    """The lanes ``sample_level`` uses for this level, or [] for window-by-window sampling (the reference schedule,
    the top level, or a level too short for two lanes)."""
    cfg = prior.cfg
    if params.schedule != "parallel" or not cfg.has_upper_conditioner:
        return []
    up, hop = cfg.upsampling, max(1, int(params.hop_fractions[cfg.level] * cfg.n_ctx))
    if cfg.n_ctx % up or hop % up:  # lane windows would not line up with the upper codes
        return []
    device = next(prior.parameters()).device
    count = lane_count(total - have, cfg.n_ctx, takes, device, params.lanes)
    return plan_lanes(cfg.level, have, total, cfg.n_ctx, count, max(2, cfg.n_ctx // OVERLAP_FRACTION), up)


def lane_generators(seeds: list[int], lanes: list[Lane], window: Window) -> list[torch.Generator]:
    """Generators of one lane window, take-major (take i, lane j is row i * len(lanes) + j)."""
    return [torch.Generator().manual_seed(zlib.crc32(f"{s}/{lane.level}/lane{lane.index}/{window.index}".encode()))
            for s in seeds for lane in lanes]


def sample_lanes(job: LevelJob, codes: Tensor, params: SamplingParams, seeds: list[int], lanes: list[Lane],
                 on_token: Callable[[], None] = lambda: None, cancel: CancelToken | None = None) -> Tensor:
    """The codes (N, L, lane length) of every lane, all lanes of all takes advanced together in one batch.

    Each lane goes through the same windows relative to its start (``plan_windows`` over its length), each
    window conditioned on the upper codes and labels of the lane's own span; lane 0 keeps the ``known`` codes
    of ``codes`` it starts on. ``on_token`` is called once per step of the batch.
    """
    cfg = job.prior.cfg
    n, count, length, first = codes.shape[0], len(lanes), lanes[0].length, lanes[0]
    up = cfg.upsampling
    out = codes.new_zeros(n * count, 0)
    for window in plan_windows(cfg.level, length, cfg.n_ctx, params.hop_fractions[cfg.level]):
        have = out.shape[1]
        if cancel is not None:
            cancel.raise_if_cancelled()
        known, known_len = out[:, window.start:have], None
        if window.start == 0 and first.known:  # lane 0 starts on the level's prime; the others from scratch
            known = codes.new_zeros(n, count, first.known)
            known[:, 0] = codes[:, first.start: first.start + first.known]
            known = known.flatten(0, 1)
            known_len = (torch.arange(count).repeat(n) == 0).long() * first.known
        y = torch.stack([job.labels(lane.start + window.start) for lane in lanes], dim=1).flatten(0, 1)
        upper = None
        if job.upper is not None:
            upper = torch.stack([job.upper[:, (lane.start + window.start) // up: -(-(lane.start + window.end) // up)]
                                 for lane in lanes], dim=1).flatten(0, 1)
        z = sample_rows(job.prior, y, known, known_len, window.length, params, lane_generators(seeds, lanes, window),
                        upper, on_token)
        out = torch.cat([out, z[:, have - window.start:]], dim=1)
    return out.view(n, count, length)


# How a level's lanes get sampled: ``sample_lanes`` here, or spread over machines (``batch.cluster.spread_lanes``).
# Any runner must return what ``sample_lanes`` returns for the same arguments: each lane's draws come from its
# own generators (``lane_generators``), so a lane sampled anywhere, in any group, gives the same codes.
LaneRunner = Callable[[LevelJob, Tensor, SamplingParams, list[int], list[Lane], Callable[[], None],
                       "CancelToken | None"], Tensor]


def lane_positions(job: LevelJob, lanes: list[Lane], params: SamplingParams) -> list[int]:
    """The window starts (tokens) whose labels ``sample_lanes`` asks ``job.labels`` for, for these lanes."""
    cfg = job.prior.cfg
    windows = plan_windows(cfg.level, lanes[0].length, cfg.n_ctx, params.hop_fractions[cfg.level])
    return sorted({lane.start + w.start for lane in lanes for w in windows})


def join_lanes(codes: Tensor, lane_codes: Tensor, lanes: list[Lane]) -> Tensor:
    """Codes known (N, have) and lane codes (N, L, lane length) -> the level (N, total): each lane up to the middle of
    its overlap with the next (never before ``have``), the known codes before lane 0's new ones."""
    pos = lanes[0].start + lanes[0].known
    parts = [codes[:, :pos]]
    for i, lane in enumerate(lanes):
        end = lane.end if i + 1 == len(lanes) else max(pos, (lanes[i + 1].start + lane.end) // 2)
        parts.append(lane_codes[:, i, pos - lane.start: end - lane.start])
        pos = end
    return torch.cat(parts, dim=1)


def tokens_to_sample(prior: Prior, have: int, total: int, hop_fraction: float, params: SamplingParams | None = None,
                     takes: int = 1) -> int:
    """How many steps (``on_token`` calls) ``sample_level`` will make, for progress and ETA; with ``params``
    the schedule's (a parallel level steps once per token of one lane, all lanes at once)."""
    lanes = level_lanes(prior, have, total, params, takes) if params is not None else []
    if lanes:
        return lanes[0].length
    n, count = have, 0
    for window in plan_windows(prior.cfg.level, total, prior.cfg.n_ctx, hop_fraction):
        if n < window.end:
            count, n = count + window.end - n, window.end
    return count
