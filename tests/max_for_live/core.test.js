// jb_core.js: request building, reply parsing, beat/second maths, placement rules (pure functions).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("path");
const { SRC } = require("./max_js");

const core = require(path.join(SRC, "jb_core.js"));

const close = (a, b, eps = 1e-6) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test("beats and seconds at a tempo", () => {
  close(core.beatsToSeconds(8, 120), 4);
  close(core.secondsToBeats(4, 120), 8);
  close(core.beatsToSeconds(3, 90), 2);
});

test("warped beat -> source seconds interpolates between warp markers and extends the end segments", () => {
  const markers = [
    { beat_time: 8, sample_time: 4.0 }, // given out of order on purpose
    { beat_time: 0, sample_time: 0.0 },
    { beat_time: 16, sample_time: 8.5 },
  ];
  close(core.warpedBeatToSourceSeconds(0, markers, 100), 0);
  close(core.warpedBeatToSourceSeconds(4, markers, 100), 2.0);
  close(core.warpedBeatToSourceSeconds(12, markers, 100), 4.0 + 4 * 4.5 / 8);
  close(core.warpedBeatToSourceSeconds(20, markers, 100), 8.5 + 4 * 4.5 / 8); // past the last marker
  close(core.warpedBeatToSourceSeconds(-2, markers, 100), -1.0); // before the first
  // one marker: song tempo from it; none: song tempo from 0
  close(core.warpedBeatToSourceSeconds(4, [{ beat_time: 2, sample_time: 1 }], 120), 2.0);
  close(core.warpedBeatToSourceSeconds(4, [], 120), 2.0);
});

test("region of an unwarped Arrangement clip: markers in seconds, cut to what the timeline shows", () => {
  const r = core.clipRegion({
    is_arrangement_clip: true, start_time: 16, end_time: 32, start_marker: 2, end_marker: 30,
    loop_start: 2, loop_end: 30, looping: false, warping: false, warp_markers: [],
  }, 120);
  assert.deepEqual(r, { start: 2, length: 8, position: 8, start_beats: 16, end_beats: 32 });
});

test("region of a warped Arrangement clip goes through the warp markers", () => {
  const r = core.clipRegion({
    is_arrangement_clip: true, start_time: 32, end_time: 40, start_marker: 4, end_marker: 16,
    loop_start: 0, loop_end: 16, looping: false, warping: true,
    warp_markers: [{ beat_time: 0, sample_time: 0 }, { beat_time: 8, sample_time: 4 }, { beat_time: 16, sample_time: 8.5 }],
  }, 100);
  close(r.start, 2.0);
  close(r.length, 6.25 - 2.0);
  close(r.position, 32 * 60 / 100);
  assert.equal(r.end_beats, 40);
});

test("a looping clip's region is its loop brace", () => {
  const r = core.clipRegion({
    is_arrangement_clip: true, start_time: 0, end_time: 64, start_marker: 0, end_marker: 60,
    loop_start: 4, loop_end: 12, looping: true, warping: false, warp_markers: [],
  }, 120);
  assert.equal(r.start, 4);
  assert.equal(r.length, 8);
  assert.equal(r.end_beats, 64);
});

test("a Session clip has no timeline position", () => {
  const r = core.clipRegion({
    is_arrangement_clip: false, start_time: 0, end_time: 0, start_marker: 1, end_marker: 5,
    loop_start: 1, loop_end: 5, looping: false, warping: false, warp_markers: [],
  }, 120);
  assert.deepEqual(r, { start: 1, length: 4, position: 0, start_beats: 0, end_beats: 8 });
});

test("an empty region or a missing tempo is an error for the user", () => {
  const clip = { is_arrangement_clip: true, start_time: 4, end_time: 4, start_marker: 0, end_marker: 10,
                 loop_start: 0, loop_end: 10, looping: false, warping: false, warp_markers: [] };
  assert.match(core.clipRegion(clip, 120).error, /empty/);
  assert.match(core.clipRegion({ ...clip, end_time: 8 }, 0).error, /tempo/);
});

const SETTINGS = { temperature: 0.9, takes: 2, quality: 0, length_unit: 0, length_seconds: 12,
                   length_bars: 8, place_on: 0, sample_rate: 48000, artist: "", genre: "" };
const REGION = { start: 2, length: 8, position: 8, start_beats: 16, end_beats: 32 };

test("render params: seconds or bars, labels only when chosen, rerender keeps the region's length", () => {
  assert.deepEqual(core.renderParams("continue", "/a.wav", REGION, 120, SETTINGS), {
    source: "/a.wav", start: 2, length: 8, position: 8, tempo: 120, temperature: 0.9, takes: 2,
    quality: "draft", sample_rate: 48000, seconds: 12,
  });
  const bars = core.renderParams("prime", "/a.wav", REGION, 120,
                                 { ...SETTINGS, length_unit: 1, artist: "The Beatles", genre: "rock" },
                                 { numerator: 4, denominator: 4 });
  assert.equal(bars.seconds, 16); // 8 bars of 4/4 at 120 BPM
  assert.equal(bars.bars, undefined); // the engine's `bars` assumes 4/4: never sent
  assert.equal(bars.artist, "The Beatles");
  assert.equal(bars.genre, "rock");
  const rr = core.renderParams("rerender", "/a.wav", REGION, 120, SETTINGS);
  assert.equal(rr.seconds, undefined);
  assert.equal(rr.bars, undefined);
});

