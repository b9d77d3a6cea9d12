// JukeboxBridge.maxpat: valid JSON, every patch cord between existing objects and real outlets/inlets,
// live.* parameters with unique long names and ranges that match the engine protocol.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const { loadDevice, SRC } = require("./max_js");

const core = require(path.join(SRC, "jb_core.js"));
const PATCHER_FILE = path.join(SRC, "JukeboxBridge.maxpat");
const patcher = JSON.parse(fs.readFileSync(PATCHER_FILE, "utf8")).patcher;
const boxes = patcher.boxes.map((b) => b.box);
const byId = new Map(boxes.map((b) => [b.id, b]));

// Inlets/outlets of every object class the device uses (Max 8/9). An object not listed fails the
// test: add it here, with its real counts, before using it.
const UI_CLASSES = {
  "live.dial": [1, 2], "live.numbox": [1, 2], "live.slider": [1, 2], "live.text": [1, 2],
  "live.tab": [1, 3], "live.menu": [1, 3], comment: [1, 0], textedit: [1, 4],
};
const NEWOBJ_CLASSES = {
  "live.thisdevice": () => [1, 3],
  "dspstate~": () => [1, 4],
  prepend: () => [1, 1],
  udpsend: () => [1, 0],
  udpreceive: () => [1, 1],
  "plugin~": () => [2, 2],
  "plugout~": () => [2, 2],
  pattr: () => [1, 3],
  t: (args) => [1, args.length], // trigger: one outlet per argument
  js: () => {
    const d = loadDevice();
    return [d.context.inlets, d.context.outlets];
  },
};

function words(b) { return String(b.text || "").trim().split(/\s+/); }

function expectedPorts(b) {
  if (b.maxclass === "newobj") {
    const [name, ...args] = words(b);
    const f = NEWOBJ_CLASSES[name];
    assert.ok(f, `${b.id}: object [${b.text}] is not in the known-objects table`);
    return f(args.filter((a) => !a.startsWith("@")));
  }
  const ports = UI_CLASSES[b.maxclass];
  assert.ok(ports, `${b.id}: maxclass ${b.maxclass} is not in the known-objects table`);
  return ports;
}

function findObj(name) {
  return boxes.filter((b) => b.maxclass === "newobj" && words(b)[0] === name);
}

const jsBox = findObj("js")[0];
const params = boxes.filter((b) => b.parameter_enable === 1 ||
                                  (b.saved_object_attributes && b.saved_object_attributes.parameter_enable === 1));
const valueof = (b) => b.saved_attribute_attributes.valueof;
const paramByName = new Map(params.map((b) => [valueof(b).parameter_longname, b]));

test("patcher JSON: boxes with unique ids, every object known, in/outlet counts right", () => {
  assert.ok(Array.isArray(patcher.boxes) && Array.isArray(patcher.lines));
  assert.equal(byId.size, boxes.length, "box ids are unique");
  for (const b of boxes) {
    const [ins, outs] = expectedPorts(b);
    assert.equal(b.numinlets, ins, `${b.id} [${b.text || b.maxclass}] numinlets`);
    assert.equal(b.numoutlets, outs, `${b.id} [${b.text || b.maxclass}] numoutlets`);
    if (outs) assert.equal(b.outlettype.length, outs, `${b.id} outlettype`);
  }
});

test("every patch cord joins existing objects at a valid outlet and inlet", () => {
  assert.ok(patcher.lines.length > 0);
  const seen = new Set();
  for (const { patchline: l } of patcher.lines) {
    const [src, outlet] = l.source;
    const [dst, inlet] = l.destination;
    assert.ok(byId.has(src), `cord from missing ${src}`);
    assert.ok(byId.has(dst), `cord to missing ${dst}`);
    const [, outs] = expectedPorts(byId.get(src));
    const [ins] = expectedPorts(byId.get(dst));
    assert.ok(Number.isInteger(outlet) && outlet >= 0 && outlet < outs, `${src} has no outlet ${outlet}`);
    assert.ok(Number.isInteger(inlet) && inlet >= 0 && inlet < ins, `${dst} has no inlet ${inlet}`);
    const key = JSON.stringify([l.source, l.destination]);
    assert.ok(!seen.has(key), `duplicate cord ${key}`);
    seen.add(key);
  }
});

function cordsFrom(id, outlet) {
  return patcher.lines.map((l) => l.patchline)
    .filter((l) => l.source[0] === id && (outlet === undefined || l.source[1] === outlet))
    .map((l) => byId.get(l.destination[0]));
}
function cordsInto(id, inlet) {
  return patcher.lines.map((l) => l.patchline)
    .filter((l) => l.destination[0] === id && (inlet === undefined || l.destination[1] === inlet))
    .map((l) => ({ box: byId.get(l.source[0]), outlet: l.source[1] }));
}

