"""Progress reports and cooperative cancellation, passed down from the job runner to the sampling loop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


class Cancelled(Exception):
    """Raised between steps when the job's cancel token is set."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Progress:
    stage: str  # "encoding", "sampling level 2", "upsampling level 1", "decoding", "writing"
    done: int  # units of this stage finished (tokens for sampling)
    total: int
    fraction: float  # of the whole job, 0..1
    eta_seconds: float  # -1 when unknown
    level: int | None = None


ProgressCallback = Callable[[Progress], None]


class Throttle:
    """Lets an event through at most once per ``interval`` seconds (always when forced): the one rate limit
    for progress, so a sampler's per-token callbacks never flood a listener or a UDP socket."""

    def __init__(self, interval: float) -> None:
        self.interval, self.last = interval, float("-inf")

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            return True
        return False

    def idle(self) -> float:
        """Seconds since the last event went through."""
        return time.monotonic() - self.last


class EtaClock:
    """Estimates time left from the average rate so far; robust to a slow first step."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def eta(self, fraction: float) -> float:
        elapsed = time.monotonic() - self.t0
        return -1.0 if fraction <= 0 else max(0.0, elapsed * (1 - fraction) / fraction)
