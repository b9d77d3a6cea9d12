"""OSC over UDP: one socket, one receive thread, python-osc for the bytes, ``protocol`` for the rules.

python-osc's ``Dispatcher`` silently drops packets it cannot parse; the protocol instead answers every
failure with ``/jukebox/error`` when a reply port can be read, and rate-limits and checks the token
before dispatching. So this module parses with ``OscPacket`` (bundles included) and builds with
``OscMessageBuilder``, and routes by exact address to one handler. Replies go to the sender's host at
the request's ``reply_port`` (Max's ``udpreceive`` cannot learn a sender's port). Nothing a client sends
can stop the receive thread: every exception becomes an error reply or a log line.

Two threads: the receive thread only reads, rate-limits, parses and authenticates packets; a handler
thread runs the verbs (journal writes, file checks, audition) and sends every reply, in the order the
requests came. So a slow disk never delays reading the socket, and pings are answered while a render
is being submitted.

No amplification before authentication. When a token is required, a packet that does not carry it (or
cannot be parsed far enough to show it) gets at most one small ``unauthorized`` reply per source address
per second, and a bundle stops at its first such message. Log lines from the network path are capped in
length and rate-limited, and python-osc's warnings that would quote a packet are dropped.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from typing import Any, Callable

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from pythonosc.parsing import osc_types

from engine.errors import ErrorCode, RequestError

from . import protocol
from .protocol import ProtocolError, Reply, Request

log = logging.getLogger(__name__)

Handler = Callable[[Request, str], list[Reply]]  # (request, sender host) -> replies to host:reply_port
MAX_REPLY = 65000  # bytes: a reply must fit one UDP datagram
DROP_LOG_SECONDS = 10.0
MAX_PENDING = 1024  # requests parsed but not yet handled; beyond that a sender is told busy
LOG_LINES, LOG_WINDOW, LOG_LINE_CHARS = 20, 10.0, 300  # network-path log lines: 20 per 10 s, 300 characters each
PREAUTH_REPLY_SECONDS = 1.0  # an unauthenticated source hears from the engine at most this often


class RateLimiter:
    """A token bucket per client: ``rate`` requests per second, bursts up to ``rate``."""

    def __init__(self, rate: float, max_clients: int = 4096) -> None:
        self.rate, self.max_clients = rate, max_clients
        self._buckets: dict[Any, tuple[float, float]] = {}  # key -> (tokens, last time)

    def allow(self, key: Any, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        if len(self._buckets) >= self.max_clients and key not in self._buckets:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 1.0}  # forget idle clients
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


def salvage(data: bytes) -> tuple[int | None, str]:
    """(reply_port, request_id) from a packet too broken to parse, so the error can still be answered."""
    try:
        _, i = osc_types.get_string(data, 0)
        tags, i = osc_types.get_string(data, i)
        if not tags.startswith(",i"):
            return None, ""
        port, i = osc_types.get_int(data, i)
        if not 1 <= port <= 65535:
            return None, ""
        rid = ""
        if tags[2:3] == "s":
            try:
                rid = osc_types.get_string(data, i)[0][: protocol.MAX_REQUEST_ID]
            except Exception:
                pass
        return port, rid
    except Exception:
        return None, ""


def encode(reply: Reply) -> bytes:
    builder = OscMessageBuilder(reply.address)
    for tag, value in reply.args:
        builder.add_arg(value, tag)
    return builder.build().dgram


class _QuietUnknownTypes(logging.Filter):
    """python-osc logs every unknown type tag, and every bundle element it cannot identify with the element's
    bytes (up to 260 KB a line), on the root logger: a hostile client would fill the disk with the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Unhandled parameter type", "Could not identify content type"))


