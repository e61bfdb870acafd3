"""roomcast: event-sourced rooms on PostgreSQL, delivered live over Socket.IO."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("roomcast")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
