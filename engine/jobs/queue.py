"""The job queue: one model worker, a crash-proof journal, and a cache of encoded source regions.

* One worker thread runs jobs one at a time (the model is shared and the CPU is the bottleneck).
  Clients (a job's ``owner``: host and reply port) take turns, round-robin, so one client's twenty
  drafts never starve another's job; within a client ``draft`` jobs go before ``full`` ones, otherwise
  first come, first served.
* One engine per render folder: the queue holds ``.jukebox/engine.lock`` (``lock.py``) while it runs.
* A job's parameters are fixed at submission: the request with live values filled in and a seed
  drawn, so a knob turned later or a restart never changes what a queued job renders.
* Every job and every published take is recorded in an SQLite journal (WAL, synchronous=FULL)
  *before* anyone is told about it, so after a crash or ``kill -9`` the engine lists every job and
  resumes unfinished ones in the same work folder, where the renderer keeps its window codes. A take's
  path is journalled before its file is published and marked after, so each file appears exactly once.
  A job the engine died in ``max_crashes`` times (default 3) is ended as failed instead of resumed again,
  and a cancel is journalled at once, so a cancelled job never comes back after a restart.
* Nothing hangs on a broken disk: a journal or render folder that cannot be written (full, read-only,
  deleted) ends the job as ``failed`` with a message naming the problem, the path and what to do.
* Every published take's codes are saved in ``.jukebox/codes/<take>.npz`` (its sidecar's ``codes``), what a
  ``refine`` of a draft starts from; the newest ``codes_retention`` (default 500) are kept, older ones pruned.
* Events (progress, take done, finished) go to one listener, called under the queue's lock so a
  client always sees ``accepted`` before a job's progress and ``cancelled`` before ``finished``.
"""

from __future__ import annotations

import errno
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
from engine.generate.refine import prepare_refine
from engine.generate.validate import validate
from engine.io import publish as render
from engine.io.files import storage_message
from engine.io.takes import CODES_RETENTION, prune_take_codes, save_take_codes
from engine.params import LiveParams
from engine.request import RenderRequest, RequestError
from engine.runtime.device import release_cpu_memory
from engine.runtime.progress import Cancelled, Progress, ProgressCallback

from .cache import SourceCache
from .journal import Journal
from .lock import FolderLock
from .records import ACTIVE, MAX_QUEUED, STATE_DIR, Job, JobEvent, JobFinished, JobProgress, TakeDone, TakeRecord

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5  # progress is re-sent at least this often while a job is queued or running
MAX_CRASHES = 3  # engine deaths while a job runs before it is no longer resumed
JOURNAL_TRIES = 3  # attempts to journal a job as running (one second apart) before it fails

Renderer = Callable[..., list]  # engine.generate.render.render(models, req, progress, cancel, workdir, cache=None)


