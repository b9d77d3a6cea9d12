// Jukebox Bridge web panel: plain JS, no build step. Everything it offers (modes, qualities, parameter ranges,
// limits) comes from GET /api/info, the engine's own tables; every change arrives over GET /api/events (SSE).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const state = { info: null, upload: null, peaks: null, sel: null, jobs: new Map() };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

async function api(method, url, body, raw = false) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    if (raw) opts.body = body; else { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  }
  const res = await fetch(url, opts);
  const data = await res.json().catch(() => ({ error: "bad_response", message: `HTTP ${res.status}` }));
  if (!res.ok) throw data;
  return data;
}

function showError(err) {
  const box = $("#error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = err.error ? `${err.error}: ${err.message}` : String(err.message || err);
}

const fmt = (s) => (s == null ? "" : `${Number(s).toFixed(2)} s`);
const takeUrl = (view, path) => `/api/take/${view}?path=${encodeURIComponent(path)}`;

// ------------------------------------------------------------------ info: the form and the live sliders

async function loadInfo() {
  const info = state.info = await api("GET", "/api/info");
  $("#model").textContent = `model ${info.model.model} · engine ${info.version}`;
  $("#licence").textContent = `Licence of renders: ${info.licence}` + (info.attribution ? ` · credit: ${info.attribution}` : "");
  for (const m of info.modes) $("#mode").append(el("option", { value: m, text: m }));
  for (const q of info.qualities) $("#quality").append(el("option", { value: q, text: q }));
  $("#quality").value = info.defaults.quality;
  for (const c of info.chains) if (c !== "none") $("#chain").append(el("option", { value: c, text: c }));
  const secs = $("#seconds");
  secs.value = info.defaults.seconds; secs.max = info.max_seconds;
  const params = $("#params");
  for (const p of info.params) params.append(paramRow(p));
  searchLabels("artist", ""); searchLabels("genre", "");
}

function paramRow(p) {
  // the slider's range is the parameter table's; an open low end (temperature, top-p) starts one step above it
  const step = p.integer ? 1 : (p.high - p.low) / 200;
  const input = el("input", { type: "range", id: `param-${p.name}`, name: p.name, step,
    min: p.low_open ? p.low + step : p.low, max: p.high, value: p.value, title: p.meaning });
  const out = el("output", { for: input.id, text: String(p.value) });
  input.addEventListener("input", () => { out.textContent = input.value; });
  input.addEventListener("change", async () => {
    try { await api("PUT", `/api/params/${p.name}`, { value: Number(input.value) }); showError(null); }
    catch (e) { showError(e); }
  });
  return el("div", { class: "param" }, el("label", { for: input.id, text: p.name, title: p.meaning }), input, out);
}

function setParam(name, value) {
  const input = $(`#param-${name}`);
  if (!input) return;
  input.value = value;
  input.nextElementSibling.textContent = String(value);
}

let searchTimer = null;
async function searchLabels(kind, query) {
  try {
    const res = await api("GET", `/api/labels/${kind}?limit=50&query=${encodeURIComponent(query)}`);
    $(`#${kind}s`).replaceChildren(...res.names.map((n) => el("option", { value: n })));
  } catch (e) { showError(e); }
}
for (const kind of ["artist", "genre"]) {
  $(`#${kind}`).addEventListener("input", (ev) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => searchLabels(kind, ev.target.value), 150);
  });
}

// ------------------------------------------------------------------ uploads and the waveform

async function upload(file) {
  showError(null);
  $("#selection").textContent = `uploading ${file.name}…`;
  try {
    const up = await api("PUT", `/api/uploads?name=${encodeURIComponent(file.name)}`, file, true);
    await loadRecent();
    await useUpload(up);
  } catch (e) { showError(e); $("#selection").textContent = "upload refused"; }
}

async function loadRecent() {
  const { uploads } = await api("GET", "/api/uploads");
  const sel = $("#recent");
  sel.replaceChildren(el("option", { value: "", text: "recent uploads…" }),
    ...uploads.map((u) => el("option", { value: u.name, text: `${u.name} (${u.seconds.toFixed(1)} s)` })));
  state.uploads = uploads;
}

async function useUpload(up) {
  state.upload = up; state.sel = null;
  $("#recent").value = up.name;
  const canvas = $("#waveform");
  state.peaks = await api("GET", `/api/uploads/${encodeURIComponent(up.name)}/peaks?columns=${canvas.width}`);
  drawWave(); showSelection();
}

