"""``jukebox-bridge serve``: load the model once, then take OSC (and MIDI) commands until stopped.

``ServeConfig`` comes from ``config.toml`` in the user's config folder, overridden by command-line
flags. ``Bridge`` holds the verb handlers: each turns a typed ``protocol.Request`` into one engine call
(``JobQueue``, ``LiveParams``, ``Models``) and returns the replies. ``serve`` wires the OSC socket, the
job queue and the optional MIDI adapter together and is the only place that starts them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import signal
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import platformdirs

from engine import __version__
from engine.errors import ErrorCode, RequestError
from engine.jobs.lock import FolderLock
from engine.jobs.queue import JobQueue
from engine.jobs.records import STATE_DIR, JobEvent, JobFinished, JobProgress, TakeDone
from engine.params import LIVE_DEFAULTS, LiveParams
from engine.request import RenderRequest
from engine.runtime.records import from_dict

from . import protocol
from .osc import OscServer
from .protocol import Reply, Request, reply
from .web import WebConfig, WebPanel, is_web_owner

log = logging.getLogger("jukebox_bridge")

APP = "jukebox-bridge"
CLIENT_TTL = 60.0  # seconds a hello keeps a client registered for broadcasts
MAX_CLIENTS = 64
STOP_POLL_SECONDS = 0.1  # how soon the main thread notices SIGINT/SIGTERM


def default_render_dir() -> Path:
    return platformdirs.user_data_path(APP) / "renders"


def config_path() -> Path:
    return platformdirs.user_config_path(APP) / "config.toml"


@dataclass(frozen=True)
class ServeConfig:
    model: str | None = None  # None: the embedded default model; "debug": tiny test models; else a folder
    port: int = protocol.DEFAULT_PORT
    listen: str = protocol.DEFAULT_LISTEN
    token: str | None = None
    render_dir: Path = field(default_factory=default_render_dir)
    midi: bool = True
    midi_port: str | None = None  # None: a virtual input named "Jukebox Bridge"
    log_level: str = "INFO"
    top: str | None = None  # the official top prior the model folder must hold (it is detected from the folder)
    max_wait: float = 300.0  # seconds: a longer estimated render is refused with an offer (draft, shorter); 0: never
    codes_retention: int = 500  # published takes whose codes the render folder keeps (refine needs a draft's)
    web: bool = True  # the web panel (bridge/web.py) for DAWs without scripts
    web_port: int = protocol.DEFAULT_WEB_PORT  # its TCP port on ``listen`` (0: any free port)
    cluster: str | None = None  # a Dask scheduler (tcp://HOST:8786) whose workers render the jobs (docs/batch.md)


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> ServeConfig:
    """Defaults, then the TOML file (``path`` or the user's config.toml if present), then ``overrides``."""
    explicit, path = path is not None, path or config_path()
    values: dict[str, Any] = {}
    if path.exists() or explicit:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read config {path}: {exc}") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "render_dir" in values:
        values["render_dir"] = Path(str(values["render_dir"])).expanduser()
    for name, want in (("port", int), ("web_port", int), ("web", bool), ("midi", bool), ("listen", str),
                       ("log_level", str), ("token", str), ("model", str), ("midi_port", str), ("top", str),
                       ("cluster", str)):
        if name in values and type(values[name]) is not want:
            raise ValueError(f"setting {name} must be of type {want.__name__}; got {values[name]!r}")
    if "top" in values and values["top"] not in ("5b", "5b_lyrics", "1b_lyrics"):
        raise ValueError(f"setting top must be 5b, 5b_lyrics or 1b_lyrics; got {values['top']!r}")
    if "codes_retention" in values and (type(values["codes_retention"]) is not int or values["codes_retention"] < 0):
        raise ValueError(f"setting codes_retention must be a whole number of takes; got {values['codes_retention']!r}")
    if "max_wait" in values:
        if type(values["max_wait"]) not in (int, float) or values["max_wait"] < 0:
            raise ValueError(f"setting max_wait must be seconds (0: no limit); got {values['max_wait']!r}")
        values["max_wait"] = float(values["max_wait"])
    cfg = from_dict(ServeConfig, values, where=f"settings ({path})")
    check_safety(cfg)
    return cfg


def check_safety(cfg: ServeConfig) -> None:
    """Loopback needs nothing; any other address needs a token, checked on every request."""
    try:
        addr = ipaddress.ip_address(cfg.listen)
    except ValueError:
        raise ValueError(f"--listen must be an IP address (e.g. 127.0.0.1 or 0.0.0.0); got {cfg.listen!r}") from None
    if not 0 <= cfg.port < 65536:
        raise ValueError(f"--port must be 1..65535 (0: any free port); got {cfg.port}")
    if not 0 <= cfg.web_port < 65536:
        raise ValueError(f"--web-port must be 1..65535 (0: any free port); got {cfg.web_port}")
    if not addr.is_loopback and not cfg.token:
        raise ValueError(f"refusing to listen on {cfg.listen}: beyond this computer anyone could drive the engine "
                         "and read its files. Pass --token SECRET (and give the DAW scripts the same token), "
                         "or listen on 127.0.0.1.")
    if cfg.token is not None and len(cfg.token) < 8:
        raise ValueError("the token must be at least 8 characters long")


class Bridge:
    """The verb handlers. ``send(host, port, reply)`` delivers a message; events reach the job's requester."""

    def __init__(self, models: Any, jobs: JobQueue, live: LiveParams, send: Callable[[str, int, Reply], None],
                 midi: Any = None, speed: Any = None, max_wait: float = 300.0) -> None:
        self.models, self.jobs, self.live, self.send, self.midi = models, jobs, live, send, midi
        self.speed, self.max_wait = speed, max_wait  # measured tokens/s (estimate.Speed) and the render-time limit
        self.clients: dict[tuple[str, int], float] = {}  # registered by hello -> last seen
        self.protocols: dict[tuple[str, int], int] = {}  # (host, reply port) -> the protocol its hello asked for
        self._lock = threading.Lock()
        self._last: tuple[Request, str] | None = None  # the last render request and its host, for MIDI actions
        live.add_listener(lambda name, value: self.broadcast(reply("param", name, value)))

    def handle(self, req: Request, host: str) -> list[Reply]:
        if protocol.VERBS[req.verb].renders:
            return self._render(req, host)
        return getattr(self, f"_{req.verb}")(req, host)

    # ------------------------------------------------------------------ verbs

    def _hello(self, req: Request, host: str) -> list[Reply]:
        now, key = time.monotonic(), (host, req.reply_port)
        with self._lock:
            self.clients = {k: t for k, t in self.clients.items() if now - t < CLIENT_TTL}
            new = key not in self.clients
            if new and len(self.clients) >= MAX_CLIENTS:
                self.clients.pop(min(self.clients, key=self.clients.__getitem__))
            self.clients[key] = now
            if req.params.protocol != protocol.PROTOCOL_VERSION or key in self.protocols:
                if len(self.protocols) >= 4 * MAX_CLIENTS:
                    self.protocols.pop(next(iter(self.protocols)))
                self.protocols[key] = req.params.protocol  # kept past the hello's TTL: its jobs' events use it
        out = [reply("hello", req.request_id, __version__, req.params.protocol)]
        return out + [reply("engine", "ready", __version__)] if new else out

    def _ping(self, req: Request, host: str) -> list[Reply]:
        return [reply("pong", req.request_id, __version__)]

    def _info(self, req: Request, host: str) -> list[Reply]:
        info = {"protocol": protocol.PROTOCOL_VERSION, "protocols": list(protocol.PROTOCOLS), "version": __version__,
                **self.models.info(), "capabilities": list(protocol.CAPABILITIES), "params": self.live.snapshot(), **self.models.licence()}
        if self.speed is not None:  # what a DAW script needs to estimate a render before asking
            info["speed"] = {"device": self.speed.device, "max_wait": self.max_wait,
                             "tokens_per_second": {str(lv): round(self.speed.tokens_per_second(lv), 3)
                                                   for lv in sorted(self.speed.step_seconds)}}
        return [reply("info", req.request_id, protocol.to_json(info))]

    def _search(self, req: Request, kind: str) -> list[Reply]:
        p = req.params
        total, names = self.models.search_labels(kind, p.query, p.offset, p.limit)
        body = {"query": p.query, "offset": p.offset, "total": total, "names": names}
        return [reply(req.verb, req.request_id, protocol.to_json(body))]

    def _artists(self, req: Request, host: str) -> list[Reply]:
        return self._search(req, "artist")

    def _genres(self, req: Request, host: str) -> list[Reply]:
        return self._search(req, "genre")

    def _render(self, req: Request, host: str, request_id: str | None = None) -> list[Reply]:
        rid = req.request_id if request_id is None else request_id

        def announce(job: Any) -> None:  # after the journal commit, before the job's first event
            with self._lock:
                self._last = (req, host)
            self.send(host, req.reply_port, reply("accepted", rid, job.id))
            for message in job.warnings:  # e.g. a truncated source the request allowed
                self.send(host, req.reply_port, reply("warning", job.id, message))

        with self._lock:
            version = self.protocols.get((host, req.reply_port), protocol.PROTOCOL_VERSION)
        self.jobs.submit(req.params, _owner(host, req.reply_port, version), announce=announce, given=req.given,
                         check=self.render_check())
        return []

    def render_check(self) -> Callable[[RenderRequest], None] | None:
        """The render-time limit every front end applies at submission (OSC and the web panel alike): a render
        too long on this machine is refused with the estimate and an offer (draft, shorter), nothing queued."""
        if self.speed is None:
            return None
        from engine.generate.estimate import check_render_time

        def check(params: RenderRequest) -> None:
            check_render_time(self.models, params, self.speed, self.max_wait)

        return check

    def _cancel(self, req: Request, host: str) -> list[Reply]:
        self.jobs.cancel(None if req.params.all else req.params.job_id,
                         announce=lambda n: self.send(host, req.reply_port, reply("cancelled", req.request_id, n)))
        return []

    def _status(self, req: Request, host: str) -> list[Reply]:
        if req.params.job_id is not None:
            body = self.jobs.get(req.params.job_id).summary(detail=True)
        else:
            body = {"jobs": [job.summary() for job in self.jobs.jobs(50)]}
        return [reply("status", req.request_id, protocol.to_json(body))]

    def _set(self, req: Request, host: str) -> list[Reply]:
        value = self.live.set(req.params.name, req.params.value)  # listeners broadcast to registered clients
        with self._lock:
            registered = (host, req.reply_port) in self.clients
        return [] if registered else [reply("param", req.params.name, value)]

    def _learn(self, req: Request, host: str) -> list[Reply]:
        LiveParams.check(req.params.name, LIVE_DEFAULTS.get(req.params.name, 0))  # a settable name, or bad_value
        if self.midi is None:
            raise RequestError(ErrorCode.UNAVAILABLE, "MIDI is off (mido is missing or no MIDI input could be opened); "
                               "start the engine with --midi-port NAME")
        self.midi.learn(req.params.name)
        return [reply("learning", req.request_id, req.params.name)]

    def _audition(self, req: Request, host: str) -> list[Reply]:
        from engine.io.audition import audition_take  # sounddevice is only needed when someone auditions

        audition_take(self.jobs, req.params.job_id, req.params.take)
        return [reply("auditioning", req.request_id, req.params.job_id, req.params.take)]

    # ------------------------------------------------------------------ events and broadcasts

    def on_job_event(self, event: JobEvent) -> None:
        parsed = _parse_owner(event.owner)
        if parsed is None:  # a web panel job: the panel reports it over its own event stream
            return
        host, port, version = parsed
        if isinstance(event, JobProgress):
            self.send(host, port, reply("progress", event.job_id, event.fraction, event.stage, event.eta))
        elif isinstance(event, TakeDone):
            rate = self.jobs.get(event.job_id).request.sample_rate  # frames at the project's rate: exact (protocol 2)
            self.send(host, port, reply("done", event.job_id, event.take, event.path, event.position, event.length,
                                        round(event.position * rate), round(event.length * rate), protocol=version))
        elif isinstance(event, JobFinished):
            if event.error:
                self.send(host, port, protocol.error(event.job_id, *event.error))
            self.send(host, port, reply("finished", event.job_id, event.state, event.takes))

    def broadcast(self, message: Reply) -> None:
        now = time.monotonic()
        with self._lock:
            targets = [k for k, t in self.clients.items() if now - t < CLIENT_TTL]
        for host, port in targets:
            self.send(host, port, message)

    # ------------------------------------------------------------------ MIDI callbacks (MIDI thread)

    def on_midi_param(self, name: str, value: float) -> None:
        try:
            self.live.set(name, value)
        except RequestError as exc:
            log.warning("MIDI: %s", exc)

    def on_learned(self, name: str, channel: int, control: int) -> None:
        self.broadcast(reply("learned", name, channel, control))

    def on_midi_action(self, action: str) -> None:
        """continue_last / rerender_last: the last render request's region again (live values refreshed);
        cancel_last: the newest active job. Jobs report to the client that sent the last request."""
        with self._lock:
            last = self._last
        if action == "cancel_last":
            active = [j for j in self.jobs.jobs() if j.state in ("queued", "running")]
            if active:
                self.jobs.cancel(active[0].id)
            return
        if last is None:
            return log.warning("MIDI: %s before any render request; nothing to repeat", action)
        req, host = last
        mode = action.removesuffix("_last")  # continue or rerender
        if req.params.source is None:
            if mode == "rerender":
                return log.warning("MIDI: rerender_last needs a last request with a source region")
            mode = "generate"
        fields = {k: v for k, v in req.params.to_fields().items() if k in req.given}
        try:
            params = RenderRequest.from_fields(mode, fields)
            self._render(dataclasses.replace(req, verb=mode, params=params), host, request_id=f"midi:{action}")
        except RequestError as exc:
            self.send(host, req.reply_port, protocol.error(f"midi:{action}", exc.code, str(exc)))


def _owner(host: str, port: int, version: int = protocol.PROTOCOL_VERSION) -> str:
    """Where a job's events go, journalled with the job: "host port", and " N" for a protocol other than 1."""
    return f"{host} {port}" if version == protocol.PROTOCOL_VERSION else f"{host} {port} {version}"


def _parse_owner(owner: str) -> tuple[str, int, int] | None:
    """The OSC client a job's events go to; None for a job of another front end (the web panel's ``web...``)."""
    if is_web_owner(owner):
        return None
    host, port, *version = owner.split(" ")
    return host, int(port), int(version[0]) if version else protocol.PROTOCOL_VERSION


def _open_midi(cfg: ServeConfig, bridge: Bridge) -> Any:
    """The MIDI adapter if mido and an input are available; otherwise None (OSC keeps working)."""
    if not cfg.midi:
        return None
    try:
        from .midi import MidiAdapter

        adapter = MidiAdapter(cfg.midi_port, on_param=bridge.on_midi_param, on_action=bridge.on_midi_action,
                              on_learned=bridge.on_learned)
        adapter.start()
    except Exception as exc:  # ImportError without mido; OSError/SystemError without a MIDI system
        log.warning("MIDI is off: %s", exc)
        return None
    return adapter


@dataclass
class Engine:
    """A running engine: the OSC socket, the job queue, the verb handlers, the MIDI adapter and the web panel."""

    osc: OscServer
    jobs: JobQueue
    bridge: Bridge
    web: WebPanel | None = None
    cluster: Any = None  # the ClusterRenderer of ``--cluster``, closed last

    @property
    def address(self) -> tuple[str, int]:
        return self.osc.address

    @property
    def web_url(self) -> str | None:
        return None if self.web is None else self.web.url

    def stop(self) -> None:
        self.bridge.broadcast(reply("engine", "stopping", __version__))
        if self.bridge.midi is not None:
            self.bridge.midi.stop()
        if self.web is not None:
            self.web.stop()
        self.osc.stop()
        self.jobs.stop()
        if self.cluster is not None:
            self.cluster.close()


def _fan_out(*listeners: Callable[[JobEvent], None]) -> Callable[[JobEvent], None]:
    """One job event to every front end (OSC, the web panel); one that fails does not silence the others."""
    def on_event(event: JobEvent) -> None:
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("job event listener failed on %s", event)
    return on_event


def start_engine(cfg: ServeConfig, models: Any = None, renderer: Callable[..., list] | None = None) -> Engine:
    """Bind, load the model (unless given), resume the journal's unfinished jobs and start serving."""
    check_safety(cfg)
    cfg.render_dir.mkdir(parents=True, exist_ok=True)
    osc = OscServer(cfg.listen, cfg.port, cfg.token)  # bind first: a port in use fails before the model loads
    host, port = osc.address
    try:
        web = WebPanel(WebConfig(cfg.listen, cfg.web_port, cfg.token, cfg.render_dir)) if cfg.web else None
    except BaseException:
        osc.stop()
        raise
    lock = FolderLock(cfg.render_dir / STATE_DIR, {"host": host, "port": port})
    cluster = None
    try:  # one engine per render folder, refused before the model loads
        lock.acquire()
        if models is None:
            from engine.weights.bundle import load_models

            log.info("loading model %s", cfg.model or "(embedded default)")
            models = load_models(cfg.model, cfg.top)
        workers = 1
        if renderer is None:
            from engine.generate.render import render
            from engine.io.effects import with_effects

            renderer = render
            if cfg.cluster:  # jobs render on the cluster's workers; the queue, journal and files stay here
                from engine.batch.cluster import ClusterRenderer

                log.info("connecting to the Dask cluster at %s", cfg.cluster)
                renderer = cluster = ClusterRenderer(cfg.cluster, cfg.model, cfg.top, local=render)
                workers = cluster.workers
            renderer = with_effects(renderer)  # each request's effect chain runs after sampling, here
        from engine.generate.render import warm_up

        warm_up(models)  # the compiled step builds in the background; jobs run eager until it is ready
        live = LiveParams()
        # one job system for every front end: OSC clients hear their jobs, the web panel hears every job
        listeners = [lambda e: bridge.on_job_event(e)] + ([web.on_job_event] if web is not None else [])
        jobs = JobQueue(cfg.render_dir, models, renderer, on_event=_fan_out(*listeners), live=live,
                        lock=lock, codes_retention=cfg.codes_retention, workers=workers)
    except BaseException:
        lock.release()
        osc.stop()
        if web is not None:
            web.close()
        if cluster is not None:
            cluster.close()
        raise
    bridge = Bridge(models, jobs, live, osc.send, speed=_speed(models), max_wait=cfg.max_wait)  # before jobs.start()
    bridge.midi = _open_midi(cfg, bridge)
    if web is not None:
        try:
            web.start(bridge)  # before jobs.start(): resumed jobs' events reach the page too
        except BaseException:
            web.close()
            osc.stop()
            jobs.stop()
            if cluster is not None:
                cluster.close()
            raise
    jobs.start()
    osc.start(bridge.handle)
    return Engine(osc, jobs, bridge, web, cluster)


def _speed(models: Any) -> Any:
    """This machine's measured speed for ``models`` (cached per model; the debug model's is measured every time)."""
    from engine.generate.estimate import measured_speed

    try:
        return measured_speed(models, log=log.info)
    except Exception:  # no estimate is better than no engine
        log.exception("could not measure this machine's speed; renders start without a time estimate")
        return None


def serve(cfg: ServeConfig) -> int:
    """Run until SIGINT or SIGTERM; returns the process exit code."""
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The handler only flips a flag: Event.set() there can deadlock when the signal lands while this thread is
    # inside Event.wait() holding the Event's own lock (a SIGTERM sent the moment the engine says it is serving).
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    engine = start_engine(cfg)
    host, port = engine.address
    web = f"\nweb panel: {engine.web_url}" if engine.web_url else ""
    print(f"jukebox-bridge {__version__}: serving OSC on udp://{host}:{port}, model {engine.jobs.models.name}, "
          f"renders in {cfg.render_dir}{web}\nlicence of its renders: {engine.jobs.models.licence()['licence']}",
          file=sys.stderr, flush=True)
    try:
        while not stopping:
            time.sleep(STOP_POLL_SECONDS)
    finally:
        engine.stop()
    return 0
