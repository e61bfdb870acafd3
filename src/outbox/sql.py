"""SQL text, one constant per statement, with the reasons inside. Positional $n parameters."""

from roomcast.domain.apps import RESERVED_NAMESPACES
from roomcast.outbox.partitions import partition_sql

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
    WHERE s.stream_id = $1 AND s.version = $2{guard}
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
    INSERT INTO snapshots (stream_id, version, state, state_version)
    SELECT $1, head.version, $17::json, $18::integer FROM head WHERE $17::text IS NOT NULL
    ON CONFLICT (stream_id) DO UPDATE
        SET version = EXCLUDED.version, state = EXCLUDED.state,
            state_version = EXCLUDED.state_version
    WHERE snapshots.version < EXCLUDED.version
)
SELECT version FROM head
"""

APPEND_NEW = f"WITH head AS ({_CREATE_HEAD}){_APPEND_REST}"
APPEND_EXISTING = f"WITH head AS ({_UPDATE_HEAD.format(guard='')}){_APPEND_REST}"

# Group commit's batch of one (see APPEND_MANY): the same append, but the head
# row is taken NOWAIT, so a lone batch never waits for another transaction's lock.
APPEND_EXISTING_NOWAIT = f"""WITH locked AS MATERIALIZED (
    SELECT stream_id FROM streams WHERE stream_id = $1 FOR UPDATE NOWAIT
), head AS ({_UPDATE_HEAD.format(guard=" AND EXISTS (SELECT 1 FROM locked)")}){_APPEND_REST}"""

# Group commit: the appends of several streams (commands for different rooms
# that arrived together) as ONE statement, so one round trip and one transaction
# instead of one each: PostgreSQL's cost per command falls to about a sixth and
# asyncpg's to about a quarter (bench/README.md, P1). Each stream keeps its own
# compare-and-set: a stream whose head moved is left out (its events, outbox
# rows, key and snapshot with it, since all of them join `head`), the others
# commit; the statement answers the streams it advanced. The caller sends at
# most one append per stream. The head rows are locked first, in stream id
# order and NOWAIT: a batch never waits for a row another transaction holds (it
# would hold up every room in it, and could deadlock with another node's
# batch); it fails at once (55P03) and its appends are written alone, where
# only the contended room waits. Events are inserted in input order
# (`ORDER BY e.ord`), so within a stream `global_id` still follows `seq` while
# its head row is locked.
APPEND_MANY = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[])
        AS i(stream_id, expected, new_version, last_hash)
), locked AS MATERIALIZED (
    SELECT s.stream_id FROM streams s
    WHERE s.stream_id IN (SELECT stream_id FROM input)
    ORDER BY s.stream_id
    FOR UPDATE NOWAIT
), head AS (
    UPDATE streams AS s SET version = i.new_version, last_hash = i.last_hash, updated_at = now()
    FROM input i JOIN locked l ON l.stream_id = i.stream_id
    WHERE s.stream_id = i.stream_id AND s.version = i.expected
    RETURNING s.stream_id, s.version
), appended AS (
    INSERT INTO events (stream_id, seq, event_id, type, data, actor_id, recorded_at,
                        prev_hash, hash)
    SELECT e.stream_id, e.seq, e.event_id, e.type, e.data, e.actor_id, e.recorded_at,
           e.prev_hash, e.hash
    FROM unnest($5::text[], $6::bigint[], $7::uuid[], $8::text[], $9::json[], $10::text[],
                $11::timestamptz[], $12::bytea[], $13::bytea[]) WITH ORDINALITY
           AS e(stream_id, seq, event_id, type, data, actor_id, recorded_at, prev_hash,
                hash, ord)
    JOIN head ON head.stream_id = e.stream_id
    ORDER BY e.ord
    RETURNING global_id, stream_id, seq
), queued AS (
    INSERT INTO outbox (global_id, stream_id, seq)
    SELECT global_id, stream_id, seq FROM appended
), remembered AS (
    INSERT INTO idempotency_keys (principal, key, fingerprint, stream_id, result)
    SELECT r.principal, r.key, r.fingerprint, r.stream_id, r.result
    FROM unnest($14::text[], $15::text[], $16::text[], $17::bytea[], $18::json[])
           AS r(stream_id, principal, key, fingerprint, result)
    JOIN head ON head.stream_id = r.stream_id
), snapshotted AS (
    INSERT INTO snapshots (stream_id, version, state, state_version)
    SELECT n.stream_id, head.version, n.state, n.state_version
    FROM unnest($19::text[], $20::json[], $21::integer[]) AS n(stream_id, state, state_version)
    JOIN head ON head.stream_id = n.stream_id
    ON CONFLICT (stream_id) DO UPDATE
        SET version = EXCLUDED.version, state = EXCLUDED.state,
            state_version = EXCLUDED.state_version
    WHERE snapshots.version < EXCLUDED.version
)
SELECT stream_id FROM head
"""

