"""Pictures of audio for the web panel: waveform peaks, a waveform PNG and a log-magnitude spectrogram PNG.

numpy and zlib only (no matplotlib in the engine's serving path): ``png`` writes 8-bit RGB PNGs by hand,
``peaks`` reads a file block by block (an upload may be long; memory stays flat), and the images are cached
beside the journal (``.jukebox/images/``) keyed by the file's name, size and modification time, so a page
that reloads never recomputes them and a changed file never shows a stale picture.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from .files import atomic_write

PEAK_BLOCK = 1 << 16  # frames read at a time
MAX_PEAKS = 4000  # columns a peaks request may ask for
IMAGE_SIZE = {"waveform": (800, 120), "spectrogram": (800, 200)}  # kind -> (width, height) in pixels
N_FFT = 1024
DB_RANGE = 80.0  # decibels below the loudest bin that the colormap spans
# a dark-to-bright perceptual ramp (black, indigo, magenta, orange, pale yellow), interpolated per pixel
_RAMP = np.array([[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]],
                 dtype=np.float64)
_WAVE_BG, _WAVE_FG = np.array([24, 26, 34], np.uint8), np.array([110, 190, 255], np.uint8)


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (height, width, 3) uint8: signature, IHDR, one zlib IDAT, IEND."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)  # filter 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def peaks(path: Path, columns: int) -> dict:
    """Per-column minimum and maximum of the mono mix, for drawing a waveform: {seconds, sample_rate, channels,
    min, max}. Raises ``sf.LibsndfileError``/``RuntimeError`` if ``path`` is not audio."""
    columns = max(1, min(int(columns), MAX_PEAKS))
    with sf.SoundFile(path) as f:
        frames, rate, channels = f.frames, f.samplerate, f.channels
        per = max(1, -(-frames // columns))  # frames per column, rounded up
        lo, hi = np.zeros(columns, np.float32), np.zeros(columns, np.float32)
        done = 0
        for block in f.blocks(blocksize=max(per, PEAK_BLOCK - PEAK_BLOCK % per), dtype="float32", always_2d=True):
            mono = block.mean(axis=1)
            first = done // per
            n = -(-len(mono) // per)
            pad = np.pad(mono, (0, n * per - len(mono)), mode="edge").reshape(n, per)
            end = min(first + n, columns)
            lo[first:end], hi[first:end] = pad.min(axis=1)[: end - first], pad.max(axis=1)[: end - first]
            done += len(mono)
    used = max(1, -(-frames // per))
    return {"seconds": frames / rate if rate else 0.0, "sample_rate": rate, "channels": channels,
            "min": np.round(lo[:used], 4).tolist(), "max": np.round(hi[:used], 4).tolist()}


def waveform_image(mono: np.ndarray, width: int, height: int) -> np.ndarray:
    """Min/max columns of ``mono`` drawn on a dark background: (height, width, 3) uint8."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = _WAVE_BG
    if len(mono) == 0:
        return img
    edges = np.linspace(0, len(mono), width + 1).astype(int)
    mid = (height - 1) / 2
    for x in range(width):
        seg = mono[edges[x]: max(edges[x + 1], edges[x] + 1)]
        top = round(mid - float(np.clip(seg.max(), -1, 1)) * mid)
        bottom = round(mid - float(np.clip(seg.min(), -1, 1)) * mid)
        img[top: bottom + 1, x] = _WAVE_FG
    return img


def spectrogram_image(mono: np.ndarray, width: int, height: int, n_fft: int = N_FFT) -> np.ndarray:
    """Log-magnitude STFT (Hann window, ``width`` frames spread over the signal, low frequencies at the bottom),
    the top ``DB_RANGE`` dB mapped onto ``_RAMP``: (height, width, 3) uint8."""
    x = np.pad(mono.astype(np.float64), (n_fft // 2, n_fft // 2 + n_fft))
    starts = np.linspace(0, max(len(x) - n_fft, 0), width).astype(int)
    frames = x[starts[:, None] + np.arange(n_fft)[None, :]] * np.hanning(n_fft)[None, :]
    mag = np.abs(np.fft.rfft(frames, axis=1)).T  # (bins, width)
    db = 20 * np.log10(mag + 1e-10)
    level = np.clip((db - (db.max() - DB_RANGE)) / DB_RANGE, 0.0, 1.0)
    rows = np.linspace(mag.shape[0] - 1, 0, height)  # top row = highest frequency
    level = np.stack([np.interp(rows, np.arange(mag.shape[0]), level[:, c]) for c in range(width)], axis=1)
    pos = level * (len(_RAMP) - 1)
    i = np.minimum(pos.astype(int), len(_RAMP) - 2)
    t = (pos - i)[..., None]
    return np.round(_RAMP[i] * (1 - t) + _RAMP[i + 1] * t).astype(np.uint8)


def audio_image(path: Path, kind: str, cache_dir: Path) -> bytes:
    """The ``kind`` ("waveform" or "spectrogram") PNG of the audio file at ``path``, from the cache when fresh."""
    width, height = IMAGE_SIZE[kind]
    st = path.stat()
    cached = cache_dir / f"{path.stem}-{st.st_size}-{st.st_mtime_ns}-{kind}.png"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    audio, _ = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    data = png(waveform_image(mono, width, height) if kind == "waveform" else spectrogram_image(mono, width, height))
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(cached, lambda fh: fh.write(data), overwrite=True)
    except OSError:  # a full disk costs the cache, not the picture
        pass
    return data
