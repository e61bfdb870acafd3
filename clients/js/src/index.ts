/**
 * roomcast's browser SDK: every room event once, in seq order, across reconnects.
 *
 * The same guarantees as the Python client (`roomcast.client.RoomcastClient`),
 * on the official socket.io-client:
 *
 * - a position (`lastSeq`) per room; an event at or below it is a duplicate and
 *   is dropped, whichever path it came by (live, replay, recovery);
 * - handlers get a room's events strictly in seq order, one at a time;
 * - a gap (seq jumps) is refilled with `room:replay` before later events;
 * - after any reconnect every room is subscribed again with its position, so
 *   the server replays what was missed; the subscribe ack may come before or
 *   after the replayed events (`room:subscribed` ends the replay either way);
 * - a subscribe replays at most the server's cap inline (`replay.truncated` in its
 *   ack): the rest, up to its `headSeq`, is paged with `room:replay`, live events
 *   held until it is filled;
 * - with `storage`, positions survive a page reload;
 * - `token:expired` reconnects with a fresh token from the `token` function;
 * - `room:unsubscribed` with a `reason` (removed from the room, the room deleted,
 *   a refill refused for that) stops following the room: no refill, no
 *   resubscribe; the application hears the notice through its handlers, and a
 *   refused resubscribe (`PERMISSION_DENIED`, `ROOM_NOT_FOUND`) stops it too;
 * - failures reject with `RoomcastError {code, message, details}`.
 *
 * @module
 */

import { io, type Socket } from "socket.io-client";

/** The SDK's version (also on `RoomcastClient.version`). */
export const VERSION = "0.1.0";

/** Where the client stands: see `RoomcastClient.status`. */
export type Status = "connecting" | "live" | "catching-up" | "offline";

/** A token, or a function giving one; called on every (re)connect and after `token:expired`. */
export type TokenSource = string | (() => string | Promise<string>);

/** The subset of the Web Storage API the client uses (`sessionStorage`, `localStorage`). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A room event's payload: the fields every event has, and the event's own. */
export interface EventPayload {
  eventId: string;
  seq: number;
  type?: string;
  roomId?: string;
  timestamp?: string;
  [field: string]: unknown;
}

/** `{event, payload}`, as `room:replay` and the REST log return events. */
export interface Envelope {
  event: string;
  payload: EventPayload;
}

/** A page of a room's history (`room:replay`). */
export interface ReplayPage {
  roomId: string;
  events: Envelope[];
  headSeq: number;
  nextAfter: number;
}

/** Options of `new RoomcastClient(url, options)`. */
export interface ClientOptions {
  /** The JWT, or a (sync or async) function returning a fresh one. */
  token: TokenSource;
  /** Keeps each room's position across page reloads (e.g. `sessionStorage`). */
  storage?: StorageLike;
  /** Prefix of the storage keys; default `"roomcast:"`. */
  storagePrefix?: string;
  /** Default `["websocket", "polling"]`: WebSocket, falling back to HTTP long-polling. */
  transports?: ("websocket" | "polling")[];
  /** Milliseconds to wait for any ack; default 30 000. */
  requestTimeout?: number;
  /** First reconnection delay in ms (doubles up to 5 s); default 500. */
  reconnectionDelay?: number;
  /** Subscribe with `batch: true` (`room:events` frames); default true. */
  batch?: boolean;
  /**
   * Fault injection for tests: return false to drop an incoming event (each event
   * of a `room:events` frame is asked about alone) as if the network had lost it.
   * Not for applications.
   */
  wireFilter?: (event: string, payload: unknown) => boolean;
}

/** Subscribe options: `lastSeq` starts after that seq instead of the kept position. */
export interface SubscribeOptions {
  lastSeq?: number;
}

/** A refusal or failure: the protocol's error code, its message and details. */
export class RoomcastError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(`${code}: ${message}`);
    this.name = "RoomcastError";
    this.code = code;
    this.details = details;
  }
}

