"""Writing files whole or not at all: the one way every engine file (renders aside) reaches the disk.

A crash, a full disk or a bad value never leaves half a file: content goes to a temporary file in the
target's folder, is fsynced, then published in one step. State (manifests, caches, checkpoints of a
training run, work codes) replaces the old version (``overwrite=True``); what a user asked for (codes,
exported checkpoints) is hard-linked to a name that must not exist yet, so nothing is ever overwritten.
"""

from __future__ import annotations

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


def file_sha256(path: str | os.PathLike) -> str:
    """The file's sha256 as hex, read in blocks (a multi-GB checkpoint never sits in memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
