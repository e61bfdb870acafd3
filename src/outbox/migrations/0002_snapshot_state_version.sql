-- Snapshots say which shape of the state they encode (docs/decisions/0016-versioned-migrations.md).
-- A load uses a snapshot only when its `state_version` is the decider's own, so a
-- change to `Room` or `evolve` (which bumps the version) never decodes a stale shape.
-- The snapshots already here were written before versions existed: 0 says "unknown",
-- which no decider uses, so they are ignored and rewritten at the next load.
-- The default also keeps a node of the previous release appending during a rolling
-- upgrade (its INSERT does not name the column). IF NOT EXISTS: a database whose
-- history was lost is taken for the baseline, and this must not fail on it.
ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS state_version integer NOT NULL DEFAULT 0;
