"""A versioned file of Jukebox codes (``.npz``): ``level0``..``levelN`` int64 arrays plus JSON metadata.

Codes are outputs in their own right: a render can be re-decoded, refined from a higher level, or a
crashed job resumed from them. The file records what is needed to turn them back into aligned audio.
The one format for codes on disk: ``codec encode`` output, a job's work codes and the region cache.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write

CODES_VERSION = 1


class CodesFileError(ValueError):
    pass


@dataclass(frozen=True)
class CodesFile:
    codes: dict[int, np.ndarray]  # level -> (N, T_level) int64
    hop_lengths: tuple[int, ...]
    sample_rate: int = 44100
    n_samples: int | None = None  # audio length the codes came from, before padding to the top hop
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write atomically; without ``overwrite`` (a user's output) refuse to replace an existing file."""
        path = Path(path)
        if not overwrite and path.exists():
            raise CodesFileError(f"{path}: already exists; choose another output name.")
        meta = {k: v for k, v in asdict(self).items() if k != "codes"}
        meta["version"] = CODES_VERSION
        arrays = {f"level{lv}": np.asarray(z, dtype=np.int64) for lv, z in sorted(self.codes.items())}
        return atomic_write(path, lambda f: np.savez(f, meta=np.array(json.dumps(meta)), **arrays),
                            overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CodesFile":
        path = Path(path)
        if not path.exists():
            raise CodesFileError(f"{path}: codes file not found. Create one with `jukebox-bridge codec encode`.")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise CodesFileError(f"{path}: not a readable .npz codes file ({e}).") from None
        try:
            meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
        except ValueError as e:
            raise CodesFileError(f"{path}: damaged metadata ({e}).") from None
        version = meta.pop("version", CODES_VERSION)
        if version != CODES_VERSION:
            raise CodesFileError(f"{path}: codes file version {version} is not supported (expected {CODES_VERSION}).")
        codes = {}
        for name, z in arrays.items():
            if not name.startswith("level") or not name[5:].isdigit():
                raise CodesFileError(f"{path}: unexpected array {name!r}; expected level0, level1, ...")
            if z.dtype.kind not in "iu" or z.ndim not in (1, 2):
                raise CodesFileError(f"{path}: {name} must be an integer array (N, T); got {z.dtype} {z.shape}.")
            codes[int(name[5:])] = (z[None] if z.ndim == 1 else z).astype(np.int64)
        if not codes:
            raise CodesFileError(f"{path}: holds no level arrays.")
        meta.setdefault("hop_lengths", (8, 32, 128))
        meta["hop_lengths"] = tuple(meta["hop_lengths"])
        return cls(codes=codes, **meta)


class CodesLog:
    """A job's work codes of one level, appended window by window: each window writes only its new columns, so
    saving a long job costs what it samples (``CodesFile.save`` of the whole level after every window costs the
    square of its length).

    The file is a sequence of records: a 16-byte header (``b"JBCL"``, columns, rows, CRC-32 of the data), then
    rows x columns little-endian int32 codes in row-major order. Each append is fsynced. ``load`` concatenates
    the records along time and stops at the first torn or damaged one (a crash mid-append), which it cuts off, so
    a resumed job re-samples only the window it lost."""

    MAGIC = b"JBCL"
    SUFFIX = ".jbcl"  # a work folder's per-level logs: codes_level{N}.jbcl

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def append(self, codes: np.ndarray) -> None:
        """Append (rows, new_columns) codes; rows must match what is already there."""
        block = np.ascontiguousarray(codes, dtype="<i4")
        if block.ndim != 2:
            raise ValueError(f"codes must be (rows, columns); got shape {block.shape}")
        if block.shape[1] == 0:
            return
        data = block.tobytes()
        header = self.MAGIC + np.array([block.shape[1], block.shape[0], zlib.crc32(data)], "<u4").tobytes()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, header + data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def load(self) -> np.ndarray | None:
        """(rows, columns) int64 codes of every whole record; None when there is no file or no whole record."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        parts, offset, rows = [], 0, None
        while offset + 16 <= len(raw):
            if raw[offset:offset + 4] != self.MAGIC:
                break
            cols, n_rows, crc = (int(v) for v in np.frombuffer(raw, "<u4", 3, offset + 4))
            end = offset + 16 + 4 * cols * n_rows
            if end > len(raw) or (rows is not None and n_rows != rows) or zlib.crc32(raw[offset + 16:end]) != crc:
                break
            parts.append(np.frombuffer(raw, "<i4", cols * n_rows, offset + 16).reshape(n_rows, cols))
            offset, rows = end, n_rows
        if offset < len(raw):  # a torn or damaged tail: cut it, so the next append follows the last whole record
            with open(self.path, "r+b") as fh:
                fh.truncate(offset)
        return np.concatenate(parts, axis=1).astype(np.int64) if parts else None

    @property
    def columns(self) -> int:
        loaded = self.load()
        return 0 if loaded is None else loaded.shape[1]