test("networking: udpsend to the engine, udpreceive on the default reply port into the script's inlet 1", () => {
  const [udpsend] = findObj("udpsend");
  const [udpreceive] = findObj("udpreceive");
  assert.deepEqual(words(udpsend).slice(1), [core.ENGINE_HOST, String(core.ENGINE_PORT)]);
  assert.deepEqual(words(udpreceive).slice(1), [String(core.DEFAULT_REPLY_PORT)]);
  assert.deepEqual(cordsFrom(udpreceive.id).map((b) => b.id), [jsBox.id]);
  assert.deepEqual(cordsInto(jsBox.id, 1).map((c) => c.box.id), [udpreceive.id]);
});

test("the script's outlets reach what jb_main.js says they feed", () => {
  const want = ["udpsend", "comment", "comment", "live.slider", "live.menu", "live.menu", "pattr", "pattr", "udpreceive"];
  assert.equal(jsBox.numoutlets, want.length);
  want.forEach((cls, i) => {
    const dsts = cordsFrom(jsBox.id, i);
    assert.equal(dsts.length, 1, `js outlet ${i} has one cord`);
    const got = dsts[0].maxclass === "newobj" ? words(dsts[0])[0] : dsts[0].maxclass;
    assert.equal(got, cls, `js outlet ${i}`);
  });
  const names = (i) => cordsFrom(jsBox.id, i)[0];
  assert.equal(names(1).varname, "status");
  assert.equal(names(2).varname, "connection");
  assert.equal(valueof(names(4)).parameter_longname, "Artist Menu");
  assert.equal(valueof(names(5)).parameter_longname, "Genre Menu");
  assert.equal(names(6).varname, "artist_name");
  assert.equal(names(7).varname, "genre_name");
});

test("every message into the script's inlet 0 names a function of jb_main.js", () => {
  const d = loadDevice();
  const into = cordsInto(jsBox.id, 0);
  assert.ok(into.length >= 15);
  for (const { box } of into) {
    let msg;
    if (words(box)[0] === "prepend") msg = words(box)[1];
    else if (words(box)[0] === "t") msg = "bang";
    else assert.fail(`unexpected sender into js inlet 0: [${box.text || box.maxclass}]`);
    assert.equal(typeof d.context[msg], "function", `jb_main.js has no function ${msg}`);
    assert.ok(!d.context[msg].local, `${msg} is local`);
  }
  // every control reaches the script through its own prepend
  for (const b of params) {
    if (["live.slider"].includes(b.maxclass)) continue; // display only
    const p = cordsFrom(b.id, 0);
    assert.equal(p.length, 1, `${valueof(b).parameter_longname} has one cord`);
    assert.equal(words(p[0])[0], "prepend");
    assert.deepEqual(cordsFrom(p[0].id).map((x) => x.id), [jsBox.id]);
  }
});

test("start-up order: live.thisdevice -> [t b b] -> dspstate~ first, then the script's bang", () => {
  const [td] = findObj("live.thisdevice");
  const [trig] = cordsFrom(td.id, 0);
  assert.deepEqual(words(trig), ["t", "b", "b"]);
  assert.equal(words(cordsFrom(trig.id, 1)[0])[0], "dspstate~"); // right outlet fires first
  assert.equal(cordsFrom(trig.id, 0)[0].id, jsBox.id);
  const [dsp] = findObj("dspstate~");
  assert.deepEqual(words(cordsFrom(dsp.id, 1)[0]), ["prepend", "samplerate"]); // outlet 1: sampling rate
});

test("audio passes through: plugin~ -> plugout~ on both channels", () => {
  const [pin] = findObj("plugin~");
  const [pout] = findObj("plugout~");
  for (const ch of [0, 1]) {
    assert.ok(patcher.lines.some(({ patchline: l }) => l.source[0] === pin.id && l.source[1] === ch &&
                                                       l.destination[0] === pout.id && l.destination[1] === ch));
  }
});

test("parameters: unique long names, listed in the patcher's parameter table, banks name real ones", () => {
  const longnames = params.map((b) => valueof(b).parameter_longname);
  assert.equal(new Set(longnames).size, longnames.length, `duplicate long names: ${longnames}`);
  for (const b of params) {
    const v = valueof(b);
    assert.ok(v.parameter_longname && v.parameter_shortname, `${b.id} names`);
    assert.deepEqual(patcher.parameters[b.id].slice(0, 2), [v.parameter_longname, v.parameter_shortname]);
  }
  const listed = Object.keys(patcher.parameters).filter((k) => k.startsWith("obj-"));
  assert.deepEqual(listed.sort(), params.map((b) => b.id).sort());
  for (const name of patcher.parameters.parameterbanks["0"].parameters) {
    if (name !== "-") assert.ok(paramByName.has(name), `bank names unknown parameter ${name}`);
  }
});

