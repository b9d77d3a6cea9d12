// Runs the device's entry script the way Max's [js] object does, inside a Node vm sandbox.
//
// The sandbox has Max's js globals: autowatch, inlets, outlets, inlet, messagename, outlet(), post(),
// error(), setinletassist(), setoutletassist(), arrayfromargs(), jsarguments, Task, LiveAPI and
// Global (shared by every device loaded with the same `max` process object, as Max shares it among
// all js objects), plus Max's require(): each module runs in its own bare context with only `exports`
// and `require` (so a module that reached for outlet/post/LiveAPI would fail here).
// With `files` ({name: text}, e.g. read out of a frozen .amxd) scripts come from there and nowhere else.
// Messages are delivered as Max does: a function named like the message, else anything(); functions
// marked `.local = 1` are not reachable from the patch.
"use strict";

const fs = require("fs");
const path = require("path");
const vm = require("vm");

// JB_M4L_SRC points the tests at another copy of the scripts (e.g. an older revision, to see a test fail).
const SRC = process.env.JB_M4L_SRC || path.resolve(__dirname, "../../max_for_live/src");

// Max's Task, driven by hand (tick()) or by real timers (realTime: true).
function makeTaskClass(registry, realTime) {
  return class Task {
    constructor(fn, obj, args) {
      this.fn = fn;
      this.obj = obj;
      this.args = args;
      this.interval = 500;
      this.running = false;
      this.handle = null;
      registry.push(this);
    }
    execute() { this.fn.apply(this.obj, this.args || []); }
    repeat() {
      this.running = true;
      if (realTime) this.handle = setInterval(() => this.execute(), this.interval);
    }
    schedule(delay) {
      if (realTime) this.handle = setTimeout(() => this.execute(), delay || 0);
    }
    cancel() {
      this.running = false;
      if (this.handle) { clearInterval(this.handle); clearTimeout(this.handle); this.handle = null; }
    }
  };
}

function readerFor(srcDir, files) {
  if (!files) return (name) => fs.readFileSync(path.join(srcDir, name), "utf8");
  return (name) => {
    if (!Object.prototype.hasOwnProperty.call(files, name)) throw new Error(`js: can't find file ${name}`);
    return files[name];
  };
}

function loadModuleFactory(read) {
  const cache = new Map();
  function req(name) {
    const file = name.endsWith(".js") ? name : name + ".js";
    if (cache.has(file)) return cache.get(file);
    const exportsObj = {};
    cache.set(file, exportsObj);
    const context = vm.createContext({ exports: exportsObj, require: req });
    vm.runInContext(read(file), context, { filename: file });
    return exportsObj;
  }
  return req;
}

// One Max application: the Global objects its js instances share.
function maxProcess() {
  return { globals: {} };
}

// Load the entry script. Options: LiveAPI (constructor), now() for Date, realTime (Task timers),
// onOutlet(index, atoms) hook, entry (default "jb_main.js"), max (a maxProcess() shared with other
// devices), files ({name: text} instead of the source folder).
function loadDevice(opts = {}) {
  const outlets = [];
  const posts = [];
  const tasks = [];
  const srcDir = opts.srcDir || SRC;
  const read = readerFor(srcDir, opts.files);
  const max = opts.max || maxProcess();
  const entry = opts.entry || "jb_main.js";
  const sandbox = {
    autowatch: 0,
    inlets: 1,
    outlets: 1,
    inlet: 0,
    messagename: "",
    jsarguments: [entry].concat(opts.jsarguments || []),
    outlet(index, ...args) {
      const atoms = [].concat(...args.map((a) => (Array.isArray(a) ? a : [a])));
      if (!(Number.isInteger(index) && index >= 0 && index < sandbox.outlets)) {
        throw new Error(`outlet(${index}) out of range: the script declares ${sandbox.outlets} outlets`);
      }
      outlets.push({ outlet: index, atoms });
      if (opts.onOutlet) opts.onOutlet(index, atoms);
    },
    post(...args) { posts.push(args.join(" ")); },
    error(...args) { posts.push("error: " + args.join(" ")); },
    setinletassist() {},
    setoutletassist() {},
    arrayfromargs(a) { return Array.prototype.slice.call(a); },
    Task: makeTaskClass(tasks, !!opts.realTime),
    LiveAPI: opts.LiveAPI || function LiveAPI() { throw new Error("no LiveAPI in this test"); },
    Global: function Global(name) {
      if (!Object.prototype.hasOwnProperty.call(max.globals, name)) max.globals[name] = {};
      return max.globals[name];
    },
    require: loadModuleFactory(read),
  };
  // Date is the test process's own (so node:test's mock timers can move the device's clock).
  Object.defineProperty(sandbox, "Date", { get: () => globalThis.Date, enumerable: false });
  const context = vm.createContext(sandbox);
  vm.runInContext(read(entry), context, { filename: entry });

  function deliver(inletIndex, name, args) {
    context.inlet = inletIndex;
    context.messagename = name;
    const fn = context[name];
    if (typeof fn === "function" && !fn.local && !/^[/]/.test(name)) return fn(...args);
    if (typeof context.anything !== "function") throw new Error(`no handler for message ${name}`);
    return context.anything(...args);
  }

  return {
    context,
    outlets,
    posts,
    tasks,
    // a message into inlet 0 (controls), e.g. send("temperature", 0.9)
    send: (name, ...args) => deliver(0, name, args),
    // an engine reply into inlet 1 (what udpreceive outputs), e.g. reply("/jukebox/hello", "id", "0.1", 1)
    reply: (address, ...args) => deliver(1, address, args),
    tick: () => tasks.filter((t) => t.running).forEach((t) => t.execute()),
    stop: () => tasks.forEach((t) => t.cancel()),
    on: (index) => outlets.filter((o) => o.outlet === index).map((o) => o.atoms),
    clear: () => { outlets.length = 0; },
  };
}

module.exports = { loadDevice, maxProcess, SRC };
