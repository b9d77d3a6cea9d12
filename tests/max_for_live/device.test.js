// The device's JavaScript as Max runs it (vm sandbox with Max's js globals) against a strict fake
// LiveAPI: selected clip -> request, bad cases, done -> tracks and clips, Session fallback, old Live.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { loadDevice } = require("./max_js");
const { makeSet } = require("./fake_live");

const OSC = 0, STATUS = 1, CONNECTION = 2, PROGRESS = 3, ARTIST_MENU = 4, ARTIST_STORE = 6, LISTEN = 8;

// A loaded device on a fake Set, started (live.thisdevice banged) and optionally connected.
function device(setOpts = {}, { connect = true, controls = {} } = {}) {
  const set = makeSet(setOpts);
  const d = loadDevice({ LiveAPI: set.world.LiveAPI });
  d.send("samplerate", 48000);
  for (const [name, value] of Object.entries(controls)) d.send(name, value);
  d.send("bang");
  if (connect) {
    const hello = d.on(OSC).find((m) => m[0] === "/jukebox/hello");
    d.reply("/jukebox/hello", hello[2], "0.1.0", 1);
  }
  d.clear();
  set.world.calls.length = 0;
  return { d, set };
}

const lastStatus = (d) => { const s = d.on(STATUS); return s.length ? s[s.length - 1][1] : ""; };
const requests = (d) => d.on(OSC).filter((m) => m[0] !== "/jukebox/hello");
const creations = (world) => world.calls.filter((c) => c.op === "call" && /^create_/.test(c.name));

test("the script declares what the patch wires: 2 inlets, 9 outlets", () => {
  const { d } = device({}, { connect: false });
  assert.equal(d.context.inlets, 2);
  assert.equal(d.context.outlets, 9);
  assert.equal(d.context.autowatch, 1);
});

test("start-up: moves udpreceive to this instance's port, says hello, reports the engine missing", () => {
  const set = makeSet({ deviceId: 9000 });
  const d = loadDevice({ LiveAPI: set.world.LiveAPI });
  d.send("bang");
  assert.deepEqual(d.on(LISTEN), [["port", 9131 + (9000 % 64)]]);
  assert.deepEqual(d.on(OSC), [["/jukebox/hello", 9171, "m4l-h1"]]);
  assert.match(d.on(CONNECTION).pop()[1], /Engine not running/);
  assert.deepEqual(d.posts, []);
});

test("hello reply connects: asks for info and the label lists, then shows the model", () => {
  const { d } = device({}, { connect: false });
  d.tick();
  const hello = d.on(OSC).pop();
  d.clear();
  d.reply("/jukebox/hello", hello[2], "0.1.0", 1);
  const sent = d.on(OSC).map((m) => m[0]);
  assert.deepEqual(sent, ["/jukebox/info", "/jukebox/artists", "/jukebox/genres"]);
  const artists = d.on(OSC)[1];
  assert.deepEqual(JSON.parse(artists[3]), { query: "", offset: 0, limit: 200 });
  d.reply("/jukebox/info", d.on(OSC)[0][2], JSON.stringify({ protocol: 1, version: "0.1.0", model: "debug" }));
  assert.match(d.on(CONNECTION).pop()[1], /Engine 0\.1\.0, model debug/);
  d.reply("/jukebox/artists", artists[2], JSON.stringify({ query: "", offset: 0, total: 2, names: ["Abba", "Cher"] }));
  assert.deepEqual(d.on(ARTIST_MENU), [["_parameter_range", "(model default)", "Abba", "Cher"], ["set", 0]]);
});

test("the engine going quiet is noticed (no hello reply within 7 s)", (t) => {
  t.mock.timers.enable({ apis: ["Date"], now: 1_000_000 });
  const { d } = device();
  assert.equal(d.context.ctl.connected, true);
  t.mock.timers.tick(8000);
  d.tick();
  assert.equal(d.context.ctl.connected, false);
  assert.match(d.on(CONNECTION).pop()[1], /Engine not running/);
});

