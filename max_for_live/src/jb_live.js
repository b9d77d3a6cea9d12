// jb_live.js: every Live Object Model access of the device, and the only file that uses LiveAPI.
// create(LiveAPI) takes the constructor so Node tests can pass a strict fake. ES5 only.
// LiveAPI objects are made on demand (never in global code: the API is ready only after
// live.thisdevice bangs) and ids are used only within a session.
"use strict";

var core = require("jb_core");

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

  // The Track holding a clip: an Arrangement clip's parent is its Track, a take-lane clip's (Live 12)
  // is a TakeLane whose parent is the Track, a Session clip's is a ClipSlot ("... clip_slots N").
  function owner(clip) {
    var parent = obj(idList(clip.get("canonical_parent"))[0] || 0);
    var m;
    if (parent.type === "Track") {
      return { track_id: Number(parent.id), slot: -1, type: "Track" };
    }
    if (parent.type === "TakeLane") {
      return { track_id: idList(parent.get("canonical_parent"))[0] || 0, slot: -1, type: "TakeLane" };
    }
    m = /clip_slots (\d+)/.exec(String(parent.unquotedpath || parent.path || ""));
    return { track_id: idList(parent.get("canonical_parent"))[0] || 0, slot: m ? Number(m[1]) : 0,
             type: parent.type };
  }

  // The selected clip (the one in Live's Detail View) as plain data, or {error: code}.
  function readSelection() {
    var view = obj("live_set view detail_clip");
    var clip, where, isArrangement, warping, song, path;
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
    where = owner(clip);
    // Clip.is_arrangement_clip (Live 11+) is true for take-lane clips too; older Lives: the parent's type.
    isArrangement = has(clip, "is_arrangement_clip") ? !!num(clip, "is_arrangement_clip") : where.slot < 0;
    warping = !!num(clip, "warping");
    song = obj("live_set");
    return {
      file_path: path,
      clip_name: text(clip.get("name")),
      track_id: where.track_id,
      in_take_lane: where.type === "TakeLane",
      session_slot: isArrangement ? -1 : where.slot,
      tempo: num(song, "tempo"),
      numerator: num(song, "signature_numerator"),
      denominator: num(song, "signature_denominator"),
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

  // Index of a track in live_set tracks (-1 if it is not there, e.g. deleted meanwhile).
  function trackIndex(trackId) {
    var ids = idList(obj("live_set").get("tracks"));
    var i;
    for (i = 0; i < ids.length; i++) {
      if (ids[i] === Number(trackId)) {
        return i;
      }
    }
    return -1;
  }

  // A new audio track at `index` (below the source track; -1: the end of the Set), named `name`.
  // Song.create_audio_track returns nothing usable, so the new one is the id the list did not hold.
  function newAudioTrack(name, index) {
    var song = obj("live_set");
    var before = idList(song.get("tracks"));
    var after, id, i;
    song.call("create_audio_track", index >= 0 && index <= before.length ? index : -1);
    after = idList(song.get("tracks"));
    id = 0;
    for (i = 0; i < after.length && !id; i++) {
      if (before.indexOf(after[i]) < 0) {
        id = after[i];
      }
    }
    if (!id) {
      throw new Error("Live did not create an audio track");
    }
    obj(id).set("name", name);
    return id;
  }

  function clipFacts(id) {
    var c = obj(id);
    return { id: id, start_time: num(c, "start_time"), end_time: num(c, "end_time"),
             file_path: text(c.get("file_path")) };
  }

  // The track's Arrangement clips as [{id, start_time, end_time, file_path}].
  function arrangementClips(trackId) {
    var ids = idList(obj(trackId).get("arrangement_clips"));
    var out = [];
    var i;
    for (i = 0; i < ids.length; i++) {
      out.push(clipFacts(ids[i]));
    }
    return out;
  }

  // Track.create_audio_clip(path, beats) with each path form in turn (Live reports a refused file in
  // the Max window, it does not throw); the clip is found by start_time and file_path, never by
  // counting. Returns the new clip's id and the form Live took; throws naming every form tried.
  function placeInArrangement(trackId, forms, beats) {
    var track = obj(trackId);
    var i, found;
    for (i = 0; i < forms.length; i++) {
      try {
        track.call("create_audio_clip", forms[i], beats);
      } catch (e) {
        // a Live that throws instead of posting: try the next form
      }
      found = core.findPlaced(arrangementClips(trackId), beats, [forms[i]]);
      if (found) {
        return { clip_id: found.id, path: forms[i] };
      }
    }
    throw new Error("Live refused the file as " + forms.join(" and as ") +
                    " (is the track frozen or recording, or the file unreadable?)");
  }

  // ClipSlot.create_audio_clip(path) in the first empty slot from `slot` on, adding scenes as needed;
  // each path form in turn, checked by the slot's clip and its file_path. Returns {slot, clip_id, path}.
  function placeInSession(trackId, slot, forms) {
    var track = obj(trackId);
    var slots = idList(track.get("clip_slots"));
    var i, j, s, clipId;
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
        for (j = 0; j < forms.length; j++) {
          try {
            s.call("create_audio_clip", forms[j]);
          } catch (e) {
            // posted in the Max window by a real Live; try the next form
          }
          if (num(s, "has_clip")) {
            clipId = idList(s.get("clip"))[0] || 0;
            return { slot: i, clip_id: clipId, path: forms[j] };
          }
        }
        throw new Error("Live refused the file as " + forms.join(" and as ") + " (is the track frozen?)");
      }
    }
  }

  // Make a placed clip play as rendered and easy to find: unwarped (renders are cut to the Set
  // tempo's length, so natural speed is right; Live would otherwise auto-warp long files with a
  // guessed tempo), named, and shown in the Detail View with its track selected.
  function finishClip(clipId, name) {
    var clip = obj(clipId);
    clip.set("warping", 0);
    clip.set("name", name);
  }

  function select(trackId, clipId) {
    var view = obj("live_set view");
    view.set("selected_track", "id", Number(trackId));
    view.set("detail_clip", "id", Number(clipId));
  }

  return {
    readSelection: readSelection,
    liveVersion: liveVersion,
    deviceId: deviceId,
    capabilities: capabilities,
    trackIndex: trackIndex,
    newAudioTrack: newAudioTrack,
    arrangementClips: arrangementClips,
    placeInArrangement: placeInArrangement,
    placeInSession: placeInSession,
    finishClip: finishClip,
    select: select
  };
}

exports.create = create;
exports.parseWarpMarkers = parseWarpMarkers;
exports.idList = idList;
exports.text = text;
