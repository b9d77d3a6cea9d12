"""Rendering one stem, anywhere: the unit of work a batch hands to this process or to a cluster worker."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import soundfile as sf

from engine.errors import ErrorCode
from engine.io.audio import AudioError
from engine.request import RenderRequest, RequestError
from engine.runtime.progress import CancelToken, Progress


@dataclass(frozen=True)
class StemJob:
    """What a worker needs for one stem; ``data`` carries the file itself to a remote worker."""

    name: str
    mode: str
    fields: dict[str, Any]  # render fields, ``source`` included
    data: bytes | None = None


@dataclass(frozen=True)
class StemResult:
    name: str
    takes: list[Any] = field(default_factory=list)  # generate.render.RenderedTake
    error: tuple[str, str] | None = None  # (protocol error code, message)
    seconds: float = 0.0
    model: str = ""
    licence: dict[str, str | None] | None = None  # the model's ``Models.licence()``, for the sidecars


def render_stem(models: Any, job: StemJob, progress: Callable[[Progress], None]) -> StemResult:
    """Render one stem; every failure becomes ``StemResult.error`` so one bad stem never stops a batch."""
    from engine.generate.render import render as render_request
    from engine.generate.validate import validate

    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="jukebox-stem-") as tmp:
            fields = dict(job.fields)
            if job.data is not None:  # a remote worker: render from a private copy of the shipped file
                local = Path(tmp) / f"source{Path(fields['source']).suffix}"
                local.write_bytes(job.data)
                fields["source"] = str(local)
            req = RenderRequest.from_fields(job.mode, fields)
            validate(req, models)
            takes = render_request(models, req, progress, CancelToken())
            if job.mode == "rerender":  # exactly the stem's length: the model-rate round trip may be 1 sample off
                frames = sf.info(fields["source"]).frames
                takes = [dataclasses.replace(t, audio=_fit_length(t.audio, frames)) for t in takes]
        return StemResult(job.name, takes, None, time.monotonic() - t0, models.name, models.licence())
    except RequestError as exc:
        error = (exc.code, str(exc))
    except AudioError as exc:
        error = (ErrorCode.NOT_AUDIO, str(exc))
    except Exception as exc:  # the model or the file system; reported per stem
        error = (ErrorCode.RENDER_FAILED, f"{type(exc).__name__}: {exc}")
    return StemResult(job.name, [], error, time.monotonic() - t0, getattr(models, "name", ""))


def _fit_length(x: np.ndarray, frames: int) -> np.ndarray:
    return np.pad(x, ((0, max(0, frames - len(x))), (0, 0)))[:frames]


# ------------------------------------------------------------------ executors

Events = Callable[[str, Progress], None]  # (stem name, progress)


def run_local(jobs: list[StemJob], model: str | None, events: Events, top: str | None = None) -> Iterator[StemResult]:
    """Render in this process, one stem after another; the model loads only if there is work."""
    from engine.weights.bundle import load_models

    models = load_models(model, top) if jobs else None
    for job in jobs:
        yield render_stem(models, job, lambda p, n=job.name: events(n, p))
