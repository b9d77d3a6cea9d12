"""Source regions: check a request's audio at submission, read it at the model rate, encode it (cached)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import ErrorCode
from engine.io import audio
from engine.io.codes import CodesFile
from engine.io.files import file_sha256
from engine.request import RenderRequest, RequestError
from engine.weights.bundle import Models

from .codec import ChunkCallback, encode_audio


def region_key(path: str, start: float, length: float | None, model: str) -> str:
    """Content address of an encoded region: the file's bytes, the region and the model."""
    return hashlib.sha256(f"{file_sha256(path)}|{start}|{length}|{model}".encode()).hexdigest()


def check_source(req: RenderRequest) -> float | None:
    """Fail fast, at submission, for a source that is missing, unreadable, not audio, truncated or too short;
    returns the region's length in seconds (None without a source)."""
    if req.source is None:
        return None
    path = Path(req.source)
    if not path.is_absolute():
        raise RequestError(ErrorCode.BAD_VALUE, f"source must be an absolute path; got {req.source!r}", "source")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise RequestError(ErrorCode.SOURCE_NOT_FOUND, f"source {req.source} does not exist or is not a readable file",
                           "source")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for non-audio input
        raise RequestError(ErrorCode.NOT_AUDIO, f"source {req.source} is not an audio file the engine can read "
                           f"(WAV, AIFF, FLAC, OGG, MP3): {exc}", "source") from None
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    end = req.start + (req.length or 0.0)
    if info.frames <= 0 or req.start >= duration or end > duration + 1e-6:
        raise RequestError(ErrorCode.NOT_AUDIO, f"region {req.start:g}..{end:g} s lies outside {req.source} "
                           f"(duration {duration:.3f} s)", "start")
    cut = _truncation(req)
    if cut is not None and not req.allow_truncated:
        raise RequestError(ErrorCode.NOT_AUDIO, f"{cut} To render the audio that is there, send allow_truncated: "
                           "true.", "source")
    return req.length if req.length is not None else duration - req.start


def _truncation(req: RenderRequest) -> str | None:
    try:
        return audio.truncation(req.source, req.start, req.length)
    except audio.AudioError as exc:
        raise RequestError(ErrorCode.NOT_AUDIO, str(exc), "source") from None


def source_warnings(req: RenderRequest) -> tuple[str, ...]:
    """What a producer must hear about an accepted source: a truncation they allowed (``allow_truncated``)."""
    cut = _truncation(req) if req.source is not None and req.allow_truncated else None
    return () if cut is None else (cut,)


def read_source(req: RenderRequest, sample_rate: int = audio.MODEL_SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """The request's region as model input (T,) and its length in seconds; errors as protocol codes."""
    check_source(req)
    try:
        region = audio.read_region(req.source, req.start, req.length)
    except audio.AudioError as e:
        raise RequestError(ErrorCode.NOT_AUDIO, str(e), "source") from None
    return audio.to_model_input(region, sample_rate), region.frames / region.sample_rate


def encode_region(models: Models, req: RenderRequest, x: np.ndarray, cache,
                  on_chunk: ChunkCallback | None = None) -> dict[int, np.ndarray]:
    """The region's codes at every level, from the cache or encoded in chunks (``on_chunk``: progress, cancel)."""
    # the codes are of the region at the model's input level (``Models.input_rms_dbfs``): part of the address
    key = region_key(req.source, req.start, req.length, f"{models.name}|{models.input_rms_dbfs}") \
        if cache is not None else None
    cached = cache.get(key) if key else None
    if cached is not None:
        return cached.codes
    codes = encode_audio(models.vqvae, x, on_chunk)
    if key:
        cache.put(key, CodesFile(codes, models.vqvae.hop_lengths, models.sample_rate, len(x), models.name,
                                 {"source": req.source, "start": req.start, "length": req.length}))
    return codes


def prompt_length(models: Models, n_samples: int) -> int:
    """Samples of a region's tail used as the prompt: whole top-level codes, at most 3/4 of the top context
    (the top prior never sees more than one window, and the last quarter leaves room to continue)."""
    top_hop = models.vqvae.hop_lengths[-1]
    return min(n_samples // top_hop, int(0.75 * models.top.cfg.n_ctx)) * top_hop
