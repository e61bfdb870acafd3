// The SDK past the subscribe replay cap (run by tests/e2e/test_js_sdk.py with a server
// whose ROOMCAST_SUBSCRIBE_REPLAY_MAX is ROOMCAST_TEST_REPLAY_CAP): the subscribe replays
// `cap` seqs inline, the SDK pages the rest with room:replay while live events arrive.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Server, checkOnceInOrder, loadSdk, rest, token, until, URL_ } from "./harness.mjs";

const CAP = Number(process.env.ROOMCAST_TEST_REPLAY_CAP);
const HEAD = 5 * CAP; // the room's events before the subscribe
const PAUSE_AT = 3 * CAP; // a paged seq whose handler commits live events
const LIVE = 3;
const server = new Server();
let RoomcastClient;

before(async () => {
  assert.ok(CAP > 0, "ROOMCAST_TEST_REPLAY_CAP");
  ({ RoomcastClient } = await loadSdk());
  await server.start();
});
after(() => server.stop());

async function rename(tok, roomId, name) {
  await rest(tok, "PATCH", `/api/rooms/${roomId}`, { name }, { key: randomUUID() });
}

for (const batch of [true, false]) {
  test(`a subscribe past the cap is paged to the head while live events arrive (batch: ${batch})`, { timeout: 120_000 }, async () => {
    const org = `u_${randomUUID().slice(0, 8)}`;
    const tok = token(org);
    const roomId = (await rest(tok, "POST", "/api/rooms", { name: "cap" }, { key: randomUUID() })).room.id;
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < HEAD - 1) await rename(tok, roomId, `r${next++}`);
      }),
    );
    const client = new RoomcastClient(URL_, { token: tok, batch });
    const received = [];
    const committed = [];
    const notices = [];
    // Seen on the wire by the socket itself, before the SDK has delivered them.
    const onWire = new Set();
    const wireWaiters = new Map(); // seq -> resolve
    const seenOnWire = (seq) => new Promise((resolve) => (onWire.has(seq) ? resolve() : wireWaiters.set(seq, resolve)));
    client.socket.onAny((event, payload) => {
      for (const p of event === "room:events" ? payload : [payload]) {
        if (p?.roomId !== roomId || typeof p.seq !== "number") continue;
        onWire.add(p.seq);
        wireWaiters.get(p.seq)?.();
      }
    });
    client.on("room:subscribed", (notice) => notices.push(notice));
    client.on("*", async (event, payload) => {
      if (payload?.roomId !== roomId || typeof payload.seq !== "number") return;
      received.push(payload);
      if (payload.seq !== PAUSE_AT || committed.length > 0) return;
      // Inside the paged range: commit live events and wait until each is on the wire,
      // so each arrives while the SDK is still paging (handlers are awaited in order).
      for (let i = 0; i < LIVE; i++) {
        await rename(tok, roomId, `live ${i}`);
        const seq = HEAD + i + 1;
        await seenOnWire(seq); // the test's own timeout bounds it
        committed.push(seq);
      }
    });
    try {
      const ack = await client.subscribe(roomId, { lastSeq: 0 });
      assert.equal(ack.headSeq, HEAD);
      assert.equal(ack.replaying, CAP);
      assert.deepEqual(ack.replay, { truncated: true, nextAfter: CAP });
      await until(client, () => client.lastSeq(roomId) === HEAD + LIVE, 60_000, `seq ${HEAD + LIVE}`);
      assert.deepEqual(committed, Array.from({ length: LIVE }, (_, i) => HEAD + i + 1));
      checkOnceInOrder(assert, received, HEAD + LIVE);
      assert.ok(client.stats.gapsRefilled >= 1, "paged with room:replay");
      assert.deepEqual(notices.map((n) => n.replay), [{ truncated: true, nextAfter: CAP }]);
      await until(client, () => client.status === "live", 10_000, "live");
    } finally {
      client.close();
    }
  });
}
