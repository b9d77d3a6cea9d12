"""The engine end to end over real UDP on loopback, with the debug models and the real render pipeline.

Clients: python-osc (messages built and parsed by it, sent from sockets bound to 127.0.0.1), and
liblo-tools' ``oscsend``/``oscdump`` (oscdump cannot bind to loopback only: it runs inside a private network
namespace where ``unshare -n`` is allowed, and on a free port of the host's loopback everywhere). Also: ``kill -9``
mid-job and resume, and a few thousand malformed packets.

Every wait scales with the machine's measured load (tests/pace.py), so a busy machine slows these tests down
instead of failing them, and a hang still fails in a bounded time.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from bridge.osc import RateLimiter, salvage
from bridge.protocol import RATE_LIMIT
from bridge.server import ServeConfig, load_config, start_engine
from engine.generate.render import render
from engine.weights.bundle import load_models

ROOT = Path(__file__).parents[2]
DRAFT = {"quality": "draft", "seed": 3}
pytestmark = pytest.mark.timeout(120)


def build(address: str, args: list) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class Client:
    """A DAW script in miniature: sends requests, collects every reply on its own loopback port."""

    def __init__(self, engine_port: int, token: str | None = None, scale: float = 1.0) -> None:
        self.scale = scale  # every wait's timeout is multiplied by it (the machine's measured slowness)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # bursts of replies are not dropped
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port, self.engine, self.token = self.sock.getsockname()[1], ("127.0.0.1", engine_port), token
        self.messages: list[tuple[float, str, list]] = []
        self.cond = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(70000)
            except (socket.timeout, OSError):
                continue
            m = OscMessage(data)
            with self.cond:
                self.messages.append((time.monotonic(), m.address, list(m.params)))
                self.cond.notify_all()

    def send(self, verb: str, rid: str, params: dict | None = None) -> None:
        args: list = [self.port, rid] + ([json.dumps(params)] if params is not None else [])
        self.sock.sendto(build(f"/jukebox/{verb}", args + ([self.token] if self.token else [])), self.engine)

    def wait(self, address: str, first: str | None = None, timeout: float = 30.0, pred=lambda p: True) -> list:
        timeout *= self.scale
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for _, addr, params in self.messages:
                    if addr == f"/jukebox/{address}" and (first is None or params[0] == first) and pred(params):
                        return params
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no /jukebox/{address} {first or ''} within {timeout:.0f} s; "
                                         f"got {self.messages[-8:]}")
                self.cond.wait(left)

    def all(self, address: str, first: str | None = None) -> list[list]:
        with self.cond:
            return [p for _, a, p in self.messages if a == f"/jukebox/{address}" and (first is None or p[0] == first)]

    def close(self) -> None:
        self.running = False
        self.thread.join(1)
        self.sock.close()


def _renderer(models, req, progress, cancel, workdir, cache=None):
    """The real pipeline; the lyrics "explode" stand in for a model failure."""
    if req.lyrics == "explode":
        raise RuntimeError("the model fell over")
    return render(models, req, progress, cancel, workdir, cache=cache)


@pytest.fixture(scope="module")
def models():
    return load_models("debug")


@pytest.fixture(scope="module")
def engine(models, tmp_path_factory):
    cfg = ServeConfig(model="debug", port=0, render_dir=tmp_path_factory.mktemp("renders"), midi=False, web_port=0)
    eng = start_engine(cfg, models=models, renderer=_renderer)
    yield eng
    eng.stop()


@pytest.fixture
def client(engine, pace):
    c = Client(engine.address[1], scale=pace.factor)
    yield c
    c.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "region.wav"
    t = np.arange(24000) / 48000
    sf.write(path, np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1), 48000)
    return path


def test_ping_hello_info_and_label_search(client):
    client.send("ping", "p1")
    assert client.wait("pong", "p1")[1] == "0.1.0"
    client.send("hello", "h1")
    assert client.wait("hello", "h1")[2] == 1
    assert client.wait("engine")[0] == "ready"
    client.send("info", "i1", {})
    info = json.loads(client.wait("info", "i1")[1])
    assert info["protocol"] == 1 and info["model"] == "debug" and "continue" in info["capabilities"]
    assert info["params"]["temperature"] == pytest.approx(0.98) and "random weights" in info["licence"]  # the debug model's own terms
    client.send("artists", "a1", {"query": "beat", "limit": 2})
    page = json.loads(client.wait("artists", "a1")[1])
    assert page["total"] >= 2 and len(page["names"]) == 2
    client.send("set", "s1", {"name": "temperature", "value": 0.9})
    assert client.wait("param", "temperature")[1] == pytest.approx(0.9)
    client.send("set", "s2", {"name": "temperature", "value": 0.98})


@pytest.mark.parametrize("verb,fields,rate,channels,seconds,position", [
    ("continue", {"start": 0.1, "length": 0.3, "position": 8.0, "seconds": 0.05}, 48000, 2, 0.05, 8.3),
    ("prime", {"start": 0.0, "length": 0.2, "position": 2.0, "seconds": 0.04}, 44100, 1, 0.04, 2.2),
    ("rerender", {"start": 0.2, "length": 0.05, "position": 5.0}, 96000, 2, 0.05, 5.0),
    ("generate", {"position": 1.5, "seconds": 0.05, "takes": 2}, 22050, 1, 0.05, 1.5),
])
def test_each_render_verb_ends_in_a_wav_of_the_right_length_rate_and_channels(
        client, engine, source, verb, fields, rate, channels, seconds, position):
    params = {**fields, **DRAFT, "sample_rate": rate, "channels": channels}
    if verb != "generate":
        params["source"] = str(source)
    client.send(verb, f"r-{verb}", params)
    job = client.wait("accepted", f"r-{verb}")[1]
    finished = client.wait("finished", job, timeout=60)
    assert finished[1:] == ["done", params.get("takes", 1)]
    assert client.all("progress", job)[0][2] == "queued"
    assert any(p[2].startswith(("sampling", "upsampling")) for p in client.all("progress", job))
    with client.cond:  # progress at least once a second until the job is over
        times = [t for t, a, p in client.messages if p and p[0] == job and a in ("/jukebox/progress", "/jukebox/done")]
    assert max(np.diff(times), default=0) < 1.0 * client.scale
    for _, take, path, pos, length in client.all("done", job):
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (rate, channels)
        assert abs(info.frames - seconds * rate) <= 1 and length == pytest.approx(seconds, abs=1e-3)
        assert pos == pytest.approx(position, abs=1e-4)
        assert Path(path).parent == engine.jobs.render_dir and Path(path).with_suffix(".json").exists()
        assert Path(path).name.startswith(f"{job[:8]}-take{take}-{verb}")


def test_a_draft_then_refine_gives_the_keeper_at_full_quality_where_the_draft_is(client, source):
    from engine.io.codes import CodesFile

    client.send("continue", "draft", {"source": str(source), "start": 0.1, "length": 0.3, "position": 8.0,
                                      "seconds": 0.05, "sample_rate": 48000, **DRAFT})
    job = client.wait("accepted", "draft")[1]
    assert client.wait("finished", job, timeout=60)[1:] == ["done", 1]
    _, _, draft, position, length = client.wait("done", job)
    client.send("refine", "keeper", {"source": draft})  # what a DAW sends: the selected take's file
    keeper = client.wait("accepted", "keeper")[1]
    assert client.wait("finished", keeper, timeout=60)[1:] == ["done", 1]
    _, _, refined, refined_position, refined_length = client.wait("done", keeper)
    assert (refined_position, refined_length) == (pytest.approx(position), pytest.approx(length))
    assert position == pytest.approx(8.3, abs=1e-4)
    a, b = sf.info(draft), sf.info(refined)
    assert (b.frames, b.samplerate, b.channels) == (a.frames, a.samplerate, a.channels)
    sides = [json.loads(Path(p).with_suffix(".json").read_text()) for p in (draft, refined)]
    assert [(s["mode"], s["quality"], s["seed"]) for s in sides] == [("continue", "draft", 3), ("refine", "full", 3)]
    codes = [CodesFile.load(Path(p).parent / s["codes"]) for p, s in zip((draft, refined), sides)]
    np.testing.assert_array_equal(codes[1].codes[2], codes[0].codes[2])  # the draft's top level, not resampled
    assert codes[1].extra["levels"] == [1, 0]
    client.send("refine", "again", {"source": refined})  # already full quality
    error = client.wait("error", "again", timeout=5)
    assert error[1] == "bad_value" and "already full quality" in error[2]
    client.send("refine", "no-codes", {"source": str(source)})  # not a take the engine rendered
    assert client.wait("error", "no-codes", timeout=5)[1] == "source_not_found"


def test_cancel_stops_a_job_mid_render(client):
    client.send("generate", "long", {"seconds": 8.0, **DRAFT})
    job = client.wait("accepted", "long")[1]
    client.wait("progress", job, pred=lambda p: p[2].startswith("sampling"))
    sent = time.monotonic()
    client.send("cancel", "c1", {"job_id": job})
    assert client.wait("cancelled", "c1")[1] == 1
    assert client.wait("finished", job, timeout=10)[1:] == ["cancelled", 0]
    assert time.monotonic() - sent < 5 * client.scale
    assert client.wait("error", job)[1] == "cancelled"
    client.send("status", "st", {"job_id": job})
    assert json.loads(client.wait("status", "st")[1])["state"] == "cancelled"


def test_every_error_code_we_can_trigger(client, engine, source, tmp_path, monkeypatch):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    requests = {
        "unknown_verb": ("explode", None), "unknown_field": ("generate", {"colour": "red"}),
        "bad_value": ("generate", {"takes": 99}), "source_not_found": ("continue", {"source": "/no/such/file.wav"}),
        "not_audio": ("continue", {"source": str(text)}), "unknown_job": ("status", {"job_id": "feedface"}),
        "unavailable": ("learn", {"name": "temperature"}),
        "unknown_label": ("generate", {"artist": "zzqx nobody"}),  # refused at submission, nothing queued
    }
    for code, (verb, params) in requests.items():
        client.send(verb, f"e-{code}", params)
        assert client.wait("error", f"e-{code}", timeout=5)[1] == code
    client.send("continue", "e-region", {"source": str(source), "start": 0.4, "length": 0.5})
    assert client.wait("error", "e-region", timeout=5)[1] == "not_audio"
    client.sock.sendto(build("/jukebox/ping", [client.port, 1.5]), client.engine)  # id of the wrong type
    client.sock.sendto(build("/jukebox/ping", [client.port, "cut"])[:-3], client.engine)  # truncated packet
    client.send("ping", "sync")  # the engine answers in order: both errors are in once this pong is
    client.wait("pong", "sync")
    assert [e[1] for e in client.all("error", "")] == ["bad_request", "bad_request"]
    for rid, params, code in (("e-model", {"lyrics": "explode"}, "render_failed"),):
        client.send("generate", rid, {"seconds": 0.05, **DRAFT, **params})
        job = client.wait("accepted", rid)[1]
        assert client.wait("error", job, timeout=30)[1] == code
        assert client.wait("finished", job)[1] == "failed"
    monkeypatch.setattr(engine.bridge, "_ping", lambda *a: 1 / 0)
    client.send("ping", "e-internal")
    assert client.wait("error", "e-internal")[1:] == ["internal", "ZeroDivisionError: division by zero"]


def test_floods_are_told_busy_once_a_second(engine, pace):
    flood = Client(engine.address[1], scale=pace.factor)
    try:
        start = time.monotonic()
        for i in range(400):
            flood.send("ping", f"f{i}")
        sync = 0
        while True:  # the engine answers in order: once a sync ping is answered, every flood reply is in
            sync += 1
            flood.send("ping", f"sync{sync}")
            try:
                flood.wait("pong", f"sync{sync}", timeout=0.2)
                break
            except AssertionError:
                assert time.monotonic() - start < pace(30), "the engine stopped answering after a flood"
        elapsed = time.monotonic() - start
        busy = [e for e in flood.all("error") if e[1] == "busy"]
        pongs = len([p for p in flood.all("pong") if p[0].startswith("f")])
        # the token bucket: a burst of RATE_LIMIT, then RATE_LIMIT per second for as long as the flood was being read;
        # whoever is refused hears "busy", at most once a second
        assert 150 <= pongs <= RATE_LIMIT * (1 + elapsed) + 2 and len(busy) <= 1 + elapsed, (len(busy), pongs, elapsed)
        assert len(busy) >= 1 if pongs < 400 else elapsed > 1.0, (len(busy), pongs, elapsed)
    finally:
        flood.close()


def test_a_token_is_needed_beyond_loopback_and_checked_on_every_request(models, tmp_path):
    with pytest.raises(ValueError, match="--token"):
        start_engine(ServeConfig(listen="0.0.0.0", port=0, render_dir=tmp_path, midi=False, web_port=0),
                     models=models)
    eng = start_engine(ServeConfig(port=0, token="s3cret-token", render_dir=tmp_path, midi=False, web_port=0),
                       models=models)
    good, bad = Client(eng.address[1], token="s3cret-token"), Client(eng.address[1], token="guess-token")
    try:
        good.send("ping", "t1")
        assert good.wait("pong", "t1")
        bad.send("ping", "t2")
        assert bad.wait("error", "t2")[1] == "unauthorized"
    finally:
        good.close(), bad.close(), eng.stop()


def test_config_file_then_flags(tmp_path):
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text('model = "debug"\nport = 9200\nrender_dir = "~/renders"\nmidi = false\n')
    cfg = load_config(cfg_file, {"port": 9300, "token": None})
    assert (cfg.model, cfg.port, cfg.midi, cfg.render_dir) == ("debug", 9300, False, Path.home() / "renders")
    for text, message in (('colour = "red"', r"unknown field\(s\) colour"), ('port = "9130"', "of type int"), ("token = 12345678", "of type str"),
                          ('listen = "example.org"', "IP address"),
                          ('listen = "0.0.0.0"\ntoken = "short"', "8 characters"),
                          ("port = ", "cannot read")):
        cfg_file.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_config(cfg_file)


class FakeMidi:
    def __init__(self) -> None:
        self.learning: list[str] = []

    def learn(self, name: str) -> None:
        self.learning.append(name)

    def stop(self) -> None:
        pass


def test_midi_knobs_learn_and_note_actions_through_the_bridge(engine, client, source, monkeypatch):
    midi = FakeMidi()
    monkeypatch.setattr(engine.bridge, "midi", midi)
    client.send("hello", "mh")
    client.wait("hello", "mh")
    engine.bridge.on_midi_param("temperature", 0.75)
    assert client.wait("param", "temperature", pred=lambda p: abs(p[1] - 0.75) < 1e-6)
    engine.bridge.on_midi_param("volume", 1.0)  # unknown: logged, ignored
    client.send("learn", "ml", {"name": "top_p"})
    assert client.wait("learning", "ml")[1] == "top_p" and midi.learning == ["top_p"]
    engine.bridge.on_learned("top_p", 1, 21)
    assert client.wait("learned", "top_p")[1:] == [1, 21]
    client.send("continue", "m-src", {"source": str(source), "length": 0.2, "seconds": 0.03, **DRAFT})
    first = client.wait("accepted", "m-src")[1]
    engine.bridge.on_midi_action("continue_last")
    again = client.wait("accepted", "midi:continue_last")[1]
    assert again != first and engine.jobs.get(again).request.temperature == pytest.approx(0.75)
    assert engine.jobs.get(again).request.source == str(source)
    engine.bridge.on_midi_action("cancel_last")
    assert client.wait("finished", again, timeout=30)[1] in ("cancelled", "done")
    assert client.wait("finished", first, timeout=30)[1] == "done"
    engine.bridge.on_midi_param("temperature", 0.98)


def test_rate_limiter_and_salvage_units():
    limiter = RateLimiter(rate=10)
    assert sum(limiter.allow("a", now=0.0) for _ in range(15)) == 10
    assert limiter.allow("b", now=0.0) and limiter.allow("a", now=0.5)
    assert salvage(build("/jukebox/ping", [9000, "id"])[:-2]) == (9000, "")
    assert salvage(build("/jukebox/ping", [9000, "id", "{"])) == (9000, "id")
    assert salvage(b"\x00garbage") == (None, "")


# ---------------------------------------------------------------- fuzzing


def _reply_ports(data: bytes) -> set[int]:
    """Ports the engine could answer for this packet: only ever our sink's."""
    ports = {salvage(data)[0]} - {None}
    try:
        ports |= {m.message.params[0] for m in OscPacket(data).messages
                  if m.message.params and type(m.message.params[0]) is int}
    except Exception:
        pass
    return ports


