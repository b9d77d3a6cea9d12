// A strict fake of Max's LiveAPI over a small in-memory Live Set.
// Every object declares its properties and functions; a get, set or call of anything undeclared
// (or on an empty id) throws, so the device cannot lean on LOM members a test did not model.
// Every access is recorded in world.calls as {op, id, type, name, args}.
//
// Where real Live behaves in a way that hurts, the fake does the same:
// - Track.create_audio_clip over existing clips replaces that span (the user's clips are cut away);
// - a file path Live refuses (wrong form for the platform, unknown file) creates nothing and throws
//   nothing: Live prints the error in the Max window (world.errors), the call just returns;
// - create_audio_clip returns nothing useful, and arrangement_clips is ordered by start_time, so a
//   new clip is found only by its start_time and file_path;
// - new clips come in warped (Live's auto-warp), named after the file;
// - take-lane clips (Live 12) have a TakeLane as canonical_parent and are not in the track's
//   arrangement_clips; Session clips report is_arrangement_clip 0.
"use strict";

const fs = require("fs");

class LiveWorld {
  constructor() {
    this.objects = new Map();
    this.nextId = 1;
    this.calls = [];
    this.errors = []; // what Live would print in the Max window
    this.paths = new Map(); // fixed paths ("live_set", "live_app", ...) -> id
    this.detailClip = 0; // the clip shown in the Detail View (0: none)
  }

  add(type, { path = "", props = {}, functions = {}, setters = {}, id: fixedId = 0 } = {}) {
    const id = fixedId || this.nextId++;
    if (this.objects.has(id)) throw new Error(`fake LiveAPI: id ${id} taken`);
    const o = { id, type, path, props: { ...props }, functions: { ...functions }, setters: { ...setters } };
    this.objects.set(id, o);
    if (path) this.paths.set(path, id);
    return o;
  }

  remove(id) {
    this.objects.delete(id);
  }

  resolve(path) {
    const p = String(path).trim();
    let m = /^id (\d+)$/.exec(p);
    if (m) return this.objects.has(Number(m[1])) ? Number(m[1]) : 0;
    if (p === "live_set view detail_clip") return this.objects.has(this.detailClip) ? this.detailClip : 0;
    if (this.paths.has(p)) return this.paths.get(p);
    m = /^live_set tracks (\d+)$/.exec(p);
    if (m) return this.trackIds()[Number(m[1])] || 0;
    return 0;
  }

  trackIds() {
    const song = this.objects.get(this.paths.get("live_set"));
    return idsOf(song.props.tracks);
  }

  record(op, o, name, args) {
    this.calls.push({ op, id: o ? o.id : 0, type: o ? o.type : "none", name, args });
  }

  callsOf(name, op = "call") {
    return this.calls.filter((c) => c.op === op && c.name === name);
  }

  get LiveAPI() {
    const world = this;
    // new LiveAPI([callback], [path]), as in Max
    return function LiveAPI(a, b) {
      const path = typeof a === "function" ? b : a;
      const id = path === undefined ? 0 : world.resolve(path);
      const o = id ? world.objects.get(id) : null;
      world.record("new", o, String(path), []);
      Object.defineProperty(this, "id", { get: () => String(o && world.objects.has(o.id) ? o.id : 0), enumerable: true });
      Object.defineProperty(this, "type", { get: () => (o ? o.type : ""), enumerable: true });
      Object.defineProperty(this, "unquotedpath", { get: () => (o ? o.path : ""), enumerable: true });
      Object.defineProperty(this, "path", { get: () => (o ? '"' + o.path + '"' : ""), enumerable: true });
      Object.defineProperty(this, "info", {
        get: () => {
          if (!o) return "No object";
          const lines = [`id ${o.id}`, `type ${o.type}`];
          for (const k of Object.keys(o.props)) lines.push(`property ${k}`);
          for (const k of Object.keys(o.functions)) lines.push(`function ${k}`);
          lines.push("done");
          return lines.join("\n");
        },
        enumerable: true,
      });
      const need = (op, name, table) => {
        if (!o || !world.objects.has(o.id)) throw new Error(`fake LiveAPI: ${op} '${name}' on an empty object (${path})`);
        if (!Object.prototype.hasOwnProperty.call(table, name)) {
          throw new Error(`fake LiveAPI: undeclared ${op} '${name}' on ${o.type} ${o.path || o.id}`);
        }
      };
      this.get = (name) => {
        need("get", name, o ? o.props : {});
        world.record("get", o, name, []);
        const v = o.props[name];
        const value = typeof v === "function" ? v() : v;
        return Array.isArray(value) ? value.slice() : [value];
      };
      this.set = (name, ...values) => {
        need("set", name, o ? o.props : {});
        world.record("set", o, name, values);
        if (o.setters[name]) o.setters[name](...values);
        else if (typeof o.props[name] === "function") throw new Error(`fake LiveAPI: ${name} is read-only`);
        else o.props[name] = values.length === 1 ? values[0] : values;
      };
      this.call = (name, ...args) => {
        need("call", name, o ? o.functions : {});
        world.record("call", o, name, args);
        return o.functions[name](...args);
      };
      this.getcount = (child) => {
        need("get", child, o ? o.props : {});
        return idsOf(o.props[child]).length;
      };
    };
  }
}

