"""The package layout holds: roomcast maps onto src/, stdlib http is never shadowed,
and the domain stays pure."""

from __future__ import annotations

import ast
import http
import importlib
import pkgutil
import sys
import sysconfig
from pathlib import Path

import roomcast
import roomcast.domain

SRC = Path(roomcast.__file__).resolve().parent


def test_stdlib_http_is_not_shadowed():
    importlib.import_module("roomcast.http.app")
    assert (
        Path(http.__file__)
        .resolve()
        .is_relative_to(Path(sysconfig.get_paths()["stdlib"]).resolve())
    )
    assert importlib.import_module("roomcast.http").__name__ == "roomcast.http"
    assert "src" not in sys.modules


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(roomcast.__path__, "roomcast.")]
    for name in names:
        if name != "roomcast.__main__":
            importlib.import_module(name)
    assert "roomcast.outbox.store" in names


_FORBIDDEN_IN_DOMAIN = {
    "asyncio",
    "asyncpg",
    "time",
    "random",
    "secrets",
    "os",
    "socket",
    "uuid",
    "litestar",
    "socketio",
    "structlog",
    "roomcast.outbox",
    "roomcast.http",
    "roomcast.gateway",
    "roomcast.service",
}


def test_the_domain_imports_nothing_with_io_clock_or_randomness():
    domain = Path(roomcast.domain.__file__).resolve().parent
    offences = []
    for path in domain.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in _FORBIDDEN_IN_DOMAIN):
                    offences.append(f"{path.name}: {name}")
            if isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today"}:
                offences.append(f"{path.name}: .{node.attr}()")
    assert offences == []


def test_edges_do_not_import_each_other():
    edges = {"outbox": {"http", "gateway", "service"}, "http": {"gateway"}, "gateway": {"http"}}
    offences = []
    for edge, banned in edges.items():
        for path in (SRC / edge).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    for other in banned:
                        if node.module.startswith(f"roomcast.{other}"):
                            offences.append(f"{edge}/{path.name} imports {node.module}")
    assert offences == []