test("bars in any metre: numerator x 4 / denominator quarter notes per bar, capped at 300 s", () => {
  const bars = (n, num, den, tempo = 120) =>
    core.renderParams("continue", "/a.wav", REGION, tempo, { ...SETTINGS, length_unit: 1, length_bars: n },
                      { numerator: num, denominator: den }).seconds;
  assert.equal(bars(2, 6, 8), 3); // 2 bars of 6/8 = 6 quarter notes = 3 s at 120
  assert.equal(bars(4, 3, 4), 6); // 12 quarter notes
  assert.equal(bars(1, 7, 8), 1.75); // 3.5 quarter notes
  assert.equal(bars(2, 5, 4, 100), 6); // 10 quarter notes at 100 BPM
  assert.equal(bars(8, 4, 4), 16);
  assert.equal(bars(128, 4, 4, 60), 300); // 512 s asked, the engine takes at most 300
  assert.equal(core.beatsPerBar(6, 8), 3);
  assert.equal(core.beatsPerBar(0, 0), 4); // unknown metre: 4/4
  assert.equal(core.beatLabel(6, 6, 8), "3.1"); // bar 3 of 6/8 starts on quarter note 6
  assert.equal(core.beatLabel(6.5, 6, 8), "3.2"); // eighth-note beats
  assert.equal(core.beatLabel(9, 3, 4), "4.1");
});

test("path forms: Windows separators from the source clip's form, then the other; macOS volumes", () => {
  assert.deepEqual(core.pathForms("C:\\r\\t1.wav", "C:\\Users\\me\\a.wav"), ["C:\\r\\t1.wav", "C:/r/t1.wav"]);
  assert.deepEqual(core.pathForms("C:\\r\\t1.wav", "C:/Users/me/a.wav"), ["C:/r/t1.wav", "C:\\r\\t1.wav"]);
  assert.deepEqual(core.pathForms("/Users/me/r/t1.wav", "/Users/me/a.wav"), ["/Users/me/r/t1.wav"]);
  assert.deepEqual(core.pathForms("/Users/me/r/t1.wav", "/Volumes/Macintosh HD/Users/me/a.wav"),
                   ["/Volumes/Macintosh HD/Users/me/r/t1.wav", "/Users/me/r/t1.wav"]);
  assert.ok(core.samePath("C:\\R\\t1.wav", "c:/r/T1.wav"));
  assert.ok(!core.samePath("/r/T1.wav", "/r/t1.wav")); // macOS paths compare exactly
  assert.ok(core.samePath("/Volumes/Data/r/t1.wav", "/r/t1.wav"));
});

test("spans and the placed clip: found by start_time and file_path, not by position in the list", () => {
  const clips = [{ id: 5, start_time: 0, end_time: 16, file_path: "/a.wav" },
                 { id: 9, start_time: 32, end_time: 40, file_path: "/b.wav" }];
  assert.ok(core.spanFree(clips, 16, 32));
  assert.ok(!core.spanFree(clips, 30, 33));
  assert.equal(core.findPlaced(clips, 32, ["/b.wav"]).id, 9);
  assert.equal(core.findPlaced(clips, 32, ["/a.wav"]), null);
  assert.equal(core.clipName("Continue", 2, "Nina Simone", "jazz"), "Jukebox Continue 2 - Nina Simone, jazz");
  assert.equal(core.clipName("Prime", 1, "", ""), "Jukebox Prime 1");
});

test("reply ports: the preferred one when free, else the next free one, 0 when all are taken", () => {
  assert.equal(core.claimPort({}, 9171), 9171);
  assert.equal(core.claimPort({ 9171: 1 }, 9171), 9172);
  assert.equal(core.claimPort({ 9194: 1 }, 9194), 9131); // wraps around the span
  const all = {};
  for (let p = 9131; p < 9131 + 64; p++) all[p] = 1;
  assert.equal(core.claimPort(all, 9131), 0);
});

test("render params clamp to the protocol's ranges and drop an unknown sample rate", () => {
  const p = core.renderParams("continue", "/a.wav", REGION, 120,
                              { ...SETTINGS, temperature: 5, takes: 40, length_seconds: 9999, sample_rate: 0 });
  assert.equal(p.temperature, 2);
  assert.equal(p.takes, 8);
  assert.equal(p.seconds, 300);
  assert.equal(p.sample_rate, undefined);
});

