// Runs docs/protocol.md's own `followRoom` example, unmodified, against a server.
//
//   node doc_follow_room.mjs MODULE URL TOKEN ROOM_ID LAST_SEQ
//
// MODULE is the example's code block written to a file by the test. Prints one JSON
// line per delivered event {"seq", "event", "replayed"}, per event that reached the
// socket {"wire": seq}, and {"paging": afterSeq} when the example first asks for
// `room:replay`: that call (and every later one) is held until a "go" line arrives
// on stdin, so the test can commit live events while the paging has not finished.
import { createInterface } from "node:readline";

const [modulePath, url, token, roomId, lastSeqArg] = process.argv.slice(2);
const { followRoom } = await import(modulePath);

const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
let release;
const released = new Promise((resolve) => (release = resolve));
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "go") release();
});

const socket = followRoom(url, () => token, roomId, Number(lastSeqArg), (event, payload) => {
  if (typeof payload?.seq === "number") print({ seq: payload.seq, event, replayed: payload.replayed === true });
});
socket.onAny((event, payload) => {
  if (payload?.roomId === roomId && typeof payload.seq === "number") print({ wire: payload.seq });
});
// The example calls `socket.timeout(ms).emitWithAck(...)`: hold its room:replay calls.
const timeout = socket.timeout.bind(socket);
let asked = false;
socket.timeout = (ms) => {
  const timed = timeout(ms);
  return {
    emitWithAck: async (event, data) => {
      if (event === "room:replay") {
        if (!asked) print({ paging: data.afterSeq });
        asked = true;
        await released;
      }
      return timed.emitWithAck(event, data);
    },
  };
};
process.stdin.on("end", () => process.exit(0));
