// End to end over real UDP: the device's JavaScript (in the Max js sandbox, fake Live Set) against a
// running engine. The harness plays Max's udpsend (OSC-encodes the script's outlet 0 and sends it with
// dgram) and udpreceive (binds the port the script asks for, decodes replies into the script's inlet 1).
//
// Needs JB_ENGINE_PORT (an engine on 127.0.0.1 started with --model debug) and JB_RENDER_DIR (its
// --render-dir); tests/bridge/test_max_for_live.py starts one. Skipped without them.
//
// A broken reply port fails at once (the bind error), a silent one after JB_E2E_STALL_MS without any reply
// (the engine repeats progress twice a second while a job runs), never only at the job's overall timeout.
// JB_E2E_REPLY_PORT forces the reply port (the wrapper's test of that fast failure).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const dgram = require("dgram");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { loadDevice } = require("./max_js");
const { makeSet } = require("./fake_live");
const { encodeMessage, decodePacket } = require("./osc");

const statuses = (d) => d.on(1).map((m) => m[1]);

const ENGINE_PORT = Number(process.env.JB_ENGINE_PORT || 0);
const RENDER_DIR = process.env.JB_RENDER_DIR || "";
const JOB_TIMEOUT_MS = Number(process.env.JB_E2E_TIMEOUT_MS || 240000);
const STALL_MS = Number(process.env.JB_E2E_STALL_MS || 15000);
const FORCED_REPLY_PORT = Number(process.env.JB_E2E_REPLY_PORT || 0);
const skip = ENGINE_PORT ? false : "JB_ENGINE_PORT not set (tests/bridge/test_max_for_live.py starts an engine)";

// A mono 16-bit WAV: a 220 Hz tone with a 2 Hz pulse, `seconds` long.
function writeWav(file, seconds, rate = 22050) {
  const n = Math.round(seconds * rate);
  const data = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const v = 0.4 * Math.sin(2 * Math.PI * 220 * t) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 2 * t));
    data.writeInt16LE(Math.round(v * 32767), i * 2);
  }
  const h = Buffer.alloc(44);
  h.write("RIFF", 0); h.writeUInt32LE(36 + data.length, 4); h.write("WAVE", 8);
  h.write("fmt ", 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate * 2, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34);
  h.write("data", 36); h.writeUInt32LE(data.length, 40);
  fs.writeFileSync(file, Buffer.concat([h, data]));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket("udp4");
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// The device script wired to real sockets, as the patch wires it to udpsend/udpreceive.
function wiredDevice(set) {
  const sent = []; // decoded copies of every packet udpsend would send
  const received = []; // every reply udpreceive delivered
  const state = { replyError: null, lastReply: Date.now() }; // what until() checks besides its predicate
  const out = dgram.createSocket("udp4");
  let inSocket = null;
  let device = null;
  const listen = (port) => {
    if (inSocket) inSocket.close();
    state.replyError = null;
    state.lastReply = Date.now();
    inSocket = dgram.createSocket("udp4");
    inSocket.on("error", (e) => { state.replyError = `reply port ${port} is broken: ${e.code || e.message}`; });
    inSocket.on("message", (buf) => {
      state.lastReply = Date.now();
      for (const m of decodePacket(buf)) {
        received.push(m);
        device.reply(m.address, ...m.args);
      }
    });
    inSocket.bind(port, "127.0.0.1");
  };
  device = loadDevice({
    LiveAPI: set.world.LiveAPI,
    realTime: true,
    onOutlet: (index, atoms) => {
      if (index === 0) { // udpsend 127.0.0.1 <engine port>
        const packet = encodeMessage(atoms[0], atoms.slice(1));
        sent.push(decodePacket(packet)[0]);
        out.send(packet, ENGINE_PORT, "127.0.0.1");
      } else if (index === 8 && atoms[0] === "port") { // udpreceive's port message
        listen(atoms[1]);
      }
    },
  });
  const close = () => { device.stop(); out.close(); if (inSocket) inSocket.close(); };
  return { device, sent, received, close, state };
}

