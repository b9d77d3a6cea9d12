"""Follow one engine request from the command line, for DAW scripts that cannot open sockets.

REAPER's Lua has no sockets. A ReaScript therefore starts ``jukebox-bridge request VERB --json ...
--status-file PATH`` in the background (``reaper.ExecProcess(cmd, -2)``) and polls PATH from its defer
loop. This module sends the OSC request of docs/osc-protocol.md from its own reply port, listens for
the replies and keeps rewriting PATH atomically (temp file + rename), so a reader never sees half a file:

    {"state": "accepted" | "running" | "done" | "failed" | "cancelled",
     "verb": str, "request_id": str, "job_id": str | null,
     "fraction": 0..1, "stage": str, "eta": seconds | null,
     "takes": [{"take": int, "path": str, "position": float, "length": float}],
     "error": {"code": str, "message": str} | null,
     "reply": null | {"address": str, "args": [...], "data": <parsed JSON argument, if any>},
     "warnings": [str],  (an accepted request's caveats, e.g. a truncated source sent with allow_truncated)
     "heartbeat": <Unix time of this write>}

Render verbs (continue, prime, rerender, generate) write ``accepted`` once the engine takes the job, then
``running`` with progress, then one final state. Other verbs (cancel, status, info, ...) write ``done``
with the engine's ``reply``, or ``failed``. The status file is written only once there is something
to say (acceptance, or a failure), and the process exits once the state is final. While a job runs the
file is rewritten at least every ``Timeouts.heartbeat`` seconds even when nothing changed, so a reader
that sees it unchanged for much longer knows the client is gone (killed, crashed, machine asleep).

If no engine answers a ping within ``Timeouts.connect`` the request is not sent and the status is
``failed`` with ``error.code == "engine_unreachable"``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from engine.errors import ErrorCode, LocalErrorCode

from . import protocol
from .protocol import DEFAULT_PORT, PREFIX

# The protocol's own tables (bridge/protocol.py imports no torch, so this per-job process starts fast).
DEFAULT_HOST = protocol.DEFAULT_LISTEN
RENDER_VERBS = frozenset(protocol.RENDER_VERBS)
REPLY_ADDRESS = protocol.REQUEST_REPLY  # verb -> the reply that answers it, echoing the request id first
TERMINAL_STATES = frozenset({"done", "failed", "cancelled"})


def _address(name: str) -> str:
    return protocol.REPLIES[PREFIX + name].address  # a KeyError at import if the protocol drops the reply


ACCEPTED, PROGRESS, DONE, FINISHED, ERROR, PARAM, STATUS, WARNING = map(
    _address, ("accepted", "progress", "done", "finished", "error", "param", "status", "warning"))
EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 3
RECEIVE_SLICE = 0.25  # seconds per socket wait; bounds how late a timeout is noticed
REPLACE_RETRIES = 20  # Windows refuses to replace a file another process has open; retry briefly


@dataclass(frozen=True)
class Timeouts:
    connect: float = 3.0  # an engine must answer a ping within this, or the request is not sent
    reply: float = 5.0  # the engine must accept (or refuse) a request within this
    idle: float = 30.0  # silence from the engine about a running job before giving up
    probe: float = 5.0  # silence before asking the engine for the job's status
    resend: float = 0.5  # gap between pings (and between resends of idempotent requests)
    error_grace: float = 2.0  # after a job error, how long to wait for its "finished"
    heartbeat: float = 2.0  # the status file is rewritten at least this often while a job runs


@dataclass
class Take:
    take: int
    path: str
    position: float
    length: float


@dataclass
class Status:
    verb: str
    request_id: str
    state: str = "accepted"
    job_id: str | None = None
    fraction: float = 0.0
    stage: str = ""
    eta: float | None = None
    takes: list[Take] = field(default_factory=list)
    error: dict[str, str] | None = None
    reply: dict[str, Any] | None = None
    heartbeat: float | None = None  # Unix time of the latest write of the status file
    warnings: list[str] = field(default_factory=list)  # what the engine accepted with a caveat (a truncated source)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def fail(self, code: str, message: str) -> "Status":
        self.state, self.error = "failed", {"code": code, "message": message}
        return self

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["takes"] = [asdict(t) for t in sorted(self.takes, key=lambda t: t.take)]
        return out

    @property
    def exit_code(self) -> int:
        return {"done": EXIT_DONE, "cancelled": EXIT_CANCELLED}.get(self.state, EXIT_FAILED)


class StatusFile:
    """Writes the status JSON atomically: a temp file in the same folder, then ``os.replace``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, status: Status) -> None:
        if self.path is None:
            return
        status.heartbeat = time.time()
        text = json.dumps(status.to_json(), ensure_ascii=True, allow_nan=False)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="ascii")
        for attempt in range(REPLACE_RETRIES):
            try:
                os.replace(tmp, self.path)
                return
            except PermissionError:  # Windows: the DAW is reading the file right now
                if attempt == REPLACE_RETRIES - 1:
                    raise
                time.sleep(0.01)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class OscLink:
    """One UDP socket: sends ``/jukebox/<verb>`` requests and receives replies on its own port."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.address = (socket.gethostbyname(host), port)
        self.token = token
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if _is_loopback(host) else "0.0.0.0", 0))
        self.reply_port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def send(self, verb: str, request_id: str, params: dict[str, Any] | None = None) -> None:
        builder = OscMessageBuilder(address=PREFIX + verb)
        builder.add_arg(self.reply_port, "i")
        builder.add_arg(request_id, "s")
        builder.add_arg(json.dumps(params or {}, allow_nan=False), "s")
        if self.token:
            builder.add_arg(self.token, "s")
        try:
            self.sock.sendto(builder.build().dgram, self.address)
        except OSError:  # e.g. ICMP "port unreachable" reported on a later send; the timeout decides
            pass

    def receive(self, timeout: float) -> list[tuple[str, list[Any]]]:
        """Messages of the next datagram (bundles flattened), or [] after ``timeout`` seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, _ = self.sock.recvfrom(65536)
        except (socket.timeout, ConnectionResetError, OSError):
            return []
        try:
            return [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]
        except ParseError:
            return []


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


