// jb_controller.js: the device's state and behaviour, between the Max message table (jb_main.js),
// the engine (OSC lists out, parsed replies in) and Live (jb_live.js). No Max or Live globals:
// everything arrives through `deps`, so Node tests drive it with fakes. ES5 only.
"use strict";

var core = require("jb_core");

var HELLO_TIMEOUT_MS = 7000; // no reply to two hellos (sent every 3 s): the engine is gone
var REQUEST_TIMEOUT_MS = 5000; // a render request must be accepted or refused by then

var SELECTION_ERRORS = {
  no_clip: "No clip selected: click an audio clip so it shows in Live's Detail View.",
  midi_clip: "That is a MIDI clip: select an audio clip.",
  no_file: "The selected clip has no audio file (record or save it first)."
};

var VERB_NAMES = { "continue": "Continue", prime: "Prime", rerender: "Re-render", refine: "Refine" };

// deps: {send(list), ui: {status(s), connection(s), progress(pct), menu(kind, items, index),
//        store(kind, name), listen(port)}, live (jb_live API), now() -> ms,
//        ports (optional): {claim(preferred) -> port or 0, release(port)}, the reply ports taken by the
//        device instances of this Max (jb_main keeps them in a Max Global),
//        warn (optional): a line for the Max window}
function Controller(deps) {
  this.send = deps.send;
  this.ui = deps.ui;
  this.warn = deps.warn || function () {};
  this.live = deps.live;
  this.now = deps.now;
  this.ports = deps.ports || null;
  this.claimed = 0;
  this.replyPort = core.DEFAULT_REPLY_PORT;
  this.started = false;
  this.connected = false;
  this.lastSeen = -1;
  this.engine = { version: "", model: "", info: null };
  this.counter = 0;
  this.pending = {}; // request_id -> job (render requests not yet accepted)
  this.jobs = {}; // job_id -> job
  this.order = []; // job ids, oldest first
  this.settings = {
    temperature: core.PARAM_RANGES.temperature.initial,
    takes: core.PARAM_RANGES.takes.initial,
    quality: 1,
    length_unit: 0,
    length_seconds: core.PARAM_RANGES.length_seconds.initial,
    length_bars: core.PARAM_RANGES.length_bars.initial,
    place_on: 0,
    sample_rate: 0
  };
  this.labels = {
    artist: { value: "", query: "", items: [core.DEFAULT_LABEL], request: "" },
    genre: { value: "", query: "", items: [core.DEFAULT_LABEL], request: "" }
  };
}

Controller.prototype.nextId = function (prefix) {
  this.counter += 1;
  return "m4l-" + prefix + this.counter;
};

// live.thisdevice banged: the Live API is usable now.
Controller.prototype.start = function () {
  var id = 0;
  try {
    id = this.live.deviceId();
  } catch (e) {
    id = 0;
  }
  // live.thisdevice can bang more than once: the port claimed first is kept
  this.listen(this.claimed || this.claimPort(core.replyPortFor(id)));
  this.started = true;
  this.ui.status("Select an audio clip, then press Continue, Prime or Re-render (Refine: a draft take).");
  this.showConnection();
  this.tick();
};

// A reply port no other instance of the device in this Max holds (the preferred one if free).
Controller.prototype.claimPort = function (preferred) {
  var port = preferred;
  if (this.ports) {
    port = this.ports.claim(preferred);
    if (!port) {
      this.ui.status("Too many Jukebox Bridge devices in this Set: every reply port from " +
                     core.DEFAULT_REPLY_PORT + " to " + (core.DEFAULT_REPLY_PORT + core.REPLY_PORT_SPAN - 1) +
                     " is taken.");
      return preferred;
    }
    this.claimed = port;
  }
  return port;
};

Controller.prototype.listen = function (port) {
  var p = Math.floor(Number(port));
  if (p > 0 && p < 65536) {
    this.replyPort = p;
    this.ui.listen(p);
  }
};

