"""Whole files or none: a crash in the middle of an atomic write leaves the old file (or none) and no temporary file.

Crashes are made deterministic: the writer raises half-way through its content, ``os.fsync`` or the final rename
fails, or the process dies (``os._exit``) after writing half of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.io import files
from engine.io.codes import CodesFile
from engine.io.files import atomic_write, atomic_write_text

OLD, NEW = b"old content\n" * 100, b"NEW CONTENT\n" * 1000


class Crash(BaseException):
    """Stands in for a signal or interpreter shutdown: escapes ``except Exception``."""


def _half_then(exc: BaseException):
    def write(fh):
        fh.write(NEW[: len(NEW) // 2])
        fh.flush()  # the half is on disk, in whichever file the writer holds
        raise exc
    return write


def _state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), ValueError("bad value"), Crash()],
                         ids=["disk-full", "bad-value", "crash"])
@pytest.mark.parametrize("overwrite", [True, False])
def test_a_writer_failing_half_way_leaves_the_old_file_and_no_temporary(tmp_path, exc, overwrite):
    target = tmp_path / "state.json"
    target.write_bytes(OLD)
    with pytest.raises(type(exc)):
        atomic_write(target, _half_then(exc), overwrite=overwrite)
    assert _state(tmp_path) == {"state.json": OLD}


def test_a_writer_failing_half_way_leaves_no_file_where_there_was_none(tmp_path):
    for overwrite in (True, False):
        with pytest.raises(OSError, match="No space"):
            atomic_write(tmp_path / "new.npz", _half_then(OSError(28, "No space left on device")), overwrite=overwrite)
        assert _state(tmp_path) == {}


@pytest.mark.parametrize("step", ["fsync", "replace", "link"])
def test_fsync_or_publishing_failing_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, step):
    target = tmp_path / "codes.npz"
    if step != "link":
        target.write_bytes(OLD)

    def fail(*args, **kwargs):
        raise OSError(5, f"Input/output error in {step}")

    monkeypatch.setattr(files.os, step, fail)
    with pytest.raises(OSError, match=step):
        atomic_write(target, lambda fh: fh.write(NEW), overwrite=step != "link")
    assert _state(tmp_path) == ({} if step == "link" else {"codes.npz": OLD})


def test_an_existing_file_is_never_overwritten_without_overwrite(tmp_path):
    target = tmp_path / "mine.npz"
    target.write_bytes(OLD)
    with pytest.raises(FileExistsError):
        atomic_write_text(target, "new", overwrite=False)
    assert _state(tmp_path) == {"mine.npz": OLD}
    atomic_write_text(target, "new", overwrite=True)
    assert _state(tmp_path) == {"mine.npz": b"new"}


def test_a_codes_file_saved_over_a_good_one_survives_a_crash_mid_save(tmp_path, monkeypatch):
    """What the renderer's work folder and the region cache rely on: a crash while saving leaves the last good codes."""
    path = tmp_path / "codes_level1.npz"
    CodesFile({1: np.arange(10)[None]}, (8, 32, 128)).save(path, overwrite=True)
    real_savez = np.savez

    def crashing_savez(fh, **arrays):
        real_savez(fh, **arrays)
        raise Crash()

    monkeypatch.setattr(np, "savez", crashing_savez)
    with pytest.raises(Crash):
        CodesFile({1: np.arange(20)[None]}, (8, 32, 128)).save(path, overwrite=True)
    monkeypatch.undo()
    assert np.array_equal(CodesFile.load(path).codes[1], np.arange(10)[None])
    assert [p.name for p in tmp_path.iterdir()] == ["codes_level1.npz"]


def test_a_process_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    """The process dies (no ``finally`` runs) after half the new content: the target is untouched; the temporary
    file stays behind under a hidden ``.part`` name, never under the target's."""
    target = tmp_path / "state.json"
    target.write_bytes(OLD)
    script = textwrap.dedent(f"""
        import os
        from engine.io.files import atomic_write
        def write(fh):
            fh.write({NEW!r}[:{len(NEW) // 2}])
            fh.flush()
            os._exit(9)
        atomic_write({str(target)!r}, write, overwrite=True)
    """)
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 9, r.stderr
    assert target.read_bytes() == OLD
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].startswith(".state.json.") and leftovers[0].endswith(".part")
