// jb_main.js: the interface for Max. The [js jb_main.js] object in JukeboxBridge.maxpat runs it.
// Each function below is a message the patch sends; all behaviour lives in jb_controller.js,
// all Live access in jb_live.js, all pure logic in jb_core.js. Runs in Max 8/9's js object (ES5).
//
// Inlet 0: control messages (from the live.* controls through [prepend NAME], dspstate~, live.thisdevice)
// Inlet 1: engine replies from [udpreceive], e.g. "/jukebox/done job-1 1 /path/take1.wav 12.5 10."
"use strict";

autowatch = 1;
inlets = 2;
outlets = 9;

var OUT_OSC = 0; // -> [udpsend 127.0.0.1 9130]
var OUT_STATUS = 1; // -> status line (comment): set <text>
var OUT_CONNECTION = 2; // -> connection line (comment): set <text>
var OUT_PROGRESS = 3; // -> progress bar (live.slider): set <0..100>
var OUT_ARTIST_MENU = 4; // -> artist live.menu: _parameter_range ..., set <index>
var OUT_GENRE_MENU = 5; // -> genre live.menu
var OUT_ARTIST_STORE = 6; // -> [pattr] "Artist Name": <name>
var OUT_GENRE_STORE = 7; // -> [pattr] "Genre Name": <name>
var OUT_LISTEN = 8; // -> [udpreceive]: port <n>

setinletassist(0, "controls (temperature, takes, quality, length..., press VERB, samplerate)");
setinletassist(1, "engine replies from udpreceive");
setoutletassist(OUT_OSC, "OSC requests to udpsend");
setoutletassist(OUT_STATUS, "status text");
setoutletassist(OUT_CONNECTION, "connection text");
setoutletassist(OUT_PROGRESS, "progress 0..100");
setoutletassist(OUT_ARTIST_MENU, "artist menu items");
setoutletassist(OUT_GENRE_MENU, "genre menu items");
setoutletassist(OUT_ARTIST_STORE, "artist name to store");
setoutletassist(OUT_GENRE_STORE, "genre name to store");
setoutletassist(OUT_LISTEN, "reply port for udpreceive");

var controllerModule = require("jb_controller");
var liveModule = require("jb_live");
var core = require("jb_core");

var ui = {
  status: function (s) { outlet(OUT_STATUS, "set", s); },
  connection: function (s) { outlet(OUT_CONNECTION, "set", s); },
  progress: function (pct) { outlet(OUT_PROGRESS, "set", pct); },
  menu: function (kind, items, index) {
    var o = kind === "artist" ? OUT_ARTIST_MENU : OUT_GENRE_MENU;
    outlet(o, ["_parameter_range"].concat(items));
    outlet(o, "set", index);
  },
  store: function (kind, name) { outlet(kind === "artist" ? OUT_ARTIST_STORE : OUT_GENRE_STORE, name); },
  listen: function (port) { outlet(OUT_LISTEN, "port", port); }
};

// Reply ports held by the device instances of this Max (one Max runs every device of the Set):
// a Max Global is shared by all js objects, so two instances never listen on the same port. The
// list is kept as a string ("9131 9140"), a type every js context reads the same way.
var registry = new Global("jukebox_bridge_reply_ports");

function takenPorts() {
  var taken = {};
  var list = String(registry.taken || "").split(" ");
  var i;
  for (i = 0; i < list.length; i++) {
    if (list[i]) {
      taken[list[i]] = 1;
    }
  }
  return taken;
}
takenPorts.local = 1;

function storePorts(taken) {
  var list = [];
  var k;
  for (k in taken) {
    if (taken.hasOwnProperty(k)) {
      list.push(k);
    }
  }
  registry.taken = list.join(" ");
}
storePorts.local = 1;

var ports = {
  claim: function (preferred) {
    var taken = takenPorts();
    var port = core.claimPort(taken, preferred);
    if (port) {
      taken[String(port)] = 1;
      storePorts(taken);
    }
    return port;
  },
  release: function (port) {
    var taken = takenPorts();
    delete taken[String(port)];
    storePorts(taken);
  }
};

var ctl = controllerModule.create({
  send: function (list) { outlet(OUT_OSC, list); },
  ui: ui,
  live: liveModule.create(LiveAPI),
  now: function () { return new Date().getTime(); },
  ports: ports,
  warn: function (s) { post("Jukebox Bridge: " + s + "\n"); }
});

var timer = null;

function words(args) {
  var a = Array.prototype.slice.call(args);
  if (a.length && a[0] === "text") {
    a.shift(); // textedit prefixes its contents with "text"
  }
  return a.join(" ");
}
words.local = 1;

function tick() {
  ctl.tick();
}
tick.local = 1;

// live.thisdevice: the device is loaded and the Live API is ready.
function bang() {
  ctl.start();
  if (!timer) {
    timer = new Task(tick);
    timer.interval = 3000;
    timer.repeat();
  }
}

function samplerate(sr) { ctl.set("sample_rate", sr); }
function temperature(v) { ctl.set("temperature", v); }
function takes(v) { ctl.set("takes", v); }
function quality(i) { ctl.set("quality", i); }
function length_unit(i) { ctl.set("length_unit", i); }
function length_seconds(v) { ctl.set("length_seconds", v); }
function length_bars(v) { ctl.set("length_bars", v); }
function place_on(i) { ctl.set("place_on", i); }
function press(verb, value) { ctl.press(verb, value); }
function artist_index(i) { ctl.pick("artist", i); }
function genre_index(i) { ctl.pick("genre", i); }
function artist_query() { ctl.query("artist", words(arguments)); }
function genre_query() { ctl.query("genre", words(arguments)); }
function stored_artist() { ctl.restore("artist", words(arguments)); }
function stored_genre() { ctl.restore("genre", words(arguments)); }
function reply_port(n) { ctl.listen(n); }

// Engine replies: the OSC address is the message name.
function anything() {
  var args = Array.prototype.slice.call(arguments);
  if (!ctl.onReply(messagename, args)) {
    post("jb_main: unknown message " + messagename + "\n");
  }
}

// The device is deleted (or its Set closed): stop the timer, cancel this device's running jobs,
// free its reply port. The device is its own job runner; nothing it started outlives it.
function notifydeleted() {
  if (timer) {
    timer.cancel();
    timer = null;
  }
  ctl.shutdown();
}
