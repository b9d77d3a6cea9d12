"""The OSC protocol table (bridge/protocol.py) against its document, and request validation without sockets."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from bridge import protocol
from bridge.protocol import CancelParams, NoParams, ProtocolError, SearchParams, SetParams, parse_request, reply
from engine.errors import ErrorCode
from engine.params import LIVE_PARAMS
from engine.request import RenderRequest

DOC = (Path(__file__).parents[2] / "docs" / "osc-protocol.md").read_text(encoding="utf-8")


def _section(start: str, end: str) -> str:
    return DOC[DOC.index(start): DOC.index(end, DOC.index(start))]


def _rows(text: str) -> dict[str, str]:
    """First backticked cell of each table row -> the whole row."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `([^`]+)` \|.*$", text, re.M)}


def test_every_verb_is_documented_and_every_documented_verb_exists():
    assert set(_rows(_section("### Verbs", "### Render fields"))) == set(protocol.VERBS)


def test_every_reply_address_is_documented_and_vice_versa():
    documented = set(re.findall(r"`(/jukebox/[a-z_]+)", DOC))
    assert documented == set(protocol.REPLIES)
    for verb in protocol.VERBS.values():
        assert set(verb.replies) <= set(protocol.REPLIES)


def test_reply_arguments_match_the_document():
    """Names (and types where the document gives them) in the order the table sends them."""
    table = _rows(_section("## Replies and events", "### Error codes"))
    inline = {m.group(1): m.group(2).split() for m in re.finditer(r"`(/jukebox/[a-z_]+) ([a-z_ ]+)`", DOC)}
    for address, spec in protocol.REPLIES.items():
        names = [name for name, _ in spec.args]
        assert address in table or address in inline, f"{address} has no documented arguments"
        if address not in table:  # inline forms of table addresses are examples with values
            assert inline[address] == names, address
        else:
            cell = table[address].split("|")[2]
            documented = re.findall(r"`([a-z_]+) ([sifh])`", cell)
            assert [n for n, _ in documented] == names, address
            for (name, tag), (_, doc_tag) in zip(spec.args, documented):
                assert doc_tag in tag.split("|"), f"{address} {name}"


def test_error_codes_match_the_document():
    """The document's table is engine/errors.py's ErrorCode, in order; the protocol uses that very table."""
    assert list(_rows(_section("### Error codes", "## Rendered files"))) == [c.value for c in ErrorCode]
    assert protocol.ERROR_CODES == tuple(ErrorCode)


def test_live_fields_are_documented_with_the_tables_range_and_default():
    rows = _rows(_section("### Render fields", "Where the result goes"))
    for name, p in LIVE_PARAMS.items():
        _, _, kind, default, _ = (cell.strip() for cell in rows[name].split("|")[:5])
        low, high = f"{p.low:g}", f"{p.high:g}"
        assert kind == (f"int {low}..{high}" if p.integer else f"number in {'(' if p.low_open else '['}{low}, {high}]")
        assert default.startswith(f"live `{name}` ({p.default!r}"), default


def test_render_fields_match_the_request_and_verb_params_are_documented():
    documented = set(_rows(_section("### Render fields", "Where the result goes")))
    assert documented == {f.name for f in dataclasses.fields(RenderRequest)} - {"mode"}
    rows = _rows(_section("### Verbs", "### Render fields"))
    for verb in protocol.VERBS.values():
        if not verb.renders:
            for f in dataclasses.fields(verb.params):
                row = rows[verb.name]
                assert re.search(rf'`"?{f.name}\b', row) or "same as" in row, (verb.name, f.name)


def test_limits_in_the_document_are_the_enforced_ones():
    flat = " ".join(DOC.split())  # line breaks may fall anywhere
    assert "64 KiB" in flat and protocol.MAX_PACKET == 64 * 1024
    assert "16 KiB" in flat and protocol.MAX_PARAMS_JSON == 16 * 1024
    assert f"at most {protocol.QUEUE_LIMIT} queued jobs" in flat
    assert f"at most {protocol.RATE_LIMIT} requests per second" in flat
    assert f"at most {protocol.MAX_REQUEST_ID} characters" in flat
    assert f"`127.0.0.1:{protocol.DEFAULT_PORT}`" in flat
    assert f"version {protocol.PROTOCOL_VERSION}" in flat


# ---------------------------------------------------------------- parsing


def _code(address: str, args: list, token: str | None = None) -> tuple[str, int | None, str]:
    with pytest.raises(ProtocolError) as info:
        parse_request(address, args, token)
    return info.value.code, info.value.reply_port, info.value.request_id


def test_valid_requests_become_typed_params():
    assert parse_request("/jukebox/ping", [9000, "r1"]).params == NoParams()
    assert parse_request("/jukebox/ping", [9000, "r1", ""]).params == NoParams()
    search = parse_request("/jukebox/artists", [9000, "r2", '{"query": "beat", "limit": 3}'])
    assert search.params == SearchParams("beat", 0, 3)
    render = parse_request("/jukebox/continue", [9000, "r3", json.dumps({"source": "/a.wav", "takes": 2})])
    assert isinstance(render.params, RenderRequest) and render.params.takes == 2
    assert render.given == frozenset({"source", "takes"})
    assert parse_request("/jukebox/cancel", [9000, "r4", '{"all": true}']).params == CancelParams(None, True)
    assert parse_request("/jukebox/set", [9000, "r5", '{"name": "temperature", "value": 0.9}']).params == \
        SetParams("temperature", 0.9)


