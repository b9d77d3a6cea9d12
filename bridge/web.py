"""The web panel: a page on loopback for DAWs without scripts (Bitwig, FL Studio, Logic, Cubase...).

The same engine objects as OSC (the one ``JobQueue`` and its journal, ``LiveParams``, the loaded models, through the
``Bridge``), so a job started from REAPER, Live or a MIDI note shows up in the page and a job started in the page
is an ordinary journalled job (its ``owner`` is ``web``, which the OSC side leaves alone). Requests are built by
``RenderRequest.from_fields`` and checked by ``JobQueue.submit`` exactly as OSC builds and checks them, so a refusal
carries the same error code and message, here as ``{"error": code, "message": ...}`` with a 4xx status.

Starlette serves the JSON API, the server-sent event stream and the static page (``bridge/web/``, plain HTML, CSS
and JS); uvicorn runs it on a thread of its own. Engine events arrive on the job worker's thread and are handed to
each open event stream's loop with ``call_soon_threadsafe``. No model code here: pictures of takes come from
``engine.io.images``.

Security (docs/web-panel.md): the socket binds ``ServeConfig.listen`` (loopback by default); the Host header must
name this server (DNS rebinding); a state-changing request from another origin is refused; with a token (required
beyond loopback) every request carries it as ``Authorization: Bearer`` or the ``jb_token`` cookie that
``/?token=SECRET`` sets. The page reads only takes in the journal and uploads, never a path it names itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import soundfile as sf
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request, cookie_parser
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from engine import __version__
from engine.errors import ErrorCode, RequestError
from engine.io import images
from engine.io.publish import sidecar_path, slug
from engine.jobs.records import STATE_DIR, Job, JobEvent
from engine.params import LIVE_PARAMS
from engine.request import MAX_SECONDS, MODES, RenderRequest

from . import protocol

log = logging.getLogger(__name__)

WEB_OWNER = "web"  # the owner of jobs submitted here; the OSC side ignores owners that start with it
MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # one uploaded audio file
UPLOAD_DIR = "uploads"  # inside the render folder
RECENT_UPLOADS = 20  # uploads the page offers to pick again
MAX_JSON = protocol.MAX_PARAMS_JSON  # bytes of a JSON request body, as OSC's params string
MAX_JOBS_LISTED = 100
EVENT_QUEUE = 2000  # events one stream may fall behind by before it is closed (the page reconnects and resyncs)
HEARTBEAT_SECONDS = 15.0
STARTUP_SECONDS = 10.0
TOKEN_COOKIE = "jb_token"
STATIC = Path(__file__).parent / "web"
_UPLOAD_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}\.[a-z0-9]{1,5}$")
_STATE_CHANGING = ("POST", "PUT", "DELETE", "PATCH")
# the render fields the form offers; the rest of RenderRequest's fields stay OSC's (and any client's) to send
QUALITIES: tuple[str, ...] = typing.get_args(typing.get_type_hints(RenderRequest)["quality"])
_STATUS = {ErrorCode.SOURCE_NOT_FOUND: 404, ErrorCode.UNKNOWN_JOB: 404, ErrorCode.NOT_AUDIO: 415,
           ErrorCode.UNAUTHORIZED: 401, ErrorCode.BUSY: 503, ErrorCode.UNAVAILABLE: 503, ErrorCode.TOO_LONG: 422,
           ErrorCode.CANCELLED: 409, ErrorCode.RENDER_FAILED: 500, ErrorCode.INTERNAL: 500}


def is_web_owner(owner: str) -> bool:
    return owner.startswith(WEB_OWNER)


@dataclass(frozen=True)
class WebConfig:
    listen: str
    port: int
    token: str | None
    render_dir: Path
    max_upload: int = MAX_UPLOAD_BYTES


class WebError(Exception):
    """A refusal: the protocol's error code, the message (the problem and what to do) and the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = ErrorCode(code), message, status


