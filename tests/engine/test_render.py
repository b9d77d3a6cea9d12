"""Rendered takes: names, WAV format at the DAW's rate, provenance in the sidecar and the WAV comment."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from engine import LICENCE_NOTE, __version__
from engine.io import publish as render
from engine.io.takes import RenderedTake
from engine.request import RenderRequest


def _take(req: RenderRequest, seconds: float = 0.25, take: int = 1) -> RenderedTake:
    t = np.arange(int(seconds * req.sample_rate)) / req.sample_rate
    audio = np.repeat(0.3 * np.sin(2 * np.pi * 440 * t)[:, None], req.channels, axis=1).astype(np.float32)
    return RenderedTake(take, audio, 12.5, 1234 + take - 1, codes={})


def _req(**fields) -> RenderRequest:
    base = {"source": "/music/in.wav", "start": 1.0, "length": 2.0, "position": 10.5, "artist": "Beyoncé",
            "genre": "R&B / Soul", "sample_rate": 48000, "channels": 2, "seed": 1234, "temperature": 0.9,
            "adherence": 0.4}
    return RenderRequest.from_fields("continue", {**base, **fields})


def test_names_are_slugified_and_carry_job_take_mode_and_style():
    assert render.slug("Beyoncé & Jay-Z!") == "beyonce-jay-z"
    assert render.slug("../../etc/passwd") == "etc-passwd"
    assert render.slug("") == ""
    assert render.take_stem("0123456789abcdef", 2, _req()) == "01234567-take2-continue-beyonce-r-b-soul"
    assert render.take_stem("0123456789abcdef", 1, RenderRequest.from_fields("generate", {})) == \
        "01234567-take1-generate"


def test_take_path_never_reuses_a_name(tmp_path):
    req = _req()
    first = render.take_path(tmp_path, "abcdef0123", 1, req)
    first.write_bytes(b"someone else's file")
    second = render.take_path(tmp_path, "abcdef0123", 1, req)
    assert second != first and second.parent == tmp_path and second.name.endswith("-2.wav")


@pytest.mark.parametrize("rate,channels", [(48000, 2), (22050, 1), (96000, 6)])
def test_publish_writes_the_daws_rate_and_channels_with_provenance(tmp_path, rate, channels):
    req = _req(sample_rate=rate, channels=channels)
    rendered = _take(req)
    path = render.take_path(tmp_path, "f00dcafe99", 1, req)
    meta = render.provenance("f00dcafe99", req, rendered, "debug", {"licence": LICENCE_NOTE, "attribution": "credit X"})
    assert render.publish_take(path, tmp_path / ".staging", rendered, req, meta) == path
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (rate, channels, "PCM_24")
    assert info.frames == len(rendered.audio)
    data, _ = sf.read(path, dtype="float32")
    assert np.allclose(data.reshape(len(rendered.audio), channels), rendered.audio, atol=1e-4)
    side = json.loads(render.sidecar_path(path).read_text())
    assert side == meta
    for key, value in {"model": "debug", "seed": 1234, "temperature": 0.9, "adherence": 0.4, "artist": "Beyoncé",
                       "take": 1,
                       "licence": LICENCE_NOTE, "attribution": "credit X", "engine": f"jukebox-bridge {__version__}",
                       "position": 12.5,
                       "source": {"path": "/music/in.wav", "start": 1.0, "length": 2.0}}.items():
        assert side[key] == value, key
    assert render.read_provenance(path) == {k: v for k, v in meta.items() if k != "lyrics"}
    with sf.SoundFile(path) as f:
        assert f.title == path.stem and f.software.startswith("Jukebox Bridge")
    assert list((tmp_path / ".staging").iterdir()) == []  # no staged leftovers


def test_long_lyrics_stay_in_the_sidecar_only(tmp_path):
    req = _req(lyrics="la " * 2600)
    rendered = _take(req, 0.05)
    path = render.take_path(tmp_path, "1234abcd", 1, req)
    render.publish_take(path, tmp_path / ".s", rendered, req, render.provenance("1234abcd", req, rendered, "m", {}))
    assert "lyrics" not in render.read_provenance(path)
    assert json.loads(render.sidecar_path(path).read_text())["lyrics"] == req.lyrics


def test_publishing_again_completes_without_rewriting(tmp_path):
    """A resumed job calls publish_take for a path it journalled: the WAV is kept, a lost sidecar comes back."""
    req = _req()
    rendered = _take(req)
    path = render.take_path(tmp_path, "beefbeef00", 1, req)
    meta = render.provenance("beefbeef00", req, rendered, "debug", {})
    render.publish_take(path, tmp_path / ".s", rendered, req, meta)
    before = path.stat()
    render.sidecar_path(path).unlink()
    render.publish_take(path, tmp_path / ".s", rendered, req, meta)
    after = path.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert render.sidecar_path(path).exists()
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == [path.name]


def test_provenance_carries_the_loaded_models_own_licence_and_attribution():
    """Each model's own terms: the embedded model's attribution, never the official weights' note on it."""
    from engine.weights.bundle import load_models
    from engine.weights.models import UNSTATED_LICENCE

    req = _req()
    rendered = _take(req)
    default = load_models(None)
    meta = render.provenance("ab", req, rendered, default.name, default.licence())
    assert meta["model"] == "jukebox-bridge-default" and "CC BY-NC" not in meta["licence"]
    assert "Wesnoth" in meta["attribution"]
    debug = load_models("debug")
    assert "random weights" in render.provenance("ab", req, rendered, "debug", debug.licence())["licence"]
    unstated = dataclasses.replace(debug, name="x", meta={})
    assert unstated.licence()["licence"] == UNSTATED_LICENCE
    official = dataclasses.replace(debug, name="5b", meta={"licence": LICENCE_NOTE})  # as bundle loads one
    assert render.provenance("ab", req, rendered, "5b", official.licence())["licence"] == LICENCE_NOTE


def test_top_level_windows_advance_two_seconds_and_official_models_keep_the_reference_hop():
    """A short top context (the default model's 1024 tokens, 0.74 s per 1/8 window) would prefill its whole window
    again every 0.74 s; official top priors already advance 2.2-3 s per window and keep the reference's 1/8."""
    from types import SimpleNamespace

    from engine.generate.render import TOP_ADVANCE_SECONDS, default_sampling
    from engine.model.config import OFFICIAL_PRIORS
    from engine.weights.bundle import load_models

    embedded = load_models(None)
    cfg = embedded.top.cfg
    fraction = default_sampling(embedded).hop_fractions[2]
    assert 0.125 * cfg.n_ctx * cfg.raw_to_tokens / cfg.sample_rate < TOP_ADVANCE_SECONDS and fraction == 0.5
    assert default_sampling(embedded).hop_fractions[:2] == (0.5, 0.5)
    for name in ("5b", "5b_lyrics", "1b_lyrics"):
        official = SimpleNamespace(top=SimpleNamespace(cfg=OFFICIAL_PRIORS[name]), levels=3, is_debug=False)
        assert default_sampling(official).hop_fractions == (0.5, 0.5, 0.125), name
