"""The region cache: encoded source regions by content address, so another take of a region skips encoding."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.io.codes import CodesFile, CodesFileError

log = logging.getLogger(__name__)


class SourceCache:
    """Encoded source regions stored by content address (``generate.source.region_key``: the file's sha256, the
    region and the model) as ``<key>.npz`` codes files, so re-rendering a region (another take or mode) skips encoding."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        if not key.isalnum():  # keys are hex digests; never let one name a path outside the folder
            raise ValueError(f"bad cache key {key!r}")
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> CodesFile | None:
        path = self._path(key)
        try:
            return CodesFile.load(path)
        except CodesFileError:  # missing, or damaged (empty, truncated, not a zip): encoded again
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # a cache that cannot be read (not a folder, read-only) must not fail the job
                log.warning("region cache not usable: %s", exc)
            return None

    def put(self, key: str, codes: CodesFile) -> None:
        try:  # content-addressed: replacing an entry with the same content is harmless
            self.folder.mkdir(parents=True, exist_ok=True)
            codes.save(self._path(key), overwrite=True)
        except OSError as exc:  # a cache that cannot be written (disk full) must not fail the job
            log.warning("region cache not written: %s", exc)