function idsOf(v) {
  const value = typeof v === "function" ? v() : v;
  return (Array.isArray(value) ? value : []).filter((x) => x !== "id").map(Number);
}

function idRefs(ids) {
  const out = [];
  for (const id of ids) out.push("id", id);
  return out;
}

// "id", N (as Max's js passes an object reference) -> N
function refId(values) {
  const v = values.length === 1 && typeof values[0] === "string" ? values[0].split(" ") : values;
  if (v.length !== 2 || v[0] !== "id" || !(Number(v[1]) > 0)) throw new Error(`fake LiveAPI: not an object reference: ${values.join(" ")}`);
  return Number(v[1]);
}

// Seconds of a RIFF/WAVE file on disk, or null.
function wavSeconds(file) {
  try {
    const buf = fs.readFileSync(file);
    if (buf.toString("ascii", 0, 4) !== "RIFF" || buf.toString("ascii", 8, 12) !== "WAVE") return null;
    let pos = 12;
    let rate = 0;
    let align = 0;
    while (pos + 8 <= buf.length) {
      const id = buf.toString("ascii", pos, pos + 4);
      const size = buf.readUInt32LE(pos + 4);
      if (id === "fmt ") { rate = buf.readUInt32LE(pos + 12); align = buf.readUInt16LE(pos + 20); }
      if (id === "data" && rate && align) return size / align / rate;
      pos += 8 + size + (size % 2);
    }
  } catch (e) {
    return null;
  }
  return null;
}

