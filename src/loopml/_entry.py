"""The ``loopml`` console script (and ``python -m loopml``).

Before the command line loads (Typer, rich and the command modules take
about half a second), ``loopml train --algo NAME`` starts the training job
process, so the job imports its library while the command starts up, opens
the workspace and resolves the data. Everything else goes straight to
:func:`loopml.cli.main`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line on ``sys.argv``."""
    argv = sys.argv[1:]
    if argv[:1] == ["train"]:
        from loopml.train._worker import prestart_from_argv

        prestart_from_argv(argv[1:])
    from loopml.cli import main as cli_main

    cli_main()
