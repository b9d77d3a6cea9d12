"""The web panel's HTTP API and event stream over real HTTP against a real started engine (debug models, the real
render pipeline, OSC and the web panel on free loopback ports): refusals that write nothing, jobs from the page and
from OSC in one job list, server-sent events to done, live parameters both ways, and a journalled web job resumed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.server import ServeConfig, load_config, start_engine
from bridge.web import WEB_OWNER, is_web_owner
from engine.generate.render import render
from engine.request import RenderRequest, RequestError
from engine.weights.bundle import load_models

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "engine" / "data" / "examples" / "pluck_phrase.flac"
TOKEN = "s3cret-token-123"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def models():
    return load_models("debug")


@pytest.fixture(scope="module")
def engine(models, tmp_path_factory):
    cfg = ServeConfig(model="debug", port=0, web_port=0, render_dir=tmp_path_factory.mktemp("renders"), midi=False)
    eng = start_engine(cfg, models=models)
    yield eng
    eng.stop()


@pytest.fixture
def web(engine):
    with httpx.Client(base_url=engine.web_url.rstrip("/"), timeout=30) as c:
        yield c


@pytest.fixture
def upload(web) -> dict:
    r = web.put("/api/uploads", params={"name": "pluck phrase.flac"}, content=EXAMPLE.read_bytes())
    assert r.status_code == 201, r.text
    return r.json()


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def refused(r: httpx.Response, status: int, code: str, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"] == code, body
    for w in words:
        assert w in body["message"], body
    return body


class Events:
    """An EventSource in miniature: reads /api/events on a thread and keeps every (event, data) it saw."""

    def __init__(self, url: str, headers: dict | None = None) -> None:
        self.url, self.headers = url, headers or {}
        self.events: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        self.client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.opened.wait(10), "the event stream did not open"

    def _read(self) -> None:
        try:
            with self.client.stream("GET", self.url + "api/events", headers=self.headers) as r:
                self.status = r.status_code
                self.opened.set()
                kind = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        with self.cond:
                            self.events.append((kind, json.loads(line[6:])))
                            self.cond.notify_all()
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self.opened.set()

    def wait(self, pred, timeout: float = 30.0) -> tuple[str, dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(*ev):
                        return ev
                left = deadline - time.monotonic()
                assert left > 0, f"no matching event within {timeout:.0f} s; got {self.events[-6:]}"
                self.cond.wait(left)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def events(engine):
    ev = Events(engine.web_url)
    yield ev
    ev.close()


# ---------------------------------------------------------------- refusals: clear, coded, nothing written


def test_the_page_and_its_info_come_from_the_engine_tables(web):
    page = web.get("/")
    assert page.status_code == 200 and "Jukebox Bridge" in page.text and "/static/app.js" in page.text
    assert web.get("/static/app.js").status_code == 200
    info = web.get("/api/info").json()
    from engine.params import LIVE_PARAMS

    assert {p["name"]: (p["low"], p["high"], p["integer"]) for p in info["params"]} == {
        n: (p.low, p.high, p.integer) for n, p in LIVE_PARAMS.items()}
    assert info["qualities"] == ["draft", "full"] and "refine" not in info["modes"]
    assert info["defaults"]["seconds"] == RenderRequest.seconds
    assert "polish" in info["chains"] and info["model"]["model"] == "debug"
    labels = web.get("/api/labels/genre", params={"query": "", "limit": 3}).json()
    assert len(labels["names"]) <= 3 and labels["total"] >= len(labels["names"])
    refused(web.get("/api/labels/genre", params={"limit": 999}), 400, "bad_value", "limit")
    refused(web.get("/api/labels/colour"), 404, "bad_value", "artist or genre")


@pytest.mark.parametrize("body,status,code,words", [
    (b"{not json", 400, "bad_request", ("not valid JSON",)),
    (b"[1, 2]", 400, "bad_request", ("JSON object",)),
    (b'{"seconds": 1}', 400, "bad_request", ('"mode"',)),
    (b'{"mode": "remix", "seconds": 1}', 400, "unknown_verb", ("unknown render mode 'remix'",)),
    (b'{"mode": "generate", "colour": "red"}', 400, "unknown_field", ("colour",)),
    (b'{"mode": "generate", "temperature": NaN}', 400, "bad_request", ("NaN",)),
    (b'{"mode": "continue", "upload": "nothing-here.wav"}', 404, "source_not_found", ("nothing-here.wav",)),
    (b'{"mode": "continue", "source": "/etc/passwd"}', 403, "unauthorized", ("not a take",)),
])
def test_bad_requests_are_refused_and_nothing_is_written(engine, web, body, status, code, words):
    before = files(engine.jobs.render_dir)
    n_jobs = len(engine.jobs.jobs(1000))
    refused(web.post("/api/jobs", content=body, headers={"Content-Type": "application/json"}), status, code, *words)
    assert files(engine.jobs.render_dir) == before and len(engine.jobs.jobs(1000)) == n_jobs


def test_render_fields_are_refused_exactly_as_osc_refuses_them(engine, web):
    """The same validator: the page's error is RenderRequest.from_fields's code and message, word for word."""
    fields = {"temperature": 5, "seconds": 1}
    with pytest.raises(RequestError) as exc:
        RenderRequest.from_fields("generate", fields)
    before = files(engine.jobs.render_dir)
    body = refused(web.post("/api/jobs", json={"mode": "generate", **fields}), 400, exc.value.code)
    assert body["message"] == str(exc.value)
    refused(web.post("/api/jobs", json={"mode": "generate", "seconds": 1, "artist": "No Such Artist 123"}), 400,
            "unknown_label", "No Such Artist 123")
    assert files(engine.jobs.render_dir) == before


def test_oversized_and_non_audio_uploads_are_refused_and_leave_nothing(engine, web, monkeypatch):
    uploads = engine.jobs.render_dir / "uploads"
    before = files(engine.jobs.render_dir)
    monkeypatch.setattr(engine.web, "max_upload", 1000)
    refused(web.put("/api/uploads", params={"name": "big.wav"}, content=b"\0" * 5000), 413, "bad_request",
            "too large", "at most 0.0 MB")

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b"\0" * 400
    refused(web.put("/api/uploads", params={"name": "big.wav"}, content=chunks()), 413, "bad_request", "too large")
    monkeypatch.undo()
    refused(web.put("/api/uploads", params={"name": "notes.wav"}, content=b"these are not samples" * 50), 415,
            "not_audio", "'notes.wav' is not audio")
    refused(web.put("/api/uploads", params={"name": "empty.wav"}, content=b""), 415, "not_audio", "empty")
    assert files(engine.jobs.render_dir) == before and not list(uploads.glob(".*"))  # no part file left either


def test_an_upload_is_kept_once_and_listed_with_its_peaks(engine, web, upload):
    assert upload["name"].startswith("pluck-phrase-") and upload["name"].endswith(".flac")
    assert Path(upload["path"]).parent == engine.jobs.render_dir / "uploads"
    again = web.put("/api/uploads", params={"name": "pluck phrase.flac"}, content=EXAMPLE.read_bytes()).json()
    assert again["name"] == upload["name"]  # content-addressed: no second copy
    assert upload["name"] in [u["name"] for u in web.get("/api/uploads").json()["uploads"]]
    peaks = web.get(f"/api/uploads/{upload['name']}/peaks", params={"columns": 200}).json()
    assert len(peaks["min"]) == len(peaks["max"]) == 200 and abs(peaks["seconds"] - 8.0) < 0.01
    assert max(peaks["max"]) > 0.1 and min(peaks["min"]) < -0.1
    refused(web.get("/api/uploads/..%2F..%2Fetc%2Fpasswd/peaks"), 404, "unknown_verb", "no such address")
    refused(web.get("/api/uploads/passwd/peaks"), 404, "source_not_found", "no upload named 'passwd'")
    refused(web.get("/static/..%2F..%2Fserver.py"), 404, "unknown_verb")
    refused(web.patch("/api/jobs"), 405, "bad_request", "PATCH is not accepted")


def test_reading_a_path_that_is_not_a_take_is_refused(engine, web):
    journal = engine.jobs.render_dir / ".jukebox" / "journal.sqlite3"
    stray = engine.jobs.render_dir / "not-a-take.wav"
    stray.write_bytes(EXAMPLE.read_bytes())  # in the render folder, but no job wrote it
    try:
        for path in ("/etc/passwd", str(journal), str(stray), "relative.wav", str(engine.jobs.render_dir / ".." / "x"),
                     "/etc/passwd\0.wav"):
            for view in ("audio", "spectrogram.png", "provenance"):
                refused(web.get(f"/api/take/{view}", params={"path": path}), 403, "unauthorized", "not a take")
    finally:
        stray.unlink()


# ---------------------------------------------------------------- the guard: Host, Origin, token


def test_a_foreign_host_header_is_refused(engine, web):
    """DNS rebinding: a page at evil.example resolving to 127.0.0.1 still sends Host: evil.example."""
    port = engine.web.port
    for host in (f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", f"192.168.1.20:{port}"):
        refused(web.get("/api/info", headers={"Host": host}), 421, "bad_request", "Host header", "DNS rebinding")
    assert web.get("/api/info", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_cross_origin_state_changes_are_refused(engine, web, upload):
    before = files(engine.jobs.render_dir)
    body = {"mode": "generate", "seconds": 1, "quality": "draft"}
    refused(web.post("/api/jobs", json=body, headers={"Origin": "http://evil.example"}), 403, "unauthorized",
            "cross-origin", "evil.example")
    refused(web.put("/api/params/temperature", json={"value": 0.5}, headers={"Origin": "null"}), 403, "unauthorized")
    refused(web.delete("/api/jobs", headers={"Sec-Fetch-Site": "cross-site"}), 403, "unauthorized", "cross-site")
    refused(web.put("/api/uploads", params={"name": "x.flac"}, content=EXAMPLE.read_bytes(),
                    headers={"Origin": "http://localhost:1"}), 403, "unauthorized")
    assert files(engine.jobs.render_dir) == before and engine.jobs.live.get("temperature") != 0.5
    same = web.put("/api/params/takes", json={"value": 1}, headers={"Origin": engine.web_url.rstrip("/")})
    assert same.status_code == 200, same.text


@pytest.fixture(scope="module")
def token_engine(models, tmp_path_factory):
    cfg = ServeConfig(model="debug", port=0, web_port=0, token=TOKEN, render_dir=tmp_path_factory.mktemp("tok"),
                      midi=False)
    eng = start_engine(cfg, models=models)
    yield eng
    eng.stop()


def test_with_a_token_every_request_needs_it(token_engine):
    base = token_engine.web_url.rstrip("/")
    before = files(token_engine.jobs.render_dir)
    with httpx.Client(base_url=base, timeout=30) as c:
        for path in ("/", "/api/info", "/static/app.js", "/api/events"):
            refused(c.get(path), 401, "unauthorized", "token")
        refused(c.get("/api/info", headers={"Authorization": "Bearer wrong-token-xyz"}), 401, "unauthorized")
        refused(c.post("/api/jobs", json={"mode": "generate", "seconds": 1}), 401, "unauthorized")
        refused(c.put("/api/uploads", params={"name": "a.flac"}, content=EXAMPLE.read_bytes()), 401, "unauthorized")
        refused(c.get("/", params={"token": "wrong-token-xyz"}), 401, "unauthorized", "wrong token")
        assert files(token_engine.jobs.render_dir) == before
        assert c.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        r = c.get("/", params={"token": TOKEN})
        assert r.status_code == 303 and r.headers["location"] == "/" and "jb_token=" in r.headers["set-cookie"]
        assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
        assert c.get("/api/info").status_code == 200  # the cookie now carries it
    ev = Events(token_engine.web_url, headers={"Cookie": f"jb_token={TOKEN}"})
    try:
        assert ev.status == 200
        ev.wait(lambda k, d: k == "snapshot")
    finally:
        ev.close()


def test_settings_check_the_web_port(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('web_port = "9131"\n')
    with pytest.raises(ValueError, match="web_port must be of type int"):
        load_config(cfg)
    cfg.write_text("web_port = 70000\n")
    with pytest.raises(ValueError, match="--web-port must be 1..65535"):
        load_config(cfg)
    cfg.write_text("web = 1\n")
    with pytest.raises(ValueError, match="web must be of type bool"):
        load_config(cfg)
    cfg.write_text("web = false\nweb_port = 0\n")
    assert (load_config(cfg).web, load_config(cfg).web_port) == (False, 0)
    from jukebox_bridge.cli import build_parser

    args = build_parser().parse_args(["serve", "--web-port", "9200", "--no-web"])
    assert (args.web_port, args.no_web) == (9200, True)


# ---------------------------------------------------------------- one job system, pushed live


def test_a_web_job_is_listed_and_streams_to_done(engine, web, events, upload):
    r = web.post("/api/jobs", json={"mode": "continue", "upload": upload["name"], "start": 1.0, "length": 2.0,
                                    "seconds": 1.0, "quality": "draft", "seed": 5})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["origin"] == "web" and job["quality"] == "draft"
    assert is_web_owner(engine.jobs.get(job["job_id"]).owner) and engine.jobs.get(job["job_id"]).owner == WEB_OWNER
    assert job["job_id"] in [j["job_id"] for j in web.get("/api/jobs").json()["jobs"]]
    _, done = events.wait(lambda k, d: k == "job" and d["job_id"] == job["job_id"] and d["state"] == "done")
    assert done["fraction"] == 1.0 and len(done["takes"]) == 1
    stages = [d["stage"] for k, d in events.events if k == "job" and d["job_id"] == job["job_id"]]
    assert stages[-1] == "done" and len(stages) >= 2
    take = done["takes"][0]
    assert Path(take["path"]).is_file() and take["length"] == pytest.approx(1.0, abs=0.05)
    audio = web.get("/api/take/audio", params={"path": take["path"]})
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    png = web.get("/api/take/spectrogram.png", params={"path": take["path"]})
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    prov = web.get("/api/take/provenance", params={"path": take["path"]}).json()
    assert prov["seed"] == 5 and prov["model"] == "debug" and prov["licence"]

    refine = web.post("/api/jobs", json={"mode": "refine", "source": take["path"]})
    assert refine.status_code == 201, refine.text
    _, fine = events.wait(lambda k, d: k == "job" and d["job_id"] == refine.json()["job_id"]
                          and d["state"] not in ("queued", "running"))
    assert fine["state"] == "done" and fine["quality"] == "full", fine


def test_cancel_one_and_cancel_all(engine, web, events):
    jobs = [web.post("/api/jobs", json={"mode": "generate", "seconds": 3, "quality": "full"}).json()
            for _ in range(3)]
    assert web.delete(f"/api/jobs/{jobs[0]['job_id']}").status_code == 200
    assert web.delete("/api/jobs").json()["cancelled"] >= 1
    for job in jobs:
        _, end = events.wait(lambda k, d, job_id=job["job_id"]: k == "job" and d["job_id"] == job_id
                             and d["state"] not in ("queued", "running"))
        assert end["state"] in ("cancelled", "done")
    assert events.wait(lambda k, d: k == "job" and d["job_id"] == jobs[2]["job_id"])[1]
    refused(web.delete("/api/jobs/no-such-job"), 404, "unknown_job")


def _osc(engine, verb: str, params: dict) -> list[tuple[str, list]]:
    """Send one OSC request from a loopback socket; return the replies until ``finished``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(30)
    b = OscMessageBuilder(f"/jukebox/{verb}")
    for a in (sock.getsockname()[1], "r1", json.dumps(params)):
        b.add_arg(a)
    sock.sendto(b.build().dgram, engine.address)
    got = []
    try:
        while not got or got[-1][0] != "/jukebox/finished":
            m = OscMessage(sock.recv(65536))
            got.append((m.address, list(m.params)))
    finally:
        sock.close()
    return got