def _fuzz_packets(rng: random.Random, sink: int, n: int) -> list[bytes]:
    verbs = ["ping", "info", "status", "artists", "genres", "hello", "explode", "audition", "learn", "prime"]
    junk = [1.5, -7, "x" * rng.randint(0, 300), b"\x00\x01blob", True, None, [1, "a"], 2**40, float("nan")]
    out: list[bytes] = []
    while len(out) < n:
        kind = rng.randrange(6)
        if kind == 0:
            data = rng.randbytes(rng.randint(0, 200))
        elif kind == 1:
            data = b"/jukebox/" + rng.randbytes(rng.randint(0, 120))
        elif kind == 2:  # truncated valid requests
            data = build(f"/jukebox/{rng.choice(verbs)}", [sink, "t", json.dumps({"query": "a"})])
            data = data[: rng.randint(0, len(data) - 1)]
        elif kind == 3:  # wrong types
            args = [rng.choice([sink, 1.5, "9000", None])] + rng.sample(junk, rng.randint(0, 4))
            data = build(f"/jukebox/{rng.choice(verbs)}", args)
        elif kind == 4:  # huge strings and JSON
            big = rng.choice(["x" * 20000, json.dumps({"query": "y" * 17000}), "[" * 8000])
            data = build(f"/jukebox/{rng.choice(verbs)}", [sink, rng.choice(["id", big]), big][: rng.randint(2, 3)])
        else:  # bundles, sometimes with lying element sizes
            bundle = OscBundleBuilder(IMMEDIATELY)
            for _ in range(rng.randint(1, 4)):
                bundle.add_content(OscMessageBuilder(f"/jukebox/{rng.choice(verbs)}").build())
            data = bundle.build().dgram
            if rng.random() < 0.5:
                cut = rng.randint(16, len(data))
                data = data[:16] + struct.pack(">i", rng.randint(-5, 9999)) + data[20:cut]
        if _reply_ports(data) <= {sink}:
            out.append(data)
    return out


