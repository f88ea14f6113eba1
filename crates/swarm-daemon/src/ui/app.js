// swarm's web UI: plain JavaScript modules, no build step. The torrent list
// comes live over Server-Sent Events (/api/v1/events: the list, then what
// changed each second); a torrent's page
// polls /api/v1/torrents/ID every second (files, trackers, neighbours,
// piece map).

const $ = (sel) => document.querySelector(sel);
const api = (path, opts = {}) =>
  fetch(path, { ...opts, headers: { "Content-Type": "application/json", ...(opts.headers || {}) } })
    .then(async (r) => {
      const body = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
      return body;
    });

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
const rate = (n) => (n > 0 ? `${bytes(n)}/s` : "–");
function eta(s) {
  if (s.left === 0) return "done";
  if (!(s.download_rate > 0)) return "∞";
  let t = Math.round(s.left / s.download_rate);
  const h = Math.floor(t / 3600); t %= 3600;
  const m = Math.floor(t / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${t % 60} s` : `${t % 60} s`;
}
function progress(s) {
  // Of what is wanted (skipped files left out).
  return s.wanted_length ? (s.wanted_length - s.left) / s.wanted_length : 1;
}
function stateOf(t) {
  if (t.queued) return "queued";
  if (t.paused && t.status.state !== "checking") return t.status.complete ? "finished" : "stopped";
  return t.status.state;
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function say(text) { $("#message").textContent = text || ""; }
const act = (p, opts) => api(p, opts).then(() => say("")).catch((e) => say(e.message));

// ---- the list ----
function renderList(torrents) {
  const body = $("#torrents tbody");
  body.replaceChildren(...torrents.map((t) => {
    const s = t.status, p = progress(s);
    const bar = el("div", { class: "bar" + (p >= 1 ? " done" : "") }, el("div", { style: `width:${(p * 100).toFixed(1)}%` }));
    return el("tr", { "data-id": t.id, "data-state": stateOf(t) },
      el("td", {}, el("a", { href: `#/torrent/${t.id}`, class: "name" }, s.name)),
      el("td", {}, bar, ` ${(p * 100).toFixed(1)}%`),
      el("td", { class: "state" }, stateOf(t)),
      el("td", { class: "num" }, rate(s.download_rate)),
      el("td", { class: "num" }, rate(s.upload_rate)),
      el("td", { class: "num" }, eta(s)),
      el("td", { class: "num" }, s.peers),
      el("td", {},
        el("button", { class: "start", onclick: () => act(`/api/v1/torrents/${t.id}/start`, { method: "POST" }) }, "Start"),
        el("button", { class: "stop", onclick: () => act(`/api/v1/torrents/${t.id}/stop`, { method: "POST" }) }, "Stop"),
        el("button", { class: "remove", onclick: () => act(`/api/v1/torrents/${t.id}`, { method: "DELETE" }) }, "Remove"),
        el("button", { class: "remove-data", onclick: () => {
          if (confirm(`Remove ${s.name} and delete its data?`)) act(`/api/v1/torrents/${t.id}?delete_data=true`, { method: "DELETE" });
        } }, "Remove + data")));
  }));
  $("#empty").hidden = torrents.length > 0;
}

// The list as the event stream left it: a snapshot at connect (`torrents`),
// then only what changed (`diff`: added, changed fields, removed ids).
let torrents = new Map();
function applyDiff(d) {
  for (const id of d.removed) torrents.delete(id);
  for (const t of d.added) torrents.set(t.id, t);
  for (const c of d.changed) {
    const t = torrents.get(c.id);
    if (!t) continue;
    for (const [k, v] of Object.entries(c)) {
      if (k === "status") Object.assign(t.status, v);
      else t[k] = v;
    }
  }
}
const shown = () => [...torrents.values()].sort((a, b) => a.id - b.id);

function listen() {
  const es = new EventSource("/api/v1/events");
  es.addEventListener("torrents", (ev) => {
    $("#conn").textContent = "live";
    torrents = new Map(JSON.parse(ev.data).torrents.map((t) => [t.id, t]));
    renderList(shown());
  });
  es.addEventListener("diff", (ev) => {
    applyDiff(JSON.parse(ev.data));
    renderList(shown());
  });
  es.onerror = () => { $("#conn").textContent = "reconnecting…"; };
}

// ---- adding ----
$("#add-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("#add-file").files[0];
  if (!file) return say("Choose a .torrent file first.");
  const buf = new Uint8Array(await file.arrayBuffer());
  let bin = "";
  for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode(...buf.subarray(i, i + 0x8000));
  try {
    const r = await api("/api/v1/torrents", {
      method: "POST",
      body: JSON.stringify({ metainfo: btoa(bin), paused: $("#add-paused").checked }),
    });
    say(r.duplicate ? `${r.name} is already there.` : "");
    $("#add-file").value = "";
  } catch (e) { say(e.message); }
});

