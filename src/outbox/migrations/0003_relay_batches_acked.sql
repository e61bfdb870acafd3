-- Several relays publish at once (docs/decisions/0022-relay-partitions.md), so a
-- batch numbered before another can be published after it: `acked` is a number
-- from the same sequence taken when the batch was acknowledged, and a batch
-- acknowledged after a client's offset was numbered may hold events that client
-- missed. NULL in rows written before the column existed (harmless: read as old).
ALTER TABLE relay_batches ADD COLUMN IF NOT EXISTS acked bigint;
CREATE INDEX IF NOT EXISTS relay_batches_acked ON relay_batches (acked);
