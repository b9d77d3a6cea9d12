"""The Jukebox Bridge OSC protocol as data: verbs, replies, limits, error codes, and validation.

``docs/osc-protocol.md`` is the human contract; ``VERBS`` and ``REPLIES`` here are its source of truth
and a test checks the two against each other. This module opens no sockets: ``parse_request`` turns an
OSC address and argument list into a typed ``Request`` (or raises ``ProtocolError`` carrying the code
and, when it could be read, the reply port), and ``reply`` builds type-checked outgoing messages.
Render fields are validated by ``RenderRequest.from_fields``, the engine's single validator.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from dataclasses import dataclass
from typing import Any, Callable

from engine.errors import ErrorCode, RequestError
from engine.jobs.records import MAX_QUEUED
from engine.request import MODES, RenderRequest, text_problem

PROTOCOL_VERSION = 1  # what a client speaks unless its hello asks for another of PROTOCOLS
PROTOCOLS = (1, 2)  # 2: ``done`` adds exact integer frame counts (hello {"protocol": 2})
PREFIX = "/jukebox/"
DEFAULT_PORT = 9130
DEFAULT_WEB_PORT = 9131  # the web panel (bridge/web.py), TCP on the same address
DEFAULT_LISTEN = "127.0.0.1"
MAX_PACKET = 64 * 1024  # bytes in one UDP datagram
MAX_PARAMS_JSON = 16 * 1024  # bytes of the JSON params string
MAX_REQUEST_ID = 128  # characters
RATE_LIMIT = 200  # requests per second per client (sending host and port)
QUEUE_LIMIT = MAX_QUEUED
MAX_PAGE = 200  # names in one artists/genres reply

ERROR_CODES: tuple[str, ...] = tuple(ErrorCode)  # engine/errors.py, shared with the engine


class ProtocolError(Exception):
    """A request that cannot be served; ``reply_port`` is None when not even that could be read.
    ``authenticated``: the token was checked (or none is needed) before this error was found."""

    def __init__(self, code: str, message: str, reply_port: int | None = None, request_id: str = "",
                 authenticated: bool = False) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code, self.message, self.reply_port, self.request_id = code, message, reply_port, request_id
        self.authenticated = authenticated


# ---------------------------------------------------------------- typed params, one dataclass per verb shape

@dataclass(frozen=True)
class NoParams:
    pass


@dataclass(frozen=True)
class HelloParams:
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class SearchParams:
    query: str = ""
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True)
class CancelParams:
    job_id: str | None = None
    all: bool = False


@dataclass(frozen=True)
class StatusParams:
    job_id: str | None = None


@dataclass(frozen=True)
class SetParams:
    name: str
    value: float | str


@dataclass(frozen=True)
class LearnParams:
    name: str


@dataclass(frozen=True)
class AuditionParams:
    job_id: str
    take: int = 1


# field -> (accepted python types, check, the allowed values in words); shared by every verb that takes it
_FIELD_RULES: dict[str, tuple[tuple[type, ...], Callable[[Any], bool], str]] = {
    "query": ((str,), lambda v: len(v) <= 200, "a string of at most 200 characters"),
    "offset": ((int,), lambda v: v >= 0, "an integer, 0 or more"),
    "limit": ((int,), lambda v: 1 <= v <= MAX_PAGE, f"an integer from 1 to {MAX_PAGE}"),
    "job_id": ((str,), lambda v: 0 < len(v) <= 64, "a job id string"),
    "all": ((bool,), lambda v: True, "true or false"),
    "name": ((str,), lambda v: 0 < len(v) <= 64, "a parameter name"),
    "value": ((int, float, str), lambda v: not isinstance(v, str) or len(v) <= 200, "a number or a short string"),
    "take": ((int,), lambda v: 1 <= v <= 8, "an integer from 1 to 8"),
    "protocol": ((int,), lambda v: v in PROTOCOLS, " or ".join(map(str, PROTOCOLS))),
}

# ---------------------------------------------------------------- the tables


@dataclass(frozen=True)
class ReplySpec:
    address: str
    args: tuple[tuple[str, str], ...]  # (name, OSC type tag; "f|s" = either)
    protocol1: int | None = None  # protocol-1 clients get only the first this many arguments (None: all)


@dataclass(frozen=True)
class Verb:
    name: str
    params: type  # the params dataclass; RenderRequest for the render verbs
    replies: tuple[str, ...]  # reply addresses besides /jukebox/error

    @property
    def address(self) -> str:
        return PREFIX + self.name

    @property
    def renders(self) -> bool:
        return self.params is RenderRequest


def _r(name: str, *args: str, protocol1: int | None = None) -> ReplySpec:
    return ReplySpec(PREFIX + name, tuple(tuple(a.split(":")) for a in args), protocol1)  # type: ignore[misc]


REPLIES: dict[str, ReplySpec] = {r.address: r for r in (
    _r("hello", "request_id:s", "version:s", "protocol:i"),
    _r("pong", "request_id:s", "version:s"),
    _r("info", "request_id:s", "json:s"),
    _r("artists", "request_id:s", "json:s"),
    _r("genres", "request_id:s", "json:s"),
    _r("accepted", "request_id:s", "job_id:s"),
    _r("warning", "job_id:s", "message:s"),
    _r("progress", "job_id:s", "fraction:f", "stage:s", "eta_seconds:f"),
    _r("done", "job_id:s", "take:i", "path:s", "position:f", "length:f", "position_frames:h", "length_frames:h",
       protocol1=5),
    _r("finished", "job_id:s", "state:s", "takes:i"),
    _r("error", "id:s", "code:s", "message:s"),
    _r("cancelled", "request_id:s", "n_cancelled:i"),
    _r("status", "request_id:s", "json:s"),
    _r("param", "name:s", "value:f|s"),
    _r("learning", "request_id:s", "name:s"),
    _r("learned", "name:s", "channel:i", "control:i"),
    _r("auditioning", "request_id:s", "job_id:s", "take:i"),
    _r("engine", "state:s", "version:s"),
)}

_JOB_EVENTS = tuple(PREFIX + r for r in ("accepted", "progress", "done", "finished"))
VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("hello", HelloParams, (PREFIX + "hello", PREFIX + "engine")),
    Verb("ping", NoParams, (PREFIX + "pong",)),
    Verb("info", NoParams, (PREFIX + "info",)),
    Verb("artists", SearchParams, (PREFIX + "artists",)),
    Verb("genres", SearchParams, (PREFIX + "genres",)),
    *(Verb(mode, RenderRequest, _JOB_EVENTS) for mode in MODES),
    Verb("cancel", CancelParams, (PREFIX + "cancelled", PREFIX + "finished")),
    Verb("status", StatusParams, (PREFIX + "status",)),
    Verb("set", SetParams, (PREFIX + "param",)),
    Verb("learn", LearnParams, (PREFIX + "learning", PREFIX + "learned")),
    Verb("audition", AuditionParams, (PREFIX + "auditioning",)),
)}
CAPABILITIES: tuple[str, ...] = tuple(VERBS)
RENDER_VERBS: tuple[str, ...] = tuple(v.name for v in VERBS.values() if v.renders)
# verb -> the reply that answers it and echoes its request id first (render verbs: ``accepted``; ``set``
# is answered by the ``param`` broadcast, which names the parameter instead).
REQUEST_REPLY: dict[str, str] = {
    v.name: v.replies[0] for v in VERBS.values()
    if not v.renders and REPLIES[v.replies[0]].args[0][0] == "request_id"}

# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    verb: str
    reply_port: int
    request_id: str
    params: Any  # the verb's params dataclass, or a RenderRequest
    given: frozenset[str] = frozenset()  # the params fields the client sent (live values fill the rest)


def parse_request(address: str, args: list[Any], token: str | None = None) -> Request:
    """Validate one message: reply port, request id, token, verb, then the params JSON."""
    if not args or type(args[0]) is not int or not 1 <= args[0] <= 65535:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "the first argument must be the reply port (int 1..65535)")
    port = args[0]
    rid = args[1] if len(args) > 1 else None
    if type(rid) is int:  # Max sends a numeric-looking symbol as an int
        rid = str(rid)
    if not isinstance(rid, str) or len(rid) > MAX_REQUEST_ID:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"the second argument must be the request id "
                            f"(a string of at most {MAX_REQUEST_ID} characters)", port)
    rest = list(args[2:])
    if token is not None:
        given = rest.pop() if rest else None
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "missing or wrong token (the last argument)", port, rid)
    verb = VERBS.get(address[len(PREFIX):]) if address.startswith(PREFIX) else None
    if verb is None:
        raise ProtocolError(ErrorCode.UNKNOWN_VERB,
                            f"no such address {address[:80]!r}; verbs: {', '.join(CAPABILITIES)}",
                            port, rid, authenticated=True)
    try:
        fields = _fields(rest)
        given = frozenset(k for k, v in fields.items() if v is not None)
        return Request(verb.name, port, rid, _params(verb, fields), given)
    except RequestError as exc:
        raise ProtocolError(exc.code, str(exc), port, rid, authenticated=True) from None
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.message, port, rid, authenticated=True) from None


def _fields(rest: list[Any]) -> dict[str, Any]:
    """The optional params argument: one JSON object string."""
    if len(rest) > 1:
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            f"too many arguments ({len(rest) + 2}): expected reply_port, request_id, "
                            "params (and the token last, only when the engine has one)")
    if not rest or rest[0] == "":
        return {}
    if not isinstance(rest[0], str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"params must be a JSON object string; got {type(rest[0]).__name__}")
    if len(rest[0].encode()) > MAX_PARAMS_JSON:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"params JSON is larger than {MAX_PARAMS_JSON} bytes")
    return json_object(rest[0], "params")


def json_object(text: str | bytes, what: str) -> dict[str, Any]:
    """One JSON object (OSC's params string, the web panel's request body), without NaN or Infinity;
    ``ProtocolError`` (bad_request) naming ``what`` otherwise."""
    try:
        fields = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{what} is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(fields, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{what} must be a JSON object; got {type(fields).__name__}")
    return fields


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def verb_params(verb: str, fields: dict[str, Any]) -> Any:
    """``fields`` (a JSON object's values) as ``verb``'s params dataclass, checked as OSC checks them (the web panel
    takes the same fields); raises ``RequestError``."""
    return _params(VERBS[verb], fields)


def _params(verb: Verb, fields: dict[str, Any]) -> Any:
    if verb.renders:
        return RenderRequest.from_fields(verb.name, fields)
    known = {f.name: f for f in dataclasses.fields(verb.params)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        accepted = ", ".join(known) or "none"
        raise RequestError(ErrorCode.UNKNOWN_FIELD,
                           f"{verb.name} does not take {', '.join(unknown)}; accepted: {accepted}",
                           unknown[0])
    for name, f in known.items():
        if name not in fields and f.default is dataclasses.MISSING:
            raise RequestError(ErrorCode.BAD_VALUE, f"{verb.name} needs {name} ({_FIELD_RULES[name][2]})", name)
    values = {name: _check(name, value) for name, value in fields.items() if value is not None}
    params = verb.params(**values)
    if isinstance(params, CancelParams) and (params.job_id is None) == (not params.all):
        raise RequestError(ErrorCode.BAD_VALUE, 'cancel needs either job_id or "all": true', "job_id")
    return params


def _check(name: str, value: Any) -> Any:
    types, ok, allowed = _FIELD_RULES[name]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types) or not ok(value):
        raise RequestError(ErrorCode.BAD_VALUE, f"{name} must be {allowed}; got {value!r:.80}", name)
    if isinstance(value, str) and (problem := text_problem(value)):
        raise RequestError(ErrorCode.BAD_VALUE, f"{name} must be {allowed} without control characters; it has "
                           f"{problem}", name)
    return value


# ---------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    address: str
    args: tuple[tuple[str, Any], ...]  # (OSC type tag, value)


def reply(name: str, *values: Any, protocol: int = max(PROTOCOLS)) -> Reply:
    """A reply checked against ``REPLIES``: right count, each value converted to its OSC type. For a ``protocol``-1
    client, a reply that grew in protocol 2 is cut to its protocol-1 arguments."""
    spec = REPLIES[PREFIX + name]
    if len(values) not in (len(spec.args), spec.protocol1):
        raise TypeError(f"{spec.address} takes {len(spec.args)} arguments, got {len(values)}")
    if protocol < 2 and spec.protocol1 is not None:
        values = values[: spec.protocol1]
    return Reply(spec.address, tuple(_typed(tag, v) for (_, tag), v in zip(spec.args, values)))


def _typed(tag: str, value: Any) -> tuple[str, Any]:
    if tag == "f|s":
        tag = "s" if isinstance(value, str) else "f"
    if tag == "s":  # JSON may carry NULs (they end an OSC string) and lone surrogates (not UTF-8)
        return "s", str(value).replace("\0", "").encode("utf-8", "replace").decode("utf-8")
    if tag in ("i", "h"):  # h: int64, for counts that outgrow 32 bits (frames at 384 kHz after 93 minutes)
        return tag, int(value)
    return "f", float(value)


def error(id_: str, code: str, message: str) -> Reply:
    assert code in ERROR_CODES, code
    return reply("error", id_, code, message[:1000])


def to_json(obj: Any) -> str:
    """The compact JSON carried in info/status/artists/genres replies."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
