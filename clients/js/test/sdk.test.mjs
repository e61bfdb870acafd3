// The SDK against a real `roomcast serve` and PostgreSQL (run by tests/e2e/test_js_sdk.py).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Server, checkOnceInOrder, loadSdk, log, rest, token, until, URL_ } from "./harness.mjs";

const server = new Server();
let RoomcastClient, RoomcastError;

before(async () => {
  ({ RoomcastClient, RoomcastError } = await loadSdk());
  await server.start();
});
after(() => server.stop());

function user() {
  return `u_${randomUUID().slice(0, 8)}`;
}

async function createRoom(tok) {
  return (await rest(tok, "POST", "/api/rooms", { name: "SDK test" }, { key: randomUUID() })).room.id;
}

async function renames(tok, roomId, count, { concurrency = 4, onProgress } = {}) {
  let next = 0;
  let done = 0;
  const batch = randomUUID().slice(0, 8); // a fresh Idempotency-Key per command
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await rest(tok, "PATCH", `/api/rooms/${roomId}`, { name: `rename ${i}` }, { key: `${batch}-${i}` });
      done += 1;
      if (onProgress) await onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function record(client) {
  const received = [];
  client.on("*", (event, payload) => {
    if (typeof payload?.seq === "number" && payload.roomId) received.push(payload);
  });
  return received;
}

test("1,000 events across a server SIGKILL and restart arrive 1..1000 once each, in order", async () => {
  const org = user();
  const tok = token(org);
  const roomId = await createRoom(tok);
  const statuses = [];
  const client = new RoomcastClient(URL_, { token: () => token(org), reconnectionDelay: 200 });
  client.on("status", (s) => statuses.push(s));
  const received = record(client);
  try {
    const ack = await client.subscribe(roomId, { lastSeq: 0 });
    assert.equal(ack.roomId, roomId);
    let killed = false;
    await renames(tok, roomId, 999, {
      onProgress: async (done) => {
        if (done === 400 && !killed) {
          killed = true;
          await server.kill();
          await server.start();
        }
      },
    });
    await until(client, () => client.lastSeq(roomId) === 1000, 60_000, "seq 1000");
    checkOnceInOrder(assert, received, 1000);
    const stored = await log(tok, roomId);
    assert.deepEqual(received.map((p) => p.eventId), stored.map((e) => e.payload.eventId));
    assert.ok(client.stats.reconnects >= 1, "the client reconnected");
    assert.ok(statuses.includes("offline") && statuses.at(-1) === "live", statuses.join(","));
    assert.equal(client.status, "live");
  } finally {
    client.close();
  }
});

test("a gap (events lost on the wire) is refilled before later events are delivered", async () => {
  const org = user();
  const tok = token(org);
  const roomId = await createRoom(tok);
  const dropped = new Set();
  const total = 61;
  const client = new RoomcastClient(URL_, {
    token: tok,
    wireFilter: (event, payload) => {
      const seq = payload?.seq;
      if (payload?.roomId === roomId && typeof seq === "number" && seq % 5 === 0 && seq < total && !dropped.has(seq)) {
        dropped.add(seq);
        return false; // lost, once
      }
      return true;
    },
  });
  const received = record(client);
  try {
    await client.subscribe(roomId); // live only: from seq 1 (room:created) on
    assert.equal(client.lastSeq(roomId), 1);
    await renames(tok, roomId, total - 1, { concurrency: 2 });
    await until(client, () => client.lastSeq(roomId) === total, 30_000, `seq ${total}`);
    assert.deepEqual(received.map((p) => p.seq), Array.from({ length: total - 1 }, (_, i) => i + 2));
    assert.ok(dropped.size >= 10, `dropped ${dropped.size}`);
    assert.ok(client.stats.gapsRefilled >= 1);
  } finally {
    client.close();
  }
});

test("token:expired: reconnects with a fresh token and loses nothing", async () => {
  const org = user();
  const tok = token(org);
  const roomId = await createRoom(tok);
  let calls = 0;
  const expired = [];
  const client = new RoomcastClient(URL_, {
    token: async () => {
      calls += 1;
      return token(org, { ttl: calls === 1 ? 2 : 3600 }); // the first one expires in 2 s
    },
  });
  client.on("token:expired", (payload) => expired.push(payload));
  const received = record(client);
  try {
    await client.subscribe(roomId, { lastSeq: 0 });
    await renames(tok, roomId, 20, { concurrency: 1 });
    await until(client, () => expired.length > 0, 20_000, "token:expired");
    await renames(tok, roomId, 20, { concurrency: 1 }); // while it reconnects, and after
    await until(
      client,
      () => client.stats.reconnects >= 1 && client.lastSeq(roomId) === 41 && client.status === "live",
      20_000,
      "seq 41 after a reconnect",
    );
    checkOnceInOrder(assert, received, 41);
    assert.equal(expired[0].reason, "expired");
    assert.ok(calls >= 2, `token() called ${calls} times`);
    assert.ok(client.stats.reconnects >= 1);
  } finally {
    client.close();
  }
});

test("HTTP long-polling only", async () => {
  const org = user();
  const tok = token(org);
  const roomId = await createRoom(tok);
  const client = new RoomcastClient(URL_, { token: tok, transports: ["polling"] });
  const received = record(client);
  try {
    await client.subscribe(roomId, { lastSeq: 0 });
    assert.equal(client.socket.io.engine.transport.name, "polling");
    await renames(tok, roomId, 50, { concurrency: 2 });
    await until(client, () => client.lastSeq(roomId) === 51, 30_000, "seq 51");
    checkOnceInOrder(assert, received, 51);
    assert.equal(client.socket.io.engine.transport.name, "polling");
  } finally {
    client.close();
  }
});

test("the position survives a new client through storage (a page reload): no full replay", async () => {
  const org = user();
  const tok = token(org);
  const roomId = await createRoom(tok);
  await renames(tok, roomId, 19, { concurrency: 2 });
  const data = new Map();
  const storage = { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => data.set(k, v), removeItem: (k) => data.delete(k) };
  const first = new RoomcastClient(URL_, { token: tok, storage });
  const firstReceived = record(first);
  await first.subscribe(roomId, { lastSeq: 0 });
  await until(first, () => first.lastSeq(roomId) === 20, 20_000, "seq 20");
  first.close();
  checkOnceInOrder(assert, firstReceived, 20);
  await renames(tok, roomId, 5, { concurrency: 1 });

  const second = new RoomcastClient(URL_, { token: tok, storage });
  const received = record(second);
  try {
    assert.equal(second.lastSeq(roomId), 20);
    await second.subscribe(roomId);
    await until(second, () => second.lastSeq(roomId) === 25, 20_000, "seq 25");
    assert.deepEqual(received.map((p) => p.seq), [21, 22, 23, 24, 25]);
  } finally {
    second.close();
  }
});

test("refusals reject with RoomcastError {code, message, details}", async () => {
  const org = user();
  const stranger = user();
  const roomId = await createRoom(token(org));
  const client = new RoomcastClient(URL_, { token: token(stranger) });
  try {
    await assert.rejects(client.subscribe(roomId), (err) => {
      assert.ok(err instanceof RoomcastError);
      assert.equal(err.code, "PERMISSION_DENIED");
      assert.equal(typeof err.message, "string");
      assert.equal(typeof err.details, "object");
      return true;
    });
    await assert.rejects(client.subscribe("room_doesnotexist"), (err) => err instanceof RoomcastError && err.code === "ROOM_NOT_FOUND");
    assert.equal(client.lastSeq(roomId), null);
  } finally {
    client.close();
  }
});

test("a removed participant is told room:unsubscribed and stops following the room", async () => {
  const org = user();
  const member = user();
  const roomId = await createRoom(token(org));
  const joined = await rest(token(member), "POST", `/api/rooms/${roomId}/participants`, undefined, { key: randomUUID() });
  const client = new RoomcastClient(URL_, { token: token(member) });
  const received = record(client);
  const notices = [];
  client.on("room:unsubscribed", (payload) => notices.push(payload));
  try {
    await client.subscribe(roomId);
    const followed = client.lastSeq(roomId);
    assert.equal(typeof followed, "number");
    await rest(token(org), "DELETE", `/api/rooms/${roomId}/participants/${joined.participant.id}`, undefined, { key: randomUUID() });
    await until(client, () => notices.length === 1, 20_000, "room:unsubscribed");
    assert.deepEqual(notices, [{ roomId, reason: "not_a_member" }]);
    assert.deepEqual(received.map((p) => p.type), ["participant:left"]);
    // Not followed any more: no position, nothing to refill or resubscribe.
    assert.equal(client.lastSeq(roomId), null);
    assert.equal(client.status, "live");
  } finally {
    client.close();
  }
});
