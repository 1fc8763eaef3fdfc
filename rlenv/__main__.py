"""``python -m rlenv`` (and ``torchrun ... -m rlenv train ...``): the ``rlenv`` command."""

from rlenv.cli import main

raise SystemExit(main())
