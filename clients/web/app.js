// The live room page: sign in, my rooms, a room followed live through the SDK
// (/client/roomcast.js), its winners verified in the browser (verify.js).
// Plain ES module, no framework, nothing loaded from another host.
import { RoomcastClient, RoomcastError } from "/client/roomcast.js";
import { RoomVerifier } from "/web/verify.js";

const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;
const AUTH_KEY = "roomcast:auth";
const RECENT_KEY = "roomcast:recent";
const LOG_ROWS = 500;

// ------------------------------------------------------------------ helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key.startsWith("data-")) node.setAttribute(key, String(value));
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function readJson(key, fallback = null) {
  try {
    const raw = store.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function writeJson(key, value) {
  try {
    store.setItem(key, JSON.stringify(value));
  } catch {
    // full: the page still works, it just replays more after a reload
  }
}

function showError(err) {
  const box = $("page-error");
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = err instanceof RoomcastError ? `${err.code}: ${err.message.replace(/^[A-Z_]+: /, "")}` : String(err.message ?? err);
  box.hidden = false;
}

function userName(user) {
  return user?.name || user?.id || "someone";
}

// --------------------------------------------------------------- the API

let auth = readJson(AUTH_KEY); // {accessToken, refreshToken?, expiresAt?, user: {id, name}}
let features = null; // which optional routes this server has (from its OpenAPI document)

function claimsOf(token) {
  try {
    const body = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(body))));
  } catch {
    return null;
  }
}

async function loadFeatures() {
  if (features) return features;
  features = { signIn: false, refresh: false, myRooms: false };
  try {
    const res = await fetch("/api/docs/openapi.json");
    if (res.ok) {
      const paths = (await res.json()).paths ?? {};
      features.signIn = Boolean(paths["/api/auth/token"]?.post);
      features.refresh = Boolean(paths["/api/auth/refresh"]?.post);
      features.myRooms = Boolean(paths["/api/rooms"]?.get);
    }
  } catch {
    // no document: only token sign-in and the rooms remembered here
  }
  return features;
}

function setAuth(tokens) {
  const claims = claimsOf(tokens.accessToken);
  if (!claims?.sub) throw new Error("that is not a roomcast access token");
  auth = {
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken ?? auth?.refreshToken ?? null,
    expiresAt: claims.exp ? claims.exp * 1000 : null,
    user: { id: claims.sub, name: claims.name || claims.sub },
  };
  writeJson(AUTH_KEY, auth);
}

async function refreshIfNeeded() {
  if (!auth) throw new RoomcastError("AUTHENTICATION_FAILED", "signed out");
  const soon = auth.expiresAt !== null && auth.expiresAt - Date.now() < 30_000;
  if (soon && auth.refreshToken && (await loadFeatures()).refresh) {
    const res = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refreshToken: auth.refreshToken }),
    });
    const body = await res.json();
    if (body.success) setAuth(body.data);
  }
  return auth.accessToken;
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${await refreshIfNeeded()}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await res.json();
  if (!json.success) throw new RoomcastError(json.error.code, json.error.message, json.error.details ?? {});
  return json.data;
}

// ------------------------------------------------------------ the client

let client = null;
let current = null; // the open room: {roomId, view, verifier, ...}
let catchUp = null; // {events} counted from a reconnect until live again
const page = { client: null, applied: 0, verified: 0 };
window.roomcastPage = page; // for the browser tests and the curious

