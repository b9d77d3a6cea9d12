"""MIDI adapter: knobs drive live parameters, notes trigger actions, MIDI learn rebinds knobs.

The translation (`MidiTranslator`, `scale`) is pure and opens no ports, so tests can run it without
MIDI hardware. `MidiAdapter` only connects it to a mido input port (by default a virtual port named
"Jukebox Bridge"). The mapping is data: TOML in, TOML out. `bridge/default_mapping.toml` ships with
the package. Channels are 1..16 wherever users see them (TOML, `on_learned`), as DAWs show them.
mido numbers them 0..15.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import mido

from engine.io.files import atomic_write_text
from engine.params import LIVE_PARAMS

log = logging.getLogger(__name__)

PORT_NAME = "Jukebox Bridge"
BACKEND_ENV = "JUKEBOX_MIDI_BACKEND"
ACTIONS = ("continue_last", "rerender_last", "cancel_last")
CURVES = ("linear", "exp")
# Scaling for a parameter learned before any binding for it exists: (low, high, integer), from the one
# table of live parameters (engine/params.py), whose knobs default_mapping.toml also follows.
LEARN_DEFAULTS: dict[str, tuple[float, float, bool]] = {
    name: (p.knob.low, p.knob.high, p.integer) for name, p in LIVE_PARAMS.items() if p.knob is not None}

JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"
# Each platform's own MIDI system, as RtMidi names it.
PLATFORM_BACKENDS = {"linux": "mido.backends.rtmidi/LINUX_ALSA", "darwin": "mido.backends.rtmidi/MACOSX_CORE",
                     "win32": "mido.backends.rtmidi/WINDOWS_MM"}


def backend_candidates(platform: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """The MIDI backends to try, in order.

    ``JUKEBOX_MIDI_BACKEND`` alone when set. Otherwise JACK first on Linux (it works where ALSA cannot:
    headless boxes and containers without /dev/snd/seq, and it is what a JACK studio routes), then the
    platform's own: ALSA on Linux, CoreMIDI on macOS, WinMM on Windows."""
    platform = sys.platform if platform is None else platform
    chosen = (os.environ if env is None else env).get(BACKEND_ENV)
    if chosen:
        return [chosen]
    own = next((b for prefix, b in PLATFORM_BACKENDS.items() if platform.startswith(prefix)), "mido.backends.rtmidi")
    return [JACK_BACKEND, own] if platform.startswith("linux") else [own]


def _failure(backend: str, why: str) -> str:
    hint = " (is the JACK server running?)" if backend == JACK_BACKEND and "JACK" not in why else ""
    return f"via {backend}: {why}{hint}"


