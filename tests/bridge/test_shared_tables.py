"""The DAW-side and client-side copies of the engine's tables, checked against the Python originals.

One table each, in Python: the live parameters (``LIVE_PARAMS``, engine/params.py), the protocol
(bridge/protocol.py) and the error codes (engine/errors.py). The MIDI mapping TOML, the Max for Live
device (max_for_live/src/jb_core.js, read by running it under Node), the REAPER scripts
(reaper_scripts/lib/jukebox_bridge/*.lua, run under Lua) and the request client (bridge/client.py) keep
copies or import them; these tests fail when one drifts.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import client, protocol
from bridge.midi import LEARN_DEFAULTS, MidiMapping
from engine.errors import ErrorCode, LocalErrorCode
from engine.params import LIVE_PARAMS, LiveParams
from engine.request import _RULES, MAX_SECONDS, RenderRequest

REPO = Path(__file__).resolve().parents[2]
JB_CORE = REPO / "max_for_live" / "src" / "jb_core.js"
LUA_LIB = REPO / "reaper_scripts" / "lib"
CLIENT_STATES = {"accepted", "running", *client.TERMINAL_STATES}


def _interpreter(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.fail(f"{names[0]} is needed for this test (./jb test installs it)", pytrace=False)


# ---------------------------------------------------------------- Python: protocol and client


def test_the_protocol_and_the_request_client_import_no_torch():
    """REAPER starts the client once per job: it must not pay for (or need) torch."""
    code = "import sys, bridge.protocol, bridge.client; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_client_uses_the_protocols_tables():
    assert (client.DEFAULT_HOST, client.DEFAULT_PORT, client.PREFIX) == (
        protocol.DEFAULT_LISTEN, protocol.DEFAULT_PORT, protocol.PREFIX)
    assert client.RENDER_VERBS == set(protocol.RENDER_VERBS)
    assert client.REPLY_ADDRESS is protocol.REQUEST_REPLY
    for verb, address in protocol.REQUEST_REPLY.items():
        assert address in protocol.VERBS[verb].replies
        assert protocol.REPLIES[address].args[0][0] == "request_id"
    # no private copies: neither reply addresses nor error codes as string literals in the code
    tree = ast.parse((REPO / "bridge" / "client.py").read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n) is not None}
    literals = {n.value for n in ast.walk(tree)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}
    codes = {*ErrorCode, *LocalErrorCode} - CLIENT_STATES  # "cancelled" is a state as well as a code
    assert not {s for s in literals if s.startswith(protocol.PREFIX)}
    assert not literals & codes


def test_error_codes_are_raised_by_name_not_as_string_literals():
    """engine/ and bridge/ raise and reply with ErrorCode members, so a typo cannot invent a code."""
    offenders = []
    for path in sorted([*REPO.glob("engine/**/*.py"), *REPO.glob("bridge/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "error" and getattr(getattr(node.func, "value", None), "id", "protocol") != "protocol":
                continue  # log.error and the like
            index = {"RequestError": 0, "ProtocolError": 0, "error": 1}.get(name)
            if index is not None and len(node.args) > index and isinstance(node.args[index], ast.Constant) \
                    and isinstance(node.args[index].value, str):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}({node.args[index].value!r})")
    assert not offenders, offenders


def test_the_osc_path_leaves_left_out_fields_to_the_live_store():
    """Over OSC a field the client leaves out takes the knob's value at submission; an untouched store
    gives the same values as a request built from fields (CLI sample, batch, listen)."""
    parsed = protocol.parse_request("/jukebox/continue", [9000, "r", json.dumps({"source": "/a.wav", "takes": 2})])
    built = RenderRequest.from_fields("continue", {"source": "/a.wav", "takes": 2})
    assert LiveParams().fill(parsed.params, parsed.given) == built
    turned = LiveParams({"temperature": 0.6, "takes": 5.0})
    filled = turned.fill(parsed.params, parsed.given)
    assert (filled.temperature, filled.takes) == (0.6, 2)  # the explicit takes wins


def test_the_settable_names_are_the_tables():
    flat = " ".join((REPO / "docs" / "osc-protocol.md").read_text(encoding="utf-8").split())
    listed = re.search(r"Settable: ((?:`\w+`(?:, )?)+)", flat).group(1)
    assert re.findall(r"`(\w+)`", listed) == list(LIVE_PARAMS)


# ---------------------------------------------------------------- MIDI mapping


def test_the_default_midi_mapping_follows_the_table():
    controls = {c.param: c for c in MidiMapping.default().controls}
    assert set(controls) == {n for n, p in LIVE_PARAMS.items() if p.knob and p.knob.cc is not None}
    for name, c in controls.items():
        p = LIVE_PARAMS[name]
        assert (c.cc, c.lo, c.hi, c.curve, c.integer) == (p.knob.cc, p.knob.low, p.knob.high, p.knob.curve,
                                                           p.integer), name
        assert c.channel is None and c.bits == 7, name
    for name, p in LIVE_PARAMS.items():
        assert p.knob is not None, f"{name} has no knob range for MIDI learn"
        assert p.accepts(p.knob.low) and p.accepts(p.knob.high), f"{name}: the knob leaves the valid range"
        assert LEARN_DEFAULTS[name] == (p.knob.low, p.knob.high, p.integer)


# ---------------------------------------------------------------- Max for Live (jb_core.js under Node)


@pytest.fixture(scope="module")
def jb_core() -> dict:
    node = _interpreter("node")
    code = ("const c = require(process.argv[1]); const out = {};"
            "for (const k of Object.keys(c)) if (typeof c[k] !== 'function') out[k] = c[k];"
            "process.stdout.write(JSON.stringify(out));")
    proc = subprocess.run([node, "-e", code, str(JB_CORE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_devices_protocol_constants_are_the_protocols(jb_core):
    assert jb_core["PROTOCOL"] == protocol.PROTOCOL_VERSION
    assert (jb_core["ENGINE_HOST"], jb_core["ENGINE_PORT"]) == (protocol.DEFAULT_LISTEN, protocol.DEFAULT_PORT)
    assert jb_core["PREFIX"] == protocol.PREFIX
    assert set(jb_core["RENDER_VERBS"]) <= set(protocol.RENDER_VERBS)
    assert jb_core["MENU_LIMIT"] == protocol.MAX_PAGE
    assert jb_core["QUALITIES"] == ["draft", "full"] and all(_RULES["quality"][1](q) for q in jb_core["QUALITIES"])
    for name in jb_core["REPLY_ARGS"]:
        assert protocol.PREFIX + name in protocol.REPLIES, name


def test_the_devices_parameter_ranges_follow_the_table(jb_core):
    ranges = jb_core["PARAM_RANGES"]
    for name in ("temperature", "takes"):
        p, r = LIVE_PARAMS[name], ranges[name]
        assert r["initial"] == p.default, name
        assert r["max"] == p.high, name
        assert p.accepts(r["min"]) and (r["min"] == p.low or p.low_open), name
    assert ranges["length_seconds"]["max"] == MAX_SECONDS
    assert _RULES["bars"][1](ranges["length_bars"]["max"]) and _RULES["bars"][1](ranges["length_bars"]["min"])


def test_the_devices_error_codes_exist():
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(JB_CORE.parent.glob("*.js")))
    used = set(re.findall(r"\bcode\s*[!=]==?\s*\"(\w+)\"", text))
    assert used and used <= set(ErrorCode), used - set(ErrorCode)


# ---------------------------------------------------------------- REAPER (the Lua library under Lua)

_LUA_DUMP = """
package.path = arg[1] .. "/?.lua;" .. package.path
reaper = {  -- a project at 120 BPM in 4/4 throughout: what the requests read of the tempo map
  TimeMap_GetTimeSigAtTime = function(proj, t) return 4, 4, 120 end,
  TimeMap2_timeToBeats = function(proj, t) return (t % 2) * 2, math.floor(t / 2) end,
  TimeMap2_beatsToTime = function(proj, beats, measures) return (measures or 0) * 2 + beats / 2 end,
  format_timestr = function(t) return tostring(t) end,
}
local json = require("jukebox_bridge.json")
local settings = require("jukebox_bridge.settings")
local requests = require("jukebox_bridge.requests")
local cfg = {}
for _, spec in ipairs(settings.SPECS) do cfg[spec.key] = spec.default end
local ctx = { tempo = 120, sample_rate = 48000 }
local region = { source = "/a.wav", start = 1, length = 2, position = 3, channels = 2 }
io.write(json.encode({
  specs = settings.SPECS,
  region = requests.for_region("continue", region, cfg, ctx),
  rerender = requests.for_region("rerender", region, cfg, ctx),
  refine = requests.for_region("refine", region, cfg, ctx),
  generate = requests.for_generate(cfg, ctx, 4, "la la"),
}))
"""


@pytest.fixture(scope="module")
def lua_tables() -> dict:
    lua = _interpreter("lua5.4", "lua")
    proc = subprocess.run([lua, "-", str(LUA_LIB)], input=_LUA_DUMP, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_reaper_settings_follow_the_tables(lua_tables):
    specs = {s["key"]: s for s in lua_tables["specs"]}
    assert (specs["host"]["default"], specs["port"]["default"]) == (protocol.DEFAULT_LISTEN, protocol.DEFAULT_PORT)
    t, p = specs["temperature"], LIVE_PARAMS["temperature"]
    # 0 is the setting's "the engine's live value" (the field is left out), the rest is the table's range
    assert (t["kind"], t["default"], t["min"], t["max"]) == ("number", 0, 0, p.high) and "0: engine" in t["label"]
    a, p = specs["adherence"], LIVE_PARAMS["adherence"]  # 0 is a value here (off), so -1 is "the engine's"
    assert (a["kind"], a["default"], a["min"], a["max"]) == ("number", -1, -1, p.high) and "-1: engine" in a["label"]
    k, p = specs["takes"], LIVE_PARAMS["takes"]
    assert (k["kind"], k["default"], k["min"], k["max"]) == ("integer", p.default, p.low, p.high)
    assert specs["seconds"]["max"] == MAX_SECONDS and _RULES["seconds"][1](specs["seconds"]["min"])
    assert _RULES["bars"][1](specs["bars"]["max"])
    assert specs["quality"]["choices"] == ["draft", "full"]


def test_the_reaper_requests_pass_the_engines_validator(lua_tables):
    """With every setting at its default: the fields the scripts send, through RenderRequest.from_fields."""
    assert lua_tables["refine"] == {"source": "/a.wav"}  # the engine takes the rest from the draft itself
    RenderRequest.from_fields("refine", lua_tables["refine"])
    for verb, key in (("continue", "region"), ("rerender", "rerender"), ("generate", "generate")):
        req = RenderRequest.from_fields(verb, lua_tables[key])
        assert req.temperature == LIVE_PARAMS["temperature"].default  # left out at 0, so the engine's
        assert req.adherence == LIVE_PARAMS["adherence"].default  # left out at -1
        assert "temperature" not in lua_tables[key] and "adherence" not in lua_tables[key]


def test_the_reaper_scripts_use_known_verbs_codes_and_states():
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(REPO.glob("reaper_scripts/**/*.lua")))
    verbs = set(re.findall(r"\b(?:verb = |submit_region_jobs\(title, |for_region\()\"(\w+)\"", text))
    assert set(protocol.RENDER_VERBS) <= verbs <= set(protocol.VERBS), verbs ^ set(protocol.VERBS)
    codes = set(re.findall(r"\bcode\s*[=~]?=\s*\"(\w+)\"", text))
    assert codes and codes <= {*ErrorCode, *LocalErrorCode}, codes - {*ErrorCode, *LocalErrorCode}
    states = set(re.findall(r"\bstate\s*[=~]?=\s*\"(\w+)\"", text))
    assert states and states <= CLIENT_STATES, states - CLIENT_STATES
