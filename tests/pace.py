"""Waits that scale with how busy the machine is, measured, instead of fixed seconds.

End-to-end tests wait for real processes and threads (an engine starting, a job rendering). On a loaded machine
(two test runs at once, a model training beside them) everything takes longer, so a fixed timeout either fails
spuriously or is so long that a real hang costs minutes. ``Pace`` times a fixed probe (small matrix products and
a Python loop, single-threaded, like the debug renders) against what it takes on an idle two-core machine, and
scales each timeout by the ratio (never below 1).
"""

from __future__ import annotations

import statistics
import time

import torch

NOMINAL_PROBE_SECONDS = 0.035  # the probe on an idle core of the 2-core reference machine


def probe_seconds() -> float:
    a = torch.randn(96, 96, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(300):
            a = torch.tanh(a @ a * 0.01)
    s = 0
    for i in range(200000):
        s += i * i
    return time.perf_counter() - start


class Pace:
    """``pace(seconds)``: ``seconds`` scaled by the machine's current slowness (``factor``, measured at creation)."""

    def __init__(self, probes: int = 5) -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self.probe = statistics.median(probe_seconds() for _ in range(probes))
        finally:
            torch.set_num_threads(threads)
        self.factor = max(1.0, self.probe / NOMINAL_PROBE_SECONDS)

    def __call__(self, seconds: float) -> float:
        return seconds * self.factor

    def __repr__(self) -> str:
        return f"Pace(factor={self.factor:.2f}, probe={self.probe * 1000:.0f} ms)"