def _unreachable_message(link: OscLink, seconds: float) -> str:
    host, port = link.address
    return (f"No Jukebox engine answered at {host}:{port} within {seconds:g} s. Start it "
            f"(jukebox-bridge serve, or ./jb run) and check the engine host and port in the settings.")


def _wait_for(link: OscLink, match: Callable[[str, list[Any]], bool], seconds: float,
              clock: Callable[[], float], resend: Callable[[], None] | None = None,
              resend_every: float = 0.5) -> tuple[str, list[Any]] | None:
    """The first message ``match`` accepts within ``seconds``, calling ``resend`` every ``resend_every``."""
    deadline = clock() + seconds
    next_send = clock() + resend_every
    while (now := clock()) < deadline:
        for address, args in link.receive(min(RECEIVE_SLICE, deadline - now, max(next_send - now, 0.001))):
            if match(address, args):
                return address, args
        if resend is not None and clock() >= next_send:
            resend()
            next_send = clock() + resend_every
    return None


def _is_reply_to(request_id: str, address: str, args: list[Any]) -> bool:
    return len(args) >= 1 and args[0] == request_id and address.startswith(PREFIX)


def _error_of(args: list[Any]) -> dict[str, str]:
    code = str(args[1]) if len(args) > 1 else ErrorCode.INTERNAL
    message = str(args[2]) if len(args) > 2 else "the engine reported an error without a message"
    return {"code": code, "message": message}


def engine_answers(link: OscLink, timeouts: Timeouts, clock: Callable[[], float] = time.monotonic) -> bool:
    """Ping until a pong (or any reply to the ping, even an error) arrives, for ``timeouts.connect`` s."""
    rid = new_request_id()
    link.send("ping", rid)
    reply = _wait_for(link, lambda a, args: _is_reply_to(rid, a, args), timeouts.connect, clock,
                      resend=lambda: link.send("ping", rid), resend_every=timeouts.resend)
    return reply is not None


