// Runs seed 003's Complete Room Subscription Flow (seed_flow.js) as written,
// against a roomcast server, and reports what reached its handlers.
//
//   URL=ws://127.0.0.1:8000 TOKEN=… ROOM_ID=… node seed_flow.mjs
//
// The snippet is used verbatim except for the two values a deployment changes:
// the server URL and the room id. This harness only adds, around it, the three
// UI functions it calls (no-ops), its `userToken`, a wrapper on socket.on that
// records each handled event's eventId, and a line per connect. Prints JSON
// lines: {"handled": eventId} the first time a handler sees an event,
// {"connect": n, "recovered": bool} at every connect.
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const snippet = readFileSync(join(here, "seed_flow.js"), "utf8")
  .replaceAll("wss://api.platform.example.com", process.env.URL)
  .replaceAll("room_xyz789", process.env.ROOM_ID);

const prelude = `
import { Socket as __Socket } from "socket.io-client";
const userToken = process.env.TOKEN;
const __handled = new Set();
const __wrappers = new WeakMap();
const __on = __Socket.prototype.on;
__Socket.prototype.on = function (event, handler) {
  if (event.includes(":") && typeof handler === "function") {
    let wrapped = __wrappers.get(handler);
    if (!wrapped) {
      wrapped = function (data, ...rest) {
        if (data && typeof data.eventId === "string" && !__handled.has(data.eventId)) {
          __handled.add(data.eventId);
          process.stdout.write(JSON.stringify({ handled: data.eventId, event }) + "\\n");
        }
        return handler.call(this, data, ...rest);
      };
      __wrappers.set(handler, wrapped);
    }
    return __on.call(this, event, wrapped);
  }
  return __on.call(this, event, handler);
};
function updateParticipantList() {}
function showWinnerAnimation() {}
function startDrawCountdown() {}
`;
const epilogue = `
let __connects = 0;
socket.on("connect", () => {
  __connects += 1;
  process.stdout.write(JSON.stringify({ connect: __connects, recovered: socket.recovered }) + "\\n");
});
process.stdin.on("data", () => {}); // keeps running until the test closes stdin
process.stdin.on("end", () => process.exit(0));
`;
const file = join(here, `.seed_flow_run_${process.pid}.mjs`);
writeFileSync(file, prelude + snippet + epilogue);
process.on("exit", () => { try { unlinkSync(file); } catch {} });
await import(pathToFileURL(file).href);
