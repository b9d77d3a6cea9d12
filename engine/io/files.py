"""Writing files whole or not at all: the one way every engine file (renders aside) reaches the disk.

A crash, a full disk or a bad value never leaves half a file: content goes to a temporary file in the
target's folder, is fsynced, then published in one step. State (manifests, caches, checkpoints of a
training run, work codes) replaces the old version (``overwrite=True``); what a user asked for (codes,
exported checkpoints) is hard-linked to a name that must not exist yet, so nothing is ever overwritten.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], *, overwrite: bool) -> Path:
    """Fill ``path`` through ``write(file)``; raises ``FileExistsError`` when ``overwrite`` is False and it exists."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # usual permissions, unlike mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), overwrite=overwrite)


# errno -> (the problem as the producer reads it, what to do about it)
_STORAGE_PROBLEMS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("disk full", "free some space on that disk (or start the engine with another --render-dir), "
                   "then render again"),
    errno.EDQUOT: ("disk full", "your disk quota is used up: free some space (or start the engine with another "
                   "--render-dir), then render again"),
    errno.EROFS: ("read_only", "the disk is mounted read-only: remount it writable or start the engine with another "
                  "--render-dir, then render again"),
    errno.EACCES: ("not writable", "give the engine's user write permission there, or start the engine with another "
                   "--render-dir"),
    errno.EPERM: ("not writable", "give the engine's user write permission there, or start the engine with another "
                  "--render-dir"),
    errno.ENOENT: ("folder missing", "it was deleted or moved while the engine ran: restart the engine (it creates "
                   "its render folder again), then render again"),
    errno.ENOTDIR: ("folder missing", "a file stands where a folder should be: move it away, restart the engine, "
                    "then render again"),
    errno.EIO: ("I/O error", "the disk failed or was unplugged: check it, then render again"),
}
# SQLite reports storage failures as text, not errno
_SQLITE_PROBLEMS = (("disk is full", errno.ENOSPC), ("readonly database", errno.EROFS), ("disk i/o error", errno.EIO),
                    ("unable to open database", errno.ENOENT), ("no such table", errno.ENOENT))


def storage_errno(exc: BaseException | None) -> int | None:
    """The errno of a failed write, looking through chained exceptions and SQLite's messages; None when ``exc`` is
    not a storage failure."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _STORAGE_PROBLEMS:
            return exc.errno
        if type(exc).__module__ == "sqlite3" or type(exc).__name__ in ("OperationalError", "DatabaseError"):
            text = str(exc).lower()
            for needle, code in _SQLITE_PROBLEMS:
                if needle in text:
                    return code
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def storage_message(exc: BaseException, where: str | os.PathLike | None = None) -> str | None:
    """``"disk full: PATH. Free some space ..."`` for a write that failed for lack of space, a read-only or deleted
    folder, permissions or a failing disk (``None`` for anything else). ``PATH`` is the file the error names, else
    ``where``."""
    code = storage_errno(exc)
    if code is None:
        return None
    path, e, seen = None, exc, 0
    while e is not None and path is None and seen < 8:
        path = e.filename if isinstance(e, OSError) else None
        e, seen = e.__cause__ or e.__context__, seen + 1
    problem, fix = _STORAGE_PROBLEMS[code]
    return f"{problem}: {path or where or 'the render folder'}. {fix[0].upper()}{fix[1:]}."


def short_write_error(path: str | os.PathLike, needed: int = 0) -> OSError:
    """The ``OSError`` for a writer that wrote less than it was given without saying why (libsndfile through
    soundfile reports a full disk as a bare ``AssertionError``): ``ENOSPC`` when the disk has less than ``needed``
    bytes (or 1 MiB) left, ``EIO`` otherwise."""
    folder = Path(path).parent
    try:
        st = os.statvfs(folder)
        full = st.f_bavail * st.f_frsize < max(needed, 1 << 20)
    except (OSError, AttributeError):  # no statvfs on Windows: a short write there is nearly always a full disk
        full = True
    code = errno.ENOSPC if full else errno.EIO
    return OSError(code, os.strerror(code), str(path))


def file_sha256(path: str | os.PathLike) -> str:
    """The file's sha256 as hex, read in blocks (a multi-GB checkpoint never sits in memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