# The state to decide on: head, snapshot and the events after the snapshot, read
# in one statement so they are one consistent snapshot of the database. The
# tail is bounded by `seq <= version`, and by the snapshot interval in length.
# A snapshot of another state version ($2) is not joined at all: its JSON may be
# a shape the decoder would misread, so the tail is then the whole stream.
LOAD = """
    SELECT s.version, s.last_hash, sn.version AS snapshot_version, sn.state::text AS snapshot,
           ARRAY(
               SELECT e.data::text FROM events e
               WHERE e.stream_id = s.stream_id
                 AND e.seq > coalesce(sn.version, 0) AND e.seq <= s.version
               ORDER BY e.seq
           ) AS tail
    FROM streams s
    LEFT JOIN snapshots sn ON sn.stream_id = s.stream_id AND sn.state_version = $2
    WHERE s.stream_id = $1
"""

# A load that had to fold a long tail (no snapshot of its state version: written by
# an older release, or lost) writes one at the version it loaded, so the next load is
# bounded again. The state at a version never changes, so this can only lose to a
# newer snapshot of the same state version, never overwrite it.
RESNAPSHOT = """
    INSERT INTO snapshots AS sn (stream_id, version, state, state_version)
    VALUES ($1, $2, $3::json, $4)
    ON CONFLICT (stream_id) DO UPDATE
        SET version = EXCLUDED.version, state = EXCLUDED.state,
            state_version = EXCLUDED.state_version
    WHERE sn.version < EXCLUDED.version OR sn.state_version <> EXCLUDED.state_version
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
# An app's event (its namespace is none of the platform's) is stored as
# `{"type",…,"appId":…,"data":{APP}}` and sent flat, the app's object beside our
# fields (seed 003): `,"data":{` and the last `}` are cut out of the bytes
# (`codec.wire_payload` does the same; app ids and names cannot hold a quote).
_PLATFORM = "ARRAY[" + ",".join(f"'{n}'" for n in sorted(RESERVED_NAMESPACES)) + "]"
_DATA_KEY = "'\\x2c2264617461223a7b'::bytea"  # ,"data":{
_STORED = "convert_to(e.data::text, 'UTF8')"
_CUT = f"position({_DATA_KEY} IN {_STORED})"


def _wire_payload(head: str = "") -> str:
    """The spliced payload expression; ``head``: members written before ``eventId``."""
    return f"""
    convert_to('{{{head}"eventId":"' || e.event_id::text || '","seq":' || e.seq::text || ',',
               'UTF8')
        || CASE WHEN split_part(e.type, ':', 1) = ANY({_PLATFORM})
                THEN substring({_STORED} FROM 2)
                ELSE substring({_STORED} FROM 2 FOR {_CUT} - 2)
                     || CASE WHEN octet_length({_STORED}) - {_CUT} - 9 = 1 THEN '\\x7d'::bytea
                             ELSE '\\x2c'::bytea
                                  || substring({_STORED} FROM {_CUT} + 9
                                               FOR octet_length({_STORED}) - {_CUT} - 9)
                        END
           END AS payload
"""


_WIRE_PAYLOAD = _wire_payload()

# A page of the log in seq order; (stream_id, seq) is the primary access path.
READ = f"""
    SELECT e.type, {_WIRE_PAYLOAD}
    FROM events e
    WHERE e.stream_id = $1 AND e.seq > $2
    ORDER BY e.seq
    LIMIT $3
"""

# A page of the log as one `room:events` frame's array (`[…]`, as text): the
# payloads of `$2 < seq <= $2 + $3`, each marked `"replayed":true` (gateway/
# outlet.py's `mark_replayed`, spliced here in the same head), joined in seq
# order, plus how many and the last seq. One row instead of $3: a replay's
# Python work per page no longer grows with its events (decoding each row, an
# object per payload, marking and encoding each one was most of a 10,000-event
# replay's CPU: docs/decisions/0025). Joined as bytes (the splice's `substring`
# is by offset) and converted to text once per page: asyncpg's str is the
# packet's text with no re-encoding in Python. By range, not LIMIT: a room's
# seqs are dense (gateway/replay.py relies on it too).
READ_FRAME = f"""
    SELECT count(*)::int, max(p.seq),
           '[' || convert_from(string_agg(p.payload, '\\x2c'::bytea ORDER BY p.seq), 'UTF8')
               || ']'
    FROM (
        SELECT e.seq, {_wire_payload('"replayed":true,')}
        FROM events e
        WHERE e.stream_id = $1 AND e.seq > $2 AND e.seq <= $2 + $3
    ) AS p