// The device is being deleted (removed from its track, or its Set closed): cancel the jobs it is
// still following, which nobody would place otherwise, and free its reply port.
Controller.prototype.shutdown = function () {
  var i, job;
  for (i = 0; i < this.order.length; i++) {
    job = this.jobs[this.order[i]];
    if (job.state === "accepted") {
      this.send(core.requestMessage("cancel", this.replyPort, this.nextId("c"), { job_id: job.id }));
      job.state = "cancelled";
    }
  }
  this.pending = {};
  if (this.ports && this.claimed) {
    this.ports.release(this.claimed);
    this.claimed = 0;
  }
};

// Every few seconds: hello (registers for broadcasts and proves the engine is there), timeouts.
Controller.prototype.tick = function () {
  var now = this.now();
  var id, job;
  if (this.connected && now - this.lastSeen > HELLO_TIMEOUT_MS) {
    this.connected = false;
    this.showConnection();
  }
  for (id in this.pending) {
    if (this.pending.hasOwnProperty(id)) {
      job = this.pending[id];
      if (now - job.sent > REQUEST_TIMEOUT_MS) {
        delete this.pending[id];
        this.ui.status("The engine did not answer " + VERB_NAMES[job.verb] +
                       ": is it running (jukebox-bridge serve)?");
      }
    }
  }
  this.send(core.requestMessage("hello", this.replyPort, this.nextId("h"), null));
};

Controller.prototype.showConnection = function () {
  var e = this.engine;
  if (!this.connected) {
    this.ui.connection("Engine not running (expected on " + core.ENGINE_HOST + ":" + core.ENGINE_PORT +
                       "; replies to port " + this.replyPort + ")");
  } else {
    this.ui.connection("Engine " + (e.version || "?") + (e.model ? ", model " + e.model : "") +
                       " (port " + this.replyPort + ")");
  }
};

// ---- controls ---------------------------------------------------------------------------------------

Controller.prototype.set = function (name, value) {
  var v = Number(value);
  if (this.settings.hasOwnProperty(name) && isFinite(v)) {
    this.settings[name] = v;
  }
};

Controller.prototype.press = function (verb, value) {
  if (value !== undefined && Number(value) === 0) {
    return; // a button's release
  }
  if (verb === "cancel") {
    this.cancel();
  } else if (core.RENDER_VERBS.indexOf(verb) >= 0) {
    this.render(verb);
  }
};

Controller.prototype.render = function (verb) {
  var sel, region, params, id, job, settings, metre;
  if (!this.connected) {
    this.ui.status("Engine not running: start it with 'jukebox-bridge serve', then try again.");
    this.tick();
    return;
  }
  try {
    sel = this.live.readSelection();
  } catch (e) {
    this.ui.status("Could not read the selected clip: " + e.message);
    return;
  }
  if (sel.error) {
    this.ui.status(SELECTION_ERRORS[sel.error] || sel.error);
    return;
  }
  region = core.clipRegion(sel.clip, sel.tempo);
  if (region.error) {
    this.ui.status(region.error);
    return;
  }
  settings = this.labelledSettings();
  metre = { numerator: sel.numerator, denominator: sel.denominator };
  params = core.renderParams(verb, sel.file_path, region, sel.tempo, settings, metre);
  id = this.nextId("r");
  job = {
    verb: verb, request: id, id: "", sent: this.now(), placed: 0, state: "sent",
    // a refine renders the whole draft file: it goes where the file starts, lined up with the draft clip
    start_beats: verb === "refine" ? core.fileStartBeats(sel.clip, region, sel.tempo) : region.start_beats,
    end_beats: region.end_beats,
    is_arrangement_clip: sel.clip.is_arrangement_clip, session_slot: sel.session_slot,
    track_id: sel.track_id, numerator: sel.numerator, denominator: sel.denominator, tempo: sel.tempo,
    source_path: sel.file_path, artist: settings.artist, genre: settings.genre,
    session_track: 0, new_tracks: 0, place_on: this.settings.place_on, caps: null
  };
  this.pending[id] = job;
  this.send(core.requestMessage(verb, this.replyPort, id, params));
  this.ui.progress(0);
  this.ui.status(VERB_NAMES[verb] + ": sent " + region.length.toFixed(2) + " s of '" +
                 (sel.clip_name || "clip") + "'" +
                 (verb !== "rerender" && verb !== "refine" &&
                  core.lengthSeconds(settings, sel.tempo, metre) > core.MAX_SECONDS ?
                  " (length capped at the engine's " + core.MAX_SECONDS + " s)" : ""));
};

