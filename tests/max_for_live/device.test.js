// The device's JavaScript as Max runs it (vm sandbox with Max's js globals) against a strict fake
// LiveAPI: selected clip -> request, bad cases, done -> tracks and clips, Session fallback, old Live.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { loadDevice, maxProcess } = require("./max_js");
const { makeSet } = require("./fake_live");

const OSC = 0, STATUS = 1, CONNECTION = 2, PROGRESS = 3, ARTIST_MENU = 4, ARTIST_STORE = 6, LISTEN = 8;

// A loaded device on a fake Set, started (live.thisdevice banged) and optionally connected.
function device(setOpts = {}, { connect = true, controls = {}, max } = {}) {
  const set = makeSet(setOpts);
  const d = loadDevice({ LiveAPI: set.world.LiveAPI, max });
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
  assert.deepEqual(d.on(LISTEN), [["port", 9131 + (9000 % 64)]]); // its preferred port, free
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
  assert.equal(p.seconds, 19.2); // 8 bars of 4/4 at 100 BPM
  assert.equal(p.bars, undefined);
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

// Run a job through accepted/progress/done/finished (the engine writes each take, 10 s long, where
// `pathOf(n)` says, and Live can read it) and return the request.
function runJob(d, set, takes, { jobId = "job-1", pathOf = (n) => `/renders/${jobId}-take${n}.wav`, seconds = 10 } = {}) {
  const req = requests(d).pop();
  d.reply("/jukebox/accepted", req[2], jobId);
  d.reply("/jukebox/progress", jobId, 0.5, "sampling level 2", 12.2);
  for (let n = 1; n <= takes; n++) {
    set.addFile(pathOf(n), seconds);
    d.reply("/jukebox/done", jobId, n, pathOf(n), 16, seconds);
  }
  d.reply("/jukebox/finished", jobId, "done", takes);
  return req;
}

const clipProps = (set, id) => set.world.objects.get(id).props;

test("a warning after accepted (a truncated source allowed) is shown, and again with the result", () => {
  const { d, set } = device();
  d.send("press", "continue", 1);
  const req = requests(d).pop();
  d.reply("/jukebox/accepted", req[2], "job-w");
  d.reply("/jukebox/warning", "job-w", "/Users/me/Riff.wav is truncated");
  assert.equal(lastStatus(d), "Continue: warning: /Users/me/Riff.wav is truncated");
  set.addFile("/renders/w.wav", 10);
  d.reply("/jukebox/done", "job-w", 1, "/renders/w.wav", 16, 10);
  d.reply("/jukebox/finished", "job-w", "done", 1);
  assert.equal(lastStatus(d), "Continue: done, 1 take placed. Warning: /Users/me/Riff.wav is truncated");
});

test("done -> a new audio track per take right below the source track, each clip at the region's end", () => {
  const { d, set } = device({}, { controls: { takes: 2 } });
  d.send("press", "continue", 1);
  runJob(d, set, 2);
  assert.deepEqual(set.world.callsOf("create_audio_track").map((c) => c.args), [[1], [2]]);
  const clips = set.world.callsOf("create_audio_clip");
  assert.deepEqual(clips.map((c) => c.args), [["/renders/job-1-take1.wav", 32], ["/renders/job-1-take2.wav", 32]]);
  assert.ok(clips.every((c) => c.type === "Track" && c.id !== set.source.id));
  assert.notEqual(clips[0].id, clips[1].id);
  assert.deepEqual(set.world.callsOf("name", "set").map((c) => c.args[0]),
                   ["Jukebox Continue 1", "Jukebox Continue 1", "Jukebox Continue 2", "Jukebox Continue 2"]);
  assert.deepEqual(set.tracks.map((t) => t.obj.props.name), ["Source", "Jukebox Continue 1", "Jukebox Continue 2"]);
  assert.ok(d.on(PROGRESS).some((m) => m[1] === 50));
  assert.deepEqual(d.on(PROGRESS).pop(), ["set", 100]);
  assert.match(d.on(STATUS).map((m) => m[1]).join("\n"), /sampling level 2 50%, about 13 s left/);
  assert.equal(lastStatus(d), "Continue: done, 2 takes placed.");
});

test("re-render takes land at the region's start", () => {
  const { d, set } = device();
  d.send("press", "rerender", 1);
  runJob(d, set, 1);
  assert.deepEqual(set.created.map(({ clip, ...c }) => c),
                   [{ kind: "arrangement", track: set.tracks[1].id, path: "/renders/job-1-take1.wav", position: 16 }]);
});

test("'clip track' puts take 1 on the selected clip's own track, later takes on new tracks", () => {
  const { d, set } = device({}, { controls: { takes: 2, place_on: 1 } });
  d.send("press", "continue", 1);
  runJob(d, set, 2);
  assert.deepEqual(set.created.map((c) => [c.track, c.position]), [[set.source.id, 32], [set.tracks[1].id, 32]]);
  assert.equal(set.world.callsOf("create_audio_track").length, 1);
});

test("Session fallback: a Live without Track.create_audio_clip gets Session clips in a new track", () => {
  const { d, set } = device({ arrangement: false }, { controls: { takes: 3 } });
  d.send("press", "continue", 1);
  runJob(d, set, 3);
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
  runJob(d, set, 1);
  assert.deepEqual(set.created.map((c) => [c.kind, c.slot]), [["session", 1]]);
});

test("too-old Live: no clip functions -> tells the user, creates nothing", () => {
  const { d, set } = device({ arrangement: false, session: false, version: [11, 3, 25] });
  d.send("press", "continue", 1);
  runJob(d, set, 1);
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

// ---- Live as it really behaves ----------------------------------------------------------------------

test("new tracks go right below the source track, not at the end of the Set", () => {
  const { d, set } = device({ tracksAfter: ["Drums", "Bass"] }, { controls: { takes: 2 } });
  d.send("press", "continue", 1);
  runJob(d, set, 2);
  assert.deepEqual(set.tracks.map((t) => t.obj.props.name),
                   ["Source", "Jukebox Continue 1", "Jukebox Continue 2", "Drums", "Bass"]);
  assert.deepEqual(set.created.map((c) => c.track), [set.tracks[1].id, set.tracks[2].id]);
});

test("never overwrites a clip: 'clip track' with the span taken -> a new track below, and it says so", () => {
  // the user's clip at beats 36..40 lies where take 1 (32..52 at 120 BPM) would go on the clip's track
  const { d, set } = device({ userClips: [{ start: 36, end: 40 }], tracksAfter: ["Drums"] },
                            { controls: { place_on: 1 } });
  d.send("press", "continue", 1);
  runJob(d, set, 1);
  assert.deepEqual(set.overwritten, []); // Live would have cut the user's clip away
  assert.equal(set.world.objects.has(set.userClips[0].id), true);
  assert.deepEqual(set.created.map((c) => [c.track, c.position]), [[set.tracks[1].id, 32]]);
  assert.deepEqual(set.tracks.map((t) => t.obj.props.name), ["Source", "Jukebox Continue 1", "Drums"]);
  assert.match(d.on(STATUS).map((m) => m[1]).join("\n"),
               /take 1 placed at bar 9\.1 on a new track \(a clip already sits there on the clip's track\)/);
});

test("the new clip is found by start_time and file_path (arrangement_clips is in timeline order)", () => {
  const { d, set } = device({ userClips: [{ start: 64, end: 80 }] }, { controls: { place_on: 1 } });
  d.send("press", "continue", 1);
  runJob(d, set, 1);
  assert.equal(set.created[0].track, set.source.id); // 32..52 is free on the clip's track
  // the new clip sits between the user's clips in the list, and the device read its facts to find it
  const ids = set.source.obj.props.arrangement_clips().filter((x) => x !== "id");
  assert.deepEqual(ids, [set.sourceClip.id, set.created[0].clip, set.userClips[0].id]);
  const read = set.world.calls.filter((c) => c.op === "get" && c.id === set.created[0].clip).map((c) => c.name);
  assert.ok(read.includes("start_time") && read.includes("file_path"), read.join(","));
  assert.equal(lastStatus(d), "Continue: done, 1 take placed.");
});

test("a file Live refuses is reported, not counted as placed (Live posts the error, it does not throw)", () => {
  const { d, set } = device();
  d.send("press", "continue", 1);
  const req = requests(d).pop();
  d.reply("/jukebox/accepted", req[2], "job-1");
  d.reply("/jukebox/done", "job-1", 1, "/renders/never-written.wav", 16, 10); // not a file Live can read
  d.reply("/jukebox/finished", "job-1", "done", 1);
  assert.deepEqual(set.created, []);
  assert.match(set.world.errors.join("\n"), /invalid file path \/renders\/never-written\.wav/);
  assert.match(d.on(STATUS).map((m) => m[1]).join("\n"),
               /Could not place take 1: Live refused the file as \/renders\/never-written\.wav .*The file is \/renders\/never-written\.wav/);
  assert.notEqual(lastStatus(d), "Continue: done, 1 take placed.");
});

const WIN_RENDER = (n) => `C:\\Users\\me\\Jukebox\\renders\\job-1-take${n}.wav`;

test("Windows, backslash form (the source clip's own form) is used first", () => {
  const { d, set } = device({ platform: "windows", windowsAccepts: "backslash" });
  d.send("press", "continue", 1);
  assert.equal(JSON.parse(requests(d)[0][3]).source, "C:\\Users\\me\\Music\\Riff.wav");
  runJob(d, set, 1, { pathOf: WIN_RENDER });
  assert.deepEqual(set.world.callsOf("create_audio_clip").map((c) => c.args[0]), [WIN_RENDER(1)]);
  assert.equal(set.created.length, 1);
});

test("Windows, forward slashes: derived from a source clip that reports C:/... paths", () => {
  const { d, set } = device({ platform: "windows", windowsAccepts: "slash" });
  d.send("press", "continue", 1);
  runJob(d, set, 1, { pathOf: WIN_RENDER });
  assert.deepEqual(set.world.callsOf("create_audio_clip").map((c) => c.args[0]), ["C:/Users/me/Jukebox/renders/job-1-take1.wav"]);
  assert.equal(set.created.length, 1);
});

test("Windows, the first form refused: retried once with the other form", () => {
  const { d, set } = device({ platform: "windows", windowsAccepts: "slash",
                              clip: { file_path: "C:\\Users\\me\\Music\\Riff.wav" } });
  d.send("press", "continue", 1);
  runJob(d, set, 1, { pathOf: WIN_RENDER });
  assert.deepEqual(set.world.callsOf("create_audio_clip").map((c) => c.args[0]),
                   [WIN_RENDER(1), "C:/Users/me/Jukebox/renders/job-1-take1.wav"]);
  assert.equal(set.created.length, 1);
  assert.equal(set.world.errors.length, 1);
  assert.equal(lastStatus(d), "Continue: done, 1 take placed.");
});

test("Windows, both forms refused: one clear message naming both and where the file is", () => {
  const { d, set } = device({ platform: "windows", windowsAccepts: "none" });
  d.send("press", "continue", 1);
  runJob(d, set, 1, { pathOf: WIN_RENDER });
  assert.equal(set.world.callsOf("create_audio_clip").length, 2);
  assert.deepEqual(set.created, []);
  const all = d.on(STATUS).map((m) => m[1]).join("\n");
  assert.ok(all.includes(`Could not place take 1: Live refused the file as ${WIN_RENDER(1)} and as ` +
                         "C:/Users/me/Jukebox/renders/job-1-take1.wav"), all);
  assert.ok(all.includes(`The file is ${WIN_RENDER(1)}`), all);
});

test("macOS: POSIX paths; under the source clip's /Volumes/<drive> prefix when it has one", () => {
  const { d, set } = device({ clip: { file_path: "/Volumes/Macintosh HD/Users/me/Music/Riff.wav" } });
  d.send("press", "continue", 1);
  runJob(d, set, 1, { pathOf: () => "/Volumes/Macintosh HD/Users/me/renders/t1.wav" });
  assert.equal(set.created[0].path, "/Volumes/Macintosh HD/Users/me/renders/t1.wav");
});

test("placed clips play as rendered: unwarped, named by mode, take and labels; take 1 is selected", () => {
  const { d, set } = device({}, { controls: { takes: 2 } });
  d.send("stored_artist", "Nina", "Simone");
  d.send("stored_genre", "jazz");
  d.send("press", "continue", 1);
  runJob(d, set, 2);
  for (const [i, c] of set.created.entries()) {
    assert.equal(clipProps(set, c.clip).warping, 0, "Live auto-warps new clips; the device turns it off");
    assert.equal(clipProps(set, c.clip).name, `Jukebox Continue ${i + 1} - Nina Simone, jazz`);
  }
  assert.equal(set.world.detailClip, set.created[0].clip);
  assert.deepEqual(set.world.objects.get(set.world.paths.get("live_set view")).props.selected_track,
                   ["id", set.created[0].track]);
});

test("a take-lane clip (Live 12) is an Arrangement clip: its position is read and takes land after it", () => {
  const { d, set } = device({ selection: "take_lane" });
  d.send("press", "continue", 1);
  const p = JSON.parse(requests(d)[0][3]);
  assert.equal(p.position, 8); // beat 16 at 120 BPM
  assert.equal(p.length, 8);
  runJob(d, set, 1);
  assert.deepEqual(set.created.map((c) => [c.kind, c.position, c.track]), [["arrangement", 32, set.tracks[1].id]]);
});

test("a Live without Clip.is_arrangement_clip still tells Arrangement from Session clips", () => {
  const { d, set } = device({ isArrangementClipProperty: false });
  d.send("press", "continue", 1);
  assert.equal(JSON.parse(requests(d)[0][3]).position, 8);
  runJob(d, set, 1);
  assert.equal(set.created[0].kind, "arrangement");
});

test("bars in the Set's metre: 2 bars of 6/8 at 120 BPM are 3 s; the status line counts 6/8 bars", () => {
  const { d, set } = device({ numerator: 6, denominator: 8 }, { controls: { length_unit: 1, length_bars: 2 } });
  d.send("press", "continue", 1);
  const p = JSON.parse(requests(d)[0][3]);
  assert.equal(p.seconds, 3);
  assert.equal(p.bars, undefined);
  runJob(d, set, 1);
  assert.match(d.on(STATUS).map((m) => m[1]).join("\n"), /take 1 placed at bar 11\.5/); // beat 32 of 6/8
});

test("several devices in one Set never share a reply port; a deleted device frees its port", () => {
  const max = maxProcess();
  const a = device({ deviceId: 9000 }, { connect: false, max });
  const b = device({ deviceId: 9064 }, { connect: false, max }); // 9064 % 64 == 9000 % 64
  const portOf = (x) => { x.d.send("bang"); return x.d.on(LISTEN).pop()[1]; }; // a second bang keeps the port
  const pa = portOf(a);
  const pb = portOf(b);
  assert.equal(pa, 9171);
  assert.equal(pb, 9172);
  a.d.send("notifydeleted");
  const c = device({ deviceId: 9128 }, { connect: false, max });
  assert.equal(portOf(c), 9171);
});

test("the device is its own job runner: deleting it cancels the jobs it still follows", () => {
  const { d } = device({}, { controls: { takes: 2 } });
  d.send("press", "continue", 1);
  const req = requests(d).pop();
  d.reply("/jukebox/accepted", req[2], "job-7");
  d.clear();
  d.send("notifydeleted");
  const [cancel] = requests(d);
  assert.equal(cancel[0], "/jukebox/cancel");
  assert.deepEqual(JSON.parse(cancel[3]), { job_id: "job-7" });
  assert.ok(d.tasks.every((t) => !t.running));
});

test("refine: sends the selected draft clip's file only; the full-quality take lines up with the draft", () => {
  const { d, set } = device({ clip: { file_path: "/renders/ab12cd34-take1-continue.wav" } },
                            { controls: { takes: 3, temperature: 0.7 } });
  d.send("press", "refine", 1);
  const req = requests(d)[0];
  assert.equal(req[0], "/jukebox/refine");
  assert.deepEqual(JSON.parse(req[3]), { source: "/renders/ab12cd34-take1-continue.wav" });
  runJob(d, set, 1, { seconds: 15 });
  // the clip starts at beat 16 but plays its file from 2 s (4 beats at 120 BPM): the file, and so the
  // refined take, starts at beat 12, on a new track (the draft's own track holds the draft there)
  assert.deepEqual(set.created.map(({ clip, ...c }) => c),
                   [{ kind: "arrangement", track: set.tracks[1].id, path: "/renders/job-1-take1.wav", position: 12 }]);
  assert.deepEqual(set.world.callsOf("name", "set").map((c) => c.args[0]).slice(-1), ["Jukebox Refine 1"]);
  assert.equal(lastStatus(d), "Refine: done, 1 take placed.");
});
