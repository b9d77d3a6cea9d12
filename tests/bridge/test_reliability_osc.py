"""The engine over real UDP when things go wrong: a full disk, a second engine on the same folder, a job that keeps
killing the engine, hostile packets before authentication, and file work kept off the receive thread."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.osc import OscServer
from bridge.protocol import reply
from bridge.server import ServeConfig, start_engine
from engine.weights.bundle import load_models

from .test_osc_e2e import DRAFT, ROOT, Client, build

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def models():
    return load_models("debug")


# ---------------------------------------------------------------- no amplification before authentication


class LogBytes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.buffer = io.StringIO()

    def emit(self, record: logging.LogRecord) -> None:
        self.buffer.write(self.format(record) + "\n")
        if record.exc_info:
            self.buffer.write(logging.Formatter().formatException(record.exc_info) + "\n")

    @property
    def size(self) -> int:
        return len(self.buffer.getvalue())


@pytest.fixture
def log_bytes():
    handler, root = LogBytes(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def _bundle_with_unknown_element(size: int) -> bytes:
    """A valid bundle whose one element is neither a message nor a bundle: python-osc logs it whole."""
    element = b"X" * size
    return b"#bundle\0" + b"\0" * 8 + len(element).to_bytes(4, "big") + element


def _serve(token: str | None = None) -> tuple[OscServer, list]:
    handled: list = []
    server = OscServer("127.0.0.1", 0, token)
    server.start(lambda request, host: handled.append((request, threading.current_thread().name)) or [
        reply("pong", request.request_id, "test")])
    return server, handled


def _sink() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    return s


def _drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(70000))
        except socket.timeout:
            return out


def test_hostile_bundles_do_not_write_the_packet_into_the_log(log_bytes):
    server, _ = _serve()
    sender = _sink()
    try:
        packet = _bundle_with_unknown_element(60000)
        for _ in range(100):  # 6 MB sent
            sender.sendto(packet, server.address)
            time.sleep(0.002)
        time.sleep(0.5)
    finally:
        sender.close()
        server.stop()
    assert log_bytes.size < 5000, log_bytes.buffer.getvalue()[:500]


def test_network_log_lines_are_capped_and_rate_limited(log_bytes):
    server, _ = _serve()
    try:
        for _ in range(200):  # as many huge lines as a flood would make
            server.netlog(logging.WARNING, "bad packet %s", "Z" * 100000)
    finally:
        server.stop()
    lines = [ln for ln in log_bytes.buffer.getvalue().splitlines() if "bad packet" in ln]
    assert 1 <= len(lines) <= 20 and max(map(len, lines)) < 500


def test_without_the_token_a_source_gets_at_most_one_small_reply_a_second(log_bytes):
    server, handled = _serve(token="s3cret-token")
    sink, sender = _sink(), _sink()
    try:
        port = sink.getsockname()[1]
        packets = [build("/jukebox/ping", [port, f"id{i}", "wrong-token"]) for i in range(50)]
        packets += [build("/jukebox/ping", [port, "x" * 100]), build("/jukebox/ping", [port, 1.5]),
                    build("/jukebox/nope", [port, "junk"])[:-3]]
        for data in packets:
            sender.sendto(data, server.address)
        bundle = OscBundleBuilder(IMMEDIATELY)
        for i in range(10):
            msg = OscMessageBuilder("/jukebox/status")
            for arg in (port, f"b{i}", "{}", "guess"):
                msg.add_arg(arg)
            bundle.add_content(msg.build())
        time.sleep(1.1)  # a new second: the bundle may get one reply, not ten
        sender.sendto(bundle.build().dgram, server.address)
        replies = _drain(sink)
    finally:
        sink.close(), sender.close(), server.stop()
    assert handled == []
    assert 1 <= len(replies) <= 2 and all(len(r) <= 100 for r in replies), replies  # small: no amplification
    assert all(b"unauthorized" in r for r in replies)


def test_with_the_token_errors_and_replies_are_as_usual(log_bytes):
    server, handled = _serve(token="s3cret-token")
    sink, sender = _sink(), _sink()
    try:
        port = sink.getsockname()[1]
        for i in range(5):
            sender.sendto(build("/jukebox/ping", [port, f"ok{i}", "s3cret-token"]), server.address)
        sender.sendto(build("/jukebox/nope", [port, "bad", "s3cret-token"]), server.address)
        sender.sendto(build("/jukebox/status", [port, "bad2", "[1]", "s3cret-token"]), server.address)
        replies = _drain(sink)
    finally:
        sink.close(), sender.close(), server.stop()
    assert len(handled) == 5 and sum(b"/jukebox/pong" in r for r in replies) == 5
    assert any(b"unknown_verb" in r for r in replies) and any(b"bad_request" in r for r in replies)


def test_requests_are_handled_off_the_receive_thread_and_in_order(log_bytes):
    server, handled = _serve()
    sink, sender = _sink(), _sink()
    try:
        port = sink.getsockname()[1]
        for i in range(20):
            sender.sendto(build("/jukebox/ping", [port, f"p{i}"]), server.address)
        replies = _drain(sink)
    finally:
        sink.close(), sender.close(), server.stop()
    assert {name for _, name in handled} == {"osc-handler"}
    assert [r.request_id for r, _ in handled] == [f"p{i}" for i in range(20)] and len(replies) == 20


def test_audition_reads_its_file_on_the_handler_thread_not_the_receive_thread(models, tmp_path, monkeypatch):
    import engine.io.audition as audition

    threads: list[str] = []

    def play_file(path, device=None, blocking=True):
        threads.append(threading.current_thread().name)
        raise audition.AudioDeviceError("no output device here")

    monkeypatch.setattr(audition, "play_file", play_file)
    eng = start_engine(ServeConfig(model="debug", port=0, render_dir=tmp_path, midi=False, web_port=0), models=models)
    client = Client(eng.address[1])
    try:
        client.send("generate", "g", {"seconds": 0.03, **DRAFT})
        job = client.wait("accepted", "g")[1]
        assert client.wait("finished", job, timeout=60)[1] == "done"
        client.send("audition", "a", {"job_id": job})
        assert client.wait("error", "a")[1] == "unavailable"
    finally:
        client.close(), eng.stop()
    assert threads and "osc-receive" not in threads


# ---------------------------------------------------------------- a full disk, seen from the DAW


def test_a_full_disk_reaches_the_daw_as_disk_full_and_a_full_journal_is_not_internal(models, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2048k", "tmpfs", str(disk)]).returncode:
        pytest.fail("mounting a tmpfs needs root (the suite runs as root)")
    eng = start_engine(ServeConfig(model="debug", port=0, render_dir=disk, midi=False, web_port=0), models=models)
    client = Client(eng.address[1])
    filler = disk / "filler.bin"
    try:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        os.close(fd)
        client.send("generate", "full", {"seconds": 2.0, **DRAFT})  # the journal is full too
        error = client.wait("error", "full", timeout=20)
        assert error[1] == "render_failed" and error[2].startswith(f"not accepted: disk full: {disk}"), error
        os.truncate(filler, filler.stat().st_size - 300 * 1024)  # room for the journal, not for the take
        client.send("generate", "take", {"seconds": 2.0, "sample_rate": 48000, **DRAFT})
        job = client.wait("accepted", "take", timeout=20)[1]
        assert client.wait("finished", job, timeout=60)[1:] == ["failed", 0]
        error = client.wait("error", job)
        assert error[1] == "render_failed" and error[2].startswith(f"disk full: {disk}"), error
        assert "Free some space" in error[2] and not list(disk.glob("*.wav"))
    finally:
        client.close(), eng.stop()
        subprocess.run(["umount", "-l", str(disk)])


# ---------------------------------------------------------------- real engine processes


def _start(render_dir: Path, config: Path, expect_failure: bool = False) -> tuple[subprocess.Popen, int | str]:
    proc = subprocess.Popen([sys.executable, "-m", "jukebox_bridge.cli", "serve", "--model", "debug", "--port", "0",
                             "--render-dir", str(render_dir), "--no-midi", "--web-port", "0", "--config", str(config)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        match = re.search(r"udp://127\.0\.0\.1:(\d+)", line)
        if match and not expect_failure:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, int(match.group(1))
    proc.wait(30)
    if expect_failure:
        return proc, "".join(lines)
    raise AssertionError(f"the engine did not start: {''.join(lines)[-2000:]}")


@pytest.mark.slow
def test_one_engine_per_render_folder_and_the_lock_goes_with_a_killed_engine(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("")
    renders = tmp_path / "renders"
    first, port = _start(renders, config)
    try:
        second, output = _start(renders, config, expect_failure=True)
        assert second.returncode == 2
        assert f"another engine (pid {first.pid}, OSC port {port} on 127.0.0.1) already serves the render folder " \
               f"{renders}" in output, output
        assert "--render-dir" in output
        first.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock
        first.wait(10)
        third, _ = _start(renders, config)
        third.send_signal(signal.SIGTERM)
        assert third.wait(15) == 0
        fourth, _ = _start(renders, config)  # and a clean exit releases it too
        fourth.send_signal(signal.SIGTERM)
        assert fourth.wait(15) == 0
    finally:
        if first.poll() is None:
            first.kill()


@pytest.mark.slow
def test_a_job_that_the_engine_dies_in_three_times_ends_failed_and_is_not_resumed(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("")
    renders = tmp_path / "renders"
    proc, port = _start(renders, config)
    client = Client(port)
    try:
        client.send("generate", "doomed", {"seconds": 8.0, **DRAFT})
        job = client.wait("accepted", "doomed", timeout=20)[1]
        for _ in range(3):
            client.wait("progress", job, timeout=60, pred=lambda p: p[2].startswith("sampling"))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            with client.cond:
                client.messages.clear()
            proc, port = _start(renders, config)
        assert client.wait("finished", job, timeout=30)[1:] == ["failed", 0]
        assert client.wait("error", job)[2].startswith("the engine stopped 3 times while rendering this job")
        client.engine = ("127.0.0.1", port)
        client.send("status", "st", {"job_id": job})
        assert json.loads(client.wait("status", "st")[1])["state"] == "failed"
        assert not list(renders.glob("*.wav"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------- sample-accurate positions


def test_protocol_2_clients_get_exact_frames_and_protocol_1_clients_what_they_always_got(models, tmp_path, monkeypatch):
    """A take placed at 300 s plus two frames at 48 kHz: float32 seconds cannot say which frame, the frames can."""
    from engine.io.takes import RenderedTake

    position = 300.0 + 2 / 48000  # 14400002 frames

    def renderer(models, req, progress, cancel, workdir, cache=None):
        n = 4801  # 0.1 s and a frame
        return [RenderedTake(1, np.zeros((n, req.channels), np.float32), req.position, 1, codes={})]

    import numpy as np

    eng = start_engine(ServeConfig(model="debug", port=0, render_dir=tmp_path, midi=False, web_port=0), models=models,
                       renderer=renderer)
    old, new = Client(eng.address[1]), Client(eng.address[1])
    try:
        new.send("hello", "h2", {"protocol": 2})
        assert new.wait("hello", "h2")[2] == 2
        old.send("hello", "h1")
        assert old.wait("hello", "h1")[2] == 1
        old.send("info", "i")
        assert json.loads(old.wait("info", "i")[1])["protocols"] == [1, 2]
        jobs = {}
        for name, client in (("old", old), ("new", new)):
            client.send("generate", name, {"seconds": 0.1, "position": position, "sample_rate": 48000, **DRAFT})
            jobs[name] = client.wait("accepted", name)[1]
            assert client.wait("finished", jobs[name], timeout=30)[1] == "done"
        done_old, done_new = old.wait("done", jobs["old"]), new.wait("done", jobs["new"])
        assert len(done_old) == 5 and len(done_new) == 7
        assert done_new[5:] == [14400002, 4801]
        assert done_old[3] == np.float32(position) and round(done_old[3] * 48000) != 14400002  # what float32 loses
        new.send("status", "st", {"job_id": jobs["new"]})
        take = json.loads(new.wait("status", "st")[1])["takes"][0]
        assert (take["position_frames"], take["length_frames"], take["sample_rate"]) == (14400002, 4801, 48000)
    finally:
        old.close(), new.close(), eng.stop()


# ---------------------------------------------------------------- a truncated source, allowed explicitly


def test_a_truncated_source_is_refused_unless_allowed_then_the_reply_and_sidecar_warn(models, tmp_path):
    import numpy as np
    import soundfile as sf

    cut = tmp_path / "cut.wav"
    sf.write(cut, np.random.default_rng(0).uniform(-0.3, 0.3, (48000, 1)).astype(np.float32), 48000)
    os.truncate(cut, cut.stat().st_size // 2)  # the header still promises 1 s; 0.5 s is there
    renders = tmp_path / "renders"
    eng = start_engine(ServeConfig(model="debug", port=0, render_dir=renders, midi=False, web_port=0), models=models)
    client = Client(eng.address[1])
    region = {"source": str(cut), "start": 0.0, "length": 0.3, "seconds": 0.05, **DRAFT}
    try:
        client.send("continue", "refused", region)
        err = client.wait("error", "refused")
        assert err[1] == "not_audio" and "is truncated" in err[2] and "allow_truncated" in err[2]
        assert not list(renders.glob("*.wav"))
        client.send("continue", "allowed", {**region, "allow_truncated": True})
        job = client.wait("accepted", "allowed")[1]
        warning = client.wait("warning", job)
        assert "is truncated: its header promises 48000 frames" in warning[1]
        assert client.wait("finished", job, timeout=60)[1] == "done"
        done = client.all("done", job)
        side = json.loads(Path(done[0][2]).with_suffix(".json").read_text())
        assert side["warnings"] == [warning[1]] and side["source"]["path"] == str(cut)
    finally:
        client.close(), eng.stop()
