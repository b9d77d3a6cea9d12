"""Plan and render: one request (continue, prime, re-render, generate, refine) to finished takes.

The plan says which codes are known (the encoded prompt or the kept upper levels) and which levels to
sample; the render samples them top first, saving each window's codes so a restarted job resumes, then
decodes and fits the clip to the DAW's rate and channels. The upsampling levels use the parallel schedule
unless ``SamplingParams(schedule="reference")`` is passed (``generate/sampling.py``); a level sampled in
lanes is saved once all its lanes finish.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.errors import ErrorCode
from engine.io import audio
from engine.io.codes import CodesLog
from engine.io.files import atomic_write_text
from engine.io.loudness import (
    GENERATE_LUFS,
    LoudnessReport,
    input_gain_db,
    integrated_loudness,
    match_loudness,
    played_loudness,
)
from engine.io.takes import FADE_SECONDS, RenderedTake
from engine.io.tone import band_levels_db, match_tone, top_hz
from engine.model.fast.static_step import WARM
from engine.request import RenderRequest, RequestError
from engine.runtime.device import inference_context
from engine.runtime.progress import CancelToken, EtaClock, Progress, ProgressCallback, Throttle
from engine.weights.bundle import Models

from .codec import chunk_progress, encode_audio, pad_to_hop
from .conditioning import label_fn
from .refine import check_draft, load_draft, start_codes
from .sampling import LaneRunner, LevelJob, SamplingParams, sample_level, tokens_to_sample
from .source import encode_region, prompt_length, read_source, source_warnings

PROMPTED = ("continue", "prime")  # modes whose start codes are a prompt the take follows (not kept levels)
PROGRESS_INTERVAL = 0.2  # seconds between the sampler's progress reports (each also checks for cancel)


@dataclass
class _Plan:
    """Sample counts (at the model rate) and codes each level starts from."""

    total: int  # samples the codes cover, a multiple of the top hop
    keep: tuple[int, int]  # the slice of the decoded audio that becomes the clip
    start_codes: dict[int, np.ndarray]  # level -> (1, T) codes known before sampling
    levels: list[int]  # levels to sample, top first
    decode_level: int
    position: float
    reference_lufs: float | None = None  # the source region's integrated loudness (continue, prime, rerender)
    mode: str = ""  # whose fades and loudness rule the clip gets: the request's mode (a refine: its draft's)
    input_gain_db: float = 0.0  # the source's gain before encoding (``loudness.input_gain_db``), undone after decoding
    reference_tone: list[float | None] | None = None  # the region's octave balance (continue, prime; ``io.tone``)


def _levels(first: int, req: RenderRequest) -> list[int]:
    """Levels to sample, top first: ``first`` only for drafts, else down to ``stop_level`` (default 0)."""
    last = first if req.quality == "draft" else (req.stop_level or 0)
    if last > first:
        raise RequestError(ErrorCode.BAD_VALUE, f"stop_level {last} is above the first sampled level {first}",
                           "stop_level")
    return list(range(first, last - 1, -1))


def _plan(models: Models, req: RenderRequest, progress: ProgressCallback, cache,
          cancel: CancelToken | None = None) -> _Plan:
    sr, top_hop, top = models.sample_rate, models.vqvae.hop_lengths[-1], models.levels - 1
    new = int(round(req.target_seconds * sr))
    new_padded = -(-new // top_hop) * top_hop
    if req.mode == "generate":
        levels = _levels(top, req)
        return _Plan(new_padded, (0, new), {}, levels, levels[-1], req.position)
    if req.mode == "refine":  # the draft's sampled levels as they are; upsampled below them, its clip kept
        draft = load_draft(req.source)
        check_draft(draft, models)
        levels = list(range(draft.decode_level - 1, (req.stop_level or 0) - 1, -1))
        if not levels:
            raise RequestError(ErrorCode.BAD_VALUE, f"the draft is already at level {draft.decode_level}; "
                               "stop_level must be below it", "stop_level")
        return _Plan(draft.total, draft.keep, start_codes(draft), levels, levels[-1], req.position,
                     draft.extra.get("reference_lufs"), draft.mode, float(draft.extra.get("input_gain_db") or 0.0),
                     draft.extra.get("reference_tone"))
    progress(Progress("encoding", 0, 1, 0.0, -1.0))
    x, region_seconds = read_source(req, models.sample_rate)  # the model's rate (22.05 kHz for the default)
    reference_lufs, gain = integrated_loudness(x, sr), input_gain_db(x, models.input_rms_dbfs)
    x = x * np.float32(10 ** (gain / 20))  # at the level the model was trained at; undone after decoding
    if req.mode == "rerender":
        codes = encode_region(models, req, x, cache, chunk_progress(progress, cancel, "encoding", 0.0, 0.05))
        level = top - 1 if req.level is None else req.level
        if level > top:
            raise RequestError(ErrorCode.BAD_VALUE, f"level must be at most {top} for this model", "level")
        kept = {lv: z for lv, z in codes.items() if lv > level}
        levels = _levels(level, req)
        return _Plan(len(pad_to_hop(x, top_hop)), (0, len(x)), kept, levels, levels[-1], req.position,
                     reference_lufs, input_gain_db=gain)
    # continue / prime: the region's tail is the prompt; it must end exactly where the region ends
    prime = x[len(x) - prompt_length(models, len(x)):]
    if len(prime) == 0:
        raise RequestError(ErrorCode.NOT_AUDIO,
                           f"the region is shorter than {top_hop / sr * 1000:.1f} ms; select more audio", "length")
    codes = encode_audio(models.vqvae, prime, chunk_progress(progress, cancel, "encoding", 0.0, 0.05))
    levels = _levels(top, req)
    return _Plan(len(prime) + new_padded, (len(prime), len(prime) + new), codes, levels, levels[-1],
                 req.position + region_seconds, reference_lufs, input_gain_db=gain,
                 reference_tone=band_levels_db(x, sr, top_hz(sr, req.sample_rate)))  # _mix measures the take alike


class _WorkDir:
    """Per-job folder of codes appended after every window (``CodesLog``: each window writes only its new
    columns), so a restarted job resumes where it stopped and saving costs what sampling produced."""

    def __init__(self, path: Path | None, models: Models):
        self.path, self.models = path, models
        self._saved: dict[int, int] = {}  # level -> columns already in its log
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)

    def seed(self, requested: int | None) -> int:
        if self.path is None:
            return requested if requested is not None else int(np.random.randint(0, 2**31 - 1))
        meta = self.path / "seed.json"
        if meta.exists():
            return int(json.loads(meta.read_text())["seed"])
        seed = requested if requested is not None else int(np.random.randint(0, 2**31 - 1))
        atomic_write_text(meta, json.dumps({"seed": seed}), overwrite=True)
        return seed

    def _log(self, level: int) -> CodesLog | None:
        return None if self.path is None else CodesLog(self.path / f"codes_level{level}{CodesLog.SUFFIX}")

    def load(self, level: int) -> np.ndarray | None:
        log = self._log(level)
        codes = None if log is None else log.load()
        self._saved[level] = 0 if codes is None else codes.shape[1]
        return codes

    def save(self, level: int, codes: torch.Tensor) -> None:
        """Append the columns of ``codes`` (takes, columns) past those already saved; earlier ones never change."""
        log = self._log(level)
        if log is not None:
            have = self._saved.get(level, 0)
            log.append(codes[:, have:].cpu().numpy())
            self._saved[level] = max(have, codes.shape[1])


def _finish(x: np.ndarray, keep: tuple[int, int], req: RenderRequest, sr: int) -> np.ndarray:
    """Model-rate mono audio of the whole decoded span (T,) -> the clip ``keep`` of it at the DAW's rate, still
    mono (T', 1): the mix and the fades work on one channel, copied to the request's channels last (a 300-s
    stereo clip in float64 inside the loudness meter was the largest buffer of a long re-render). The whole span is
    resampled before slicing, so the resampler sees the prompt's audio before a continuation's first sample
    (slicing first would make it ring against silence)."""
    ratio = req.sample_rate / sr
    y = audio.resample(np.clip(x, -1.0, 1.0).astype(np.float32), sr, req.sample_rate)
    start = int(round(keep[0] * ratio))
    return y[start: start + int(round((keep[1] - keep[0]) * ratio))].copy()[:, None]


def _fade(clip: np.ndarray, req: RenderRequest, mode: str = "") -> np.ndarray:
    """Fades at the clip's (T, C) free edges, applied after the mix so a faded edge ends at exactly zero (the mix's
    DC removal would otherwise leave a step there: a click). ``mode``: the clip's (a refine's is its draft's)."""
    mode = mode or req.mode
    fade = min(len(clip) // 2, int(FADE_SECONDS * req.sample_rate))
    if fade and mode in ("generate", "continue", "prime"):  # a re-render joins what follows its region
        clip[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
        if mode == "generate":  # continuations join their source seamlessly
            clip[:fade] *= np.linspace(0.0, 1.0, fade, dtype=np.float32)[:, None]
    return clip


def _mix(clip: np.ndarray, req: RenderRequest, reference_lufs: float | None, mode: str = "",
         reference_tone: list[float | None] | None = None, model_rate: int | None = None) -> tuple[np.ndarray, dict]:
    """The region's tonal balance (``tone`` "match", continue and prime: ``io.tone``), then DC removed and the
    request's loudness: the prime's ("match"; generated takes ``GENERATE_LUFS``), a given target, or none ("off").
    ``clip`` is mono (T, 1), measured as the request's channels will play it. ``mode``: the clip's (a refine's is its
    draft's). ``model_rate``: the rate the region's balance was measured at (``tone.top_hz``).
    -> (the clip, the sidecar's ``loudness`` record)."""
    toned, tone = clip, {}
    if req.tone == "match" and (mode or req.mode) in PROMPTED and reference_lufs is not None:
        top = top_hz(req.sample_rate, model_rate or req.sample_rate)  # (a silent or too short region: no match)
        toned, tone = match_tone(clip, req.sample_rate, reference_tone, top)
    y, report = _gain(toned, req, reference_lufs, mode)
    short = _short_of(y, report, req) if tone else 0.0
    if short > 0.05:  # a cap stopped the gain (the limiter's allowance on a loud master, or the largest lift): the
        # match EQ may not cost the take loudness it would otherwise reach (a treble lift raises the peaks), so the
        # nearer loudness wins
        plain, plain_report = _gain(clip, req, reference_lufs, mode)
        if _short_of(plain, plain_report, req) < short - 0.05:
            y, report, tone = plain, plain_report, {}
    return y, {**report.to_json(), "tone_db": tone}


def _short_of(clip: np.ndarray, report: LoudnessReport, req: RenderRequest) -> float:
    """How far (LU) a mixed mono clip (T, 1) falls short of its loudness target as the request's channels play it;
    0 without a target."""
    if report.target_lufs is None:
        return 0.0
    reached = played_loudness(clip, req.sample_rate, req.channels)
    return float("inf") if reached is None else max(0.0, report.target_lufs - reached)


def _gain(clip: np.ndarray, req: RenderRequest, reference_lufs: float | None,
          mode: str = "") -> tuple[np.ndarray, LoudnessReport]:
    """``_mix``'s loudness half."""
    if req.loudness == "off":
        target = None
    elif req.loudness == "match":
        target = reference_lufs if (mode or req.mode) != "generate" else GENERATE_LUFS
    else:
        target = float(req.loudness)
    return match_loudness(clip, req.sample_rate, target, channels=req.channels)


TOP_ADVANCE_SECONDS = 2.0
"""A top level whose reference hop (1/8 of a window) advances less audio than this advances half a window, as the
upsamplers do. The official top priors (6144-8192 tokens) advance 2.2-3 s per window and keep the reference's hop;
the default model's 1024 tokens would advance 0.74 s, each window prefilling the whole context again: most of a
draft's time (a 10-s draft: 3.0 s instead of 4.2 s here with training running beside it)."""


def default_sampling(models: Models) -> SamplingParams:
    """What every front end samples with: the parallel schedule, the warm compiled step (never waited for; the tiny
    debug models of the tests stay eager, their steps are already cheap) and top-level windows that advance at least
    ``TOP_ADVANCE_SECONDS`` (else half a window)."""
    params = SamplingParams(compile=False if models.is_debug else "warm")
    cfg, top = models.top.cfg, models.levels - 1
    token_seconds = cfg.raw_to_tokens / cfg.sample_rate
    if params.hop_fractions[top] * cfg.n_ctx * token_seconds >= TOP_ADVANCE_SECONDS:
        return params
    fractions = list(params.hop_fractions)
    fractions[top] = 0.5
    return dataclasses.replace(params, hop_fractions=tuple(fractions))


def sampling_dtype(models: Models) -> torch.dtype | None:
    """The transformers' precision when the caller names none: fp16 where the official weights are fp16 and the
    device has fast fp16 (CUDA; the reference's way), else the weights' own."""
    return torch.float16 if models.device.type == "cuda" and models.top.cfg.fp16_params else None


def warm_up(models: Models) -> None:
    """Start compiling the shapes the next job will surely use (the top prior at one take) in the background."""
    if default_sampling(models).compile == "warm":
        WARM.want(models.top, 1, None)


def _rows(z: np.ndarray, n: int) -> torch.Tensor:
    """Codes (1 or n, T) -> (n, T): one encoded prompt shared by every take."""
    t = torch.from_numpy(np.ascontiguousarray(z))
    return t.expand(n, -1).clone() if t.shape[0] == 1 else t


def render(models: Models, req: RenderRequest, progress: ProgressCallback, cancel: CancelToken,
           workdir: Path | None = None, cache=None, sampling: SamplingParams | None = None,
           lane_runner: LaneRunner | None = None) -> list[RenderedTake]:
    """Run one request to finished takes. Resumes from ``workdir`` when it holds saved codes. ``lane_runner``:
    where the parallel schedule's lanes are sampled (default: here; a cluster worker spreads them)."""
    work = _WorkDir(workdir, models)
    seed = work.seed(req.seed)
    seeds = [seed + i for i in range(req.takes)]
    # the engine's schedule and compiled step unless the caller passes its own; the sampling knobs are the
    # request's, always (the sidecar records them)
    params = sampling or default_sampling(models)
    params = dataclasses.replace(params, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p,
                                 adherence=req.adherence, dtype=params.dtype or sampling_dtype(models))
    clock = EtaClock()
    with inference_context(models.device):
        plan = _plan(models, req, progress, cache, cancel)
        codes = {lv: _rows(z, req.takes).to(models.device) for lv, z in plan.start_codes.items()}
        jobs = {}
        for level in plan.levels:
            saved = work.load(level)
            known = saved if saved is not None else plan.start_codes.get(level, np.zeros((1, 0), np.int64))
            codes[level] = _rows(known, req.takes).to(models.device)
            jobs[level] = plan.total // models.vqvae.hop_lengths[level]
        total_tokens = sum(tokens_to_sample(models.priors[lv], codes[lv].shape[1], jobs[lv], params.hop_fractions[lv],
                                            params, req.takes) for lv in plan.levels) or 1
        done, throttle = 0, Throttle(PROGRESS_INTERVAL)

        def report(level: int, force: bool = False) -> None:
            """Progress at most every ``PROGRESS_INTERVAL``, and after every saved window; cancel is honoured here."""
            if throttle.ready(force):
                frac = 0.05 + 0.9 * done / total_tokens
                stage = f"{'sampling' if level == models.levels - 1 else 'upsampling'} level {level}"
                progress(Progress(stage, done, total_tokens, frac, clock.eta(frac), level))
                cancel.raise_if_cancelled()

        def on_token(level: int) -> None:
            nonlocal done
            done += 1
            report(level)

        def on_window(level: int, z: torch.Tensor) -> None:
            work.save(level, z)
            report(level, force=True)

        prompted = (plan.mode or req.mode) in PROMPTED
        for level in plan.levels:
            top = level == models.levels - 1
            upper = None if top else codes.get(level + 1)
            # the top level only: at the upsamplers the prompt's phrases fought the upper codes (chroma 0.74 -> 0.54)
            prime = plan.start_codes[level].shape[1] if prompted and top and level in plan.start_codes else 0
            labels = label_fn(models, level, req, plan.total, req.takes)
            job = LevelJob(models.priors[level], jobs[level], labels, upper, prime)
            codes[level] = sample_level(job, codes[level], params, seeds, lambda lv=level: on_token(lv),
                                        lambda w, z, lv=level: on_window(lv, z), cancel, lane_runner)
            work.save(level, codes[level])
        progress(Progress("decoding", 0, 1, 0.95, clock.eta(0.95)))
        cancel.raise_if_cancelled()
        takes = []
        for i in range(req.takes):  # one take at a time: decoder activations scale with takes x length
            cancel.raise_if_cancelled()
            # the fast fp32 decoder is within 2.3e-6 of peak of the exact one (see benchmarks/README.md)
            z = codes[plan.decode_level][i: i + 1]
            span = (0.95 + 0.04 * i / req.takes, 0.95 + 0.04 * (i + 1) / req.takes)
            x = models.vqvae.decode(z, plan.decode_level, precision="fp32",
                                    on_chunk=chunk_progress(progress, cancel, "decoding", *span, clock))[0].cpu().numpy()
            x = x * np.float32(10 ** (-plan.input_gain_db / 20))  # back to the source's level
            clip, mixed = _mix(_finish(x, plan.keep, req, models.sample_rate), req, plan.reference_lufs, plan.mode,
                               plan.reference_tone, models.sample_rate)
            clip = audio.convert_channels(_fade(clip, req, plan.mode), req.channels)
            takes.append(RenderedTake(i + 1, clip, plan.position, seeds[i],
                                      {lv: z[i].cpu().numpy() for lv, z in codes.items()},
                                      {**mixed, "input_gain_db": round(plan.input_gain_db, 2)},
                                      plan.keep, tuple(plan.levels), plan.reference_lufs, source_warnings(req),
                                      plan.reference_tone))
    return takes
