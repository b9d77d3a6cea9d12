"""The Max for Live device (max_for_live/): its Node test suite, and an end-to-end run against an engine.

The device's own tests are JavaScript (tests/max_for_live/*.test.js, Node's built-in runner); this
file runs them, so ``./jb test`` covers them. Node >= 20 is required: a missing node fails, never skips.
The end-to-end test starts ``python -m jukebox_bridge.cli serve --model debug`` on a free loopback port and
drives the device's JavaScript against it over real UDP (tests/max_for_live/e2e.test.js).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.request import RenderRequest

ROOT = Path(__file__).resolve().parents[2]
NODE_TESTS = ROOT / "tests" / "max_for_live"
PATCHER = ROOT / "max_for_live" / "src" / "JukeboxBridge.maxpat"
ENGINE_START_TIMEOUT = 180.0  # seconds for the engine to load the debug model and answer a ping


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js >= 20 is needed to test the Max for Live device (apt-get install nodejs, "
                    "or https://nodejs.org); it runs tests/max_for_live with `node --test`.")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1))
    if major < 20:
        pytest.fail(f"Node.js {version} is too old for tests/max_for_live (needs >= 20: node --test with a folder)")
    return node


def _run_node(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([_node(), "--test", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout)


def _counts(tap: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|skipped|cancelled|todo) (\d+)$", tap, re.M)}


_DECLARED = re.compile(r"""^\s*test\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|`([^`]*)`)(\s*,\s*\{[^}]*\bskip\b)?""",
                       re.M)


def _declared_tests(files: list[Path]) -> tuple[dict[str, bool], list[re.Pattern]]:
    """The tests the files declare: {name: declared with a skip option}, and a pattern per test declared in a loop
    (a template-literal name)."""
    names: dict[str, bool] = {}
    loops = []
    for f in files:
        for double, single, template, skip in _DECLARED.findall(f.read_text(encoding="utf-8")):
            if template and "${" in template:
                loops.append(re.compile("^" + re.sub(r"\\\$\\\{[^}]*\\\}", ".+", re.escape(template)) + "$"))
                continue
            name = json.loads(f'"{double}"') if double else (single or template).replace("\\'", "'")
            assert name not in names, f"two tests named {name!r}: the count by name would hide one"
            names[name] = bool(skip)
    return names, loops


def _tap_results(tap: str) -> list[tuple[bool, str, str]]:
    """Top-level TAP results: (ok, name, directive)."""
    out = []
    for ok, name, directive in re.findall(r"^(ok|not ok) \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$", tap, re.M):
        out.append((ok == "ok", name.replace("\\#", "#").replace("\\\\", "\\"), directive))
    return out


def test_device_javascript_patcher_and_build():
    """Every test tests/max_for_live/*.test.js declares ran once and passed, counted by name; the end-to-end
    file's engine tests (declared with a skip option) are the only ones skipped without an engine."""
    files = sorted(NODE_TESTS.glob("*.test.js"))
    r = _run_node([str(NODE_TESTS) + os.sep], {"JB_PYTHON": sys.executable}, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    declared, loops = _declared_tests(files)
    results = _tap_results(r.stdout)
    ran = [name for _, name, _ in results]
    missing = sorted(set(declared) - set(ran))
    assert not missing, f"declared but never run: {missing}"
    looped = [name for name in ran if name not in declared]
    assert all(any(p.match(name) for p in loops) for name in looped), f"run but not declared: {looped}"
    assert all(any(p.match(name) for name in looped) for p in loops), "a loop of tests ran no test"
    assert len(ran) == len(set(ran)) == len(declared) + len(looped), "a test ran twice"
    assert [n for ok, n, _ in results if not ok] == []
    skipped = sorted(n for _, n, directive in results if directive)
    assert skipped == sorted(n for n, skip in declared.items() if skip), skipped
    assert _counts(r.stdout) == {"tests": len(ran), "pass": len(ran) - len(skipped), "fail": 0, "skipped": len(skipped),
                                 "cancelled": 0, "todo": 0}


def _device_session() -> dict:
    r = subprocess.run([_node(), str(NODE_TESTS / "dump_requests.js")], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_request_the_device_sends_passes_the_engines_parser():
    """hello, info, artists, genres, continue/prime/rerender (seconds, bars, labels), cancel."""
    from bridge.protocol import parse_request

    messages = _device_session()["messages"]
    verbs = {m[0] for m in messages}
    assert {"/jukebox/hello", "/jukebox/info", "/jukebox/artists", "/jukebox/genres", "/jukebox/continue",
            "/jukebox/prime", "/jukebox/rerender", "/jukebox/cancel"} <= verbs
    for address, *args in messages:
        request = parse_request(address, args)
        assert request.reply_port == args[0]
    prime = next(m for m in messages if m[0] == "/jukebox/prime")
    fields = json.loads(prime[3])
    # 4 bars of the Set's 4/4 at 120 BPM, sent as seconds (the engine's `bars` assumes 4/4)
    assert fields["seconds"] == 8 and "bars" not in fields
    assert fields["tempo"] == 120 and fields["takes"] == 8 and fields["genre"] == "rock"


def test_the_devices_reply_table_matches_the_protocol():
    """jb_core.REPLY_ARGS reads each reply's arguments in bridge/protocol.py's order and types."""
    from bridge.protocol import PREFIX, REPLIES

    kinds = {"s": {"s"}, "json": {"s"}, "i": {"i"}, "f": {"f"}, "any": {"f|s"}}
    for name, spec in _device_session()["replies"].items():
        protocol = REPLIES.get(PREFIX + name)
        assert protocol is not None, f"the device reads /jukebox/{name}, which the protocol does not send"
        args = protocol.args[: protocol.protocol1]  # the device speaks protocol 1 (jb_core.PROTOCOL)
        assert len(spec) == len(args), name
        for ours, theirs in zip(spec, args):
            assert theirs[1] in kinds[ours.split(":")[1]], f"{name}: {ours} vs {theirs}"


def _params() -> dict[str, dict]:
    boxes = [b["box"] for b in json.loads(PATCHER.read_text())["patcher"]["boxes"]]
    out = {}
    for b in boxes:
        v = b.get("saved_attribute_attributes", {}).get("valueof", {})
        if "parameter_longname" in v:
            out[v["parameter_longname"]] = v
    return out


@pytest.mark.parametrize("name, field", [("Temperature", "temperature"), ("Takes", "takes"),
                                         ("Length Seconds", "seconds"), ("Length Bars", "bars")])
def test_control_ranges_are_accepted_by_the_engine(name, field):
    """Both ends of each live.* range pass the engine's own validator (engine/request.py)."""
    v = _params()[name]
    for value in (v["parameter_mmin"], v["parameter_mmax"], v["parameter_initial"][0]):
        value = int(value) if v["parameter_type"] == 1 else float(value)
        fields = {"source": "/a.wav", field: value}
        if field == "bars":
            fields["tempo"] = 120.0
        RenderRequest.from_fields("continue", fields)


README = ROOT / "max_for_live" / "README.md"
CORE = ROOT / "max_for_live" / "src" / "jb_core.js"


def _readme_ranges() -> dict[str, tuple[float, float]]:
    """Control rows of the README's table: long name -> (min, max) from its "A to B" range column."""
    out = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (m := re.match(r"^(-?[\d.]+) to (-?[\d.]+)", cells[2])):
            out[cells[0]] = (float(m.group(1)), float(m.group(2)))
    return out


def test_readme_ranges_agree_with_the_patch():
    """The README's control table gives each live.* control the range the patch has."""
    params, readme = _params(), _readme_ranges()
    assert {"Temperature", "Takes", "Length Seconds", "Length Bars"} <= set(readme)
    for name, (lo, hi) in readme.items():
        v = params[name]
        assert (float(v["parameter_mmin"]), float(v["parameter_mmax"])) == (lo, hi), name


def test_readme_reply_ports_agree_with_the_patch_and_the_script():
    """The reply-port span in the README is the script's (jb_core.js), starting at the patch's udpreceive port."""
    core = CORE.read_text(encoding="utf-8")
    first = int(re.search(r"var DEFAULT_REPLY_PORT = (\d+);", core).group(1))
    span = int(re.search(r"var REPLY_PORT_SPAN = (\d+);", core).group(1))
    boxes = [b["box"].get("text", "") for b in json.loads(PATCHER.read_text())["patcher"]["boxes"]]
    assert f"udpreceive {first}" in boxes
    text = README.read_text(encoding="utf-8")
    assert f"{first} to {first + span - 1}" in text, "the README names the reply-port range"
    assert re.findall(r"\b9[0-9]{3}\b", text) and all(
        first <= int(p) <= first + span - 1 or int(p) == 9130 for p in re.findall(r"\b9[0-9]{3}\b", text))


def test_quality_menu_matches_the_protocol():
    for quality in _params()["Quality"]["parameter_enum"]:
        RenderRequest.from_fields("continue", {"source": "/a.wav", "quality": quality})


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_pong(port: int, proc: subprocess.Popen, timeout: float) -> None:
    from pythonosc.osc_message_builder import OscMessageBuilder
    from pythonosc.osc_packet import OscPacket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        b = OscMessageBuilder("/jukebox/ping")
        b.add_arg(s.getsockname()[1], "i")
        b.add_arg("wait-1", "s")
        ping = b.build().dgram
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"the engine exited with {proc.returncode}:\n{out[-3000:]}\n{err[-3000:]}")
            s.sendto(ping, ("127.0.0.1", port))
            try:
                data, _ = s.recvfrom(65536)
            except socket.timeout:
                continue
            if any(m.message.address == "/jukebox/pong" for m in OscPacket(data).messages):
                return
    pytest.fail(f"the engine did not answer a ping on port {port} within {timeout:.0f} s")


@pytest.fixture()
def engine(tmp_path):
    port = _free_udp_port()
    render_dir = tmp_path / "renders"
    render_dir.mkdir()
    config = tmp_path / "serve.toml"  # empty: the user's own config.toml (a token, a port) stays out of it
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "JUKEBOX_BRIDGE_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "jukebox_bridge.cli", "serve", "--model", "debug", "--port", str(port),
                             "--render-dir", str(render_dir), "--no-midi", "--web-port", "0", "--config", str(config)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_pong(port, proc, ENGINE_START_TIMEOUT)
        yield port, render_dir
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_device_against_a_running_engine_over_udp(engine, pace):
    """Selected clip -> request -> debug render -> done -> tracks and clips at the right beats."""
    port, render_dir = engine
    r = _run_node([str(NODE_TESTS / "e2e.test.js")],
                  {"JB_ENGINE_PORT": str(port), "JB_RENDER_DIR": str(render_dir),
                   "JB_E2E_STALL_MS": str(int(pace(15) * 1000)), "JB_E2E_TIMEOUT_MS": str(int(pace(240) * 1000))},
                  timeout=pace(600))
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-3000:]
    counts = _counts(r.stdout)
    assert counts.get("pass") == 3 and counts.get("skipped", 0) == 0 and counts.get("fail") == 0, counts
    assert len(list(render_dir.rglob("*.wav"))) >= 2


def test_a_broken_or_silent_reply_port_fails_the_device_test_in_seconds(pace):
    """The end-to-end harness gives up at once when its reply port cannot be bound, and after a few seconds
    without any reply, instead of waiting out the job's 240-s timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_engine:
        held.bind(("127.0.0.1", 0))
        silent_engine.bind(("127.0.0.1", 0))  # receives the device's requests, never answers
        cases = (({"JB_E2E_REPLY_PORT": str(held.getsockname()[1])}, "EADDRINUSE"),
                 ({"JB_E2E_STALL_MS": "3000"}, "no reply from the engine for 3000 ms"))
        for env, expected in cases:
            started = time.monotonic()
            r = _run_node([str(NODE_TESTS / "e2e.test.js")],
                          {"JB_ENGINE_PORT": str(silent_engine.getsockname()[1]), "JB_RENDER_DIR": "", **env},
                          timeout=pace(120))
            took = time.monotonic() - started
            assert r.returncode != 0 and expected in r.stdout, r.stdout[-3000:]
            assert _counts(r.stdout)["fail"] == 2 and took < pace(20), (took, _counts(r.stdout))