// Wait for predicate(); with a wired device, fail at once when its reply port breaks or the device gives up on
// the engine, and after STALL_MS without a single reply.
async function until(what, predicate, timeoutMs, wired = null) {
  const t0 = Date.now();
  while (!predicate()) {
    if (wired) {
      if (wired.state.replyError) throw new Error(`${wired.state.replyError} (waiting for ${what})`);
      const status = statuses(wired.device).pop() || "";
      if (/did not answer/.test(status)) throw new Error(`the device gave up: ${status} (waiting for ${what})`);
      if (Date.now() - wired.state.lastReply > STALL_MS) {
        throw new Error(`no reply from the engine for ${STALL_MS} ms (waiting for ${what})`);
      }
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const replyPort = async () => FORCED_REPLY_PORT || freePort();


test("selected clip -> request -> engine renders -> tracks and clips at the right beats", { skip, timeout: JOB_TIMEOUT_MS + 60000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "jb-m4l-e2e-"));
  const source = path.join(tmp, "riff source.wav"); // a space, as real paths have
  writeWav(source, 6);
  // An unwarped Arrangement clip at beats 8..12 (2 s at 120 BPM) playing the file from 1 s.
  const set = makeSet({ tempo: 120, clip: { file_path: source, start_time: 8, end_time: 12, start_marker: 1,
                                            end_marker: 6, loop_start: 1, loop_end: 6 } });
  const wired = wiredDevice(set);
  const { device: d, sent, received, close } = wired;
  try {
    d.send("samplerate", 44100);
    d.send("takes", 2);
    d.send("quality", 0); // draft
    d.send("length_seconds", 1);
    d.send("bang");
    d.send("reply_port", await replyPort());
    d.tick(); // hello from the new port now rather than in 3 s
    await until("the engine's hello", () => d.context.ctl.connected, 30000, wired);
    await until("the engine info", () => d.context.ctl.engine.model !== "", 10000, wired);
    assert.match(d.on(2).pop()[1], /^Engine .*model/);
    await until("the artist list", () => d.on(4).length > 0, 10000);
    assert.equal(d.on(4)[0][0], "_parameter_range");
    assert.equal(d.on(4)[0][1], "(model default)");

    // what udpsend put on the wire: /jukebox/hello i s
    const hello = sent.find((m) => m.address === "/jukebox/hello");
    assert.deepEqual(hello.types, "is");

    d.send("press", "continue", 1);
    const request = sent.find((m) => m.address === "/jukebox/continue");
    assert.equal(request.types, "iss");
    const params = JSON.parse(request.args[2]);
    assert.deepEqual(params, { source, start: 1, length: 2, position: 4, tempo: 120, temperature: 0.98, takes: 2,
                               quality: "draft", sample_rate: 44100, seconds: 1 });

    await until("the job to finish", () => received.some((m) => m.address === "/jukebox/finished") ||
                                     received.some((m) => m.address === "/jukebox/error"), JOB_TIMEOUT_MS, wired);
    const errors = received.filter((m) => m.address === "/jukebox/error");
    assert.deepEqual(errors, [], `engine errors: ${JSON.stringify(errors)}`);
    const addresses = received.map((m) => m.address);
    assert.ok(addresses.includes("/jukebox/accepted"));
    assert.ok(addresses.includes("/jukebox/progress"));
    const done = received.filter((m) => m.address === "/jukebox/done");
    assert.equal(done.length, 2);
    assert.deepEqual(received.find((m) => m.address === "/jukebox/finished").args.slice(1), ["done", 2]);

    // Live side: one new audio track per take, each clip right after the region (beat 12)
    assert.equal(set.world.callsOf("create_audio_track").length, 2);
    assert.equal(set.created.length, 2);
    for (const [i, c] of set.created.entries()) {
      assert.equal(c.kind, "arrangement");
      assert.equal(c.position, 12);
      assert.equal(c.path, done[i].args[2]);
      assert.ok(fs.existsSync(c.path), `${c.path} exists`);
      if (RENDER_DIR) assert.ok(path.resolve(c.path).startsWith(path.resolve(RENDER_DIR)), `${c.path} in the render dir`);
      assert.notEqual(c.track, set.source.id);
    }
    assert.equal(statuses(d).pop(), "Continue: done, 2 takes placed.");
    assert.equal(d.on(3).pop()[1], 100);
  } finally {
    close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test("a clip whose file is gone: the engine's error shows, nothing is created", { skip, timeout: 60000 }, async () => {
  const set = makeSet({ clip: { file_path: path.join(os.tmpdir(), "jb-no-such-file.wav") } });
  const wired = wiredDevice(set);
  const { device: d, received, close } = wired;
  try {
    d.send("bang");
    d.send("reply_port", await replyPort());
    d.tick();
    await until("the engine's hello", () => d.context.ctl.connected, 30000, wired);
    d.send("press", "rerender", 1);
    await until("an error reply", () => received.some((m) => m.address === "/jukebox/error"), 20000, wired);
    assert.equal(received.find((m) => m.address === "/jukebox/error").args[1], "source_not_found");
    assert.match(statuses(d).pop(), /^Re-render failed: .*\[source_not_found\]$/);
    assert.deepEqual(set.created, []);
    assert.equal(set.world.callsOf("create_audio_track").length, 0);
  } finally {
    close();
  }
});

test("no engine at the port: the device says so and sends no render request", { timeout: 30000 }, async () => {
  const set = makeSet();
  const port = await freePort(); // nothing listens here
  const sent = [];
  const d = loadDevice({
    LiveAPI: set.world.LiveAPI,
    onOutlet: (i, atoms) => { if (i === 0) sent.push(atoms); },
  });
  d.send("bang");
  d.send("reply_port", port);
  d.tick();
  await new Promise((r) => setTimeout(r, 300));
  d.send("press", "continue", 1);
  assert.match(statuses(d).pop(), /Engine not running/);
  assert.ok(sent.every((m) => m[0] === "/jukebox/hello"));
  assert.deepEqual(set.created, []);
});
