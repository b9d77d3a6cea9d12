"""Live parameters: values a producer turns while the engine runs (OSC ``set``, MIDI knobs).

A render request that leaves a live field out takes the value the store holds at the moment the job
is *submitted*, so turning a knob never changes a job that is already queued, and a value the client
sends explicitly always wins over the knob. Values are validated by ``RenderRequest.from_fields``, the
one validator of render fields (MIDI sends whole floats for integer fields; they are accepted).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable

from .request import RenderRequest, RequestError

# name -> default; each name is a RenderRequest field. 0.98 is Jukebox's top-level sampling temperature;
# the others equal RenderRequest's own defaults, so an untouched store changes nothing.
LIVE_DEFAULTS: dict[str, float] = {"temperature": 0.98, "top_k": 0, "top_p": 1.0, "takes": 1}

ParamListener = Callable[[str, float], None]


class LiveParams:
    """A small thread-safe store of live parameter values with change listeners."""

    def __init__(self, values: dict[str, float] | None = None) -> None:
        self._lock = threading.Lock()
        self._values = dict(LIVE_DEFAULTS)
        self._listeners: list[ParamListener] = []
        for name, value in (values or {}).items():
            self._values[name] = self.check(name, value)

    @staticmethod
    def check(name: str, value: object) -> float | int:
        """The validated value; raises ``RequestError`` (bad_value) naming the settable parameters."""
        if name not in LIVE_DEFAULTS:
            raise RequestError("bad_value", f"unknown parameter {name!r}; settable: {', '.join(sorted(LIVE_DEFAULTS))}",
                               "name")
        try:
            return getattr(RenderRequest.from_fields("generate", {name: value}), name)
        except RequestError:
            if isinstance(value, float) and value.is_integer():  # a MIDI knob's 4.0 for takes
                return getattr(RenderRequest.from_fields("generate", {name: int(value)}), name)
            raise

    def set(self, name: str, value: object) -> float:
        value = self.check(name, value)
        with self._lock:
            self._values[name] = value
            listeners = list(self._listeners)
        for listener in listeners:
            listener(name, value)
        return value

    def get(self, name: str) -> float:
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)

    def add_listener(self, listener: ParamListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def fill(self, req: RenderRequest, given: frozenset[str] | None = None) -> RenderRequest:
        """``req`` with each live field the client left out (not in ``given``) taken from the current values.

        ``given=None`` means "only fields that are None", for callers that built ``req`` themselves."""
        values = self.snapshot()
        unset = {name: values[name] for name in LIVE_DEFAULTS
                 if (getattr(req, name) is None if given is None else name not in given)}
        return dataclasses.replace(req, **unset) if unset else req
