"""``roomcast audit``: read, follow and verify the event log straight from PostgreSQL.

``chain`` and ``replay`` are pure (rows in, findings out); ``source`` talks to the
database; ``render`` formats; ``cli`` wires them to the command line. The
formulas they check are stated byte for byte in docs/audit.md.
"""