/** `handler(payload, event)` for a named event; `handler(event, payload)` for `"*"`. */
export type EventHandler = (payload: any, event: string) => unknown;
export type AnyHandler = (event: string, payload: any) => unknown;
export type StatusHandler = (status: Status) => unknown;

/** Counters, for tests and indicators. */
export interface ClientStats {
  delivered: number;
  duplicatesDropped: number;
  gapsRefilled: number;
  reconnects: number;
}

const INBOX = "user:"; // the notification stream's feed key (room ids never contain ':')
const REPLAY_LIMIT = 1000;
const RETRYABLE = new Set(["SERVICE_UNAVAILABLE", "TIMEOUT", "RATE_LIMIT_EXCEEDED", "DISCONNECTED"]);

interface Feed {
  key: string;
  lastSeq: number | null;
  pending: Map<number, [string, EventPayload]>;
  /** The socket id this feed was (or is being) subscribed on. */
  sid: string | null;
  subscribing: Promise<Record<string, any>> | null;
  /** The replay ends at this seq (the ack's / `room:subscribed`'s headSeq). */
  replayEnd: number | null;
  /** Up to here the server is still sending the replay inline (the ack's
   * `replay.nextAfter`); `null` once `room:subscribed` came. Paging waits for it. */
  inlineEnd: number | null;
  /** This subscription's `room:subscribed` came (it may overtake the ack's handling). */
  noticed: boolean;
  draining: boolean;
  retry: ReturnType<typeof setTimeout> | null;
  backoff: number;
  /** A subscribe of this feed succeeded once (later failures are reported as "error"). */
  confirmed: boolean;
}

function newFeed(key: string, lastSeq: number | null): Feed {
  return {
    key,
    lastSeq,
    pending: new Map(),
    sid: null,
    subscribing: null,
    replayEnd: null,
    inlineEnd: null,
    noticed: false,
    draining: false,
    retry: null,
    backoff: 500,
    confirmed: false,
  };
}