function drawWave() {
  const canvas = $("#waveform"), ctx = canvas.getContext("2d"), p = state.peaks;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!p) return;
  const mid = canvas.height / 2, n = p.min.length;
  ctx.fillStyle = "#6ebeff";
  for (let i = 0; i < n; i++) {
    const x = (i / n) * canvas.width, w = Math.max(1, canvas.width / n);
    const top = mid - p.max[i] * mid, bottom = mid - p.min[i] * mid;
    ctx.fillRect(x, top, w, Math.max(1, bottom - top));
  }
}

function showSelection() {
  const box = $("#selection-box"), text = $("#selection"), p = state.peaks;
  if (!state.upload) return;
  if (!state.sel || !p) {
    box.hidden = true;
    text.textContent = `${state.upload.name}: ${fmt(state.upload.seconds)} · whole file (drag on the waveform to pick a region)`;
    return;
  }
  const { start, length } = state.sel, width = $("#waveform").clientWidth;
  box.hidden = false;
  box.style.left = `${(start / p.seconds) * width}px`;
  box.style.width = `${(length / p.seconds) * width}px`;
  text.textContent = `${state.upload.name}: region ${fmt(start)} + ${fmt(length)}`;
}

function secondsAt(ev) {
  const rect = $("#waveform").getBoundingClientRect();
  const f = Math.min(Math.max((ev.clientX - rect.left) / rect.width, 0), 1);
  return f * state.peaks.seconds;
}

(function dragSelect() {
  const canvas = $("#waveform");
  let from = null;
  canvas.addEventListener("mousedown", (ev) => { if (state.peaks) { from = secondsAt(ev); ev.preventDefault(); } });
  window.addEventListener("mousemove", (ev) => {
    if (from === null) return;
    const to = secondsAt(ev);
    state.sel = { start: Math.min(from, to), length: Math.abs(to - from) };
    showSelection();
  });
  window.addEventListener("mouseup", (ev) => {
    if (from === null) return;
    const to = secondsAt(ev);
    state.sel = Math.abs(to - from) < 0.05 ? null : { start: Math.min(from, to), length: Math.abs(to - from) };
    from = null;
    showSelection();
  });
})();

const drop = $("#drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault(); drop.classList.remove("over");
  if (ev.dataTransfer.files.length) upload(ev.dataTransfer.files[0]);
});
$("#file-input").addEventListener("change", (ev) => { if (ev.target.files.length) upload(ev.target.files[0]); });
$("#recent").addEventListener("change", (ev) => {
  const up = (state.uploads || []).find((u) => u.name === ev.target.value);
  if (up) useUpload(up).catch(showError);
});

// ------------------------------------------------------------------ submitting

$("#render-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError(null);
  const mode = $("#mode").value, body = { mode, quality: $("#quality").value };
  if (mode !== "generate") {
    if (!state.upload) return showError({ error: "bad_value", message: `${mode} needs a source: drop an audio file first` });
    body.upload = state.upload.name;
    if (state.sel) { body.start = round(state.sel.start); body.length = round(state.sel.length); }
  }
  for (const k of ["artist", "genre", "chain"]) { const v = $(`#${k}`).value.trim(); if (v) body[k] = v; }
  const bars = $("#bars").value, tempo = $("#tempo").value;
  if (bars && tempo) { body.bars = Number(bars); body.tempo = Number(tempo); }
  else body.seconds = Number($("#seconds").value);
  // temperature, top-p and takes are left out: the job takes the live values (the sliders), as over OSC
  try { const job = await api("POST", "/api/jobs", body); renderJob(job); }
  catch (e) { showError(e); }
});
const round = (x) => Math.round(x * 1000) / 1000;

$("#cancel-all").addEventListener("click", () => api("DELETE", "/api/jobs").catch(showError));

// ------------------------------------------------------------------ the queue

function renderJob(job) {
  state.jobs.set(job.job_id, job);
  let row = document.querySelector(`.job[data-job-id="${job.job_id}"]`);
  if (!row) {
    row = el("div", { class: "job", "data-job-id": job.job_id },
      el("div", { class: "head" },
        el("span", { class: "what" }), el("span", { class: "state" }), el("span", { class: "stage" }),
        el("div", { class: "progress" }, el("div")), el("span", { class: "eta" }),
        el("button", { type: "button", class: "cancel", text: "Cancel" })),
      el("div", { class: "err" }), el("div", { class: "takes" }));
    row.querySelector(".cancel").addEventListener("click", () =>
      api("DELETE", `/api/jobs/${job.job_id}`).catch(showError));
    insertSorted(row, job);
  }
  const labels = [job.artist, job.genre].filter(Boolean).join(" / ");
  row.className = `job ${job.state}`;
  row.querySelector(".what").textContent =
    `${job.mode} ${job.quality}${job.source ? " of " + job.source : ""}${labels ? " · " + labels : ""} · ${job.origin}`;
  row.querySelector(".state").textContent = job.state;
  row.querySelector(".stage").textContent = job.state === job.stage ? "" : job.stage;
  row.querySelector(".progress div").style.width = `${Math.round(job.fraction * 100)}%`;
  row.querySelector(".eta").textContent =
    job.eta_seconds >= 0 && (job.state === "running" || job.state === "queued") ? `ETA ${Math.round(job.eta_seconds)} s` : "";
  row.querySelector(".cancel").hidden = !(job.state === "queued" || job.state === "running");
  row.querySelector(".err").textContent = [job.error && `${job.error.code}: ${job.error.message}`,
    ...(job.warnings || []).map((w) => `warning: ${w}`)].filter(Boolean).join("\n");
  const takes = row.querySelector(".takes");
  for (const t of job.takes) {
    if (!takes.querySelector(`.take[data-take="${t.take}"]`)) takes.append(takeCard(job, t));
  }
}

