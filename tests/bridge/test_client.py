"""bridge/client.py against a scripted fake engine on loopback UDP (real sockets, real OSC packets)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge import client
from bridge.client import Status, StatusFile, Timeouts, run_request
from jukebox_bridge.cli import main as cli_main

FAST = Timeouts(connect=0.6, reply=1.0, idle=1.0, probe=0.3, resend=0.1, error_grace=0.3)
Handler = Callable[["FakeEngine", str, list[Any]], None]


class FakeEngine:
    """A UDP socket that records requests and answers them with a scripted handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[tuple[str, list[Any]]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            msg = OscMessage(data)
            self.received.append((msg.address, list(msg.params)))
            self.handler(self, msg.address, list(msg.params))

    def send(self, port: int, address: str, *args: Any) -> None:
        builder = OscMessageBuilder(address=address)
        for a in args:
            builder.add_arg(a)
        self.sock.sendto(builder.build().dgram, ("127.0.0.1", port))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def requests(self, address: str) -> list[list[Any]]:
        return [args for a, args in self.received if a == address]


@pytest.fixture
def engine_with():
    engines: list[FakeEngine] = []

    def make(handler: Handler) -> FakeEngine:
        engines.append(FakeEngine(handler))
        return engines[-1]

    yield make
    for e in engines:
        e.close()


@pytest.fixture
def snapshots(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every status the client writes, in order (the file itself is checked separately)."""
    seen: list[dict[str, Any]] = []
    original = StatusFile.write

    def write(self: StatusFile, status: Status) -> None:
        seen.append(status.to_json())
        original(self, status)

    monkeypatch.setattr(StatusFile, "write", write)
    return seen


def pong(e: FakeEngine, address: str, args: list[Any]) -> bool:
    if address == "/jukebox/ping":
        e.send(args[0], "/jukebox/pong", args[1], "0.1.0")
        return True
    return False


def happy_job(e: FakeEngine, address: str, args: list[Any]) -> None:
    if pong(e, address, args):
        return
    if address == "/jukebox/continue":
        port, rid = args[0], args[1]
        e.send(port, "/jukebox/accepted", rid, "job1")
        e.send(port, "/jukebox/warning", "other-job", "not ours")
        e.send(port, "/jukebox/warning", "job1", "/audio/riff.wav is truncated")
        e.send(port, "/jukebox/progress", "other-job", 0.9, "decoding", 1.0)  # someone else's job
        e.send(port, "/jukebox/progress", "job1", 0.5, "sampling level 2", 12.0)
        e.send(port, "/jukebox/done", "job1", 2, "/renders/job1-take2.wav", 16.5, 9.5)
        e.send(port, "/jukebox/done", "job1", 1, "/renders/job1-take1.wav", 16.5, 9.0)
        e.send(port, "/jukebox/finished", "job1", "done", 2)


def test_render_request_is_followed_to_done(engine_with, tmp_path: Path, snapshots) -> None:
    engine = engine_with(happy_job)
    status_path = tmp_path / "job.status.json"
    params = {"source": "/audio/riff.wav", "start": 3.25, "length": 6.0, "position": 12.5, "takes": 2}
    status = run_request("continue", params, port=engine.port, status_path=status_path, timeouts=FAST)

    assert status.state == "done" and status.exit_code == 0
    written = json.loads(status_path.read_text())
    assert written == status.to_json()
    assert written["job_id"] == "job1"
    assert written["takes"] == [
        {"take": 1, "path": "/renders/job1-take1.wav", "position": 16.5, "length": 9.0},
        {"take": 2, "path": "/renders/job1-take2.wav", "position": 16.5, "length": 9.5},
    ]
    assert written["error"] is None and written["fraction"] == 1.0
    assert written["warnings"] == ["/audio/riff.wav is truncated"]  # the job's caveat, not another job's
    assert [s["state"] for s in snapshots][0] == "accepted"
    assert snapshots[-1]["state"] == "done"
    assert "running" in [s["state"] for s in snapshots]
    assert all(s["job_id"] == "job1" for s in snapshots)
    assert list(tmp_path.iterdir()) == [status_path]  # no temp files left behind

    (request,) = engine.requests("/jukebox/continue")
    reply_port, rid, params_json = request
    assert isinstance(reply_port, int) and reply_port > 0
    assert rid == status.request_id
    assert json.loads(params_json) == params
    assert engine.requests("/jukebox/ping")  # the engine was pinged before the request was sent


def test_progress_fields_are_reported(engine_with, tmp_path: Path, snapshots) -> None:
    def slow_job(e: FakeEngine, address: str, args: list[Any]) -> None:
        if pong(e, address, args):
            return
        if address == "/jukebox/prime":
            e.send(args[0], "/jukebox/accepted", args[1], "j2")
            e.send(args[0], "/jukebox/progress", "j2", 0.25, "upsampling level 1", -1.0)
            e.send(args[0], "/jukebox/done", "j2", 1, "/r/a.wav", 40.0, 5.0)
            e.send(args[0], "/jukebox/finished", "j2", "done", 1)

    engine = engine_with(slow_job)
    run_request("prime", {"source": "/a.wav"}, port=engine.port, status_path=tmp_path / "s.json", timeouts=FAST)
    running = [s for s in snapshots if s["state"] == "running" and s["stage"] == "upsampling level 1"]
    assert running and running[0]["fraction"] == 0.25 and running[0]["eta"] is None


def test_engine_not_running_is_engine_unreachable(tmp_path: Path) -> None:
    idle = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    idle.bind(("127.0.0.1", 0))  # a port that never answers
    try:
        status = run_request("continue", {"source": "/a.wav"}, port=idle.getsockname()[1],
                             status_path=tmp_path / "s.json", timeouts=FAST)
    finally:
        idle.close()
    assert status.state == "failed"
    assert status.error is not None and status.error["code"] == "engine_unreachable"
    assert "No Jukebox engine answered at 127.0.0.1:" in status.error["message"]
    assert json.loads((tmp_path / "s.json").read_text())["error"]["code"] == "engine_unreachable"


def test_request_refused_before_acceptance(engine_with, tmp_path: Path) -> None:
    def refuse(e: FakeEngine, address: str, args: list[Any]) -> None:
        if not pong(e, address, args) and address == "/jukebox/rerender":
            e.send(args[0], "/jukebox/error", args[1], "unknown_label", "unknown artist 'Nina Simoen'")

    engine = engine_with(refuse)
    status = run_request("rerender", {"source": "/a.wav"}, port=engine.port, status_path=tmp_path / "s.json",
                         timeouts=FAST)
    assert status.state == "failed" and status.job_id is None
    assert status.error == {"code": "unknown_label", "message": "unknown artist 'Nina Simoen'"}


def test_job_failure_carries_the_engine_error(engine_with, tmp_path: Path) -> None:
    def fail_job(e: FakeEngine, address: str, args: list[Any]) -> None:
        if not pong(e, address, args) and address == "/jukebox/continue":
            e.send(args[0], "/jukebox/accepted", args[1], "j3")
            e.send(args[0], "/jukebox/error", "j3", "render_failed", "out of memory")
            e.send(args[0], "/jukebox/finished", "j3", "failed", 0)

    engine = engine_with(fail_job)
    status = run_request("continue", {"source": "/a.wav"}, port=engine.port, status_path=tmp_path / "s.json",
                         timeouts=FAST)
    assert status.state == "failed" and status.exit_code == 1
    assert status.error == {"code": "render_failed", "message": "out of memory"}


def test_job_error_without_finished_ends_after_grace(engine_with, tmp_path: Path) -> None:
    def error_only(e: FakeEngine, address: str, args: list[Any]) -> None:
        if not pong(e, address, args) and address == "/jukebox/continue":
            e.send(args[0], "/jukebox/accepted", args[1], "j4")
            e.send(args[0], "/jukebox/error", "j4", "internal", "boom")

    engine = engine_with(error_only)
    status = run_request("continue", {"source": "/a.wav"}, port=engine.port, status_path=tmp_path / "s.json",
                         timeouts=FAST)
    assert status.error == {"code": "internal", "message": "boom"}


def test_cancelled_job(engine_with, tmp_path: Path) -> None:
    def cancel_job(e: FakeEngine, address: str, args: list[Any]) -> None:
        if not pong(e, address, args) and address == "/jukebox/generate":
            e.send(args[0], "/jukebox/accepted", args[1], "j5")
            e.send(args[0], "/jukebox/finished", "j5", "cancelled", 0)

    engine = engine_with(cancel_job)
    status = run_request("generate", {}, port=engine.port, status_path=tmp_path / "s.json", timeouts=FAST)
    assert status.state == "cancelled" and status.exit_code == 3
    assert status.error is not None and status.error["code"] == "cancelled"


def test_lost_finished_packet_is_recovered_from_status(engine_with, tmp_path: Path) -> None:
    def lossy(e: FakeEngine, address: str, args: list[Any]) -> None:
        if pong(e, address, args):
            return
        if address == "/jukebox/continue":
            e.send(args[0], "/jukebox/accepted", args[1], "j6")
        elif address == "/jukebox/status":
            assert json.loads(args[2]) == {"job_id": "j6"}
            summary = {"job_id": "j6", "state": "done", "takes": [
                {"take": 1, "path": "/r/j6-take1.wav", "position": 4.0, "length": 2.0}]}
            e.send(args[0], "/jukebox/status", args[1], json.dumps(summary))

    engine = engine_with(lossy)
    status = run_request("continue", {"source": "/a.wav"}, port=engine.port, status_path=tmp_path / "s.json",
                         timeouts=FAST)
    assert status.state == "done"
    assert [t.path for t in status.takes] == ["/r/j6-take1.wav"]


def test_engine_that_goes_silent_is_engine_lost(engine_with, tmp_path: Path) -> None:
    def vanish(e: FakeEngine, address: str, args: list[Any]) -> None:
        if not pong(e, address, args) and address == "/jukebox/continue":
            e.send(args[0], "/jukebox/accepted", args[1], "j7")

    engine = engine_with(vanish)
    status = run_request("continue", {"source": "/a.wav"}, port=engine.port, status_path=tmp_path / "s.json",
                         timeouts=FAST)
    assert status.state == "failed" and status.error is not None
    assert status.error["code"] == "engine_lost"
    assert engine.requests("/jukebox/status")  # it asked before giving up


def test_restarted_engine_that_forgot_the_job(engine_with, tmp_path: Path) -> None:
    def forget(e: FakeEngine, address: str, args: list[Any]) -> None:
        if pong(e, address, args):
            return
        if address == "/jukebox/continue":
            e.send(args[0], "/jukebox/accepted", args[1], "j8")
        elif address == "/jukebox/status":
            e.send(args[0], "/jukebox/error", args[1], "unknown_job", "no job j8")

    engine = engine_with(forget)
    status = run_request("continue", {"source": "/a.wav"}, port=engine.port, status_path=tmp_path / "s.json",
                         timeouts=FAST)
    assert status.error is not None and status.error["code"] == "engine_lost"
    assert "no longer knows job j8" in status.error["message"]


def test_cancel_reply(engine_with, tmp_path: Path) -> None:
    def cancel(e: FakeEngine, address: str, args: list[Any]) -> None:
        if address == "/jukebox/cancel":
            assert json.loads(args[2]) == {"all": True}
            e.send(args[0], "/jukebox/cancelled", args[1], 2)

    engine = engine_with(cancel)
    status = run_request("cancel", {"all": True}, port=engine.port, status_path=tmp_path / "s.json", timeouts=FAST)
    assert status.state == "done"
    assert status.reply == {"address": "/jukebox/cancelled", "args": [2]}
    assert not engine.requests("/jukebox/ping")  # simple verbs are sent directly


def test_simple_request_parses_json_reply_and_errors(engine_with, tmp_path: Path) -> None:
    def answer(e: FakeEngine, address: str, args: list[Any]) -> None:
        if address == "/jukebox/info":
            e.send(args[0], "/jukebox/info", args[1], json.dumps({"protocol": 1, "model": "debug"}))
        elif address == "/jukebox/cancel":
            e.send(args[0], "/jukebox/error", args[1], "unknown_job", "no job zz")

    engine = engine_with(answer)
    info = run_request("info", {}, port=engine.port, timeouts=FAST)
    assert info.reply is not None and info.reply["data"] == {"protocol": 1, "model": "debug"}
    cancel = run_request("cancel", {"job_id": "zz"}, port=engine.port, timeouts=FAST)
    assert cancel.state == "failed" and cancel.error == {"code": "unknown_job", "message": "no job zz"}


def test_simple_request_is_resent_when_a_packet_is_lost(engine_with) -> None:
    seen: list[str] = []

    def drop_first(e: FakeEngine, address: str, args: list[Any]) -> None:
        seen.append(args[1])
        if len(seen) > 1:
            e.send(args[0], "/jukebox/pong", args[1], "0.1.0")

    engine = engine_with(drop_first)
    status = run_request("ping", {}, port=engine.port, timeouts=FAST)
    assert status.state == "done" and len(set(seen)) == 1  # the same request id, sent again


def test_token_is_the_last_argument(engine_with) -> None:
    engine = engine_with(lambda e, a, args: e.send(args[0], "/jukebox/pong", args[1], "0.1.0"))
    run_request("ping", {}, port=engine.port, token="s3cret", timeouts=FAST)
    (args,) = engine.requests("/jukebox/ping")
    assert args[2] == "{}" and args[3] == "s3cret"


def test_cli_request_command(engine_with, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = engine_with(happy_job)
    request_file = tmp_path / "req.json"
    request_file.write_text(json.dumps({"source": "/audio/riff.wav"}))
    status_file = tmp_path / "s.json"
    code = cli_main(["request", "continue", "--port", str(engine.port), "--json", f"@{request_file}",
                     "--status-file", str(status_file), "--connect-timeout", "1"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["state"] == "done" and printed == json.loads(status_file.read_text())
    (request,) = engine.requests("/jukebox/continue")
    assert json.loads(request[2]) == {"source": "/audio/riff.wav"}


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "@/nonexistent/file.json"])
def test_cli_rejects_bad_parameters_with_a_status(tmp_path: Path, text: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    status_file = tmp_path / "s.json"
    code = cli_main(["request", "continue", "--json", text, "--status-file", str(status_file)])
    assert code == client.EXIT_USAGE
    written = json.loads(status_file.read_text())
    assert written["state"] == "failed" and written["error"]["code"] == "bad_request"
    assert json.loads(capsys.readouterr().out) == written


def test_status_file_is_ascii_json_even_for_unicode_paths(tmp_path: Path) -> None:
    status = Status(verb="continue", request_id="r", state="done", job_id="j")
    status.takes.append(client.Take(1, "/renders/café 🎵.wav", 1.0, 2.0))
    StatusFile(tmp_path / "s.json").write(status)
    raw = (tmp_path / "s.json").read_bytes()
    assert raw.isascii()
    assert json.loads(raw)["takes"][0]["path"] == "/renders/café 🎵.wav"