// A Live Set with one audio track holding one clip; options choose the Live version and the clip.
//   version: [12, 1, 0]; arrangement / session: whether Track / ClipSlot.create_audio_clip exist
//   clip: overrides of the clip's properties; selection: "arrangement" | "session" | "take_lane" |
//   "midi" | "none"; scenes: clip slots per track (default 2); tempo (default 120);
//   numerator / denominator: the Set's time signature (4/4);
//   platform: "mac" (POSIX paths) or "windows"; windowsAccepts: "backslash" | "slash" | "none": the
//   separator Live's create_audio_clip takes on Windows;
//   tracksAfter: names of further audio tracks after the source track;
//   userClips: [{start, end, path}]: more Arrangement clips of the user's on the source track;
//   isArrangementClipProperty: false for a Live without Clip.is_arrangement_clip (before 11).
function makeSet(opts = {}) {
  const {
    version = [12, 1, 0], arrangement = true, session = true, selection = "arrangement",
    scenes = 2, tempo = 120, numerator = 4, denominator = 4, clip = {}, deviceId = 9000,
    platform = "mac", windowsAccepts = "backslash", tracksAfter = [], userClips = [],
    isArrangementClipProperty = true,
  } = opts;
  const world = new LiveWorld();
  const tracks = [];
  const created = []; // clips made by create_audio_clip: {kind, track, slot, path, position, clip}
  const files = new Map(); // files Live can read: path (as given to addFile) -> seconds
  const overwritten = []; // user clips Live cut away: {track, id, start_time, end_time}

  const norm = (p) => (platform === "windows" ? String(p).replace(/\//g, "\\").toLowerCase() : String(p));
  const addFile = (p, seconds) => { files.set(norm(p), seconds); return p; };

  // The file's length if Live takes this path, else null (with Live's error in world.errors).
  function accept(fn, p) {
    const s = String(p);
    let ok;
    if (platform === "windows") {
      ok = /^[A-Za-z]:/.test(s) && ((windowsAccepts === "backslash" && !s.includes("/")) ||
                                    (windowsAccepts === "slash" && !s.includes("\\")));
    } else {
      ok = s.startsWith("/");
    }
    const known = files.has(norm(s)) ? files.get(norm(s)) : (platform === "mac" && fs.existsSync(s) ? wavSeconds(s) || 1 : null);
    if (!ok || known === null) {
      world.errors.push(`${fn}: invalid file path ${s}`);
      return null;
    }
    return known;
  }

  const song = world.add("Song", {
    path: "live_set",
    props: { tempo, signature_numerator: numerator, signature_denominator: denominator,
             tracks: () => idRefs(tracks.map((t) => t.id)) },
    functions: {
      create_audio_track: (index) => {
        if (index !== -1 && !(Number.isInteger(index) && index >= 0 && index <= tracks.length)) {
          throw new Error("bad track index");
        }
        const t = addTrack(`${tracks.length + 1}-Audio`);
        if (index === -1) tracks.push(t); else tracks.splice(index, 0, t);
        renumber();
      },
      create_scene: () => {
        for (const t of tracks) t.slots.push(addSlot(t, t.slots.length));
      },
    },
  });
  world.add("Song.View", {
    path: "live_set view",
    props: { selected_track: ["id", 0], detail_clip: () => ["id", world.detailClip] },
    setters: {
      selected_track: (...v) => { const id = refId(v); song.selected = id; world.objects.get(world.paths.get("live_set view")).props.selected_track = ["id", id]; },
      detail_clip: (...v) => {
        const id = refId(v);
        if (!world.objects.has(id) || world.objects.get(id).type !== "Clip") throw new Error("detail_clip: not a clip");
        world.detailClip = id;
      },
    },
  });
  world.add("Application", {
    path: "live_app",
    functions: {
      get_major_version: () => version[0],
      get_minor_version: () => version[1],
      get_bugfix_version: () => version[2],
    },
  });
  world.add("Device", { path: "this_device", id: deviceId });

  function renumber() {
    tracks.forEach((t, i) => {
      t.obj.path = `live_set tracks ${i}`;
      t.slots.forEach((s, j) => { s.path = `live_set tracks ${i} clip_slots ${j}`; });
    });
  }

  function newClip(parentId, props) {
    return world.add("Clip", {
      props: {
        is_audio_clip: 1, warping: 1, looping: 0, start_marker: 0, end_marker: 0, loop_start: 0, loop_end: 0,
        ...(isArrangementClipProperty ? { is_arrangement_clip: 1 } : {}),
        ...props, canonical_parent: ["id", parentId],
      },
    });
  }

  function addSlot(track, index) {
    const slot = world.add("ClipSlot", {
      path: "",
      props: { has_clip: 0, clip: ["id", 0], canonical_parent: () => ["id", track.obj.id] },
      functions: session ? {
        create_audio_clip: (p) => {
          if (slot.props.has_clip) throw new Error("slot not empty");
          const seconds = accept("create_audio_clip", p);
          if (seconds === null) return;
          const c = newClip(slot.id, { name: basename(p), file_path: p,
                                       ...(isArrangementClipProperty ? { is_arrangement_clip: 0 } : {}) });
          slot.props.has_clip = 1;
          slot.props.clip = ["id", c.id];
          created.push({ kind: "session", track: track.obj.id, slot: track.slots.indexOf(slot), path: p, clip: c.id });
        },
      } : {},
    });
    return slot;
  }

  function addTrack(name) {
    const track = { slots: [], arrangementClips: [] };
    const sorted = () => track.arrangementClips
      .filter((id) => world.objects.has(id))
      .sort((x, y) => world.objects.get(x).props.start_time - world.objects.get(y).props.start_time);
    track.obj = world.add("Track", {
      props: {
        name,
        has_audio_input: 1,
        clip_slots: () => idRefs(track.slots.map((s) => s.id)),
        arrangement_clips: () => idRefs(sorted()),
      },
      functions: arrangement ? {
        create_audio_clip: (p, position) => {
          if (typeof p !== "string" || !(position >= 0 && position <= 1576800)) throw new Error("bad create_audio_clip args");
          const seconds = accept("create_audio_clip", p);
          if (seconds === null) return;
          const end = position + seconds * tempo / 60;
          // Live replaces what the new clip covers
          for (const id of sorted()) {
            const c = world.objects.get(id).props;
            if (c.start_time < end && c.end_time > position) {
              overwritten.push({ track: track.obj.id, id, start_time: c.start_time, end_time: c.end_time });
              world.remove(id);
            }
          }
          const c = newClip(track.obj.id, { name: basename(p), file_path: p, start_time: position, end_time: end });
          track.arrangementClips.push(c.id);
          created.push({ kind: "arrangement", track: track.obj.id, path: p, position, clip: c.id });
        },
      } : {},
    });
    track.id = track.obj.id;
    for (let i = 0; i < scenes; i++) track.slots.push(addSlot(track, i));
    return track;
  }

  const source = addTrack("Source");
  tracks.push(source);
  for (const n of tracksAfter) tracks.push(addTrack(n));
  renumber();

  const sourcePath = clip.file_path !== undefined ? clip.file_path
    : (platform === "windows" ? (windowsAccepts === "slash" ? "C:/Users/me/Music/Riff.wav" : "C:\\Users\\me\\Music\\Riff.wav")
                              : "/Users/me/Music/Riff.wav");
  const warpMarkers = clip.warp_markers || [];
  const clipProps = {
    name: "Riff",
    is_audio_clip: selection === "midi" ? 0 : 1,
    start_time: 16,
    end_time: 32,
    start_marker: 2,
    end_marker: 30,
    loop_start: 2,
    loop_end: 30,
    looping: 0,
    warping: 0,
    ...clip,
    file_path: sourcePath,
  };
  if (isArrangementClipProperty) clipProps.is_arrangement_clip = selection === "session" ? 0 : 1;
  delete clipProps.warp_markers;
  if (selection === "midi") delete clipProps.file_path; // Clip.file_path: audio clips only
  if (clipProps.warping && opts.warpMarkersProperty !== false) {
    clipProps.warp_markers = JSON.stringify({ warp_markers: warpMarkers });
  }
  let parentId = source.obj.id;
  if (selection === "session") {
    const slot = source.slots[1];
    slot.props.has_clip = 1;
    parentId = slot.id;
    delete clipProps.start_time; // Session clips: no Arrangement position to read
    delete clipProps.end_time;
  } else if (selection === "take_lane") {
    const lane = world.add("TakeLane", { props: { name: "Take 1", canonical_parent: ["id", source.obj.id],
                                                   arrangement_clips: () => idRefs([sourceClip.id]) } });
    parentId = lane.id;
  }
  clipProps.canonical_parent = ["id", parentId];
  const sourceClip = world.add("Clip", { props: clipProps });
  if (selection === "session") source.slots[1].props.clip = ["id", sourceClip.id];
  if (selection !== "session" && selection !== "take_lane") source.arrangementClips.push(sourceClip.id);
  if (selection !== "none") world.detailClip = sourceClip.id;
  if (clipProps.file_path) addFile(clipProps.file_path, 60);

  const user = [];
  for (const u of userClips) {
    const c = newClip(source.obj.id, { name: "Mine", file_path: u.path || sourcePath, start_time: u.start, end_time: u.end,
                                       warping: 0 });
    source.arrangementClips.push(c.id);
    user.push(c);
  }

  return { world, song, source, tracks, created, sourceClip, files, addFile, overwritten, userClips: user };
}

function basename(p) {
  return String(p).split(/[\\/]/).pop().replace(/\.[^.]*$/, "");
}

module.exports = { LiveWorld, makeSet, idRefs };
