// The Node.js peer: a socket.io 4.8 server doing what the seeds' servers did.
//
// JWT (HS256, the same tokens roomcast accepts: iss and aud "roomcast") checked
// in a handshake middleware; `room:subscribe` joins the socket to `room:<id>`
// and acks `{success, data: {roomId, headSeq}}`, then emits `room:subscribed`;
// each event is one broadcast to the room. With `--mode recovery`, socket.io's
// own connection state recovery (in-memory adapter, 2 minutes) is on, with the
// middleware run again on a recovered connection (skipMiddlewares: false), so a
// reconnect costs the same token check as roomcast's.
//
// Control over plain HTTP on the same port, as bench/bare.py:
//   GET  /ready
//   POST /emit    {count, rate, template}: broadcast `count` events to room
//                 "bench" at `rate`/s (0: as fast as it can); payloads built
//                 before the clock starts. Answers the wall-clock time each
//                 broadcast started, as an offset from the payload's timestamp.
//   POST /history {count, template}: the same events broadcast now, with rate
//                 0 (in recovery mode, while the clients are away, the adapter
//                 keeps them for the recovery).
//
// Run by the harness as `node server.mjs --port N [--mode plain|recovery]`,
// with ROOMCAST_JWT_SECRET in the environment.

import http from "node:http";
import { parseArgs } from "node:util";
import jwt from "jsonwebtoken";
import { Server } from "socket.io";

const { values: args } = parseArgs({
  options: {
    port: { type: "string" },
    mode: { type: "string", default: "plain" },
  },
});
const SECRET = process.env.ROOMCAST_JWT_SECRET;
if (!args.port || !SECRET || !["plain", "recovery"].includes(args.mode)) {
  console.error("usage: ROOMCAST_JWT_SECRET=… node server.mjs --port N [--mode plain|recovery]");
  process.exit(2);
}
const ROOM = "bench";
const EVENT = "room:updated";

const wall = () => (performance.timeOrigin + performance.now()) / 1000;
let head = 0; // the last seq broadcast

function payloads(template, count) {
  // Built before the clock starts, as the relay's are (they were encoded at commit).
  const base = JSON.parse(template);
  const stamp = new Date();
  const out = [];
  for (let i = 1; i <= count; i++) {
    out.push({ eventId: crypto.randomUUID(), seq: head + i, ...base, timestamp: stamp.toISOString() });
  }
  return { out, stamp: stamp.getTime() / 1000 };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function emit(io, count, rate, template) {
  const { out, stamp } = payloads(template, count);
  const room = io.to(`room:${ROOM}`);
  const offsets = new Array(count);
  const firstSeq = head + 1;
  const tStart = wall();
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    if (rate) {
      const delay = started + (i * 1000) / rate - performance.now();
      if (delay > 0) await sleep(delay);
    }
    offsets[i] = wall() - stamp;
    room.emit(EVENT, out[i]);
    head = out[i].seq;
  }
  return { t_start: tStart, t_end: wall(), head, first_seq: firstSeq, offsets };
}

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString();
  return text ? JSON.parse(text) : {};
}

const httpServer = http.createServer();
const io = new Server(httpServer, {
  // The same Engine.IO options as roomcast's gateway.
  pingInterval: 25_000,
  pingTimeout: 20_000,
  maxHttpBufferSize: 64 * 1024,
  perMessageDeflate: false,
  serveClient: false,
  cors: undefined,
  ...(args.mode === "recovery"
    ? {
        connectionStateRecovery: {
          maxDisconnectionDuration: 2 * 60 * 1000,
          skipMiddlewares: false,
        },
      }
    : {}),
});

io.use((socket, next) => {
  const token = socket.handshake.auth?.token;
  if (typeof token !== "string") return next(new Error("Authentication failed: missing token"));
  try {
    const claims = jwt.verify(token, SECRET, {
      algorithms: ["HS256"],
      issuer: "roomcast",
      audience: "roomcast",
    });
    socket.data.user = { id: claims.sub, name: claims.name };
    next();
  } catch (err) {
    next(new Error(`Authentication failed: ${err.message}`));
  }
});

io.on("connection", (socket) => {
  socket.on("room:subscribe", (data, ack) => {
    const roomId = data && typeof data.roomId === "string" ? data.roomId : null;
    if (roomId === null) {
      if (typeof ack === "function") {
        ack({ success: false, error: { code: "INVALID_PAYLOAD", message: "roomId is required" } });
      }
      return;
    }
    socket.join(`room:${roomId}`);
    socket.emit("room:subscribed", { roomId, headSeq: head });
    if (typeof ack === "function") ack({ success: true, data: { roomId, headSeq: head } });
  });
  socket.on("room:unsubscribe", (data) => {
    if (data && typeof data.roomId === "string") socket.leave(`room:${data.roomId}`);
  });
});

httpServer.on("request", async (req, res) => {
  if (req.url.startsWith("/socket.io/")) return; // socket.io answers these
  let status = 200;
  let answer;
  try {
    const request = req.method === "POST" ? await body(req) : {};
    if (req.url === "/ready") answer = { ready: true, mode: args.mode };
    else if (req.url === "/emit") answer = await emit(io, request.count, request.rate, request.template);
    else if (req.url === "/history") {
      const done = await emit(io, request.count, 0, request.template);
      answer = { head: done.head };
    } else if (req.url === "/stats") {
      answer = { sockets: io.engine.clientsCount, memory: process.memoryUsage() };
    } else [status, answer] = [404, { error: "not found" }];
  } catch (err) {
    [status, answer] = [500, { error: String(err && err.stack ? err.stack : err) }];
  }
  const content = JSON.stringify(answer);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(content),
  });
  res.end(content);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    io.close();
    httpServer.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}

httpServer.listen(Number(args.port), "127.0.0.1", () => {
  console.log(`node peer (${args.mode}) on 127.0.0.1:${args.port}`);
});
