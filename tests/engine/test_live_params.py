"""The one table of live parameters (engine/params.py) against the request, the store and render.

The bug this guards: a render over OSC/MIDI sampled at 0.98 (the live store's default) while the same
request through ``sample``, ``batch`` or ``listen`` sampled at 1.0 (``SamplingParams``' default, through
``req.temperature or params.temperature``) and its sidecar said ``"temperature": null``.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from engine.errors import ErrorCode, RequestError
from engine.generate import render as render_module
from engine.generate.sampling import SamplingParams
from engine.io import publish
from engine.io.takes import RenderedTake
from engine.params import LIVE_DEFAULTS, LIVE_PARAMS, LiveParams
from engine.request import _RULES, RenderRequest
from engine.runtime.progress import CancelToken

TEMPERATURE = LIVE_PARAMS["temperature"].default


def test_the_request_defaults_and_rules_are_the_tables():
    bare = RenderRequest("generate")
    for name, p in LIVE_PARAMS.items():
        assert name in {f.name for f in dataclasses.fields(RenderRequest)}
        assert getattr(bare, name) == p.default == LIVE_DEFAULTS[name], name
        assert _RULES[name][2] == p.allowed, name
        assert p.accepts(p.default), name
        step = 1 if p.integer else 0.01
        ok = [p.high, p.default] + ([p.low + step] if p.low_open else [p.low])
        bad = [p.high + step] + ([p.low] if p.low_open else [p.low - step])
        for value in ok:
            assert getattr(RenderRequest.from_fields("generate", {name: value}), name) == value
            assert LiveParams.check(name, value) == value
        for value in bad:
            with pytest.raises(RequestError, match=re.escape(f"{name} must be {p.allowed}")) as info:
                RenderRequest.from_fields("generate", {name: value})
            assert info.value.code is ErrorCode.BAD_VALUE
            with pytest.raises(RequestError, match=re.escape(f"{name} must be {p.allowed}")):
                LiveParams.check(name, value)
    assert [p.knob.cc for p in LIVE_PARAMS.values() if p.knob and p.knob.cc is not None] == [1, 3, 4, 2]


def test_midi_floats_for_integer_parameters_and_nan_are_handled():
    assert LiveParams.check("takes", 4.0) == 4 and isinstance(LiveParams.check("takes", 4.0), int)
    for name, value in (("takes", 2.5), ("temperature", float("nan")), ("top_p", True), ("top_k", "3")):
        with pytest.raises(RequestError):
            LiveParams.check(name, value)
    with pytest.raises(RequestError, match="settable: adherence, takes, temperature, top_k, top_p"):
        LiveParams.check("volume", 1.0)


def test_every_path_resolves_a_left_out_temperature_the_same_way():
    """CLI ``sample``/``batch``/``listen`` build from fields (an unset option arrives as None); the server
    fills a left-out field from an untouched live store; all of them carry the table's value."""
    built = RenderRequest.from_fields("continue", {"source": "/a.wav"})
    paths = {
        "dataclass default": RenderRequest("generate").temperature,
        "from_fields (sample, batch, listen)": built.temperature,
        "an unset CLI option": RenderRequest.from_fields("generate", {"temperature": None}).temperature,
        "the live store": LiveParams().get("temperature"),
        "OSC, field left out": LiveParams().fill(built, frozenset({"source"})).temperature,
        "engine caller, given=None": LiveParams().fill(built).temperature,
    }
    assert paths == dict.fromkeys(paths, TEMPERATURE)


def test_a_turned_knob_fills_only_what_the_client_left_out():
    live = LiveParams({"temperature": 0.7, "takes": 3.0})
    sent = RenderRequest.from_fields("generate", {"temperature": 1.1})
    filled = live.fill(sent, frozenset({"temperature"}))
    assert (filled.temperature, filled.takes, filled.top_k, filled.top_p) == (1.1, 3, 0, 1.0)
    assert live.fill(sent).temperature == 1.1  # a request built by the engine's caller is complete


def test_the_sidecar_records_the_temperature_used():
    req = RenderRequest.from_fields("generate", {"seed": 5})
    take = RenderedTake(1, np.zeros((100, 2), np.float32), 0.0, 5, codes={})
    meta = publish.provenance("0123456789", req, take, "debug", {})
    assert meta["temperature"] == TEMPERATURE and meta["top_k"] == 0 and meta["top_p"] == 1.0


class _Sampled(Exception):
    pass


@pytest.fixture(scope="module")
def models():
    from engine.weights.debug import debug_models

    return debug_models(seed=0)


@pytest.mark.parametrize("fields, sampling", [({}, None), ({"temperature": 0.5, "top_k": 7, "top_p": 0.9}, None),
                                              ({}, SamplingParams(temperature=1.0, top_k=3))])
def test_render_samples_with_the_requests_values(models, monkeypatch, fields, sampling):
    """Whatever SamplingParams the caller passes, the prior samples at the request's values."""
    seen = []

    def fake_sample_level(job, codes, params, *args, **kwargs):
        seen.append(params)
        raise _Sampled()

    monkeypatch.setattr(render_module, "sample_level", fake_sample_level)
    req = RenderRequest.from_fields("generate", {"seconds": 0.2, "quality": "draft", "seed": 1, **fields})
    with pytest.raises(_Sampled):
        render_module.render(models, req, lambda p: None, CancelToken(), sampling=sampling)
    assert (seen[0].temperature, seen[0].top_k, seen[0].top_p) == (req.temperature, req.top_k, req.top_p)
    if not fields:
        assert seen[0].temperature == TEMPERATURE
