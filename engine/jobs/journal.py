"""The crash-proof journal: every job and take in SQLite, committed and synced before anyone is told."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from engine.io.files import storage_errno
from engine.request import RenderRequest, RequestError

from .records import Job, TakeRecord

log = logging.getLogger(__name__)


class Journal:
    """Jobs and takes in SQLite; every write is committed (and synced) before it is reported."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        with self._storage():
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER, request TEXT, owner TEXT,"
                " state TEXT, submitted REAL, error_code TEXT, error_message TEXT);"
                "CREATE TABLE IF NOT EXISTS takes (job_id TEXT, take INTEGER, path TEXT, position REAL, length REAL,"
                " published INTEGER, PRIMARY KEY (job_id, take));"
                # how often the engine died while a job ran: a job that keeps killing it is not resumed forever
                "CREATE TABLE IF NOT EXISTS crashes (job_id TEXT PRIMARY KEY, count INTEGER);")

    def _write(self, sql: str, args: tuple) -> None:
        with self._lock, self._storage(), self._db:
            self._db.execute(sql, args)

    @contextlib.contextmanager
    def _storage(self) -> Iterator[None]:
        """SQLite's storage failures ("database or disk is full", "attempt to write a readonly database") as the
        ``OSError`` they are, naming the journal, so the producer reads "disk full: .../journal.sqlite3"."""
        try:
            yield
        except sqlite3.Error as exc:
            code = storage_errno(exc)
            if code is None:
                raise
            raise OSError(code, f"{os.strerror(code)} ({exc})", str(self.path)) from exc

    def add(self, job: Job) -> None:
        self._write("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                    (job.id, job.seq, json.dumps(job.request.to_fields()), job.owner, job.state, job.submitted))

    def set_state(self, job: Job) -> None:
        code, message = job.error or (None, None)
        self._write("UPDATE jobs SET state=?, error_code=?, error_message=? WHERE id=?",
                    (job.state, code, message, job.id))

    def mark_cancelled(self, job: Job, message: str) -> None:
        """A cancel asked for while the job runs: a restart ends the job instead of resuming it."""
        self._write("UPDATE jobs SET error_code=?, error_message=? WHERE id=?", ("cancelled", message, job.id))

    def count_crash(self, job_id: str) -> int:
        """One more engine death while ``job_id`` ran; returns how many so far."""
        with self._lock, self._storage(), self._db:
            self._db.execute("INSERT INTO crashes VALUES (?, 1) ON CONFLICT(job_id) DO UPDATE SET count=count+1",
                             (job_id,))
            return int(self._db.execute("SELECT count FROM crashes WHERE job_id=?", (job_id,)).fetchone()[0])

    def save_take(self, job_id: str, t: TakeRecord) -> None:
        self._write("INSERT OR REPLACE INTO takes VALUES (?, ?, ?, ?, ?, ?)",
                    (job_id, t.take, t.path, t.position, t.length, int(t.published)))

    def load(self) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT id, seq, request, owner, state, submitted, error_code, error_message"
                                    " FROM jobs ORDER BY seq").fetchall()
            take_rows = self._db.execute("SELECT job_id, take, path, position, length, published FROM takes").fetchall()
        jobs, known = {}, {f.name for f in dataclasses.fields(RenderRequest)}
        for id_, seq, request, owner, state, submitted, code, message in rows:
            try:  # written by an incompatible version, or damaged: list nothing we can't run, start anyway
                if not isinstance(seq, int):
                    raise ValueError(f"sequence number {seq!r}")
                fields = {k: v for k, v in json.loads(request).items() if k in known}
                req = RenderRequest.from_fields(fields.pop("mode"), fields)
            except (RequestError, KeyError, ValueError, TypeError, AttributeError) as exc:
                log.warning("journal: skipping job %s: %s: %s", id_, type(exc).__name__, exc)
                continue
            jobs[id_] = Job(id_, seq, req, owner, state, submitted, error=(code, message) if code else None)
        for job_id, take, path, position, length, published in take_rows:
            if job_id in jobs:
                jobs[job_id].takes[take] = TakeRecord(take, path, position, length, bool(published))
        return list(jobs.values())

    def close(self) -> None:
        with self._lock:
            self._db.close()
