// A roomcast client written only against the official socket.io-client (v4).
//
//   node client.mjs URL TOKEN ROOM_ID LAST_SEQ EXPECTED_HEAD
//
// Connects with auth {token}, subscribes with lastSeq, collects every event
// that carries a seq until it holds LAST_SEQ+1..EXPECTED_HEAD (duplicates
// dropped by seq, arrival order kept), calls room:replay once, checks that a
// bad token is refused with AUTHENTICATION_FAILED, and prints ONE JSON line:
//   {"seqs", "events", "beforeAck", "ack", "subscribed", "replay", "authError", "authErrorData"}
// Exits non-zero (nothing on stdout) when anything takes longer than 10 s.
import { io } from "socket.io-client";

const TIMEOUT_MS = 10_000;
const REPLAY_LIMIT = 5;

function fail(message) {
  process.stderr.write(`client.mjs: ${message}\n`);
  process.exit(2);
}

const [url, token, roomId, lastSeqArg, expectedHeadArg] = process.argv.slice(2);
if (!url || !token || !roomId || lastSeqArg === undefined || expectedHeadArg === undefined) {
  fail("usage: node client.mjs URL TOKEN ROOM_ID LAST_SEQ EXPECTED_HEAD");
}
const lastSeq = Number.parseInt(lastSeqArg, 10);
const expectedHead = Number.parseInt(expectedHeadArg, 10);

const deadline = setTimeout(() => {
  const have = [...received.keys()].sort((a, b) => a - b);
  fail(`timed out after ${TIMEOUT_MS} ms; stage=${stage}; seqs received: ${JSON.stringify(have)}`);
}, TIMEOUT_MS);

let stage = "connect";
const received = new Map(); // seq -> {event, payload}, first arrival wins
const order = []; // seqs in arrival order, without duplicates
let duplicates = 0;
let subscribed = null;
let acked = false;
let beforeAck = 0; // room events that arrived before the subscribe's ack (must be none)
let onProgress = () => {};

function connect(authToken) {
  return io(url, {
    auth: { token: authToken },
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    timeout: TIMEOUT_MS,
  });
}

function connected(socket) {
  return new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
}

const socket = connect(token);
socket.onAny((event, payload) => {
  if (event === "room:subscribed") subscribed = payload;
  if (payload === null || typeof payload !== "object" || typeof payload.seq !== "number") return;
  if (!acked) beforeAck += 1;
  if (received.has(payload.seq)) {
    duplicates += 1;
    return;
  }
  received.set(payload.seq, { event, payload });
  order.push(payload.seq);
  onProgress();
});

function complete() {
  for (let seq = lastSeq + 1; seq <= expectedHead; seq += 1) {
    if (!received.has(seq)) return false;
  }
  return true;
}

try {
  await connected(socket);

  stage = "room:subscribe";
  const ack = await socket.timeout(TIMEOUT_MS).emitWithAck("room:subscribe", { roomId, lastSeq });
  acked = true;
  if (!ack || ack.success !== true) {
    fail(`room:subscribe was refused: ${JSON.stringify(ack)}`);
  }

  stage = "collect";
  if (!complete()) {
    await new Promise((resolve) => {
      onProgress = () => {
        if (complete()) resolve();
      };
    });
  }
  const seqs = order.filter((seq) => seq > lastSeq && seq <= expectedHead);
  const events = seqs.map((seq) => {
    const { event, payload } = received.get(seq);
    return {
      event,
      eventId: payload.eventId,
      seq: payload.seq,
      roomId: payload.roomId,
      timestamp: payload.timestamp,
      type: payload.type,
      replayed: payload.replayed === true,
    };
  });
  const extra = order.filter((seq) => seq <= lastSeq || seq > expectedHead);

  stage = "room:replay";
  const replay = await socket
    .timeout(TIMEOUT_MS)
    .emitWithAck("room:replay", { roomId, afterSeq: lastSeq, limit: REPLAY_LIMIT });

  socket.disconnect();

  stage = "bad token";
  const bad = connect("not-a-jwt");
  let authError = null;
  let authErrorData = null;
  try {
    await connected(bad);
    authError = "connected with a bad token";
  } catch (err) {
    authError = String(err.message);
    authErrorData = err.data ?? null;
  } finally {
    bad.disconnect();
  }

  clearTimeout(deadline);
  process.stdout.write(
    `${JSON.stringify({ seqs, events, extra, duplicates, beforeAck, ack, subscribed, replay, authError, authErrorData })}\n`,
    () => process.exit(0),
  );
} catch (err) {
  fail(`${stage} failed: ${err?.stack ?? err}`);
}
