"""``python -m rlenv.cli``: the ``rlenv`` command."""

from rlenv.cli import main

raise SystemExit(main())