test("selected Arrangement audio clip -> a continue request with the region, tempo and sample rate", () => {
  const { d } = device({}, { controls: { temperature: 0.9, takes: 2, quality: 0, length_seconds: 12 } });
  d.send("press", "continue", 1);
  const [msg] = requests(d);
  assert.equal(msg[0], "/jukebox/continue");
  assert.equal(msg[1], 9171);
  assert.equal(msg[2], "m4l-r5");
  assert.equal(msg.length, 4);
  assert.deepEqual(JSON.parse(msg[3]), {
    source: "/Users/me/Music/Riff.wav", start: 2, length: 8, position: 8, tempo: 120,
    temperature: 0.9, takes: 2, quality: "draft", sample_rate: 48000, seconds: 12,
  });
  assert.match(lastStatus(d), /Continue: sent 8\.00 s of 'Riff'/);
});

test("warped clip, bars, labels: beats go through the warp markers; artist and genre are sent", () => {
  const { d } = device({
    tempo: 100,
    clip: { warping: 1, start_time: 32, end_time: 40, start_marker: 4, end_marker: 16, loop_start: 0, loop_end: 16,
            warp_markers: [{ beat_time: 0, sample_time: 0 }, { beat_time: 8, sample_time: 4 },
                           { beat_time: 16, sample_time: 8.5 }] },
  }, { controls: { length_unit: 1, length_bars: 8 } });
  d.send("stored_artist", "Nina", "Simone");
  d.send("stored_genre", "jazz");
  d.send("press", "prime", 1);
  const p = JSON.parse(requests(d)[0][3]);
  assert.equal(requests(d)[0][0], "/jukebox/prime");
  assert.equal(p.start, 2);
  assert.equal(p.length, 4.25);
  assert.equal(p.position, 19.2);
  assert.equal(p.tempo, 100);
  assert.equal(p.bars, 8);
  assert.equal(p.seconds, undefined);
  assert.equal(p.artist, "Nina Simone");
  assert.equal(p.genre, "jazz");
});

test("buttons: a bang, a 1 or a bare press all trigger (live.text button mode sends bang)", () => {
  const { d } = device();
  d.send("press", "continue", "bang");
  d.send("press", "prime");
  d.send("press", "rerender", 1);
  assert.deepEqual(requests(d).map((m) => m[0]), ["/jukebox/continue", "/jukebox/prime", "/jukebox/rerender"]);
});

test("re-render sends no length of its own", () => {
  const { d } = device();
  d.send("press", "rerender", 1);
  const p = JSON.parse(requests(d)[0][3]);
  assert.equal(requests(d)[0][0], "/jukebox/rerender");
  assert.equal(p.seconds, undefined);
  assert.equal(p.bars, undefined);
});

for (const [name, opts, pattern] of [
  ["no clip selected", { selection: "none" }, /No clip selected/],
  ["a MIDI clip", { selection: "midi" }, /MIDI clip/],
  ["a clip with no file", { clip: { file_path: "" } }, /no audio file/],
]) {
  test(`bad case: ${name} -> a status message, no request, nothing created`, () => {
    const { d, set } = device(opts);
    d.send("press", "continue", 1);
    assert.match(lastStatus(d), pattern);
    assert.deepEqual(requests(d), []);
    assert.deepEqual(creations(set.world), []);
  });
}

test("bad case: engine not running -> a status message, no request, nothing read or created", () => {
  const { d, set } = device({}, { connect: false });
  d.send("press", "continue", 1);
  assert.match(lastStatus(d), /Engine not running/);
  assert.deepEqual(requests(d), []);
  assert.deepEqual(set.world.calls.filter((c) => c.op !== "new" || c.name !== "this_device"), []);
});

test("bad case: the engine never answers the request -> a timeout message", (t) => {
  t.mock.timers.enable({ apis: ["Date"], now: 5_000_000 });
  const { d, set } = device();
  d.send("press", "continue", 1);
  t.mock.timers.tick(3000);
  d.reply("/jukebox/pong", "x", "0.1.0"); // the engine is alive but lost the request
  t.mock.timers.tick(3000);
  d.tick();
  assert.match(lastStatus(d), /did not answer Continue/);
  assert.deepEqual(creations(set.world), []);
});