class NetLog:
    """Log lines from the network path: each cut to ``LOG_LINE_CHARS``, at most ``LOG_LINES`` per ``LOG_WINDOW``
    seconds; the next line that gets through says how many were held back."""

    def __init__(self, logger: logging.Logger, lines: int = LOG_LINES, window: float = LOG_WINDOW) -> None:
        self.logger, self.lines, self.window = logger, lines, window
        self._start, self._count, self._held = float("-inf"), 0, 0
        self._lock = threading.Lock()

    def __call__(self, level: int, message: str, *args: Any, exc_info: bool = False) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._start >= self.window:
                self._start, self._count = now, 0
            if self._count >= self.lines:
                self._held += 1
                return False
            self._count += 1
            held, self._held = self._held, 0
        try:
            text = message % args if args else message
        except (TypeError, ValueError):
            text = f"{message} {args!r}"
        text = text if len(text) <= LOG_LINE_CHARS else text[:LOG_LINE_CHARS] + f"... ({len(text)} characters)"
        if held:
            text += f" [{held} similar line(s) held back]"
        self.logger.log(level, "%s", text, exc_info=exc_info)
        return True


_QUIET = _QuietUnknownTypes()


class OscServer:
    """Receives requests on ``host:port`` and answers them; ``send`` is also used for job events."""

    def __init__(self, host: str = "127.0.0.1", port: int = protocol.DEFAULT_PORT, token: str | None = None,
                 rate: float = protocol.RATE_LIMIT) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.token, self.handler = token, None
        self._limiter = RateLimiter(rate)
        self._busy_told: dict[Any, float] = {}
        self._preauth_told: dict[str, float] = {}  # source host -> when it last got an unauthenticated reply
        self._authenticated: dict[tuple[str, int], float] = {}  # (host, reply port) -> last request with the token
        self._dropped, self._last_drop_log = 0, 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handler_thread: threading.Thread | None = None
        self._pending: queue.Queue = queue.Queue(MAX_PENDING)  # (request, host) or (host, port, reply) in order
        self.netlog = NetLog(log)
        logging.getLogger().addFilter(_QUIET)  # adding the same filter twice is a no-op

    def start(self, handler: Handler) -> None:
        self.handler = handler
        self._handler_thread = threading.Thread(target=self._handle_pending, name="osc-handler", daemon=True)
        self._handler_thread.start()
        self._thread = threading.Thread(target=self._serve, name="osc-receive", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2.0)
        if self._handler_thread:
            self._handler_thread.join(5.0)
        self.sock.close()

    def send(self, host: str, port: int, reply: Reply) -> None:
        try:
            data = encode(reply)
            if len(data) > MAX_REPLY:
                data = encode(protocol.error(str(reply.args[0][1]) if reply.args else "", ErrorCode.INTERNAL,
                                             f"the {reply.address} reply is too large for one UDP packet"))
            self.sock.sendto(data, (host, port))
        except OSError as exc:  # the client went away or the engine is stopping
            log.debug("could not send %s to %s:%s: %s", reply.address, host, port, exc)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(protocol.MAX_PACKET + 1)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            try:
                self.handle_datagram(data, sender)
            except Exception:  # belt and braces: the receive loop never dies
                self.netlog(logging.ERROR, "unexpected error handling a packet from %s", sender, exc_info=True)

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        """Receive thread: rate limit, parse, authenticate; the requests go to the handler thread."""
        host = sender[0]
        if not self._limiter.allow(sender[:2]):
            port, rid = salvage(data)
            now = time.monotonic()
            if len(self._busy_told) > 4096:
                self._busy_told.clear()
            # say it once a second; with a token, only to a client that sent it lately (no reply before auth)
            known = self.token is None or now - self._authenticated.get((host, port), float("-inf")) < 60.0
            if port is not None and known and now - self._busy_told.get(sender[:2], 0.0) >= 1.0:
                self._busy_told[sender[:2]] = now
                self.send(host, port, protocol.error(rid, ErrorCode.BUSY, f"more than {protocol.RATE_LIMIT} "
                                                     "requests per second; slow down"))
            return self._drop(sender, "rate limit")
        if len(data) > protocol.MAX_PACKET:
            return self._malformed(data, sender, f"packet larger than {protocol.MAX_PACKET} bytes")
        try:
            messages = [m.message for m in OscPacket(data).messages]
        except Exception as exc:  # python-osc raises ParseError, but odd input can raise others
            return self._malformed(data, sender, f"not a valid OSC packet ({str(exc)[:100]})")
        for i, message in enumerate(messages):
            if i and not self._limiter.allow(sender[:2]):  # each message of a bundle is a request
                return self._drop(sender, "rate limit (bundle)")
            if not self._dispatch(message.address, list(message.params), host):
                return  # not authenticated: the rest of a bundle gets no reply at all

    def _dispatch(self, address: str, args: list[Any], host: str) -> bool:
        """Parse one message and queue it for the handler thread; False when it failed authentication."""
        try:
            request = protocol.parse_request(address, args, self.token)
        except ProtocolError as exc:
            authenticated = self.token is None or exc.authenticated
            if exc.reply_port is None:
                self._drop((host, 0), f"{exc.code}: {exc.message}")
            elif authenticated:
                self._queue((host, exc.reply_port, protocol.error(exc.request_id, exc.code, exc.message)), host)
            else:
                self._reply_before_auth(host, exc.reply_port, exc.request_id, ErrorCode.UNAUTHORIZED,
                                        "missing or wrong token (the last argument)")
            return authenticated
        if self.token is not None:
            self._authenticated[(host, request.reply_port)] = time.monotonic()
            if len(self._authenticated) > 4096:
                self._authenticated.clear()
        self._queue((request, host), host, request.reply_port, request.request_id)
        return True

    def _queue(self, item: tuple, host: str, port: int | None = None, rid: str = "") -> None:
        try:
            self._pending.put_nowait(item)
        except queue.Full:  # the handler is far behind (a stalled disk): shed load, say so once a second
            now = time.monotonic()
            if port is not None and now - self._busy_told.get((host, "pending"), 0.0) >= 1.0:
                self._busy_told[(host, "pending")] = now
                self.send(host, port, protocol.error(rid, ErrorCode.BUSY, "the engine is behind with requests; "
                                                     "retry in a moment"))
            self._drop((host, 0), "request backlog full")

    def _handle_pending(self) -> None:
        """Handler thread: runs each verb and sends its replies, in arrival order."""
        while not self._stop.is_set():
            try:
                item = self._pending.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if len(item) == 3:  # an error reply decided while parsing, kept in order with the rest
                    self.send(*item)
                else:
                    self._handle(*item)
            except Exception:  # the handler thread never dies either
                self.netlog(logging.ERROR, "unexpected error handling a request from %s", item[-1], exc_info=True)

    def _handle(self, request: Request, host: str) -> None:
        try:
            replies = self.handler(request, host) if self.handler else []
        except RequestError as exc:
            replies = [protocol.error(request.request_id, exc.code, str(exc))]
        except Exception as exc:
            self.netlog(logging.ERROR, "internal error in %s from %s", request.verb, host, exc_info=True)
            replies = [protocol.error(request.request_id, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")]
        for reply in replies:
            self.send(host, request.reply_port, reply)

    def _reply_before_auth(self, host: str, port: int, rid: str, code: str, message: str) -> None:
        """Without a token, the error as usual; with one, at most one small ``unauthorized`` per source address
        per second (smaller than the request: no amplification toward a spoofed address)."""
        if self.token is None:
            return self._queue((host, port, protocol.error(rid, code, message)), host)
        now = time.monotonic()
        if now - self._preauth_told.get(host, float("-inf")) < PREAUTH_REPLY_SECONDS:
            return self._drop((host, port), f"{code} (already told this second)")
        if len(self._preauth_told) >= 4096:
            self._preauth_told = {h: t for h, t in self._preauth_told.items() if now - t < PREAUTH_REPLY_SECONDS}
        self._preauth_told[host] = now
        self.send(host, port, protocol.error(rid[:32], ErrorCode.UNAUTHORIZED, "missing or wrong token"))

    def _malformed(self, data: bytes, sender: tuple[str, int], why: str) -> None:
        port, rid = salvage(data)
        if port is None:
            return self._drop(sender, why)
        if self.token is not None:  # unparsable, so unauthenticated
            return self._reply_before_auth(sender[0], port, rid, ErrorCode.UNAUTHORIZED, why)
        self._queue((sender[0], port, protocol.error(rid, ErrorCode.BAD_REQUEST, why)), sender[0])

    def _drop(self, sender: tuple[str, int], why: str) -> None:
        """Log unanswerable packets without letting a flood flood the log: one summary per 10 s."""
        self._dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_SECONDS:
            self.netlog(logging.WARNING, "dropped %d unanswerable packet(s); latest from %s: %s", self._dropped,
                        sender[0], why[:200])
            self._dropped, self._last_drop_log = 0, now
