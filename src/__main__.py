"""`python -m roomcast` runs the command line."""

from roomcast.cli import main

raise SystemExit(main())