def test_fuzzing_does_not_stop_the_engine_or_lose_accepted_jobs(engine, client, pace):
    rng = random.Random(1234)
    sink = Client(engine.address[1], scale=pace.factor)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    try:
        for s in senders:
            s.bind(("127.0.0.1", 0))
        packets = _fuzz_packets(rng, sink.port, 3000)
        jobs, batch_start = [], time.monotonic()
        for i, data in enumerate(packets):
            senders[i % len(senders)].sendto(data, engine.address)
            if i % 1000 == 500:
                client.send("generate", f"fz{i}", {"seconds": 0.03, **DRAFT})
                jobs.append(f"fz{i}")
            if i % 100 == 99:  # the engine answers in order: once this ping is answered, so is every packet before
                sink.send("ping", f"sync{i}")  # it (a slow engine is waited for, not flooded into dropping packets)
                sink.wait("pong", f"sync{i}", timeout=10)
            if i % 400 == 399:  # 50 packets per sender per 0.25 s: under the rate limit, so every packet is parsed
                time.sleep(max(0.0, 0.25 - (time.monotonic() - batch_start)))
                batch_start = time.monotonic()
        client.send("ping", "after")
        assert client.wait("pong", "after", timeout=10)
        accepted = [(client, client.wait("accepted", rid)[1]) for rid in jobs] + \
                   [(sink, a[1]) for a in sink.all("accepted")]
        for who, job in accepted:
            assert who.wait("finished", job, timeout=60)[1] == "done"
        assert len(sink.all("error")) > 500  # most malformed packets with a reply port were answered
        assert engine.osc._thread.is_alive() and all(t.is_alive() for t in engine.jobs._threads)
    finally:
        for s in senders:
            s.close()
        sink.close()


