"""The ``interlock layer`` commands, for a command line to mount (the ``interlock`` command does).

:func:`add_layer_commands` adds ``layer groups|members|processes|prune`` to an
:mod:`argparse` parser's subcommands; each sets ``handler`` on the parsed namespace, a
function of it returning the exit status. :func:`main` runs them alone.
"""

from ._cli import add_layer_commands, main

__all__ = ["add_layer_commands", "main"]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