def default_backend() -> str:
    """The first backend ``MidiAdapter`` tries (see ``backend_candidates``)."""
    return backend_candidates()[0]


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file while native MIDI code runs, then give back its text.

    libjack prints "Cannot connect to server socket ..." and alsa-lib "ALSA lib seq_hw.c ..." straight to
    fd 2 when their server or device is missing, past Python's ``sys.stderr``. Probing a backend that is
    not there must not dump that on the terminal; the yielded list receives the text, for the debug log."""
    out: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no fd 2 (pythonw) or no sys.stderr: nothing to hide
            yield out
            return
        try:
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace").strip())


def _check(ok: bool, what: str, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{what} must be {allowed}")


@dataclass(frozen=True)
class ControlBinding:
    """One knob: CC `cc` (the MSB when bits=14; the LSB is cc+32) scaled onto [lo, hi] for `param`."""
    param: str
    cc: int
    lo: float = 0.0
    hi: float = 1.0
    channel: int | None = None  # 1..16, None = any channel
    bits: int = 7
    curve: str = "linear"
    integer: bool = False

    def __post_init__(self) -> None:
        _check(isinstance(self.param, str) and bool(self.param), "param", "a non-empty name")
        _check(self.bits in (7, 14), f"{self.param}: bits", "7 or 14")
        _check(type(self.cc) is int and type(self.integer) is bool, f"{self.param}: cc and integer",
               "an integer and true/false")
        _check(0 <= self.cc <= (31 if self.bits == 14 else 127), f"{self.param}: cc",
               "0..31 for a 14-bit pair" if self.bits == 14 else "0..127")
        _check(self.channel is None or 1 <= self.channel <= 16, f"{self.param}: channel", "1..16 or omitted")
        _check(self.curve in CURVES, f"{self.param}: curve", " or ".join(CURVES))
        _check(math.isfinite(self.lo) and math.isfinite(self.hi), f"{self.param}: range", "finite")
        _check(self.curve != "exp" or (self.lo > 0 and self.hi > 0), f"{self.param}: an exp range", "above 0")


@dataclass(frozen=True)
class NoteBinding:
    """A key that triggers `action` on note-on."""
    note: int
    action: str
    channel: int | None = None

    def __post_init__(self) -> None:
        _check(type(self.note) is int and 0 <= self.note <= 127, "note", "an integer 0..127")
        _check(self.action in ACTIONS, f"note {self.note}: action", " or ".join(ACTIONS))
        _check(self.channel is None or 1 <= self.channel <= 16, f"note {self.note}: channel", "1..16 or omitted")


@dataclass(frozen=True)
class MidiMapping:
    """The whole table. Immutable, so the MIDI thread can keep reading while learn swaps in a new one."""
    controls: tuple[ControlBinding, ...] = ()
    notes: tuple[NoteBinding, ...] = ()

    @classmethod
    def default(cls) -> MidiMapping:
        text = resources.files("bridge").joinpath("default_mapping.toml").read_text(encoding="utf-8")
        return cls.from_dict(tomllib.loads(text), "default_mapping.toml")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MidiMapping:
        return cls.from_dict(tomllib.loads(Path(path).read_text(encoding="utf-8")), str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "mapping") -> MidiMapping:
        def table(item: Any, keys: set[str], kind: str) -> dict[str, Any]:
            if not isinstance(item, dict):
                raise ValueError(f"{source}: each [[{kind}]] must be a table")
            if extra := set(item) - keys:
                raise ValueError(f"{source}: unknown [[{kind}]] field(s) {sorted(extra)}; allowed: {sorted(keys)}")
            return item

        if extra := set(data) - {"control", "note"}:
            raise ValueError(f"{source}: unknown section(s) {sorted(extra)}; allowed: control, note")
        try:
            controls = []
            for c in data.get("control", []):
                c = dict(table(c, {"param", "cc", "range", "curve", "integer", "channel", "bits"}, "control"))
                r = c.pop("range", [0.0, 1.0])
                _check(isinstance(r, list) and len(r) == 2, f"{c.get('param')}: range", "[low, high]")
                lo, hi = r
                controls.append(ControlBinding(lo=float(lo), hi=float(hi), **c))
            notes = [NoteBinding(**table(n, {"note", "action", "channel"}, "note")) for n in data.get("note", [])]
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from e
        return cls(tuple(controls), tuple(notes))

    def to_toml(self) -> str:
        def num(v: float, integer: bool) -> str:
            return str(int(v)) if integer and v == int(v) else repr(float(v))

        out = ["# Jukebox Bridge MIDI mapping (format: see bridge/default_mapping.toml)."]
        for c in self.controls:
            out += ["", "[[control]]", f"param = {json.dumps(c.param)}", f"cc = {c.cc}",
                    f"range = [{num(c.lo, c.integer)}, {num(c.hi, c.integer)}]"]
            out += [f'curve = "{c.curve}"'] if c.curve != "linear" else []
            out += ["integer = true"] if c.integer else []
            out += [f"channel = {c.channel}"] if c.channel is not None else []
            out += [f"bits = {c.bits}"] if c.bits != 7 else []
        for n in self.notes:
            out += ["", "[[note]]", f"note = {n.note}", f'action = "{n.action}"']
            out += [f"channel = {n.channel}"] if n.channel is not None else []
        return "\n".join(out) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write through a temporary file and rename, so a crash never leaves half a mapping."""
        atomic_write_text(path, self.to_toml(), overwrite=True)

    def bind(self, new: ControlBinding) -> MidiMapping:
        """Add `new`, dropping other bindings of its parameter and of its control: one knob, one job."""
        def clashes(c: ControlBinding) -> bool:
            return c.param == new.param or (c.cc == new.cc and None in (c.channel, new.channel)) or (
                c.cc == new.cc and c.channel == new.channel)
        return replace(self, controls=tuple(c for c in self.controls if not clashes(c)) + (new,))


