"""The Typer application object and the shared output helpers of the CLI."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(
    name="loopml",
    help="loopml: the whole machine-learning lifecycle, local-first.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from loopml import __version__

        typer.echo(f"loopml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """loopml: the whole machine-learning lifecycle, local-first."""


console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = typer.Option(False, "--json", help="Print the result as JSON.")


def _default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (plain, so pipes get clean output)."""
    typer.echo(json.dumps(data, indent=2, default=_default))


def open_workspace() -> Any:
    """Open the current workspace (``$LOOPML_HOME`` or the nearest one upwards)."""
    from loopml.workspace import Workspace

    return Workspace.open()


def parse_pairs(items: list[str], what: str, example: str) -> dict[str, str]:
    """Parse repeated ``NAME=VALUE`` options (e.g. ``--role group=qid``) into a dict."""
    from loopml.errors import InvalidInput

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInput(f"{what} {item!r} must look like NAME=VALUE, e.g. {what} {example}")
        out[key.strip()] = value.strip()
    return out