"""

FIND_IDEMPOTENT = """
    SELECT fingerprint, stream_id, result::text AS result
    FROM idempotency_keys WHERE principal = $1 AND key = $2
"""

PING = "SELECT 1"

# Settling a write whose connection failed (store.EventStore._settle): first end
# the backend that ran it, if it is still there (waiting up to $2 ms for it to
# go), so it cannot commit after we look; then look its first event up.
END_BACKEND = """
    SELECT pg_terminate_backend(pid, $2)
    FROM pg_stat_activity
    WHERE pid = $1 AND pid <> pg_backend_pid() AND usename = current_user
"""
EVENT_EXISTS = "SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1::uuid)"

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
# Each batch takes its number here (once: a CTE with a volatile function is
# evaluated once); an empty poll uses a number too, and gaps mean nothing.
RELAY_BATCH = f"""
    WITH b AS MATERIALIZED (SELECT nextval('relay_batch_seq') AS batch)
    SELECT o.global_id, o.stream_id, e.type, {_WIRE_PAYLOAD}, e.seq, b.batch,
           extract(epoch FROM clock_timestamp() - o.enqueued_at) AS lag_seconds
    FROM b CROSS JOIN outbox o JOIN events e ON e.global_id = o.global_id
    ORDER BY o.global_id
    LIMIT $1
"""

# The same, past the rows a failed publish left (the relay holds them aside).
RELAY_BATCH_SKIPPING = f"""
    WITH b AS MATERIALIZED (SELECT nextval('relay_batch_seq') AS batch)
    SELECT o.global_id, o.stream_id, e.type, {_WIRE_PAYLOAD}, e.seq, b.batch,
           extract(epoch FROM clock_timestamp() - o.enqueued_at) AS lag_seconds
    FROM b CROSS JOIN outbox o JOIN events e ON e.global_id = o.global_id
    WHERE o.global_id <> ALL($2::bigint[])
    ORDER BY o.global_id
    LIMIT $1
"""

# The same, for a relay that holds only some partitions (outbox/partitions.py):
# the rows of its partitions (`$3` of `$4`), past the ones it holds aside (`$2`).
# A relay holding every partition uses the two above, without the hash per row.
RELAY_BATCH_PARTITIONS = f"""
    WITH b AS MATERIALIZED (SELECT nextval('relay_batch_seq') AS batch)
    SELECT o.global_id, o.stream_id, e.type, {_WIRE_PAYLOAD}, e.seq, b.batch,
           extract(epoch FROM clock_timestamp() - o.enqueued_at) AS lag_seconds
    FROM b CROSS JOIN outbox o JOIN events e ON e.global_id = o.global_id
    WHERE o.global_id <> ALL($2::bigint[])
      AND {partition_sql("o.stream_id", "$4::bigint")} = ANY($3::bigint[])
    ORDER BY o.global_id
    LIMIT $1
"""

# The heads of several streams at once (the gateway's position check).
HEADS = "SELECT stream_id, version FROM streams WHERE stream_id = ANY($1::text[])"

# The published rows leave the outbox and the batch's publication order is
# recorded, in one statement (connection state recovery: outbox/recovery_log.py):
# `$3`/`$4` hold every slot of the batch in order, '' for a row whose publish
# failed (it is recorded again in the batch that publishes it).
# `acked`: a number taken now, after the batch was published (recovery_log.py
# says why several relays need it).
RELAY_DONE = """
    WITH done AS (DELETE FROM outbox WHERE global_id = ANY($1::bigint[]))
    INSERT INTO relay_batches (batch, stream_ids, seqs, acked)
    VALUES ($2, $3::text[], $4::bigint[], nextval('relay_batch_seq'))
"""

# A batch number for rows published again outside a fresh RELAY_BATCH.
NEXT_BATCH = "SELECT nextval('relay_batch_seq')"

# The same, moving the reacting events among them to the reaction queue in the
# same statement: a reaction is queued exactly when its event stops being the
# outbox's (src/service/reactions.py runs it later, apart from publishing).
RELAY_DONE_REACTING = """
    WITH done AS (DELETE FROM outbox WHERE global_id = ANY($1::bigint[])),
    recorded AS (
        INSERT INTO relay_batches (batch, stream_ids, seqs, acked)
        VALUES ($2, $3::text[], $4::bigint[], nextval('relay_batch_seq'))
    )
    INSERT INTO reaction_queue (global_id, stream_id)
    SELECT * FROM unnest($5::bigint[], $6::text[])
    ON CONFLICT DO NOTHING