def scale(b: ControlBinding, x: float) -> float:
    """Map a knob position x in [0, 1] onto the binding's range and curve."""
    if b.integer:  # equal-width steps, so each whole number gets the same share of the knob's travel
        lo, hi = round(b.lo), round(b.hi)
        return float(lo + min(int(x * (abs(hi - lo) + 1)), abs(hi - lo)) * (1 if hi >= lo else -1))
    if b.curve == "exp":
        return b.lo * (b.hi / b.lo) ** x
    return b.lo + (b.hi - b.lo) * x


@dataclass(frozen=True)
class ParamChange:
    name: str
    value: float


@dataclass(frozen=True)
class Action:
    name: str


@dataclass(frozen=True)
class Learned:
    name: str
    channel: int  # 1..16
    control: int


Event = ParamChange | Action | Learned


class MidiTranslator:
    """Turns MIDI messages into events. Holds the 14-bit and learn state; not thread-safe by itself."""

    def __init__(self, mapping: MidiMapping) -> None:
        self.mapping = mapping
        self._msb: dict[tuple[int, int], int] = {}  # (channel, msb cc) -> last MSB
        self._last: dict[str, float] = {}  # last value sent per parameter, to drop repeats
        self._learning: str | None = None
        self._upgrade: tuple[int, int, int, str] | None = None  # (channel, cc, msb, param) just learned

    def learn(self, name: str) -> None:
        _check(bool(name), "learn: name", "a non-empty parameter name")
        self._learning = name

    def feed(self, msg: mido.Message) -> list[Event]:
        if msg.type == "control_change":
            return self._control(msg.channel + 1, msg.control, msg.value)
        if msg.type == "note_on" and msg.velocity > 0:  # velocity 0 is a note-off by convention
            return [Action(n.action) for n in self.mapping.notes
                    if n.note == msg.note and n.channel in (None, msg.channel + 1)]
        return []

    def _control(self, ch: int, cc: int, value: int) -> list[Event]:
        events: list[Event] = []
        up, self._upgrade = self._upgrade, None
        if up and up[:2] == (ch, cc - 32):  # a learned MSB followed by its LSB: the knob is 14-bit
            old = next(c for c in self.mapping.controls if c.param == up[3])
            self.mapping = self.mapping.bind(replace(old, bits=14))
            self._msb[(ch, up[1])] = up[2]
        elif self._learning is not None:
            name, self._learning = self._learning, None
            self.mapping = self.mapping.bind(self._learned_binding(name, ch, cc))
            self._upgrade = (ch, cc, value, name) if cc < 32 else None
            events.append(Learned(name, ch, cc))
        for b in self.mapping.controls:
            if b.channel not in (None, ch):
                continue
            if b.cc == cc:
                if b.bits == 14:
                    self._msb[(ch, cc)] = value
                # MSB alone: m/127 always lies inside the span its LSB refines, and reaches both ends.
                x = value / 127
            elif b.bits == 14 and b.cc + 32 == cc and (ch, b.cc) in self._msb:
                x = ((self._msb[(ch, b.cc)] << 7) | value) / 16383
            else:
                continue
            v = scale(b, x)
            if self._last.get(b.param) != v:
                self._last[b.param] = v
                events.append(ParamChange(b.param, v))
        return events

    def _learned_binding(self, name: str, ch: int, cc: int) -> ControlBinding:
        """Keep the parameter's existing scaling; only the knob changes."""
        for c in self.mapping.controls:
            if c.param == name:
                return replace(c, cc=cc, channel=ch, bits=7)
        lo, hi, integer = LEARN_DEFAULTS.get(name, (0.0, 1.0, False))
        return ControlBinding(name, cc, float(lo), float(hi), channel=ch, integer=integer)


