"""Audition and record through a private JACK dummy server (tests/conftest.py) with sounddevice.

The dummy driver has no sound card: a test wires PortAudio's JACK output ports to its input ports
(``jack_connect``), so what the engine plays can be captured and what a test plays can be recorded.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from engine.io import audition
from engine.io.audio import AudioExistsError
from engine.jobs.queue import TakeRecord
from engine.request import RequestError
from jukebox_bridge.cli import main

pytestmark = pytest.mark.timeout(60)
JACK_RATE = 44100  # the conftest server's rate


@pytest.fixture(scope="module", autouse=True)
def portaudio(jack_server):
    """PortAudio re-lists devices once the server runs, and lets go of it before the server stops."""
    import sounddevice as sd

    audition.rescan()
    yield sd
    sd._terminate()


def wire_loopback(timeout: float = 10.0) -> None:
    """Connect every PortAudio output port to a PortAudio input port, once both exist.

    PortAudio names its JACK ports in_N / out_N with N not stable between runs, so they are found by prefix."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()
        outs = sorted(p for p in ports if p.startswith("PortAudio") and ":out_" in p)
        ins = sorted(p for p in ports if p.startswith("PortAudio") and ":in_" in p)
        if outs and ins:
            for out, inp in zip(outs, ins):
                subprocess.run(["jack_connect", out, inp], capture_output=True)
            return
        time.sleep(0.01)
    pytest.fail("PortAudio's JACK ports did not appear")


def tone(freq: float, seconds: float, rate: int, amp: float) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[:, None], 2, 1).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x[:, 0] * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_play_reaches_the_output_device_resampled_to_its_rate(portaudio, tmp_path):
    sd = portaudio
    path = tmp_path / "take.wav"
    sf.write(path, tone(1000, 1.0, 48000, 0.5), 48000)  # JACK runs at 44.1 kHz: the file must be resampled
    captured: list[np.ndarray] = []
    with sd.InputStream(channels=2, samplerate=JACK_RATE, callback=lambda data, *_: captured.append(data.copy())):
        played = audition.play_file(path, blocking=False)
        wire_loopback()
        sd.wait()
    got = np.concatenate(captured)
    assert (played.sample_rate, played.seconds) == (JACK_RATE, pytest.approx(1.0))
    assert np.abs(got).max() == pytest.approx(0.5, abs=0.02)
    loud = got[np.abs(got[:, 0]) > 0.25]
    assert len(loud) > 0.2 * JACK_RATE  # a good part of the second came through
    assert peak_hz(got, JACK_RATE) == pytest.approx(1000, abs=3)


def test_record_writes_the_input_atomically(portaudio, tmp_path):
    sd = portaudio
    phase = [0]

    def sine(out, frames, *_):
        t = (phase[0] + np.arange(frames)) / JACK_RATE
        out[:] = (0.25 * np.sin(2 * np.pi * 440 * t))[:, None]
        phase[0] += frames

    path = tmp_path / "prime.wav"
    with sd.OutputStream(channels=2, samplerate=JACK_RATE, callback=sine):
        recorder = threading.Thread(target=audition.record, args=(path, 1.5))
        recorder.start()
        wire_loopback()
        recorder.join(20)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (JACK_RATE, 2, "PCM_24", int(1.5 * JACK_RATE))
    data, _ = sf.read(path, dtype="float32")
    tail = data[-JACK_RATE // 2:]  # the last half second: the ports were wired by then
    assert np.abs(tail).max() == pytest.approx(0.25, abs=0.01) and peak_hz(tail, JACK_RATE) == pytest.approx(440, abs=3)
    assert os.listdir(tmp_path) == ["prime.wav"]  # no temporary file left behind
    with pytest.raises(AudioExistsError, match="already exists"):
        audition.record(path, 0.5)


class FakeJobs:
    """``JobQueue.get`` in miniature: one job with one finished take."""

    def __init__(self, path: Path) -> None:
        self.job = SimpleNamespace(id="job1", published=[TakeRecord(1, str(path), 0.0, 0.2, True)])

    def get(self, job_id: str):
        if job_id != self.job.id:
            raise RequestError("unknown_job", f"no job {job_id!r}", "job_id")
        return self.job


def test_audition_verb_plays_a_finished_take_or_says_why_not(portaudio, tmp_path):
    path = tmp_path / "t.wav"
    sf.write(path, tone(440, 0.2, JACK_RATE, 0.3), JACK_RATE)
    jobs = FakeJobs(path)
    assert audition.audition_take(jobs, "job1", 1) == path
    portaudio.wait()
    with pytest.raises(RequestError) as err:
        audition.audition_take(jobs, "job1", 2)
    assert err.value.code == "bad_value" and "no finished take 2 (finished: [1])" in str(err.value)
    with pytest.raises(RequestError) as err:
        audition.audition_take(jobs, "nope", 1)
    assert err.value.code == "unknown_job"
    with pytest.raises(RequestError) as err:
        audition.audition_take(jobs, "job1", 1, device="No Such Device")
    assert err.value.code == "unavailable" and "output devices: 0: system" in str(err.value)


def test_play_and_record_commands(portaudio, tmp_path, capsys):
    path = tmp_path / "t.wav"
    sf.write(path, tone(440, 0.2, JACK_RATE, 0.3), JACK_RATE)
    assert main(["play", str(path)]) == 0
    assert "played" in capsys.readouterr().out
    out = tmp_path / "rec.wav"
    assert main(["record", "--seconds", "0.3", "-o", str(out), "--sample-rate", "48000", "--channels", "1"]) == 0
    assert "recorded 0.3 s" in capsys.readouterr().out
    assert (sf.info(out).samplerate, sf.info(out).channels) == (48000, 1)
    assert main(["record", "--seconds", "0.3", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["play", str(path), "--device", "No Such Device"]) == 2
    assert "no output device 'No Such Device'" in capsys.readouterr().err
