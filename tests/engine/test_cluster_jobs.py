"""The engine's jobs on a Dask cluster (``serve --cluster``): the queue, journal, progress and cancel stay in the
engine; a two-worker LocalCluster on 127.0.0.1 (worker processes) renders them. The takes equal the ones this
process renders, a worker killed mid-job costs nothing but time, and cancel reaches the worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from engine.batch.cluster import ClusterRenderer
from engine.dev.demo import example_path
from engine.generate.render import render
from engine.jobs.records import JobProgress

from .test_jobs import make, req

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None) as c:
        renderer = ClusterRenderer(c.scheduler_address, "debug")
        try:
            yield c, renderer
        finally:
            renderer.close()


def _request(seed: int, seconds: float):
    return req("continue", source=str(example_path()), start=0.5, length=1.0, seconds=seconds, seed=seed, takes=2,
               quality="full")


def _render_here(request, folder: Path) -> None:
    """The job rendered in this process, as the workers render it (Dask's nanny starts them with one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local, events, _ = make(folder, renderer=render)
        local.start()
        job = local.submit(request, "h 1")
        assert events.wait_finished(job.id, timeout=120).state == "done"
        local.stop()
    finally:
        torch.set_num_threads(threads)


def _same_wavs(ours: Path, theirs: Path, takes: int) -> None:
    import soundfile as sf

    a, b = sorted(ours.glob("*.wav")), sorted(theirs.glob("*.wav"))
    assert len(a) == len(b) == takes
    for x, y in zip(a, b):
        assert (sf.read(x)[0] == sf.read(y)[0]).all(), (x.name, y.name)


def _worker_running(renderer: ClusterRenderer, deadline: float) -> str:
    """The address of the worker processing the one job task (waits on the scheduler's view of it)."""
    while time.monotonic() < deadline:
        busy = [w for w, keys in renderer.client.processing().items() if any("jukebox-job-" in k for k in keys)]
        if busy:
            return busy[0]
        time.sleep(0.05)
    raise AssertionError("no worker took the job")


def test_a_cluster_job_gives_this_machines_takes_even_when_its_worker_is_killed(cluster, tmp_path):
    _, renderer = cluster
    here, there = tmp_path / "here", tmp_path / "there"
    _render_here(_request(seed=17, seconds=1.5), here)
    q, events, _ = make(there, renderer=renderer)
    q.start()
    try:
        job = q.submit(_request(seed=17, seconds=1.5), "h 1")
        worker = _worker_running(renderer, time.monotonic() + 60)
        events.wait_for("progress from the worker", lambda: any(e.fraction > 0.05 for e in events.of(job.id, JobProgress)), 60)
        pid = renderer.client.run(os.getpid, workers=[worker])[worker]
        os.kill(pid, signal.SIGKILL)  # mid-job: the scheduler gives the task to the other worker
        finished = events.wait_finished(job.id, timeout=180)
        assert finished.state == "done" and finished.takes == 2, finished
    finally:
        q.stop()
    _same_wavs(here, there, 2)


def test_two_jobs_run_at_once_on_two_workers(cluster, tmp_path):
    _, renderer = cluster
    q, events, _ = make(tmp_path, renderer=renderer, workers=renderer.workers)
    q.start()
    try:
        jobs = [q.submit(_request(seed=s, seconds=3.0), "h 1") for s in (1, 2)]
        deadline, both = time.monotonic() + 60, False
        while not both and time.monotonic() < deadline:  # the scheduler's view: one job task on each worker
            busy = [w for w, keys in renderer.client.processing().items() if any("jukebox-job-" in k for k in keys)]
            both = len(busy) == 2
            time.sleep(0.05)
        assert both, "the two jobs did not run at once"
        assert [events.wait_finished(j.id, timeout=120).state for j in jobs] == ["done", "done"]
    finally:
        q.stop()


def test_cancel_reaches_the_worker_and_the_job_ends_cancelled(cluster, tmp_path):
    _, renderer = cluster
    q, events, _ = make(tmp_path, renderer=renderer)
    q.start()
    try:
        job = q.submit(_request(seed=3, seconds=6.0), "h 1")
        events.wait_for("progress from the worker", lambda: any(e.fraction > 0.05 for e in events.of(job.id, JobProgress)), 60)
        started = time.monotonic()
        q.cancel(job.id)
        assert events.wait_finished(job.id, timeout=30).state == "cancelled"
        assert time.monotonic() - started < 5
        def executing() -> int:  # tasks still running in worker threads (a dropped future does not stop them)
            return sum(renderer.client.run(lambda dask_worker: len(dask_worker.state.executing)).values())

        deadline = time.monotonic() + 3  # the worker stopped at its next report, long before the job's end
        while executing() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert executing() == 0
    finally:
        q.stop()
    assert not list(tmp_path.glob("*.wav"))


def test_serve_with_a_cluster_renders_osc_jobs_there(cluster, tmp_path):
    """``serve --cluster``: the settings reach start_engine, which renders on the workers (one job thread each)."""
    from bridge.server import load_config, start_engine
    from tests.bridge.test_osc_e2e import DRAFT, Client

    c, renderer = cluster

    def executed() -> int:
        return sum(renderer.client.run(lambda dask_worker: dask_worker.state.executed_count).values())

    settings = tmp_path / "config.toml"
    settings.write_text(f'cluster = "{c.scheduler_address}"\n')
    cfg = load_config(settings, {"model": "debug", "port": 0, "web": False, "midi": False,
                                 "render_dir": tmp_path / "renders"})
    before = executed()
    eng = start_engine(cfg)
    client = Client(eng.address[1])
    try:
        assert eng.cluster is not None and eng.jobs.workers == 2
        client.send("generate", "g", {"seconds": 0.5, **DRAFT})
        job = client.wait("accepted", "g")[1]
        assert client.wait("finished", job, timeout=120)[1] == "done"
        assert executed() == before + 1  # the job's one task ran on a worker
    finally:
        client.close(), eng.stop()
    assert len(list((tmp_path / "renders").glob("*.wav"))) == 1


def test_one_long_job_spreads_its_lanes_over_the_idle_worker_and_gives_this_machines_takes(cluster, tmp_path):
    """The lanes of one job's upsampling levels are split between the job's worker and the idle one (each lane
    draws from its own generators), and the takes are the ones this process renders with every lane here."""
    from engine.generate.sampling import SamplingParams, level_lanes
    from engine.weights.debug import debug_models

    _, renderer = cluster
    request = _request(seed=23, seconds=1.5)
    m = debug_models()
    top_hop = m.vqvae.hop_lengths[-1]
    total0 = round((1.0 + 1.5) * m.sample_rate) // top_hop * top_hop // m.vqvae.hop_lengths[0]  # prompt + new
    assert len(level_lanes(m.priors[0], 0, total0, SamplingParams(), 2)) >= 2  # level 0 has lanes to spread

    def executed() -> dict[str, int]:
        return renderer.client.run(lambda dask_worker: dask_worker.state.executed_count)

    _render_here(request, tmp_path / "here")
    before = executed()
    q, events, _ = make(tmp_path / "there", renderer=renderer)
    q.start()
    try:
        job = q.submit(request, "h 1")
        assert events.wait_finished(job.id, timeout=120).state == "done"
    finally:
        q.stop()
    after = executed()
    assert all(after[w] > before.get(w, 0) for w in after), (before, after)  # both workers sampled
    _same_wavs(tmp_path / "here", tmp_path / "there", 2)
