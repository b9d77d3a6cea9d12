"""The user-level verbs as plain functions; the CLI and the OSC bridge both call these.

Audio enters and leaves only through ``audio.py`` (which owns resampling and channel changes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from engine.io import audio
from engine.io.codes import CodesFile
from engine.io.files import atomic_write, atomic_write_text
from engine.model import labels
from engine.model.lyrics import load_lyric_vocab
from engine.model.vqvae import VQVAE
from engine.runtime.device import inference_context
from engine.runtime.progress import CancelToken, EtaClock, Progress, ProgressCallback
from engine.weights.bundle import Models

from .request import RenderRequest, RequestError
from .sampling import LevelJob, SamplingParams, sample_level, tokens_to_sample


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def pad_to_hop(x: np.ndarray, hop: int) -> np.ndarray:
    """Zero-pad (T,) audio to a multiple of ``hop`` so every level covers the same span."""
    return np.pad(x, (0, (-len(x)) % hop))


def encode_audio(vqvae: VQVAE, x: np.ndarray) -> dict[int, np.ndarray]:
    """Mono 44.1 kHz audio (T,) -> codes per level, each (1, ceil(T / top_hop) * top_hop / hop)."""
    padded = pad_to_hop(x, vqvae.hop_lengths[-1])
    with inference_context():
        zs = vqvae.encode(torch.from_numpy(padded)[None].to(_device(vqvae)))
    return {level: z.cpu().numpy() for level, z in enumerate(zs)}


def encode_file(vqvae: VQVAE, path: str | os.PathLike, start: float = 0.0, length: float | None = None,
                model_name: str = "") -> CodesFile:
    """Read a region of an audio file and encode it at every level."""
    region = audio.read_region(path, start, length)
    x = audio.to_model_input(region, vqvae.cfg.sample_rate)
    return CodesFile(codes=encode_audio(vqvae, x), hop_lengths=vqvae.hop_lengths, sample_rate=vqvae.cfg.sample_rate,
                     n_samples=len(x), model=model_name,
                     extra={"source": str(path), "start": start, "length": len(x) / vqvae.cfg.sample_rate})


def decode_codes(vqvae: VQVAE, codes: CodesFile, level: int) -> np.ndarray:
    """Codes of one level -> audio (N, T) at the model rate, trimmed to the encoded length, clamped to [-1, 1]."""
    if level not in codes.codes:
        raise ValueError(f"the codes file has levels {sorted(codes.codes)}; level {level} is not among them.")
    z = torch.from_numpy(codes.codes[level]).to(_device(vqvae))
    if int(z.max()) >= vqvae.cfg.l_bins or int(z.min()) < 0:
        raise ValueError(f"codes must lie in 0..{vqvae.cfg.l_bins - 1}; this file has {int(z.min())}..{int(z.max())}. "
                         f"Was it made with another model?")
    with inference_context():
        out = vqvae.decode(z, level).cpu().numpy()
    if codes.n_samples is not None:
        out = out[:, : codes.n_samples]
    return np.clip(out, -1.0, 1.0)


def decode_to_file(vqvae: VQVAE, codes: CodesFile, level: int, out: str | os.PathLike, sample_rate: int = 44100,
                   channels: int = 1, subtype: str = "PCM_24") -> Path:
    x = decode_codes(vqvae, codes, level)[0]
    return audio.write_audio(out, x, sample_rate, source_rate=vqvae.cfg.sample_rate, channels=channels, subtype=subtype)


# --- rendering: continue, prime, re-render, generate ----------------------------------------------

FADE_SECONDS = 0.01


@dataclass(frozen=True)
class RenderedTake:
    take: int  # 1-based
    audio: np.ndarray  # (T, channels) float32 at the request's sample rate
    position: float  # timeline seconds where the DAW should place it
    seed: int
    codes: dict[int, np.ndarray]  # level -> (T_level,) codes of the whole sampled span (prompt included)


@dataclass
class _Plan:
    """Sample counts (at the model rate) and codes each level starts from."""

    total: int  # samples the codes cover, a multiple of the top hop
    keep: tuple[int, int]  # the slice of the decoded audio that becomes the clip
    start_codes: dict[int, np.ndarray]  # level -> (1, T) codes known before sampling
    levels: list[int]  # levels to sample, top first
    decode_level: int
    position: float


def region_key(path: str, start: float, length: float | None, model: str) -> str:
    """Content address of an encoded region: the file's bytes, the region and the model."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(f"|{start}|{length}|{model}".encode())
    return h.hexdigest()


