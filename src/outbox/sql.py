"""SQL text, one constant per statement, with the reasons inside. Positional $n parameters."""

# Appending to a stream that does not exist yet (expected version 0). The
# stream row is the first write; ON CONFLICT DO NOTHING turns a concurrent
# creator into "0 rows" = version conflict, never an error.
_CREATE_HEAD = """
    INSERT INTO streams AS s (stream_id, version, last_hash)
    SELECT $1, $3, $4 WHERE $2::bigint = 0
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING s.version
"""

# Appending to an existing stream: a compare-and-set on the head row. The row
# lock it takes is held to COMMIT, so writers of one stream are serialised and
# commit in version order; under READ COMMITTED a writer that waited re-checks
# `version = $2` against the committed row and gets 0 rows (a conflict), never
# a duplicate seq.
_UPDATE_HEAD = """
    UPDATE streams AS s SET version = $3, last_hash = $4, updated_at = now()
    WHERE s.stream_id = $1 AND s.version = $2
    RETURNING s.version
"""

# Everything after the head, in the same statement (so one round trip and one
# implicit transaction): the events, one outbox row each, the idempotency key
# and, every `snapshot_every` events, a snapshot. All of them read from `head`,
# so when the compare-and-set fails nothing at all is written.
_APPEND_REST = """
, appended AS (
    INSERT INTO events (stream_id, seq, event_id, type, data, actor_id, recorded_at,
                        prev_hash, hash)
    SELECT $1, e.seq, e.event_id, e.type, e.data, $5, e.recorded_at, e.prev_hash, e.hash
    FROM head,
         unnest($6::bigint[], $7::uuid[], $8::text[], $9::json[], $10::timestamptz[],
                $11::bytea[], $12::bytea[])
           AS e(seq, event_id, type, data, recorded_at, prev_hash, hash)
    RETURNING global_id, seq
), queued AS (
    INSERT INTO outbox (global_id, stream_id, seq)
    SELECT global_id, $1, seq FROM appended
), remembered AS (
    INSERT INTO idempotency_keys (principal, key, fingerprint, stream_id, result)
    SELECT $13::text, $14::text, $15::bytea, $1, $16::json FROM head WHERE $14::text IS NOT NULL
), snapshotted AS (
    INSERT INTO snapshots (stream_id, version, state)
    SELECT $1, head.version, $17::json FROM head WHERE $17::text IS NOT NULL
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state
    WHERE snapshots.version < EXCLUDED.version
)
SELECT version FROM head
"""

APPEND_NEW = f"WITH head AS ({_CREATE_HEAD}){_APPEND_REST}"
APPEND_EXISTING = f"WITH head AS ({_UPDATE_HEAD}){_APPEND_REST}"

# The state to decide on: head, snapshot and the events after the snapshot, read
# in one statement so they are one consistent snapshot of the database. The
# tail is bounded by `seq <= version`, and by the snapshot interval in length.
LOAD = """
    SELECT s.version, s.last_hash, sn.version AS snapshot_version, sn.state::text AS snapshot,
           ARRAY(
               SELECT e.data::text FROM events e
               WHERE e.stream_id = s.stream_id
                 AND e.seq > coalesce(sn.version, 0) AND e.seq <= s.version
               ORDER BY e.seq
           ) AS tail
    FROM streams s LEFT JOIN snapshots sn ON sn.stream_id = s.stream_id
    WHERE s.stream_id = $1
"""

HEAD = "SELECT version FROM streams WHERE stream_id = $1"

# The wire payload, spliced by PostgreSQL exactly as `codec.wire_payload` does
# in Python: the stored JSON text (a `json` column keeps the bytes as written)
# with `eventId` and `seq` in front, as UTF-8 `bytea`, which asyncpg hands over
# as `bytes` (a text column would be decoded to `str` only to be encoded back).
# One column per row instead of a uuid, an int and a text to decode and splice:
# about half the Python work per event of a replay
# (tests/integration/test_read_path.py checks the two agree).
# The stored text loses its leading `{` as bytes (`substring` of a bytea is an
# offset), not as text: a text `substr` walks UTF-8 characters, and cost 0.7 ms
# more per 500-row page than the whole rest of the read.
_WIRE_PAYLOAD = """
    convert_to('{"eventId":"' || e.event_id::text || '","seq":' || e.seq::text || ',', 'UTF8')
        || substring(convert_to(e.data::text, 'UTF8') FROM 2) AS payload
"""

# A page of the log in seq order; (stream_id, seq) is the primary access path.
READ = f"""
    SELECT e.type, {_WIRE_PAYLOAD}
    FROM events e
    WHERE e.stream_id = $1 AND e.seq > $2
    ORDER BY e.seq
    LIMIT $3
"""

FIND_IDEMPOTENT = """
    SELECT fingerprint, stream_id, result::text AS result
    FROM idempotency_keys WHERE principal = $1 AND key = $2
"""

PING = "SELECT 1"

# What waits for a relay (/health, /metrics): rows and the oldest one's age.
# Published rows are deleted, so the table is small and the count cheap.
OUTBOX_BACKLOG = """
    SELECT count(*) AS depth,
           coalesce(extract(epoch FROM clock_timestamp() - min(enqueued_at)), 0)::float8
               AS oldest_seconds
    FROM outbox
"""

# The relay's batch: committed outbox rows, oldest first. No cursor: a row whose
# transaction commits late is simply found by a later batch, because rows leave
# the outbox only when they have been published. Within a room `global_id`
# order is seq order (a room's appends are serialised by its head row lock, and
# each takes its identities while holding it).
RELAY_BATCH = f"""
    SELECT o.global_id, o.stream_id, e.type, {_WIRE_PAYLOAD},
           extract(epoch FROM clock_timestamp() - o.enqueued_at) AS lag_seconds
    FROM outbox o JOIN events e ON e.global_id = o.global_id
    ORDER BY o.global_id
    LIMIT $1
"""

RELAY_DONE = "DELETE FROM outbox WHERE global_id = ANY($1::bigint[])"

# Wakes a relay in another process; sent after a commit, never inside the append
# (a NOTIFY in the append would take a database-wide lock at every commit).
NOTIFY_CHANNEL = "roomcast_outbox"

# Was the user a member of the room right after `seq`? Only their own
# joined/left events matter: the last one up to `seq` decides (none: history
# before their first join is the room's record, visible to members). The
# partial index `events_membership` serves it.
_LAST_MEMBERSHIP = """
    SELECT e.type FROM events e
    WHERE e.stream_id = $1 AND e.seq <= {seq}
      AND e.type IN ('participant:joined', 'participant:left')
      AND coalesce(e.data->'participant'->>'userId', e.data->>'userId') = $3
    ORDER BY e.seq DESC
    LIMIT 1
"""
LAST_MEMBERSHIP_EVENT = _LAST_MEMBERSHIP.format(seq="$2")

# What a subscribe needs before it replays, in one round trip: the head, and
# the user's last membership event up to `$2` (NULL: up to the head).
HEAD_AND_MEMBERSHIP = f"""
    SELECT s.version,
           ({_LAST_MEMBERSHIP.format(seq="coalesce($2::bigint, s.version)")}) AS membership
    FROM streams s
    WHERE s.stream_id = $1
"""