def find_port(wanted: str, names: list[str]) -> str:
    """An exact name, else the one name containing it (ALSA appends client:port numbers)."""
    if wanted in names:
        return wanted
    hits = [n for n in names if wanted.lower() in n.lower()]
    if len(hits) == 1:
        return hits[0]
    raise OSError(f"MIDI input {wanted!r} not found" + (" uniquely" if hits else "")
                  + f"; available inputs: {', '.join(names) or 'none'}")


class MidiAdapter:
    """Listens on one MIDI input and reports parameter changes, actions and learned knobs.

    on_param(name, value): integer parameters arrive as whole floats; a repeat of the value last
    sent for a parameter is not sent again. on_action(name): one of ACTIONS. on_learned(name,
    channel 1..16, control). Callbacks run on mido's MIDI thread, outside the adapter's lock, so
    they may call `learn`. A callback's exception is logged, not raised.
    """

    def __init__(self, port_name: str | None, on_param: Callable[[str, float], None],
                 on_action: Callable[[str], None], on_learned: Callable[[str, int, int], None],
                 mapping: MidiMapping | None = None, backend: str | None = None) -> None:
        self.port_name = port_name
        self.backends = [backend] if backend else backend_candidates()
        self.backend = self.backends[0]  # the one in use once started
        self._on_param, self._on_action, self._on_learned = on_param, on_action, on_learned
        self._translator = MidiTranslator(mapping or MidiMapping.default())
        self._state_lock = threading.Lock()  # translator state: MIDI thread vs learn/save callers
        self._port_lock = threading.Lock()  # start/stop
        self._port: mido.ports.BaseInput | None = None

    @property
    def mapping(self) -> MidiMapping:
        with self._state_lock:
            return self._translator.mapping

    def start(self) -> None:
        """Open the input on the first backend that has it (see ``backend_candidates``); raises ``OSError``
        naming each backend tried and why it failed. The native libraries' own complaints go to the debug log."""
        with self._port_lock:
            if self._port is not None:
                return
            failures = []
            for name in self.backends:
                with native_stderr_captured() as noise:
                    try:
                        port = self._open(name)
                    except (OSError, RuntimeError) as e:
                        port, why = None, str(e)
                if noise[0]:
                    log.debug("MIDI: %s said: %s", name, noise[0])
                if port is not None:
                    break
                failures.append((name, why))
            else:
                raise OSError("cannot open MIDI input " + "; ".join(_failure(*f) for f in failures))
            self._port, self.backend = port, name
            for failed, why in failures:
                log.info("MIDI: not via %s (%s)", failed, why)
            log.info("MIDI: listening on %s (%s)", port.name, name)

    def _open(self, backend_name: str) -> mido.ports.BaseInput:
        backend = mido.Backend(backend_name, load=True)
        if self.port_name is None:
            return backend.open_input(PORT_NAME, client_name=PORT_NAME, callback=self._on_message)
        return backend.open_input(find_port(self.port_name, backend.get_input_names()), callback=self._on_message)

    def stop(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
            if port is not None:
                port.close()

    def learn(self, name: str) -> None:
        """Bind the next control that moves to `name`, replacing the parameter's previous binding."""
        with self._state_lock:
            self._translator.learn(name)

    def save_mapping(self, path: str | os.PathLike[str]) -> None:
        self.mapping.save(path)

    def _on_message(self, msg: mido.Message) -> None:
        with self._state_lock:
            events = self._translator.feed(msg)
        for e in events:
            try:
                if isinstance(e, ParamChange):
                    self._on_param(e.name, e.value)
                elif isinstance(e, Action):
                    self._on_action(e.name)
                else:
                    self._on_learned(e.name, e.channel, e.control)
            except Exception:  # an exception would die silently in the MIDI thread
                log.exception("MIDI: handler for %s failed", e)
