"""``python -m toolkit`` runs the ``discogs-toolkit`` command line."""

from toolkit.cli import main

raise SystemExit(main())
