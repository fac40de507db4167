// Bloodbank console: plain JavaScript, no build step, no network beyond
// this gateway. Every text from the bus goes through textContent.
"use strict";

const main = document.getElementById("main");
const tokenInput = document.getElementById("token");
let info = { service: "", mutations: false };

tokenInput.value = sessionStorage.getItem("bbToken") || "";
tokenInput.addEventListener("input", () => sessionStorage.setItem("bbToken", tokenInput.value.trim()));

document.getElementById("goto").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = document.getElementById("goto-id").value.trim();
  if (id) location.href = "/ui/events/" + encodeURIComponent(id);
});

// el builds an element: el("a", {href: "x", class: "y"}, "text", child…).
function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) n.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
  for (const c of children) n.append(c);
  return n;
}

// api fetches JSON; an error answer throws with its "error" message.
async function api(path, opts) {
  const r = await fetch(path, opts);
  let body = {};
  try { body = await r.json(); } catch (_) { body = { error: r.status + " " + r.statusText }; }
  if (!r.ok) {
    const err = new Error(body.error || (r.status + " " + r.statusText));
    err.status = r.status;
    throw err;
  }
  return body;
}

function banner(text, cls) { return el("div", { class: "banner " + (cls || "") }, text); }

// ---- catalogue ----

async function cataloguePage() {
  document.getElementById("nav-catalogue").classList.add("active");
  main.replaceChildren(el("h1", {}, "Catalogue"), el("p", { class: "muted" }, "Every event type this service knows, by domain. Pick one for its JSON Schema and an example."));
  const grid = el("div", { class: "catalogue" });
  const list = el("div", { id: "catalogue-list" });
  const detail = el("div", { id: "catalogue-detail" }, el("p", { class: "muted" }, "No type selected."));
  grid.append(list, detail);
  main.append(grid, tailSection());
  let data;
  try { data = await api("/schemas"); } catch (e) { list.append(banner("Cannot load the catalogue: " + e.message, "error")); return; }
  const byDomain = new Map();
  for (const ev of data.events) {
    if (!byDomain.has(ev.domain)) byDomain.set(ev.domain, []);
    byDomain.get(ev.domain).push(ev);
  }
  for (const [domain, events] of [...byDomain.entries()].sort()) {
    const ul = el("ul");
    for (const ev of events) {
      const a = el("a", { href: "#" + ev.routing_key, "data-key": ev.routing_key }, ev.routing_key, el("span", { class: "kind " + ev.kind }, ev.kind));
      a.addEventListener("click", (e) => { e.preventDefault(); showType(ev.routing_key, a, detail); });
      ul.append(el("li", {}, a));
    }
    list.append(el("details", { open: byDomain.size <= 4 }, el("summary", {}, domain + " (" + events.length + ")"), ul));
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  const first = list.querySelector(`a[data-key="${CSS.escape(wanted)}"]`);
  if (first) showType(wanted, first, detail);
}

async function showType(key, link, detail) {
  document.querySelectorAll(".catalogue li a.active").forEach((a) => a.classList.remove("active"));
  link.classList.add("active");
  history.replaceState(null, "", "#" + key);
  detail.replaceChildren(el("p", { class: "muted" }, "Loading " + key + "…"));
  try {
    const t = await api("/schemas/" + encodeURIComponent(key));
    detail.replaceChildren(
      el("h2", {}, t.routing_key, el("span", { class: "kind " + t.kind }, t.kind)),
      el("p", {}, t.description || ""),
      t.result ? el("p", {}, "Answered by ", el("code", {}, t.result)) : null,
      t.aliases && t.aliases.length ? el("p", { class: "muted" }, "Also known as " + t.aliases.join(", ")) : null,
      el("h2", {}, "Example payload"), el("pre", { id: "example" }, JSON.stringify(t.example, null, 2)),
      el("h2", {}, "JSON Schema"), el("pre", { id: "schema" }, JSON.stringify(t.schema, null, 2)));
  } catch (e) { detail.replaceChildren(banner("Cannot load " + key + ": " + e.message, "error")); }
}

// ---- live tail ----

function tailSection() {
  const pattern = el("input", { id: "tail-pattern", value: "#", size: 24, "aria-label": "routing key pattern" });
  const start = el("button", { id: "tail-start" }, "Start");
  const pause = el("button", { id: "tail-pause", disabled: true }, "Pause");
  const clear = el("button", {}, "Clear");
  const status = el("span", { id: "tail-status", class: "muted" }, "stopped");
  const log = el("div", { id: "tail-log" });
  let source = null, paused = false, held = [];

  function show(ev) {
    const line = el("div", { class: "line" },
      el("span", { class: "rk" }, ev.routing_key || "?"), "  ",
      ev.event_id ? el("a", { href: "/ui/events/" + ev.event_id, style: "color:#9cc3ff" }, ev.event_id) : "", "  ",
      (ev.source_app || "") + "  " + (ev.timestamp || ""), "\n",
      ev.body ? JSON.stringify(ev.body.payload !== undefined ? ev.body.payload : ev.body) : (ev.text || ""));
    log.prepend(line);
    while (log.childElementCount > 500) log.lastElementChild.remove();
  }
  start.addEventListener("click", () => {
    if (source) { source.close(); source = null; start.textContent = "Start"; pause.disabled = true; status.textContent = "stopped"; return; }
    status.textContent = "connecting…";
    source = new EventSource("/events/stream?pattern=" + encodeURIComponent(pattern.value.trim() || "#"));
    source.addEventListener("ready", (e) => { status.textContent = "listening on " + JSON.parse(e.data).pattern; });
    source.addEventListener("message", (e) => {
      const ev = JSON.parse(e.data);
      if (paused) { held.push(ev); if (held.length > 1000) held.shift(); status.textContent = "paused, " + held.length + " held"; }
      else show(ev);
    });
    source.onerror = () => { if (source && source.readyState === EventSource.CLOSED) status.textContent = "disconnected"; else status.textContent = "reconnecting…"; };
    start.textContent = "Stop"; pause.disabled = false;
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) { held.forEach(show); held = []; if (source) status.textContent = "listening"; }
    else status.textContent = "paused";
  });
  clear.addEventListener("click", () => log.replaceChildren());
  return el("section", { id: "tail" }, el("h2", {}, "Live tail"),
    el("p", { class: "muted" }, "Events as they cross the exchange, through a temporary queue that goes away with this page. Pattern: '*' one word, '#' any."),
    el("div", { class: "toolbar" }, pattern, start, pause, clear, status), log);
}