Controller.prototype.labelledSettings = function () {
  var s = {};
  var k;
  for (k in this.settings) {
    if (this.settings.hasOwnProperty(k)) {
      s[k] = this.settings[k];
    }
  }
  s.artist = this.labels.artist.value;
  s.genre = this.labels.genre.value;
  return s;
};

Controller.prototype.cancel = function () {
  var i, job;
  for (i = this.order.length - 1; i >= 0; i--) {
    job = this.jobs[this.order[i]];
    if (job.state === "accepted") {
      this.send(core.requestMessage("cancel", this.replyPort, this.nextId("c"), { job_id: job.id }));
      this.ui.status("Cancelling " + VERB_NAMES[job.verb] + " (" + job.id + ")");
      return;
    }
  }
  this.ui.status("Nothing to cancel.");
};

// ---- artist and genre menus -------------------------------------------------------------------------

Controller.prototype.requestLabels = function (kind) {
  var l = this.labels[kind];
  l.request = this.nextId(kind.charAt(0));
  this.send(core.requestMessage(kind + "s", this.replyPort, l.request,
                                { query: l.query, offset: 0, limit: core.MENU_LIMIT }));
};

Controller.prototype.query = function (kind, q) {
  this.labels[kind].query = q;
  if (this.connected) {
    this.requestLabels(kind);
  }
};

Controller.prototype.showMenu = function (kind) {
  var l = this.labels[kind];
  var index = l.value ? l.items.indexOf(l.value) : 0;
  this.ui.menu(kind, l.items, index < 0 ? 0 : index);
};

Controller.prototype.pick = function (kind, index) {
  var l = this.labels[kind];
  var item = l.items[Math.floor(Number(index))];
  if (item === undefined) {
    return;
  }
  l.value = item === core.DEFAULT_LABEL ? "" : item;
  // pattr stores a message: a name, or the default's label (an empty symbol is no message)
  this.ui.store(kind, l.value || core.DEFAULT_LABEL);
};

// The saved name (a stored pattr parameter) arrives at load, or echoes what pick() stored.
Controller.prototype.restore = function (kind, name) {
  var l = this.labels[kind];
  if (name === core.DEFAULT_LABEL) {
    name = "";
  }
  if (name === l.value) {
    return;
  }
  l.value = name;
  if (l.value && l.items.indexOf(l.value) < 0) {
    l.items = [core.DEFAULT_LABEL, l.value].concat(l.items.slice(1));
  }
  this.showMenu(kind);
};

// ---- replies ----------------------------------------------------------------------------------------

Controller.prototype.onReply = function (address, args) {
  var r = core.parseReply(address, args);
  var handler;
  if (!r) {
    return false;
  }
  this.lastSeen = this.now();
  handler = this["on_" + r.type];
  if (handler) {
    handler.call(this, r);
  }
  return true;
};

Controller.prototype.on_hello = function (r) {
  var wasConnected = this.connected;
  this.connected = true;
  this.engine.version = r.version;
  if (!wasConnected) {
    this.showConnection();
    this.send(core.requestMessage("info", this.replyPort, this.nextId("i"), null));
    this.requestLabels("artist");
    this.requestLabels("genre");
  }
};

