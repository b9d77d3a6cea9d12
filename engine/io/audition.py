"""Listening and recording on the engine computer's own audio device, through sounddevice (PortAudio).

* ``play_file`` previews a WAV (``jukebox-bridge play``); ``audition_take`` is the OSC ``audition``
  verb: it finds a job's published take and starts playing it without blocking the caller.
* ``record`` captures a prime from an input device (``jukebox-bridge record``) and writes it through
  ``audio.write_audio``, so the file appears atomically and never overwrites anything.

A device's rate is fixed by its driver (JACK runs at the server's rate, for instance), so audio is
resampled to the device's default rate (``audio.resample``) when the device refuses the file's own
rate, and channels are matched to what the device has. PortAudio lists devices once, when it
starts; if no device is found the list is refreshed once (a JACK server started after the engine).
sounddevice is imported on first use: an engine without PortAudio still renders, and these
functions raise ``AudioDeviceError`` saying what is missing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import audio

_lock = threading.Lock()  # sounddevice's play/rec/stop share one module-level stream


class AudioDeviceError(RuntimeError):
    """No usable audio device (or no PortAudio); the message names the devices that exist."""


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    channels: int  # output channels for playback, input channels for recording
    default_rate: int


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library itself is missing
        raise AudioDeviceError(f"audio I/O needs PortAudio and the sounddevice package: {exc} "
                               "(Debian/Ubuntu: apt-get install libportaudio2)") from None
    return sounddevice


def rescan() -> None:
    """Make PortAudio list devices again (it lists them only when it starts); stops any playback.

    sounddevice has no public re-scan; its maintainer suggests these two calls (python-sounddevice #125)."""
    sd = _sounddevice()
    with _lock:
        sd._terminate()
        sd._initialize()


def find_device(device: int | str | None, kind: str) -> Device:
    """The ``kind`` ("output" or "input") device by index or name part, default: PortAudio's default."""
    sd = _sounddevice()

    def query() -> Device:
        info = sd.query_devices(device, kind)
        return Device(int(info["index"]), str(info["name"]), int(info[f"max_{kind}_channels"]),
                      int(info["default_samplerate"]))

    try:
        return query()
    except (ValueError, sd.PortAudioError):
        rescan()
    try:
        return query()
    except (ValueError, sd.PortAudioError) as exc:
        names = [f"{d['index']}: {d['name']}" for d in sd.query_devices() if d[f"max_{kind}_channels"] > 0]
        raise AudioDeviceError(f"no {kind} device {'' if device is None else repr(device) + ' '}({exc}); "
                               f"{kind} devices: {', '.join(names) or 'none (is an audio server running?)'}"
                               ) from None


def _fit(data: np.ndarray, rate: int, dev: Device, sd: Any) -> tuple[np.ndarray, int]:
    """(frames, channels) audio the device accepts: its channel count and, if needed, its rate."""
    channels = max(1, min(data.shape[1], dev.channels))
    if data.shape[1] != channels:
        data = audio.convert_channels(data.mean(axis=1, keepdims=True, dtype=np.float32), channels)
    try:
        sd.check_output_settings(dev.index, channels=channels, samplerate=rate)
    except sd.PortAudioError:
        data, rate = audio.resample(data, rate, dev.default_rate), dev.default_rate
    return np.ascontiguousarray(data, dtype=np.float32), rate


@dataclass(frozen=True)
class Playback:
    path: Path
    device: str
    seconds: float
    sample_rate: int  # the rate sent to the device


def play_file(path: str | Path, device: int | str | None = None, blocking: bool = True) -> Playback:
    """Play an audio file on an output device; a new playback stops the one before it."""
    path = Path(path)
    region = audio.read_region(path)
    sd = _sounddevice()
    dev = find_device(device, "output")
    data, rate = _fit(region.samples, region.sample_rate, dev, sd)
    with _lock:
        try:
            sd.play(data, rate, device=dev.index)
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot play on {dev.name}: {exc}") from None
    if blocking:
        sd.wait()
    return Playback(path, dev.name, region.frames / region.sample_rate, rate)


def stop() -> None:
    """Stop whatever ``play_file`` or ``record`` is doing."""
    sd = _sounddevice()
    with _lock:
        sd.stop()


def audition_take(jobs: Any, job_id: str, take: int, device: int | str | None = None) -> Path:
    """The OSC ``audition`` verb: start playing a finished take of a job (``engine.jobs.queue.JobQueue``).

    Raises ``RequestError``: ``unknown_job``, ``bad_value`` (no such finished take) or ``unavailable``
    (no output device).
    """
    from engine.errors import ErrorCode, RequestError

    job = jobs.get(job_id)  # unknown_job
    record = next((t for t in job.published if t.take == take), None)
    if record is None:
        raise RequestError(ErrorCode.BAD_VALUE, f"job {job.id} has no finished take {take} "
                           f"(finished: {[t.take for t in job.published] or 'none yet'})", "take")
    try:
        play_file(record.path, device, blocking=False)
    except (AudioDeviceError, audio.AudioError) as exc:
        raise RequestError(ErrorCode.UNAVAILABLE, f"cannot audition here: {exc}") from None
    return Path(record.path)


def record(path: str | Path, seconds: float, device: int | str | None = None, sample_rate: int | None = None,
           channels: int = 2) -> Path:
    """Record ``seconds`` from an input device into a new 24-bit WAV at ``path``; returns the path.

    Records at the device's own rate and writes at ``sample_rate`` (default: the device's rate);
    ``channels`` is capped at what the device has.
    """
    if not 0 < seconds <= 3600:
        raise ValueError(f"record length must be more than 0 and at most 3600 seconds; got {seconds}")
    path = Path(path)
    if path.exists():  # fail before recording, not after (write_audio would refuse too)
        raise audio.AudioExistsError(f"{path} already exists; it was not overwritten. Pick another name.")
    sd = _sounddevice()
    dev = find_device(device, "input")
    channels = max(1, min(channels, dev.channels))
    with _lock:
        try:
            data = sd.rec(round(seconds * dev.default_rate), samplerate=dev.default_rate, channels=channels,
                          dtype="float32", device=dev.index)
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot record from {dev.name}: {exc}") from None
    sd.wait()
    return audio.write_audio(path, data, sample_rate or dev.default_rate, source_rate=dev.default_rate,
                             channels=channels)
