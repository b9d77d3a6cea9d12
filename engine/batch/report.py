"""How a batch reports itself: a live rich display on a terminal, plain lines everywhere else.

Both reporters take the same calls from ``batch.run_batch``: ``start``, ``progress`` (possibly from
the Dask client's thread, hence the lock), ``finished`` per stem, then ``close``, or ``abort`` when the
batch stops early (Ctrl-C).
"""

from __future__ import annotations

import sys
import threading
from typing import IO, Any

from engine.runtime.progress import EtaClock, Progress


def _eta(seconds: float) -> str:
    return "" if seconds < 0 else f", about {seconds:.0f} s left"


class PlainReporter:
    """One line per event (log files, CI, pipes): stage changes, finished stems with the overall ETA."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._stage: dict[str, str] = {}
        self._total, self._done = 0, 0
        self._clock = EtaClock()

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def start(self, names: list[str], skipped: list[str], failed: dict[str, str]) -> None:
        self._total, self._clock = len(names), EtaClock()
        for name in skipped:
            self._say(f"{name}: done before, skipped")
        for name, message in failed.items():
            self._say(f"{name}: FAILED: {message}")
        self._say(f"batch: {len(names)} stem(s) to render, {len(skipped)} already done")

    def progress(self, name: str, p: Progress) -> None:
        with self._lock:
            stage = p.stage.split(" level")[0]
            changed, self._stage[name] = self._stage.get(name) != stage, stage
        if changed:
            self._say(f"{name}: {stage}")

    def finished(self, name: str, entry: Any) -> None:
        self._done += 1
        what = f"done, {len(entry.outputs)} take(s) in {entry.seconds:.1f} s" if entry.state == "done" else \
            f"FAILED: {entry.error['message'] if entry.error else 'unknown error'}"
        self._say(f"{name}: {what} [{self._done}/{self._total}{_eta(self._clock.eta(self._done / self._total))}]")

    def abort(self) -> None:
        """The batch stopped early (Ctrl-C); ``close`` will not be called."""

    def close(self, summary: Any) -> None:
        self._say(f"batch: {len(summary.rendered)} rendered, {len(summary.skipped)} skipped, "
                  f"{len(summary.failed)} failed; manifest {summary.manifest}")


class RichReporter(PlainReporter):
    """A live display: one bar per stem (its stage) and an overall bar with the time left."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bars

        super().__init__()
        self.console = console or Console()
        self.bars = Bars(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                         console=self.console)
        self._tasks: dict[str, Any] = {}
        self._overall: Any = None
        self._fraction: dict[str, float] = {}

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def start(self, names: list[str], skipped: list[str], failed: dict[str, str]) -> None:
        super().start(names, skipped, failed)
        self._overall = self.bars.add_task("all stems", total=max(1, len(names)))
        self._tasks = {n: self.bars.add_task(f"  {n}: queued", total=1.0) for n in names}
        self.bars.start()

    def progress(self, name: str, p: Progress) -> None:
        with self._lock:
            self._fraction[name] = p.fraction
            self.bars.update(self._tasks[name], completed=p.fraction, description=f"  {name}: {p.stage}")
            self.bars.update(self._overall, completed=self._done + sum(self._fraction.values()))

    def finished(self, name: str, entry: Any) -> None:
        with self._lock:
            self._done += 1
            self._fraction.pop(name, None)
            ok = entry.state == "done"
            self.bars.update(self._tasks[name], completed=1.0,
                             description=f"  {name}: {'done' if ok else 'FAILED'}")
            self.bars.update(self._overall, completed=self._done + sum(self._fraction.values()))
        if not ok:
            self._say(f"{name}: FAILED: {entry.error['message'] if entry.error else 'unknown error'}")

    def abort(self) -> None:
        self.bars.stop()  # give the terminal back

    def close(self, summary: Any) -> None:
        self.bars.stop()
        super().close(summary)


def make_reporter(stream: IO[str] | None = None) -> PlainReporter:
    """The rich display when ``stream`` (default stdout) is a terminal, plain lines otherwise."""
    stream = stream or sys.stdout
    return RichReporter() if stream.isatty() else PlainReporter(stream)