function isRecord(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function feedKeyOf(event: string, payload: Record<string, any>): string | null {
  if (event.startsWith("notification:") && "userId" in payload) return INBOX;
  return typeof payload.roomId === "string" ? payload.roomId : null;
}

/** Follow rooms and the user's notifications; see the module documentation. */
export class RoomcastClient {
  static readonly version = VERSION;

  /** The underlying socket.io-client socket (for `socket.recovered`, `socket.id`). */
  readonly socket: Socket;
  readonly url: string;
  readonly stats: ClientStats = { delivered: 0, duplicatesDropped: 0, gapsRefilled: 0, reconnects: 0 };

  #options: ClientOptions;
  #timeout: number;
  #batch: boolean;
  #feeds = new Map<string, Feed>();
  #handlers = new Map<string, Set<(...args: any[]) => unknown>>();
  #status: Status = "connecting";
  #everConnected = false;
  #tokenExpired = false;
  #closed = false;
  #authRetry: ReturnType<typeof setTimeout> | null = null;
  #authBackoff = 500;
  #connectWaiters: (() => void)[] = [];

  constructor(url: string, options: ClientOptions) {
    if (!options || (typeof options.token !== "string" && typeof options.token !== "function")) {
      throw new RoomcastError("INVALID_PAYLOAD", "options.token must be a string or a function");
    }
    this.url = url;
    this.#options = options;
    this.#timeout = options.requestTimeout ?? 30_000;
    this.#batch = options.batch ?? true;
    const delay = options.reconnectionDelay ?? 500;
    this.socket = io(url, {
      transports: options.transports ?? ["websocket", "polling"],
      tryAllTransports: true,
      reconnectionDelay: delay,
      reconnectionDelayMax: 5000,
      auth: (cb: (data: object) => void) => {
        this.#freshToken().then(
          (token) => cb({ token }),
          (err: unknown) => {
            this.#emit("error", new RoomcastError("AUTHENTICATION_FAILED", `token: ${String(err)}`));
            cb({ token: "" });
          },
        );
      },
    });
    this.socket.on("connect", () => this.#onConnect());
    this.socket.on("disconnect", (reason: string) => this.#onDisconnect(reason));
    this.socket.on("connect_error", (err: Error & { data?: any }) => this.#onConnectError(err));
    this.socket.onAny((event: string, ...args: unknown[]) => this.#onWire(event, args[0]));
  }

  // ------------------------------------------------------------------ API

  /** `"connecting"` before the first connection; `"offline"` while disconnected after it;
   * `"catching-up"` while a room's replay or gap refill is running; else `"live"`. */
  get status(): Status {
    return this.#status;
  }

  /** Handle an event; `"*"` gets every event as `(event, payload)`, `"status"` the
   * status, `"error"` a `RoomcastError` the client could not return to a caller.
   * Returns a function that removes the handler. */
  on(event: "status", handler: StatusHandler): () => void;
  on(event: "*", handler: AnyHandler): () => void;
  on(event: string, handler: EventHandler): () => void;
  on(event: string, handler: (...args: any[]) => unknown): () => void {
    let set = this.#handlers.get(event);
    if (set === undefined) this.#handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => this.off(event, handler);
  }

  off(event: string, handler: (...args: any[]) => unknown): void {
    this.#handlers.get(event)?.delete(handler);
  }

  /** The last seq delivered for a room (`null`: not followed, or no position yet). */
  lastSeq(roomId: string): number | null {
    const feed = this.#feeds.get(roomId);
    if (feed !== undefined) return feed.lastSeq;
    return this.#stored(roomId);
  }

  /** Subscribe to a room. Starts after the kept position (this client's, else the one
   * in `storage`); `{lastSeq}` starts elsewhere (0: the whole history); with neither,
   * live events only. Resolves with the ack's `data` (`roomId`, `room`, `headSeq`). */
  async subscribe(roomId: string, options: SubscribeOptions = {}): Promise<Record<string, any>> {
    this.#ensureOpen();
    let feed = this.#feeds.get(roomId);
    if (feed === undefined) {
      feed = newFeed(roomId, options.lastSeq ?? this.#stored(roomId));
      this.#feeds.set(roomId, feed);
    } else if (options.lastSeq !== undefined && options.lastSeq !== feed.lastSeq) {
      feed.lastSeq = options.lastSeq;
      feed.pending.clear();
      feed.sid = null;
    }
    try {
      return await this.#subscribeFeed(feed);
    } catch (err) {
      if (this.#feeds.get(roomId) === feed && !feed.confirmed) this.#feeds.delete(roomId);
      throw err;
    }
  }

  /** Stop following a room (its stored position is kept). */
  async unsubscribe(roomId: string): Promise<void> {
    const feed = this.#feeds.get(roomId);
    if (feed?.retry) clearTimeout(feed.retry);
    this.#feeds.delete(roomId);
    this.#updateStatus();
    await this.#call("room:unsubscribe", { roomId });
  }

  /** A page of a room's history after `afterSeq` (does not touch the position). */
  async replay(roomId: string, afterSeq: number, limit = 100): Promise<ReplayPage> {
    return (await this.#call("room:replay", { roomId, afterSeq, limit })) as ReplayPage;
  }

  /** Deliver the user's notification events (`notification:*`) once each, in seq order,
   * after `lastSeq` (default: the kept position, else 0); kept up across reconnects. */
  async followNotifications(options: SubscribeOptions = {}): Promise<void> {
    this.#ensureOpen();
    let feed = this.#feeds.get(INBOX);
    if (feed === undefined) {
      feed = newFeed(INBOX, options.lastSeq ?? this.#stored(INBOX) ?? 0);
      this.#feeds.set(INBOX, feed);
    }
    await this.#subscribeFeed(feed);
  }

  /** Who is online in a room: `{roomId, users, count}`. */
  async presence(roomId: string): Promise<Record<string, any>> {
    return this.#call("presence:get_online", { roomId });
  }

  /** Start (`true`) or stop (`false`) this socket's typing indicator in a room. */
  async typing(roomId: string, typing: boolean): Promise<Record<string, any>> {
    return this.#call(typing ? "typing:start" : "typing:stop", { roomId });
  }

  /** Answer a quiz question; resolves with the ack (`correct`, `responseTime`, `rank`, `data`). */
  async answer(questionId: string, answer: string): Promise<Record<string, any>> {
    const ack = await this.#rawCall("quiz:answer_submit", { questionId, answer });
    return ack;
  }

  /** Mark a notification read. */
  async markRead(notificationId: string): Promise<Record<string, any>> {
    return this.#call("notification:mark_read", { notificationId });
  }

  /** Disconnect for good. */
  close(): void {
    this.#closed = true;
    if (this.#authRetry) clearTimeout(this.#authRetry);
    for (const feed of this.#feeds.values()) if (feed.retry) clearTimeout(feed.retry);
    this.socket.disconnect();
    this.#setStatus("offline");
  }

  // ------------------------------------------------------------- internals

  #ensureOpen(): void {
    if (this.#closed) throw new RoomcastError("DISCONNECTED", "the client is closed");
  }

  async #freshToken(): Promise<string> {
    const token = this.#options.token;
    return typeof token === "function" ? await token() : token;
  }

  #storageKey(key: string): string {
    return `${this.#options.storagePrefix ?? "roomcast:"}lastSeq:${key}`;
  }

  #stored(key: string): number | null {
    const storage = this.#options.storage;
    if (!storage) return null;
    try {
      const raw = storage.getItem(this.#storageKey(key));
      if (raw === null) return null;
      const seq = Number(raw);
      return Number.isSafeInteger(seq) && seq >= 0 ? seq : null;
    } catch {
      return null;
    }
  }

  #persist(feed: Feed): void {
    const storage = this.#options.storage;
    if (!storage || feed.lastSeq === null) return;
    try {
      storage.setItem(this.#storageKey(feed.key), String(feed.lastSeq));
    } catch {
      // storage full or denied: the position is still kept in memory
    }
  }

  async #rawCall(event: string, payload: Record<string, unknown>): Promise<Record<string, any>> {
    let ack: unknown;
    try {
      ack = await this.socket.timeout(this.#timeout).emitWithAck(event, payload);
    } catch (err) {
      throw new RoomcastError("TIMEOUT", `${event}: no answer within ${this.#timeout} ms (${String(err)})`);
    }
    if (!isRecord(ack) || ack.success !== true) {
      const error = isRecord(ack) && isRecord(ack.error) ? ack.error : {};
      throw new RoomcastError(
        typeof error.code === "string" ? error.code : "INVALID_PAYLOAD",
        typeof error.message === "string" ? error.message : `unexpected answer to ${event}`,
        isRecord(error.details) ? error.details : {},
      );
    }
    return ack;
  }

  async #call(event: string, payload: Record<string, unknown>): Promise<Record<string, any>> {
    const ack = await this.#rawCall(event, payload);
    return isRecord(ack.data) ? ack.data : {};
  }

  #nextConnect(): Promise<void> {
    return new Promise((resolve) => this.#connectWaiters.push(resolve));
  }

  /** Subscribe `feed` on the current socket, once per socket. */
  async #subscribeFeed(feed: Feed): Promise<Record<string, any>> {
    for (;;) {
      if (!this.socket.connected) await this.#nextConnect(); // #onConnect starts it
      if (feed.sid !== this.socket.id || feed.subscribing === null) this.#startSubscribe(feed);
      const attempt = feed.subscribing!;
      try {
        return await attempt;
      } catch (err) {
        // A dropped connection: the reconnect subscribes again; wait for that one.
        if (err instanceof RoomcastError && (err.code === "TIMEOUT" || err.code === "DISCONNECTED")) {
          if (this.#closed) throw err;
          if (!this.socket.connected) continue;
        }
        throw err;
      }
    }
  }

  #startSubscribe(feed: Feed): void {
    feed.sid = this.socket.id ?? null;
    feed.replayEnd = null;
    feed.inlineEnd = null;
    feed.noticed = false;
    const sid = feed.sid;
    const run = async (): Promise<Record<string, any>> => {
      if (feed.key === INBOX) {
        await this.#catchUpInbox(feed);
        return {};
      }
      const payload: Record<string, unknown> = { roomId: feed.key };
      if (feed.lastSeq !== null) payload.lastSeq = feed.lastSeq;
      if (this.#batch) payload.batch = true;
      const data = await this.#call("room:subscribe", payload);
      if (this.#feeds.get(feed.key) !== feed || feed.sid !== sid) return data;
      const head = typeof data.headSeq === "number" ? data.headSeq : null;
      if (feed.lastSeq === null && head !== null) {
        feed.lastSeq = head; // live from here on
        this.#persist(feed);
      }
      if (head !== null) feed.replayEnd = Math.max(feed.replayEnd ?? 0, head);
      // The server sends up to replay.nextAfter itself (all of it unless truncated):
      // page only past it, once it is done, instead of reading it twice.
      const inline = isRecord(data.replay) ? data.replay.nextAfter : head;
      if (!feed.noticed && typeof inline === "number") feed.inlineEnd = inline;
      feed.backoff = 500;
      return data;
    };
    const attempt = run();
    feed.subscribing = attempt;
    this.#updateStatus();
    attempt.then(
      () => {
        feed.confirmed = true;
        this.#drain(feed);
      },
      (err: unknown) => {
        if (feed.subscribing === attempt) feed.subscribing = null;
        this.#onSubscribeFailed(feed, sid, err);
      },
    );
  }

  #onSubscribeFailed(feed: Feed, sid: string | null, err: unknown): void {
    this.#updateStatus();
    if (this.#closed || this.#feeds.get(feed.key) !== feed) return;
    const code = err instanceof RoomcastError ? err.code : "INTERNAL_ERROR";
    if (RETRYABLE.has(code) && this.socket.connected && this.socket.id === sid) {
      // Retry on the same socket; a reconnect resubscribes anyway.
      feed.retry = setTimeout(() => {
        feed.retry = null;
        if (this.socket.connected && this.#feeds.get(feed.key) === feed) {
          this.#startSubscribe(feed);
          feed.subscribing?.catch(() => undefined);
        }
      }, feed.backoff);
      feed.backoff = Math.min(feed.backoff * 2, 10_000);
    } else if (feed.confirmed) {
      // A resubscribe was refused (e.g. removed from the room): nobody awaits it.
      if (code === "PERMISSION_DENIED" || code === "ROOM_NOT_FOUND") this.#stopFollowing(feed);
      this.#emit("error", err instanceof RoomcastError ? err : new RoomcastError(code, String(err)));
    }
  }

  /** The inbox has no subscribe: fetch what came after the position, up to the head. */
  async #catchUpInbox(feed: Feed): Promise<void> {
    for (;;) {
      const before = feed.lastSeq ?? 0;
      const page = await this.#call("notification:replay", { afterSeq: before, limit: REPLAY_LIMIT });
      for (const item of (page.events ?? []) as Envelope[]) this.#accept(item.event, item.payload);
      await this.#drain(feed);
      const head = typeof page.headSeq === "number" ? page.headSeq : 0;
      const next = typeof page.nextAfter === "number" ? page.nextAfter : 0;
      if (next >= head || (feed.lastSeq ?? 0) <= before) return;
    }
  }

  #onConnect(): void {
    this.#authBackoff = 500;
    if (this.#everConnected) this.stats.reconnects += 1;
    this.#everConnected = true;
    this.#tokenExpired = false;
    for (const feed of this.#feeds.values()) {
      if (feed.retry) clearTimeout(feed.retry);
      feed.retry = null;
      this.#startSubscribe(feed);
      feed.subscribing?.catch(() => undefined); // reported through #onSubscribeFailed
    }
    const waiters = this.#connectWaiters.splice(0);
    for (const wake of waiters) wake();
    this.#updateStatus();
  }

  #onDisconnect(reason: string): void {
    for (const feed of this.#feeds.values()) {
      feed.replayEnd = null;
      feed.inlineEnd = null;
    }
    this.#updateStatus();
    if (this.#closed) return;
    if (reason === "io server disconnect") {
      // socket.io-client does not reconnect after a server-side disconnect. After
      // token:expired we come back with a fresh token; otherwise too, after a pause
      // (e.g. the server restarted its session handling), since a client that stays
      // away silently loses nothing but is no use.
      const fresh = this.#tokenExpired && typeof this.#options.token === "function";
      this.#tokenExpired = false;
      if (!fresh && typeof this.#options.token !== "function") {
        this.#emit("error", new RoomcastError("AUTHENTICATION_FAILED", "the server ended the session and the token is a fixed string"));
      }
      this.#scheduleReconnect(fresh ? 0 : this.#authBackoff);
    }
  }

  #onConnectError(err: Error & { data?: any }): void {
    this.#updateStatus();
    if (this.#closed || this.socket.active) return; // a network failure: socket.io retries
    // Refused by the server (e.g. AUTHENTICATION_FAILED): socket.io-client gives up.
    const data = isRecord(err.data) ? err.data : {};
    const error = new RoomcastError(
      typeof data.code === "string" ? data.code : "AUTHENTICATION_FAILED",
      typeof data.message === "string" ? data.message : err.message,
      isRecord(data.details) ? data.details : {},
    );
    this.#emit("error", error);
    if (typeof this.#options.token === "function") this.#scheduleReconnect(this.#authBackoff);
  }

  #scheduleReconnect(delay: number): void {
    if (this.#authRetry) clearTimeout(this.#authRetry);
    this.#authRetry = setTimeout(() => {
      this.#authRetry = null;
      if (!this.#closed && !this.socket.connected) this.socket.connect();
    }, delay);
    this.#authBackoff = Math.min(this.#authBackoff * 2, 30_000);
  }

  #onWire(event: string, payload: unknown): void {
    const filter = this.#options.wireFilter;
    if (event === "room:events" && Array.isArray(payload)) {
      const touched = new Set<Feed>();
      for (const item of payload) {
        if (isRecord(item) && typeof item.type === "string") {
          if (filter && !filter(item.type, item)) continue;
          const feed = this.#accept(item.type, item as EventPayload);
          if (feed) touched.add(feed);
        }
      }
      for (const feed of touched) this.#drain(feed);
      return;
    }
    if (filter && !filter(event, payload)) return;
    if (event === "token:expired") this.#tokenExpired = true;
    if (event === "error" && isRecord(payload)) this.#onServerError(payload);
    if (!isRecord(payload)) {
      this.#dispatch(event, payload);
      return;
    }
    const key = feedKeyOf(event, payload);
    const feed = key === null ? undefined : this.#feeds.get(key);
    if (feed === undefined || typeof payload.seq !== "number") {
      if (event === "room:subscribed" && feed !== undefined && typeof payload.headSeq === "number") {
        // The replay of this subscription ends here: everything up to headSeq must
        // be delivered (or refilled) before we are live.
        if (feed.sid === this.socket.id) {
          feed.replayEnd = Math.max(feed.replayEnd ?? 0, payload.headSeq);
          feed.inlineEnd = null;
          feed.noticed = true;
          this.#drain(feed);
        }
      }
      if (event === "room:unsubscribed" && feed !== undefined && typeof payload.reason === "string") {
        this.#stopFollowing(feed); // out of the room: refilling or retrying would be refused
      }
      this.#dispatch(event, payload); // a notice: presence, typing, room:subscribed, error…
      return;
    }
    if (this.#accept(event, payload as EventPayload)) this.#drain(feed);
  }

  /** A subscribe whose replay could not finish after its ack (the server names it in an
   * `error` event): the socket is not subscribed, so subscribe again from the position. */
  #onServerError(payload: Record<string, any>): void {
    const details = isRecord(payload.details) ? payload.details : {};
    if (details.action !== "room:subscribe" || typeof details.roomId !== "string") return;
    const feed = this.#feeds.get(details.roomId);
    if (feed === undefined || feed.sid !== this.socket.id) return;
    const code = typeof payload.code === "string" ? payload.code : "INTERNAL_ERROR";
    feed.subscribing = null;
    this.#onSubscribeFailed(
      feed,
      feed.sid,
      new RoomcastError(RETRYABLE.has(code) ? code : code === "PERMISSION_DENIED" ? code : "SERVICE_UNAVAILABLE",
        typeof payload.message === "string" ? payload.message : "the replay did not finish", details),
    );
  }

  #stopFollowing(feed: Feed): void {
    if (feed.retry) clearTimeout(feed.retry);
    feed.retry = null;
    if (this.#feeds.get(feed.key) === feed) this.#feeds.delete(feed.key);
    this.#updateStatus();
  }

  /** Queue one event for in-order delivery; the feed to drain, or null. */
  #accept(event: string, payload: EventPayload): Feed | null {
    if (!isRecord(payload) || typeof payload.seq !== "number") return null;
    const key = feedKeyOf(event, payload);
    const feed = key === null ? undefined : this.#feeds.get(key);
    if (feed === undefined) return null;
    if ((feed.lastSeq !== null && payload.seq <= feed.lastSeq) || feed.pending.has(payload.seq)) {
      this.stats.duplicatesDropped += 1;
      return null;
    }
    feed.pending.set(payload.seq, [event, payload]);
    return feed;
  }

  /** Deliver pending events in seq order; refill a gap (or the rest of a replay). */
  async #drain(feed: Feed): Promise<void> {
    if (feed.draining) return;
    feed.draining = true;
    this.#updateStatus();
    try {
      while (this.#feeds.get(feed.key) === feed && feed.lastSeq !== null) {
        const next = feed.pending.get(feed.lastSeq + 1);
        if (next !== undefined) {
          feed.pending.delete(feed.lastSeq + 1);
          feed.lastSeq += 1;
          await this.#deliver(feed, next[0], next[1]);
          continue;
        }
        for (const seq of feed.pending.keys()) if (seq <= feed.lastSeq) feed.pending.delete(seq);
        let before: number | null = null;
        if (feed.pending.size > 0) before = Math.min(...feed.pending.keys());
        else if (feed.inlineEnd !== null && feed.inlineEnd > feed.lastSeq) break; // more is coming
        else if (feed.replayEnd !== null && feed.replayEnd > feed.lastSeq) before = feed.replayEnd + 1;
        if (before === null) break;
        if (!this.socket.connected || feed.sid !== this.socket.id || feed.key === INBOX && feed.subscribing === null) break;
        if (!(await this.#refill(feed, before))) {
          this.#retryLater(feed);
          break;
        }
      }
    } finally {
      feed.draining = false;
      this.#updateStatus();
    }
  }

  #retryLater(feed: Feed): void {
    if (feed.retry || this.#closed) return;
    feed.retry = setTimeout(() => {
      feed.retry = null;
      this.#drain(feed);
    }, 1000);
  }

  async #refill(feed: Feed, before: number): Promise<boolean> {
    const after = feed.lastSeq!;
    const limit = Math.min(REPLAY_LIMIT, before - after - 1);
    let page: Record<string, any>;
    try {
      page =
        feed.key === INBOX
          ? await this.#call("notification:replay", { afterSeq: after, limit })
          : await this.#call("room:replay", { roomId: feed.key, afterSeq: after, limit });
    } catch (err) {
      if (err instanceof RoomcastError && !RETRYABLE.has(err.code)) this.#emit("error", err);
      return false;
    }
    if (feed.lastSeq !== after) return true; // delivered meanwhile by another path
    let progressed = false;
    for (const item of (page.events ?? []) as Envelope[]) {
      const seq = item?.payload?.seq;
      if (typeof seq !== "number" || feed.lastSeq === null || seq <= feed.lastSeq) continue;
      if (seq !== feed.lastSeq + 1) break;
      feed.pending.delete(seq);
      feed.lastSeq = seq;
      await this.#deliver(feed, item.event, item.payload);
      progressed = true;
    }
    // The server read up to nextAfter: seqs up to it it did not return are hidden from
    // this user (not a member then), not lost.
    const scanned = page.nextAfter;
    if (typeof scanned === "number" && feed.lastSeq !== null && feed.lastSeq < scanned && scanned < before) {
      feed.lastSeq = scanned;
      this.#persist(feed);
      progressed = true;
    }
    if (progressed) this.stats.gapsRefilled += 1;
    return progressed;
  }

  async #deliver(feed: Feed, event: string, payload: EventPayload): Promise<void> {
    this.stats.delivered += 1;
    const results: unknown[] = [];
    for (const handler of this.#handlers.get(event) ?? []) results.push(this.#invoke(handler, payload, event));
    for (const handler of this.#handlers.get("*") ?? []) results.push(this.#invoke(handler, event, payload));
    for (const result of results) {
      if (result instanceof Promise) {
        try {
          await result;
        } catch (err) {
          this.#report(err);
        }
      }
    }
    this.#persist(feed);
  }

  #invoke(handler: (...args: any[]) => unknown, a: unknown, b: unknown): unknown {
    try {
      return handler(a, b);
    } catch (err) {
      this.#report(err); // one failing handler must not stop delivery to the others
      return undefined;
    }
  }

  #report(err: unknown): void {
    if (this.#handlers.get("error")?.size) {
      this.#emit("error", err instanceof RoomcastError ? err : new RoomcastError("HANDLER_FAILED", String(err)));
    } else {
      console.error("roomcast: a handler failed", err);
    }
  }

  #dispatch(event: string, payload: unknown): void {
    for (const handler of this.#handlers.get(event) ?? []) this.#invoke(handler, payload, event);
    for (const handler of this.#handlers.get("*") ?? []) this.#invoke(handler, event, payload);
  }

  #emit(event: "error" | "status", value: unknown): void {
    const handlers = this.#handlers.get(event);
    if (event === "error" && !handlers?.size) {
      console.warn("roomcast:", value);
      return;
    }
    for (const handler of handlers ?? []) {
      try {
        handler(value);
      } catch (err) {
        console.error("roomcast: a handler failed", err);
      }
    }
  }

  #busy(feed: Feed): boolean {
    if (feed.sid !== this.socket.id) return true;
    if (feed.subscribing === null) return false; // failed; reported
    if (feed.draining && (feed.pending.size > 0 || feed.replayEnd === null)) return true;
    if (feed.lastSeq === null) return true;
    if (feed.pending.size > 0) return true;
    return feed.key !== INBOX && (feed.replayEnd === null || feed.replayEnd > feed.lastSeq);
  }

  #updateStatus(): void {
    let status: Status;
    if (this.#closed || (!this.socket.connected && this.#everConnected)) status = "offline";
    else if (!this.socket.connected) status = "connecting";
    else status = [...this.#feeds.values()].some((feed) => this.#busy(feed)) ? "catching-up" : "live";
    this.#setStatus(status);
  }

  #setStatus(status: Status): void {
    if (status === this.#status) return;
    this.#status = status;
    this.#emit("status", status);
  }
}