function insertSorted(row, job) {
  const list = $("#jobs");
  const later = [...list.children].find((r) => (state.jobs.get(r.dataset.jobId)?.seq ?? 0) < job.seq);
  list.insertBefore(row, later || null);
}

function takeCard(job, t) {
  const url = new URL(takeUrl("audio", t.path), location.href).href;
  const card = el("div", { class: "take", "data-take": String(t.take), draggable: "true",
    title: "drag into your DAW (Chromium browsers), or use Download" });
  const copy = el("button", { type: "button", class: "copy", text: "Copy path" });
  copy.addEventListener("click", () => copyText(t.path, card.querySelector(".path")));
  const actions = el("div", { class: "actions" },
    el("strong", { text: `take ${t.take}` }), el("span", { text: fmt(t.length) }),
    el("a", { href: url, download: t.name, class: "download", text: "Download" }), copy);
  if (job.quality === "draft") {
    const refine = el("button", { type: "button", class: "refine", text: "Refine" });
    refine.addEventListener("click", () => api("POST", "/api/jobs", { mode: "refine", source: t.path })
      .then(renderJob).catch(showError));
    actions.append(refine);
  }
  card.append(
    el("img", { class: "waveform", alt: "waveform", src: takeUrl("waveform.png", t.path), draggable: "false" }),
    el("img", { class: "spectrogram", alt: "spectrogram", src: takeUrl("spectrogram.png", t.path), draggable: "false" }),
    el("audio", { controls: "", preload: "metadata", src: url }),
    actions, el("div", { class: "path", text: t.path }), el("div", { class: "provenance", text: "…" }));
  card.addEventListener("dragstart", (ev) => {
    // Chromium turns DownloadURL into a real file on drop (a DAW's track, the desktop); others get the link
    ev.dataTransfer.setData("DownloadURL", `audio/wav:${t.name}:${url}`);
    ev.dataTransfer.setData("text/uri-list", url);
    ev.dataTransfer.setData("text/plain", t.path);
    ev.dataTransfer.effectAllowed = "copy";
  });
  api("GET", takeUrl("provenance", t.path)).then((p) => {
    const bits = [`model ${p.model}`, p.artist && `artist ${p.artist}`, p.genre && `genre ${p.genre}`, `seed ${p.seed}`,
      `temperature ${p.temperature}`, `top-p ${p.top_p}`, p.adherence != null && `adherence ${p.adherence}`, p.quality,
      `licence: ${p.licence}`];
    card.querySelector(".provenance").textContent = bits.filter(Boolean).join(" · ");
  }).catch((e) => { card.querySelector(".provenance").textContent = e.message || "no provenance"; });
  return card;
}

async function copyText(text, node) {
  try { await navigator.clipboard.writeText(text); }
  catch { const r = document.createRange(); r.selectNodeContents(node); getSelection().removeAllRanges(); getSelection().addRange(r); }
}

// ------------------------------------------------------------------ the event stream

function connect() {
  const es = new EventSource("/api/events");
  const conn = $("#connection");
  es.onopen = () => { conn.textContent = "live"; conn.className = "online"; };
  es.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "offline"; };
  es.addEventListener("snapshot", (ev) => {
    const snap = JSON.parse(ev.data);
    for (const job of snap.jobs.slice().reverse()) renderJob(job);
    for (const [name, value] of Object.entries(snap.params)) setParam(name, value);
  });
  es.addEventListener("job", (ev) => renderJob(JSON.parse(ev.data)));
  es.addEventListener("param", (ev) => { const p = JSON.parse(ev.data); setParam(p.name, p.value); });
  es.addEventListener("engine", (ev) => { conn.textContent = JSON.parse(ev.data).state; conn.className = "offline"; });
}

loadInfo().then(loadRecent).then(connect).catch(showError);
