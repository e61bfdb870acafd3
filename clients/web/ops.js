// The operator page: every live node's connections (the cluster table), this node's
// connections, rooms and subscribers, and per room its
// head seq, chain head, outbox depth and relay lag, polled from the existing
// endpoints (/health, /metrics, /api/admin/stats, /api/admin/rooms).
const $ = (id) => document.getElementById(id);
const KEY = "roomcast:ops-token";
const WATCH = "roomcast:ops-watch";
const PERIOD_MS = 2000;
let timer = null;

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function facts(id, pairs) {
  const dl = $(id);
  dl.replaceChildren();
  for (const [term, value] of pairs) dl.append(el("dt", term), el("dd", value, { "data-fact": term }));
}

function metric(text, name) {
  const line = text.split("\n").find((l) => l.startsWith(name + " ") || l.startsWith(name + "{"));
  return line ? Number(line.split(" ").at(-1)) : null;
}

function fail(message) {
  const box = $("page-error");
  box.textContent = message ?? "";
  box.hidden = !message;
}

async function admin(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
  const body = await res.json();
  if (!body.success) throw new Error(`${body.error.code}: ${body.error.message}`);
  return body.data;
}

async function refresh() {
  try {
    const watched = JSON.parse(sessionStorage.getItem(WATCH) ?? "[]");
    const query = watched.map((r) => `roomId=${encodeURIComponent(r)}`).join("&");
    const [health, metricsText, stats, rooms] = await Promise.all([
      fetch("/health").then((r) => r.json()),
      fetch("/metrics").then((r) => (r.ok ? r.text() : "")),
      admin("/api/admin/stats"),
      admin(`/api/admin/rooms${query ? `?${query}` : ""}`),
    ]);
    fail(null);
    $("node-id").textContent = stats.nodeId;
    facts("node-facts", [
      ["Status", health.status],
      ["Version", health.version],
      ["Database round trip (ms)", health.checks?.database?.latencyMs ?? "down"],
      ["Connections", stats.connections],
      ["Users", stats.users],
      ["Rooms with subscribers", stats.rooms],
      ["Subscriptions", Object.values(stats.subscribers ?? {}).reduce((a, b) => a + b, 0)],
      ["Redis", health.node?.redis?.configured ? "configured" : "not configured"],
    ]);
    const cluster = stats.cluster ?? { complete: true, nodes: [], subscribers: {} };
    facts("cluster-facts", [
      ["Nodes", cluster.nodes.length],
      ["Connections (all nodes)", cluster.connections ?? "?"],
      ["Users (summed per node)", cluster.users ?? "?"],
      ["Rooms with subscribers (all nodes)", cluster.rooms ?? "?"],
      ["Complete", cluster.complete ? "yes" : "no: Redis did not answer, this node only"],
    ]);
    const nodes = $("nodes-table");
    nodes.replaceChildren();
    for (const n of cluster.nodes) {
      const tr = el("tr", undefined, { "data-instance": n.instance });
      tr.append(el("th", n.nodeId, { scope: "row", title: n.instance }), el("td", n.connections), el("td", n.users), el("td", n.rooms), el("td", n.ageSeconds));
      nodes.append(tr);
    }
    const relay = health.node?.relay ?? {};
    facts("relay-facts", [
      ["Relay", relay.enabled ? (relay.active ? "publishing" : "standby") : "disabled"],
      // Each relay publishes the rooms of the partitions it holds (ADR 0022).
      ["Partitions held", relay.partitions ? `${relay.partitions.length} of ${relay.partitionCount}: ${relay.partitions.join(" ") || "none"}` : "—"],
      ["Live relays", relay.liveRelays ?? "?"],
      ["Published by this node", relay.published ?? 0],
      ["Last batch lag (s)", relay.lagSeconds ?? 0],
      ["Outbox depth (database)", health.outbox?.depth ?? "?"],
      ["Oldest waiting (s)", health.outbox?.oldestSeconds ?? "?"],
      ["Events appended (this process)", metric(metricsText, "roomcast_events_appended_total") ?? "?"],
      ["Broadcasts (this node)", metric(metricsText, "roomcast_broadcasts_total") ?? "?"],
    ]);
    const tbody = $("rooms-table");
    tbody.replaceChildren();
    for (const r of rooms.rooms) {
      const tr = el("tr", undefined, { "data-room-id": r.roomId });
      tr.append(el("th", r.roomId, { scope: "row" }), el("td", r.subscribers), el("td", r.headSeq), el("td", r.chainHead.slice(0, 16) + "…", { title: r.chainHead }), el("td", r.outboxDepth), el("td", r.relayLagSeconds));
      tbody.append(tr);
    }
    if (rooms.rooms.length === 0) {
      const tr = el("tr");
      tr.append(el("td", "No room has a subscriber on this node.", { colspan: "6" }));
      tbody.append(tr);
    }
    $("ops-state").dataset.status = "live";
    $("ops-state-text").textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("ops-state").dataset.status = "offline";
    $("ops-state-text").textContent = "cannot reach the node";
    fail(String(err.message ?? err));
  }
}

function show() {
  const signedIn = Boolean(sessionStorage.getItem(KEY));
  $("ops-sign-in").hidden = signedIn;
  $("ops").hidden = !signedIn;
  clearInterval(timer);
  if (signedIn) {
    refresh();
    timer = setInterval(refresh, PERIOD_MS);
  }
}

$("ops-token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("ops-token").value.trim());
  show();
});
$("ops-sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  show();
});
$("watch-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = $("watch-room").value.trim();
  if (!room) return;
  const watched = new Set(JSON.parse(sessionStorage.getItem(WATCH) ?? "[]"));
  watched.add(room);
  sessionStorage.setItem(WATCH, JSON.stringify([...watched].slice(-50)));
  e.target.reset();
  refresh();
});
show();
