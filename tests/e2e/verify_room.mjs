// Runs the room page's browser verifier (clients/web/verify.js) in Node against a real
// server: node verify_room.mjs URL TOKEN ROOM_ID. Prints one JSON line:
// {seq, failure, verdicts, tampered: {data, forgedWinner}} (see test_web_verifier.py).
import { RoomVerifier, canonical } from "../../clients/web/verify.js";

const [url, token, roomId] = process.argv.slice(2);

async function get(path) {
  const res = await fetch(url + path, { headers: { authorization: `Bearer ${token}` } });
  const body = await res.json();
  if (!body.success) throw new Error(JSON.stringify(body.error));
  return body.data;
}

async function sha256hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const verifier = new RoomVerifier(roomId);
await verifier.catchUp(get);
const rows = (await get(`/api/rooms/${roomId}/chain?after=0&limit=1000`)).events;
const winners = rows.filter((r) => r.type === "winner:selected").map((r) => JSON.parse(r.data).winner.id);
const verdicts = Object.fromEntries(winners.map((id) => [id, verifier.verdict(id)]));

// 1. One changed byte in a stored event: the chain breaks at that seq.
const target = rows.find((r) => r.type === "participant:joined");
const changed = rows.map((r) => (r === target ? { ...r, data: r.data.replace('"role":"participant"', '"role":"moderator"') } : r));
const tamperedData = new RoomVerifier(roomId);
await tamperedData.add(changed);

// 2. A forged winner with the whole chain recomputed after it (what a database
// superuser could do): the chain holds, the revealed seed exposes the draw.
const draw = rows.find((r) => r.type === "winner:selected");
const data = JSON.parse(draw.data);
const others = rows
  .filter((r) => r.type === "participant:joined")
  .map((r) => JSON.parse(r.data).participant.id)
  .filter((id) => id !== data.winner.participantId);
let forgedWinner = null;
if (others.length) {
  const forged = [];
  let prev = "0".repeat(64);
  for (const row of rows) {
    let r = row;
    if (row === draw) {
      const swapped = draw.data.split(data.winner.participantId).join(others[0]);
      r = { ...row, data: swapped };
    }
    const prevBytes = Uint8Array.from(prev.match(/../g).map((h) => parseInt(h, 16)));
    const body = canonical(roomId, r);
    const joined = new Uint8Array(32 + body.length);
    joined.set(prevBytes, 0);
    joined.set(body, 32);
    const hash = await sha256hex(joined);
    forged.push({ ...r, prevHash: prev, hash });
    prev = hash;
  }
  const v = new RoomVerifier(roomId);
  await v.add(forged);
  forgedWinner = { chainFailure: v.failure, verdict: v.verdict(data.winner.id) };
}

console.log(JSON.stringify({ seq: verifier.seq, failure: verifier.failure, verdicts, tampered: { data: tamperedData.failure, targetSeq: target.seq, forgedWinner } }));
