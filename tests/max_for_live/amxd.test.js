// The built "Jukebox Bridge.amxd".
// Frozen (the default build): Max's mx@c container inside the ptch chunk, read the way Ableton's
// maxdevtools reads it (frozen_device_printer.py / freezing_utils.py): a 16-byte header whose last 8
// bytes are the big-endian offset of the "dlst" directory, then "dire" entries of fields
// (type, fnam, sz32, of32, vers, flag, mdat), every size big-endian and counting its own 8-byte header.
// Unfrozen (--unfrozen): the patcher JSON NUL-terminated after the 32-byte chunk header, scripts beside.
// Built with `python max_for_live/build.py --out <tmp>` (JB_PYTHON names the interpreter).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawnSync } = require("child_process");
const { SRC, loadDevice } = require("./max_js");
const { makeSet } = require("./fake_live");

const BUILD = path.resolve(__dirname, "../../max_for_live/build.py");
const PYTHON = process.env.JB_PYTHON || "python3";
const DEVICE = "Jukebox Bridge.amxd";

// Walk the chunks the way maxdiff/amxd_textconv.py does: tag, u32 LE size, payload.
function chunks(buf) {
  const out = [];
  let offset = 0;
  while (offset < buf.length) {
    assert.ok(offset + 8 <= buf.length, `truncated chunk header at ${offset}`);
    const tag = buf.toString("ascii", offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    assert.ok(offset + 8 + size <= buf.length, `chunk ${tag} overruns the file`);
    out.push({ tag, offset, size, payload: buf.subarray(offset + 8, offset + 8 + size) });
    offset += 8 + size;
  }
  return out;
}

// The frozen container's files, as maxdevtools lists them: [{fnam, type, sz32, of32, vers, flag, mdat, data}].
function frozenFiles(data) {
  assert.equal(data.toString("ascii", 0, 4), "mx@c");
  assert.equal(data.readUInt32BE(4), 16, "header size");
  const footerAt = Number(data.readBigUInt64BE(8));
  const footer = data.subarray(footerAt);
  assert.equal(footer.toString("ascii", 0, 4), "dlst");
  assert.equal(footer.readUInt32BE(4), footer.length, "recorded directory size matches the actual size");
  const files = [];
  let entries = footer.subarray(8);
  while (entries.length && entries.toString("ascii", 0, 4) === "dire") {
    const size = entries.readUInt32BE(4);
    let fields = entries.subarray(8, size);
    const f = {};
    while (fields.length >= 12) {
      const tag = fields.toString("ascii", 0, 4);
      const fsize = fields.readUInt32BE(4);
      const body = fields.subarray(8, fsize);
      f[tag] = ["type", "fnam"].includes(tag) ? body.toString("utf8").replace(/\0+$/, "") : body.readUInt32BE(0);
      fields = fields.subarray(fsize);
    }
    for (const k of ["type", "fnam", "sz32", "of32", "vers", "flag", "mdat"]) assert.ok(k in f, `entry without ${k}`);
    f.data = data.subarray(f.of32, f.of32 + f.sz32);
    assert.ok(f.of32 >= 16 && f.of32 + f.sz32 <= footerAt, `${f.fnam} lies outside the file area`);
    files.push(f);
    entries = entries.subarray(size);
  }
  assert.equal(entries.length, 0, "only dire entries in the directory");
  return files;
}

const sources = () => fs.readdirSync(SRC).filter((n) => n.endsWith(".js")).sort();

let frozenDir;
let unfrozenDir;
test.before(() => {
  frozenDir = fs.mkdtempSync(path.join(os.tmpdir(), "jb-amxd-frozen-"));
  unfrozenDir = fs.mkdtempSync(path.join(os.tmpdir(), "jb-amxd-"));
  let r = spawnSync(PYTHON, [BUILD, "--out", frozenDir], { encoding: "utf8" });
  assert.equal(r.status, 0, `build.py failed: ${r.stderr}`);
  r = spawnSync(PYTHON, [BUILD, "--unfrozen", "--out", unfrozenDir], { encoding: "utf8" });
  assert.equal(r.status, 0, `build.py --unfrozen failed: ${r.stderr}`);
});
test.after(() => {
  fs.rmSync(frozenDir, { recursive: true, force: true });
  fs.rmSync(unfrozenDir, { recursive: true, force: true });
});

test("frozen: ampf 'aaaa', meta 7, ptch holding Max's mx@c container; nothing else is written", () => {
  assert.deepEqual(fs.readdirSync(frozenDir), [DEVICE], "the frozen device needs no file beside it");
  const buf = fs.readFileSync(path.join(frozenDir, DEVICE));
  const cs = chunks(buf);
  assert.deepEqual(cs.map((c) => c.tag), ["ampf", "meta", "ptch"]);
  assert.equal(cs[0].payload.toString("ascii"), "aaaa");
  assert.equal(cs[1].payload.readUInt32LE(0), 7);
  assert.equal(cs[2].payload.toString("ascii", 0, 4), "mx@c");
});

test("frozen: the device's patcher first, then every .js of src/ byte for byte", () => {
  const files = frozenFiles(chunks(fs.readFileSync(path.join(frozenDir, DEVICE)))[2].payload);
  const [device, ...deps] = files;
  assert.equal(device.fnam, DEVICE);
  assert.equal(device.type, "JSON");
  const json = JSON.parse(device.data.toString("utf8").replace(/\0$/, ""));
  assert.deepEqual(json, JSON.parse(fs.readFileSync(path.join(SRC, "JukeboxBridge.maxpat"), "utf8")));
  assert.deepEqual(deps.map((f) => f.fnam).sort(), sources());
  for (const f of deps) {
    assert.equal(f.type, "TEXT", f.fnam);
    assert.ok(Buffer.compare(f.data, fs.readFileSync(path.join(SRC, f.fnam))) === 0, `${f.fnam} differs from src/`);
    assert.ok(f.mdat > 2082844800, "mdat is an HFS+ date");
  }
  // the patcher's own dependency list names exactly what is frozen
  assert.deepEqual(json.patcher.dependency_cache.map((d) => d.name).sort(), sources());
});

test("frozen: the device runs from the .amxd alone (every require and the js box resolve inside it)", () => {
  const files = frozenFiles(chunks(fs.readFileSync(path.join(frozenDir, DEVICE)))[2].payload);
  const embedded = {};
  for (const f of files.slice(1)) embedded[f.fnam] = f.data.toString("utf8");
  const patcher = JSON.parse(files[0].data.toString("utf8").replace(/\0$/, ""));
  const jsBoxes = patcher.patcher.boxes.map((b) => b.box.text || "").filter((t) => /^js /.test(t));
  assert.deepEqual(jsBoxes, ["js jb_main.js"]);
  for (const t of jsBoxes) assert.ok(t.split(" ")[1] in embedded);
  const set = makeSet();
  const d = loadDevice({ LiveAPI: set.world.LiveAPI, files: embedded, srcDir: "/nonexistent" });
  d.send("bang");
  assert.equal(d.on(0)[0][0], "/jukebox/hello");
  assert.deepEqual(d.posts, []);
});

test("unfrozen: header ampf 'aaaa', meta 1, then ptch at byte 24; JSON starts at byte 32", () => {
  const buf = fs.readFileSync(path.join(unfrozenDir, DEVICE));
  assert.deepEqual([...buf.subarray(0, 28)], [
    ...Buffer.from("ampf"), 4, 0, 0, 0, ...Buffer.from("aaaa"),
    ...Buffer.from("meta"), 4, 0, 0, 0, 1, 0, 0, 0,
    ...Buffer.from("ptch"),
  ]);
  assert.equal(buf.readUInt32LE(28), buf.length - 32, "ptch size (little-endian) covers the rest of the file");
  assert.equal(buf[32], "{".charCodeAt(0));
  const ptch = chunks(buf)[2].payload;
  assert.equal(ptch.indexOf(0), ptch.length - 1, "NUL-terminated, no NUL inside the JSON");
  const json = JSON.parse(ptch.subarray(0, ptch.length - 1).toString("utf8"));
  assert.equal(json.patcher.project.amxdtype, chunks(buf)[0].payload.readUInt32BE(0), "amxdtype repeats the ampf code");
  for (const f of sources()) {
    assert.equal(fs.readFileSync(path.join(unfrozenDir, f), "utf8"), fs.readFileSync(path.join(SRC, f), "utf8"), f);
  }
});

test("--extract turns a saved device (unfrozen or frozen) back into the sources", () => {
  const back = fs.mkdtempSync(path.join(os.tmpdir(), "jb-extract-"));
  try {
    const to = path.join(back, "JukeboxBridge.maxpat");
    let r = spawnSync(PYTHON, [BUILD, "--extract", path.join(unfrozenDir, DEVICE), "--to", to], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(to, "utf8"), fs.readFileSync(path.join(SRC, "JukeboxBridge.maxpat"), "utf8"));
    fs.rmSync(to);
    r = spawnSync(PYTHON, [BUILD, "--extract", path.join(frozenDir, DEVICE), "--to", to], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(to, "utf8"), fs.readFileSync(path.join(SRC, "JukeboxBridge.maxpat"), "utf8"));
    for (const f of sources()) {
      assert.ok(Buffer.compare(fs.readFileSync(path.join(back, f)), fs.readFileSync(path.join(SRC, f))) === 0, f);
    }
    const encrypted = path.join(back, "enc.amxd");
    fs.writeFileSync(encrypted, Buffer.from("ampf\x04\0\0\0aaaaciph\x04\0\0\0abcdptch\x04\0\0\0xxxx", "latin1"));
    r = spawnSync(PYTHON, [BUILD, "--extract", encrypted, "--to", to], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /encrypted/);
  } finally {
    fs.rmSync(back, { recursive: true, force: true });
  }
});
