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
import { type Socket } from "socket.io-client";
/** The SDK's version (also on `RoomcastClient.version`). */
export declare const VERSION = "0.1.0";
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
export declare class RoomcastError extends Error {
    readonly code: string;
    readonly details: Record<string, unknown>;
    constructor(code: string, message: string, details?: Record<string, unknown>);
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
/** Follow rooms and the user's notifications; see the module documentation. */
export declare class RoomcastClient {
    #private;
    static readonly version = "0.1.0";
    /** The underlying socket.io-client socket (for `socket.recovered`, `socket.id`). */
    readonly socket: Socket;
    readonly url: string;
    readonly stats: ClientStats;
    constructor(url: string, options: ClientOptions);
    /** `"connecting"` before the first connection; `"offline"` while disconnected after it;
     * `"catching-up"` while a room's replay or gap refill is running; else `"live"`. */
    get status(): Status;
    /** Handle an event; `"*"` gets every event as `(event, payload)`, `"status"` the
     * status, `"error"` a `RoomcastError` the client could not return to a caller.
     * Returns a function that removes the handler. */
    on(event: "status", handler: StatusHandler): () => void;
    on(event: "*", handler: AnyHandler): () => void;
    on(event: string, handler: EventHandler): () => void;
    off(event: string, handler: (...args: any[]) => unknown): void;
    /** The last seq delivered for a room (`null`: not followed, or no position yet). */
    lastSeq(roomId: string): number | null;
    /** Subscribe to a room. Starts after the kept position (this client's, else the one
     * in `storage`); `{lastSeq}` starts elsewhere (0: the whole history); with neither,
     * live events only. Resolves with the ack's `data` (`roomId`, `room`, `headSeq`). */
    subscribe(roomId: string, options?: SubscribeOptions): Promise<Record<string, any>>;
    /** Stop following a room (its stored position is kept). */
    unsubscribe(roomId: string): Promise<void>;
    /** A page of a room's history after `afterSeq` (does not touch the position). */
    replay(roomId: string, afterSeq: number, limit?: number): Promise<ReplayPage>;
    /** Deliver the user's notification events (`notification:*`) once each, in seq order,
     * after `lastSeq` (default: the kept position, else 0); kept up across reconnects. */
    followNotifications(options?: SubscribeOptions): Promise<void>;
    /** Who is online in a room: `{roomId, users, count}`. */
    presence(roomId: string): Promise<Record<string, any>>;
    /** Start (`true`) or stop (`false`) this socket's typing indicator in a room. */
    typing(roomId: string, typing: boolean): Promise<Record<string, any>>;
    /** Answer a quiz question; resolves with the ack (`correct`, `responseTime`, `rank`, `data`). */
    answer(questionId: string, answer: string): Promise<Record<string, any>>;
    /** Mark a notification read. */
    markRead(notificationId: string): Promise<Record<string, any>>;
    /** Disconnect for good. */
    close(): void;
}
