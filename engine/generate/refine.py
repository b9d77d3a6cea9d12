"""Refine: a draft take upsampled to full quality from its own saved codes, lined up with the draft.

Jukebox's interactive loop is several cheap drafts (the top level only), then full quality for the keeper. Every
published take's codes are kept in its render folder (``.jukebox/codes/<take>.npz``, named by the sidecar's
``codes``; the newest ``codes_retention`` takes, ``engine/io/takes.py``), with the clip's slice of the decoded span,
its timeline position and the levels sampled. A ``refine`` request names the draft's WAV as ``source``;
``prepare_refine`` (at submission) refuses a take without codes or one already at full quality, and fills the
request from the draft: labels, lyrics, seed, sampling knobs, rate, channels and position. ``render`` then keeps
the draft's sampled levels as they are (the top level is never resampled), starts the lower levels from their known
prompt codes, upsamples with the default (parallel) schedule, decodes level 0 and keeps the draft's slice, so the
refined take has the draft's length and position to the sample.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ErrorCode
from engine.io.codes import CodesFile, CodesFileError
from engine.io.publish import sidecar_path
from engine.params import LIVE_PARAMS
from engine.request import MAX_SECONDS, RenderRequest, RequestError

# the draft's request fields a refine takes over unless the client gives them
INHERITED = ("artist", "genre", "lyrics", "temperature", "top_k", "top_p", "adherence", "sample_rate", "channels",
             "loudness", "tone", "chain")
# fields that say which audio to render: a refine always renders the whole draft
NOT_FOR_REFINE = ("start", "length", "seconds", "tempo", "bars", "level")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RenderRequest)}


@dataclass(frozen=True)
class Draft:
    """A published take with its saved codes: everything a refine starts from."""

    path: Path  # the take's WAV
    sidecar: dict[str, Any]
    codes: CodesFile

    @property
    def extra(self) -> dict[str, Any]:
        return self.codes.extra

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(self.extra["levels"])

    @property
    def decode_level(self) -> int:
        """The level the draft was decoded from: it and every level above it span the whole take."""
        return min(self.levels)

    @property
    def keep(self) -> tuple[int, int]:
        a, b = self.extra["keep"]
        return int(a), int(b)

    @property
    def top(self) -> int:
        return max(self.codes.codes)

    @property
    def total(self) -> int:
        """Model-rate samples the codes span (prompt included), a multiple of the top hop."""
        return int(self.codes.codes[self.top].shape[-1] * self.codes.hop_lengths[self.top])

    @property
    def request(self) -> dict[str, Any]:
        return self.extra.get("request") or {}

    @property
    def mode(self) -> str:
        return str(self.request.get("mode") or self.sidecar.get("mode") or "generate")

    @property
    def seconds(self) -> float:
        """The clip's length in seconds."""
        a, b = self.keep
        return (b - a) / self.codes.sample_rate


def _not_found(path: Path, why: str) -> RequestError:
    return RequestError(ErrorCode.SOURCE_NOT_FOUND, f"cannot refine {path.name}: {why}", "source")


def _bad(path: Path, why: str) -> RequestError:
    return RequestError(ErrorCode.BAD_VALUE, f"cannot refine {path.name}: {why}", "source")


