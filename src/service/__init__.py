"""Use cases: load a room, decide, append; retries, idempotency and per-room ordering."""