class JobQueue:
    """Accepts render requests, runs them on ``workers`` threads (one, unless the renderer sends jobs elsewhere, as
    ``batch.cluster.ClusterRenderer`` does), reports through ``on_event``."""

    def __init__(self, render_dir: Path, models: Any, renderer: Renderer, on_event: Callable[[JobEvent], None],
                 live: LiveParams | None = None, max_queued: int = MAX_QUEUED, tick: float = TICK_SECONDS,
                 lock: FolderLock | None = None, max_crashes: int = MAX_CRASHES,
                 codes_retention: int = CODES_RETENTION, workers: int = 1) -> None:
        """``lock``: this folder's ``FolderLock`` (taken here if not yet held; ``FolderLocked`` when another engine
        holds it); it is released by ``stop``."""
        self.render_dir, self.models, self.renderer, self.on_event = Path(render_dir), models, renderer, on_event
        self.live, self.max_queued, self.tick, self.max_crashes = live or LiveParams(), max_queued, tick, max_crashes
        self.workers = max(1, workers)
        state = self.render_dir / STATE_DIR
        (state / "work").mkdir(parents=True, exist_ok=True)
        self.lock = lock or FolderLock(state)
        if not self.lock.held:
            self.lock.acquire()
        self.work_root, self.cache = state / "work", SourceCache(state / "cache")
        # every published take's codes (what refine starts from), the newest ``codes_retention`` kept
        self.codes_dir, self.codes_retention = state / "codes", codes_retention
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, list[tuple[int, int, str]]] = {}  # owner -> its queued jobs; dict order: turns
        self._journal_failures: dict[str, int] = {}
        self._ended: list[Job] = []  # ended while loading the journal: their finished events go out at start
        self._stopping = False
        self._threads: list[threading.Thread] = []
        try:
            self.journal = Journal(state / "journal.sqlite3")
            for job in self.journal.load():
                self._jobs[job.id] = job
                if job.state in ACTIVE:  # interrupted by a crash or a stop: run it again, resuming
                    self._resume(job)
        except BaseException:
            self.lock.release()
            raise
        self._seq = max((j.seq for j in self._jobs.values()), default=0)

    def _resume(self, job: Job) -> None:
        if job.error and job.error[0] == ErrorCode.CANCELLED:  # cancelled, then the engine died before it stopped
            return self._end_at_load(job, "cancelled", (ErrorCode.CANCELLED, job.error[1] or "cancelled"))
        if job.state == "running":  # the engine died while it ran (a graceful stop puts it back in the queue)
            try:
                crashes = self.journal.count_crash(job.id)
            except Exception as exc:  # not counted: still resumed, the journal's trouble shows when the job runs
                log.warning("journal: crash of job %s not counted: %s", job.id, exc)
                crashes = 1
            if crashes >= self.max_crashes:
                return self._end_at_load(job, "failed", (ErrorCode.RENDER_FAILED, (
                    f"the engine stopped {crashes} times while rendering this job (a crash, a kill or a power "
                    f"loss), so it was not resumed again. The engine's log says what happened; render it again, "
                    f"perhaps shorter, with fewer takes or as a draft.")))
            log.warning("resuming job %s after the engine stopped while it ran (%d of %d tries)", job.id, crashes,
                        self.max_crashes)
        job.state, job.stage = "queued", "queued"
        self._push(job)

    def _end_at_load(self, job: Job, state: str, error: tuple[str, str]) -> None:
        job.state, job.stage, job.error, job.eta = state, state, error, 0.0
        try:
            self.journal.set_state(job)
        except Exception as exc:
            log.warning("journal: job %s not recorded as %s: %s", job.id, state, exc)
        self._ended.append(job)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lock:  # whoever waited for these jobs hears how they ended
            for job in self._ended:
                self._emit(JobFinished(job.id, job.owner, job.state, len(job.published), job.error))
            self._ended.clear()
        workers = [(f"jobs-worker-{i}" if i else "jobs-worker", self._work) for i in range(self.workers)]
        for name, target in (*workers, ("jobs-ticker", self._ticker)):
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
        self.lock.release()

    # ------------------------------------------------------------------ requests

    def submit(self, req: RenderRequest, owner: str, announce: Callable[[Job], None] | None = None,
               given: frozenset[str] | None = None, check: Callable[[RenderRequest], None] | None = None) -> Job:
        """Queue ``req`` with live values for the fields not in ``given``; ``announce(job)`` runs after the
        journal commit and before any event of the job; ``check(req)`` (e.g. the render-time limit) sees the
        request as it will run, before anything is validated or written. Raises ``RequestError`` (busy,
        source_not_found, not_audio, bad_value, unknown_label, or what ``check`` raises)."""
        req, given = prepare_refine(req, given)  # refine: the draft's fields (refused without its codes)
        req = self.live.fill(req, given)
        if check is not None:
            check(req)
        warnings = validate(req, self.models)  # unknown artists/genres fail at submission, not when the job runs
        if req.seed is None:
            req = replace(req, seed=secrets.randbelow(2**31))
        with self._lock:
            if self._stopping:
                raise RequestError(ErrorCode.BUSY, "the engine is stopping; retry when it is back")
            if sum(j.state == "queued" for j in self._jobs.values()) >= self.max_queued:
                raise RequestError(ErrorCode.BUSY, f"the queue is full ({self.max_queued} jobs); retry later")
            job = Job(uuid.uuid4().hex, self._seq + 1, req, owner, warnings=warnings)
            try:
                self._check_folders()
                self.journal.add(job)
            except Exception as exc:
                message = storage_message(exc, self.journal.path)
                if message is None:
                    raise
                raise RequestError(ErrorCode.RENDER_FAILED, f"not accepted: {message}") from None
            self._seq += 1
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
                if job.state == "running":  # journalled now: a restart before the renderer stops ends the job
                    try:
                        self.journal.mark_cancelled(job, "cancelled while rendering")
                    except Exception as exc:
                        log.warning("journal: cancel of job %s not recorded: %s", job.id, exc)
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
        heapq.heappush(self._queues.setdefault(job.owner, []),
                       (0 if job.request.quality == "draft" else 1, job.seq, job.id))

    def _pop(self) -> Job | None:
        """The next job, round-robin between owners (the one served goes to the back of the turn), drafts first
        and then the oldest within an owner."""
        for owner in list(self._queues):
            heap = self._queues.pop(owner)
            while heap:
                job = self._jobs[heapq.heappop(heap)[2]]
                if job.state == "queued":  # cancelled jobs are skipped
                    if heap:
                        self._queues[owner] = heap
                    return job
        return None

    def _next(self) -> Job | None:
        with self._lock:
            while not self._stopping:
                job = self._pop()
                if job is None:
                    release_cpu_memory()  # idle: give the last job's peak memory back to the OS
                    self._wake.wait()
                    continue
                job.state = "running"
                try:
                    self.journal.set_state(job)
                except Exception as exc:  # not journalled as running: tried again after a pause, then failed
                    job.state = "queued"
                    tries = self._journal_failures[job.id] = self._journal_failures.get(job.id, 0) + 1
                    if tries < JOURNAL_TRIES and not self._stopping:
                        self._push(job)
                        raise
                    log.error("journal: job %s not recorded as running: %s", job.id, exc)
                    self._finish(job, "failed", self._failure(exc, self.journal.path))
                    continue
                self._journal_failures.pop(job.id, None)
                return job
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
            self._check_folders()
            if len(job.published) < job.request.takes:
                rendered = self.renderer(self.models, job.request, self._progress_callback(job), job.cancel,
                                         workdir, cache=self.cache)
                self._set_progress(job, 0.99, "writing", 0.0, force=True)
                for take in rendered:
                    job.cancel.raise_if_cancelled()
                    self._check_folders()
                    self._publish(job, take, workdir)
            self._finish(job, "done", None)
        except Cancelled:
            if self._stopping and not job.user_cancelled:  # a graceful stop: the next start resumes it
                job.state = "queued"  # not "running": that would count as a crash
                try:
                    self.journal.set_state(job)
                except Exception as exc:
                    log.warning("journal: job %s not put back in the queue: %s", job.id, exc)
                return
            self._finish(job, "cancelled", (ErrorCode.CANCELLED, "cancelled while rendering"))
        except RequestError as exc:
            self._finish(job, "failed", (exc.code, str(exc)))
        except Exception as exc:  # the worker must survive anything the model or the writer throws
            log.exception("job %s failed", job.id)
            self._finish(job, "failed", self._failure(exc, self.render_dir))

    def _check_folders(self) -> None:
        """The render folder and the journal are still where they were: a deleted render folder must not be
        recreated by the renderer's work folder with the jobs' journal gone."""
        for path in (self.render_dir, self.journal.path):
            if not path.exists():
                raise OSError(errno.ENOENT, "deleted while the engine ran", str(path))

    def _failure(self, exc: BaseException, where: Path) -> tuple[str, str]:
        """The error a producer reads: the problem, the path and what to do; never a bare exception name. A
        render folder deleted under the job is named as such, whichever of its files failed first."""
        try:
            self._check_folders()
        except OSError as missing:
            exc = missing
        message = storage_message(exc, where)
        if message is not None:
            return ErrorCode.RENDER_FAILED, message
        if isinstance(exc, MemoryError):
            return ErrorCode.RENDER_FAILED, ("out of memory while rendering: render a shorter region, fewer takes or "
                                             "a draft, or close other programs, then render again")
        text = str(exc).strip()
        if not text:
            return ErrorCode.RENDER_FAILED, (f"the render stopped with {type(exc).__name__} and no details; the "
                                             "engine's log has the traceback. Render again; report it if it repeats")
        return ErrorCode.RENDER_FAILED, f"{type(exc).__name__}: {text}"[:1000]

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
        if rendered.codes:  # saved before the sidecar that names them
            codes = save_take_codes(self.codes_dir, Path(record.path).stem, rendered, self.models.vqvae.hop_lengths,
                                    self.models.sample_rate, self.models.name, req.to_fields(), job.id)
            meta["codes"] = codes.relative_to(Path(record.path).parent).as_posix()
        render.publish_take(Path(record.path), workdir / "staging", rendered, req, meta)
        if rendered.codes:
            prune_take_codes(self.codes_dir, self.codes_retention)  # the oldest takes' codes beyond the retention
        record.position, record.length = float(rendered.position), len(rendered.audio) / req.sample_rate
        record.published = True
        self.journal.save_take(job.id, record)
        self._emit(TakeDone(job.id, job.owner, record.take, record.path, record.position, record.length))

    def _finish(self, job: Job, state: str, error: tuple[str, str] | None) -> None:
        with self._lock:
            job.state, job.error = state, error
            job.fraction, job.stage, job.eta = (1.0 if state == "done" else job.fraction), state, 0.0
            try:
                self.journal.set_state(job)
            except Exception:  # still told: the journal keeps the job active, so a restart ends it again (its
                log.exception("journal: job %s not recorded as %s", job.id, state)  # published takes are kept)
        shutil.rmtree(self.work_root / job.id, ignore_errors=True)  # before "finished": a listener sees the end
        self._emit(JobFinished(job.id, job.owner, state, len(job.published), error))

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
