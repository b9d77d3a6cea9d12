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
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from distributed import Client, WorkerPlugin, as_completed, get_worker

from engine.errors import ErrorCode, RequestError
from engine.runtime.progress import Progress, Throttle

from .stems import Events, StemJob, StemResult, render_stem

_TOPIC = "jukebox-batch-progress"
CLUSTER_PROGRESS_INTERVAL = 0.5  # seconds between a worker's progress events (and its checks for a cancel)
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
    worker, throttle = get_worker(), Throttle(CLUSTER_PROGRESS_INTERVAL)

    def progress(p: Progress) -> None:
        if throttle.ready():
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


# ------------------------------------------------------------------ the engine's jobs on a cluster


def _render_job_on_worker(mode: str, fields: dict[str, Any], data: bytes | None, plugin_name: str,
                          key: str) -> list:
    """The Dask task of one engine job: render with the worker's warm model from a private copy of the shipped
    source; progress goes back as worker events, and the engine's cancel arrives as the Dask Event ``key``."""
    from distributed import Event

    from engine.generate.render import render
    from engine.request import RenderRequest
    from engine.runtime.progress import CancelToken

    worker, cancel, throttle = get_worker(), CancelToken(), Throttle(CLUSTER_PROGRESS_INTERVAL)
    stop = Event(key)

    def progress(p: Progress) -> None:  # render honours ``cancel`` right after each report
        if throttle.ready():
            worker.log_event(_TOPIC, {"job": key, "worker": worker.address, **dataclasses.asdict(p)})
            if stop.is_set():  # one scheduler round trip per report, not per token
                cancel.cancel()

    with tempfile.TemporaryDirectory(prefix="jukebox-job-") as tmp:
        if data is not None:
            local = Path(tmp) / f"source{Path(fields['source']).suffix}"
            local.write_bytes(data)
            fields = {**fields, "source": str(local)}
        return render(worker.plugins[plugin_name].models, RenderRequest.from_fields(mode, fields), progress, cancel,
                      lane_runner=spread_lanes(plugin_name, key))


def spread_lanes(plugin_name: str, key: str) -> Any:
    """A lane runner (``generate.sampling.LaneRunner``) for a job task: a level's lanes split into one group per
    idle worker, this one included; the other groups run as tasks there while this worker samples the first.

    Each lane draws from its own generators, so the joined level is the one a single machine samples. A busy
    cluster (no idle worker) keeps every lane here; a group whose worker dies is run again elsewhere."""

    def run(job: Any, codes: Any, params: Any, seeds: list[int], lanes: list, on_token: Any, cancel: Any) -> Any:
        import torch
        from distributed import get_client

        from engine.generate.sampling import lane_positions, sample_lanes

        client, here = get_client(), get_worker().address
        idle = [w for w, keys in client.processing().items() if not keys and w != here]
        groups = _split(lanes, 1 + len(idle))
        if len(groups) < 2:
            return sample_lanes(job, codes, params, seeds, lanes, on_token, cancel)
        upper = None if job.upper is None else job.upper.cpu()
        futures = [client.submit(_sample_lane_group, job.prior.cfg.level, job.total,
                                 {p: job.labels(p).cpu() for p in lane_positions(job, group, params)}, upper,
                                 codes.cpu(), params, seeds, group, plugin_name, key, workers=[w],
                                 allow_other_workers=True, pure=False, key=f"{key}-lanes-{group[0].index}")
                   for group, w in zip(groups[1:], idle)]
        try:
            first = sample_lanes(job, codes, params, seeds, groups[0], on_token, cancel)
            rest = [z.to(first.device) for z in client.gather(futures)]
        except BaseException:
            client.cancel(futures)
            raise
        return torch.cat([first, *rest], dim=1)

    return run


def _split(items: list, groups: int) -> list[list]:
    """``items`` in at most ``groups`` contiguous runs of near-equal length (none empty)."""
    groups = max(1, min(groups, len(items)))
    bounds = [round(i * len(items) / groups) for i in range(groups + 1)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:])]