function connect() {
  client = new RoomcastClient(location.origin, { token: refreshIfNeeded, storage: store });
  page.client = client;
  client.on("status", onStatus);
  client.on("error", (err) => {
    if (err?.code === "PERMISSION_DENIED" && current) {
      $("join-panel").hidden = false;
      return;
    }
    showError(err);
  });
  client.on("*", onEvent);
  client.on("presence:user_online", (p) => {
    if (current && p.roomId === current.roomId) {
      current.online.set(p.userId, p.user ?? { id: p.userId });
      renderParticipants();
    }
  });
  client.on("presence:user_offline", (p) => {
    if (current && p.roomId === current.roomId) {
      current.online.delete(p.userId);
      renderParticipants();
    }
  });
  client.on("typing:user_typing", (p) => {
    if (current && p.roomId === current.roomId) {
      current.typing.set(p.userId, userName(p.user));
      renderTyping();
    }
  });
  client.on("typing:user_stopped", (p) => {
    if (current && p.roomId === current.roomId) {
      current.typing.delete(p.userId);
      renderTyping();
    }
  });
  client.followNotifications().catch(showError);
  onStatus(client.status);
}

function onStatus(status) {
  const box = $("connection");
  box.dataset.status = status;
  const seq = current ? client.lastSeq(current.roomId) : null;
  const words = { connecting: "connecting…", live: "live", "catching-up": "catching up…", offline: "offline" }[status];
  $("connection-text").textContent = seq === null ? words : `${words} · seq ${seq}`;
  if (status === "offline") {
    catchUp = { events: 0 };
    const note = $("catchup");
    note.textContent = "Connection lost: reconnecting. Nothing is lost; missed events are replayed.";
    note.hidden = false;
  } else if (status === "live" && catchUp) {
    const note = $("catchup");
    note.textContent = `Reconnected: caught up ${catchUp.events} event${catchUp.events === 1 ? "" : "s"} missed while away.`;
    note.hidden = false;
    catchUp = null;
  }
}

// ------------------------------------------------------------- room state

function emptyView(roomId) {
  return { roomId, seq: 0, room: null, participants: {}, prizes: {}, winners: {}, questions: {}, quizOrder: [], appEvents: [], log: [] };
}

function viewKey(roomId) {
  return `roomcast:view:${auth.user.id}:${roomId}`;
}

function summary(event, p) {
  switch (event) {
    case "room:created": return `room created: ${p.room?.name}`;
    case "room:updated": return `room updated: ${Object.keys(p.changes ?? {}).join(", ")}`;
    case "room:status_changed": return `status ${p.oldStatus} → ${p.newStatus}`;
    case "participant:joined": return `${userName(p.participant?.user)} joined`;
    case "participant:left": return `${p.userId} ${p.reason === "removed" ? "was removed" : "left"}`;
    case "participant:updated": return `${userName(p.participant?.user)} is now ${p.participant?.role}`;
    case "prize:created": return `prize added: ${p.prize?.name}`;
    case "prize:updated": return `prize updated: ${p.prize?.name}`;
    case "prize:deleted": return "prize deleted";
    case "winner:selected": return `${userName(p.winner?.participant?.user)} won ${p.winner?.prize?.name}`;
    case "winner:removed": return "winner removed";
    case "quiz:question_published": return `question ${p.questionNumber}: ${p.question}`;
    case "quiz:answer_result": return `${userName(p.user)} answered (${p.correct ? "correct" : "wrong"})`;
    case "quiz:question_closed": return `question closed: ${p.correctAnswer}`;
    default: return p.appId ? `app ${p.appId}` : event;
  }
}