def test_an_osc_job_shows_up_in_the_page(engine, web, events):
    replies = _osc(engine, "generate", {"seconds": 1.0, "quality": "draft", "seed": 9})
    assert [a for a, _ in replies][0] == "/jukebox/accepted"
    job_id = replies[0][1][1]
    _, done = events.wait(lambda k, d: k == "job" and d["job_id"] == job_id and d["state"] == "done")
    assert done["origin"] == "osc" and len(done["takes"]) == 1
    assert job_id in [j["job_id"] for j in web.get("/api/jobs").json()["jobs"]]
    assert ("/jukebox/finished", [job_id, "done", 1]) in replies  # the OSC client still hears its own job


def test_live_parameters_travel_both_ways(engine, web, events):
    engine.jobs.live.set("temperature", 0.77)  # what a MIDI knob does
    events.wait(lambda k, d: k == "param" and d == {"name": "temperature", "value": 0.77})
    r = web.put("/api/params/top_p", json={"value": 0.9})
    assert r.json() == {"name": "top_p", "value": 0.9} and engine.jobs.live.get("top_p") == 0.9
    events.wait(lambda k, d: k == "param" and d["name"] == "top_p")
    assert web.get("/api/params").json()["params"]["top_p"] == 0.9
    refused(web.put("/api/params/top_p", json={"value": 3}), 400, "bad_value", "top_p must be")
    refused(web.put("/api/params/volume", json={"value": 1}), 400, "bad_value", "unknown parameter")
    engine.jobs.live.set("temperature", 0.98)
    engine.jobs.live.set("top_p", 1.0)


