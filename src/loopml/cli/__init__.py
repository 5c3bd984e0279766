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


def _register_commands() -> None:
    """Import every public module of this package: each adds its commands to ``app``.

    Modules keep heavy imports inside their commands, so ``loopml --help`` stays fast.
    """
    import importlib
    import pkgutil

    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_register_commands()


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