def _sample_lane_group(level: int, total: int, labels: dict[int, Any], upper: Any, codes: Any, params: Any,
                       seeds: list[int], lanes: list, plugin_name: str, key: str) -> Any:
    """The Dask task of one group of a level's lanes: ``sample_lanes`` with this worker's prior of that level; the
    job's cancel (the Dask Event ``key``) stops it at the next report interval."""
    from distributed import Event

    from engine.generate.sampling import LevelJob, sample_lanes
    from engine.runtime.device import inference_context
    from engine.runtime.progress import Cancelled

    models = get_worker().plugins[plugin_name].models
    stop, throttle = Event(key), Throttle(CLUSTER_PROGRESS_INTERVAL)

    def on_token() -> None:
        if throttle.ready() and stop.is_set():
            raise Cancelled()

    device = models.device
    labels = {p: y.to(device) for p, y in labels.items()}
    job = LevelJob(models.priors[level], total, labels.__getitem__, None if upper is None else upper.to(device))
    with inference_context(device):
        return sample_lanes(job, codes.to(device), params, seeds, lanes, on_token).cpu()


class ClusterRenderer:
    """A ``JobQueue`` renderer (``generate.render.render``'s signature) that renders each job on a Dask worker.

    The queue, the journal, progress and cancel stay in the engine; the worker holds the model warm (``ModelPlugin``)
    and gets the source's bytes, so it needs no shared folder. A worker that dies mid-job loses nothing: the
    scheduler runs the task again on another worker (up to ``distributed.scheduler.allowed-failures`` times) with
    the same request and seed, so the takes are the same. Window codes are not saved here, so an engine restart
    renders a cluster job again from its start (same seed, same takes). ``refine`` needs the draft's codes beside
    its file, so it renders in the engine's own process (``local``)."""

    def __init__(self, address: str, model: str | None, top: str | None = None,
                 local: Any = None) -> None:
        self.client = Client(address, timeout="30s")
        self.plugin = ModelPlugin(model, top)
        self.client.register_plugin(self.plugin)  # returns once every worker has its model loaded
        self.local = local
        self._listeners: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.client.subscribe_topic(_TOPIC, self._on_event)

    def _on_event(self, event: tuple[float, dict]) -> None:
        body = event[1]
        with self._lock:
            listener = self._listeners.get(body.get("job", ""))
        if listener is not None:
            listener(Progress(**{k: body[k] for k in ("stage", "done", "total", "fraction", "eta_seconds", "level")}))

    def __call__(self, models: Any, req: Any, progress: Any, cancel: Any, workdir: Path | None = None,
                 **kwargs: Any) -> list:
        from distributed import Event
        from distributed import TimeoutError as DaskTimeout

        from engine.runtime.progress import Cancelled

        if req.mode == "refine":
            if self.local is None:
                raise RequestError(ErrorCode.UNAVAILABLE, "refine needs the draft's saved codes, which this engine "
                                   "does not send to cluster workers; refine on an engine without --cluster")
            return self.local(models, req, progress, cancel, workdir, **kwargs)
        data = Path(req.source).read_bytes() if req.source is not None else None
        key = f"jukebox-job-{secrets.token_hex(8)}"
        fields = {k: v for k, v in req.to_fields().items() if k != "mode"}
        stop = Event(key, client=self.client)
        with self._lock:
            self._listeners[key] = progress
        future = self.client.submit(_render_job_on_worker, req.mode, fields, data, self.plugin.name, key,
                                    key=key, pure=False)
        try:
            while True:
                if cancel.cancelled:
                    stop.set()  # the worker stops at its next report; the task is dropped either way
                    future.cancel()
                    raise Cancelled()
                try:
                    return future.result(timeout=CLUSTER_PROGRESS_INTERVAL)
                except DaskTimeout:
                    continue
        finally:
            with self._lock:
                self._listeners.pop(key, None)

    @property
    def workers(self) -> int:
        """The cluster's workers now: how many jobs the engine's queue hands out at once."""
        return max(1, len(self.client.scheduler_info()["workers"]))

    def close(self) -> None:
        self.client.close()
