// jb_live.js: every Live Object Model access of the device, and the only file that uses LiveAPI.
// create(LiveAPI) takes the constructor so Node tests can pass a strict fake. ES5 only.
// LiveAPI objects are made on demand (never in global code: the API is ready only after
// live.thisdevice bangs) and ids are used only within a session.
"use strict";

var CREATE_AUDIO_CLIP = /(^|\n)\s*function create_audio_clip(\s|$)/;

function first(v) {
  if (v !== null && typeof v === "object" && v.length !== undefined) {
    return v[0];
  }
  return v;
}

// Symbol properties come back as one atom, or split into several on some versions: join, unquote.
function text(v) {
  var s;
  if (v === null || v === undefined) {
    return "";
  }
  s = (typeof v === "object" && v.length !== undefined) ? Array.prototype.join.call(v, " ") : String(v);
  if (s.length >= 2 && s.charAt(0) === "\"" && s.charAt(s.length - 1) === "\"") {
    s = s.substring(1, s.length - 1);
  }
  return s;
}

// ["id", 3, "id", 7] -> [3, 7]
function idList(v) {
  var out = [];
  var i;
  if (v === null || v === undefined) {
    return out;
  }
  if (typeof v !== "object") {
    v = [v];
  }
  for (i = 0; i < v.length; i++) {
    if (v[i] !== "id" && Number(v[i]) > 0) {
      out.push(Number(v[i]));
    }
  }
  return out;
}

function parseWarpMarkers(v) {
  var data = v;
  if (data !== null && typeof data === "object" && data.length === 1 && typeof data[0] === "string") {
    data = data[0];
  }
  if (typeof data === "object" && data !== null && data.length !== undefined && typeof data[0] === "string") {
    data = Array.prototype.join.call(data, " ");
  }
  if (typeof data === "string") {
    try {
      data = JSON.parse(data);
    } catch (e) {
      return [];
    }
  }
  if (data && data.warp_markers) {
    data = data.warp_markers;
  }
  return (data && data.length !== undefined) ? data : [];
}

function create(LiveAPI) {
  var versionCache = null;

  function obj(pathOrId) {
    return new LiveAPI(typeof pathOrId === "number" ? "id " + pathOrId : pathOrId);
  }

  function isNone(o) {
    return !o || !(Number(o.id) > 0);
  }

  function num(o, prop) {
    return Number(first(o.get(prop)));
  }

  function has(o, member) {
    return String(o.info || "").indexOf(member) >= 0;
  }

  // The selected clip (the one in Live's Detail View) as plain data, or {error: code}.
  function readSelection() {
    var view = obj("live_set view detail_clip");
    var clip, parent, isArrangement, trackId, slot, warping, song, path, m;
    if (isNone(view)) {
      return { error: "no_clip" };
    }
    clip = obj(Number(view.id));
    if (!num(clip, "is_audio_clip")) {
      return { error: "midi_clip" };
    }
    path = text(clip.get("file_path"));
    if (!path) {
      return { error: "no_file" };
    }
    // An Arrangement clip's parent is its Track; a Session clip's is a ClipSlot ("... clip_slots N").
    parent = obj(idList(clip.get("canonical_parent"))[0] || 0);
    isArrangement = parent.type === "Track";
    slot = -1;
    if (isArrangement) {
      trackId = Number(parent.id);
    } else {
      m = /clip_slots (\d+)/.exec(String(parent.unquotedpath || parent.path || ""));
      slot = m ? Number(m[1]) : 0;
      trackId = idList(parent.get("canonical_parent"))[0] || 0;
    }
    warping = !!num(clip, "warping");
    song = obj("live_set");
    return {
      file_path: path,
      clip_name: text(clip.get("name")),
      track_id: trackId,
      session_slot: slot,
      tempo: num(song, "tempo"),
      numerator: num(song, "signature_numerator"),
      clip: {
        is_arrangement_clip: isArrangement,
        start_time: isArrangement ? num(clip, "start_time") : 0,
        end_time: isArrangement ? num(clip, "end_time") : 0,
        start_marker: num(clip, "start_marker"),
        end_marker: num(clip, "end_marker"),
        loop_start: num(clip, "loop_start"),
        loop_end: num(clip, "loop_end"),
        looping: !!num(clip, "looping"),
        warping: warping,
        // Clip.warp_markers needs Live 11; older Lives fall back to the song tempo (see jb_core).
        warp_markers: (warping && has(clip, "warp_markers")) ? parseWarpMarkers(clip.get("warp_markers")) : []
      }
    };
  }

  function liveVersion() {
    var app;
    if (!versionCache) {
      app = obj("live_app");
      versionCache = [Number(first(app.call("get_major_version"))),
                      Number(first(app.call("get_minor_version"))),
                      Number(first(app.call("get_bugfix_version")))];
    }
    return versionCache;
  }

  function deviceId() {
    return Number(obj("this_device").id);
  }

  // Which clip-creating functions this Live has, read from the objects' own function lists.
  function capabilities(trackId) {
    var track = obj(trackId);
    var slots = idList(track.get("clip_slots"));
    return {
      arrangement: CREATE_AUDIO_CLIP.test(String(track.info || "")),
      session: slots.length > 0 && CREATE_AUDIO_CLIP.test(String(obj(slots[0]).info || ""))
    };
  }

  function newAudioTrack(name) {
    var song = obj("live_set");
    var before = idList(song.get("tracks"));
    var after, id;
    song.call("create_audio_track", -1);
    after = idList(song.get("tracks"));
    if (after.length <= before.length) {
      throw new Error("Live did not create an audio track");
    }
    id = after[after.length - 1];
    obj(id).set("name", name);
    return id;
  }

  // Track.create_audio_clip(path, beats); checked by counting the track's Arrangement clips.
  function placeInArrangement(trackId, filePath, beats) {
    var track = obj(trackId);
    var before = idList(track.get("arrangement_clips")).length;
    track.call("create_audio_clip", filePath, beats);
    if (idList(track.get("arrangement_clips")).length <= before) {
      throw new Error("Live did not create the clip (is the track frozen or recording?)");
    }
  }

  // ClipSlot.create_audio_clip(path) in the first empty slot from `slot` on, adding scenes as needed.
  function placeInSession(trackId, slot, filePath) {
    var track = obj(trackId);
    var slots = idList(track.get("clip_slots"));
    var i, s;
    for (i = slot; ; i++) {
      if (i >= slots.length) {
        obj("live_set").call("create_scene", -1);
        slots = idList(track.get("clip_slots"));
        if (i >= slots.length) {
          throw new Error("Live did not add a scene");
        }
      }
      s = obj(slots[i]);
      if (!num(s, "has_clip")) {
        s.call("create_audio_clip", filePath);
        if (!num(s, "has_clip")) {
          throw new Error("Live did not create the clip (is the track frozen?)");
        }
        return i;
      }
    }
  }

  return {
    readSelection: readSelection,
    liveVersion: liveVersion,
    deviceId: deviceId,
    capabilities: capabilities,
    newAudioTrack: newAudioTrack,
    placeInArrangement: placeInArrangement,
    placeInSession: placeInSession
  };
}

exports.create = create;
exports.parseWarpMarkers = parseWarpMarkers;
exports.idList = idList;
exports.text = text;
