"""The REAPER scripts' busted specs (tests/reaper/spec), run under a real Lua 5.4 interpreter.

Debian's ``/usr/bin/busted`` starts with ``#!/usr/bin/env lua``, i.e. whichever interpreter the
``lua-interpreter`` alternative points at. To be sure of the version, the script is run *by* the
interpreter (``lua5.4 /usr/bin/busted ...``); Debian's lua-busted installs its modules for 5.1-5.4,
and every spec file checks ``_VERSION``. The specs also run under Lua 5.3, the version REAPER 6
embeds. A missing interpreter or busted is a failure, not a skip. Install them with
``apt-get install lua5.4 lua5.3 lua-busted`` (``./jb test`` does this when run as root).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "tests" / "reaper" / "spec"
LUA = "lua5.4"
LUA_REAPER6 = "lua5.3"
INSTALL_HINT = ("install them with: apt-get install lua5.4 lua5.3 lua-busted "
                "(./jb test installs them when run as root)")


def busted_command(lua: str = LUA) -> list[str]:
    """``[lua, busted]``, or a test failure naming what is missing."""
    interpreter, busted = shutil.which(lua), shutil.which("busted")
    missing = [name for name, path in ((lua, interpreter), ("busted", busted)) if path is None]
    if missing:
        pytest.fail(f"the REAPER script tests need {' and '.join(missing)} on PATH; {INSTALL_HINT}", pytrace=False)
    return [str(interpreter), str(busted)]


def run_busted(paths: list[Path], env: dict[str, str] | None = None, timeout: float = 300,
               lua: str = LUA) -> subprocess.CompletedProcess[str]:
    cmd = busted_command(lua) + ["--output=TAP", *map(str, paths)]
    version = "Lua " + lua.removeprefix("lua")
    full_env = {**os.environ, "JB_REPO": f"{REPO}/", "JB_EXPECT_LUA": version, **(env or {})}
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


def spec_files() -> list[Path]:
    return sorted(SPECS.glob("*_spec.lua"))


def test_there_are_specs() -> None:
    assert len(spec_files()) >= 5


@pytest.mark.parametrize("spec", spec_files(), ids=lambda p: p.stem)
def test_reaper_spec_under_lua54(spec: Path) -> None:
    """REAPER 7 embeds Lua 5.4."""
    check_spec(spec, LUA)


@pytest.mark.parametrize("spec", spec_files(), ids=lambda p: p.stem)
def test_reaper_spec_under_lua53(spec: Path) -> None:
    """REAPER 6 embeds Lua 5.3: the scripts avoid 5.4-only syntax (<const>, <close>) and library calls."""
    check_spec(spec, LUA_REAPER6)


def check_spec(spec: Path, lua: str) -> None:
    proc = run_busted([spec], lua=lua)
    assert proc.returncode == 0, f"busted failed for {spec.name}:\n{proc.stdout}\n{proc.stderr}"
    assert "not ok" not in proc.stdout
    assert "\nok " in "\n" + proc.stdout, proc.stdout  # at least one test ran


def test_a_missing_interpreter_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == LUA else "/usr/bin/" + name)
    with pytest.raises(pytest.fail.Exception, match="need lua5.4 on PATH; install them with: apt-get install lua5.4"):
        busted_command()


# End to end: a real engine (debug model), the real client, the real action files -------------------

E2E_SPEC = REPO / "tests" / "reaper" / "e2e" / "engine_e2e_spec.lua"
ENGINE_START_TIMEOUT = 180.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_engine(proc: subprocess.Popen[str], port: int, log: Path) -> None:
    from bridge.client import Timeouts, run_request

    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the engine exited with code {proc.returncode}:\n{log.read_text()}", pytrace=False)
        if run_request("ping", {}, port=port, timeouts=Timeouts(connect=1.0)).state == "done":
            return
    pytest.fail(f"the engine did not answer a ping within {ENGINE_START_TIMEOUT:g} s:\n{log.read_text()}",
                pytrace=False)


@pytest.fixture
def running_engine(tmp_path: Path):
    """``jukebox-bridge serve --model debug`` on a free loopback port; yields (port, render_dir)."""
    port, render_dir, log = free_udp_port(), tmp_path / "renders", tmp_path / "engine.log"
    config = tmp_path / "serve.toml"
    config.write_text("")  # not the user's own config.toml
    cmd = [sys.executable, "-m", "jukebox_bridge.cli", "serve", "--model", "debug", "--port", str(port),
           "--render-dir", str(render_dir), "--no-midi", "--web-port", "0", "--config", str(config)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_for_engine(proc, port, log)
        yield port, render_dir
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.slow
def test_actions_against_a_running_engine(running_engine: tuple[int, Path], tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    port, render_dir = running_engine
    source = tmp_path / "riff source.wav"  # a space in the name, as producers' files have
    t = np.arange(2 * 44100) / 44100
    sf.write(source, np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1), 44100)
    env = {
        "JB_E2E_PORT": str(port), "JB_E2E_SOURCE": str(source), "JB_E2E_DEAD_PORT": str(free_udp_port()),
        "JB_E2E_CLIENT": f"{shlex.quote(sys.executable)} -m jukebox_bridge.cli", "PYTHONPATH": str(REPO),
    }
    proc = run_busted([E2E_SPEC], env=env, timeout=900)
    assert proc.returncode == 0, f"end-to-end spec failed:\n{proc.stdout}\n{proc.stderr}"
    assert "not ok" not in proc.stdout
    assert ("\n" + proc.stdout).count("\nok ") == 4, proc.stdout
    renders = sorted(p.name for p in render_dir.glob("*.wav"))
    assert len(renders) == 2 and all("-continue" in name for name in renders), renders


# The client's side of the REAPER transport: the heartbeat the job runner watches -------------------

def test_the_client_rewrites_the_status_file_as_a_heartbeat_while_the_engine_is_quiet(tmp_path: Path) -> None:
    """Between engine messages the status file still changes every ``Timeouts.heartbeat`` seconds, so the
    job runner can tell a quiet engine (file changing) from a dead client (file frozen)."""
    import json as _json
    import threading

    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    from bridge.client import StatusFile, Timeouts, run_request

    engine = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    engine.bind(("127.0.0.1", 0))
    engine.settimeout(0.05)
    stop = threading.Event()

    def reply(port: int, address: str, *args) -> None:
        b = OscMessageBuilder(address=address)
        for a in args:
            b.add_arg(a)
        engine.sendto(b.build().dgram, ("127.0.0.1", port))

    def serve() -> None:  # pong, accept the job, then say nothing more
        while not stop.is_set():
            try:
                data, _ = engine.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            msg = OscMessage(data)
            port, rid = msg.params[0], msg.params[1]
            if msg.address == "/jukebox/ping":
                reply(port, "/jukebox/pong", rid, "0.1.0")
            elif msg.address == "/jukebox/continue":
                reply(port, "/jukebox/accepted", rid, "j1")

    seen: list[dict] = []
    original = StatusFile.write

    def spy(self: StatusFile, status) -> None:
        original(self, status)
        seen.append(_json.loads(self.path.read_text()))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    StatusFile.write = spy
    try:
        status = run_request("continue", {"source": "/a.wav"}, port=engine.getsockname()[1],
                             status_path=tmp_path / "s.json",
                             timeouts=Timeouts(connect=1.0, reply=1.0, idle=1.2, probe=30.0, resend=0.1,
                                               heartbeat=0.1))
    finally:
        StatusFile.write = original
        stop.set()
        thread.join(2)
        engine.close()
    assert status.state == "failed" and status.error["code"] == "engine_lost"
    beats = [s["heartbeat"] for s in seen if s["state"] == "accepted"]
    assert len(beats) >= 5, seen
    assert all(b2 > b1 for b1, b2 in zip(beats, beats[1:]))
    assert seen[-1]["heartbeat"] >= beats[-1]