function apply(view, event, p) {
  switch (event) {
    case "room:created":
    case "room:updated":
      view.room = { ...p.room };
      break;
    case "room:status_changed":
      if (view.room) view.room.status = p.newStatus;
      break;
    case "room:deleted":
      if (view.room) view.room.status = "deleted";
      break;
    case "participant:joined":
    case "participant:updated":
      view.participants[p.participant.id] = p.participant;
      break;
    case "participant:left":
      delete view.participants[p.participantId];
      break;
    case "prize:created":
    case "prize:updated":
      view.prizes[p.prize.id] = p.prize;
      break;
    case "prize:deleted":
      delete view.prizes[p.prizeId];
      break;
    case "winner:selected": {
      view.winners[p.winner.id] = { ...p.winner, seq: p.seq, drawNumber: p.drawNumber };
      const prize = view.prizes[p.winner.prizeId];
      if (prize) prize.quantityRemaining = Math.max(0, prize.quantityRemaining - 1);
      break;
    }
    case "winner:removed": {
      delete view.winners[p.winnerId];
      const prize = view.prizes[p.prizeId];
      if (prize) prize.quantityRemaining += 1;
      break;
    }
    case "quiz:question_published":
      view.questions[p.questionId] = { ...p, results: [], closed: null };
      view.quizOrder.push(p.questionId);
      break;
    case "quiz:answer_result":
      view.questions[p.questionId]?.results.push({ user: p.user, correct: p.correct, rank: p.rank, responseTime: p.responseTime, participantId: p.participantId });
      break;
    case "quiz:question_closed":
      if (view.questions[p.questionId]) view.questions[p.questionId].closed = p;
      break;
    default:
      if (typeof p.appId === "string") {
        view.appEvents.push({ seq: p.seq, event, appId: p.appId, data: p.data ?? stripEnvelope(p), timestamp: p.timestamp });
        if (view.appEvents.length > 50) view.appEvents.shift();
      }
  }
  view.log.push({ seq: p.seq, event, text: summary(event, p) });
  if (view.log.length > LOG_ROWS) view.log.shift();
  view.seq = p.seq;
}

function stripEnvelope(p) {
  const { eventId, seq, type, roomId, timestamp, appId, replayed, ...rest } = p;
  return rest;
}

function onEvent(event, payload) {
  if (event.startsWith("notification:") && typeof payload?.seq === "number") {
    onNotification(event, payload);
    return;
  }
  if (!current || payload?.roomId !== current.roomId || typeof payload.seq !== "number") return;
  if (payload.seq <= current.view.seq) return; // already in the saved view (a reload)
  apply(current.view, event, payload);
  page.applied += 1;
  if (catchUp) catchUp.events += 1;
  writeJson(viewKey(current.roomId), current.view);
  appendLogRow(current.view.log.at(-1));
  scheduleRender();
  scheduleVerify(); // debounced: one chain page per burst of events
  if (event === "quiz:question_closed") loadLeaderboard();
  onStatus(client.status);
}

// --------------------------------------------------------- notifications

function notifKey() {
  return `roomcast:notifications:${auth.user.id}`;
}

function onNotification(event, p) {
  const list = readJson(notifKey(), []);
  if (event === "notification:received") list.unshift({ id: p.id, title: p.title, message: p.message, read: p.read, createdAt: p.createdAt });
  if (event === "notification:read") for (const n of list) if (n.id === p.notificationId) n.read = true;
  writeJson(notifKey(), list.slice(0, 50));
  renderNotifications();
}

function renderNotifications() {
  const ul = $("notifications");
  ul.replaceChildren();
  const list = readJson(notifKey(), []);
  if (list.length === 0) ul.append(el("li", { class: "muted", text: "None yet." }));
  for (const n of list) {
    ul.append(
      el("li", { "data-notification-id": n.id },
        el("strong", { text: n.title }), el("span", { text: n.message }),
        n.read ? el("span", { class: "muted", text: "(read)" })
          : el("button", { type: "button", class: "secondary", text: "Mark read", "aria-label": `Mark "${n.message}" read`, onclick: () => client.markRead(n.id).catch(showError) })),
    );
  }
}

// ---------------------------------------------------------------- render

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderRoom();
  });
}

function isOrganizer() {
  return current?.view.room?.organizerId === auth.user.id;
}

function myParticipation() {
  return Object.values(current?.view.participants ?? {}).find((p) => p.userId === auth.user.id) ?? null;
}

