"""Draft, then refine the keeper: every published take keeps its codes, and ``refine`` upsamples a draft's own
top-level codes to full quality, a take of the same length at the same position (engine/generate/refine.py)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import ErrorCode
from engine.generate.refine import prepare_refine
from engine.generate.render import render
from engine.io.codes import CodesFile
from engine.io.takes import RenderedTake, prune_take_codes, save_take_codes
from engine.jobs.queue import JobFinished, JobQueue, TakeDone
from engine.request import RenderRequest, RequestError
from engine.weights.debug import debug_models

pytestmark = pytest.mark.timeout(120)

MODELS = debug_models()


class Events:
    def __init__(self) -> None:
        self.items: list = []
        self.lock = threading.Condition()

    def __call__(self, event) -> None:
        with self.lock:
            self.items.append(event)
            self.lock.notify_all()

    def finished(self, job_id: str, timeout: float = 90.0) -> JobFinished:
        with self.lock:
            assert self.lock.wait_for(lambda: any(isinstance(e, JobFinished) and e.job_id == job_id
                                                  for e in self.items), timeout), self.items[-5:]
            return next(e for e in self.items if isinstance(e, JobFinished) and e.job_id == job_id)

    def takes(self, job_id: str) -> list[TakeDone]:
        with self.lock:
            return [e for e in self.items if isinstance(e, TakeDone) and e.job_id == job_id]


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "song.wav"
    t = np.arange(int(0.4 * 44100)) / 44100
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), 44100)
    return path


def _queue(folder: Path, models=MODELS, **kw) -> tuple[JobQueue, Events]:
    events = Events()
    q = JobQueue(folder, models, render, events, **kw)
    q.start()
    return q, events


def _run(q: JobQueue, events: Events, req: RenderRequest) -> list[TakeDone]:
    job = q.submit(req, "127.0.0.1 9000")
    finished = events.finished(job.id)
    assert finished.state == "done", finished.error
    return events.takes(job.id)


def _codes(take: str) -> CodesFile:
    side = json.loads(Path(take).with_suffix(".json").read_text())
    return CodesFile.load(Path(take).parent / side["codes"])


def test_a_refined_draft_keeps_its_top_level_codes_length_and_position(tmp_path, source):
    q, events = _queue(tmp_path / "renders")
    try:
        draft_req = RenderRequest.from_fields("continue", {
            "source": str(source), "start": 0.1, "position": 8.0, "seconds": 0.1, "quality": "draft", "seed": 5,
            "sample_rate": 48000, "channels": 2, "artist": "unknown", "temperature": 0.9})
        (draft,) = _run(q, events, draft_req)
        drafted = _codes(draft.path)
        assert drafted.extra["levels"] == [2] and set(drafted.codes) == {0, 1, 2}
        side = json.loads(Path(draft.path).with_suffix(".json").read_text())
        assert side["codes"] == f".jukebox/codes/{Path(draft.path).stem}.npz"

        refine_req = RenderRequest.from_fields("refine", {"source": draft.path})
        (refined,) = _run(q, events, refine_req)
    finally:
        q.stop()
    kept = _codes(refined.path)
    np.testing.assert_array_equal(kept.codes[2], drafted.codes[2])  # the top level is the draft's, not resampled
    assert kept.extra["levels"] == [1, 0] and kept.extra["keep"] == drafted.extra["keep"]
    for level in (1, 0):  # upsampled over the whole span, the prompt's codes kept as they were
        assert kept.codes[level].shape[-1] == drafted.codes[2].shape[-1] * 128 // MODELS.vqvae.hop_lengths[level]
        np.testing.assert_array_equal(kept.codes[level][:, :drafted.codes[level].shape[-1]], drafted.codes[level])
    a, b = sf.info(draft.path), sf.info(refined.path)
    assert (b.samplerate, b.channels, b.frames) == (a.samplerate, a.channels, a.frames)  # the draft's length
    assert refined.position == draft.position == pytest.approx(8.3, abs=1e-6)  # after the region
    assert refined.length == draft.length
    side = json.loads(Path(refined.path).with_suffix(".json").read_text())
    assert (side["mode"], side["quality"], side["seed"], side["temperature"], side["artist"]) == (
        "refine", "full", 5, 0.9, "unknown")
    assert side["source"]["path"] == draft.path
    assert not np.allclose(sf.read(refined.path)[0], sf.read(draft.path)[0])  # decoded from level 0 now


def test_a_refined_draft_undoes_the_input_gain_its_draft_was_encoded_with(tmp_path, source):
    """A model that states its input level lifts a quiet source before encoding; the draft's codes are of the lifted
    audio, so its refine must undo the same lift (kept with the codes), or the refined take would come out louder."""
    import dataclasses

    leveled = dataclasses.replace(MODELS, meta={**MODELS.meta, "input_rms_dbfs": -6.0})
    q, events = _queue(tmp_path / "renders", leveled)
    try:
        fields = {"source": str(source), "start": 0.1, "seconds": 0.1, "quality": "draft", "seed": 5}
        (draft,) = _run(q, events, RenderRequest.from_fields("continue", fields))
        (refined,) = _run(q, events, RenderRequest.from_fields("refine", {"source": draft.path}))
    finally:
        q.stop()
    lifted = json.loads(Path(draft.path).with_suffix(".json").read_text())["loudness"]["input_gain_db"]
    assert lifted > 3.0 and _codes(draft.path).extra["input_gain_db"] == lifted  # the source sits at -13.5 dBFS
    assert json.loads(Path(refined.path).with_suffix(".json").read_text())["loudness"]["input_gain_db"] == lifted


def test_refine_of_a_full_take_or_a_file_without_codes_is_refused(tmp_path, source):
    q, events = _queue(tmp_path / "renders")
    try:
        (full,) = _run(q, events, RenderRequest.from_fields("generate", {"seconds": 0.05, "seed": 1}))
        with pytest.raises(RequestError) as exc:
            q.submit(RenderRequest.from_fields("refine", {"source": full.path}), "127.0.0.1 9000")
        assert exc.value.code == ErrorCode.BAD_VALUE and "already full quality" in str(exc.value)
        with pytest.raises(RequestError) as exc:  # any audio file: no sidecar, no codes
            q.submit(RenderRequest.from_fields("refine", {"source": str(source)}), "127.0.0.1 9000")
        assert exc.value.code == ErrorCode.SOURCE_NOT_FOUND and "render a draft" in str(exc.value)
        (draft,) = _run(q, events, RenderRequest.from_fields("generate", {"seconds": 0.05, "quality": "draft"}))
        codes = Path(draft.path).parent / json.loads(Path(draft.path).with_suffix(".json").read_text())["codes"]
        with pytest.raises(RequestError) as exc:  # refine renders the whole draft
            q.submit(RenderRequest.from_fields("refine", {"source": draft.path, "seconds": 3.0}), "h 1", given=frozenset(
                {"source", "seconds"}))
        assert exc.value.code == ErrorCode.BAD_VALUE and exc.value.field == "seconds"
        codes.unlink()  # pruned
        with pytest.raises(RequestError) as exc:
            q.submit(RenderRequest.from_fields("refine", {"source": draft.path}), "127.0.0.1 9000")
        assert exc.value.code == ErrorCode.SOURCE_NOT_FOUND and "codes_retention" in str(exc.value)
    finally:
        q.stop()


def test_refine_takes_the_drafts_fields_unless_given(tmp_path):
    q, events = _queue(tmp_path / "renders")
    try:
        (draft,) = _run(q, events, RenderRequest.from_fields("generate", {
            "seconds": 0.05, "quality": "draft", "seed": 9, "position": 2.5, "top_k": 7, "channels": 1,
            "genre": "unknown"}))
    finally:
        q.stop()
    req, given = prepare_refine(RenderRequest.from_fields("refine", {"source": draft.path, "top_k": 3}),
                                frozenset({"source", "top_k"}))
    assert (req.seed, req.position, req.top_k, req.channels, req.genre, req.quality, req.takes) == (
        9, 2.5, 3, 1, "unknown", "full", 1)
    assert req.seconds == pytest.approx(0.05, abs=1e-4)
    assert {"temperature", "top_p", "takes"} <= given  # the live knobs do not replace the draft's
    assert prepare_refine(req, given) == (req, given)  # prepared twice (server, then queue): the same


def test_retention_prunes_the_oldest_codes(tmp_path):
    take = RenderedTake(1, np.zeros((10, 1), np.float32), 0.0, 1, {2: np.arange(4)}, keep=(0, 512), levels=(2,))
    folder = tmp_path / "codes"
    for i in range(5):
        path = save_take_codes(folder, f"t{i}", take, (8, 32, 128), 22050, "debug", {})
        os.utime(path, ns=(i * 10**9, i * 10**9))
    assert [p.name for p in prune_take_codes(folder, 3)] == ["t1.npz", "t0.npz"]
    assert sorted(p.name for p in folder.iterdir()) == ["t2.npz", "t3.npz", "t4.npz"]


def test_the_queue_prunes_codes_beyond_its_retention(tmp_path):
    q, events = _queue(tmp_path / "renders", codes_retention=2)
    try:
        done = [_run(q, events, RenderRequest.from_fields("generate", {"seconds": 0.02, "quality": "draft"}))[0]
                for _ in range(3)]
    finally:
        q.stop()
    left = sorted(p.stem for p in (tmp_path / "renders" / ".jukebox" / "codes").iterdir())
    assert left == sorted(Path(t.path).stem for t in done[1:])
    with pytest.raises(RequestError) as exc:
        prepare_refine(RenderRequest.from_fields("refine", {"source": done[0].path}))
    assert exc.value.code == ErrorCode.SOURCE_NOT_FOUND