Controller.prototype.on_info = function (r) {
  var info = r.info || {};
  this.engine.info = info;
  this.engine.model = info.model ? String(info.model) : "";
  if (info.version) {
    this.engine.version = String(info.version);
  }
  this.showConnection();
  if (info.protocol !== undefined && info.protocol !== core.PROTOCOL) {
    this.ui.status("The engine speaks protocol " + info.protocol + "; this device speaks " + core.PROTOCOL +
                   ": update one of them.");
  }
};

Controller.prototype.onLabels = function (kind, r) {
  var l = this.labels[kind];
  if (r.id !== l.request || !r.page || !r.page.names) {
    return; // a stale page (the query changed since)
  }
  l.items = core.menuItems(r.page.names, l.value);
  this.showMenu(kind);
};

Controller.prototype.on_artists = function (r) {
  this.onLabels("artist", r);
};

Controller.prototype.on_genres = function (r) {
  this.onLabels("genre", r);
};

Controller.prototype.on_accepted = function (r) {
  var job = this.pending[r.id];
  if (!job) {
    return;
  }
  delete this.pending[r.id];
  job.id = r.job;
  job.state = "accepted";
  this.jobs[r.job] = job;
  this.order.push(r.job);
  this.ui.status(VERB_NAMES[job.verb] + ": accepted as " + r.job);
};

Controller.prototype.on_progress = function (r) {
  var job = this.jobs[r.job];
  if (!job || job.state !== "accepted") {
    return;
  }
  this.ui.progress(Math.round(r.fraction * 100));
  this.ui.status(VERB_NAMES[job.verb] + ": " + core.progressText(r));
};

Controller.prototype.on_done = function (r) {
  var job = this.jobs[r.job];
  if (!job) {
    return;
  }
  this.place(job, r);
};

// Put one rendered take into the Set, where core.placement says, never over a clip of the user's.
Controller.prototype.place = function (job, r) {
  var plan, version, where, name, forms, placed, note;
  try {
    if (!job.caps) {
      job.caps = this.live.capabilities(job.track_id);
    }
    plan = core.placement(job, r.take, job.caps, job.place_on);
    if (plan.mode === "none") {
      version = core.versionString(this.safeVersion());
      this.ui.status("Live " + version + " cannot add clips from Max for Live (needs Live " +
                     core.versionString(core.MIN_VERSION_ARRANGEMENT) + " or later). Take " + r.take +
                     " is at " + r.path);
      return;
    }
    name = core.clipName(VERB_NAMES[job.verb], r.take, job.artist, job.genre);
    forms = core.pathForms(r.path, job.source_path);
    if (plan.mode === "arrangement") {
      where = this.arrangementTrack(job, plan, r);
      placed = this.live.placeInArrangement(where.track, forms, plan.position_beats);
      note = where.note;
      this.finish(job, where.track, placed.clip_id, name, r.take);
      this.ui.status(VERB_NAMES[job.verb] + ": take " + r.take + " placed at bar " +
                     core.beatLabel(plan.position_beats, job.numerator, job.denominator) + note);
    } else {
      if (!job.session_track) {
        job.session_track = this.live.newAudioTrack("Jukebox " + VERB_NAMES[job.verb], this.indexBelow(job));
      }
      placed = this.live.placeInSession(job.session_track, plan.slot, forms);
      this.finish(job, job.session_track, placed.clip_id, name, r.take);
      this.ui.status(VERB_NAMES[job.verb] + ": take " + r.take + " placed in Session slot " + (placed.slot + 1) +
                     (job.is_arrangement_clip ? " (this Live cannot add Arrangement clips)" : ""));
    }
    job.placed += 1;
  } catch (e) {
    this.ui.status("Could not place take " + r.take + ": " + e.message + ". The file is " + r.path);
  }
};

// Where a new track for this job goes: right below the source track, after the job's earlier ones.
Controller.prototype.indexBelow = function (job) {
  var index = this.live.trackIndex(job.track_id);
  return index < 0 ? -1 : index + 1 + job.new_tracks;
};