"""

# Reactions due now, oldest first, with the event as the relay publishes it.
REACTIONS_DUE = f"""
    SELECT q.global_id, q.stream_id, e.type, {_WIRE_PAYLOAD}, q.attempts
    FROM reaction_queue q JOIN events e ON e.global_id = q.global_id
    WHERE q.next_at <= clock_timestamp()
    ORDER BY q.global_id
    LIMIT $1
"""

REACTION_DONE = "DELETE FROM reaction_queue WHERE global_id = ANY($1::bigint[])"

REACTION_LATER = """
    UPDATE reaction_queue
    SET attempts = $2, last_error = $3, next_at = clock_timestamp() + make_interval(secs => $4)
    WHERE global_id = $1
"""

REACTION_DEAD = """
    WITH moved AS (DELETE FROM reaction_queue WHERE global_id = $1 RETURNING global_id, stream_id)
    INSERT INTO dead_letters (global_id, stream_id, attempts, last_error)
    SELECT global_id, stream_id, $2, $3 FROM moved
    ON CONFLICT (global_id) DO UPDATE
        SET attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error,
            failed_at = EXCLUDED.failed_at
"""

REACTION_BACKLOG = """
    SELECT (SELECT count(*) FROM reaction_queue) AS queued,
           (SELECT count(*) FROM dead_letters) AS dead
"""

DEAD_LETTERS = """
    SELECT d.global_id, d.stream_id, e.seq, e.type, d.attempts, d.last_error, d.failed_at
    FROM dead_letters d JOIN events e ON e.global_id = d.global_id
    ORDER BY d.global_id
    LIMIT $1
"""

# Back to the queue, due now, with its attempts reset; the ids that moved.
DEAD_LETTER_RETRY = """
    WITH moved AS (
        DELETE FROM dead_letters WHERE global_id = ANY($1::bigint[]) RETURNING global_id, stream_id
    )
    INSERT INTO reaction_queue (global_id, stream_id) SELECT global_id, stream_id FROM moved
    ON CONFLICT DO NOTHING
    RETURNING global_id
"""

DEAD_LETTER_DROP = (
    "DELETE FROM dead_letters WHERE global_id = ANY($1::bigint[]) RETURNING global_id"
)

# The relay's own vacuum of the queue table (outbox/relay.py says why). It
# takes no lock that blocks appends or deletes; SKIP_LOCKED: if something
# holds a conflicting lock (another VACUUM), skip this time.
VACUUM_OUTBOX = "VACUUM (SKIP_LOCKED) outbox"

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

# The user's own membership changes in `$2 < seq <= $3` (a subscribe's ack
# counts the events its replay will show); the partial index serves it.
MEMBERSHIP_EVENTS = """
    SELECT e.seq, e.type FROM events e
    WHERE e.stream_id = $1 AND e.seq > $2 AND e.seq <= $3
      AND e.type IN ('participant:joined', 'participant:left')
      AND coalesce(e.data->'participant'->>'userId', e.data->>'userId') = $4
    ORDER BY e.seq
"""

# What a subscribe needs before it replays, in one round trip: the head, and
# the user's last membership event up to `$2` (NULL: up to the head).
HEAD_AND_MEMBERSHIP = f"""
    SELECT s.version,
           ({_LAST_MEMBERSHIP.format(seq="coalesce($2::bigint, s.version)")}) AS membership
    FROM streams s
    WHERE s.stream_id = $1
"""

# The hashed columns of a page of a stream's log, for verifiers outside the database
# (the room page's browser verifier, docs/audit.md): `data` as its stored text.
READ_CHAIN = """
    SELECT e.seq, e.event_id::text AS event_id, e.type, e.data::text AS data, e.actor_id,
           e.recorded_at, e.prev_hash, e.hash
    FROM events e
    WHERE e.stream_id = $1 AND e.seq > $2
    ORDER BY e.seq
    LIMIT $3
"""

# Per stream: head seq, chain head, and what of it waits in the outbox (the operator page).
STREAM_HEADS = """
    SELECT s.stream_id, s.version, s.last_hash,
           count(o.global_id) AS depth,
           coalesce(extract(epoch FROM clock_timestamp() - min(o.enqueued_at)), 0)::float8
               AS oldest_seconds
    FROM streams s LEFT JOIN outbox o ON o.stream_id = s.stream_id
    WHERE s.stream_id = ANY($1::text[])
    GROUP BY s.stream_id, s.version, s.last_hash
    ORDER BY s.stream_id
"""
