"""What a producer asks the engine for: one render request, validated once, at the edge.

The OSC bridge, the CLI and batch runs all build a ``RenderRequest`` with ``RenderRequest.from_fields``,
so the rules (types, ranges, defaults) live in one place and every error names the field and the
allowed range. Job records store ``to_fields()`` so a restarted engine can rebuild the request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from engine.errors import ErrorCode, RequestError

from .params import LIVE_PARAMS

__all__ = ["MAX_SECONDS", "MODES", "Mode", "RenderRequest", "RequestError"]

TONES: tuple[str, ...] = ("match", "off")  # the ``tone`` field's values (io.tone)
MAX_SECONDS = 300.0  # generated audio per request: inside the top prior's 600 s timing range, prompt included

Mode = Literal["continue", "prime", "rerender", "generate", "refine"]
# refine: ``source`` is a draft take the engine rendered; its saved codes are upsampled to full quality
MODES: tuple[str, ...] = ("continue", "prime", "rerender", "generate", "refine")


@dataclass(frozen=True)
class RenderRequest:
    mode: Mode
    source: str | None = None
    start: float = 0.0
    length: float | None = None
    position: float = 0.0
    seconds: float = 10.0
    tempo: float | None = None
    bars: float | None = None
    artist: str | None = None
    genre: str | None = None
    lyrics: str = ""
    # The live parameters (engine/params.py): their table's defaults. Over OSC a field the
    # client leaves out takes the live value at submission instead (LiveParams.fill).
    temperature: float = LIVE_PARAMS["temperature"].default
    top_k: int = LIVE_PARAMS["top_k"].default
    top_p: float = LIVE_PARAMS["top_p"].default
    adherence: float = LIVE_PARAMS["adherence"].default
    takes: int = LIVE_PARAMS["takes"].default
    seed: int | None = None
    quality: Literal["draft", "full"] = "full"
    level: int | None = None
    stop_level: int | None = None
    sample_rate: int = 44100
    channels: int = 2
    chain: str | None = None
    # "match": the prime's integrated loudness (generated takes: a fixed target); "off": as decoded (DC still
    # removed); a number: that target in LUFS. The sidecar records the gain applied.
    loudness: str | float = "match"
    # "match": a continue/prime take's octave balance is moved towards its region's (a match EQ, at most 6 dB a band;
    # io.tone); "off": as decoded. The sidecar's loudness.tone_db records the gains.
    tone: Literal["match", "off"] = "match"
    # Seconds of estimated render time (on this machine) the client accepts before the engine refuses with
    # ``too_long`` and an offer (draft, a shorter length); None: the engine's limit; 0: no limit.
    max_wait: float | None = None
    # A source whose header promises more audio than the file holds is refused (not_audio) unless the producer
    # asks for what is there: then the job runs, and the reply and the sidecar carry the warning.
    allow_truncated: bool = False

    @property
    def target_seconds(self) -> float:
        """Seconds of new material: whole bars when tempo and bars are given, else ``seconds``."""
        if self.bars is not None and self.tempo is not None:
            return self.bars * 4 * 60.0 / self.tempo
        return self.seconds

    def to_fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_fields(cls, mode: str, fields: dict[str, Any]) -> "RenderRequest":
        """Validate JSON-like fields for a render verb; raises ``RequestError``."""
        if mode not in MODES:
            raise RequestError(ErrorCode.UNKNOWN_VERB, f"unknown render mode {mode!r}; use one of {', '.join(MODES)}")
        known = {f.name for f in dataclasses.fields(cls)} - {"mode"}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise RequestError(ErrorCode.UNKNOWN_FIELD,
                               f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}",
                               unknown[0])
        values = {name: _check(name, value) for name, value in fields.items() if value is not None}
        if mode == "generate":
            if "source" in values:
                raise RequestError(ErrorCode.UNKNOWN_FIELD, "generate takes no source; use continue, prime or rerender",
                                   "source")
        elif "source" not in values:
            raise RequestError(ErrorCode.BAD_VALUE, f"{mode} needs a source audio file path", "source")
        if "bars" in values and "tempo" not in values:
            raise RequestError(ErrorCode.BAD_VALUE, "bars needs tempo (the project's BPM) too", "tempo")
        req = cls(mode=mode, **values)  # type: ignore[arg-type]
        if req.target_seconds > MAX_SECONDS:
            raise RequestError(ErrorCode.BAD_VALUE, f"at most {MAX_SECONDS:.0f} seconds per request; got "
                               f"{req.target_seconds:.1f} s (queue several continuations for more)",
                               "bars" if req.bars is not None else "seconds")
        if mode == "rerender" and req.length is not None and req.length > MAX_SECONDS:
            raise RequestError(ErrorCode.BAD_VALUE, f"re-render at most {MAX_SECONDS:.0f} s of a region at a time",
                               "length")
        if req.stop_level is not None and req.level is not None and req.stop_level > req.level:
            raise RequestError(ErrorCode.BAD_VALUE, f"stop_level {req.stop_level} is above level {req.level}",
                               "stop_level")
        return req


# field -> (python types, check, description of the allowed values)
_RULES: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "source": ((str,), lambda v: 0 < len(v) <= 4096, "a file path"),
    "start": ((int, float), lambda v: 0 <= v < 86400, "seconds, 0 or more"),
    "length": ((int, float), lambda v: 0 < v <= 3600, "seconds, more than 0 and at most 3600"),
    "position": ((int, float), lambda v: -1e7 < v < 1e7, "timeline seconds"),
    "seconds": ((int, float), lambda v: 0 < v <= MAX_SECONDS, "more than 0 and at most 300 seconds"),
    "tempo": ((int, float), lambda v: 10 <= v <= 999, "BPM from 10 to 999"),
    "bars": ((int, float), lambda v: 0 < v <= 512, "more than 0 and at most 512 bars"),
    "artist": ((str,), lambda v: len(v) <= 200, "a name of at most 200 characters"),
    "genre": ((str,), lambda v: len(v) <= 200, "a name of at most 200 characters"),
    "lyrics": ((str,), lambda v: len(v) <= 8000, "at most 8000 characters"),
    **{name: ((int,) if p.integer else (int, float), p.accepts, p.allowed) for name, p in LIVE_PARAMS.items()},
    "seed": ((int,), lambda v: 0 <= v < 2**31, "an integer from 0 to 2^31-1"),
    "tone": ((str,), lambda v: v in TONES, " or ".join(f'"{t}"' for t in TONES)),
    "quality": ((str,), lambda v: v in ("draft", "full"), '"draft" or "full"'),
    "level": ((int,), lambda v: 0 <= v <= 2, "an integer level from 0 to 2"),
    "stop_level": ((int,), lambda v: 0 <= v <= 2, "an integer level from 0 to 2"),
    "sample_rate": ((int,), lambda v: 8000 <= v <= 384000, "an integer rate from 8000 to 384000 Hz"),
    "channels": ((int,), lambda v: 1 <= v <= 8, "an integer from 1 to 8"),
    "chain": ((str,), lambda v: 0 < len(v) <= 4096, "an effect chain name or path"),
    "loudness": ((str, int, float), lambda v: v in ("match", "off") if isinstance(v, str) else -60 <= v <= 0,
                 '"match", "off" or a target from -60 to 0 LUFS'),
    "max_wait": ((int, float), lambda v: 0 <= v <= 7 * 86400, "seconds from 0 (no limit) to 604800"),
    "allow_truncated": ((bool,), lambda v: True, "true or false"),
}


_TEXT_WHITESPACE = frozenset("\t\n\r")  # allowed in lyrics only


def text_problem(value: str, multiline: bool = False) -> str | None:
    """Why ``value`` cannot travel through file names, JSON sidecars, WAV tags and logs (a lone UTF-16 surrogate,
    which no UTF-8 file can hold, or a control character), or None. ``multiline``: tabs and line breaks are fine."""
    for i, ch in enumerate(value):
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            return f"a lone surrogate (U+{code:04X}) at character {i + 1}, which no file can store"
        if (code < 0x20 or 0x7F <= code < 0xA0) and not (multiline and ch in _TEXT_WHITESPACE):
            return f"a control character (U+{code:04X}) at character {i + 1}"
    return None


def _check(name: str, value: Any) -> Any:
    types, ok, allowed = _RULES[name]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise RequestError(ErrorCode.BAD_VALUE, f"{name} must be {allowed}; got {type(value).__name__} {value!r}", name)
    if isinstance(value, str) and (problem := text_problem(value, multiline=name == "lyrics")):
        raise RequestError(ErrorCode.BAD_VALUE, f"{name} must be {allowed} without control characters; it has "
                           f"{problem}", name)
    if isinstance(value, float) and value != value:
        raise RequestError(ErrorCode.BAD_VALUE, f"{name} must be {allowed}; got NaN", name)
    if not ok(value):
        raise RequestError(ErrorCode.BAD_VALUE, f"{name} must be {allowed}; got {value!r}", name)
    return float(value) if float in types and not isinstance(value, str) else value
