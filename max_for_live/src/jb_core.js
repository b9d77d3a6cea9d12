// jb_core.js: the device's pure logic. No Max globals, no LiveAPI, no clock.
// Loaded with require("jb_core") by Max's js object (CommonJS-style exports) and by Node in the tests.
// ES5 only (Max 8's js object): var, function expressions, no arrow functions or template strings.
"use strict";

// Engine protocol, version 1 (docs/osc-protocol.md).
var PROTOCOL = 1;
var ENGINE_HOST = "127.0.0.1";
var ENGINE_PORT = 9130;
var DEFAULT_REPLY_PORT = 9131;
var REPLY_PORT_SPAN = 64; // device instances claim distinct reply ports in [9131, 9131 + 64)
var MAX_SECONDS = 300; // the engine's largest `seconds` (docs/osc-protocol.md)
var PREFIX = "/jukebox/";
var RENDER_VERBS = ["continue", "prime", "rerender", "refine"];

// Live parameter ranges; tests check these against the patcher and the engine's validator.
var PARAM_RANGES = {
  temperature: { min: 0.01, max: 2.0, initial: 0.98 },
  takes: { min: 1, max: 8, initial: 1 },
  length_seconds: { min: 1, max: 300, initial: 10 },
  length_bars: { min: 1, max: 128, initial: 4 }
};
var QUALITIES = ["draft", "full"];
var LENGTH_UNITS = ["seconds", "bars"];
var PLACE_ON = ["new_tracks", "clip_track"];
var DEFAULT_LABEL = "(model default)";
var MENU_LIMIT = 200; // the engine's largest artists/genres page

// Live versions that have the clip-creating functions (third-party claims; checked at run time too).
var MIN_VERSION_ARRANGEMENT = [12, 0, 5];
var MIN_VERSION_SESSION = [12, 0, 5];

