"""Error codes shared by the engine, the OSC bridge and the request client (no torch, no I/O).

``ErrorCode`` is the protocol's table: every ``/jukebox/error`` carries one of these, in this order in
docs/osc-protocol.md ("Error codes"; a test checks the two). ``LocalErrorCode`` holds the codes that
never travel over OSC: the request client writes them into its status file (the engine could not be
reached, or stopped answering), REAPER's transport writes ``client_failed`` when the client cannot be
started, and batch manifests record ``write_failed``. Both are ``StrEnum``, so a member is its string
(``ErrorCode.BUSY == "busy"``, JSON and OSC carry the text).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"  # malformed message: argument count or types, JSON not an object, oversize
    UNKNOWN_VERB = "unknown_verb"
    UNKNOWN_FIELD = "unknown_field"
    BAD_VALUE = "bad_value"  # a field of the wrong type or out of range
    SOURCE_NOT_FOUND = "source_not_found"
    NOT_AUDIO = "not_audio"  # not readable audio, or the region lies outside it
    UNKNOWN_LABEL = "unknown_label"
    UNAUTHORIZED = "unauthorized"
    BUSY = "busy"  # the queue is full or the client sends too fast
    UNKNOWN_JOB = "unknown_job"
    CANCELLED = "cancelled"
    RENDER_FAILED = "render_failed"
    TOO_LONG = "too_long"  # the estimated render time on this machine exceeds the limit; the message offers draft
    UNAVAILABLE = "unavailable"  # no MIDI input for learn, no output device for audition
    INTERNAL = "internal"


class LocalErrorCode(StrEnum):
    ENGINE_UNREACHABLE = "engine_unreachable"  # no engine answered a ping
    NO_REPLY = "no_reply"  # the engine answered pings but neither accepted nor refused the request
    ENGINE_LOST = "engine_lost"  # the engine stopped answering about an accepted job, or forgot it
    CLIENT_STOPPED = "client_stopped"  # the request client was interrupted
    CLIENT_FAILED = "client_failed"  # REAPER could not start the request client (written by transport.lua)
    WRITE_FAILED = "write_failed"  # batch: a take could not be written


class RequestError(ValueError):
    """A request field is wrong; ``code`` is the protocol error code, ``field`` the offending field."""

    def __init__(self, code: ErrorCode | str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.field = ErrorCode(code), field