def test_a_web_job_resumes_after_a_restart(models, tmp_path):
    """Journalled like any job: a web job interrupted by a stop runs again at the next start, reported to the page."""
    started = threading.Event()

    def stuck(models, req, progress, cancel, workdir, cache=None):
        started.set()
        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.01)

    cfg = ServeConfig(model="debug", port=0, web_port=0, render_dir=tmp_path, midi=False)
    eng = start_engine(cfg, models=models, renderer=stuck)
    with httpx.Client(base_url=eng.web_url.rstrip("/"), timeout=30) as c:
        job_id = c.post("/api/jobs", json={"mode": "generate", "seconds": 1, "quality": "draft"}).json()["job_id"]
    assert started.wait(30)
    eng.stop()
    eng = start_engine(cfg, models=models, renderer=render)
    try:
        ev = Events(eng.web_url)
        try:
            ev.wait(lambda k, d: (k == "job" and d["job_id"] == job_id and d["state"] == "done")
                    or (k == "snapshot" and any(j["job_id"] == job_id and j["state"] == "done" for j in d["jobs"])))
        finally:
            ev.close()
        assert eng.jobs.get(job_id).owner == WEB_OWNER and eng.jobs.get(job_id).state == "done"
    finally:
        eng.stop()


def test_no_web_serves_no_panel(models, tmp_path):
    eng = start_engine(ServeConfig(model="debug", port=0, web=False, render_dir=tmp_path, midi=False), models=models)
    try:
        assert eng.web is None and eng.web_url is None
    finally:
        eng.stop()


def test_web_jobs_send_no_osc(engine, web, events, monkeypatch):
    """The OSC side leaves web jobs alone: no reply goes anywhere for them, while the page hears every event."""
    sent = []
    monkeypatch.setattr(engine.bridge, "send", lambda host, port, message: sent.append((host, port, message)))
    job_id = web.post("/api/jobs", json={"mode": "generate", "seconds": 1, "quality": "draft"}).json()["job_id"]
    events.wait(lambda k, d: k == "job" and d["job_id"] == job_id and d["state"] == "done")
    assert not [s for s in sent if job_id in str(s)], sent