function renderRoom() {
  if (!current) return;
  const { view } = current;
  const room = view.room;
  $("room-title").textContent = room?.name ?? current.roomId;
  $("room-status").textContent = room?.status ?? "…";
  $("room-description").textContent = room?.description ?? "";
  const mine = myParticipation();
  $("room-role").textContent = isOrganizer() ? "you organize this room" : mine ? `you are a ${mine.role}` : "you are not a participant";
  $("organizer").hidden = !isOrganizer();
  $("join-panel").hidden = isOrganizer() || Boolean(mine) || !current.denied;
  $("activate").disabled = room?.status !== "draft";
  $("close-room").disabled = room?.status !== "active";
  $("draw").disabled = room?.status !== "active";
  renderParticipants();
  renderPrizes();
  renderWinners();
  renderQuiz();
  renderAppEvents();
}

function renderParticipants() {
  if (!current) return;
  const ul = $("participants");
  ul.replaceChildren();
  const people = Object.values(current.view.participants);
  $("participant-count").textContent = `(${people.length})`;
  for (const p of people) {
    ul.append(
      el("li", { "data-participant-id": p.id },
        el("span", { text: userName(p.user) }),
        p.role === "moderator" ? el("span", { class: "muted", text: "moderator" }) : null,
        current.online.has(p.userId) ? el("span", { class: "online", text: "● online" }) : null),
    );
  }
  if (people.length === 0) ul.append(el("li", { class: "muted", text: "Nobody has joined yet." }));
}

function renderTyping() {
  const names = [...new Set(current?.typing.values() ?? [])];
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…` : "";
}

function renderPrizes() {
  const ul = $("prizes");
  const select = $("draw-prize");
  const chosen = select.value;
  ul.replaceChildren();
  select.replaceChildren();
  const prizes = Object.values(current.view.prizes);
  for (const prize of prizes) {
    ul.append(el("li", { "data-prize-id": prize.id }, el("span", { text: prize.name }), el("span", { class: "muted", text: `${prize.quantityRemaining} of ${prize.quantity} left` })));
    select.append(el("option", { value: prize.id, text: `${prize.name} (${prize.quantityRemaining} left)`, selected: prize.id === chosen }));
  }
  if (prizes.length === 0) ul.append(el("li", { class: "muted", text: "No prizes yet." }));
}

function badge(verdict) {
  if (verdict === "seed") return el("span", { class: "badge verified", "data-verdict": "seed", title: "Hash chain intact, and this winner recomputed from the revealed seed", text: "✓ verified: draw recomputed" });
  if (verdict === "chain") return el("span", { class: "badge verified", "data-verdict": "chain", title: "Hash chain intact and the winner was eligible; the draw itself is recomputed once the room closes and reveals its seed", text: "✓ verified (seed revealed at close)" });
  if (verdict === "fail") return el("span", { class: "badge failed", "data-verdict": "fail", text: "✗ not verified" });
  return el("span", { class: "badge pending", "data-verdict": "pending", text: "verifying…" });
}

function renderWinners() {
  const ul = $("winners");
  ul.replaceChildren();
  const winners = Object.values(current.view.winners).sort((a, b) => a.seq - b.seq);
  for (const w of winners) {
    ul.append(
      el("li", { "data-winner-id": w.id, "data-seq": w.seq },
        el("strong", { text: userName(w.participant?.user) }),
        el("span", { text: `won ${w.prize?.name ?? "a prize"}` }),
        badge(current.verifier.verdict(w.id))),
    );
  }
  if (winners.length === 0) ul.append(el("li", { class: "muted", text: "No winners yet." }));
  const v = current.verifier;
  $("chain-state").textContent = v.failure
    ? `The log does not verify at seq ${v.failure.seq}: ${v.failure.reason}.`
    : `Log verified in this browser up to seq ${v.seq}.`;
}

function renderQuiz() {
  const box = $("quiz");
  box.replaceChildren();
  const { view } = current;
  const id = view.quizOrder.at(-1);
  if (!id) {
    box.append(el("p", { class: "muted", text: "No question yet." }));
    return;
  }
  const q = view.questions[id];
  const deadline = Date.parse(q.startTime) + q.timeLimit * 1000;
  const open = !q.closed && Date.now() < deadline;
  box.append(el("p", {}, el("strong", { text: `Question ${q.questionNumber}${q.totalQuestions ? ` of ${q.totalQuestions}` : ""}: ` }), q.question));
  const mine = myParticipation();
  const answered = current.answers[id];
  if (open && mine && !answered) {
    if (q.options?.length) {
      const group = el("div", { class: "options", role: "group", "aria-label": "Answers" });
      for (const option of q.options) group.append(el("button", { type: "button", text: option, onclick: () => answer(id, option) }));
      box.append(group);
    } else {
      const form = el("form", { class: "row", onsubmit: (e) => { e.preventDefault(); answer(id, form.elements.answer.value); } },
        el("label", { for: "quiz-free", class: "muted", text: "Your answer" }), el("input", { id: "quiz-free", name: "answer", required: true }), el("button", { type: "submit", text: "Answer" }));
      box.append(form);
    }
  } else if (q.options?.length) {
    box.append(el("p", { class: "muted", text: `Options: ${q.options.join(", ")}` }));
  }
  if (answered) box.append(el("p", { "data-answer-result": "", text: answered.correct ? `Correct! Rank ${answered.rank}, ${answered.responseTime} s.` : "Not correct." }));
  if (q.closed) box.append(el("p", { text: `Closed. The answer was "${q.closed.correctAnswer}"; ${q.closed.correctCount} of ${q.closed.answers} correct.` }));
  else if (!open) box.append(el("p", { class: "muted", text: "Time is up." }));
  const ranks = el("ol", { class: "list", "aria-label": "Correct answers in order" });
  for (const r of q.results.filter((r) => r.correct).sort((a, b) => a.rank - b.rank)) ranks.append(el("li", { text: `#${r.rank} ${userName(r.user)} (${r.responseTime} s)` }));
  box.append(el("p", { class: "muted", text: `${q.results.length} answer${q.results.length === 1 ? "" : "s"} so far.` }), ranks);
}

