"""Locating the shared reference fixtures (``../shared/jukebox_reference`` beside the repo)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "jukebox_reference"


def shared_path(*parts: str) -> Path:
    """Path inside the shared fixtures; fails (never skips) when they are missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"reference fixture {path} is missing: clone the project with shared/ beside it")
    return path