// ---- causal graph ----

const NODE_W = 290, NODE_H = 70, GAP_X = 24, GAP_Y = 60, PAD = 30;

async function graphPage(id) {
  main.replaceChildren(el("h1", {}, "Causal graph of ", el("code", {}, id)),
    el("p", { class: "muted" }, "Causes above, effects below. Type, app and time come from each event's recorded link; the root of a chain has none. Click a node to centre it."));
  let g;
  try { g = await api("/ui/api/graph/" + encodeURIComponent(id)); } catch (e) {
    main.append(banner(e.status === 404 ? "Unknown event: " + e.message : e.status === 400 ? e.message : "Cannot draw the graph: " + e.message, "error"));
    main.lastChild.id = "graph-error";
    return;
  }
  if (g.truncated) main.append(banner("The graph has more than " + g.limit + " events: it is cut off, and nodes marked \"more…\" have causes or effects not shown.", ""));
  main.append(el("div", { class: "graph-wrap" }, drawGraph(g)));
}

function drawGraph(g) {
  const levels = new Map();
  for (const n of g.nodes) {
    if (!levels.has(n.level)) levels.set(n.level, []);
    levels.get(n.level).push(n);
  }
  const order = [...levels.keys()].sort((a, b) => a - b);
  const widest = Math.max(...[...levels.values()].map((l) => l.length));
  const width = PAD * 2 + widest * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + order.length * (NODE_H + GAP_Y) - GAP_Y;
  const pos = new Map();
  order.forEach((lvl, row) => {
    const nodes = levels.get(lvl);
    const offset = (width - (nodes.length * (NODE_W + GAP_X) - GAP_X)) / 2;
    nodes.forEach((n, i) => pos.set(n.id, { x: offset + i * (NODE_W + GAP_X), y: PAD + row * (NODE_H + GAP_Y) }));
  });
  const root = svg("svg", { id: "graph", xmlns: SVG, width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8a93a6" }))));
  for (const e of g.edges) {
    const a = pos.get(e.parent), b = pos.get(e.child);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y;
    const my = (y1 + y2) / 2;
    root.append(svg("path", { class: "edge", d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 2}`, "marker-end": "url(#arrow)" }));
  }
  for (const n of g.nodes) {
    const p = pos.get(n.id);
    const cls = "node" + (n.level === 0 ? " center" : "") + (n.linked ? "" : " unlinked");
    const line = (y, text, known, c) => {
      const t = svg("text", { x: 10, y, class: known ? (c || "") : "unknown" });
      t.textContent = text;
      return t;
    };
    const title = svg("title");
    title.textContent = n.id + (n.metadata ? "\n" + JSON.stringify(n.metadata) : "\nno link recorded for this event");
    const a = svg("a", { href: "/ui/events/" + n.id, class: cls, "data-id": n.id, transform: `translate(${p.x},${p.y})` },
      title,
      svg("rect", { width: NODE_W, height: NODE_H }),
      line(17, n.event_type || "type unknown (no link)", !!n.event_type, "type"),
      line(33, n.time ? n.time : "time unknown", !!n.time),
      line(49, n.source_app ? "app " + n.source_app : "app unknown", !!n.source_app),
      line(64, n.id, true, "mono"));
    root.append(a);
    if (n.more) {
      const m = svg("text", { class: "more", x: p.x + NODE_W - 44, y: n.level < 0 ? p.y - 6 : p.y + NODE_H + 14 });
      m.textContent = "more…";
      root.append(m);
    }
  }
  return root;
}

// ---- poison queues ----

async function dlqPage() {
  document.getElementById("nav-dlq").classList.add("active");
  const params = new URLSearchParams(location.search);
  const service = params.get("service") || info.service;
  const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  const serviceInput = el("input", { id: "dlq-service", value: service, size: 24, "aria-label": "service" });
  const form = el("form", { class: "toolbar" }, "Service ", serviceInput, el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (e) => { e.preventDefault(); location.search = "?service=" + encodeURIComponent(serviceInput.value.trim()); });
  const status = el("div", { id: "dlq-status" });
  main.replaceChildren(el("h1", {}, "Poison queue of ", el("code", {}, service)), form, status);
  if (!info.mutations) status.append(banner("Read-only: this service has no HTTP_TOKEN, so replay and purge are refused. Set HTTP_TOKEN on the service to enable them.", ""));
  else status.append(el("p", { class: "muted" }, "Replay and purge need the service's HTTP_TOKEN in the box at the top right."));
  let data;
  try { data = await api("/ui/api/dlq?service=" + encodeURIComponent(service) + "&page=" + page); } catch (e) {
    main.append(banner("Cannot read the poison queue: " + e.message, "error"));
    return;
  }
  const pages = Math.max(1, Math.ceil(data.total / data.page_size));
  const mutate = async (op, body, what) => {
    try {
      const r = await api("/ui/api/dlq/" + op, { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + tokenInput.value.trim() }, body: JSON.stringify(Object.assign({ service }, body)) });
      const n = op === "replay" ? r.replayed.length : r.purged;
      status.replaceChildren(banner((op === "replay" ? "Replayed " : "Purged ") + n + " " + what + ".", "ok"));
      setTimeout(() => location.reload(), 800);
    } catch (e) {
      status.replaceChildren(banner((op === "replay" ? "Replay" : "Purge") + " refused: " + e.message, "error"));
    }
  };
  const purgeAll = el("button", { class: "danger", id: "dlq-purge-all", disabled: !info.mutations || data.total === 0 }, "Purge all");
  purgeAll.addEventListener("click", () => { if (confirm("Purge all " + data.total + " messages parked by " + service + "? They cannot be recovered.")) mutate("purge", { all: true }, "messages"); });
  const replayAll = el("button", { id: "dlq-replay-all", disabled: !info.mutations || data.total === 0 }, "Replay all");
  replayAll.addEventListener("click", () => { if (confirm("Replay all " + data.total + " parked messages to " + service + "?")) mutate("replay", { all: true }, "messages"); });
  main.append(el("div", { class: "toolbar" },
    el("span", { id: "dlq-total" }, data.total + " parked in " + data.queue), replayAll, purgeAll,
    page > 1 ? el("a", { href: "?service=" + encodeURIComponent(service) + "&page=" + (page - 1) }, "← previous") : null,
    el("span", { class: "muted" }, "page " + page + " of " + pages),
    page < pages ? el("a", { href: "?service=" + encodeURIComponent(service) + "&page=" + (page + 1), id: "dlq-next" }, "next →") : null));
  if (data.messages.length === 0) { main.append(el("p", { id: "dlq-empty", class: "muted" }, "Nothing parked here.")); return; }
  const rows = data.messages.map((m) => {
    const replay = el("button", { class: "replay", disabled: !info.mutations }, "Replay");
    replay.addEventListener("click", () => mutate("replay", { event_ids: [m.event_id] }, "message"));
    const purge = el("button", { class: "purge danger", disabled: !info.mutations }, "Purge");
    purge.addEventListener("click", () => { if (confirm("Purge " + m.event_id + "? It cannot be recovered.")) mutate("purge", { event_ids: [m.event_id] }, "message"); });
    return el("tr", { "data-id": m.event_id },
      el("td", { class: "mono" }, el("a", { href: "/ui/events/" + m.event_id }, m.event_id), el("br"), m.routing_key || ""),
      el("td", {}, m.kind), el("td", {}, String(m.attempts)), el("td", {}, m.reason),
      el("td", { class: "mono" }, m.last_failure || ""),
      el("td", {}, el("pre", {}, m.body_preview), el("span", { class: "muted" }, m.body_bytes + " bytes")),
      el("td", {}, replay, " ", purge));
  });
  main.append(el("table", { id: "dlq-table" },
    el("thead", {}, el("tr", {}, ...["event / routing key", "kind", "attempts", "reason", "last failure", "body", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows)));
}

// ---- routing ----

(async function route() {
  try { info = await api("/ui/api/info"); } catch (_) { /* the pages say what fails */ }
  document.getElementById("service").textContent = info.service ? info.service + (info.mutations ? "" : " · read-only") : "";
  const path = location.pathname;
  if (path.startsWith("/ui/events/")) return graphPage(decodeURIComponent(path.slice("/ui/events/".length)));
  if (path === "/ui/dlq") return dlqPage();
  return cataloguePage();
})();