def load_draft(source: str) -> Draft:
    """The draft take at ``source`` (its WAV path) with its sidecar and saved codes; ``RequestError``
    (source_not_found: no sidecar or no codes; bad_value: not a draft, or damaged) saying what to do."""
    path = Path(source)
    side = sidecar_path(path)
    if not path.is_file():
        raise _not_found(path, f"{source} does not exist or is not a file")
    if not side.is_file():
        raise _not_found(path, f"it has no sidecar ({side.name} beside it), so it is not a take this engine "
                               "rendered. Refine works on draft takes (quality draft): render a draft, then refine it")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise _bad(path, f"its sidecar {side.name} is unreadable ({exc})") from None
    if not meta.get("codes"):
        if meta.get("quality") == "full":
            raise _bad(path, "it is already a full-quality take; refine upsamples draft takes (quality draft)")
        raise _not_found(path, "its sidecar names no saved codes (it was rendered before takes kept their codes). "
                               "Render the draft again, then refine the new one")
    codes_path = Path(meta["codes"])
    if not codes_path.is_absolute():
        codes_path = path.parent / codes_path
    try:
        codes = CodesFile.load(codes_path)
    except CodesFileError as exc:
        if not codes_path.exists():
            raise _not_found(path, f"its saved codes ({codes_path}) are gone: a render folder keeps the codes of "
                                   "its newest takes only (the engine's codes_retention setting). Render the draft "
                                   "again, then refine the new one") from None
        raise _bad(path, str(exc)) from None
    extra = codes.extra
    if not extra.get("levels") or not extra.get("keep"):
        raise _bad(path, f"its codes file {codes_path.name} does not say which levels were sampled or which part "
                         "is the clip")
    draft = Draft(path, meta, codes)
    if draft.decode_level == 0:
        raise _bad(path, "it is already full quality (decoded from level 0); refine upsamples draft takes "
                         "(quality draft, or a stop_level above 0)")
    missing = [lv for lv in range(draft.decode_level, draft.top + 1) if lv not in codes.codes]
    if missing:
        raise _bad(path, f"its codes file {codes_path.name} lacks level(s) {missing}")
    return draft


def check_draft(draft: Draft, models: Any) -> None:
    """The draft's codes fit ``models`` (the same model drafted them); ``RequestError`` bad_value otherwise."""
    if draft.codes.model and draft.codes.model != models.name:
        raise _bad(draft.path, f"it was drafted with model {draft.codes.model}; the engine runs {models.name}. "
                               "Refine it with the model that drafted it")
    if tuple(draft.codes.hop_lengths) != tuple(models.vqvae.hop_lengths) or draft.top != models.levels - 1:
        raise _bad(draft.path, "its codes do not match this model's levels")


def _told(req: RenderRequest, given: frozenset[str] | None) -> set[str]:
    """The fields the client set: ``given``, or (a request built by the engine's own caller) those off default."""
    if given is not None:
        return set(given)
    return {name for name, default in _DEFAULTS.items() if name != "mode" and getattr(req, name) != default}


def prepare_refine(req: RenderRequest, given: frozenset[str] | None = None
                   ) -> tuple[RenderRequest, frozenset[str] | None]:
    """At submission: a ``refine`` request filled from its draft (any other request as it is), and the fields to
    count as given, so the live parameters do not replace the draft's. Raises ``RequestError``."""
    if req.mode != "refine" or req.source is None:
        return req, given
    draft = load_draft(req.source)
    told = _told(req, given)
    seconds = float(min(max(draft.seconds, 1e-3), MAX_SECONDS))  # shown in status, used by the time estimate
    if req.seconds == seconds:  # a request prepared already (prepared again at the queue)
        told.discard("seconds")
    wrong = [name for name in NOT_FOR_REFINE if name in told]
    if wrong:
        raise RequestError(ErrorCode.BAD_VALUE, f"refine renders the whole draft take at its own length: leave out "
                           f"{', '.join(wrong)}", wrong[0])
    if req.quality == "draft":
        raise RequestError(ErrorCode.BAD_VALUE, "refine renders full quality; stop_level stops it above level 0",
                           "quality")
    if req.stop_level is not None and req.stop_level >= draft.decode_level:
        raise RequestError(ErrorCode.BAD_VALUE, f"the draft is already at level {draft.decode_level}; stop_level "
                           f"must be below it", "stop_level")
    fields = draft.request
    values = {name: fields[name] for name in INHERITED if name in fields and name not in told}
    if "seed" not in told:
        values["seed"] = int(draft.extra.get("seed", draft.sidecar.get("seed", 0)))
    if "position" not in told:
        values["position"] = float(draft.extra.get("position", draft.sidecar.get("position", 0.0)))
    if "takes" not in told:
        values["takes"] = 1
    values["seconds"] = seconds
    values["quality"] = "full"
    req = dataclasses.replace(req, **values)
    return req, None if given is None else frozenset(given) | set(LIVE_PARAMS) | set(values)


def start_codes(draft: Draft) -> dict[int, np.ndarray]:
    """Level -> (1, T) codes a refine starts from: the draft's sampled levels in full, the prompt's below them."""
    return {lv: np.asarray(z[:1]) for lv, z in draft.codes.codes.items()}