function renderAppEvents() {
  const ul = $("app-events");
  ul.replaceChildren();
  for (const e of [...current.view.appEvents].reverse()) ul.append(el("li", { "data-seq": e.seq }, el("code", { text: e.event }), el("span", { text: JSON.stringify(e.data) })));
  if (current.view.appEvents.length === 0) ul.append(el("li", { class: "muted", text: "No app events yet." }));
}

function appendLogRow(row) {
  const ol = $("log");
  ol.append(el("li", { value: row.seq, "data-seq": row.seq, "data-event": row.event, text: `${row.event}: ${row.text}` }));
  while (ol.children.length > LOG_ROWS) ol.firstElementChild.remove();
  ol.scrollTop = ol.scrollHeight;
}

// ----------------------------------------------------------- verification

let verifyQueued = null;
function scheduleVerify() {
  if (verifyQueued || !current) return;
  const room = current;
  verifyQueued = setTimeout(async () => {
    verifyQueued = null;
    try {
      await room.verifier.catchUp((path) => api("GET", path));
      writeJson(`roomcast:verifier:${room.roomId}`, room.verifier.toJSON());
      page.verified = room.verifier.seq;
      if (current === room) renderWinners();
    } catch (err) {
      if (current === room) showError(err);
    }
  }, 200);
}

// ------------------------------------------------------------------ rooms

function remember(roomId, name) {
  const recent = readJson(RECENT_KEY, {});
  recent[auth.user.id] = { ...(recent[auth.user.id] ?? {}), [roomId]: name ?? roomId };
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(recent));
  } catch {}
}

function remembered() {
  try {
    return JSON.parse(localStorage.getItem(RECENT_KEY) ?? "{}")[auth.user.id] ?? {};
  } catch {
    return {};
  }
}

