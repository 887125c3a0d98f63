"""``python -m interlock``: the ``interlock`` command, for when its script is not on ``PATH``.

This folder is the ``interlock`` package itself (``pyproject.toml`` maps it by ``package-dir``).
It has no ``__init__.py``, so ``interlock`` stays an implicit namespace package, and it holds
nothing but this file: the command lives in :mod:`interlock.actors._cli`.
"""

import sys

from interlock.actors._cli import main

sys.exit(main())
