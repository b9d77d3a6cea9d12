"""Audio file I/O: read a region of a user's file, turn it into model input, write results.

Sample-rate conversion happens only here, in :func:`resample`. Jukebox works on 44.1 kHz mono
while a DAW project runs at whatever rate the user picked; routing both directions (file -> model,
model -> file) through one function keeps one quality setting (soxr 'VHQ') and one exact-length
rule, ``round(frames * to_sr / from_sr)``, so regions line up sample-accurately with the timeline.

Files are written atomically (temp file in the target folder, fsync, hard-link into place), never
overwrite an existing file, and never leave a half-written file behind.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .files import short_write_error

MODEL_SAMPLE_RATE = 44100
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
READABLE = "WAV, AIFF, FLAC, OGG, MP3"
# libsndfile's MP3 seek restarts mpg123 without its bit reservoir, so up to ~10k frames after a seek
# decode wrong (measured worst case 10368 at 22.05 kHz). Seek this far earlier and drop the preroll.
MP3_PREROLL = 65536

PathLike = str | os.PathLike[str]


class AudioError(ValueError):
    """Bad audio input or output; the message says what is wrong and what to do about it."""


class AudioExistsError(AudioError, FileExistsError):
    """The output file already exists (an :class:`AudioError` that is also a ``FileExistsError``)."""


@dataclass(frozen=True, eq=False)
class AudioRegion:
    """A region read from a file: float32 ``samples`` of shape (frames, channels)."""

    samples: np.ndarray
    sample_rate: int
    start_frame: int
    path: Path

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])


def mp3_supported() -> bool:
    """True if the installed libsndfile (1.1+) can decode MP3."""
    version = tuple(int(p) for p in sf.__libsndfile_version__.split(".")[:2] if p.isdigit())
    return version >= (1, 1) and "MP3" in sf.available_formats()


def _check_rate(rate: float, what: str) -> int:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE or rate != int(rate):  # also rejects NaN
        raise AudioError(
            f"Unsupported sample rate {rate} Hz for {what}. Use a whole number of Hz between "
            f"{MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} (e.g. 44100 or 48000)."
        )
    return int(rate)


def _check_seconds(value: float, name: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise AudioError(f"Region {name} must be a finite number of seconds >= 0, got {value}.")


def _require_dir(directory: Path) -> None:
    if not directory.is_dir():
        raise AudioError(f"Output folder does not exist: {directory}. Create it or pick another folder.")


def _open(path: Path) -> sf.SoundFile:
    """Open ``path`` for reading, turning every failure into an :class:`AudioError`."""
    if not path.is_file():
        raise AudioError(f"Audio file not found: {path}. Check the path (a file, not a folder).")
    if path.stat().st_size == 0:
        raise AudioError(f"Audio file is empty (0 bytes): {path}. Re-export or re-record it.")
    if path.suffix.lower() == ".mp3" and not mp3_supported():
        raise AudioError(
            f"Cannot read MP3 {path}: the installed libsndfile {sf.__libsndfile_version__} has no MP3 support "
            "(needs 1.1+). Run `pip install -U soundfile` (its wheels bundle libsndfile 1.2), or convert to WAV."
        )
    try:
        return sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        raise AudioError(
            f"{path} is not an audio file soundfile can read ({READABLE}): {exc.error_string}. "
            "Convert it to WAV or FLAC and try again."
        ) from exc


_CLAIMED = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_SIZE_UNKNOWN = 0xFFFFFF00  # streaming writers put 0xFFFFFFFF (or 0) in the size while they record


def truncation(path: PathLike, start: float = 0.0, length: float | None = None) -> str | None:
    """Why the file holds less audio than its header promises (a copy or export cut short), or None.

    libsndfile quietly shortens such a WAV or AIFF to what is there; its header report still says what the
    chunk claimed. Other formats (FLAC, OGG, MP3) are checked by decoding the last frame of the region."""
    path = Path(path)
    with _open(path) as f:
        for _chunk, claimed, actual in _CLAIMED.findall(f.extra_info):
            claimed, actual = int(claimed), int(actual)
            if actual < claimed < _SIZE_UNKNOWN:
                block = max(1, f.channels * _sample_bytes(f.subtype))
                return (f"{path} is truncated: its header promises {claimed // block} frames "
                        f"({claimed // block / f.samplerate:.3f} s) but the file holds only {actual // block} "
                        f"({actual // block / f.samplerate:.3f} s). Export or copy it again (or wait until the "
                        "recording has finished).")
        if f.format in ("WAV", "AIFF", "WAVEX", "RF64", "W64") or not f.seekable() or f.frames <= 0:
            return None
        end = f.frames if length is None else min(f.frames, round((start + length) * f.samplerate))
        try:
            f.seek(max(0, end - 1))
            got = len(f.read(1, dtype="float32", always_2d=True))
        except (sf.LibsndfileError, RuntimeError):
            got = 0
        if got == 0:
            return (f"{path} is truncated: its header promises {f.frames} frames ({f.frames / f.samplerate:.3f} s) "
                    f"but frame {end} cannot be decoded. Export or copy it again.")
    return None


def _sample_bytes(subtype: str) -> int:
    digits = "".join(ch for ch in subtype if ch.isdigit())
    return {"FLOAT": 4, "DOUBLE": 8, "ULAW": 1, "ALAW": 1}.get(subtype, int(digits) // 8 if digits else 2)


def read_region(path: PathLike, start: float = 0.0, length: float | None = None) -> AudioRegion:
    """Read ``length`` seconds (default: to the end) from ``start`` seconds, seeking to the region."""
    path = Path(path)
    _check_seconds(start, "start")
    if length is not None:
        _check_seconds(length, "length")
    with _open(path) as f:
        rate = _check_rate(f.samplerate, f"input file {path}")
        if f.frames == 0:
            raise AudioError(f"Audio file is empty (0 frames): {path}. Re-export or re-record it.")
        start_frame = round(start * rate)
        count = f.frames - start_frame if length is None else round(length * rate)
        if length is not None and count == 0:
            raise AudioError(
                f"Zero-length region: {length} s is less than one sample at {rate} Hz. "
                "Ask for a longer region."
            )
        if start_frame >= f.frames or start_frame + count > f.frames:
            end = "end" if length is None else f"{start + length:.3f} s"
            raise AudioError(
                f"Region {start:.3f} s to {end} is past the end of {path} "
                f"(duration {f.frames / rate:.3f} s). Choose a region inside the file."
            )
        preroll = min(start_frame, MP3_PREROLL) if f.format == "MP3" else 0
        try:  # one read() call: soundfile's read re-seeks (tell), which would glitch MP3 again
            f.seek(start_frame - preroll)
            samples = f.read(preroll + count, dtype="float32", always_2d=True)[preroll:]
        except sf.LibsndfileError as exc:
            raise AudioError(f"Cannot decode {path}: {exc.error_string}. Convert it to WAV.") from exc
    if len(samples) != count:
        raise AudioError(f"{path} is truncated: got {len(samples)} of {count} frames. Re-export it.")
    return AudioRegion(samples, rate, start_frame, path)


def resample(x: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    """Resample (T,) or (T, C) audio with soxr 'VHQ' to exactly ``round(T * to_sr / from_sr)`` frames."""
    from_sr = _check_rate(from_sr, "resampling input")
    to_sr = _check_rate(to_sr, "resampling output")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise AudioError(f"Audio must have shape (T,) or (T, C), got {x.shape}.")
    if from_sr == to_sr or len(x) == 0:
        return x.copy()
    n_out = round(Fraction(len(x) * to_sr, from_sr))
    y = soxr.resample(x, from_sr, to_sr, quality="VHQ")[:n_out]
    if len(y) < n_out:
        y = np.pad(y, [(0, n_out - len(y))] + [(0, 0)] * (y.ndim - 1))
    return np.ascontiguousarray(y, dtype=np.float32)


def to_model_input(region: AudioRegion, sample_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Downmix to mono (channel mean, Jukebox's 0.5·L + 0.5·R) and resample: float32 (T,)."""
    return resample(region.samples.mean(axis=1, dtype=np.float32), region.sample_rate, sample_rate)


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return np.repeat(x, channels, axis=1)
    if channels == 1:
        return x.mean(axis=1, keepdims=True, dtype=np.float32)
    raise AudioError(
        f"Cannot convert {x.shape[1]}-channel audio to {channels} channels. "
        f"Pass mono or {channels}-channel audio."
    )


