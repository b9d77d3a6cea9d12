"""Locating the shared reference fixtures (``../shared/jukebox_reference`` beside the repo)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# JB_SHARED_DIR moves it (e.g. to a missing folder, to check that `-m "not parity"` needs none of it)
SHARED = Path(os.environ.get("JB_SHARED_DIR", REPO.parent / "shared")) / "jukebox_reference"


def shared_path(*parts: str) -> Path:
    """Path inside the shared fixtures; fails (never skips) when they are missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"reference fixture {path} is missing: clone the project with shared/ beside it")
    return path