async function renderLobby() {
  const ul = $("my-rooms");
  ul.replaceChildren();
  const rooms = new Map(Object.entries(remembered()).map(([id, name]) => [id, { id, name, status: null }]));
  if ((await loadFeatures()).myRooms) {
    try {
      const data = await api("GET", "/api/rooms?limit=50");
      for (const r of data.rooms ?? data.items ?? []) rooms.set(r.id, { id: r.id, name: r.name, status: r.status });
    } catch (err) {
      showError(err);
    }
  }
  for (const r of rooms.values()) {
    ul.append(el("li", {}, el("span", {}, el("strong", { text: r.name }), r.status ? el("span", { class: "muted", text: ` · ${r.status}` }) : null),
      el("button", { type: "button", class: "secondary", text: "Open", "aria-label": `Open ${r.name}`, onclick: () => go(r.id) })));
  }
  $("no-rooms").hidden = rooms.size > 0;
}

function go(roomId) {
  const url = roomId ? `/?room=${encodeURIComponent(roomId)}` : "/";
  history.pushState({}, "", url);
  route();
}

async function openRoom(roomId) {
  if (current?.roomId === roomId) return;
  if (current) await leaveRoom();
  const saved = readJson(viewKey(roomId));
  const view = saved ?? emptyView(roomId);
  const verifier = new RoomVerifier(roomId, readJson(`roomcast:verifier:${roomId}`));
  current = { roomId, view, verifier, online: new Map(), typing: new Map(), answers: readJson(`roomcast:answers:${auth.user.id}:${roomId}`, {}), denied: false };
  $("join-link").value = `${location.origin}/?room=${encodeURIComponent(roomId)}`;
  $("log").replaceChildren();
  for (const row of view.log) appendLogRow(row);
  show("room");
  renderRoom();
  $("room-title").focus();
  renderNotifications();
  await subscribeCurrent();
}

async function subscribeCurrent() {
  const room = current;
  try {
    await client.subscribe(room.roomId, { lastSeq: room.view.seq });
    room.denied = false;
    if (room.view.room) remember(room.roomId, room.view.room.name);
    const online = await client.presence(room.roomId);
    for (const u of online.users ?? []) room.online.set(u.id, u);
    scheduleVerify();
    loadLeaderboard();
  } catch (err) {
    if (err instanceof RoomcastError && err.code === "PERMISSION_DENIED") {
      room.denied = true;
      $("join-panel").hidden = false;
      $("room-title").textContent = room.view.room?.name ?? "A room you have not joined";
      $("room-role").textContent = "you are not a participant";
    } else {
      showError(err);
    }
  }
  if (current === room) renderRoom();
  onStatus(client.status);
}

async function leaveRoom() {
  const room = current;
  current = null;
  if (room && client.lastSeq(room.roomId) !== null) await client.unsubscribe(room.roomId).catch(() => undefined);
}

async function loadLeaderboard() {
  if (!current || current.denied) return;
  const room = current;
  try {
    const data = await api("GET", `/api/rooms/${encodeURIComponent(room.roomId)}/quiz/leaderboard`);
    if (current !== room) return;
    const ol = $("leaderboard");
    ol.replaceChildren();
    for (const e of data.entries ?? []) ol.append(el("li", { text: `#${e.rank} ${userName(e.user)}: ${e.correct} correct of ${e.answered} (${e.totalResponseTime} s)` }));
    if (!data.entries?.length) ol.append(el("li", { class: "muted", text: "Nobody has answered yet." }));
  } catch (err) {
    showError(err);
  }
}

async function answer(questionId, value) {
  try {
    const ack = await client.answer(questionId, value);
    current.answers[questionId] = { correct: ack.correct, rank: ack.rank, responseTime: ack.responseTime };
    writeJson(`roomcast:answers:${auth.user.id}:${current.roomId}`, current.answers);
    renderQuiz();
  } catch (err) {
    showError(err);
  }
}

// ---------------------------------------------------------------- actions

function roomPath(suffix = "") {
  return `/api/rooms/${encodeURIComponent(current.roomId)}${suffix}`;
}

async function act(button, work) {
  showError(null);
  if (button) button.disabled = true;
  try {
    await work();
  } catch (err) {
    showError(err);
  } finally {
    if (button) button.disabled = false;
    scheduleRender();
  }
}