// The long names are permanent (Live recalls automation and mappings by them): this list only grows.
const PERMANENT = ["Temperature", "Takes", "Quality", "Length Unit", "Length Seconds", "Length Bars", "Place On",
                   "Artist Menu", "Genre Menu", "Artist Name", "Genre Name", "Continue", "Prime", "Re-render",
                   "Cancel", "Progress"];

test("parameter long names never change", () => {
  for (const name of PERMANENT) assert.ok(paramByName.has(name), `parameter '${name}' was renamed or removed`);
});

function range(name) {
  const v = valueof(paramByName.get(name));
  return { type: v.parameter_type, min: v.parameter_mmin, max: v.parameter_mmax, initial: (v.parameter_initial || [])[0],
           enum: v.parameter_enum, invisible: v.parameter_invisible || 0, cls: paramByName.get(name).maxclass };
}

test("automatable controls: live.* objects, ranges inside the protocol's, matching jb_core", () => {
  const R = core.PARAM_RANGES;
  const t = range("Temperature");
  assert.deepEqual([t.cls, t.type, t.min, t.max, t.initial], ["live.dial", 0, R.temperature.min, R.temperature.max,
                                                            R.temperature.initial]);
  assert.ok(t.min > 0 && t.max <= 2, "temperature in (0, 2]");
  const k = range("Takes");
  assert.deepEqual([k.cls, k.type, k.min, k.max, k.initial], ["live.numbox", 1, 1, 8, R.takes.initial]);
  const s = range("Length Seconds");
  assert.deepEqual([s.type, s.min, s.max, s.initial], [0, R.length_seconds.min, R.length_seconds.max, R.length_seconds.initial]);
  assert.ok(s.min > 0 && s.max <= 300, "seconds in (0, 300]");
  const b = range("Length Bars");
  assert.deepEqual([b.type, b.min, b.max, b.initial], [0, R.length_bars.min, R.length_bars.max, R.length_bars.initial]);
  assert.ok(b.min > 0 && b.max <= 128, "bars in (0, 128]");
  const q = range("Quality");
  assert.deepEqual([q.cls, q.enum], ["live.tab", core.QUALITIES]);
  assert.equal(range("Length Unit").enum.length, core.LENGTH_UNITS.length);
  assert.equal(range("Place On").enum.length, core.PLACE_ON.length);
  for (const name of ["Temperature", "Takes", "Quality", "Length Unit", "Length Seconds", "Length Bars", "Place On"]) {
    assert.equal(range(name).invisible, 0, `${name} is automatable and stored`);
  }
  for (const name of ["Continue", "Prime", "Re-render", "Cancel", "Progress", "Artist Menu", "Genre Menu"]) {
    assert.equal(range(name).invisible, 2, `${name} is hidden (driven from the patch, or a button)`);
  }
  for (const name of ["Artist Name", "Genre Name"]) {
    assert.deepEqual([range(name).type, range(name).invisible], [3, 1], `${name}: a stored-only blob`);
  }
  for (const name of ["Continue", "Prime", "Re-render", "Cancel"]) {
    assert.equal(paramByName.get(name).mode, 0, `${name} is a live.text in button mode`);
  }
});

test("device: an Audio Effect, 169 px tall, scripts in the dependency cache, presentation inside the device", () => {
  assert.equal(patcher.project.amxdtype, Buffer.from("aaaa").readUInt32BE(0));
  assert.equal(patcher.openinpresentation, 1);
  const deps = patcher.dependency_cache.map((d) => d.name).sort();
  const scripts = fs.readdirSync(SRC).filter((f) => f.endsWith(".js")).sort();
  assert.deepEqual(deps, scripts);
  assert.equal(jsBox.saved_object_attributes.filename, "jb_main.js");
  for (const b of boxes.filter((x) => x.presentation)) {
    const [x, y, w, h] = b.presentation_rect;
    assert.ok(x >= 0 && y >= 0 && x + w <= patcher.devicewidth && y + h <= 169, `${b.id} outside the device`);
  }
  for (const b of params.filter((x) => x.maxclass.startsWith("live.") && x.maxclass !== "live.slider")) {
    assert.equal(b.presentation, 1, `${valueof(b).parameter_longname} is on the device's face`);
  }
});
