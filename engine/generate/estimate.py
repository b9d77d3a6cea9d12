"""How long a render will take on this machine, before it starts: from measured tokens per second.

``measure_speed`` times every prior's token step (with the draw), 32-token prefill chunk and window
conditioning, at 1 and ``WIDE_ROWS`` rows (the batch of takes x lanes a render uses), and a VQ-VAE decode,
in the precision ``render`` samples in. ``measured_speed``
keeps the result per model, device and thread count in the user cache (an official model's first start
measures for a few seconds; later starts read it). ``estimate_seconds`` walks the same schedule ``render``
does (levels, windows, lanes: ``sampling.plan_windows``/``level_lanes``) and prices its windows, prefill
chunks and token steps. ``check_render_time``
turns an estimate above the limit (the request's ``max_wait``, else the engine's, default ``DEFAULT_MAX_WAIT``;
0 = none) into a ``too_long`` error that says how long it would take and offers draft quality or the longest
length that fits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from engine.errors import ErrorCode, RequestError
from engine.request import RenderRequest

DEFAULT_MAX_WAIT = 300.0  # seconds: longer renders are refused with an offer unless the request says max_wait 0
WIDE_ROWS = 4  # the second batch size timed; other sizes are interpolated linearly (cost grows slowly with rows)
SPEED_FILE_ENV = "JUKEBOX_BRIDGE_SPEED_FILE"


@dataclass(frozen=True)
class Speed:
    """Measured on this machine, per level (bottom first), each at 1 and ``WIDE_ROWS`` rows: seconds of one
    token step (the prior's step and the draw), of one 32-token prefill chunk, and of a window's conditioning;
    and decode seconds per second of audio."""

    device: str
    step_seconds: dict[int, tuple[float, float]]
    chunk_seconds: dict[int, tuple[float, float]]
    window_seconds: dict[int, tuple[float, float]]
    decode_rtf: float

    @staticmethod
    def _at(pair: tuple[float, float], rows: int) -> float:
        one, wide = pair
        return max(one, one + (wide - one) * (rows - 1) / (WIDE_ROWS - 1))

    def step(self, level: int, rows: int) -> float:
        return self._at(self.step_seconds[level], rows)

    def chunk(self, level: int, rows: int) -> float:
        return self._at(self.chunk_seconds[level], rows)

    def window(self, level: int, rows: int) -> float:
        return self._at(self.window_seconds[level], rows)

    def tokens_per_second(self, level: int) -> float:
        return 1.0 / self.step_seconds[level][0]

    def to_json(self) -> dict[str, Any]:
        pairs = lambda d: {str(k): list(v) for k, v in d.items()}  # noqa: E731
        return {"device": self.device, "decode_rtf": self.decode_rtf, "step_seconds": pairs(self.step_seconds),
                "chunk_seconds": pairs(self.chunk_seconds), "window_seconds": pairs(self.window_seconds)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Speed":
        pairs = lambda x: {int(k): (float(v[0]), float(v[1])) for k, v in x.items()}  # noqa: E731
        return cls(d["device"], pairs(d["step_seconds"]), pairs(d["chunk_seconds"]), pairs(d["window_seconds"]),
                   float(d["decode_rtf"]))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure_level(models: Any, level: int, rows: int, steps: int = 3, chunk: int = 32) -> tuple[float, float, float]:
    """(token step, prefill chunk, window conditioning) seconds of level ``level``'s prior for ``rows`` rows: the
    engine's own labels, zero codes above, the sampling precision, medians after a warm-up."""
    from engine.generate.conditioning import label_fn
    from engine.generate.render import sampling_dtype
    from engine.generate.sampling import SamplingParams, draw_with_uniforms
    from engine.model.prior import START

    prior = models.priors[level]
    cfg, device, dtype = prior.cfg, models.device, sampling_dtype(models)
    chunk = max(1, min(chunk, (cfg.n_ctx_total - steps - 2) // 2))  # a tiny test prior's context is short
    span = cfg.n_ctx * cfg.raw_to_tokens
    y = label_fn(models, level, RenderRequest.from_fields("generate", {}), 2 * span, rows)(0)
    upper = (torch.zeros(rows, cfg.n_ctx // cfg.upsampling, dtype=torch.long, device=device)
             if cfg.has_upper_conditioner else None)
    params = SamplingParams()
    with torch.inference_mode():
        prior.conditioning(y, upper, dtype)  # warm-up
        window = _timed(lambda: prior.conditioning(y, upper, dtype), device)
        cond = prior.conditioning(y, upper, dtype)
        cache = prior.start_cache(cond, dtype)
        tokens = torch.full((rows, chunk), cfg.music_shift, dtype=torch.long, device=device)
        prior.step(cache, torch.cat([torch.full_like(tokens[:, :1], START), tokens[:, 1:]], dim=1))  # warm-up
        chunk_s = _timed(lambda: prior.step(cache, tokens, validate=False), device)
        u = torch.rand(rows, dtype=torch.float64)
        logits = prior.step(cache, tokens[:, :1], validate=False)[:, -1]  # warm-up

        def one() -> None:
            nonlocal logits
            token = draw_with_uniforms(logits[:, cfg.music_shift:], params, u)[:, None] + cfg.music_shift
            logits = prior.step_unchecked(cache, token)[:, -1]

        times = [_timed(one, device) for _ in range(steps)]
    return statistics.median(times), chunk_s, window


def measure_speed(models: Any, steps: int = 3) -> Speed:
    """Time every prior at 1 and ``WIDE_ROWS`` rows, and a 1-s decode from level 0."""
    step, chunk, window = {}, {}, {}
    for level in range(models.levels):
        one, wide = measure_level(models, level, 1, steps), measure_level(models, level, WIDE_ROWS, steps)
        step[level], chunk[level], window[level] = (one[0], wide[0]), (one[1], wide[1]), (one[2], wide[2])
    vq = models.vqvae
    hop = vq.hop_lengths[0]
    z = torch.zeros(1, max(1, models.sample_rate // hop), dtype=torch.long, device=models.device)
    with torch.inference_mode():
        vq.decode(z, 0, precision="fp32")  # warm-up (kernels for this length)
        rtf = _timed(lambda: vq.decode(z, 0, precision="fp32"), models.device) / (z.shape[1] * hop / models.sample_rate)
    return Speed(str(models.device), step, chunk, window, rtf)


def _speed_file() -> Path:
    if os.environ.get(SPEED_FILE_ENV):
        return Path(os.environ[SPEED_FILE_ENV])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("jukebox-bridge")) / "speed.json"


def _speed_key(models: Any) -> str:
    params = sum(p.numel() for prior in models.priors for p in prior.parameters())
    dtypes = sorted({str(p.dtype) for prior in models.priors for p in prior.parameters()})
    return f"{models.name}|{params}|{'+'.join(dtypes)}|{models.device}|threads={torch.get_num_threads()}|torch={torch.__version__}"


def measured_speed(models: Any, log: Callable[[str], None] = lambda m: None, cache: bool | None = None) -> Speed:
    """This machine's speed for ``models``: from the user cache, else measured now (and saved there). ``cache``
    None: cached for every model but the debug models of the tests, whose speed is measured every time."""
    if cache is None:
        cache = not models.is_debug
    path, key = _speed_file(), _speed_key(models)
    saved: dict[str, Any] = {}
    if cache and path.exists():
        try:
            saved = json.loads(path.read_text())
            if key in saved:
                return Speed.from_json(saved[key])
        except (OSError, ValueError, KeyError, TypeError):
            saved = {}
    log(f"measuring this machine's speed with model {models.name} on {models.device} (once; a few seconds "
        f"for an official model)")
    speed = measure_speed(models)
    log("tokens/s per level (bottom first): " + ", ".join(f"{speed.tokens_per_second(lv):.1f}"
                                                          for lv in sorted(speed.step_seconds)))
    if cache:
        try:
            from engine.io.files import atomic_write_text

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps({**saved, key: speed.to_json()}, indent=1), overwrite=True)
        except OSError:
            pass  # measured again next start
    return speed


# ------------------------------------------------------------------------------------------ the estimate


def _region_seconds(req: RenderRequest) -> float | None:
    if req.source is None:
        return None
    if req.length is not None:
        return req.length
    try:
        import soundfile as sf

        return max(0.0, sf.info(req.source).duration - req.start)
    except Exception:  # unreadable: the job reports that itself
        return None


def estimate_seconds(models: Any, req: RenderRequest, speed: Speed) -> float | None:
    """Seconds ``render`` will take for ``req`` on the measured machine (None when the source is unreadable)."""
    from engine.generate.render import default_sampling
    from engine.generate.sampling import level_lanes, plan_windows
    from engine.generate.source import prompt_length

    hops, sr, top = models.vqvae.hop_lengths, models.sample_rate, models.levels - 1
    top_hop = hops[-1]
    new = -(-int(round(req.target_seconds * sr)) // top_hop) * top_hop
    region = _region_seconds(req)
    if req.source is not None and region is None:
        return None
    have_samples = 0
    known: dict[int, int] = {}  # level -> codes known before sampling, where not the prompt's (refine)
    if req.mode == "refine":  # the draft's levels are kept; the levels below it are upsampled over its span
        from engine.generate.refine import load_draft

        draft = load_draft(req.source)
        total = decoded = draft.total
        first = draft.decode_level - 1
        known = {lv: int(z.shape[-1]) for lv, z in draft.codes.codes.items()}
    elif req.mode == "rerender":
        total = -(-int(round(region * sr)) // top_hop) * top_hop
        first = top - 1 if req.level is None else min(req.level, top)
        decoded = total
    elif req.mode == "generate":
        total, first, decoded = new, top, new
    else:  # continue / prime: the region's tail is the prompt
        have_samples = prompt_length(models, int(region * sr))
        total, first, decoded = have_samples + new, top, have_samples + new
    last = first if req.quality == "draft" and req.mode != "refine" else min(req.stop_level or 0, first)
    params = default_sampling(models)  # the windows and lanes render will use
    seconds = 0.0
    for level in range(first, last - 1, -1):
        prior, n_ctx = models.priors[level], models.priors[level].cfg.n_ctx
        have = 0 if req.mode == "rerender" else known.get(level, have_samples // hops[level])  # a prompt's are known
        jobs = total // hops[level]
        lanes = level_lanes(prior, have, jobs, params, req.takes)
        rows = req.takes * max(1, len(lanes))
        span = (lanes[0].known, lanes[0].length) if lanes else (have, jobs)  # lanes run side by side
        windows = prefill = steps = 0
        n = span[0]
        for window in plan_windows(level, span[1], n_ctx, params.hop_fractions[level]):
            if n >= window.end:
                continue
            windows += 1
            prefill += -(-(n - window.start + 1) // params.chunk_size)  # START and the known tokens, in chunks
            steps += window.end - n
            n = window.end
        seconds += (windows * speed.window(level, rows) + prefill * speed.chunk(level, rows)
                    + steps * speed.step(level, rows))
    return seconds + req.takes * decoded / sr * speed.decode_rtf


@dataclass(frozen=True)
class Estimate:
    seconds: float
    limit: float  # 0: no limit
    quality: str
    length: float  # seconds of new (or re-rendered) audio asked for
    draft_seconds: float | None = None  # the same request at draft quality (full requests only)
    fits: float | None = None  # the longest length at the requested quality within the limit (0: none)
    speed: Speed | None = None

    @property
    def too_long(self) -> bool:
        return self.limit > 0 and self.seconds > self.limit

    def describe(self) -> str:
        return f"about {duration(self.seconds)} for {self.length:g} s at {self.quality} quality"

    def offer(self) -> dict[str, Any]:
        """What a DAW script shows: the estimate, the limit, and the alternatives (seconds)."""
        return {"seconds": round(self.seconds, 1), "limit": self.limit, "quality": self.quality,
                "length": self.length, "draft_seconds": None if self.draft_seconds is None else round(self.draft_seconds, 1),
                "fits_length": None if self.fits is None else round(self.fits, 2),
                "tokens_per_second": None if self.speed is None else
                {str(lv): round(self.speed.tokens_per_second(lv), 2) for lv in sorted(self.speed.step_seconds)}}


def duration(seconds: float) -> str:
    """``45 s``, ``7 min``, ``2 h 10 min``, ``3 days``: an estimate's precision."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        h, m = divmod(round(seconds / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{seconds / 86400:.0f} days"


def _length_field(req: RenderRequest) -> str:
    return "length" if req.mode == "rerender" else "seconds"


def _with_length(req: RenderRequest, x: float) -> RenderRequest:
    if req.mode == "rerender":
        return dataclasses.replace(req, length=x)
    return dataclasses.replace(req, seconds=x, bars=None, tempo=None)


def _longest_within(models: Any, req: RenderRequest, speed: Speed, limit: float, upper: float) -> float:
    """The longest length (seconds, 0.1 s steps) at ``req``'s quality whose estimate is within ``limit``."""
    lo, hi = 0.0, upper
    for _ in range(24):
        mid = (lo + hi) / 2
        est = estimate_seconds(models, _with_length(req, max(mid, 0.01)), speed)
        if est is not None and est <= limit:
            lo = mid
        else:
            hi = mid
    return float(int(lo * 10) / 10)


def check_render_time(models: Any, req: RenderRequest, speed: Speed, default_limit: float = DEFAULT_MAX_WAIT) -> Estimate:
    """The estimate for ``req``; raises ``RequestError(TOO_LONG)`` with the offer when it exceeds the limit."""
    limit = default_limit if req.max_wait is None else req.max_wait
    length = (_region_seconds(req) or 0.0) if req.mode == "rerender" else req.target_seconds
    seconds = estimate_seconds(models, req, speed)
    if seconds is None:
        return Estimate(0.0, limit, req.quality, length, speed=speed)
    est = Estimate(seconds, limit, req.quality, length, speed=speed)
    if not est.too_long:
        return est
    draft = (estimate_seconds(models, dataclasses.replace(req, quality="draft"), speed)
             if req.quality == "full" and req.mode != "refine" else None)
    fits = _longest_within(models, req, speed, limit, length)
    est = dataclasses.replace(est, draft_seconds=draft, fits=fits)
    speeds = ", ".join(f"level {lv} {speed.tokens_per_second(lv):.1f}" for lv in sorted(speed.step_seconds, reverse=True))
    offers = []
    if draft is not None:
        offers.append(f"draft quality (the top level only) takes about {duration(draft)}")
    field = _length_field(req)
    if fits >= 0.1:
        offers.append(f"{req.quality} quality fits {duration(limit)} for up to {fits:g} s ({field} {fits:g})")
    offers.append('send it again with "max_wait": 0 to render anyway')
    raise RequestError(
        ErrorCode.TOO_LONG,
        f"this {req.quality}-quality render of {length:g} s would take about {duration(seconds)} on this machine "
        f"({speed.device}; measured tokens/s: {speeds}), more than the {duration(limit)} the engine starts without "
        f"asking. Instead: {'; '.join(offers)}. [estimate {json.dumps(est.offer(), separators=(',', ':'))}]",
        "max_wait")
