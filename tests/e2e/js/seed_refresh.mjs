// Seed 003's "Token Refresh" handler, run as written, against a real server.
//
//   node seed_refresh.mjs BASE_URL NAME MODE
//
// Signs NAME in with the built-in issuer, connects with the access token (a
// short one: the server runs with ROOMCAST_ACCESS_TOKEN_TTL=2), and installs
// the refresh handler on `token:expired`:
//   MODE=seed   seed 003's text, unmodified;
//   MODE=fixed  the same plus `refreshToken = data.refreshToken` (docs/api.md).
// Prints ONE JSON line with what happened: connections (and the token each
// used), token:expired notices, every fetch's status and body, connect errors,
// and whether each new token works on REST. Exits 2 after 30 s.
import { io } from "socket.io-client";

const [base, name, mode] = process.argv.slice(2);
const deadline = setTimeout(() => {
  process.stderr.write(`seed_refresh.mjs: timed out; ${JSON.stringify(report)}\n`);
  process.exit(2);
}, 30_000);

const report = { connects: [], expired: [], fetches: [], connectErrors: [], rest: [] };

// A page's fetch resolves '/api/auth/refresh' against the page's origin; Node has
// no page, so this one does it against BASE_URL, and records each answer.
const pageFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const response = await pageFetch(new URL(input, base), init);
  const body = await response.clone().json();
  report.fetches.push({ path: String(input), status: response.status, body });
  return response;
};

const signIn = await (
  await fetch("/api/auth/token", { method: "POST", body: JSON.stringify({ name }) })
).json();
let refreshToken = signIn.refreshToken;

const socket = io(base, { auth: { token: signIn.accessToken } });

function finish() {
  clearTimeout(deadline);
  socket.io.reconnection(false);
  socket.disconnect();
  process.stdout.write(JSON.stringify({ signIn, report }) + "\n");
  process.exit(0);
}

socket.on("connect", async () => {
  const token = socket.auth.token;
  report.connects.push({ token });
  const rest = await pageFetch(new URL("/api/rooms", base), {
    headers: { Authorization: `Bearer ${token}` },
  });
  report.rest.push(rest.status);
  if (mode === "fixed" && report.connects.length === 4) finish();
});
socket.on("connect_error", (error) => {
  report.connectErrors.push({ message: error.message, data: error.data ?? null });
  finish();
});
socket.on("token:expired", (notice) => report.expired.push(notice));

if (mode === "seed") {
  // ---- seed 003, "Token Refresh", verbatim ----
  socket.on('token:expired', () => {
    // Refresh token via REST API
    fetch('/api/auth/refresh', {
      method: 'POST',
      body: JSON.stringify({ refreshToken })
    })
    .then(res => res.json())
    .then(data => {
      // Reconnect with new token
      socket.auth.token = data.accessToken;
      socket.disconnect().connect();
    });
  });
  // ---- end of seed 003 ----
} else {
  socket.on('token:expired', () => {
    fetch('/api/auth/refresh', {
      method: 'POST',
      body: JSON.stringify({ refreshToken })
    })
    .then(res => res.json())
    .then(data => {
      refreshToken = data.refreshToken;   // the one sent is used up
      socket.auth.token = data.accessToken;
      socket.disconnect().connect();
    });
  });
}
