// The room's log checked in the browser, with WebCrypto, from the hashed columns
// (GET /api/rooms/{roomId}/chain): the hash chain, the draws' eligibility and, once
// the seed is revealed, every winner (docs/audit.md). It takes no field of the
// server's word for it except the log itself. Incremental: feed it pages in seq
// order; its state is plain JSON (kept in sessionStorage across reloads).

const ZERO = "0".repeat(64);

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// A JSON string as Python's json.dumps(s, ensure_ascii=False) writes it: the same
// escapes as JSON.stringify (", \, \b \f \n \r \t, other controls as lowercase \u00xx).
function str(value) {
  return value === null || value === undefined ? "null" : JSON.stringify(String(value));
}

/** The bytes an event's hash covers (docs/audit.md, "Canonical bytes"). */
export function canonical(streamId, row) {
  return new TextEncoder().encode(
    '{"actorId":' + str(row.actorId) +
      ',"data":' + row.data +
      ',"eventId":' + str(row.eventId) +
      ',"recordedAt":' + str(row.recordedAt) +
      ',"seq":' + String(row.seq) +
      ',"streamId":' + str(streamId) +
      ',"type":' + str(row.type) + "}",
  );
}

function byCodePoint(a, b) {
  // Unicode code point order (not JavaScript's UTF-16 order), as the server sorts.
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** The winner the formula picks: eligible[sha256(seed ‖ n as u64 BE) mod len]. */
export async function pick(seedHex, drawNumber, eligible) {
  const input = new Uint8Array(40);
  input.set(unhex(seedHex), 0);
  new DataView(input.buffer).setBigUint64(32, BigInt(drawNumber), false);
  const entropy = BigInt("0x" + hex(await sha256(input)));
  return eligible[Number(entropy % BigInt(eligible.length))];
}

export class RoomVerifier {
  constructor(roomId, state = null) {
    this.roomId = roomId;
    this.s = state ?? {
      seq: 0,
      hash: ZERO,
      failure: null, // {seq, reason}: the first broken seq
      status: "draft",
      commitment: null,
      seed: null,
      participations: {}, // participation id -> [userId, role]
      wins: {}, // winner id -> userId
      lastDraw: 0,
      draws: {}, // winner id -> {seq, drawNumber, participantId, eligible, eligibleOk, formula}
    };
  }

  toJSON() {
    return this.s;
  }

  get seq() {
    return this.s.seq;
  }

  get failure() {
    return this.s.failure;
  }

  /** The verdict on one winner: "seed" (recomputed from the revealed seed), "chain"
   * (chain intact and the winner was eligible; seed not yet revealed), "fail", or
   * null (not verified yet: its seq is ahead of the verified log). */
  verdict(winnerId) {
    const draw = this.s.draws[winnerId];
    if (!draw) return null;
    if (this.s.failure && this.s.failure.seq <= draw.seq) return "fail";
    if (!draw.eligibleOk || draw.formula === "fail") return "fail";
    return draw.formula === "ok" ? "seed" : "chain";
  }

  #fail(seq, reason) {
    if (!this.s.failure) this.s.failure = { seq, reason };
  }

  /** Add the next rows (seq order). Returns false once the chain is broken. */
  async add(rows) {
    for (const row of rows) {
      if (this.s.failure) return false;
      if (row.seq !== this.s.seq + 1) {
        this.#fail(row.seq, `expected seq ${this.s.seq + 1}, got ${row.seq}`);
        return false;
      }
      if (row.prevHash !== this.s.hash) this.#fail(row.seq, "prevHash is not the previous event's hash");
      const prev = unhex(this.s.hash);
      const body = canonical(this.roomId, row);
      const joined = new Uint8Array(prev.length + body.length);
      joined.set(prev, 0);
      joined.set(body, prev.length);
      const computed = hex(await sha256(joined));
      if (computed !== row.hash) this.#fail(row.seq, "hash does not match the event's content");
      let data;
      try {
        data = JSON.parse(row.data);
      } catch {
        this.#fail(row.seq, "data is not JSON");
        return false;
      }
      try {
        await this.#fold(row, data);
      } catch (err) {
        this.#fail(row.seq, `unexpected ${row.type} event: ${err}`);
        return false;
      }
      this.s.seq = row.seq;
      this.s.hash = computed;
    }
    return !this.s.failure;
  }

  async #fold(row, data) {
    const s = this.s;
    switch (row.type) {
      case "participant:joined":
      case "participant:updated": {
        const p = data.participant;
        s.participations[p.id] = [p.userId, p.role];
        break;
      }
      case "participant:left":
        delete s.participations[data.participantId];
        break;
      case "winner:removed":
        delete s.wins[data.winnerId];
        break;
      case "room:status_changed":
        if (data.newStatus === "active") {
          if (typeof data.seedCommitment !== "string") this.#fail(row.seq, "activation without a seedCommitment");
          s.commitment = data.seedCommitment ?? null;
        }
        if (data.oldStatus === "active" && typeof data.seedReveal === "string") await this.#reveal(row.seq, data.seedReveal);
        s.status = data.newStatus;
        break;
      case "room:deleted":
        if (typeof data.seedReveal === "string") await this.#reveal(row.seq, data.seedReveal);
        s.status = "deleted";
        break;
      case "winner:selected": {
        const w = data.winner;
        const eligible = Object.entries(s.participations)
          .filter(([, [userId, role]]) => role === "participant" && !Object.values(s.wins).includes(userId))
          .map(([id]) => id)
          .sort(byCodePoint);
        const eligibleOk =
          s.status === "active" &&
          data.drawNumber === s.lastDraw + 1 &&
          data.eligibleCount === eligible.length &&
          eligible.includes(w.participantId);
        s.lastDraw = data.drawNumber;
        s.draws[w.id] = { seq: row.seq, drawNumber: data.drawNumber, participantId: w.participantId, eligible, eligibleOk, formula: "pending" };
        if (s.seed) await this.#judge(s.draws[w.id]);
        s.wins[w.id] = w.participant.user.id;
        break;
      }
      default:
        break;
    }
  }

  async #reveal(seq, seedHex) {
    const s = this.s;
    if (!s.commitment || hex(await sha256(unhex(seedHex))) !== s.commitment) {
      this.#fail(seq, "the revealed seed does not match the commitment");
      return;
    }
    s.seed = seedHex;
    for (const draw of Object.values(s.draws)) await this.#judge(draw);
  }

  async #judge(draw) {
    const expected = draw.eligible.length ? await pick(this.s.seed, draw.drawNumber, draw.eligible) : null;
    draw.formula = expected === draw.participantId ? "ok" : "fail";
    draw.eligible = []; // judged: the list is no longer needed
  }

  /** Fetch and check the log up to the head; `get(path)` returns a REST page's data. */
  async catchUp(get) {
    for (;;) {
      if (this.s.failure) return;
      const page = await get(`/api/rooms/${encodeURIComponent(this.roomId)}/chain?after=${this.s.seq}&limit=500`);
      if (page.events.length === 0) return;
      await this.add(page.events);
      if (page.nextAfter >= page.headSeq) return;
    }
  }
}
