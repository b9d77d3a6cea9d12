// A strict fake of Max's LiveAPI over a small in-memory Live Set.
// Every object declares its properties and functions; a get, set or call of anything undeclared
// (or on an empty id) throws, so the device cannot lean on LOM members a test did not model.
// Every access is recorded in world.calls as {op, id, type, name, args}.
"use strict";

class LiveWorld {
  constructor() {
    this.objects = new Map();
    this.nextId = 1;
    this.calls = [];
    this.paths = new Map(); // fixed paths ("live_set", "live_app", ...) -> id
    this.detailClip = 0; // the clip shown in the Detail View (0: none)
  }

  add(type, { path = "", props = {}, functions = {}, id: fixedId = 0 } = {}) {
    const id = fixedId || this.nextId++;
    if (this.objects.has(id)) throw new Error(`fake LiveAPI: id ${id} taken`);
    const o = { id, type, path, props: { ...props }, functions: { ...functions } };
    this.objects.set(id, o);
    if (path) this.paths.set(path, id);
    return o;
  }

  resolve(path) {
    const p = String(path).trim();
    let m = /^id (\d+)$/.exec(p);
    if (m) return this.objects.has(Number(m[1])) ? Number(m[1]) : 0;
    if (p === "live_set view detail_clip") return this.detailClip;
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
      Object.defineProperty(this, "id", { get: () => String(o ? o.id : 0), enumerable: true });
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
        if (!o) throw new Error(`fake LiveAPI: ${op} '${name}' on an empty object (${path})`);
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
      this.set = (name, value) => {
        need("set", name, o ? o.props : {});
        world.record("set", o, name, [value]);
        o.props[name] = value;
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

// A Live Set with one audio track holding one clip; options choose the Live version and the clip.
//   version: [12, 1, 0]; arrangement / session: whether Track / ClipSlot.create_audio_clip exist
//   clip: overrides of the clip's properties; selection: "arrangement" | "session" | "midi" | "none"
//   scenes: clip slots per track (default 2); tempo (default 120)
function makeSet(opts = {}) {
  const {
    version = [12, 1, 0], arrangement = true, session = true, selection = "arrangement",
    scenes = 2, tempo = 120, clip = {}, deviceId = 9000,
  } = opts;
  const world = new LiveWorld();
  const tracks = [];
  const created = []; // clips made by create_audio_clip: {kind, track, slot, path, position}

  const song = world.add("Song", {
    path: "live_set",
    props: { tempo, signature_numerator: 4, tracks: () => idRefs(tracks.map((t) => t.id)) },
    functions: {
      create_audio_track: (index) => {
        if (index !== -1 && !(index >= 0 && index <= tracks.length)) throw new Error("bad track index");
        const t = addTrack(`Audio ${tracks.length + 1}`);
        if (index === -1) tracks.push(t); else tracks.splice(index, 0, t);
      },
      create_scene: () => {
        for (const t of tracks) t.slots.push(addSlot(t, t.slots.length));
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

  function addSlot(track, index) {
    const slot = world.add("ClipSlot", {
      path: "",
      props: { has_clip: 0, canonical_parent: () => ["id", track.obj.id] },
      functions: session ? {
        create_audio_clip: (path) => {
          if (slot.props.has_clip) throw new Error("slot not empty");
          slot.props.has_clip = 1;
          created.push({ kind: "session", track: track.obj.id, slot: index, path });
        },
      } : {},
    });
    slot.path = `live_set tracks ${tracks.indexOf(track) < 0 ? tracks.length : tracks.indexOf(track)} clip_slots ${index}`;
    return slot;
  }

  function addTrack(name) {
    const track = { slots: [], arrangementClips: [] };
    track.obj = world.add("Track", {
      props: {
        name,
        has_audio_input: 1,
        clip_slots: () => idRefs(track.slots.map((s) => s.id)),
        arrangement_clips: () => idRefs(track.arrangementClips),
      },
      functions: arrangement ? {
        create_audio_clip: (path, position) => {
          if (typeof path !== "string" || !(position >= 0)) throw new Error("bad create_audio_clip args");
          const c = world.add("Clip", { props: { file_path: path, start_time: position } });
          track.arrangementClips.push(c.id);
          created.push({ kind: "arrangement", track: track.obj.id, path, position });
        },
      } : {},
    });
    track.id = track.obj.id;
    for (let i = 0; i < scenes; i++) track.slots.push(addSlot(track, i));
    return track;
  }

  const source = addTrack("Source");
  tracks.push(source);
  source.obj.path = "live_set tracks 0";
  source.slots.forEach((s, i) => { s.path = `live_set tracks 0 clip_slots ${i}`; });

  const warpMarkers = clip.warp_markers || [];
  const clipProps = {
    name: "Riff",
    is_audio_clip: selection === "midi" ? 0 : 1,
    file_path: "/Users/me/Music/Riff.wav",
    start_time: 16,
    end_time: 32,
    start_marker: 2,
    end_marker: 30,
    loop_start: 2,
    loop_end: 30,
    looping: 0,
    warping: 0,
    ...clip,
  };
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
  }
  clipProps.canonical_parent = ["id", parentId];
  const sourceClip = world.add("Clip", { props: clipProps });
  if (selection !== "session") source.arrangementClips.push(sourceClip.id);
  if (selection !== "none") world.detailClip = sourceClip.id;

  return { world, song, source, tracks, created, sourceClip };
}

module.exports = { LiveWorld, makeSet, idRefs };