def _error_response(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": str(code), "message": message[:1000]}, status_code=status,
                        headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------- the event stream


@dataclass(eq=False)
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    closed: bool = False


class EventHub:
    """Fans engine events (any thread) out to the open event streams (each on the server's loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[_Subscriber] = []

    def subscribe(self) -> _Subscriber:
        sub = _Subscriber(asyncio.get_running_loop(), asyncio.Queue(EVENT_QUEUE))
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, kind: str, data: Any) -> None:
        self._send(sse(kind, data))

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self._send(None)

    def _send(self, text: str | None) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(_deliver, sub, text)
            except RuntimeError:  # its loop is closed: the server stopped
                self.unsubscribe(sub)


def _deliver(sub: _Subscriber, text: str | None) -> None:
    if sub.closed:
        return
    try:
        sub.queue.put_nowait(text)
    except asyncio.QueueFull:  # too far behind: end the stream; EventSource reconnects and gets a snapshot
        sub.closed = True
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)


def sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


# ---------------------------------------------------------------- the guard


class Guard:
    """ASGI middleware run before any route: Host (DNS rebinding), token, and Origin of state-changing requests."""

    def __init__(self, app: Any, panel: WebPanel) -> None:
        self.app, self.panel = app, panel

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.panel.refusal(scope["method"], scope["path"], headers)
        if refusal is None and self.panel.cfg.token and scope["path"] == "/":
            request = Request(scope)
            given = request.query_params.get("token")
            if given is not None:  # /?token=SECRET: checked, kept as a cookie, then out of the address bar
                if not hmac.compare_digest(given.encode(), self.panel.cfg.token.encode()):
                    refusal = WebError(ErrorCode.UNAUTHORIZED, "wrong token in the address: open the panel as "
                                       "/?token=SECRET with the engine's --token", 401)
                else:
                    response = RedirectResponse("/", status_code=303)
                    response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict")
                    return await response(scope, receive, send)
        if refusal is None and self.panel.cfg.token and not self.panel.authorized(headers):
            refusal = WebError(ErrorCode.UNAUTHORIZED, "missing or wrong token: this engine needs its --token. Open "
                               "the panel as /?token=SECRET once (a cookie keeps it), or send Authorization: "
                               "Bearer SECRET", 401)
        if refusal is not None:
            return await _error_response(refusal.code, refusal.message, refusal.status)(scope, receive, send)
        await self.app(scope, receive, send)


# ---------------------------------------------------------------- the panel


class WebPanel:
    """The web panel's socket, server thread, routes and event hub. Binds at construction (a port in use fails
    before the model loads); ``start(bridge)`` serves the bridge's engine objects."""

    def __init__(self, cfg: WebConfig) -> None:
        self.cfg, self.max_upload = cfg, cfg.max_upload
        family = socket.AF_INET6 if ":" in cfg.listen else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((cfg.listen, cfg.port))
            self._sock.listen(128)
        except OSError as exc:
            self._sock.close()
            raise OSError(exc.errno, f"web panel: cannot listen on {cfg.listen}:{cfg.port} ({exc.strerror}); pass "
                          "--web-port N for another port, or --no-web") from None
        self.port = self._sock.getsockname()[1]
        self.uploads = cfg.render_dir / UPLOAD_DIR
        self.image_cache = cfg.render_dir / STATE_DIR / "images"
        self.hub = EventHub()
        self.bridge: Any = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._hosts = self._allowed_hosts()
        self.app = Guard(Starlette(routes=self._routes(), exception_handlers={HTTPException: _http_error}), self)

    @property
    def url(self) -> str:
        host = self.cfg.listen
        if ipaddress.ip_address(host).is_unspecified:
            host = "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    # ------------------------------------------------------------------ lifecycle

    def start(self, bridge: Any) -> None:
        """Serve ``bridge``'s engine (its ``jobs``, ``live``, ``models`` and ``render_check``) on a thread."""
        self.bridge = bridge  # uploads/ is made at the first upload: a full or read-only disk still starts
        bridge.live.add_listener(lambda name, value: self.hub.publish("param", {"name": name, "value": value}))
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, name="web-panel",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the web panel did not start on {self.url}; see the log above (or pass --no-web)")
            time.sleep(0.01)

    def stop(self) -> None:
        self.hub.publish("engine", {"state": "stopping"})
        self.hub.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        self.close()

    def close(self) -> None:
        self._sock.close()

    # ------------------------------------------------------------------ guard checks

    def _allowed_hosts(self) -> set[str] | None:
        """Host names a request may address (None: any IP literal, when bound to every interface)."""
        addr = ipaddress.ip_address(self.cfg.listen)
        if addr.is_unspecified:
            return None
        names = {"localhost", str(addr)} | ({"127.0.0.1", "::1"} if addr.is_loopback else set())
        return names

    def refusal(self, method: str, path: str, headers: dict[str, str]) -> WebError | None:
        host = headers.get("host", "")
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        name = name.strip("[]").lower()
        if port != str(self.port) or not self._host_ok(name):
            return WebError(ErrorCode.BAD_REQUEST, f"the Host header {host[:100]!r} does not name this panel; open "
                            f"{self.url} (another name for this computer is refused: DNS rebinding)", 421)
        if method in _STATE_CHANGING:
            origin = headers.get("origin")
            if origin is not None and origin != f"http://{host}":
                return WebError(ErrorCode.UNAUTHORIZED, f"cross-origin request refused: a page at {origin[:100]!r} "
                                f"may not change this engine; use the panel itself at {self.url}", 403)
            if headers.get("sec-fetch-site") == "cross-site":
                return WebError(ErrorCode.UNAUTHORIZED, "cross-site request refused: use the panel itself at "
                                f"{self.url}", 403)
        return None

    def _host_ok(self, name: str) -> bool:
        if self._hosts is None:  # every interface: an address, never a name (a name could be rebound)
            if name == "localhost":
                return True
            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return name in self._hosts

    def authorized(self, headers: dict[str, str]) -> bool:
        want = (self.cfg.token or "").encode()
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), want):
            return True
        cookie = cookie_parser(headers.get("cookie", "")).get(TOKEN_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), want)

    # ------------------------------------------------------------------ engine events (the job worker's thread)

    def on_job_event(self, event: JobEvent) -> None:
        """Every job's progress, takes and end, whichever front end started it (called under the queue's lock)."""
        if self.bridge is None:
            return
        self.hub.publish("job", job_json(self.bridge.jobs.get(event.job_id)))

    # ------------------------------------------------------------------ routes

    def _routes(self) -> list:
        e = _endpoint
        return [
            Route("/", self._index, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            Route("/api/info", e(self._info), methods=["GET"]),
            Route("/api/labels/{kind}", e(self._labels), methods=["GET"]),
            Route("/api/params", e(self._params), methods=["GET"]),
            Route("/api/params/{name}", e(self._set_param), methods=["PUT"]),
            Route("/api/uploads", e(self._list_uploads), methods=["GET"]),
            Route("/api/uploads", e(self._upload), methods=["PUT", "POST"]),
            Route("/api/uploads/{name}/peaks", e(self._peaks), methods=["GET"]),
            Route("/api/jobs", e(self._list_jobs), methods=["GET"]),
            Route("/api/jobs", e(self._submit), methods=["POST"]),
            Route("/api/jobs", e(self._cancel_all), methods=["DELETE"]),
            Route("/api/jobs/{job_id}", e(self._job), methods=["GET"]),
            Route("/api/jobs/{job_id}", e(self._cancel), methods=["DELETE"]),
            Route("/api/take/{view}", e(self._take), methods=["GET"]),
            Route("/api/events", e(self._events), methods=["GET"]),
        ]

    async def _index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _info(self, request: Request) -> dict:
        """What the page builds its form from: modes, qualities, the live-parameter table, limits, chains."""
        b = self.bridge
        defaults = {f.name: f.default for f in dataclasses.fields(RenderRequest)
                    if f.default is not dataclasses.MISSING}
        values = b.live.snapshot()
        params = [{**dataclasses.asdict(p), "knob": None, "value": values[p.name]} for p in LIVE_PARAMS.values()]
        return {"version": __version__, "model": b.models.info(), **b.models.licence(),
                "modes": [m for m in MODES if m != "refine"], "qualities": list(QUALITIES), "params": params,
                "defaults": defaults, "max_seconds": MAX_SECONDS, "max_upload": self.max_upload,
                "chains": await run_in_threadpool(_chains), "render_dir": str(self.cfg.render_dir)}

    async def _labels(self, request: Request) -> dict:
        kind = request.path_params["kind"]
        if kind not in ("artist", "genre"):
            raise WebError(ErrorCode.BAD_VALUE, f"no label kind {kind[:40]!r}; use artist or genre", 404)
        q = request.query_params
        fields = {"query": q.get("query", ""), "offset": _int(q.get("offset", "0"), "offset"),
                  "limit": _int(q.get("limit", "50"), "limit")}
        p = protocol.verb_params(kind + "s", fields)
        total, names = self.bridge.models.search_labels(kind, p.query, p.offset, p.limit)
        return {"query": p.query, "offset": p.offset, "total": total, "names": names}

    async def _params(self, request: Request) -> dict:
        return {"params": self.bridge.live.snapshot()}

    async def _set_param(self, request: Request) -> dict:
        body = await _json_body(request)
        if set(body) != {"value"}:
            raise WebError(ErrorCode.BAD_REQUEST, 'the body must be {"value": NUMBER}')
        value = self.bridge.live.set(request.path_params["name"], body["value"])  # listeners push it to every page
        return {"name": request.path_params["name"], "value": value}

    # uploads

    async def _list_uploads(self, request: Request) -> dict:
        return {"uploads": await run_in_threadpool(self._recent_uploads)}

    def _recent_uploads(self) -> list[dict]:
        try:
            files = [p for p in self.uploads.iterdir() if _UPLOAD_NAME.match(p.name) and p.is_file()]
        except OSError:
            return []
        files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        out = []
        for path in files[:RECENT_UPLOADS]:
            try:
                out.append(_upload_json(path))
            except (OSError, RuntimeError):
                continue
        return out

    async def _upload(self, request: Request) -> Response:
        """The raw body is the file (``?name=`` its original name): streamed to a hidden part file under the limit,
        checked as audio, then linked into ``uploads/`` under a content-addressed name; refused, nothing stays."""
        original = request.query_params.get("name", "upload")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_upload:
            raise WebError(ErrorCode.BAD_REQUEST, self._too_large(int(declared)), 413)
        self.uploads.mkdir(parents=True, exist_ok=True)
        part = self.uploads / f".upload-{secrets.token_hex(8)}.part"
        digest, size = hashlib.sha256(), 0
        try:
            with open(part, "xb") as fh:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_upload:
                        raise WebError(ErrorCode.BAD_REQUEST, self._too_large(size, at_least=True), 413)
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if size == 0:
                raise WebError(ErrorCode.NOT_AUDIO, "the upload is empty: drop an audio file (WAV, FLAC, OGG, MP3, "
                               "AIFF)", 415)
            return JSONResponse(await run_in_threadpool(self._keep_upload, part, original, digest.hexdigest()),
                                status_code=201)
        finally:
            part.unlink(missing_ok=True)

    def _too_large(self, size: int, at_least: bool = False) -> str:
        more = "more than " if at_least else ""
        return (f"the upload is too large ({more}{size / 1e6:.1f} MB; at most {self.max_upload / 1e6:.1f} MB): "
                "trim or compress it (FLAC) first, or render from the DAW through its OSC scripts")

    def _keep_upload(self, part: Path, original: str, sha: str) -> dict:
        try:
            info = sf.info(str(part))
            if info.frames <= 0 or info.samplerate <= 0:
                raise RuntimeError("no audio frames")
        except (RuntimeError, sf.LibsndfileError) as exc:  # soundfile raises RuntimeError subclasses
            raise WebError(ErrorCode.NOT_AUDIO, f"{original[:100]!r} is not audio this engine can read ({exc}); "
                           "drop a WAV, FLAC, OGG, MP3 or AIFF file", 415) from None
        stem = slug(Path(original).stem, 40) or "upload"
        path = self.uploads / f"{stem}-{sha[:12]}.{info.format.lower()}"
        try:
            os.link(part, path)  # never overwrites; the same content again is the same name
        except FileExistsError:
            os.utime(path)  # the newest upload again
        return _upload_json(path)

    def _upload_path(self, name: str) -> Path:
        path = self.uploads / name
        if not _UPLOAD_NAME.match(name) or not path.is_file():
            raise WebError(ErrorCode.SOURCE_NOT_FOUND, f"no upload named {name[:100]!r}; upload the file again "
                           "(GET /api/uploads lists them)", 404)
        return path

    async def _peaks(self, request: Request) -> dict:
        path = self._upload_path(request.path_params["name"])
        columns = _int(request.query_params.get("columns", "1000"), "columns")
        return await run_in_threadpool(images.peaks, path, columns)

    # jobs

    async def _list_jobs(self, request: Request) -> dict:
        return {"jobs": [job_json(j) for j in self.bridge.jobs.jobs(MAX_JOBS_LISTED)]}

    async def _job(self, request: Request) -> dict:
        return job_json(self.bridge.jobs.get(request.path_params["job_id"]))

    async def _submit(self, request: Request) -> Response:
        """``{"mode": ..., "upload": NAME | "source": TAKE_PATH, ...render fields}``: the fields of OSC's params; a
        live field left out takes the live value, as over OSC."""
        fields = await _json_body(request)
        mode = fields.pop("mode", None)
        if not isinstance(mode, str):
            raise WebError(ErrorCode.BAD_REQUEST, f'the body needs "mode": one of {", ".join(MODES)}')
        upload = fields.pop("upload", None)
        if upload is not None:
            if not isinstance(upload, str) or "source" in fields:
                raise WebError(ErrorCode.BAD_VALUE, '"upload" is an upload\'s name, instead of "source"')
            fields["source"] = str(self._upload_path(upload))
        elif isinstance(fields.get("source"), str):  # a take to refine (or continue): only the engine's own
            fields["source"] = str(self._readable(fields["source"]))
        req = RenderRequest.from_fields(mode, fields)
        given = frozenset(k for k, v in fields.items() if v is not None)
        job = await run_in_threadpool(self.bridge.jobs.submit, req, WEB_OWNER, given=given,
                                      check=self.bridge.render_check())
        return JSONResponse(job_json(job), status_code=201)

    async def _cancel(self, request: Request) -> dict:
        return {"cancelled": self.bridge.jobs.cancel(request.path_params["job_id"])}

    async def _cancel_all(self, request: Request) -> dict:
        return {"cancelled": self.bridge.jobs.cancel(None)}

    # takes

    def _readable(self, given: str) -> Path:
        """``given`` if it is a published take in the journal, its sidecar, or an upload; else refused."""
        try:
            path = Path(os.path.realpath(given))
        except (OSError, ValueError):
            path = None
        if path is not None and Path(given).is_absolute():
            if path.parent == Path(os.path.realpath(self.uploads)) and _UPLOAD_NAME.match(path.name) and path.is_file():
                return path
            for job in self.bridge.jobs.jobs(10**9):
                for take in job.published:
                    if os.path.realpath(take.path) == str(path) and path.is_file():
                        return path
        raise WebError(ErrorCode.UNAUTHORIZED, f"{given[:200]!r} is not a take this engine rendered (nor an upload): "
                       "the panel reads only those. Pick the take from the job list", 403)

    async def _take(self, request: Request) -> Response:
        view = request.path_params["view"]
        path = await run_in_threadpool(self._readable, request.query_params.get("path", ""))
        if view == "audio":
            return FileResponse(path, filename=path.name, content_disposition_type="inline")
        if view in ("waveform.png", "spectrogram.png"):
            data = await run_in_threadpool(images.audio_image, path, view.removesuffix(".png"), self.image_cache)
            return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
        if view == "provenance":
            try:
                return JSONResponse(json.loads(sidecar_path(path).read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise WebError(ErrorCode.SOURCE_NOT_FOUND, f"no readable sidecar beside {path.name}: {exc}", 404)
        raise WebError(ErrorCode.BAD_VALUE, f"no view {view[:40]!r}; use audio, waveform.png, spectrogram.png or "
                       "provenance", 404)

    # events

    async def _events(self, request: Request) -> Response:
        """Server-sent events: ``snapshot`` (every job and the live values) first, then ``job``, ``param`` and
        ``engine`` as they happen, and a comment every ``HEARTBEAT_SECONDS``."""
        sub = self.hub.subscribe()
        snapshot = {"jobs": [job_json(j) for j in self.bridge.jobs.jobs(MAX_JOBS_LISTED)],
                    "params": self.bridge.live.snapshot()}

        async def stream() -> Any:
            try:
                yield "retry: 1000\n\n" + sse("snapshot", snapshot)
                while True:
                    try:
                        text = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_SECONDS)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if text is None:
                        return
                    yield text
            finally:
                self.hub.unsubscribe(sub)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# ---------------------------------------------------------------- helpers


def _endpoint(fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
    """A route that returns JSON (a dict) or a response; refusals become ``{"error", "message"}`` with a 4xx."""
    async def route(request: Request) -> Response:
        try:
            out = await fn(request)
        except WebError as exc:
            return _error_response(exc.code, exc.message, exc.status)
        except RequestError as exc:  # the engine's own refusal, exactly as OSC reports it
            return _error_response(exc.code, str(exc), _STATUS.get(exc.code, 400))
        except Exception:
            log.exception("web panel: %s %s failed", request.method, request.url.path)
            return _error_response(ErrorCode.INTERNAL, "the engine failed on this request; its log has the "
                                   "traceback", 500)
        return out if isinstance(out, Response) else JSONResponse(out, headers={"Cache-Control": "no-store"})
    return route


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route or file, a method a route does not take) as JSON too."""
    status = getattr(exc, "status_code", 500)
    what = "no such address" if status == 404 else f"{request.method} is not accepted here"
    return _error_response(ErrorCode.BAD_REQUEST if status != 404 else ErrorCode.UNKNOWN_VERB,
                           f"{what}: {request.url.path[:100]} (docs/web-panel.md lists the API)", status)


async def _json_body(request: Request) -> dict:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON:
            raise WebError(ErrorCode.BAD_REQUEST, f"the JSON body is larger than {MAX_JSON} bytes", 413)
    try:
        return protocol.json_object(body, "the body")
    except protocol.ProtocolError as exc:
        raise WebError(exc.code, exc.message) from None


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise WebError(ErrorCode.BAD_VALUE, f"{name} must be an integer; got {text[:40]!r}") from None


def _upload_json(path: Path) -> dict:
    info = sf.info(str(path))
    return {"name": path.name, "path": str(path), "seconds": info.frames / info.samplerate,
            "sample_rate": info.samplerate, "channels": info.channels, "bytes": path.stat().st_size}


def _chains() -> list[str]:
    """The built-in effect chains and the user's ``NAME.toml`` chains (what ``chain`` accepts by name)."""
    from engine.io.effects import BUILTIN_CHAINS, chain_dir

    try:
        own = sorted(p.stem for p in chain_dir().glob("*.toml"))
    except OSError:
        own = []
    return list(BUILTIN_CHAINS) + [n for n in own if n not in BUILTIN_CHAINS]


def job_json(job: Job) -> dict:
    """A job as the page shows it: ``status``'s summary, its request's labels and its published takes."""
    r = job.request
    out = job.summary()
    out.update({"seq": job.seq, "origin": "web" if is_web_owner(job.owner) else "osc", "artist": r.artist,
                "genre": r.genre, "quality": r.quality, "seconds": r.target_seconds, "temperature": r.temperature,
                "top_p": r.top_p, "adherence": r.adherence,
                "source": None if r.source is None else Path(r.source).name, "start": r.start, "length": r.length,
                "takes": [{"take": t.take, "path": t.path, "name": Path(t.path).name, "position": t.position,
                           "length": t.length} for t in job.published], "n_takes": r.takes,
                "warnings": list(job.warnings)})  # e.g. a truncated source the request allowed
    return out