# ---------------------------------------------------------------- real processes


def _start_serving(render_dir: Path, config: Path, timeout: float) -> tuple[subprocess.Popen, int]:
    """``jukebox-bridge serve`` on a free port; its port once it says it listens, within ``timeout`` seconds."""
    proc = subprocess.Popen([sys.executable, "-m", "jukebox_bridge.cli", "serve", "--model", "debug", "--port", "0",
                             "--render-dir", str(render_dir), "--no-midi", "--web-port", "0", "--config", str(config)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    ports: queue.Queue[int | None] = queue.Queue()
    lines: list[str] = []

    def read() -> None:  # reads stderr to the end, so the pipe never fills
        for line in proc.stderr:
            lines.append(line)
            match = re.search(r"udp://127\.0\.0\.1:(\d+)", line)
            if match:
                ports.put(int(match.group(1)))
        ports.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        port = ports.get(timeout=timeout)
    except queue.Empty:
        port = None
    if port is None:
        proc.kill()
        raise AssertionError(f"the engine did not start within {timeout:.0f} s:\n{''.join(lines[-20:])}")
    return proc, port


@pytest.mark.slow
@pytest.mark.timeout(900)  # the waits below scale with the machine's load and fail first
def test_kill_9_mid_job_then_restart_finishes_the_job_exactly_once(tmp_path, pace):
    config = tmp_path / "config.toml"
    config.write_text("")
    renders = tmp_path / "renders"
    started = time.monotonic()
    proc, port = _start_serving(renders, config, pace(60))
    startup = time.monotonic() - started  # the restart below takes about as long
    client = Client(port, scale=pace.factor)
    try:
        client.send("generate", "crash", {"seconds": 0.4, **DRAFT})
        job = client.wait("accepted", "crash", timeout=10)[1]
        client.wait("progress", job, pred=lambda p: p[2].startswith("sampling"))
        work = renders / ".jukebox" / "work" / job
        deadline = time.monotonic() + pace(30)
        while not list(work.glob("*.jbcl")) and time.monotonic() < deadline:  # the first window's codes saved
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(pace(10))
        assert list(work.glob("*.jbcl")) and not list(renders.glob("*.wav")) and not client.all("finished", job)
        proc, port = _start_serving(renders, config, max(pace(60), 3 * startup))
        assert client.wait("finished", job, timeout=60)[1:] == ["done", 1]  # events reach the original client
        client.engine = ("127.0.0.1", port)
        client.send("status", "after")
        jobs = json.loads(client.wait("status", "after")[1])["jobs"]
        assert [(j["job_id"], j["state"], j["takes"]) for j in jobs] == [(job, "done", 1)]
        wavs = list(renders.glob(f"{job[:8]}*.wav"))
        assert len(wavs) == 1 and sf.info(wavs[0]).frames == 0.4 * 44100
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(pace(15)) == 0
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()


def _netns_available() -> bool:
    """A private network namespace needs root (CI and ./jb test run as root) and a kernel that allows it."""
    return shutil.which("unshare") is not None and \
        subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def _free_udp_port() -> int:
    """A port free on every interface (oscdump binds them all)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


# argv: render dir, oscdump's port, "netns" or "loopback", timeout (s). Prints oscdump's lines as JSON.
LIBLO_SCENARIO = r"""
import fcntl, json, queue, socket, struct, subprocess, sys, threading, time
from pathlib import Path
render_dir, dump_port, mode, timeout = Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
if mode == "netns":  # bring up lo in this private namespace
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
from bridge.server import ServeConfig, start_engine
eng = start_engine(ServeConfig(model="debug", port=0, render_dir=render_dir, midi=False, web_port=0))
dump = subprocess.Popen(["oscdump", "-L", dump_port], stdout=subprocess.PIPE, text=True)
lines, seen, deadline = queue.Queue(), [], time.monotonic() + timeout
threading.Thread(target=lambda: [lines.put(line.strip()) for line in dump.stdout], daemon=True).start()
send = lambda *a: subprocess.run(["oscsend", "127.0.0.1", str(eng.address[1]), *a], check=True)

def until(word, retry=None):
    while time.monotonic() < deadline:
        if retry:
            retry()
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if word in line:
            return True
    return False

# oscdump is listening once it prints the pong of a ping (resent until then: no fixed sleep)
ok = until("/jukebox/pong", retry=lambda: send("/jukebox/ping", "is", dump_port, "liblo-ping"))
if ok:
    send("/jukebox/generate", "iss", dump_port, "liblo-gen", json.dumps({"seconds": 0.03, "quality": "draft"}))
    until("/jukebox/finished")
dump.kill()
eng.stop()
print(json.dumps(seen))
"""


@pytest.mark.parametrize("network", ["loopback"] + (["netns"] if _netns_available() else []))
def test_liblo_oscsend_and_oscdump_as_an_independent_client(tmp_path, pace, network):
    """liblo's command-line tools against the engine: in a private network namespace where that is allowed, and
    on the host's loopback (a free port for oscdump, which listens on every interface) everywhere."""
    if not (shutil.which("oscsend") and shutil.which("oscdump")):
        pytest.fail("oscsend/oscdump missing: run ./jb test, which installs liblo-tools")
    port = "9131" if network == "netns" else str(_free_udp_port())
    cmd = [sys.executable, "-c", LIBLO_SCENARIO, str(tmp_path), port, network, str(pace(60))]
    out = subprocess.run((["unshare", "-n"] if network == "netns" else []) + cmd, cwd=ROOT, capture_output=True,
                         text=True, timeout=pace(100), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = json.loads(out.stdout.strip().splitlines()[-1])
    text = "\n".join(lines)
    assert re.search(r'/jukebox/pong ss "liblo-ping" "0\.1\.0"', text), text
    job = re.search(r'/jukebox/accepted ss "liblo-gen" "([0-9a-f]{32})"', text).group(1)
    assert re.search(rf'/jukebox/progress sfsf "{job}"', text)
    done = re.search(rf'/jukebox/done sisff "{job}" 1 "([^"]+)"', text)
    assert done and sf.info(done.group(1)).frames == round(0.03 * 44100)
    assert re.search(rf'/jukebox/finished ssi "{job}" "done" 1', text)