function wire() {
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, async () => {
      const res = await fetch("/api/auth/token", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: $("sign-in-name").value.trim() }) });
      const body = await res.json();
      if (!body.success) throw new RoomcastError(body.error.code, body.error.message);
      setAuth(body.data);
      start();
    });
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, async () => {
      setAuth({ accessToken: $("token-input").value.trim() });
      start();
    });
  });
  $("sign-out").addEventListener("click", () => {
    client?.close();
    client = null;
    current = null;
    store.removeItem(AUTH_KEY);
    auth = null;
    history.pushState({}, "", "/");
    route();
  });
  $("create-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, async () => {
      const description = $("create-description").value.trim();
      const data = await api("POST", "/api/rooms", { name: $("create-name").value.trim(), ...(description ? { description } : {}) });
      remember(data.room.id, data.room.name);
      e.target.reset();
      go(data.room.id);
    });
  });
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("join-input").value.trim();
    let roomId = text;
    try {
      roomId = new URL(text).searchParams.get("room") ?? text;
    } catch {}
    e.target.reset();
    go(roomId);
  });
  $("back").addEventListener("click", () => go(null));
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("join-link").value);
      $("copy-link").textContent = "Copied";
    } catch {
      $("join-link").select();
    }
  });
  $("join-room").addEventListener("click", (e) =>
    act(e.currentTarget, async () => {
      await api("POST", roomPath("/participants"));
      current.denied = false;
      $("join-panel").hidden = true;
      await subscribeCurrent();
    }),
  );
  $("activate").addEventListener("click", (e) => act(e.currentTarget, () => api("POST", roomPath("/status"), { status: "active" })));
  $("close-room").addEventListener("click", (e) => act(e.currentTarget, () => api("POST", roomPath("/status"), { status: "closed" })));
  $("prize-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, async () => {
      await api("POST", roomPath("/prizes"), { name: $("prize-name").value.trim(), quantity: Number($("prize-quantity").value) });
      e.target.reset();
    });
  });
  $("draw-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, () => api("POST", roomPath("/draws"), { prizeId: $("draw-prize").value }));
  });
  $("quiz-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, async () => {
      const options = $("quiz-options").value.split(",").map((o) => o.trim()).filter(Boolean);
      await api("POST", roomPath("/quiz/questions"), {
        question: $("quiz-question").value.trim(),
        answer: $("quiz-answer").value.trim(),
        timeLimit: Number($("quiz-time").value),
        ...(options.length ? { options } : {}),
      });
      e.target.reset();
    });
  });
  let typingSent = 0;
  let typingTimer = null;
  $("typing-input").addEventListener("input", () => {
    if (!current || current.denied) return;
    const now = Date.now();
    if (now - typingSent > 2500) {
      typingSent = now;
      client.typing(current.roomId, true).catch(() => undefined);
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      typingSent = 0;
      if (current) client.typing(current.roomId, false).catch(() => undefined);
    }, 3000);
  });
  window.addEventListener("popstate", route);
}

function show(section) {
  for (const id of ["sign-in", "lobby", "room"]) $(id).hidden = id !== section;
}

async function route() {
  showError(null);
  if (!auth) {
    $("whoami").hidden = true;
    const signIn = (await loadFeatures()).signIn; // before showing: no form that then vanishes
    $("sign-in-form").hidden = !signIn;
    if (!signIn) $("sign-in").querySelector("details").open = true;
    show("sign-in");
    return;
  }
  $("whoami").hidden = false;
  $("whoami-name").textContent = `Signed in as ${auth.user.name}`;
  if (!client) connect();
  const roomId = new URLSearchParams(location.search).get("room");
  if (roomId) {
    await openRoom(roomId);
  } else {
    if (current) await leaveRoom();
    show("lobby");
    await renderLobby();
  }
}

function start() {
  history.replaceState({}, "", location.pathname + location.search);
  route();
}

wire();
route();