def _parse_reply(address: str, args: list[Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {"address": address, "args": args[1:]}
    for arg in args[1:]:
        if isinstance(arg, str) and arg[:1] in "{[":
            try:
                reply["data"] = json.loads(arg)
                break
            except ValueError:
                pass
    return reply


def simple_request(link: OscLink, verb: str, params: dict[str, Any], status: Status, timeouts: Timeouts,
                   clock: Callable[[], float] = time.monotonic) -> Status:
    """A verb with one reply: resend until the engine answers (these verbs are idempotent)."""
    expected = REPLY_ADDRESS.get(verb)

    def match(address: str, args: list[Any]) -> bool:
        if verb == "set" and address == PARAM:  # broadcast: echoes the name, not the request id
            return bool(args) and args[0] == params.get("name")
        return _is_reply_to(status.request_id, address, args) and (
            expected is None or address in (expected, ERROR))

    if verb == "set":  # /jukebox/param goes to registered clients only
        link.send("hello", new_request_id())
    link.send(verb, status.request_id, params)
    got = _wait_for(link, match, timeouts.connect, clock,
                    resend=lambda: link.send(verb, status.request_id, params), resend_every=timeouts.resend)
    if got is None:
        return status.fail(LocalErrorCode.ENGINE_UNREACHABLE, _unreachable_message(link, timeouts.connect))
    address, args = got
    if address == ERROR:
        err = _error_of(args)
        return status.fail(err["code"], err["message"])
    status.state, status.fraction, status.reply = "done", 1.0, _parse_reply(address, args)
    return status


class JobFollower:
    """Applies the replies about one accepted job to its ``Status``; knows nothing of sockets."""

    def __init__(self, status: Status) -> None:
        self.status = status
        self.pending_error: dict[str, str] | None = None

    def apply(self, address: str, args: list[Any]) -> bool:
        """Update the status from one message; True if the message was about this job."""
        s = self.status
        if not args or args[0] != s.job_id:
            return False
        if address == PROGRESS and len(args) >= 4:
            s.state, s.fraction, s.stage = "running", float(args[1]), str(args[2])
            s.eta = float(args[3]) if float(args[3]) >= 0 else None
        elif address == DONE and len(args) >= 5:
            take = Take(int(args[1]), str(args[2]), float(args[3]), float(args[4]))
            s.takes = [t for t in s.takes if t.take != take.take] + [take]
            s.state = "running"
        elif address == FINISHED and len(args) >= 2:
            self.finish(str(args[1]))
        elif address == ERROR:
            self.pending_error = _error_of(args)
        elif address == WARNING and len(args) >= 2:
            s.warnings.append(str(args[1]))
        else:
            return False
        return True

    def finish(self, state: str, error: dict[str, str] | None = None) -> None:
        s = self.status
        error = error or self.pending_error
        if state == "done" and s.takes:
            s.state, s.fraction, s.eta, s.error = "done", 1.0, 0.0, None
        elif state == "done":
            s.fail(ErrorCode.RENDER_FAILED, "the engine finished the job without any take")
        elif state == "cancelled":
            s.state, s.error = "cancelled", {"code": ErrorCode.CANCELLED, "message": "the job was cancelled"}
        else:
            s.fail(*(error["code"], error["message"]) if error else (ErrorCode.RENDER_FAILED, "the job failed"))

    def adopt_summary(self, data: Any) -> None:
        """Use a ``status`` reply to recover a lost ``done``/``finished`` packet."""
        if not isinstance(data, dict) or data.get("state") not in TERMINAL_STATES:
            return
        for t in data.get("takes") if isinstance(data.get("takes"), list) else []:
            if isinstance(t, dict) and not any(x.take == t.get("take") for x in self.status.takes):
                self.status.takes.append(Take(int(t["take"]), str(t["path"]), float(t["position"]),
                                              float(t["length"])))
        err = data.get("error")
        self.finish(data["state"], err if isinstance(err, dict) and "code" in err else None)


def follow_job(link: OscLink, verb: str, params: dict[str, Any], status: Status, out: StatusFile,
               timeouts: Timeouts, clock: Callable[[], float] = time.monotonic) -> Status:
    """Ping, send a render request, then follow the job to its end, rewriting the status file."""
    if not engine_answers(link, timeouts, clock):
        return status.fail(LocalErrorCode.ENGINE_UNREACHABLE, _unreachable_message(link, timeouts.connect))
    link.send(verb, status.request_id, params)
    got = _wait_for(link, lambda a, args: _is_reply_to(status.request_id, a, args)
                    and a in (ACCEPTED, ERROR), timeouts.reply, clock)
    if got is None:
        return status.fail(LocalErrorCode.NO_REPLY,
                           f"the engine did not accept the {verb} request within {timeouts.reply:g} s")
    if got[0] == ERROR:
        err = _error_of(got[1])
        return status.fail(err["code"], err["message"])
    status.job_id, status.state = str(got[1][1]), "accepted"
    out.write(status)
    return _follow_accepted(link, status, out, timeouts, clock)


def _follow_accepted(link: OscLink, status: Status, out: StatusFile, timeouts: Timeouts,
                     clock: Callable[[], float]) -> Status:
    follower = JobFollower(status)
    heard = clock()
    written = clock()
    probe_id: str | None = None
    error_since: float | None = None
    while not status.finished:
        changed = False
        for address, args in link.receive(RECEIVE_SLICE):
            if follower.apply(address, args):
                heard, changed = clock(), True
            elif probe_id and _is_reply_to(probe_id, address, args):
                heard, probe_id = clock(), None
                if address == STATUS:
                    follower.adopt_summary(_parse_reply(address, args).get("data"))
                elif address == ERROR and _error_of(args)["code"] == ErrorCode.UNKNOWN_JOB:
                    status.fail(LocalErrorCode.ENGINE_LOST,
                                f"the engine no longer knows job {status.job_id} (was it restarted?)")
                changed = True
        if follower.pending_error is not None and not status.finished:
            error_since = error_since if error_since is not None else clock()
            if clock() - error_since > timeouts.error_grace:
                follower.finish("failed")
                changed = True
        silent = clock() - heard
        if not status.finished and silent > timeouts.idle:
            status.fail(LocalErrorCode.ENGINE_LOST, f"the engine stopped answering about job {status.job_id} "
                                       f"(nothing for {timeouts.idle:g} s); is it still running?")
        elif not status.finished and silent > timeouts.probe and probe_id is None:
            probe_id = new_request_id()
            link.send("status", probe_id, {"job_id": status.job_id})
        if not status.finished and (changed or clock() - written >= timeouts.heartbeat):
            out.write(status)  # news, or the heartbeat: the reader sees this client is alive
            written = clock()
    return status


def run_request(verb: str, params: dict[str, Any], *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                status_path: Path | None = None, token: str | None = None, timeouts: Timeouts = Timeouts(),
                clock: Callable[[], float] = time.monotonic) -> Status:
    """Send one request and follow it to its end; the final status is also written to ``status_path``."""
    status = Status(verb=verb, request_id=new_request_id())
    out = StatusFile(status_path)
    try:
        link = OscLink(host, port, token)
    except OSError as e:
        status.fail(LocalErrorCode.ENGINE_UNREACHABLE, f"cannot reach {host}:{port}: {e}")
    else:
        try:
            if verb in RENDER_VERBS:
                follow_job(link, verb, params, status, out, timeouts, clock)
            else:
                simple_request(link, verb, params, status, timeouts, clock)
        except KeyboardInterrupt:
            status.fail(LocalErrorCode.CLIENT_STOPPED, "the client was stopped before the job finished")
        finally:
            link.close()
    out.write(status)
    return status


def parse_params(text: str) -> dict[str, Any]:
    """``--json`` value: a JSON object, or ``@path`` of a file holding one (avoids shell quoting)."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    params = json.loads(text)
    if not isinstance(params, dict):
        raise ValueError("--json must be a JSON object, e.g. '{\"source\": \"/path/song.wav\"}'")
    return params


def request_main(verb: str, params_text: str, host: str, port: int, status_path: Path | None,
                 token: str | None, timeouts: Timeouts) -> int:
    """The ``jukebox-bridge request`` command: prints the final status JSON, returns the exit code."""
    status = Status(verb=verb, request_id=new_request_id())
    try:
        params = parse_params(params_text)
    except (OSError, ValueError) as e:
        status.fail(ErrorCode.BAD_REQUEST, f"cannot read the request parameters: {e}")
        StatusFile(status_path).write(status)
        print(json.dumps(status.to_json()))
        return EXIT_USAGE
    status = run_request(verb, params, host=host, port=port, status_path=status_path, token=token,
                         timeouts=timeouts)
    print(json.dumps(status.to_json()))
    return status.exit_code
