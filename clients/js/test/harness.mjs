// What the SDK tests share: a real `roomcast serve` child process (SIGKILL and restart
// on the same port), tokens signed with the test secret, REST commands.
// Started by tests/e2e/test_js_sdk.py, which sets ROOMCAST_TEST_* (see there).
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { openSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const env = process.env;
export const PYTHON = env.ROOMCAST_TEST_PYTHON;
export const PORT = Number(env.ROOMCAST_TEST_PORT);
export const URL_ = `http://127.0.0.1:${PORT}`;
export const SDK = env.ROOMCAST_TEST_SDK;

export async function loadSdk() {
  return import(SDK);
}

function b64url(data) {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 token the server accepts (the claims `roomcast.tokens.mint` writes). */
export function token(sub, { name = sub, ttl = 3600, roles } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, name, iss: "roomcast", aud: "roomcast", iat: now, exp: now + ttl, jti: randomUUID().replace(/-/g, "") };
  if (roles) claims.roles = roles;
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", env.ROOMCAST_TEST_SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** A REST call; retried while the server is down (the Idempotency-Key makes that safe). */
export async function rest(tok, method, path, body, { key } = {}) {
  const headers = { authorization: `Bearer ${tok}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (key) headers["idempotency-key"] = key;
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(URL_ + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      if (res.status >= 500 && key && attempt < 200) {
        await sleep(100);
        continue;
      }
      const json = await res.json();
      if (!json.success) throw Object.assign(new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json.error)}`), { json });
      return json.data;
    } catch (err) {
      if (err.json || !key || attempt >= 200) throw err;
      await sleep(100); // the server is down: it comes back
    }
  }
}

/** The room's whole log over REST. */
export async function log(tok, roomId) {
  const events = [];
  let after = 0;
  for (;;) {
    const page = await rest(tok, "GET", `/api/rooms/${roomId}/events?after=${after}&limit=1000`);
    events.push(...page.events);
    if (page.events.length < 1000) return events;
    after = page.nextAfter;
  }
}

export class Server {
  constructor() {
    this.child = null;
  }

  async start() {
    const out = openSync(env.ROOMCAST_TEST_LOG, "a");
    this.child = spawn(PYTHON, ["-m", "roomcast", "serve", "--port", String(PORT)], { stdio: ["ignore", out, out], env });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`roomcast serve exited ${this.child.exitCode}`);
      try {
        if ((await fetch(`${URL_}/health`)).status === 200) return;
      } catch {}
      await sleep(100); // readiness of a child process: nothing to await but its port
    }
    throw new Error("roomcast serve did not answer /health");
  }

  async kill() {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGKILL");
    await exited;
  }

  async stop() {
    if (this.child && this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once("exit", resolve));
      this.child.kill("SIGTERM");
      await exited;
    }
  }
}

/** Resolves when `predicate()` holds, checked after each event and status change. */
export function until(client, predicate, ms = 60_000, what = "condition") {
  return new Promise((resolve, reject) => {
    if (predicate()) return resolve();
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${what}: status ${client.status}, stats ${JSON.stringify(client.stats)}`));
    }, ms);
    const check = () => {
      if (predicate()) {
        clearTimeout(timer);
        off();
        resolve();
      }
    };
    const offEvents = client.on("*", check);
    const offStatus = client.on("status", check);
    const off = () => {
      offEvents();
      offStatus();
    };
  });
}

export function checkOnceInOrder(assert, received, head) {
  const seqs = received.map((p) => p.seq);
  assert.deepStrictEqual(seqs, Array.from({ length: head }, (_, i) => i + 1));
  assert.strictEqual(new Set(received.map((p) => p.eventId)).size, head);
}
