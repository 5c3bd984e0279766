"""The ``loopml`` command line: a thin Typer layer over the Python API.

Every command prints results with rich (or JSON with ``--json``) and exits
0 on success, 1 on a user error (one line, no traceback) and 2 on bad usage.
"""

from __future__ import annotations

import os
import sys
import traceback

import click
import typer

from loopml.cli._app import app, err_console
from loopml.errors import LoopmlError

# Command groups register themselves on import.
from loopml.cli import data as _data  # noqa: F401  isort: skip
from loopml.cli import init as _init  # noqa: F401  isort: skip
from loopml.cli import demo as _demo  # noqa: F401  isort: skip


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``loopml`` console script."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="loopml")
    except LoopmlError as e:
        _fail(str(e))
    except (click.exceptions.Exit, typer.Exit) as e:
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        _fail("aborted")
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        _fail(" ".join(str(e).split()))
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # click's (or typer's own click's) usage errors
            e.show()
            sys.exit(e.exit_code)
        # A bug: keep the promise of one line, unless debugging.
        if os.environ.get("LOOPML_DEBUG"):
            traceback.print_exc()
        _fail(f"internal error: {type(e).__name__}: {' '.join(str(e).split())} "
              "(set LOOPML_DEBUG=1 for the traceback and please report it)")
    sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(1)


__all__ = ["app", "main", "typer"]
