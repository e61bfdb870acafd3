"""roomcast's benchmark suite: ``python -m bench`` (full) or ``python -m bench --quick``.

See bench/README.md. Every figure is a ratio to a baseline measured in the same run.
"""