// ---- a torrent's page ----
let pageTimer = null;
function drawPieceMap(map, total) {
  const canvas = $("#piece-map"), ctx = canvas.getContext("2d");
  const n = total || 1;
  const cols = Math.min(n, 192), rows = Math.ceil(n / cols);
  const cw = canvas.width / cols, ch = Math.max(4, Math.min(24, 480 / rows));
  canvas.height = Math.ceil(rows * ch);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!map) return;
  const have = (i) => (parseInt(map.have.substr((i >> 3) * 2, 2), 16) >> (7 - (i & 7))) & 1;
  const downloading = new Set(map.downloading);
  const maxAvail = Math.max(1, ...map.availability);
  for (let i = 0; i < n; i++) {
    let color;
    if (have(i)) color = "#2e9e57";
    else if (downloading.has(i)) color = "#f0a020";
    else {
      const a = map.availability[i] || 0;
      if (a === 0) color = "#d8dbe2";
      else {
        const k = 0.35 + 0.65 * (a / maxAvail);
        color = `rgb(${Math.round(200 - 169 * k)},${Math.round(215 - 152 * k)},${Math.round(240 - 97 * k)})`;
      }
    }
    ctx.fillStyle = color;
    ctx.fillRect((i % cols) * cw, Math.floor(i / cols) * ch, Math.max(1, cw - 1), Math.max(1, ch - 1));
  }
}

function renderTorrent(t) {
  const s = t.status;
  $("#t-name").textContent = s.name;
  $("#t-summary").textContent =
    `${stateOf(t)} · ${(progress(s) * 100).toFixed(1)}% of ${bytes(s.total_length)} · ` +
    `↓ ${rate(s.download_rate)} ↑ ${rate(s.upload_rate)} · ETA ${eta(s)} · ${s.peers} peers · in ${t.download_dir}`;
  const map = t.piece_map;
  const avail = map ? map.availability : [];
  const sum = avail.reduce((a, b) => a + b, 0);
  const stats = $("#piece-stats");
  stats.dataset.have = s.pieces_have;
  stats.dataset.total = s.pieces_total;
  stats.dataset.downloading = map ? map.downloading.length : 0;
  stats.dataset.availabilityMax = avail.length ? Math.max(...avail) : 0;
  stats.textContent = `${s.pieces_have} of ${s.pieces_total} pieces · ${map ? map.downloading.length : 0} downloading · ` +
    `held by neighbours: mean ${avail.length ? (sum / avail.length).toFixed(2) : 0}, max ${stats.dataset.availabilityMax}`;
  drawPieceMap(map, s.pieces_total);
  $("#neighbours tbody").replaceChildren(...s.neighbours.map((n) => el("tr", {},
    el("td", {}, n.addr), el("td", {}, n.client),
    el("td", { class: `choke choke-${n.choke}` }, n.choke),
    el("td", { class: "reason" }, n.reason),
    el("td", { class: "num" }, `${n.choke_for_s.toFixed(0)} s`),
    el("td", { class: "num" }, rate(n.download_rate)),
    el("td", { class: "num" }, rate(n.upload_rate)),
    el("td", { class: "num" }, n.pieces),
    el("td", {}, [n.unchokes_us ? "unchokes us" : "chokes us", n.interested ? "interested" : "", n.we_are_interested ? "we want" : "", n.outgoing ? "out" : "in"].filter(Boolean).join(", ")))));
  // Rebuilt only when the files changed: a box being clicked stays put.
  const files = JSON.stringify(t.files);
  if (files !== shownFiles) {
    shownFiles = files;
    renderFiles(t);
  }
  $("#trackers").replaceChildren(...(t.trackers.flat().length ? t.trackers.flatMap((tier, i) => tier.map((u) => el("li", {}, `tier ${i}: ${u}`)))
    : [el("li", { class: "muted" }, "no trackers")]));
}

let shownFiles = null;
function renderFiles(t) {
  $("#files tbody").replaceChildren(...t.files.map((f) => el("tr", { "data-index": f.index, "data-wanted": f.wanted },
    el("td", { class: "num" }, f.index), el("td", {}, f.path), el("td", { class: "num" }, bytes(f.length)),
    el("td", {}, el("label", {},
      el("input", { type: "checkbox", class: "want", "data-index": f.index, ...(f.wanted ? { checked: "" } : {}),
        onchange: (ev) => act(`/api/v1/torrents/${t.id}/files`, { method: "POST",
          body: JSON.stringify(ev.target.checked ? { wanted: [f.index] } : { skipped: [f.index] }) }) }),
      f.wanted ? " wanted" : " skipped")),
    el("td", {}, f.priority))));
}

function showTorrent(id) {
  $("#list-view").hidden = true;
  $("#torrent-view").hidden = false;
  const load = () => api(`/api/v1/torrents/${id}`).then(renderTorrent).catch((e) => say(e.message));
  load();
  pageTimer = setInterval(load, 1000);
}

function route() {
  clearInterval(pageTimer);
  shownFiles = null;
  say("");
  const m = location.hash.match(/^#\/torrent\/(\d+)$/);
  if (m) return showTorrent(m[1]);
  $("#list-view").hidden = false;
  $("#torrent-view").hidden = true;
}
window.addEventListener("hashchange", route);
route();
listen();
