"""Live parameters: values a producer turns while the engine runs (OSC ``set``, MIDI knobs).

``LIVE_PARAMS`` is the one table of them: each parameter's default, its valid range and its MIDI knob.
Everything else derives from it or is checked against it by a test: ``RenderRequest``'s defaults and
its validator's rules (engine/request.py), the knobs a MIDI learn creates (bridge/midi.py),
bridge/default_mapping.toml, the Max for Live device's ``PARAM_RANGES`` (max_for_live/src/jb_core.js)
and the REAPER settings' ``SPECS`` (reaper_scripts/lib/jukebox_bridge/settings.lua).

Every path resolves a left-out field the same way. A request built from fields (CLI ``sample``,
``batch``, ``listen``) carries the table's default, so the request, and the sidecar written from it,
hold the value actually used. Over OSC, a render request that leaves a live field out takes the value
the store holds at the moment the job is *submitted* (``LiveParams.fill``), so turning a knob never
changes a job that is already queued, and a value the client sends explicitly always wins over the
knob. An untouched store holds the table's defaults, so both paths agree until someone turns a knob.

No torch: the request client that DAW scripts spawn per job imports this through bridge/protocol.py.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from engine.errors import ErrorCode, RequestError

R = TypeVar("R")  # a RenderRequest (request.py imports this module, so not named here)


@dataclass(frozen=True)
class Knob:
    """A parameter's MIDI control: CC number (``None``: none by default; MIDI learn binds one) and the
    values at the knob's two ends. Integer parameters are cut into equal steps, one per whole number."""

    cc: int | None
    low: float
    high: float
    curve: str = "linear"  # or "exp": finer steps at the low end


@dataclass(frozen=True)
class LiveParam:
    name: str  # a RenderRequest field and the OSC ``set`` name
    default: float | int
    low: float
    high: float
    integer: bool = False
    low_open: bool = False  # the low end itself is not allowed (temperature 0, top_p 0)
    off: float | int | None = None  # the value that turns the feature off, if any
    knob: Knob | None = None
    meaning: str = ""

    def accepts(self, value: float) -> bool:
        return (self.low < value if self.low_open else self.low <= value) and value <= self.high

    @property
    def allowed(self) -> str:
        """The valid values in words, as error messages give them."""
        if self.integer:
            off = " (off)" if self.off == self.low else ""
            return f"an integer from {self.low:g}{off} to {self.high:g}"
        off = f" ({self.off:g} = off)" if self.off == self.high else ""
        lower = f"more than {self.low:g}" if self.low_open else f"{self.low:g} or more"
        return f"{lower} and at most {self.high:g}{off}"

    def check(self, value: object) -> float | int:
        """The validated value (an int for integer parameters; a whole float, as MIDI sends, is accepted);
        raises ``RequestError`` (bad_value) naming the allowed range."""
        if self.integer and isinstance(value, float) and value.is_integer():
            value = int(value)
        types = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, types):
            raise RequestError(ErrorCode.BAD_VALUE, f"{self.name} must be {self.allowed}; got "
                               f"{type(value).__name__} {value!r:.80}", self.name)
        if math.isnan(value) or not self.accepts(value):
            raise RequestError(ErrorCode.BAD_VALUE, f"{self.name} must be {self.allowed}; got {value!r}", self.name)
        return int(value) if self.integer else float(value)


LIVE_PARAMS: dict[str, LiveParam] = {p.name: p for p in (
    # 0.98 is the reference's top-level sampling temperature. Jukebox samples well between about 0.9
    # and 1.0; the knob's 0.5..1.2 reaches from safe to wild.
    LiveParam("temperature", 0.98, 0.0, 2.0, low_open=True, knob=Knob(1, 0.5, 1.2),
              meaning="sampling temperature"),
    LiveParam("top_k", 0, 0, 2048, integer=True, off=0, knob=Knob(None, 0, 500),
              meaning="keep only the k most likely codes"),
    LiveParam("top_p", 1.0, 0.0, 1.0, low_open=True, off=1.0, knob=Knob(3, 0.5, 1.0),
              meaning="nucleus sampling: keep the likeliest codes up to this total probability"),
    LiveParam("adherence", 0.7, 0.0, 1.0, off=0.0, knob=Knob(4, 0.0, 1.0),
              meaning="the share of each draw a continuation takes from its region's own codes"),
    LiveParam("takes", 1, 1, 8, integer=True, knob=Knob(2, 1, 8),
              meaning="independent takes, sampled as one batch"),
)}

# name -> default, for callers that want just the values.
LIVE_DEFAULTS: dict[str, float | int] = {name: p.default for name, p in LIVE_PARAMS.items()}

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
        if name not in LIVE_PARAMS:
            raise RequestError(ErrorCode.BAD_VALUE, f"unknown parameter {name!r}; settable: "
                               f"{', '.join(sorted(LIVE_PARAMS))}", "name")
        return LIVE_PARAMS[name].check(value)

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

    def fill(self, req: R, given: frozenset[str] | None = None) -> R:
        """``req`` with each live field the client left out (not in ``given``) taken from the current values.

        ``given=None``: ``req`` was built by the engine's own caller and already carries every value."""
        if given is None:
            return req
        values = self.snapshot()
        unset = {name: values[name] for name in LIVE_PARAMS if name not in given}
        return dataclasses.replace(req, **unset) if unset else req
