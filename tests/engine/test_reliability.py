"""Nothing lost, nothing stuck: the job queue on a full, read-only or deleted disk, two queues on one folder, jobs
that keep killing the engine, a fair queue, and bad input refused before any work.

Disk failures are real: a small tmpfs mounted for the test (the suite runs as root). Where mounting is not
allowed, the same failure is injected where the kernel would raise it (the WAV writer and SQLite).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.io import audio as audio_module
from engine.io import publish
from engine.io.takes import RenderedTake
from engine.jobs.queue import JobFinished, JobQueue
from engine.request import RenderRequest, RequestError

from .test_jobs import MODELS, Events, SineRenderer, make, req, wavs

pytestmark = pytest.mark.timeout(90)


# ---------------------------------------------------------------- a small disk


class SmallDisk:
    """A tmpfs of ``size_kb`` at ``path`` (or, where mounting is not allowed, a plain folder whose "disk full"
    is injected); ``fill(leave_kb)`` uses up all but ``leave_kb`` of it, ``free()`` gives the space back."""

    def __init__(self, path: Path, size_kb: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.real = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                                   capture_output=True).returncode == 0
        self.filler = path / "filler.bin"
        self.injected = False

    def fill(self, leave_kb: int = 0) -> None:
        if not self.real:
            self.injected = True
            return
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        if leave_kb:
            os.truncate(self.filler, max(0, self.filler.stat().st_size - leave_kb * 1024))

    def free(self) -> None:
        self.injected = False
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        if self.real:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def disk(tmp_path, monkeypatch):
    d = SmallDisk(tmp_path / "disk", 1024)
    if not d.real:  # the kernel's answers, injected where it would give them
        real_publish = audio_module._publish_wav

        def publish_wav(path, *a, **kw):
            if d.injected:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real_publish(path, *a, **kw)

        monkeypatch.setattr(audio_module, "_publish_wav", publish_wav)
        monkeypatch.setattr("engine.jobs.journal.Journal._write", _injected_journal(d))
    yield d
    d.close()


def _injected_journal(d: SmallDisk):
    from engine.jobs.journal import Journal

    real = Journal._write

    def write(self, sql, args):
        if d.injected and not sql.startswith("UPDATE"):
            with self._storage():
                raise sqlite3.OperationalError("database or disk is full")
        return real(self, sql, args)

    return write


def long_req(**fields) -> RenderRequest:
    return req(**{"seconds": 2.0, **fields})  # 2 s, 48 kHz stereo 24-bit: a 576 KB take


def test_a_full_disk_fails_the_job_with_a_message_naming_it_and_the_engine_recovers(disk):
    q, events, _ = make(disk.path)
    q.start()
    try:
        disk.fill(leave_kb=200)  # room for the journal, not for the take
        job = q.submit(long_req(), "h 1")
        finished = events.wait_finished(job.id)
        assert (finished.state, finished.takes, finished.error[0]) == ("failed", 0, "render_failed")
        message = finished.error[1]
        assert message.startswith(f"disk full: {disk.path}") and "Free some space" in message, message
        assert "Error" not in message  # no bare exception names
        assert wavs(disk.path) == [] and not list(disk.path.glob("*.json"))
        assert not list((disk.path / ".jukebox" / "work").rglob("*.wav"))  # nothing half-written left behind
        disk.free()
        again = q.submit(long_req(), "h 1")
        assert events.wait_finished(again.id).state == "done" and len(wavs(disk.path)) == 1
    finally:
        q.stop()


def test_a_full_journal_refuses_the_job_and_is_not_internal(disk):
    q, _, _ = make(disk.path)
    q.start()
    try:
        disk.fill()
        with pytest.raises(RequestError) as info:
            q.submit(long_req(), "h 1")
        assert info.value.code == "render_failed"
        assert str(info.value).startswith(f"not accepted: disk full: {disk.path / '.jukebox' / 'journal.sqlite3'}")
        assert q.jobs() == []
    finally:
        q.stop()


def test_a_job_popped_while_the_disk_is_full_ends_failed_not_queued_forever(disk):
    q, events, _ = make(disk.path)
    jobs = [q.submit(long_req(), "h 1") for _ in range(2)]
    disk.fill()
    q.start()
    try:
        for job in jobs:
            finished = events.wait_finished(job.id, timeout=30)
            assert finished.state == "failed" and finished.error[1].startswith(f"disk full: {disk.path}")
        assert not [j for j in q.jobs() if j.state in ("queued", "running")]
    finally:
        q.stop()


def test_cancel_on_a_full_disk_still_finishes_every_job(disk):
    renderer = SineRenderer(steps=50)
    q, events, _ = make(disk.path, renderer)
    renderer.gate.clear()
    q.start()
    try:
        running, queued = q.submit(req(), "h 1"), q.submit(req(), "h 1")
        assert renderer.inside.wait(10)
        disk.fill()
        assert q.cancel(None) == 2
        renderer.gate.set()
        for job in (running, queued):
            assert events.wait_finished(job.id).state == "cancelled"
            assert len(events.of(job.id, JobFinished)) == 1
    finally:
        q.stop()


def test_a_read_only_render_folder_fails_the_job_and_says_so(tmp_path, monkeypatch):
    """A tmpfs cannot be remounted read-only while the journal is open for writing, so the kernel's EROFS is
    injected where it would come: the WAV writer and SQLite."""
    from engine.jobs.journal import Journal

    renders, read_only = tmp_path / "renders", threading.Event()
    real_publish, real_write = audio_module._publish_wav, Journal._write

    def publish_wav(path, *a, **kw):
        if read_only.is_set():
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_publish(path, *a, **kw)

    def write(self, sql, args):
        if read_only.is_set():
            with self._storage():
                raise sqlite3.OperationalError("attempt to write a readonly database")
        return real_write(self, sql, args)

    monkeypatch.setattr(audio_module, "_publish_wav", publish_wav)
    monkeypatch.setattr(Journal, "_write", write)
    renderer = SineRenderer(steps=2)
    q, events, _ = make(renders, renderer)
    renderer.gate.clear()
    q.start()
    try:
        job = q.submit(req(), "h 1")
        assert renderer.inside.wait(10)
        read_only.set()
        renderer.gate.set()
        finished = events.wait_finished(job.id)
        assert finished.state == "failed" and finished.error[1].startswith(f"read_only: {renders}"), finished
        assert "remount it writable" in finished.error[1]
        with pytest.raises(RequestError, match=f"^not accepted: read_only: {renders / '.jukebox'}"):
            q.submit(req(), "h 1")
    finally:
        q.stop()


def test_a_render_folder_deleted_under_a_running_job_fails_it_and_is_not_recreated(tmp_path):
    renders = tmp_path / "renders"
    renderer = SineRenderer(steps=3)
    q, events, _ = make(renders, renderer)
    renderer.gate.clear()
    q.start()
    try:
        job = q.submit(req(), "h 1")
        assert renderer.inside.wait(10)
        shutil.rmtree(renders)
        renderer.gate.set()
        finished = events.wait_finished(job.id)
        assert finished.state == "failed"
        assert finished.error[1].startswith(f"folder missing: {renders}. It was deleted or moved"), finished.error
        assert not renders.exists()  # no take written into a folder the engine made up again
        with pytest.raises(RequestError, match=f"^not accepted: folder missing: {renders}"):
            q.submit(req(), "h 1")
    finally:
        q.stop()


def test_storage_messages_name_the_problem_the_path_and_what_to_do():
    from engine.io.files import storage_message

    cases = {errno.ENOSPC: "disk full: /r/a.wav. Free some space", errno.EROFS: "read_only: /r/a.wav. The disk is",
             errno.ENOENT: "folder missing: /r/a.wav.", errno.EACCES: "not writable: /r/a.wav.",
             errno.EIO: "I/O error: /r/a.wav."}
    for code, start in cases.items():
        assert storage_message(OSError(code, os.strerror(code), "/r/a.wav")).startswith(start)
    wrapped = audio_module.AudioError("could not publish")
    wrapped.__cause__ = OSError(errno.EROFS, "Read-only file system", "/r/b.wav")
    assert storage_message(wrapped).startswith("read_only: /r/b.wav")
    assert storage_message(sqlite3.OperationalError("database or disk is full"), "/j.db").startswith("disk full: /j.db")
    assert storage_message(sqlite3.OperationalError("no such column: x")) is None
    assert storage_message(RuntimeError("boom")) is None


def test_an_exception_without_text_reaches_the_producer_with_what_to_do(tmp_path):
    q, events, _ = make(tmp_path, SineRenderer(fail=AssertionError()))
    q.start()
    try:
        finished = events.wait_finished(q.submit(req(), "h 1").id)
    finally:
        q.stop()
    assert finished.error[1].startswith("the render stopped with AssertionError and no details; the engine's log")


# ---------------------------------------------------------------- one engine per folder


def test_a_second_queue_on_the_same_folder_is_refused_until_the_first_stops(tmp_path):
    from engine.jobs.lock import FolderLock, FolderLocked

    first = JobQueue(tmp_path, MODELS, SineRenderer(), Events(), lock=FolderLock(tmp_path / ".jukebox",
                                                                                 {"port": 9555}))
    with pytest.raises(FolderLocked) as info:
        JobQueue(tmp_path, MODELS, SineRenderer(), Events())
    assert f"pid {os.getpid()}, OSC port 9555" in str(info.value) and "--render-dir" in str(info.value)
    first.stop()
    second = JobQueue(tmp_path, MODELS, SineRenderer(), Events())
    second.stop()


# ---------------------------------------------------------------- bounded retries, journalled cancels


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_that_kills_the_engine_three_times_ends_failed_and_a_graceful_stop_does_not_count(tmp_path):
    job = None
    for attempt in range(3):
        renderer = SineRenderer(steps=5, crash_at=1)
        q, events, _ = make(tmp_path, renderer)
        if job is None:
            job = q.submit(req(), "h 1")
        else:
            assert q.get(job.id).state == "queued"
        if attempt == 1:  # a graceful stop in between: not a crash
            gated = SineRenderer(steps=5)
            gated.gate.clear()
            q.renderer = gated
            q.start()
            assert gated.inside.wait(10)
            threading.Timer(0.1, gated.gate.set).start()
            q.stop()
            q, events, _ = make(tmp_path, renderer)
        q.start()
        assert renderer.crashed.wait(20)
        q._threads[0].join(20)  # the worker dies in the "crash": the journal says running
        q.stop()
    q, events, renderer = make(tmp_path)
    assert q.get(job.id).state == "failed"
    q.start()
    try:
        finished = events.wait_finished(job.id)  # whoever waited for it hears
        assert finished.state == "failed" and finished.error[0] == "render_failed"
        assert finished.error[1].startswith("the engine stopped 3 times while rendering this job")
        assert renderer.calls == []
    finally:
        q.stop()


def test_a_cancel_is_journalled_so_the_job_does_not_come_back_after_a_crash(tmp_path):
    renderer = SineRenderer(steps=50)
    q, _, _ = make(tmp_path, renderer)
    renderer.gate.clear()
    q.start()
    job = q.submit(req(), "h 1")
    assert renderer.inside.wait(10)
    q.cancel(job.id)
    q._stopping = True  # the engine dies before the renderer looks at its cancel token: nothing more is written
    q.journal.close()
    renderer.gate.set()
    q._threads[0].join(10)
    q.lock.release()
    q2, events2, renderer2 = make(tmp_path)
    assert q2.get(job.id).state == "cancelled"
    q2.start()
    try:
        assert events2.wait_finished(job.id).state == "cancelled" and renderer2.calls == []
    finally:
        q2.stop()


# ---------------------------------------------------------------- a fair queue


def test_clients_take_turns_and_drafts_go_first_within_a_client(tmp_path):
    renderer = SineRenderer(steps=1)
    q, events, _ = make(tmp_path, renderer)
    greedy = [q.submit(req(quality="draft"), "10.0.0.1 9000") for _ in range(20)]
    other = [q.submit(req(), "10.0.0.2 9000"), q.submit(req(quality="draft"), "10.0.0.2 9000")]
    q.start()
    try:
        for job in greedy + other:
            events.wait_finished(job.id)
    finally:
        q.stop()
    order = [call[0] for call in renderer.calls]
    assert order[:4] == [greedy[0].id, other[1].id, greedy[1].id, other[0].id], order


# ---------------------------------------------------------------- bad input, refused before work


@pytest.mark.parametrize("field", ["artist", "genre", "lyrics", "chain", "source"])
def test_lone_surrogates_and_control_characters_are_bad_values_in_every_string_field(tmp_path, field):
    for bad in ("Nina\udc80", "Nina\x1b[2J", "Nina\x00"):
        with pytest.raises(RequestError) as info:
            RenderRequest.from_fields("continue", {"source": "/a.wav", field: bad})
        assert (info.value.code, info.value.field) == ("bad_value", field) and "character" in str(info.value)
    assert RenderRequest.from_fields("generate", {"lyrics": "line one\nline two\tend"}).lyrics.count("\n") == 1


def test_a_sidecar_that_cannot_be_written_leaves_no_wav(tmp_path):
    rendered = RenderedTake(1, np.zeros((4800, 2), np.float32), 0.0, 1, codes={})
    r = req(artist=None)
    path = tmp_path / "take.wav"
    with pytest.raises(UnicodeEncodeError):  # a value no UTF-8 file can hold reached the sidecar
        publish.publish_take(path, tmp_path / "staging", rendered, r, {"artist": "Nina\udc80"})
    assert not path.exists() and not path.with_suffix(".json").exists()
    assert not list((tmp_path / "staging").iterdir())
    publish.publish_take(path, tmp_path / "staging", rendered, r, {"artist": "Nina"})
    assert sf.info(path).frames == 4800 and path.with_suffix(".json").exists()


def test_a_wav_that_cannot_be_linked_takes_its_new_sidecar_away(tmp_path, monkeypatch):
    rendered = RenderedTake(1, np.zeros((4800, 2), np.float32), 0.0, 1, codes={})
    path = tmp_path / "take.wav"
    real = publish._link_into_place

    def refuse_wav(tmp, target):
        if target.suffix == ".wav":
            raise audio_module.AudioError("could not publish") from OSError(errno.ENOSPC, "full", str(target))
        return real(tmp, target)

    monkeypatch.setattr(publish, "_link_into_place", refuse_wav)
    with pytest.raises(audio_module.AudioError):
        publish.publish_take(path, tmp_path / "staging", rendered, req(), {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staging"]


def _truncated_wav(tmp_path: Path, name: str = "cut.wav") -> Path:
    path = tmp_path / name
    sf.write(path, np.zeros((48000, 2), np.float32), 48000, subtype="PCM_24")
    os.truncate(path, path.stat().st_size // 2)  # the header still promises 1 s
    return path


def test_a_truncated_wav_is_refused_at_submission_naming_the_truncation(tmp_path):
    path = _truncated_wav(tmp_path)
    q, _, renderer = make(tmp_path / "renders")
    try:
        with pytest.raises(RequestError) as info:
            q.submit(req("continue", source=str(path), length=0.2), "h 1")
        assert info.value.code == "not_audio" and "is truncated: its header promises 48000 frames" in str(info.value)
        assert q.jobs() == [] and renderer.calls == []
    finally:
        q.stop()
    whole = tmp_path / "whole.wav"  # a complete file, and one whose recorder left the size "unknown", are fine
    sf.write(whole, np.zeros((4800, 1), np.float32), 48000)
    assert audio_module.truncation(whole) is None


def test_a_truncated_flac_is_refused_too(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, (96000, 1)).astype(np.float32), 48000)
    os.truncate(path, path.stat().st_size // 2)
    assert "is truncated" in audio_module.truncation(path)


@pytest.mark.parametrize("fields,field", [({"seconds": 1e-9}, "seconds"), ({"seconds": 0.001}, "seconds"),
                                          ({"bars": 0.0001, "tempo": 120}, "bars")])
def test_lengths_below_one_top_level_token_are_bad_values_with_the_minimum(tmp_path, fields, field):
    q, _, renderer = make(tmp_path / "renders")
    token = MODELS.vqvae.hop_lengths[-1] / MODELS.sample_rate
    try:
        with pytest.raises(RequestError) as info:
            q.submit(req(**fields), "h 1")
        assert (info.value.code, info.value.field) == ("bad_value", field)
        assert f"the minimum is {token:.6f} s" in str(info.value)
        wav = tmp_path / "in.wav"
        sf.write(wav, np.zeros((48000, 1), np.float32), 48000)
        with pytest.raises(RequestError) as info:
            q.submit(req("rerender", source=str(wav), length=0.001), "h 1")
        assert (info.value.code, info.value.field) == ("bad_value", "length")
        assert q.jobs() == [] and renderer.calls == [] and wavs(tmp_path / "renders") == []
    finally:
        q.stop()


# ---------------------------------------------------------------- chain reads only chains


def test_a_chain_value_reads_only_chains_and_never_echoes_another_files_keys(tmp_path, monkeypatch):
    from engine.io import effects

    monkeypatch.setattr(effects, "chain_dir", lambda: tmp_path / "chains")
    (tmp_path / "chains").mkdir()
    (tmp_path / "chains" / "warm.toml").write_text('[[effect]]\ntype = "low_shelf"\ngain_db = 2.0\n')
    secret = tmp_path / "settings.toml"
    secret.write_text('aws_secret_access_key = "AKIA-do-not-print"\n[database]\npassword = "hunter2"\n')
    notes = tmp_path / "notes.txt"
    notes.write_text("password = hunter2\n")
    q, _, renderer = make(tmp_path / "renders")
    try:
        for spec in (str(secret), str(notes), "/etc/passwd", str(tmp_path), "../chains/warm", "warm.toml",
                     str(tmp_path / "missing.toml"), str(tmp_path / "Missing.vst3")):
            with pytest.raises(RequestError) as info:  # refused at submission, nothing read, nothing queued
                q.submit(req(chain=spec), "h 1")
            message = str(info.value)
            assert (info.value.code, info.value.field) == ("bad_value", "chain"), message
            assert not any(word in message for word in ("aws_secret", "AKIA", "database", "password", "hunter2",
                                                        "root:")), message
        assert q.jobs() == [] and renderer.calls == []
        with pytest.raises(effects.ChainError) as info:
            effects.resolve_chain(str(secret))
        assert "is not an effect chain" in str(info.value) and "aws" not in str(info.value)
        assert len(effects.resolve_chain("warm").stages) == 1
    finally:
        q.stop()


# ---------------------------------------------------------------- bounded memory: chunked encode and decode


@pytest.mark.parity
def test_chunked_encoding_gives_the_reference_codes_bit_for_bit_and_decoding_the_same_audio():
    import torch

    from engine.weights.checkpoints import load_vqvae

    from .shared import shared_path

    folder = shared_path("vqvae")
    model = load_vqvae(folder / "vqvae_random_official_arch.pth.tar")
    x = torch.from_numpy(np.load(folder / "input_chord3s.npy").astype(np.float32)).reshape(1, -1)
    calls = []
    whole = model.encode(x, chunk=None)
    chunked = model.encode(x, chunk=8192, on_chunk=lambda done, total: calls.append((done, total)))
    for level in range(3):
        ref = np.load(folder / f"codes_chord3s_level{level}.npy").reshape(whole[level].shape)
        assert np.array_equal(whole[level].numpy(), ref) and torch.equal(chunked[level], whole[level])
        halo = model.encode_halo(level)
        assert halo[0] > 0 and halo[0] % model.hop_lengths[level] == 0
    assert len(calls) > 3 and calls[-1][0] == calls[-1][1] and [c[0] for c in calls] == list(range(1, len(calls) + 1))
    for level in range(3):
        a = model.decode(whole[level], level, precision="fp32", chunk=None)
        b = model.decode(whole[level], level, precision="fp32", chunk=4096)
        assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-5 * float(a.abs().max())


def test_encoding_and_decoding_report_progress_and_stop_at_a_cancel_within_a_chunk():
    from engine.generate.codec import chunk_progress, encode_audio
    from engine.runtime.progress import Cancelled, CancelToken

    vqvae, seen, cancel = MODELS.vqvae, [], CancelToken()
    x = np.random.default_rng(1).uniform(-0.3, 0.3, MODELS.sample_rate * 20).astype(np.float32)

    def progress(p):
        seen.append(p)
        if len(seen) == 3:
            cancel.cancel()

    with pytest.raises(Cancelled):
        encode_audio(vqvae, x, chunk_progress(progress, cancel, "encoding", 0.0, 0.05))
    assert len(seen) == 3 and [p.stage for p in seen] == ["encoding"] * 3  # stopped at the chunk after the cancel
    assert 0 < seen[0].fraction < seen[1].fraction < seen[2].fraction < 0.05 and seen[0].total > 3
    codes = encode_audio(vqvae, x)
    seen.clear()
    import torch

    z = torch.from_numpy(codes[0])
    decoded = vqvae.decode(z, 0, on_chunk=chunk_progress(seen.append, None, "decoding", 0.95, 0.99))
    assert decoded.shape[1] == z.shape[1] * vqvae.hop_lengths[0] and len(seen) > 1
    assert seen[-1].fraction == pytest.approx(0.99) and all(p.stage == "decoding" for p in seen)


def test_the_default_models_chunked_codes_are_its_unchunked_codes_at_every_level():
    """Chunks wide enough for oneDNN's kernel of the whole signal, aligned to its blocks: not one code differs."""
    import torch

    from engine.weights.bundle import load_models

    vqvae = load_models(None).vqvae
    x = torch.from_numpy(np.random.default_rng(3).uniform(-0.3, 0.3, 100 * 22050 // 256 * 256).astype(np.float32))
    whole, chunked = vqvae.encode(x[None], chunk=None), vqvae.encode(x[None], chunk=20000)
    assert [int((a != b).sum()) for a, b in zip(whole, chunked)] == [0, 0, 0]


def test_work_codes_are_appended_per_window_and_a_torn_window_is_cut_off(tmp_path):
    from engine.io.codes import CodesLog

    log = CodesLog(tmp_path / "codes_level0.log")
    assert log.load() is None
    rng = np.random.default_rng(0)
    windows = [rng.integers(0, 2048, (3, 256)) for _ in range(40)]
    sizes = []
    for w in windows:
        log.append(w)
        sizes.append(log.path.stat().st_size)
    assert np.array_equal(log.load(), np.concatenate(windows, axis=1))
    growth = np.diff(sizes)
    assert growth.min() == growth.max() == 16 + 3 * 256 * 4  # each window costs its own bytes, not the job's so far
    with open(log.path, "ab") as fh:  # a crash in the middle of the next append
        fh.write(b"JBCL" + b"\x01" * 30)
    assert log.load().shape == (3, 40 * 256) and log.path.stat().st_size == sizes[-1]
    log.append(windows[0])
    assert log.columns == 41 * 256
