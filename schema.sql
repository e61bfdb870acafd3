-- roomcast schema, whole: what a new database is created with. A database that
-- exists already is brought here by the numbered migrations in
-- src/outbox/migrations/ (docs/operations.md "Schema"), so a change to this file
-- comes with a migration that makes the same change, in the same commit.
-- `roomcast_migrations` records which of them a database has (outbox/database.py).
-- Every statement stays idempotent, so running this file on a database at the
-- current version changes nothing (it rebuilds a dropped room directory: ADR 0014).
-- Needs PostgreSQL 14+ (CREATE OR REPLACE TRIGGER); developed on 15 and 18.

-- One row per stream (a room). Its row lock is what serialises the writers of
-- one stream: every append's first write is to this row, so appends to a room
-- commit in `version` order and a rolled-back append rolls the counter back
-- (the per-room seq stays dense). Other rooms are never blocked.
CREATE TABLE IF NOT EXISTS streams (
    stream_id   text PRIMARY KEY,
    version     bigint NOT NULL CHECK (version >= 0),     -- = seq of the stream's last event
    last_hash   bytea NOT NULL,                           -- head of the hash chain (docs/audit.md)
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The immutable log. `seq` is dense per stream (1, 2, 3, …); `global_id` only
-- orders rows inside one append and is NOT a safe cursor (ids are taken at
-- INSERT, rows become visible at COMMIT). `data` is `json`, not `jsonb`, so the
-- exact bytes that were hashed are the bytes that are stored.
CREATE TABLE IF NOT EXISTS events (
    global_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id   text NOT NULL REFERENCES streams (stream_id),
    seq         bigint NOT NULL CHECK (seq >= 1),
    event_id    uuid NOT NULL UNIQUE,
    type        text NOT NULL,
    data        json NOT NULL,
    actor_id    text,
    recorded_at timestamptz NOT NULL,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    UNIQUE (stream_id, seq)
);
CREATE INDEX IF NOT EXISTS events_recorded_at ON events (stream_id, recorded_at);
-- A replay asks "was this user a member at seq N?" (EventStore.member_after):
-- only membership events matter, so the lookup must not scan the whole stream.
CREATE INDEX IF NOT EXISTS events_membership ON events (stream_id, seq)
    WHERE type IN ('participant:joined', 'participant:left');

-- Append-only, enforced by the database: UPDATE, DELETE and TRUNCATE raise.
-- (A superuser can disable triggers; the hash chain makes that detectable.)
CREATE OR REPLACE FUNCTION roomcast_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'roomcast: % on % is forbidden: the event log is append-only',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'RC001';
END
$$;
CREATE OR REPLACE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION roomcast_forbid_change();
CREATE OR REPLACE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION roomcast_forbid_change();

-- The transactional outbox: one row per event, written in the same statement
-- as the event. The relay publishes committed rows and deletes them; it keeps
-- no cursor, so a transaction that commits late is still found.
CREATE TABLE IF NOT EXISTS outbox (
    global_id   bigint PRIMARY KEY REFERENCES events (global_id),
    stream_id   text NOT NULL,
    seq         bigint NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS outbox_stream_seq ON outbox (stream_id, seq);

-- Idempotency keys, written in the same statement as the events they produced:
-- a retried command finds its first result here and appends nothing.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal   text NOT NULL,
    key         text NOT NULL,
    fingerprint bytea NOT NULL,
    stream_id   text NOT NULL,
    result      json NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);

-- Snapshots bound the cost of loading a room: state at `version`, so a load
-- reads the snapshot plus at most `snapshot_every` events, whatever the
-- stream's length. A cache, not a source of truth: deleting it loses nothing.
-- `state_version` is the shape of `state` (the decider's state version); a load
-- ignores a snapshot of another version and rebuilds from the events (migration 0002).
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id     text PRIMARY KEY REFERENCES streams (stream_id),
    version       bigint NOT NULL,
    state         json NOT NULL,
    state_version integer NOT NULL DEFAULT 0  -- 0: written before versions existed
);

-- Secret draw seeds (docs/audit.md), one per room, NOT part of the log: the
-- log holds only sha256(seed), recorded when the room becomes active, until
-- closing the room reveals the seed itself. Written (INSERT … ON CONFLICT DO
-- NOTHING, then read back) before the activating append, so a retried or
-- concurrent activation commits to the same seed. Grant it to the service's
-- role only: whoever reads it can predict the room's draws until it closes.
CREATE TABLE IF NOT EXISTS room_secrets (
    stream_id   text PRIMARY KEY REFERENCES streams (stream_id),
    seed        bytea NOT NULL CHECK (octet_length(seed) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Secret quiz answers (docs/protocol.md "Quiz"), NOT part of the log until the
-- question closes: `quiz:question_published` records sha256(salt || answer),
-- `quiz:question_closed` reveals answer and salt. Written before the publishing
-- append, so a question in the log always has its secret. `closed` only tells
-- the deadline sweeper what is left to close; the log is the truth.
CREATE TABLE IF NOT EXISTS quiz_secrets (
    question_id text PRIMARY KEY,
    stream_id   text NOT NULL REFERENCES streams (stream_id),
    answer      text NOT NULL,
    salt        bytea NOT NULL CHECK (octet_length(salt) >= 16),
    closes_at   timestamptz NOT NULL,
    closed      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quiz_secrets_open ON quiz_secrets (closes_at) WHERE NOT closed;

-- Revoked tokens, by `jti`. Every node keeps the set in memory (verification is
-- synchronous) and refreshes it from here: at once on NOTIFY roomcast_revoked
-- (sent after the revoking commit, payload = the jti), and every
-- ROOMCAST_REVOCATION_REFRESH seconds in case a notification was lost. A row is
-- only needed while the token could still be accepted: housekeeping deletes it
-- once `expires_at` (the token's `exp`, or a retention for unknown ones) is past.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL,
    revoked_by  text,
    revoked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at ON revoked_tokens (expires_at);

-- Connection state recovery (docs/decisions/0007-connection-state-recovery.md).
-- The relay's publication order: one row per published batch, written with
-- the batch's DELETE from the outbox; kept a few hours (housekeeping).
CREATE SEQUENCE IF NOT EXISTS relay_batch_seq;
CREATE TABLE IF NOT EXISTS relay_batches (
    batch        bigint PRIMARY KEY,
    stream_ids   text[] NOT NULL,
    seqs         bigint[] NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);
-- Several relays publish at once (docs/decisions/0022-relay-partitions.md), so
-- a batch numbered before another can be published after it: `acked` is a
-- number from the same sequence taken when the batch was acknowledged, and a
-- batch acknowledged after a client's offset was numbered may hold events that
-- client missed. NULL in rows written before the column existed.
ALTER TABLE relay_batches ADD COLUMN IF NOT EXISTS acked bigint;
CREATE INDEX IF NOT EXISTS relay_batches_acked ON relay_batches (acked);
-- A recoverable socket session: its user, and per room the seq its
-- subscription started from. Written at subscribe/unsubscribe, not per event.
CREATE TABLE IF NOT EXISTS socket_sessions (
    pid        text PRIMARY KEY,
    user_id    text NOT NULL,
    rooms      jsonb NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Reactions waiting to run (src/service/reactions.py): what the server does
-- because an event was published, e.g. a winner's notification. The relay
-- moves a reacting event here in the statement that deletes its outbox row, so
-- publishing never waits for a reaction and none is lost. The reactor runs
-- them; a failure is tried again later (`next_at`), and after
-- ROOMCAST_REACTION_ATTEMPTS failures the row moves to `dead_letters`.
CREATE TABLE IF NOT EXISTS reaction_queue (
    global_id   bigint PRIMARY KEY REFERENCES events (global_id),
    stream_id   text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_error  text
);
CREATE INDEX IF NOT EXISTS reaction_queue_next_at ON reaction_queue (next_at);

-- Reactions that failed every attempt: shown in /health and /metrics, retried
-- or dropped by an operator (`roomcast deadletter list|retry|drop`).
CREATE TABLE IF NOT EXISTS dead_letters (
    global_id   bigint PRIMARY KEY REFERENCES events (global_id),
    stream_id   text NOT NULL,
    attempts    integer NOT NULL,
    last_error  text,
    failed_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- ===== Built-in token issuer: refresh tokens (docs/api.md "Signing in") =====
-- One row per refresh token ever issued, by sha256 of the token (the token
-- itself is never stored). Every refresh marks its token used and inserts the
-- successor in the same family; presenting a used token again revokes the
-- whole family (and the access tokens minted with it, through revoked_tokens).
-- Rows are deleted by housekeeping once `expires_at` is past.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash        bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id         text NOT NULL,
    user_id           text NOT NULL,
    user_name         text NOT NULL,
    access_jti        text NOT NULL,           -- the access token issued with this one
    access_expires_at timestamptz NOT NULL,
    issued_at         timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    used_at           timestamptz,             -- rotated: its successor was issued
    revoked_at        timestamptz              -- its family was revoked
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- ===== Rooms by member (GET /api/rooms) =====
-- A read model of the log, kept by a trigger on `events` in the appending
-- transaction itself, so it is never behind the log and the append path's
-- statements stay as they are (docs/decisions/0011-room-directory.md).
-- `room_members` holds one row per (user, room) the user organizes or takes
-- part in now; its index serves a page of one user's rooms, newest first,
-- without reading anyone else's. Deleted rooms lose their members.
-- The first run creates the tables and fills them from the existing log,
-- with the log locked against appends so nothing is missed.
CREATE OR REPLACE FUNCTION roomcast_directory_apply(stream text, kind text, data json)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE kind
    WHEN 'room:created' THEN
        INSERT INTO room_directory (stream_id, name, status, organizer_id, created_at)
        VALUES (stream, coalesce(data->'room'->>'name', ''),
                coalesce(data->'room'->>'status', 'draft'),
                coalesce(data->'room'->>'organizerId', ''),
                coalesce((data->'room'->>'createdAt')::timestamptz, now()))
        ON CONFLICT (stream_id) DO NOTHING;
        INSERT INTO room_members (user_id, stream_id, role, room_created_at)
        SELECT d.organizer_id, d.stream_id, 'organizer', d.created_at
        FROM room_directory d WHERE d.stream_id = stream
        ON CONFLICT (user_id, stream_id) DO NOTHING;
    WHEN 'room:updated' THEN
        UPDATE room_directory SET name = coalesce(data->'room'->>'name', name)
        WHERE stream_id = stream;
    WHEN 'room:status_changed' THEN
        UPDATE room_directory SET status = coalesce(data->>'newStatus', status)
        WHERE stream_id = stream;
    WHEN 'room:deleted' THEN
        UPDATE room_directory SET deleted = true WHERE stream_id = stream;
        DELETE FROM room_members WHERE stream_id = stream;
    WHEN 'participant:joined', 'participant:updated' THEN
        INSERT INTO room_members (user_id, stream_id, role, room_created_at)
        SELECT data->'participant'->>'userId', d.stream_id,
               coalesce(data->'participant'->>'role', 'participant'), d.created_at
        FROM room_directory d
        WHERE d.stream_id = stream AND data->'participant'->>'userId' IS NOT NULL
        ON CONFLICT (user_id, stream_id) DO UPDATE SET role = excluded.role
            WHERE room_members.role <> 'organizer';
    WHEN 'participant:left' THEN
        DELETE FROM room_members
        WHERE stream_id = stream AND user_id = data->>'userId' AND role <> 'organizer';
    ELSE
        NULL;
    END CASE;
END
$$;
DO $$
DECLARE
    e record;
BEGIN
    IF to_regclass('room_directory') IS NULL THEN
        CREATE TABLE room_directory (
            stream_id    text PRIMARY KEY,
            name         text NOT NULL,
            status       text NOT NULL,
            organizer_id text NOT NULL,
            created_at   timestamptz NOT NULL,
            deleted      boolean NOT NULL DEFAULT false
        );
        CREATE TABLE room_members (
            user_id         text NOT NULL,
            stream_id       text NOT NULL,
            role            text NOT NULL,          -- organizer | participant | moderator
            room_created_at timestamptz NOT NULL,   -- the page order, next to the user
            PRIMARY KEY (user_id, stream_id)
        );
        CREATE INDEX room_members_page
            ON room_members (user_id, room_created_at DESC, stream_id DESC);
        LOCK TABLE events IN SHARE MODE;
        FOR e IN
            SELECT stream_id, type, data FROM events
            WHERE type IN ('room:created', 'room:updated', 'room:status_changed',
                           'room:deleted', 'participant:joined', 'participant:updated',
                           'participant:left')
            ORDER BY stream_id, seq
        LOOP
            PERFORM roomcast_directory_apply(e.stream_id, e.type, e.data);
        END LOOP;
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION roomcast_directory_on_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM roomcast_directory_apply(NEW.stream_id, NEW.type, NEW.data);
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER events_room_directory
    AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.type IN ('room:created', 'room:updated', 'room:status_changed', 'room:deleted',
                       'participant:joined', 'participant:updated', 'participant:left'))
    EXECUTE FUNCTION roomcast_directory_on_event();
