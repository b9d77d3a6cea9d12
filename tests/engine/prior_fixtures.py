"""Cached access to the shared prior parity fixtures for the prior tests (no conftest needed)."""

from __future__ import annotations

import functools
import json

import numpy as np

from engine.dev.fixtures import fixture_outputs, load_fixture_prior
from engine.model.prior import Prior

from .shared import shared_path

FIXTURES = ("upsampler_l1_tiny", "1b_lyrics_tiny", "5b_tiny")


def fixture_dir(name: str):
    return shared_path("priors", name)


@functools.lru_cache(maxsize=None)
def fixture_prior(name: str) -> Prior:
    """The fixture's checkpoint loaded (strict, fp16 cast to fp32) into a freshly built ``Prior``."""
    return load_fixture_prior(fixture_dir(name))


@functools.lru_cache(maxsize=None)
def fixture_results(name: str) -> dict:
    """Everything ``engine.dev.fixtures`` recomputes for the fixture, keyed like its files."""
    return fixture_outputs(fixture_dir(name), fixture_prior(name))


def reference(name: str, file: str):
    path = fixture_dir(name) / file
    if file.endswith(".json"):
        return json.loads(path.read_text())
    if file.endswith(".npz"):
        return dict(np.load(path))
    return np.load(path)
