"""``python -m minigraph``: the command line."""
from minigraph.cli import main

raise SystemExit(main())
