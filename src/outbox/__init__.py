"""PostgreSQL adapter: the event store with its transactional outbox, and the relay."""