def check_source(req: RenderRequest) -> None:
    """Fail fast, at submission, for a source that is missing, unreadable, not audio or too short."""
    if req.source is None:
        return
    path = Path(req.source)
    if not path.is_absolute():
        raise RequestError("bad_value", f"source must be an absolute path; got {req.source!r}", "source")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise RequestError("source_not_found", f"source {req.source} does not exist or is not a readable file",
                           "source")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for non-audio input
        raise RequestError("not_audio", f"source {req.source} is not an audio file the engine can read "
                           f"(WAV, AIFF, FLAC, OGG, MP3): {exc}", "source") from None
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    end = req.start + (req.length or 0.0)
    if info.frames <= 0 or req.start >= duration or end > duration + 1e-6:
        raise RequestError("not_audio", f"region {req.start:g}..{end:g} s lies outside {req.source} "
                           f"(duration {duration:.3f} s)", "start")


def _read_source(req: RenderRequest, sample_rate: int = audio.MODEL_SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """The request's region as model input (T,) and its length in seconds; errors as protocol codes."""
    check_source(req)
    try:
        region = audio.read_region(req.source, req.start, req.length)
    except audio.AudioError as e:
        raise RequestError("not_audio", str(e), "source") from None
    return audio.to_model_input(region, sample_rate), region.frames / region.sample_rate


def _encode_region(models: Models, req: RenderRequest, x: np.ndarray, cache) -> dict[int, np.ndarray]:
    key = region_key(req.source, req.start, req.length, models.name) if cache is not None else None
    codes = cache.get(key) if key else None
    if codes is None:
        codes = encode_audio(models.vqvae, x)
        if key:
            cache.put(key, codes)
    return codes


def prompt_length(models: Models, n_samples: int) -> int:
    """Samples of a region's tail used as the prompt: whole top-level codes, at most 3/4 of the top context
    (the top prior never sees more than one window, and the last quarter leaves room to continue)."""
    top_hop = models.vqvae.hop_lengths[-1]
    return min(n_samples // top_hop, int(0.75 * models.top.cfg.n_ctx)) * top_hop


def _levels(first: int, req: RenderRequest) -> list[int]:
    """Levels to sample, top first: ``first`` only for drafts, else down to ``stop_level`` (default 0)."""
    last = first if req.quality == "draft" else (req.stop_level or 0)
    if last > first:
        raise RequestError("bad_value", f"stop_level {last} is above the first sampled level {first}", "stop_level")
    return list(range(first, last - 1, -1))


def _plan(models: Models, req: RenderRequest, progress: ProgressCallback, cache) -> _Plan:
    sr, top_hop, top = models.sample_rate, models.vqvae.hop_lengths[-1], models.levels - 1
    new = int(round(req.target_seconds * sr))
    new_padded = -(-new // top_hop) * top_hop
    if req.mode == "generate":
        levels = _levels(top, req)
        return _Plan(new_padded, (0, new), {}, levels, levels[-1], req.position)
    progress(Progress("encoding", 0, 1, 0.0, -1.0))
    x, region_seconds = _read_source(req, models.sample_rate)  # the model's rate (22.05 kHz for the default)
    if req.mode == "rerender":
        codes = _encode_region(models, req, x, cache)
        level = top - 1 if req.level is None else req.level
        if level > top:
            raise RequestError("bad_value", f"level must be at most {top} for this model", "level")
        kept = {lv: z for lv, z in codes.items() if lv > level}
        levels = _levels(level, req)
        return _Plan(len(pad_to_hop(x, top_hop)), (0, len(x)), kept, levels, levels[-1], req.position)
    # continue / prime: the region's tail is the prompt; it must end exactly where the region ends
    prime = x[len(x) - prompt_length(models, len(x)):]
    if len(prime) == 0:
        raise RequestError("not_audio", f"the region is shorter than {top_hop / sr * 1000:.1f} ms; select more audio",
                           "length")
    codes = encode_audio(models.vqvae, prime)
    levels = _levels(top, req)
    return _Plan(len(prime) + new_padded, (len(prime), len(prime) + new), codes, levels, levels[-1],
                 req.position + region_seconds)


def _model_vocab_label(models: Models, cfg, req: RenderRequest, total_len: int, top: bool) -> list[int]:
    """y for a model with its own artists.txt/genres.txt: [total, 0, window, artist, genre, -1...].

    Unknown names are an error at the top level (the user typed them) and 'unknown' (id 0) below."""
    ids = []
    for kind, name in (("artist", req.artist), ("genre", req.genre)):
        try:
            ids.append(models.vocab[kind].resolve(name or "unknown"))
        except labels.UnknownLabelError as e:
            if top:
                raise RequestError("unknown_label", str(e), e.kind) from None
            ids.append(0)
    genre = [ids[1]] + [-1] * (cfg.max_bow_genre_size - 1)
    return [total_len, 0, cfg.n_ctx * cfg.raw_to_tokens, ids[0], *genre]


def _label_vector(models: Models, cfg, level: int, version: int, req: RenderRequest, total_len: int) -> list[int]:
    """y at the song's start for one level; unknown names are an error at the top, 'unknown' (0) below."""
    if models.vocab is not None:  # a model with its own vocabulary (the embedded default model)
        return _model_vocab_label(models, cfg, req, total_len, level == models.levels - 1)
    window = cfg.n_ctx * cfg.raw_to_tokens
    try:
        return labels.label_vector(req.artist or "unknown", req.genre or "unknown", req.lyrics, total_len, 0, window,
                                   version, cfg.max_bow_genre_size, cfg.n_tokens, forgiving=True)
    except labels.UnknownLabelError as e:
        if level == models.levels - 1:
            raise RequestError("unknown_label", str(e), e.kind) from None
        return labels.label_vector(req.artist or "", req.genre or "", req.lyrics, total_len, 0, window, version,
                                   cfg.max_bow_genre_size, cfg.n_tokens)


def _label_fn(models: Models, level: int, req: RenderRequest, total: int, batch: int):
    """Window start -> y (batch, y_len) for one level's prior, names resolved forgivingly."""
    cfg = models.priors[level].cfg
    version = models.label_version(level)
    total_len = int(total)
    if cfg.has_timing and cfg.min_duration is not None:  # the timing embedding covers [min, max] only
        total_len = int(min(max(total_len, cfg.min_duration * cfg.sample_rate), cfg.max_duration * cfg.sample_rate - 1))
    try:
        y0 = _label_vector(models, cfg, level, version, req, total_len)
    except RequestError:
        raise
    except ValueError as e:  # e.g. more genre words than the model's bag holds
        raise RequestError("bad_value", str(e), "genre") from None
    full_lyrics = load_lyric_vocab(version).encode(req.lyrics) if cfg.n_tokens else []

    def labels_at(start: int) -> torch.Tensor:
        y = labels.window_label(y0, start, cfg.raw_to_tokens, cfg.n_ctx, full_lyrics, cfg.n_tokens)
        return torch.tensor([y] * batch, dtype=torch.long, device=models.device)

    return labels_at


def check_labels(models: Models, req: RenderRequest) -> None:
    """Resolve the request's artist and genre for the top prior now; raises ``RequestError`` (unknown_label)."""
    _label_fn(models, models.levels - 1, req, models.vqvae.hop_lengths[-1], 1)


class _WorkDir:
    """Per-job folder of codes saved after every window, so a restarted job resumes where it stopped."""

    def __init__(self, path: Path | None):
        self.path = path
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

    def load(self, level: int) -> np.ndarray | None:
        f = None if self.path is None else self.path / f"codes_level{level}.npy"
        return np.load(f) if f is not None and f.exists() else None

    def save(self, level: int, codes: torch.Tensor) -> None:
        if self.path is not None:
            z = codes.cpu().numpy()
            atomic_write(self.path / f"codes_level{level}.npy", lambda f: np.save(f, z), overwrite=True)


def _finish(x: np.ndarray, keep: tuple[int, int], req: RenderRequest, sr: int) -> np.ndarray:
    """Model-rate mono audio of the whole decoded span (T,) -> the clip ``keep`` of it at the DAW's rate and
    channel count (T', C). The whole span is resampled before slicing, so the resampler sees the prompt's
    audio before a continuation's first sample (slicing first would make it ring against silence)."""
    ratio = req.sample_rate / sr
    y = audio.resample(np.clip(x, -1.0, 1.0).astype(np.float32), sr, req.sample_rate)
    start = int(round(keep[0] * ratio))
    y = y[start: start + int(round((keep[1] - keep[0]) * ratio))].copy()
    fade = min(len(y) // 2, int(FADE_SECONDS * req.sample_rate))
    if fade and req.mode in ("generate", "continue", "prime"):  # a re-render joins what follows its region
        y[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        if req.mode == "generate":  # continuations join their source seamlessly
            y[:fade] *= np.linspace(0.0, 1.0, fade, dtype=np.float32)
    return audio.convert_channels(y[:, None], req.channels)


def _rows(z: np.ndarray, n: int) -> torch.Tensor:
    """Codes (1 or n, T) -> (n, T): one encoded prompt shared by every take."""
    t = torch.from_numpy(np.ascontiguousarray(z))
    return t.expand(n, -1).clone() if t.shape[0] == 1 else t


def render(models: Models, req: RenderRequest, progress: ProgressCallback, cancel: CancelToken,
           workdir: Path | None = None, cache=None, sampling: SamplingParams | None = None) -> list[RenderedTake]:
    """Run one request to finished takes. Resumes from ``workdir`` when it holds saved codes."""
    work = _WorkDir(workdir)
    seed = work.seed(req.seed)
    seeds = [seed + i for i in range(req.takes)]
    params = sampling or SamplingParams()
    # fp16 transformers where the official weights are fp16 and the device has fast fp16 (the reference's way)
    fp16 = models.device.type == "cuda" and models.top.cfg.fp16_params
    params = dataclasses.replace(params, temperature=req.temperature or params.temperature, top_k=req.top_k,
                                 top_p=req.top_p, dtype=params.dtype or (torch.float16 if fp16 else None))
    clock = EtaClock()
    with inference_context(models.device):
        plan = _plan(models, req, progress, cache)
        codes = {lv: _rows(z, req.takes).to(models.device) for lv, z in plan.start_codes.items()}
        jobs = {}
        for level in plan.levels:
            saved = work.load(level)
            known = saved if saved is not None else plan.start_codes.get(level, np.zeros((1, 0), np.int64))
            codes[level] = _rows(known, req.takes).to(models.device)
            jobs[level] = plan.total // models.vqvae.hop_lengths[level]
        total_tokens = sum(tokens_to_sample(models.priors[lv], codes[lv].shape[1], jobs[lv], params.hop_fractions[lv])
                           for lv in plan.levels) or 1
        done, last_report = 0, 0.0

        def report(level: int, force: bool = False) -> None:
            """Progress at most every 0.2 s, and after every saved window; cancel is honoured here."""
            nonlocal last_report
            now = time.monotonic()
            if force or now - last_report > 0.2:
                last_report = now
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

        for level in plan.levels:
            upper = codes.get(level + 1) if level < models.levels - 1 else None
            job = LevelJob(models.priors[level], jobs[level], _label_fn(models, level, req, plan.total, req.takes), upper)
            codes[level] = sample_level(job, codes[level], params, seeds, lambda lv=level: on_token(lv),
                                        lambda w, z, lv=level: on_window(lv, z), cancel)
            work.save(level, codes[level])
        progress(Progress("decoding", 0, 1, 0.95, clock.eta(0.95)))
        cancel.raise_if_cancelled()
        takes = []
        for i in range(req.takes):  # one take at a time: decoder activations scale with takes x length
            cancel.raise_if_cancelled()
            # the fast fp32 decoder is within 2.3e-6 of peak of the exact one (see benchmarks/README.md)
            z = codes[plan.decode_level][i: i + 1]
            x = models.vqvae.decode(z, plan.decode_level, precision="fp32")[0].cpu().numpy()
            takes.append(RenderedTake(i + 1, _finish(x, plan.keep, req, models.sample_rate), plan.position,
                                      seeds[i], {lv: z[i].cpu().numpy() for lv, z in codes.items()}))
    return takes
