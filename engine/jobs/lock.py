"""One engine per render folder: an exclusive lock on ``.jukebox/engine.lock``, held while the engine runs.

Two engines on one folder would both resume a crashed job and write every take twice. The lock is an OS file lock
(``flock`` on POSIX, ``msvcrt.locking`` on Windows) on an open file, so the kernel releases it when the engine
exits, however it exits (``kill -9`` and power loss included): no stale lock to clean up by hand. The file says
who holds it (pid, OSC address), so the second engine can name the first in its refusal.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

LOCK_NAME = "engine.lock"


class FolderLocked(OSError):
    """Another engine serves this render folder; the message names its pid and OSC port and what to do."""


class FolderLock:
    """``FolderLock(state_dir, about).acquire()`` or raise ``FolderLocked``; ``release()`` when stopping."""

    def __init__(self, state_dir: Path, about: dict[str, Any] | None = None) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self.about = {"pid": os.getpid(), **(about or {})}
        self._fh: Any = None

    def acquire(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # never truncated before the lock is ours: the holder's details stay readable
        try:
            _lock(fh)
        except OSError:
            fh.close()
            raise FolderLocked(self._refusal()) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({**self.about, "started": time.time()}).encode())
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.seek(0)
                fh.truncate()  # a released lock names nobody
            except OSError:
                pass
            fh.close()  # closing releases the lock

    @property
    def held(self) -> bool:
        return self._fh is not None

    def _refusal(self) -> str:
        other: dict[str, Any] = {}
        for _ in range(20):  # the holder writes its details just after taking the lock
            try:
                other = json.loads(self.path.read_bytes() or b"{}")
            except (OSError, ValueError):
                other = {}
            if other:
                break
            time.sleep(0.025)
        folder = self.path.parent.parent
        who = f"pid {other.get('pid', '?')}"
        if other.get("port") is not None:
            who += f", OSC port {other['port']}" + (f" on {other['host']}" if other.get("host") else "")
        return (f"another engine ({who}) already serves the render folder {folder}. Two engines on one folder "
                f"would write every take twice: stop that engine first, or start this one with another "
                f"--render-dir.")


if os.name == "nt":  # pragma: no cover - Windows
    import msvcrt

    def _lock(fh: Any) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
else:
    import fcntl

    def _lock(fh: Any) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