function clamp(v, lo, hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

function round6(x) {
  return Math.round(x * 1e6) / 1e6;
}

// One OSC request as a Max list: address, reply_port (int), request_id, JSON params (omitted if null).
function requestMessage(verb, replyPort, requestId, params) {
  var msg = [PREFIX + verb, replyPort, String(requestId)];
  if (params !== null && params !== undefined) {
    msg.push(JSON.stringify(params));
  }
  return msg;
}

// ---- beats and seconds ----------------------------------------------------------------------------

function beatsToSeconds(beats, tempo) {
  return beats * 60.0 / tempo;
}

function secondsToBeats(seconds, tempo) {
  return seconds * tempo / 60.0;
}

// Quarter-note beats in one bar of numerator/denominator (6/8: 3, 7/8: 3.5, 3/4: 3, 4/4: 4).
function beatsPerBar(numerator, denominator) {
  var n = numerator > 0 ? numerator : 4;
  var d = denominator > 0 ? denominator : 4;
  return n * 4.0 / d;
}

// Bars of the Set's metre -> seconds at the Set's tempo.
function barsToSeconds(bars, tempo, numerator, denominator) {
  return beatsToSeconds(bars * beatsPerBar(numerator, denominator), tempo);
}

// Warp markers as Live reports them: [{beat_time, sample_time}], sorted here by beat_time.
// Live's recipe: interpolate linearly between neighbouring markers; outside them, extend the
// nearest segment (the last marker is hidden in Live's UI and only sets the final segment's rate).
function sortedMarkers(markers) {
  var out = [];
  var i;
  for (i = 0; i < (markers || []).length; i++) {
    if (isFinite(markers[i].beat_time) && isFinite(markers[i].sample_time)) {
      out.push({ beat_time: Number(markers[i].beat_time), sample_time: Number(markers[i].sample_time) });
    }
  }
  out.sort(function (a, b) { return a.beat_time - b.beat_time; });
  return out;
}

// Clip beat time -> seconds into the source file, for a warped clip.
// Without markers (Live before 11) it falls back to the song tempo: exact only for files at that tempo.
function warpedBeatToSourceSeconds(beat, markers, tempo) {
  var m = sortedMarkers(markers);
  var i, a, b;
  if (m.length === 0) {
    return beatsToSeconds(beat, tempo);
  }
  if (m.length === 1) {
    return m[0].sample_time + beatsToSeconds(beat - m[0].beat_time, tempo);
  }
  // the segment [m[i], m[i+1]] holding beat; before the first or after the last marker, the nearest one
  i = 0;
  while (i < m.length - 2 && beat > m[i + 1].beat_time) {
    i++;
  }
  a = m[i];
  b = m[i + 1];
  if (b.beat_time === a.beat_time) {
    return a.sample_time;
  }
  return a.sample_time + (beat - a.beat_time) * (b.sample_time - a.sample_time) / (b.beat_time - a.beat_time);
}

// A clip's internal time (beats if warped, seconds if not) -> seconds into its file.
function clipTimeToSourceSeconds(t, clip, tempo) {
  return clip.warping ? warpedBeatToSourceSeconds(t, clip.warp_markers, tempo) : t;
}

// The region a selected clip plays, in source seconds and in arrangement beats.
// clip: {is_arrangement_clip, start_time, end_time, start_marker, end_marker, loop_start, loop_end,
//        looping, warping, warp_markers}; clip-internal times are beats when warped, else seconds.
// Returns {start, length, position, start_beats, end_beats} or {error} (a message for the user).
function clipRegion(clip, tempo) {
  var a, b, visibleBeats, visibleClip, src0, src1, startBeats, endBeats;
  if (!(tempo > 0)) {
    return { error: "Live reported no tempo." };
  }
  if (clip.looping) {
    a = clip.loop_start;
    b = clip.loop_end;
  } else {
    a = clip.start_marker;
    b = clip.end_marker;
    if (clip.is_arrangement_clip) {
      visibleBeats = clip.end_time - clip.start_time;
      visibleClip = clip.warping ? visibleBeats : beatsToSeconds(visibleBeats, tempo);
      b = Math.min(b, a + visibleClip);
    }
  }
  src0 = Math.max(0, clipTimeToSourceSeconds(a, clip, tempo));
  src1 = clipTimeToSourceSeconds(b, clip, tempo);
  if (!(src1 - src0 > 1e-6)) {
    return { error: "The clip's region is empty." };
  }
  if (clip.is_arrangement_clip) {
    startBeats = clip.start_time;
    endBeats = clip.end_time;
  } else {
    startBeats = 0;
    endBeats = clip.warping ? (b - a) : secondsToBeats(b - a, tempo);
  }
  return {
    start: round6(src0),
    length: round6(src1 - src0),
    position: round6(beatsToSeconds(startBeats, tempo)),
    start_beats: startBeats,
    end_beats: endBeats
  };
}

// ---- requests ---------------------------------------------------------------------------------------

// settings: {temperature, takes, quality (index), length_unit (index), length_seconds, length_bars,
//            artist, genre, sample_rate}; metre: {numerator, denominator} of the Set (4/4 if absent).
// Returns the JSON params object for a render verb. Bars are turned into seconds here, in the Set's
// real metre (the engine's own `bars` field assumes 4/4), and capped at the engine's 300 s.
function renderParams(verb, sourcePath, region, tempo, settings, metre) {
  var p;
  if (verb === "refine") {
    // the whole draft take: the engine takes labels, seed, knobs, rate and position from the draft itself
    return { source: sourcePath };
  }
  p = {
    source: sourcePath,
    start: region.start,
    length: region.length,
    position: region.position,
    tempo: round6(tempo),
    temperature: round6(clamp(settings.temperature, PARAM_RANGES.temperature.min, PARAM_RANGES.temperature.max)),
    takes: Math.round(clamp(settings.takes, PARAM_RANGES.takes.min, PARAM_RANGES.takes.max)),
    quality: QUALITIES[settings.quality] || "full"
  };
  if (settings.sample_rate >= 8000 && settings.sample_rate <= 384000) {
    p.sample_rate = Math.round(settings.sample_rate);
  }
  if (verb !== "rerender") {
    p.seconds = round6(Math.min(MAX_SECONDS, lengthSeconds(settings, tempo, metre)));
  }
  if (settings.artist) {
    p.artist = settings.artist;
  }
  if (settings.genre) {
    p.genre = settings.genre;
  }
  return p;
}

// The length the settings ask for, in seconds (before the engine's cap).
function lengthSeconds(settings, tempo, metre) {
  var bars;
  if (LENGTH_UNITS[settings.length_unit] === "bars") {
    bars = clamp(settings.length_bars, PARAM_RANGES.length_bars.min, PARAM_RANGES.length_bars.max);
    return barsToSeconds(bars, tempo, (metre || {}).numerator, (metre || {}).denominator);
  }
  return clamp(settings.length_seconds, PARAM_RANGES.length_seconds.min, PARAM_RANGES.length_seconds.max);
}

// Device instances share a host; each listens on its own port. The preferred port comes from the
// device's (session-unique) id; claimPort moves on to the next free one in the span.
function replyPortFor(deviceId) {
  var n = Math.abs(Math.floor(Number(deviceId) || 0));
  return DEFAULT_REPLY_PORT + (n % REPLY_PORT_SPAN);
}

// taken: {port: owner} of the instances in this Max; returns the first free port from `preferred`
// (wrapping around the span), or 0 when all are taken.
function claimPort(taken, preferred) {
  var i, port;
  var start = preferred - DEFAULT_REPLY_PORT;
  if (!(start >= 0 && start < REPLY_PORT_SPAN)) {
    start = 0;
  }
  for (i = 0; i < REPLY_PORT_SPAN; i++) {
    port = DEFAULT_REPLY_PORT + (start + i) % REPLY_PORT_SPAN;
    if (!taken.hasOwnProperty(String(port))) {
      return port;
    }
  }
  return 0;
}

// ---- file paths Live accepts ---------------------------------------------------------------------

function isWindowsPath(p) {
  return /^[A-Za-z]:[\\\/]/.test(p) || /^[\\\/]{2}[^\\\/]/.test(p);
}

// The forms of a render's path to offer Track.create_audio_clip, best first: on Windows the separator
// the source clip's own file_path uses, then the other; on macOS the POSIX path, under the same
// /Volumes/<drive> prefix when the source clip's path carries one (Live reports some paths that way).
function pathForms(renderPath, sourcePath) {
  var r = String(renderPath);
  var src = String(sourcePath || "");
  var back, fwd, m, forms;
  if (isWindowsPath(r)) {
    back = r.replace(/\//g, "\\");
    fwd = r.replace(/\\/g, "/");
    forms = (src.indexOf("/") >= 0 && src.indexOf("\\") < 0) ? [fwd, back] : [back, fwd];
  } else {
    m = /^(\/Volumes\/[^\/]+)\//.exec(src);
    if (m && r.charAt(0) === "/" && r.indexOf("/Volumes/") !== 0) {
      forms = [m[1] + r, r];
    } else {
      m = /^\/Volumes\/[^\/]+(\/.*)$/.exec(r);
      forms = m ? [r, m[1]] : [r];
    }
  }
  return forms[1] === forms[0] ? [forms[0]] : forms;
}

// Whether two paths name the same file as Live reports it (separators, and case on Windows, aside).
function samePath(a, b) {
  var x = String(a || "");
  var y = String(b || "");
  var m;
  if (isWindowsPath(x) || isWindowsPath(y)) {
    return x.replace(/\\/g, "/").toLowerCase() === y.replace(/\\/g, "/").toLowerCase();
  }
  m = /^\/Volumes\/[^\/]+(\/.*)$/;
  return x === y || (m.test(x) && m.exec(x)[1] === y) || (m.test(y) && m.exec(y)[1] === x);
}

// ---- Arrangement spans -----------------------------------------------------------------------------

// clips: [{start_time, end_time}]; whether [start, end) (beats) overlaps none of them.
function spanFree(clips, start, end) {
  var i;
  var eps = 1e-6;
  for (i = 0; i < clips.length; i++) {
    if (clips[i].start_time < end - eps && clips[i].end_time > start + eps) {
      return false;
    }
  }
  return true;
}

// The clip (from [{id, start_time, file_path}]) Live made for `path` at `beats`, or null.
function findPlaced(clips, beats, forms) {
  var i, j;
  for (i = 0; i < clips.length; i++) {
    if (Math.abs(clips[i].start_time - beats) < 1e-4) {
      for (j = 0; j < forms.length; j++) {
        if (samePath(clips[i].file_path, forms[j])) {
          return clips[i];
        }
      }
    }
  }
  return null;
}

// "Jukebox Continue 1 - Nina Simone, jazz": mode, take, labels (as the REAPER scripts name takes).
function clipName(verbName, take, artist, genre) {
  var labels = [];
  if (artist) {
    labels.push(artist);
  }
  if (genre) {
    labels.push(genre);
  }
  return "Jukebox " + verbName + " " + take + (labels.length ? " - " + labels.join(", ") : "");
}

// ---- replies ----------------------------------------------------------------------------------------

function num(v, dflt) {
  var n = Number(v);
  return isFinite(n) ? n : dflt;
}

function str(v) {
  return v === undefined || v === null ? "" : String(v);
}

function parseJson(text) {
  try {
    var v = JSON.parse(String(text));
    return v !== null && typeof v === "object" ? v : null;
  } catch (e) {
    return null;
  }
}

// The replies the device reads, argument by argument, as in bridge/protocol.py's REPLIES table
// (a Python test compares the two). Types: s string, i int, f float, json a JSON string, any as is.
var REPLY_ARGS = {
  hello: ["id:s", "version:s", "protocol:i"],
  pong: ["id:s", "version:s"],
  info: ["id:s", "info:json"],
  artists: ["id:s", "page:json"],
  genres: ["id:s", "page:json"],
  accepted: ["id:s", "job:s"],
  warning: ["job:s", "message:s"],
  progress: ["job:s", "fraction:f", "stage:s", "eta:f"],
  done: ["job:s", "take:i", "path:s", "position:f", "length:f"],
  finished: ["job:s", "state:s", "takes:i"],
  error: ["id:s", "code:s", "message:s"],
  cancelled: ["id:s", "count:i"],
  engine: ["state:s", "version:s"],
  param: ["name:s", "value:any"]
};

function convert(type, v) {
  if (type === "s") {
    return str(v);
  }
  if (type === "i" || type === "f") {
    return num(v, 0);
  }
  if (type === "json") {
    return parseJson(v);
  }
  return v;
}

// One reply (address + atoms, as udpreceive outputs them) -> a plain object, or null if unknown.
function parseReply(address, args) {
  var verb, spec, r, i, parts;
  if (typeof address !== "string" || address.indexOf(PREFIX) !== 0) {
    return null;
  }
  verb = address.substring(PREFIX.length);
  spec = REPLY_ARGS.hasOwnProperty(verb) ? REPLY_ARGS[verb] : null;
  if (!spec) {
    return null;
  }
  args = args || [];
  r = { type: verb };
  for (i = 0; i < spec.length; i++) {
    parts = spec[i].split(":");
    r[parts[0]] = convert(parts[1], args[i]);
  }
  if (verb === "progress") {
    r.fraction = clamp(r.fraction, 0, 1);
    if (args.length < 4) {
      r.eta = -1;
    }
  }
  return r;
}

// ---- placing takes ----------------------------------------------------------------------------------

// Where a refined draft starts in arrangement beats: where the clip's file starts (a refine renders the whole
// draft file), i.e. the clip's start less the part of the file before its start (or loop start) marker.
function fileStartBeats(clip, region, tempo) {
  var marker;
  if (!clip.is_arrangement_clip) {
    return region.start_beats;
  }
  if (clip.warping) {
    marker = clip.looping ? clip.loop_start : clip.start_marker;
    return region.start_beats - Math.max(0, marker || 0);
  }
  return region.start_beats - secondsToBeats(region.start, tempo);
}

// Where take n of a job goes. job: {verb, start_beats, end_beats, session_slot (index or -1),
// is_arrangement_clip}; caps: {arrangement: bool, session: bool}; placeOn: index into PLACE_ON.
// Re-renders and refines go under their clip (at start_beats, on a new track: the clip's own is taken there).
// Returns {mode: "arrangement"|"session"|"none", position_beats, slot, track: "new"|"clip"}.
function placement(job, take, caps, placeOn) {
  var under = job.verb === "rerender" || job.verb === "refine";
  var onClipTrack = PLACE_ON[placeOn] === "clip_track" && !under && take === 1;
  var beats = under ? job.start_beats : job.end_beats;
  if (job.is_arrangement_clip && caps.arrangement) {
    return { mode: "arrangement", position_beats: beats, slot: -1, track: onClipTrack ? "clip" : "new" };
  }
  if (caps.session) {
    // Session clips (and Arrangement clips in a Live without Track.create_audio_clip) go to a new
    // track's slots, starting at the source clip's scene so the takes line up with it.
    return { mode: "session", position_beats: beats, slot: Math.max(0, job.session_slot) + take - 1,
             track: "new" };
  }
  if (caps.arrangement) {
    // a Session clip in a Live that can only write to the Arrangement: its region length from bar 1
    return { mode: "arrangement", position_beats: beats, slot: -1, track: "new" };
  }
  return { mode: "none", position_beats: beats, slot: -1, track: "new" };
}

function versionAtLeast(v, want) {
  var i;
  for (i = 0; i < want.length; i++) {
    if ((v[i] || 0) !== want[i]) {
      return (v[i] || 0) > want[i];
    }
  }
  return true;
}

function versionString(v) {
  return v && v.length ? v.join(".") : "unknown";
}

// ---- text for the status line -----------------------------------------------------------------------

// "9.1": bar and beat of a position in quarter-note beats, in numerator/denominator
// (beats counted in the denominator's unit, as Live's own position display does).
function beatLabel(beats, numerator, denominator) {
  var perBar = beatsPerBar(numerator, denominator);
  var unit = 4.0 / (denominator > 0 ? denominator : 4);
  var bar = Math.floor(beats / perBar + 1e-9) + 1;
  var beat = Math.floor((beats - (bar - 1) * perBar) / unit + 1e-9) + 1;
  return bar + "." + beat;
}

function progressText(p) {
  var pct = Math.round(p.fraction * 100);
  var s = (p.stage || "working") + " " + pct + "%";
  if (p.eta >= 0) {
    s += ", about " + Math.ceil(p.eta) + " s left";
  }
  return s;
}

function menuItems(names, current) {
  var items = [DEFAULT_LABEL];
  var i;
  if (current && names.indexOf(current) < 0) {
    items.push(current);
  }
  for (i = 0; i < names.length; i++) {
    items.push(String(names[i]));
  }
  return items;
}

exports.PROTOCOL = PROTOCOL;
exports.ENGINE_HOST = ENGINE_HOST;
exports.ENGINE_PORT = ENGINE_PORT;
exports.DEFAULT_REPLY_PORT = DEFAULT_REPLY_PORT;
exports.REPLY_PORT_SPAN = REPLY_PORT_SPAN;
exports.MAX_SECONDS = MAX_SECONDS;
exports.PREFIX = PREFIX;
exports.RENDER_VERBS = RENDER_VERBS;
exports.PARAM_RANGES = PARAM_RANGES;
exports.QUALITIES = QUALITIES;
exports.LENGTH_UNITS = LENGTH_UNITS;
exports.PLACE_ON = PLACE_ON;
exports.DEFAULT_LABEL = DEFAULT_LABEL;
exports.MENU_LIMIT = MENU_LIMIT;
exports.MIN_VERSION_ARRANGEMENT = MIN_VERSION_ARRANGEMENT;
exports.MIN_VERSION_SESSION = MIN_VERSION_SESSION;
exports.requestMessage = requestMessage;
exports.beatsToSeconds = beatsToSeconds;
exports.secondsToBeats = secondsToBeats;
exports.beatsPerBar = beatsPerBar;
exports.barsToSeconds = barsToSeconds;
exports.lengthSeconds = lengthSeconds;
exports.warpedBeatToSourceSeconds = warpedBeatToSourceSeconds;
exports.clipTimeToSourceSeconds = clipTimeToSourceSeconds;
exports.clipRegion = clipRegion;
exports.fileStartBeats = fileStartBeats;
exports.renderParams = renderParams;
exports.replyPortFor = replyPortFor;
exports.claimPort = claimPort;
exports.isWindowsPath = isWindowsPath;
exports.pathForms = pathForms;
exports.samePath = samePath;
exports.spanFree = spanFree;
exports.findPlaced = findPlaced;
exports.clipName = clipName;
exports.REPLY_ARGS = REPLY_ARGS;
exports.parseReply = parseReply;
exports.placement = placement;
exports.versionAtLeast = versionAtLeast;
exports.versionString = versionString;
exports.beatLabel = beatLabel;
exports.progressText = progressText;
exports.menuItems = menuItems;
