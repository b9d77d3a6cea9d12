"""What the job system records: jobs, their takes and the events a listener receives (no torch, no I/O).

The bridge imports this module for its limits and event types without loading the model code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.request import RenderRequest
from engine.runtime.progress import CancelToken, Throttle

MAX_QUEUED = 64
ACTIVE = ("queued", "running")
PROGRESS_MIN_INTERVAL = 0.1  # renderer progress is forwarded at most this often (stage changes always)
STATE_DIR = ".jukebox"  # inside the render dir: journal.sqlite3, work/<job_id>/, cache/


@dataclass
class TakeRecord:
    take: int
    path: str
    position: float = 0.0
    length: float = 0.0
    published: bool = False


@dataclass
class Job:
    id: str
    seq: int
    request: RenderRequest
    owner: str  # opaque to the engine; the bridge stores where replies go
    state: str = "queued"
    submitted: float = field(default_factory=time.time)
    takes: dict[int, TakeRecord] = field(default_factory=dict)
    error: tuple[str, str] | None = None
    fraction: float = 0.0
    stage: str = "queued"
    eta: float = -1.0
    cancel: CancelToken = field(default_factory=CancelToken, repr=False)
    user_cancelled: bool = False
    throttle: Throttle = field(default_factory=lambda: Throttle(PROGRESS_MIN_INTERVAL), repr=False)
    warnings: tuple[str, ...] = ()  # from validation at submission: what the acceptance tells the producer

    @property
    def published(self) -> list[TakeRecord]:
        return [t for _, t in sorted(self.takes.items()) if t.published]

    def summary(self, detail: bool = False) -> dict[str, Any]:
        """JSON for ``status``: compact in lists (a reply must fit one UDP packet), full for one job."""
        out: dict[str, Any] = {"job_id": self.id, "mode": self.request.mode, "state": self.state,
                               "fraction": round(self.fraction, 4), "stage": self.stage,
                               "eta_seconds": round(self.eta, 1), "takes": len(self.published),
                               "submitted": self.submitted}
        if self.error:
            out["error"] = {"code": self.error[0], "message": self.error[1][:500]}
        if detail:
            rate = self.request.sample_rate  # exact frame counts at the project's rate, beside the seconds
            out["takes"] = [{"take": t.take, "path": t.path, "position": t.position, "length": t.length,
                             "position_frames": round(t.position * rate), "length_frames": round(t.length * rate),
                             "sample_rate": rate} for t in self.published]
            out["request"] = {**self.request.to_fields(), "lyrics": f"<{len(self.request.lyrics)} characters>"}
        return out


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    owner: str
    fraction: float
    stage: str
    eta: float


@dataclass(frozen=True)
class TakeDone:
    job_id: str
    owner: str
    take: int
    path: str
    position: float
    length: float


@dataclass(frozen=True)
class JobFinished:
    job_id: str
    owner: str
    state: str
    takes: int
    error: tuple[str, str] | None = None


JobEvent = JobProgress | TakeDone | JobFinished
