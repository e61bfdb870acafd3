"""Garbage-collector settings for the long-running processes (``serve``, ``relay``).

CPython's default first-generation threshold (700 net allocations) is met
several times per broadcast when a server queues one packet per socket, so
objects that live for a few milliseconds (queued packets, send futures) are
promoted, pile up as "long-lived", and set off full collections: measured on
``roomcast serve`` with 1,000 subscribed sockets at 10 events/s, one full pass
every ~1.7 s, each ~180 ms with every socket's delivery stopped
(bench/README.md, P2). With the first threshold at 50,000 they die young and
a full collection becomes rare; ``freeze`` moves what start-up built (modules,
the app, the pool) out of every later pass.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup", "tune"]


def tune(threshold: int) -> None:
    """Set the first generation's threshold; 0 leaves the interpreter's defaults."""
    if threshold <= 0:
        return
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold, second, third)


def freeze_startup() -> None:
    """Collect once, then exclude every object alive now from later collections."""
    gc.collect()
    gc.freeze()