def test_numeric_request_ids_from_max_are_echoed_as_strings():
    assert parse_request("/jukebox/ping", [9000, 17]).request_id == "17"


@pytest.mark.parametrize("args", [[], ["9000", "r"], [9000.0, "r"], [0, "r"], [70000, "r"], [True, "r"]])
def test_no_reply_port_means_no_reply(args):
    assert _code("/jukebox/ping", args) == ("bad_request", None, "")


@pytest.mark.parametrize("address,args,code", [
    ("/jukebox/ping", [9000], "bad_request"),
    ("/jukebox/ping", [9000, 1.5], "bad_request"),
    ("/jukebox/ping", [9000, "x" * 129], "bad_request"),
    ("/jukebox/ping", [9000, "r", "{}", "extra"], "bad_request"),
    ("/jukebox/ping", [9000, "r", 5], "bad_request"),
    ("/jukebox/ping", [9000, "r", "[1, 2]"], "bad_request"),
    ("/jukebox/ping", [9000, "r", "{nope"], "bad_request"),
    ("/jukebox/generate", [9000, "r", '{"seconds": NaN}'], "bad_request"),
    ("/jukebox/generate", [9000, "r", '{"lyrics": "' + "a" * 17000 + '"}'], "bad_request"),
    ("/jukebox/generate", [9000, "r", "[" * 5000 + "]" * 5000], "bad_request"),
    ("/jukebox/explode", [9000, "r"], "unknown_verb"),
    ("/jukebox/*", [9000, "r"], "unknown_verb"),
    ("/other/ping", [9000, "r"], "unknown_verb"),
    ("/jukebox/ping", [9000, "r", '{"x": 1}'], "unknown_field"),
    ("/jukebox/generate", [9000, "r", '{"colour": "red"}'], "unknown_field"),
    ("/jukebox/generate", [9000, "r", '{"source": "/a.wav"}'], "unknown_field"),
    ("/jukebox/continue", [9000, "r", "{}"], "bad_value"),
    ("/jukebox/generate", [9000, "r", '{"seconds": "ten"}'], "bad_value"),
    ("/jukebox/generate", [9000, "r", '{"takes": 9}'], "bad_value"),
    ("/jukebox/generate", [9000, "r", '{"lyrics": "' + "a" * 8001 + '"}'], "bad_value"),
    ("/jukebox/artists", [9000, "r", '{"limit": 0}'], "bad_value"),
    ("/jukebox/artists", [9000, "r", '{"offset": true}'], "bad_value"),
    ("/jukebox/cancel", [9000, "r", "{}"], "bad_value"),
    ("/jukebox/cancel", [9000, "r", '{"job_id": "a", "all": true}'], "bad_value"),
    ("/jukebox/set", [9000, "r", '{"name": "temperature"}'], "bad_value"),
    ("/jukebox/audition", [9000, "r", '{"job_id": "a", "take": 0}'], "bad_value"),
])
def test_bad_requests_get_their_code_and_the_reply_port(address, args, code):
    assert _code(address, args) == (code, 9000, args[1] if len(args) > 1 and isinstance(args[1], str)
                                    and len(args[1]) <= 128 else "")


def test_the_token_is_the_last_argument_and_is_checked_first():
    token = "s3cret-token"
    assert parse_request("/jukebox/ping", [9000, "r", token], token).verb == "ping"
    assert parse_request("/jukebox/status", [9000, "r", "{}", token], token).verb == "status"
    assert _code("/jukebox/ping", [9000, "r"], token) == ("unauthorized", 9000, "r")
    assert _code("/jukebox/ping", [9000, "r", "wrong"], token) == ("unauthorized", 9000, "r")
    assert _code("/jukebox/explode", [9000, "r", "{}"], token)[0] == "unauthorized"  # nothing leaks before the token
    assert _code("/jukebox/ping", [9000, "r", 12345], token)[0] == "unauthorized"


def test_replies_are_type_checked_against_the_table():
    r = reply("progress", "job", 1, "queued", -1)
    assert r.args == (("s", "job"), ("f", 1.0), ("s", "queued"), ("f", -1.0))
    assert reply("param", "quality", "draft").args[1] == ("s", "draft")
    assert reply("param", "temperature", 1).args[1] == ("f", 1.0)
    assert reply("finished", "job", "done", 2.0).args[2] == ("i", 2)
    assert reply("pong", "a\0b\ud800", "v").args[0] == ("s", "ab?")  # strings survive OSC framing
    with pytest.raises(TypeError):
        reply("pong", "only-one-argument")
    with pytest.raises(AssertionError):
        protocol.error("r", "no_such_code", "x")


def test_capabilities_list_every_verb():
    assert set(protocol.CAPABILITIES) == set(protocol.VERBS)