test("bad case: an engine error is shown and nothing is created", () => {
  const { d, set } = device();
  d.send("press", "continue", 1);
  const id = requests(d)[0][2];
  d.reply("/jukebox/error", id, "source_not_found", "/Users/me/Music/Riff.wav does not exist");
  assert.match(lastStatus(d), /Continue failed: .*does not exist \[source_not_found\]/);
  d.reply("/jukebox/done", "job-x", 1, "/r/x.wav", 1, 1); // a job this device never started
  assert.deepEqual(creations(set.world), []);
});

// Run a job through accepted/progress/done/finished and return what the device did.
function runJob(d, takes, jobId = "job-1") {
  const req = requests(d).pop();
  d.reply("/jukebox/accepted", req[2], jobId);
  d.reply("/jukebox/progress", jobId, 0.5, "sampling level 2", 12.2);
  for (let n = 1; n <= takes; n++) d.reply("/jukebox/done", jobId, n, `/renders/${jobId}-take${n}.wav`, 16, 10);
  d.reply("/jukebox/finished", jobId, "done", takes);
  return req;
}

test("done -> a new audio track per take, each clip at the region's end (continue)", () => {
  const { d, set } = device({}, { controls: { takes: 2 } });
  d.send("press", "continue", 1);
  runJob(d, 2);
  assert.deepEqual(set.world.callsOf("create_audio_track").map((c) => c.args), [[-1], [-1]]);
  const clips = set.world.callsOf("create_audio_clip");
  assert.deepEqual(clips.map((c) => c.args), [["/renders/job-1-take1.wav", 32], ["/renders/job-1-take2.wav", 32]]);
  assert.ok(clips.every((c) => c.type === "Track" && c.id !== set.source.id));
  assert.notEqual(clips[0].id, clips[1].id);
  assert.deepEqual(set.world.callsOf("name", "set").map((c) => c.args[0]), ["Jukebox Continue 1", "Jukebox Continue 2"]);
  assert.equal(set.tracks.length, 3);
  assert.ok(d.on(PROGRESS).some((m) => m[1] === 50));
  assert.deepEqual(d.on(PROGRESS).pop(), ["set", 100]);
  assert.match(d.on(STATUS).map((m) => m[1]).join("\n"), /sampling level 2 50%, about 13 s left/);
  assert.equal(lastStatus(d), "Continue: done, 2 takes placed.");
});

test("re-render takes land at the region's start", () => {
  const { d, set } = device();
  d.send("press", "rerender", 1);
  runJob(d, 1);
  assert.deepEqual(set.created, [{ kind: "arrangement", track: set.tracks[1].id, path: "/renders/job-1-take1.wav", position: 16 }]);
});

test("'clip track' puts take 1 on the selected clip's own track, later takes on new tracks", () => {
  const { d, set } = device({}, { controls: { takes: 2, place_on: 1 } });
  d.send("press", "continue", 1);
  runJob(d, 2);
  assert.deepEqual(set.created.map((c) => [c.track, c.position]), [[set.source.id, 32], [set.tracks[1].id, 32]]);
  assert.equal(set.world.callsOf("create_audio_track").length, 1);
});

test("Session fallback: a Live without Track.create_audio_clip gets Session clips in a new track", () => {
  const { d, set } = device({ arrangement: false }, { controls: { takes: 3 } });
  d.send("press", "continue", 1);
  runJob(d, 3);
  assert.equal(set.world.callsOf("create_audio_track").length, 1); // one track for the job's takes
  assert.deepEqual(set.created.map((c) => [c.kind, c.slot, c.path]), [
    ["session", 0, "/renders/job-1-take1.wav"],
    ["session", 1, "/renders/job-1-take2.wav"],
    ["session", 2, "/renders/job-1-take3.wav"], // a third scene was added for it
  ]);
  assert.equal(set.world.callsOf("create_scene").length, 1);
  assert.ok(set.created.every((c) => c.track === set.tracks[1].id));
  assert.match(d.on(STATUS).map((m) => m[1]).join("\n"), /Session slot 1 \(this Live cannot add Arrangement clips\)/);
});

