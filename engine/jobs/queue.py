"""The job queue: one model worker, a crash-proof journal, and a cache of encoded source regions.

* One worker thread runs jobs one at a time (the model is shared and the CPU is the bottleneck);
  ``draft`` jobs jump ahead of ``full`` ones, otherwise first come, first served.
* A job's parameters are fixed at submission: the request with live values filled in and a seed
  drawn, so a knob turned later or a restart never changes what a queued job renders.
* Every job and every published take is recorded in an SQLite journal (WAL, synchronous=FULL)
  *before* anyone is told about it, so after a crash or ``kill -9`` the engine lists every job and
  resumes unfinished ones in the same work folder, where the renderer keeps its window codes. A take's
  path is journalled before its file is published and marked after, so each file appears exactly once.
* Events (progress, take done, finished) go to one listener, called under the queue's lock so a
  client always sees ``accepted`` before a job's progress and ``cancelled`` before ``finished``.
"""

from __future__ import annotations

import heapq
import logging
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from engine.errors import ErrorCode
from engine.generate.validate import validate
from engine.io import publish as render
from engine.params import LiveParams
from engine.request import RenderRequest, RequestError
from engine.runtime.device import release_cpu_memory
from engine.runtime.progress import Cancelled, Progress, ProgressCallback

from .cache import SourceCache
from .journal import Journal
from .records import ACTIVE, MAX_QUEUED, STATE_DIR, Job, JobEvent, JobFinished, JobProgress, TakeDone, TakeRecord

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5  # progress is re-sent at least this often while a job is queued or running

Renderer = Callable[..., list]  # engine.generate.render.render(models, req, progress, cancel, workdir, cache=None)