test("request message: address, int reply port, request id, one JSON string", () => {
  assert.deepEqual(core.requestMessage("hello", 9131, "m4l-h1", null), ["/jukebox/hello", 9131, "m4l-h1"]);
  const m = core.requestMessage("continue", 9140, "m4l-r2", { source: "/a b.wav", start: 0 });
  assert.deepEqual(m.slice(0, 3), ["/jukebox/continue", 9140, "m4l-r2"]);
  assert.deepEqual(JSON.parse(m[3]), { source: "/a b.wav", start: 0 });
  assert.equal(m.length, 4);
});

test("replies parse into typed objects; unknown addresses give null", () => {
  assert.deepEqual(core.parseReply("/jukebox/done", ["j1", 2, "/r/t2.wav", 16.5, 8]),
                   { type: "done", job: "j1", take: 2, path: "/r/t2.wav", position: 16.5, length: 8 });
  assert.deepEqual(core.parseReply("/jukebox/progress", ["j1", 1.7, "decoding", -1]),
                   { type: "progress", job: "j1", fraction: 1, stage: "decoding", eta: -1 });
  assert.deepEqual(core.parseReply("/jukebox/error", ["r1", "bad_value", "takes must be ..."]),
                   { type: "error", id: "r1", code: "bad_value", message: "takes must be ..." });
  assert.deepEqual(core.parseReply("/jukebox/info", ["i1", '{"protocol": 1, "model": "debug"}']).info,
                   { protocol: 1, model: "debug" });
  assert.equal(core.parseReply("/jukebox/info", ["i1", "not json"]).info, null);
  assert.equal(core.parseReply("/other/done", []), null);
  assert.equal(core.parseReply("/jukebox/nonsense", []), null);
});

test("placement: Arrangement when possible, Session fallback, nothing when Live is too old", () => {
  const job = { verb: "continue", start_beats: 16, end_beats: 32, is_arrangement_clip: true, session_slot: -1 };
  const both = { arrangement: true, session: true };
  assert.deepEqual(core.placement(job, 1, both, 0), { mode: "arrangement", position_beats: 32, slot: -1, track: "new" });
  assert.deepEqual(core.placement(job, 1, both, 1), { mode: "arrangement", position_beats: 32, slot: -1, track: "clip" });
  assert.equal(core.placement(job, 2, both, 1).track, "new"); // only take 1 goes on the clip's track
  assert.equal(core.placement({ ...job, verb: "rerender" }, 1, both, 1).track, "new");
  assert.equal(core.placement({ ...job, verb: "rerender" }, 1, both, 0).position_beats, 16);
  assert.deepEqual(core.placement(job, 2, { arrangement: false, session: true }, 0),
                   { mode: "session", position_beats: 32, slot: 1, track: "new" });
  const sessionJob = { ...job, is_arrangement_clip: false, session_slot: 3 };
  assert.equal(core.placement(sessionJob, 1, both, 0).mode, "session");
  assert.equal(core.placement(sessionJob, 2, both, 0).slot, 4);
  assert.equal(core.placement(job, 1, { arrangement: false, session: false }, 0).mode, "none");
});

test("versions, reply ports, labels", () => {
  assert.ok(core.versionAtLeast([12, 0, 5], [12, 0, 5]));
  assert.ok(core.versionAtLeast([12, 1, 0], [12, 0, 5]));
  assert.ok(!core.versionAtLeast([12, 0, 4], [12, 0, 5]));
  assert.ok(!core.versionAtLeast([11, 3, 20], [12, 0, 5]));
  for (const id of [0, 1, 63, 64, 9000, 123456789]) {
    const p = core.replyPortFor(id);
    assert.ok(p >= 9131 && p < 9131 + 64 && p !== core.ENGINE_PORT);
  }
  assert.equal(core.beatLabel(32, 4, 4), "9.1");
  assert.equal(core.beatLabel(33, 4, 4), "9.2");
  assert.deepEqual(core.menuItems(["a", "b"], "zz"), ["(model default)", "zz", "a", "b"]);
  assert.deepEqual(core.menuItems(["a", "b"], "b"), ["(model default)", "a", "b"]);
});

test("refine: only the draft's file is sent; the take goes under the draft, where its file starts", () => {
  assert.deepEqual(core.renderParams("refine", "/r/draft.wav", { start: 2, length: 8, position: 8 }, 120,
                                     { temperature: 0.9, takes: 3, quality: 0, length_unit: 0, length_seconds: 5 }),
                   { source: "/r/draft.wav" });
  const job = { verb: "refine", start_beats: 12, end_beats: 32, is_arrangement_clip: true, session_slot: -1 };
  const both = { arrangement: true, session: true };
  assert.deepEqual(core.placement(job, 1, both, 1), { mode: "arrangement", position_beats: 12, slot: -1, track: "new" });
  const region = { start: 2, start_beats: 16 };
  assert.equal(core.fileStartBeats({ is_arrangement_clip: true, warping: 0 }, region, 120), 12); // 2 s at 120 BPM
  assert.equal(core.fileStartBeats({ is_arrangement_clip: true, warping: 1, start_marker: 4 }, region, 120), 12);
  assert.equal(core.fileStartBeats({ is_arrangement_clip: false, warping: 0 }, { start: 2, start_beats: 0 }, 120), 0);
});