// The track for an Arrangement take: the clip's own track when asked for and the span the take
// covers there is free; else a new track below the source track (said in the status line).
Controller.prototype.arrangementTrack = function (job, plan, r) {
  var start = plan.position_beats;
  var end = start + core.secondsToBeats(r.length > 0 ? r.length : 0, job.tempo);
  var note = "";
  var track;
  if (plan.track === "clip") {
    if (core.spanFree(this.live.arrangementClips(job.track_id), start, end)) {
      return { track: job.track_id, note: "" };
    }
    note = " on a new track (a clip already sits there on the clip's track)";
  }
  track = this.live.newAudioTrack("Jukebox " + VERB_NAMES[job.verb] + " " + r.take, this.indexBelow(job));
  job.new_tracks += 1;
  if (!core.spanFree(this.live.arrangementClips(track), start, end)) {
    throw new Error("the new track is not empty");
  }
  return { track: track, note: note };
};

// Name the clip, play it as rendered (unwarped), and show the first take of the job in the Detail View.
// The clip is placed by now: a refusal here is said in the Max window, not reported as a failed take.
Controller.prototype.finish = function (job, trackId, clipId, name, take) {
  try {
    this.live.finishClip(clipId, name);
    if (!job.selected) {
      this.live.select(trackId, clipId);
      job.selected = take;
    }
  } catch (e) {
    this.warn("take " + take + " is placed, but Live refused to set it up: " + e.message);
  }
};

Controller.prototype.safeVersion = function () {
  try {
    return this.live.liveVersion();
  } catch (e) {
    return [];
  }
};

Controller.prototype.on_finished = function (r) {
  var job = this.jobs[r.job];
  if (!job) {
    return;
  }
  job.state = r.state;
  if (r.state === "done") {
    this.ui.progress(100);
    if (job.placed === r.takes) {
      this.ui.status(VERB_NAMES[job.verb] + ": done, " + job.placed + (job.placed === 1 ? " take" : " takes") +
                     " placed." + (job.warnings ? " Warning: " + job.warnings.join(" ") : ""));
    }
  } else {
    this.ui.progress(0);
    if (r.state === "cancelled") {
      this.ui.status(VERB_NAMES[job.verb] + ": cancelled.");
    }
  }
};

// A request the engine accepted with a caveat the producer allowed (a truncated source): said now, and again
// with the job's result, since the progress lines would hide it.
Controller.prototype.on_warning = function (r) {
  var job = this.jobs[r.job];
  if (!job) {
    return;
  }
  job.warnings = (job.warnings || []).concat([r.message]);
  this.ui.status(VERB_NAMES[job.verb] + ": warning: " + r.message);
  this.warn(r.message);
};

Controller.prototype.on_error = function (r) {
  var job = this.pending[r.id] || this.jobs[r.id];
  if (this.pending[r.id]) {
    delete this.pending[r.id];
  }
  if (job && job.state === "accepted" && r.code === "cancelled") {
    return; // finished ... cancelled says it
  }
  if (job) {
    job.state = "failed";
    this.ui.progress(0);
  }
  this.ui.status((job ? VERB_NAMES[job.verb] + " failed: " : "Engine error: ") + r.message + " [" + r.code + "]");
};

Controller.prototype.on_cancelled = function (r) {
  if (r.count === 0) {
    this.ui.status("Nothing was cancelled (the job had already finished).");
  }
};

Controller.prototype.on_engine = function (r) {
  if (r.state === "stopping") {
    this.connected = false;
    this.showConnection();
  }
};

function create(deps) {
  return new Controller(deps);
}

exports.create = create;
exports.HELLO_TIMEOUT_MS = HELLO_TIMEOUT_MS;
exports.REQUEST_TIMEOUT_MS = REQUEST_TIMEOUT_MS;
exports.SELECTION_ERRORS = SELECTION_ERRORS;