test("a selected Session clip: takes go in the same scene on a new track", () => {
  const { d, set } = device({ selection: "session" });
  d.send("press", "continue", 1);
  const p = JSON.parse(requests(d)[0][3]);
  assert.equal(p.position, 0);
  assert.equal(p.start, 2);
  assert.equal(p.length, 28);
  runJob(d, 1);
  assert.deepEqual(set.created.map((c) => [c.kind, c.slot]), [["session", 1]]);
});

test("too-old Live: no clip functions -> tells the user, creates nothing", () => {
  const { d, set } = device({ arrangement: false, session: false, version: [11, 3, 25] });
  d.send("press", "continue", 1);
  runJob(d, 1);
  assert.deepEqual(creations(set.world), []);
  const all = d.on(STATUS).map((m) => m[1]).join("\n");
  assert.match(all, /Live 11\.3\.25 cannot add clips from Max for Live \(needs Live 12\.0\.5 or later\)\. Take 1 is at \/renders\/job-1-take1\.wav/);
  // the run-time check read the objects' function lists, not just the version
  assert.ok(set.world.calls.some((c) => c.op === "new" && /^id /.test(c.name)));
});

test("cancel sends the latest running job's id; cancelled jobs say so", () => {
  const { d } = device();
  d.send("press", "cancel", 1);
  assert.equal(lastStatus(d), "Nothing to cancel.");
  d.send("press", "continue", 1);
  const req = requests(d).pop();
  d.reply("/jukebox/accepted", req[2], "job-9");
  d.clear();
  d.send("press", "cancel", 0); // a button release does nothing
  assert.deepEqual(requests(d), []);
  d.send("press", "cancel", 1);
  const [cancel] = requests(d);
  assert.equal(cancel[0], "/jukebox/cancel");
  assert.deepEqual(JSON.parse(cancel[3]), { job_id: "job-9" });
  d.reply("/jukebox/cancelled", cancel[2], 1);
  d.reply("/jukebox/error", "job-9", "cancelled", "cancelled by the user");
  d.reply("/jukebox/finished", "job-9", "cancelled", 0);
  assert.equal(lastStatus(d), "Continue: cancelled.");
});

test("artist menu: a pick is stored by name, a search refreshes the list, the saved name survives", () => {
  const { d } = device();
  d.send("artist_query", "text", "ab"); // textedit's output
  const q = requests(d).pop();
  assert.equal(q[0], "/jukebox/artists");
  assert.deepEqual(JSON.parse(q[3]), { query: "ab", offset: 0, limit: 200 });
  d.reply("/jukebox/artists", q[2], JSON.stringify({ query: "ab", offset: 0, total: 2, names: ["Abba", "Abbey Lincoln"] }));
  d.send("artist_index", 2);
  assert.deepEqual(d.on(ARTIST_STORE).pop(), ["Abbey Lincoln"]);
  d.send("stored_artist", "Abbey", "Lincoln"); // pattr echoes the stored name: no change
  d.send("artist_index", 0);
  assert.deepEqual(d.on(ARTIST_STORE).pop(), ["(model default)"]);
  const menus = d.on(ARTIST_MENU).length;
  d.send("stored_artist", "(model", "default)"); // its echo: no change
  assert.equal(d.on(ARTIST_MENU).length, menus);
  d.send("stored_artist", "Nina", "Simone"); // a Set saved with another name
  assert.deepEqual(d.on(ARTIST_MENU).slice(-2), [["_parameter_range", "(model default)", "Nina Simone", "Abba", "Abbey Lincoln"], ["set", 1]]);
});

test("replies from a stale search are ignored; unknown messages are reported in the Max window", () => {
  const { d } = device();
  d.send("genre_query", "text", "ro");
  const first = requests(d).pop();
  d.send("genre_query", "text", "roc");
  d.reply("/jukebox/genres", first[2], JSON.stringify({ names: ["romance"] }));
  assert.deepEqual(d.on(5), []);
  d.reply("/elsewhere/thing", 1);
  assert.match(d.posts.join(""), /unknown message \/elsewhere\/thing/);
});

test("helpers marked local cannot be called from the patch", () => {
  const { d } = device();
  assert.equal(d.context.words.local, 1);
  assert.equal(d.context.tick.local, 1);
});
