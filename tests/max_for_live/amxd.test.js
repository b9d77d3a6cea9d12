// The built "Jukebox Bridge.amxd": the chunk header Live reads (ampf, meta, ptch with little-endian
// sizes), the patcher JSON NUL-terminated after it, and the scripts copied beside it.
// Built with `python max_for_live/build.py --out <tmp>` (JB_PYTHON names the interpreter).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawnSync } = require("child_process");
const { SRC } = require("./max_js");

const BUILD = path.resolve(__dirname, "../../max_for_live/build.py");
const PYTHON = process.env.JB_PYTHON || "python3";

// Walk the chunks the way Ableton's maxdiff/amxd_textconv.py does: tag, u32 LE size, payload.
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

let outDir;
test.before(() => {
  outDir = fs.mkdtempSync(path.join(os.tmpdir(), "jb-amxd-"));
  const r = spawnSync(PYTHON, [BUILD, "--out", outDir], { encoding: "utf8" });
  assert.equal(r.status, 0, `build.py failed: ${r.stderr}`);
});
test.after(() => fs.rmSync(outDir, { recursive: true, force: true }));

test("header: ampf 'aaaa', meta 1, then ptch at byte 24; JSON starts at byte 32", () => {
  const buf = fs.readFileSync(path.join(outDir, "Jukebox Bridge.amxd"));
  assert.deepEqual([...buf.subarray(0, 28)], [
    ...Buffer.from("ampf"), 4, 0, 0, 0, ...Buffer.from("aaaa"),
    ...Buffer.from("meta"), 4, 0, 0, 0, 1, 0, 0, 0,
    ...Buffer.from("ptch"),
  ]);
  assert.equal(buf.readUInt32LE(28), buf.length - 32, "ptch size (little-endian) covers the rest of the file");
  assert.equal(buf[32], "{".charCodeAt(0));
});

test("chunks: only known tags, sizes consistent, the patcher NUL-terminated and equal to the source", () => {
  const buf = fs.readFileSync(path.join(outDir, "Jukebox Bridge.amxd"));
  const cs = chunks(buf);
  assert.deepEqual(cs.map((c) => c.tag), ["ampf", "meta", "ptch"]);
  assert.deepEqual(cs.map((c) => c.size).slice(0, 2), [4, 4]);
  const ptch = cs[2].payload;
  assert.equal(ptch[ptch.length - 1], 0, "NUL terminator");
  assert.equal(ptch.indexOf(0), ptch.length - 1, "no NUL inside the JSON");
  assert.notEqual(ptch.toString("ascii", 0, 4), "mx@c", "not frozen");
  const json = JSON.parse(ptch.subarray(0, ptch.length - 1).toString("utf8"));
  const source = JSON.parse(fs.readFileSync(path.join(SRC, "JukeboxBridge.maxpat"), "utf8"));
  assert.deepEqual(json, source);
  assert.equal(json.patcher.project.amxdtype, cs[0].payload.readUInt32BE(0), "amxdtype repeats the ampf code");
});

test("the device's scripts sit beside it, identical to src/", () => {
  for (const f of fs.readdirSync(SRC).filter((n) => n.endsWith(".js"))) {
    assert.equal(fs.readFileSync(path.join(outDir, f), "utf8"), fs.readFileSync(path.join(SRC, f), "utf8"), f);
  }
});

test("--extract turns a saved device back into the source patcher (the edit-in-Max round trip)", () => {
  const back = path.join(outDir, "back.maxpat");
  const r = spawnSync(PYTHON, [BUILD, "--extract", path.join(outDir, "Jukebox Bridge.amxd"), "--to", back],
                      { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(back, "utf8"), fs.readFileSync(path.join(SRC, "JukeboxBridge.maxpat"), "utf8"));
  const frozen = path.join(outDir, "frozen.amxd");
  const payload = Buffer.concat([Buffer.from("mx@c"), Buffer.alloc(12)]);
  const size = Buffer.alloc(4);
  size.writeUInt32LE(payload.length);
  fs.writeFileSync(frozen, Buffer.concat([Buffer.from("ampf\x04\0\0\0aaaameta\x04\0\0\0\x07\0\0\0ptch", "latin1"), size, payload]));
  const f = spawnSync(PYTHON, [BUILD, "--extract", frozen, "--to", back], { encoding: "utf8" });
  assert.equal(f.status, 2);
  assert.match(f.stderr, /frozen/);
});
