// The device scripts must run in Max 8's js object (ES5, SpiderMonkey), and keep their layering:
// LiveAPI only in jb_live.js (jb_main.js hands it the constructor), post() only in the entry file.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");
const { SRC } = require("./max_js");

const FILES = fs.readdirSync(SRC).filter((f) => f.endsWith(".js")).sort();
const read = (f) => fs.readFileSync(path.join(SRC, f), "utf8");

// Node bundles acorn; reach it with --expose-internals and parse each file as ECMAScript 5.
const ACORN_CHECK = `
const acorn = require("internal/deps/acorn/acorn/dist/acorn");
const fs = require("fs");
const bad = [];
for (const f of process.argv.slice(1)) {
  try { acorn.parse(fs.readFileSync(f, "utf8"), { ecmaVersion: 5, sourceType: "script" }); }
  catch (e) { bad.push(f + ": " + e.message); }
}
process.stdout.write(JSON.stringify(bad));
`;

test("every script parses as ECMAScript 5", (t) => {
  const r = spawnSync(process.execPath, ["--expose-internals", "-e", ACORN_CHECK, ...FILES.map((f) => path.join(SRC, f))],
                      { encoding: "utf8" });
  if (r.status !== 0 || !r.stdout.startsWith("[")) {
    t.diagnostic(`acorn not reachable in this Node (${r.stderr.split("\n")[0]}); using the token check only`);
    return;
  }
  assert.deepEqual(JSON.parse(r.stdout), []);
});

// Without comments and string literals, no ES2015+ syntax is left (a second, parser-free check).
function code(src) {
  return src
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/\/\/[^\n]*/g, " ")
    .replace(/"(?:\\.|[^"\\\n])*"/g, '""')
    .replace(/'(?:\\.|[^'\\\n])*'/g, "''");
}

test("no ES2015+ tokens (let, const, =>, class, template strings, spread, for-of)", () => {
  const forbidden = [/\blet\s/, /\bconst\s/, /=>/, /\bclass\s/, /`/, /\.\.\./, /\bfor\s*\([^)]*\bof\b/,
                     /\basync\b/, /\bawait\b/, /\bimport\b/, /\bexport\b/];
  for (const f of FILES) {
    const c = code(read(f));
    for (const re of forbidden) assert.ok(!re.test(c), `${f} uses ${re}`);
  }
});

test("LiveAPI objects are made in jb_live.js only; post() is used by the entry file only", () => {
  for (const f of FILES) {
    const c = code(read(f));
    if (f !== "jb_live.js") assert.ok(!/new\s+LiveAPI\b/.test(c), `${f} makes LiveAPI objects`);
    if (!["jb_live.js", "jb_main.js"].includes(f)) assert.ok(!/\bLiveAPI\b/.test(c), `${f} mentions LiveAPI`);
    if (f !== "jb_main.js") assert.ok(!/\bpost\s*\(/.test(c), `${f} calls post()`);
  }
  assert.ok(/require\("jb_core"\)/.test(read("jb_controller.js")));
});

test("modules export through `exports.x = ...` (Max's require has no module.exports)", () => {
  for (const f of FILES.filter((n) => n !== "jb_main.js")) {
    const c = code(read(f));
    assert.ok(/\bexports\.\w+\s*=/.test(c), `${f} exports nothing`);
    assert.ok(!/module\.exports/.test(c), `${f} uses module.exports`);
  }
});
