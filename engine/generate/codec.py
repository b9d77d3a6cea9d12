"""The codec as a user verb: audio <-> codes at every level, for files and arrays.

Audio enters and leaves only through ``engine.io.audio`` (which owns resampling and channel changes).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from engine.io import audio
from engine.io.codes import CodesFile
from engine.model.vqvae import VQVAE, ChunkCallback
from engine.runtime.device import inference_context
from engine.runtime.progress import CancelToken, EtaClock, Progress, ProgressCallback


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def pad_to_hop(x: np.ndarray, hop: int) -> np.ndarray:
    """Zero-pad (T,) audio to a multiple of ``hop`` so every level covers the same span."""
    return np.pad(x, (0, (-len(x)) % hop))


def chunk_progress(progress: ProgressCallback, cancel: CancelToken | None, stage: str, start: float, end: float,
                   clock: EtaClock | None = None, level: int | None = None) -> ChunkCallback:
    """``on_chunk`` for ``encode_audio``/``decode_codes``/``VQVAE.decode`` inside a job: the job's fraction moves
    from ``start`` to ``end`` as chunks finish (with an ETA from ``clock``), and ``cancel`` is checked after each
    chunk, so encoding and decoding stop within a chunk's time (about a second) of a cancel."""

    def on_chunk(done: int, total: int) -> None:
        fraction = start + (end - start) * done / max(total, 1)
        progress(Progress(stage, done, total, fraction, -1.0 if clock is None else clock.eta(fraction), level))
        if cancel is not None:
            cancel.raise_if_cancelled()

    return on_chunk


def encode_audio(vqvae: VQVAE, x: np.ndarray, on_chunk: ChunkCallback | None = None) -> dict[int, np.ndarray]:
    """Mono 44.1 kHz audio (T,) -> codes per level, each (1, ceil(T / top_hop) * top_hop / hop).

    Encoded in chunks along time (``VQVAE.encode``: bounded memory, the unchunked codes); ``on_chunk(done, total)``
    after each (``chunk_progress``)."""
    padded = pad_to_hop(x, vqvae.hop_lengths[-1])
    with inference_context():
        zs = vqvae.encode(torch.from_numpy(padded)[None].to(_device(vqvae)), on_chunk=on_chunk)
    return {level: z.cpu().numpy() for level, z in enumerate(zs)}


def encode_file(vqvae: VQVAE, path: str | os.PathLike, start: float = 0.0, length: float | None = None,
                model_name: str = "") -> CodesFile:
    """Read a region of an audio file and encode it at every level."""
    region = audio.read_region(path, start, length)
    x = audio.to_model_input(region, vqvae.cfg.sample_rate)
    return CodesFile(codes=encode_audio(vqvae, x), hop_lengths=vqvae.hop_lengths, sample_rate=vqvae.cfg.sample_rate,
                     n_samples=len(x), model=model_name,
                     extra={"source": str(path), "start": start, "length": len(x) / vqvae.cfg.sample_rate})


def decode_codes(vqvae: VQVAE, codes: CodesFile, level: int, on_chunk: ChunkCallback | None = None) -> np.ndarray:
    """Codes of one level -> audio (N, T) at the model rate, trimmed to the encoded length, clamped to [-1, 1]."""
    if level not in codes.codes:
        raise ValueError(f"the codes file has levels {sorted(codes.codes)}; level {level} is not among them.")
    z = torch.from_numpy(codes.codes[level]).to(_device(vqvae))
    if int(z.max()) >= vqvae.cfg.l_bins or int(z.min()) < 0:
        raise ValueError(f"codes must lie in 0..{vqvae.cfg.l_bins - 1}; this file has {int(z.min())}..{int(z.max())}. "
                         f"Was it made with another model?")
    with inference_context():
        out = vqvae.decode(z, level, on_chunk=on_chunk).cpu().numpy()
    if codes.n_samples is not None:
        out = out[:, : codes.n_samples]
    return np.clip(out, -1.0, 1.0)


def decode_to_file(vqvae: VQVAE, codes: CodesFile, level: int, out: str | os.PathLike, sample_rate: int = 44100,
                   channels: int = 1, subtype: str = "PCM_24") -> Path:
    x = decode_codes(vqvae, codes, level)[0]
    return audio.write_audio(out, x, sample_rate, source_rate=vqvae.cfg.sample_rate, channels=channels, subtype=subtype)
