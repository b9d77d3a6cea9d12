"""OSC over UDP: one socket, one receive thread, python-osc for the bytes, ``protocol`` for the rules.

python-osc's ``Dispatcher`` silently drops packets it cannot parse; the protocol instead answers every
failure with ``/jukebox/error`` when a reply port can be read, and rate-limits and checks the token
before dispatching. So this module parses with ``OscPacket`` (bundles included) and builds with
``OscMessageBuilder``, and routes by exact address to one handler. Replies go to the sender's host at
the request's ``reply_port`` (Max's ``udpreceive`` cannot learn a sender's port). Nothing a client sends
can stop the receive thread: every exception becomes an error reply or a log line.
"""

from __future__ import annotations

import logging
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
    """python-osc logs every unknown type tag on the root logger; a fuzzing client would flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unhandled parameter type")


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
        self._dropped, self._last_drop_log = 0, 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        logging.getLogger().addFilter(_QUIET)  # adding the same filter twice is a no-op

    def start(self, handler: Handler) -> None:
        self.handler = handler
        self._thread = threading.Thread(target=self._serve, name="osc-receive", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2.0)
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
                log.exception("unexpected error handling a packet from %s", sender)

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        host = sender[0]
        if not self._limiter.allow(sender[:2]):
            port, rid = salvage(data)
            now = time.monotonic()
            if len(self._busy_told) > 4096:
                self._busy_told.clear()
            if port is not None and now - self._busy_told.get(sender[:2], 0.0) >= 1.0:  # say it once a second
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
            self._dispatch(message.address, list(message.params), host)

    def _dispatch(self, address: str, args: list[Any], host: str) -> None:
        try:
            request = protocol.parse_request(address, args, self.token)
        except ProtocolError as exc:
            if exc.reply_port is None:
                return self._drop((host, 0), f"{exc.code}: {exc.message}")
            return self.send(host, exc.reply_port, protocol.error(exc.request_id, exc.code, exc.message))
        try:
            replies = self.handler(request, host) if self.handler else []
        except RequestError as exc:
            replies = [protocol.error(request.request_id, exc.code, str(exc))]
        except Exception as exc:
            log.exception("internal error in %s from %s", address, host)
            replies = [protocol.error(request.request_id, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")]
        for reply in replies:
            self.send(host, request.reply_port, reply)

    def _malformed(self, data: bytes, sender: tuple[str, int], why: str) -> None:
        port, rid = salvage(data)
        if port is None:
            return self._drop(sender, why)
        self.send(sender[0], port, protocol.error(rid, ErrorCode.BAD_REQUEST, why))

    def _drop(self, sender: tuple[str, int], why: str) -> None:
        """Log unanswerable packets without letting a flood flood the log: one summary per 10 s."""
        self._dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_SECONDS:
            log.warning("dropped %d unanswerable packet(s); latest from %s: %s", self._dropped, sender[0], why)
            self._dropped, self._last_drop_log = 0, now
