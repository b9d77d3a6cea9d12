"""The job queue with a small real renderer (a sine, step codes saved in the work folder), no model."""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.generate.source import check_source
from engine.io.codes import CodesFile
from engine.io.takes import RenderedTake
from engine.jobs import queue as jobs_module
from engine.jobs.queue import JobFinished, JobProgress, JobQueue, SourceCache, TakeDone
from engine.params import LiveParams
from engine.request import RenderRequest, RequestError
from engine.runtime.progress import Progress
from engine.weights.debug import debug_models

pytestmark = pytest.mark.timeout(60)


class Crash(BaseException):
    """Stands in for kill -9: escapes every ``except Exception`` and leaves the journal as it was."""


class SineRenderer:
    """The renderer's contract in miniature: ``steps`` saved as files in ``workdir`` (a second call
    resumes after the last saved step), progress per step, cancel checked between steps."""

    def __init__(self, steps: int = 4, step_seconds: float = 0.01, crash_at: int | None = None,
                 fail: BaseException | None = None) -> None:
        self.steps, self.step_seconds, self.crash_at, self.fail = steps, step_seconds, crash_at, fail
        self.calls: list[tuple[str, int, RenderRequest]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.inside = threading.Event()
        self.crashed = threading.Event()

    def __call__(self, models, req, progress, cancel, workdir: Path, cache=None) -> list[RenderedTake]:
        workdir.mkdir(parents=True, exist_ok=True)
        first = len(list(workdir.glob("step*.npy")))
        self.calls.append((workdir.name, first, req))
        self.inside.set()
        if self.fail is not None:
            raise self.fail
        for i in range(first, self.steps):
            assert self.gate.wait(20)
            cancel.raise_if_cancelled()
            if i == self.crash_at:
                self.crashed.set()
                raise Crash()
            time.sleep(self.step_seconds)
            np.save(workdir / f"step{i}.npy", np.array([i]))
            progress(Progress("sampling level 2", i + 1, self.steps, 0.9 * (i + 1) / self.steps, 0.1, 2))
        n = round(req.target_seconds * req.sample_rate)
        t = np.arange(n) / req.sample_rate
        return [RenderedTake(k, np.repeat(0.2 * np.sin(2 * np.pi * 220 * k * t)[:, None], req.channels, 1)
                             .astype(np.float32), req.position + 1.0, req.seed + k - 1, codes={})
                for k in range(1, req.takes + 1)]


MODELS = debug_models()  # real (tiny) models: submission validates labels against them


class Events:
    """The queue's listener: records every event and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.items: list = []
        self.lock = threading.Condition()

    def __call__(self, event) -> None:
        with self.lock:
            self.items.append(event)
            self.lock.notify_all()

    def of(self, job_id: str, kind: type | None = None) -> list:
        with self.lock:
            return [e for e in self.items if e.job_id == job_id and (kind is None or isinstance(e, kind))]

    def wait_for(self, what: str, predicate, timeout: float = 20.0):
        """Wait (on the listener, no polling) until ``predicate()`` is truthy; returns its value."""
        with self.lock:
            if not self.lock.wait_for(predicate, timeout):
                raise AssertionError(f"no {what} within {timeout} s; events: {self.items[-10:]}")
            return predicate()

    def wait_finished(self, job_id: str, timeout: float = 20.0) -> JobFinished:
        return self.wait_for(f"finished event of job {job_id}", lambda: self.of(job_id, JobFinished), timeout)[0]


def req(mode: str = "generate", **fields) -> RenderRequest:
    return RenderRequest.from_fields(mode, {"seconds": 0.2, "sample_rate": 48000, "channels": 2, **fields})


def make(tmp_path: Path, renderer=None, **kw) -> tuple[JobQueue, Events, SineRenderer]:
    renderer = renderer or SineRenderer()
    events = Events()
    return JobQueue(tmp_path, MODELS, renderer, events, **kw), events, renderer


def wavs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.wav"))


def test_a_job_runs_to_a_published_take_with_events_in_order(tmp_path):
    q, events, _ = make(tmp_path)
    announced = []
    q.start()
    try:
        job = q.submit(req(takes=2, position=4.0), "127.0.0.1 9000", announce=lambda j: announced.append(
            (j.id, len(events.of(j.id)))))
        finished = events.wait_finished(job.id)
    finally:
        q.stop()
    assert announced == [(job.id, 0)]  # accepted goes out before the job's first event
    assert (finished.state, finished.takes, finished.error) == ("done", 2, None)
    seq = events.of(job.id)
    assert isinstance(seq[0], JobProgress) and seq[0].stage == "queued"
    assert [type(e) for e in seq[-3:]] == [TakeDone, TakeDone, JobFinished]
    for done in events.of(job.id, TakeDone):
        info = sf.info(done.path)
        assert (info.samplerate, info.channels, info.frames) == (48000, 2, 9600)
        assert done.position == 5.0 and done.length == pytest.approx(0.2) and done.path.startswith(str(tmp_path))
    assert not (tmp_path / ".jukebox" / "work" / job.id).exists()  # codes are dropped once the job is done
    assert q.get(job.id).summary(detail=True)["takes"][1]["take"] == 2


def test_drafts_jump_ahead_of_full_jobs(tmp_path):
    q, events, renderer = make(tmp_path)
    a, b = q.submit(req(), "h 1"), q.submit(req(), "h 1")
    c = q.submit(req(quality="draft"), "h 1")
    q.start()
    try:
        events.wait_finished(b.id)
    finally:
        q.stop()
    assert [call[0] for call in renderer.calls] == [c.id, a.id, b.id]


def test_the_queue_is_bounded_and_says_busy(tmp_path):
    q, _, _ = make(tmp_path, max_queued=2)
    q.submit(req(), "h 1")
    q.submit(req(), "h 1")
    with pytest.raises(RequestError) as info:
        q.submit(req(), "h 1")
    assert info.value.code == "busy"
    q.stop()


def test_live_values_are_captured_at_submission_and_explicit_fields_win(tmp_path):
    live = LiveParams()
    q, _, _ = make(tmp_path, live=live)
    live.set("temperature", 0.5)
    live.set("takes", 3.0)  # MIDI sends whole floats
    first = q.submit(req(), "h 1", given=frozenset({"seconds"}))
    explicit = q.submit(req(temperature=1.2, takes=1), "h 1", given=frozenset({"temperature", "takes"}))
    live.set("temperature", 1.5)
    assert (first.request.temperature, first.request.takes) == (0.5, 3)
    assert (explicit.request.temperature, explicit.request.takes) == (1.2, 1)
    assert first.request.seed is not None  # drawn at submission, so a resumed job samples the same music
    with pytest.raises(RequestError):
        live.set("temperature", 3.0)
    q.stop()


def test_cancel_a_queued_job_a_running_job_and_an_unknown_one(tmp_path):
    renderer = SineRenderer(steps=50)
    q, events, _ = make(tmp_path, renderer)
    renderer.gate.clear()
    q.start()
    try:
        running = q.submit(req(), "h 1")
        queued = q.submit(req(), "h 1")
        assert renderer.inside.wait(10)
        order = []
        assert q.cancel(queued.id, announce=lambda n: order.append(("cancelled", n, len(events.of(queued.id,
                                                                                                   JobFinished))))) == 1
        assert order == [("cancelled", 1, 0)] and events.of(queued.id, JobFinished)[0].state == "cancelled"
        assert q.cancel(running.id) == 1
        renderer.gate.set()
        finished = events.wait_finished(running.id)
        assert (finished.state, finished.error[0]) == ("cancelled", "cancelled")
        assert q.cancel(running.id) == 0  # already over
        with pytest.raises(RequestError) as info:
            q.cancel("nope")
        assert info.value.code == "unknown_job"
    finally:
        q.stop()
    assert len(renderer.calls) == 1 and wavs(tmp_path) == []


def test_progress_is_repeated_while_a_job_waits(tmp_path):
    renderer = SineRenderer(steps=1)
    q, events, _ = make(tmp_path, renderer, tick=0.1)
    renderer.gate.clear()
    q.start()
    try:
        q.submit(req(), "h 1")
        waiting = q.submit(req(), "h 1")
        started = time.monotonic()
        ticks = events.wait_for("4 progress events", lambda: len(events.of(waiting.id, JobProgress)) >= 4 and
                                events.of(waiting.id, JobProgress))
        assert {t.stage for t in ticks} == {"queued"}
        assert time.monotonic() - started >= 0.25  # repeated at the tick (0.1 s), not in a burst
        renderer.gate.set()
        events.wait_finished(waiting.id)
    finally:
        q.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crash_mid_render_resumes_from_the_saved_steps(tmp_path):
    q1, events1, renderer1 = make(tmp_path, SineRenderer(steps=5, crash_at=3))
    q1.start()
    job = q1.submit(req(takes=2), "127.0.0.1 9000")
    assert renderer1.crashed.wait(20)
    q1._threads[0].join(20)  # the worker dies in the "crash"; nothing more is written
    q1.stop()
    assert not events1.of(job.id, JobFinished)
    q2, events2, renderer2 = make(tmp_path, SineRenderer(steps=5))
    assert q2.get(job.id).state == "queued"
    q2.start()
    try:
        assert events2.wait_finished(job.id).state == "done"
    finally:
        q2.stop()
    assert renderer2.calls[0][1] == 3  # steps 0..2 came from the work folder
    assert renderer2.calls[0][2].seed == job.request.seed
    assert len(wavs(tmp_path)) == 2 and all(e.owner == "127.0.0.1 9000" for e in events2.of(job.id))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("crash_after_writing", [False, True])
def test_a_crash_while_publishing_leaves_each_file_exactly_once(tmp_path, monkeypatch, crash_after_writing):
    real = jobs_module.render.publish_take

    crashed = threading.Event()

    def crashing(path, staging, rendered, r, meta):
        if rendered.take == 2:
            if crash_after_writing:
                real(path, staging, rendered, r, meta)
            crashed.set()
            raise Crash()
        return real(path, staging, rendered, r, meta)

    monkeypatch.setattr(jobs_module.render, "publish_take", crashing)
    q1, events1, _ = make(tmp_path)
    q1.start()
    job = q1.submit(req(takes=3), "h 1")
    assert crashed.wait(20)
    q1._threads[0].join(20)  # the worker died in the "crash"
    q1.stop()
    assert len(events1.of(job.id, TakeDone)) == 1 and len(wavs(tmp_path)) == 1 + crash_after_writing
    monkeypatch.setattr(jobs_module.render, "publish_take", real)
    q2, events2, _ = make(tmp_path)
    q2.start()
    try:
        assert events2.wait_finished(job.id).takes == 3
    finally:
        q2.stop()
    names = wavs(tmp_path)
    assert len(names) == 3 and [n.split("-")[1] for n in names] == ["take1", "take2", "take3"]
    assert [e.take for e in events2.of(job.id, TakeDone)] == [2, 3]


def test_a_graceful_stop_keeps_the_running_job_for_the_next_start(tmp_path):
    renderer = SineRenderer(steps=50)
    q1, events1, _ = make(tmp_path, renderer)
    renderer.gate.clear()
    q1.start()
    job = q1.submit(req(), "h 1")
    assert renderer.inside.wait(10)
    threading.Timer(0.1, renderer.gate.set).start()
    q1.stop()
    assert not events1.of(job.id, JobFinished)
    q2, events2, _ = make(tmp_path, SineRenderer(steps=2))
    q2.start()
    try:
        assert events2.wait_finished(job.id).state == "done"
        assert [j.id for j in q2.jobs()] == [job.id]
    finally:
        q2.stop()


def test_renderer_errors_fail_the_job_and_the_worker_goes_on(tmp_path):
    class Flaky(SineRenderer):
        def __call__(self, models, r, *args, **kw):
            if r.lyrics == "nobody":  # errors the renderer raises once the job runs
                raise RequestError("unknown_label", "Unknown artist 'nobody'.", "artist")
            if r.lyrics == "boom":
                raise RuntimeError("out of memory")
            return super().__call__(models, r, *args, **kw)

    q, events, _ = make(tmp_path, Flaky())
    q.start()
    try:
        bad = q.submit(req(lyrics="nobody"), "h 1")
        boom = q.submit(req(lyrics="boom"), "h 1")
        good = q.submit(req(), "h 1")
        assert events.wait_finished(bad.id).error[0] == "unknown_label"
        assert events.wait_finished(boom.id).error == ("render_failed", "RuntimeError: out of memory")
        assert events.wait_finished(good.id).state == "done"
    finally:
        q.stop()
    status = {j.id: j.summary() for j in q.jobs()}
    assert status[boom.id]["state"] == "failed" and status[boom.id]["error"]["code"] == "render_failed"


def test_bad_sources_fail_at_submission(tmp_path):
    wav = tmp_path / "in.wav"
    sf.write(wav, np.zeros((44100, 1), np.float32), 44100)
    (tmp_path / "notes.txt").write_text("not audio")
    check_source(req("continue", source=str(wav), start=0.5, length=0.5))
    cases = {"source_not_found": dict(source=str(tmp_path / "missing.wav")),
             "not_audio": dict(source=str(tmp_path / "notes.txt")),
             "bad_value": dict(source="relative.wav")}
    for code, fields in cases.items():
        with pytest.raises(RequestError) as info:
            check_source(req("continue", **fields))
        assert info.value.code == code
    for region in (dict(start=2.0), dict(start=0.5, length=0.6)):
        with pytest.raises(RequestError) as info:
            check_source(req("continue", source=str(wav), **region))
        assert info.value.code == "not_audio"


def test_the_source_cache_stores_codes_by_key(tmp_path):
    cache = SourceCache(tmp_path / "cache")
    codes = {0: np.arange(8)[None], 2: np.array([[3, 1]])}
    assert cache.get("ab12") is None
    cache.put("ab12", CodesFile(codes, (8, 32, 128), 22050, 64, "m"))
    got = cache.get("ab12")
    assert got.model == "m" and got.n_samples == 64
    assert set(got.codes) == {0, 2} and all(np.array_equal(got.codes[k], codes[k]) for k in codes)
    with pytest.raises(ValueError, match="bad cache key"):
        cache.get("../escape")


def test_a_damaged_cache_entry_is_dropped_and_encoded_again(tmp_path):
    cache = SourceCache(tmp_path)
    cache.put("abc123", CodesFile({0: np.arange(4)[None]}, (8, 32, 128)))
    assert np.array_equal(cache.get("abc123").codes[0], np.arange(4)[None])
    (tmp_path / "abc123.npz").write_bytes(b"")  # e.g. a crash of an older version mid-write
    assert cache.get("abc123") is None and not (tmp_path / "abc123.npz").exists()


# ---------------------------------------------------------------- failures around the renderer


def _alive(q: JobQueue) -> bool:
    return all(t.is_alive() for t in q._threads)


@pytest.mark.parametrize("failing_write,boom", [(0, False), (1, False), (2, False), (3, False), (4, False), (2, True)],
                         ids=["submit", "running", "take-path", "take-published", "finished", "failed"])
def test_a_journal_write_that_fails_once_fails_at_most_that_job_and_the_worker_goes_on(tmp_path, failing_write, boom):
    """A job writes the journal five times (submitted, running, its take's path, the take published, finished; a job
    the renderer fails: submitted, running, failed). When one of them raises once (disk full, I/O error), the
    submitter hears of it or the job ends with one finished event, nothing stays "running" forever, and the next
    job runs."""

    class Boom(SineRenderer):
        def __call__(self, models, r, *args, **kw):
            if r.lyrics == "boom":
                raise RuntimeError("the model fell over")
            return super().__call__(models, r, *args, **kw)

    q, events, _ = make(tmp_path, Boom())
    real, count = q.journal._write, [0]

    def flaky(sql, args):
        count[0] += 1
        if count[0] == failing_write + 1:
            raise sqlite3.OperationalError("disk I/O error")
        return real(sql, args)

    q.journal._write = flaky
    q.start()
    try:
        if failing_write == 0:
            with pytest.raises(RequestError) as info:  # not "internal": the producer reads what is wrong
                q.submit(req(), "h 1")
            assert info.value.code == "render_failed" and str(info.value).startswith("not accepted: I/O error: ")
            assert q.jobs() == []
        else:
            first = q.submit(req(lyrics="boom" if boom else ""), "h 1")
            finished = events.wait_finished(first.id)
            assert len(events.of(first.id, JobFinished)) == 1
            if boom:
                assert finished.error == ("render_failed", "RuntimeError: the model fell over")
            elif failing_write in (1, 4):  # before anything was rendered, or after everything was published
                assert (finished.state, finished.takes) == ("done", 1)
            else:  # the take's journal record failed: the job says so (its file may exist: nothing is lost)
                assert finished.state == "failed" and finished.error[0] == "render_failed"
        second = q.submit(req(), "h 1")
        assert events.wait_finished(second.id).state == "done"
        assert _alive(q) and not [j for j in q.jobs() if j.state in ("queued", "running")]
    finally:
        q.stop()


def test_a_listener_that_raises_loses_no_job(tmp_path):
    seen = Events()

    def broken(event):
        seen(event)
        raise ConnectionResetError("the client went away")

    q = JobQueue(tmp_path, MODELS, SineRenderer(), broken)
    q.start()
    try:
        jobs = [q.submit(req(takes=2), "h 1"), q.submit(req(), "h 1")]
        for job in jobs:
            assert seen.wait_finished(job.id).state == "done"
        assert _alive(q)
    finally:
        q.stop()
    assert len(wavs(tmp_path)) == 3
    assert [len(seen.of(j.id, TakeDone)) for j in jobs] == [2, 1]


def _rerender_request(tmp_path: Path) -> RenderRequest:
    wav = tmp_path / "source.wav"
    t = np.arange(22050) / 44100
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100)
    return req("rerender", source=str(wav), start=0.1, length=0.2, quality="draft", seconds=0.2)


def test_a_region_cache_that_cannot_be_written_does_not_fail_the_job(tmp_path, monkeypatch, caplog):
    from engine.generate.render import render

    cache_dir = tmp_path / "renders" / ".jukebox" / "cache"
    real = CodesFile.save

    def disk_full(self, path, **kw):
        if Path(path).parent == cache_dir:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, path, **kw)

    monkeypatch.setattr(CodesFile, "save", disk_full)
    q, events, _ = make(tmp_path / "renders", render)
    q.start()
    try:
        with caplog.at_level(logging.WARNING, logger="engine.jobs.cache"):
            request = _rerender_request(tmp_path)  # written once: rewriting the source under a running job races it
            jobs = [q.submit(request, "h 1") for _ in range(2)]
            for job in jobs:
                finished = events.wait_finished(job.id, timeout=60)
                assert (finished.state, finished.error) == ("done", None)
    finally:
        q.stop()
    assert len(wavs(tmp_path / "renders")) == 2 and not list(cache_dir.glob("*.npz"))
    assert "region cache not written" in caplog.text and "No space left" in caplog.text


def test_a_region_cache_folder_that_is_not_a_folder_does_not_fail_the_job(tmp_path):
    from engine.generate.render import render

    (tmp_path / "renders" / ".jukebox").mkdir(parents=True)
    (tmp_path / "renders" / ".jukebox" / "cache").write_text("a file where the cache folder should be")
    q, events, _ = make(tmp_path / "renders", render)
    q.start()
    try:
        job = q.submit(_rerender_request(tmp_path), "h 1")
        finished = events.wait_finished(job.id, timeout=60)
        assert (finished.state, finished.error) == ("done", None)
    finally:
        q.stop()


def test_unreadable_journal_rows_are_skipped_and_the_rest_resumes(tmp_path, caplog):
    q, _, _ = make(tmp_path)
    good = q.submit(req(takes=1), "127.0.0.1 9000")  # queued, never run: the next start runs it
    q.stop()
    db = sqlite3.connect(tmp_path / ".jukebox" / "journal.sqlite3")
    rows = [("bad-json", 10, "{not json"), ("not-an-object", 11, "[1, 2]"), ("null-request", 12, None),
            ("no-mode", 13, json.dumps({"seconds": 1.0})), ("bad-value", 14, json.dumps({"mode": "generate",
                                                                                       "seconds": -1})),
            ("unknown-mode", 15, json.dumps({"mode": "remix"})), ("null-seq", None, json.dumps({"mode": "generate"}))]
    with db:
        db.executemany("INSERT INTO jobs VALUES (?, ?, ?, 'h 1', 'queued', 0, NULL, NULL)", rows)
        db.execute("INSERT INTO takes VALUES ('no-such-job', 1, '/x.wav', 0, 1, 1)")
    db.close()
    with caplog.at_level(logging.WARNING, logger="engine.jobs.journal"):
        q2, events, _ = make(tmp_path)
    assert [j.id for j in q2.jobs()] == [good.id]
    assert all(name in caplog.text for name, _, _ in rows), caplog.text
    q2.start()
    try:
        assert events.wait_finished(good.id).state == "done"
        assert q2.submit(req(), "h 1").seq > good.seq
    finally:
        q2.stop()