class JobQueue:
    """Accepts render requests, runs them one at a time on a worker thread, reports through ``on_event``."""

    def __init__(self, render_dir: Path, models: Any, renderer: Renderer, on_event: Callable[[JobEvent], None],
                 live: LiveParams | None = None, max_queued: int = MAX_QUEUED, tick: float = TICK_SECONDS) -> None:
        self.render_dir, self.models, self.renderer, self.on_event = Path(render_dir), models, renderer, on_event
        self.live, self.max_queued, self.tick = live or LiveParams(), max_queued, tick
        state = self.render_dir / STATE_DIR
        (state / "work").mkdir(parents=True, exist_ok=True)
        self.work_root, self.cache = state / "work", SourceCache(state / "cache")
        self.journal = Journal(state / "journal.sqlite3")
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._stopping = False
        self._threads: list[threading.Thread] = []
        for job in self.journal.load():
            self._jobs[job.id] = job
            if job.state in ACTIVE:  # interrupted by a crash or a stop: run it again, resuming
                job.state, job.stage = "queued", "queued"
                self._push(job)
        self._seq = max((j.seq for j in self._jobs.values()), default=0)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for name, target in (("jobs-worker", self._work), ("jobs-ticker", self._ticker)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after interrupting the running job; the journal keeps it active, so the next start resumes it."""
        with self._lock:
            self._stopping = True
            for job in self._jobs.values():
                if job.state == "running":
                    job.cancel.cancel()
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout)
        self.journal.close()

    # ------------------------------------------------------------------ requests

    def submit(self, req: RenderRequest, owner: str, announce: Callable[[Job], None] | None = None,
               given: frozenset[str] | None = None) -> Job:
        """Queue ``req`` with live values for the fields not in ``given``; ``announce(job)`` runs after the
        journal commit and before any event of the job. Raises ``RequestError`` (busy, source_not_found,
        not_audio, bad_value, unknown_label)."""
        validate(req, self.models)  # unknown artists/genres fail at submission, not when the job runs
        req = self.live.fill(req, given)
        if req.seed is None:
            req = replace(req, seed=secrets.randbelow(2**31))
        with self._lock:
            if self._stopping:
                raise RequestError(ErrorCode.BUSY, "the engine is stopping; retry when it is back")
            if sum(j.state == "queued" for j in self._jobs.values()) >= self.max_queued:
                raise RequestError(ErrorCode.BUSY, f"the queue is full ({self.max_queued} jobs); retry later")
            self._seq += 1
            job = Job(uuid.uuid4().hex, self._seq, req, owner)
            self.journal.add(job)
            self._jobs[job.id] = job
            if announce:
                announce(job)
            self._push(job)
            self._emit_progress(job)
            self._wake.notify()
        return job

    def cancel(self, job_id: str | None, announce: Callable[[int], None] | None = None) -> int:
        """Cancel one job (or every active one when ``job_id`` is None); returns how many were active.

        Queued jobs finish at once; the running one stops at the renderer's next step."""
        with self._lock:
            if job_id is not None:
                targets = [self.get(job_id)]
            else:
                targets = [j for j in self._jobs.values() if j.state in ACTIVE]
            targets = [j for j in targets if j.state in ACTIVE and not j.user_cancelled]
            for job in targets:
                job.user_cancelled = True
                job.cancel.cancel()
            if announce:
                announce(len(targets))
            for job in targets:
                if job.state == "queued":
                    self._finish(job, "cancelled", (ErrorCode.CANCELLED, "cancelled before it started"))
        return len(targets)

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise RequestError(ErrorCode.UNKNOWN_JOB, f"no job {job_id!r} (see status for the known jobs)", "job_id")
        return job

    def jobs(self, limit: int = 50) -> list[Job]:
        """Newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.seq, reverse=True)[:limit]

    # ------------------------------------------------------------------ worker

    def _push(self, job: Job) -> None:
        heapq.heappush(self._heap, (0 if job.request.quality == "draft" else 1, job.seq, job.id))

    def _next(self) -> Job | None:
        with self._lock:
            while not self._stopping:
                while self._heap:
                    job = self._jobs[heapq.heappop(self._heap)[2]]
                    if job.state == "queued":
                        job.state = "running"
                        try:
                            self.journal.set_state(job)
                        except Exception:  # not journalled as running: back in the queue, tried after the pause
                            job.state = "queued"
                            self._push(job)
                            raise
                        return job
                release_cpu_memory()  # idle: give the last job's peak memory back to the OS
                self._wake.wait()
            return None

    def _work(self) -> None:
        while True:
            try:
                job = self._next()
                if job is None:
                    return
                self._run(job)
            except Exception:  # e.g. the journal's disk is full: log it and keep serving the queue
                log.exception("job worker error")
                time.sleep(1.0)

    def _run(self, job: Job) -> None:
        workdir = self.work_root / job.id
        try:
            if len(job.published) < job.request.takes:
                rendered = self.renderer(self.models, job.request, self._progress_callback(job), job.cancel,
                                         workdir, cache=self.cache)
                self._set_progress(job, 0.99, "writing", 0.0, force=True)
                for take in rendered:
                    job.cancel.raise_if_cancelled()
                    self._publish(job, take, workdir)
            self._finish(job, "done", None)
        except Cancelled:
            if self._stopping and not job.user_cancelled:
                return  # stays "running" in the journal: the next start resumes it
            self._finish(job, "cancelled", (ErrorCode.CANCELLED, "cancelled while rendering"))
        except RequestError as exc:
            self._finish(job, "failed", (exc.code, str(exc)))
        except Exception as exc:  # the worker must survive anything the model or the writer throws
            log.exception("job %s failed", job.id)
            self._finish(job, "failed", (ErrorCode.RENDER_FAILED, f"{type(exc).__name__}: {exc}"))

    def _publish(self, job: Job, rendered: Any, workdir: Path) -> None:
        record = job.takes.get(rendered.take)
        if record is not None and record.published:
            return
        req = job.request
        if record is None:  # journal the path first, so a crash mid-publish resumes into the same file
            record = TakeRecord(rendered.take, str(render.take_path(self.render_dir, job.id, rendered.take, req)))
            self.journal.save_take(job.id, record)
            job.takes[rendered.take] = record
        meta = render.provenance(job.id, req, rendered, self.models.name, self.models.licence())
        render.publish_take(Path(record.path), workdir / "staging", rendered, req, meta)
        record.position, record.length = float(rendered.position), len(rendered.audio) / req.sample_rate
        record.published = True
        self.journal.save_take(job.id, record)
        self._emit(TakeDone(job.id, job.owner, record.take, record.path, record.position, record.length))

    def _finish(self, job: Job, state: str, error: tuple[str, str] | None) -> None:
        with self._lock:
            job.state, job.error = state, error
            job.fraction, job.stage, job.eta = (1.0 if state == "done" else job.fraction), state, 0.0
            self.journal.set_state(job)
            self._emit(JobFinished(job.id, job.owner, state, len(job.published), error))
        shutil.rmtree(self.work_root / job.id, ignore_errors=True)

    # ------------------------------------------------------------------ progress

    def _progress_callback(self, job: Job) -> ProgressCallback:
        def callback(p: Progress) -> None:
            self._set_progress(job, min(max(p.fraction, 0.0), 0.99), p.stage, p.eta_seconds,
                               force=p.stage != job.stage)
        return callback

    def _set_progress(self, job: Job, fraction: float, stage: str, eta: float, force: bool) -> None:
        with self._lock:
            job.fraction, job.stage, job.eta = fraction, stage, eta
            if job.throttle.ready(force):
                self._emit(JobProgress(job.id, job.owner, job.fraction, job.stage, job.eta))

    def _emit_progress(self, job: Job) -> None:
        job.throttle.ready(force=True)
        self._emit(JobProgress(job.id, job.owner, job.fraction, job.stage, job.eta))

    def _emit(self, event: JobEvent) -> None:
        with self._lock:  # one order for everything a client hears about a job
            try:
                self.on_event(event)
            except Exception:  # a broken listener must not stop the worker
                log.exception("job event listener failed on %s", event)

    def _ticker(self) -> None:
        """Re-send the last progress of every active job so clients hear at least once per ``tick``."""
        while not self._stopping:
            time.sleep(self.tick / 4)
            with self._lock:
                for job in self._jobs.values():
                    if job.state in ACTIVE and job.throttle.idle() >= self.tick:
                        self._emit_progress(job)
