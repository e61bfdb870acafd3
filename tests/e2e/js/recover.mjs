// Connection state recovery with the official socket.io-client, nothing added:
//
//   URL=… TOKEN=… ROOMS=room_a,room_b node recover.mjs
//
// Subscribes to every room (no lastSeq), then reads commands from stdin:
// "drop" closes the transport (as a network failure would; socket.io-client
// reconnects by itself, sending {pid, offset}). Prints JSON lines:
// {"connect": n, "recovered": bool} at each connect, {"room", "seq", "replayed"}
// for each room event, {"subscribed": roomId} for each subscribe ack.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const out = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const rooms = process.env.ROOMS.split(",");
const socket = io(process.env.URL, { auth: { token: process.env.TOKEN }, transports: ["websocket"] });
let connects = 0;
socket.on("connect", async () => {
  connects += 1;
  out({ connect: connects, recovered: socket.recovered });
  if (connects > 1) return; // recovery brings the rooms back
  for (const roomId of rooms) {
    const ack = await socket.timeout(10_000).emitWithAck("room:subscribe", { roomId });
    if (!ack.success) throw new Error(JSON.stringify(ack));
    out({ subscribed: roomId });
  }
});
socket.onAny((event, payload) => {
  if (payload && typeof payload.seq === "number" && typeof payload.eventId === "string") {
    out({ room: payload.roomId, seq: payload.seq, replayed: payload.replayed === true });
  }
});
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "drop") socket.io.engine.close();
});
process.stdin.on("end", () => process.exit(0));
