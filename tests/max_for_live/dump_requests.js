// Prints, as JSON, every OSC message the device sends in a scripted session (hello, info, label
// searches, continue/prime/rerender in seconds and in bars, with labels, cancel), plus jb_core's table
// of reply arguments. tests/bridge/test_max_for_live.py feeds them to the engine's own parser.
"use strict";

const path = require("path");
const { loadDevice, SRC } = require("./max_js");
const { makeSet } = require("./fake_live");
const core = require(path.join(SRC, "jb_core.js"));

const set = makeSet({ clip: { warping: 1, start_time: 8, end_time: 24, start_marker: 0, end_marker: 32,
                              warp_markers: [{ beat_time: 0, sample_time: 0 }, { beat_time: 32, sample_time: 16 }] } });
const d = loadDevice({ LiveAPI: set.world.LiveAPI });
d.send("samplerate", 96000);
d.send("bang");
d.reply("/jukebox/hello", d.on(0)[0][2], "0.1.0", 1);
d.send("artist_query", "text", "bea");
d.send("stored_genre", "rock");
d.send("press", "continue", 1);
d.send("length_unit", 1);
d.send("takes", 8);
d.send("temperature", 2);
d.send("quality", 0);
d.send("press", "prime", 1);
d.send("press", "rerender", 1);
const last = d.on(0).filter((m) => m[0] === "/jukebox/rerender").pop();
d.reply("/jukebox/accepted", last[2], "job-1");
d.send("press", "cancel", 1);
process.stdout.write(JSON.stringify({ messages: d.on(0), replies: core.REPLY_ARGS }));
