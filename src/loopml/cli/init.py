"""``loopml init``: create a workspace."""

from __future__ import annotations

from pathlib import Path

import typer

from loopml.cli._app import JsonOpt, app, console, print_json
from loopml.workspace import Workspace


@app.command()
def init(
    path: Path = typer.Argument(Path("."), help="Folder of the new workspace."),
    metadata_url: str = typer.Option(None, help="SQLAlchemy URL of the metadata DB (default: SQLite in the workspace)."),
    artifact_root: str = typer.Option(None, help="Folder or fsspec URL for artifacts (default: in the workspace)."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a loopml workspace in PATH (idempotent)."""
    with Workspace.init(path, metadata_url=metadata_url, artifact_root=artifact_root) as ws:
        info = {
            "workspace": str(ws.root),
            "settings": str(ws.home / "loopml.toml"),
            "metadata_url": ws.meta.safe_url,
            "artifact_root": ws.artifacts.url,
        }
    if as_json:
        print_json(info)
        return
    console.print(f"[green]Workspace ready[/] in {info['workspace']}")
    console.print(f"  settings   {info['settings']}")
    console.print(f"  metadata   {info['metadata_url']}")
    console.print(f"  artifacts  {info['artifact_root']}")
