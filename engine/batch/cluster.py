"""Batch rendering on a Dask distributed cluster: stems are tasks, each worker keeps its model warm.

``run_cluster`` is ``stems.run_local``'s twin: it takes the same ``StemJob`` list and yields
``StemResult``s, so ``batch.run_batch`` publishes and records them in the same manifest whichever
ran them. ``ModelPlugin`` loads the model once when a worker joins (``JUKEBOX_DEVICE`` on the
worker picks its GPU) and keeps it across tasks and batches; each task ships the stem's bytes and
returns the takes, so workers need no shared folder. Progress comes back as worker events
(``Worker.log_event`` -> ``Client.subscribe_topic``). docs/batch.md shows how to start workers.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from distributed import Client, WorkerPlugin, as_completed, get_worker

from engine.errors import ErrorCode
from engine.runtime.progress import Progress

from .stems import Events, StemJob, StemResult, render_stem

_TOPIC = "jukebox-batch-progress"
_LOADING = threading.Lock()


class ModelPlugin(WorkerPlugin):
    """A Dask worker plugin that loads the model once per worker and keeps it warm across batches."""

    def __init__(self, model: str | None, top: str | None = None) -> None:
        self.model, self.top, self.name, self.models = model, top, f"jukebox-models-{model}", None

    def setup(self, worker: Any) -> None:
        from engine.weights.bundle import load_models

        with _LOADING:  # in-process workers share torch's global RNG, which model building seeds
            self.models = load_models(self.model, self.top)  # JUKEBOX_DEVICE on the worker picks its GPU

    def teardown(self, worker: Any) -> None:
        self.models = None


def _render_on_worker(job: StemJob, plugin_name: str) -> StemResult:
    """The Dask task: render with the worker's warm model; progress goes back as worker events."""
    worker, last = get_worker(), [0.0]

    def progress(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] > 0.5:
            last[0] = now
            worker.log_event(_TOPIC, {"name": job.name, "stage": p.stage, "fraction": p.fraction})

    return render_stem(worker.plugins[plugin_name].models, job, progress)


def run_cluster(jobs: list[StemJob], model: str | None, events: Events, address: str,
                top: str | None = None) -> Iterator[StemResult]:
    """Render on a Dask cluster: one task per stem, results in completion order.

    Each stem's file is read just before its task is sent, and only about two tasks per worker are in
    flight, so a large batch never sits in memory (here or on the scheduler) all at once.
    """
    if not jobs:
        return
    with Client(address, timeout="30s") as client:
        client.subscribe_topic(_TOPIC, lambda ev: events(ev[1]["name"], Progress(ev[1]["stage"], 0, 1,
                                                                                   ev[1]["fraction"], -1.0)))
        plugin = ModelPlugin(model, top)
        client.register_plugin(plugin)  # returns once every worker has its model loaded
        queue, names, done = collections.deque(jobs), {}, as_completed()
        window = 2 * max(1, len(client.scheduler_info()["workers"]))

        def refill() -> Iterator[StemResult]:
            while queue and done.count() < window:
                job = queue.popleft()
                try:
                    job = dataclasses.replace(job, data=Path(job.fields["source"]).read_bytes())
                except OSError as exc:
                    yield StemResult(job.name, [], (ErrorCode.SOURCE_NOT_FOUND, f"{job.fields['source']}: {exc}"))
                    continue
                future = client.submit(_render_on_worker, job, plugin.name, pure=False,
                                       key=f"jukebox-stem-{secrets.token_hex(4)}-{job.name}")
                names[future] = job.name
                done.add(future)

        yield from refill()
        for future in done:
            try:
                yield future.result()
            except Exception as exc:  # a worker died or the task could not be sent
                yield StemResult(names[future], [],
                                 (ErrorCode.RENDER_FAILED, f"on the cluster: {type(exc).__name__}: {exc}"))
            yield from refill()