def _exists_error(path: Path) -> AudioExistsError:
    return AudioExistsError(
        f"Output file already exists: {path}. It was not overwritten; pick a new name (unique_path)."
    )


def _fsync_dir(directory: Path) -> None:
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Writer:
    """The file soundfile writes a WAV through. An ``OSError`` from ``write`` (a full disk) is kept here instead of
    raised inside libsndfile's callback, where soundfile could only report it as a bare ``AssertionError``."""

    def __init__(self, fh) -> None:
        self.fh, self.error = fh, None

    def write(self, data: bytes) -> int:
        if self.error is not None:
            return 0
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            return 0

    def read(self, n: int = -1) -> bytes:
        return self.fh.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()


def _publish_wav(path: Path, data: np.ndarray, sample_rate: int, subtype: str) -> None:
    """Write a WAV to a temp file beside ``path``, fsync, then hard-link it into place (no overwrite)."""
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.part.wav")
    # os.open rather than tempfile.mkstemp: mode 0o666 honours the umask (mkstemp makes files 0600)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w+b", buffering=0) as fh:
            writer = _Writer(fh)
            try:
                sf.write(writer, data, sample_rate, subtype=subtype, format="WAV")
            except AssertionError:  # soundfile's "assert written == frames": libsndfile was refused the rest
                if writer.error is not None:
                    raise OSError(writer.error.errno, writer.error.strerror, str(path)) from None
                raise short_write_error(path, data.size * 4) from None
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise _exists_error(path) from exc
        except OSError as exc:
            raise AudioError(
                f"Could not publish {path}: {exc}. "
                "The output folder must be writable and on a filesystem with hard links."
            ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_audio(
    path: PathLike,
    audio: np.ndarray,
    sample_rate: int,
    *,
    source_rate: int = MODEL_SAMPLE_RATE,
    channels: int = 1,
    subtype: str = "PCM_24",
) -> Path:
    """Write float ``audio`` (T,) or (T, C) at ``source_rate`` as a ``sample_rate`` WAV; return the path.

    Converts the channel count (mono is duplicated, C -> 1 is a mean), clamps to [-1, 1] for integer
    subtypes, and publishes atomically. Raises :class:`AudioExistsError` rather than overwrite.
    """
    path = Path(path)
    _require_dir(path.parent)
    if path.exists():  # cheap early check; the hard link in _publish_wav is the real guard
        raise _exists_error(path)
    if subtype not in SUBTYPES:
        raise AudioError(f"Unsupported subtype {subtype!r}. Use one of {', '.join(SUBTYPES)}.")
    sample_rate = _check_rate(sample_rate, "output")
    source_rate = _check_rate(source_rate, "source audio")
    if channels < 1:
        raise AudioError(f"Channel count must be at least 1, got {channels}.")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise AudioError(f"Audio to write must be non-empty, shape (T,) or (T, C); got {x.shape}.")
    if not np.isfinite(x).all():
        raise AudioError(
            "Audio to write contains NaN or infinite samples; nothing was written. Check the model output."
        )
    y = resample(convert_channels(x, channels), source_rate, sample_rate)
    if subtype != "FLOAT":
        y = np.clip(y, -1.0, 1.0)
    _publish_wav(path, y, sample_rate, subtype)
    return path


def unique_path(directory: PathLike, stem: str, suffix: str = ".wav") -> Path:
    """First of ``stem``, ``stem-2``, ``stem-3``, ... (+ ``suffix``) not yet in ``directory``."""
    directory = Path(directory)
    _require_dir(directory)
    suffix = suffix if not suffix or suffix.startswith(".") else f".{suffix}"
    candidate, n = directory / f"{stem}{suffix}", 1
    while candidate.exists():
        n += 1
        candidate = directory / f"{stem}-{n}{suffix}"
    return candidate
