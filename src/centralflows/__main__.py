"""Entry point of `python -m centralflows`."""

from centralflows.cli import main

raise SystemExit(main())
