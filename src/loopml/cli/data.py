"""``loopml data``: ingest data and browse the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, err_console, open_workspace, print_json

data_app = typer.Typer(help="Ingest data and browse the versioned data catalog.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("ingest")
def ingest_cmd(
    source: str = typer.Argument(..., help="File, folder, glob or fsspec URL; a SQLAlchemy URL with --table/--query; an HTTP API URL."),
    name: str = typer.Option(..., "--name", "-n", help="Dataset name."),
    format: str = typer.Option(None, "--format", "-f", help="csv, tsv, parquet, json, jsonl, or api (HTTP JSON API)."),
    table: str = typer.Option(None, "--table", help="Database table to read."),
    query: str = typer.Option(None, "--query", help="SQL query to read."),
    incremental_by: str = typer.Option(None, "--incremental-by", help="Only ingest rows with COL above the last run's watermark; appends a partition."),
    expect: Path = typer.Option(None, "--expect", help="Expectations YAML file: invalid rows go to quarantine."),
    fail_on_invalid: bool = typer.Option(False, "--fail-on-invalid", help="Reject the whole batch if any row is invalid."),
    partition_by: list[str] = typer.Option([], "--partition-by", help="Column to partition by (repeatable); default: ingestion date."),
    description: str = typer.Option("", "--description", help="Dataset description (first version)."),
    delimiter: str = typer.Option(None, "--delimiter", help="CSV delimiter (default ',' or tab for .tsv)."),
    no_header: bool = typer.Option(False, "--no-header", help="CSV has no header row (columns become f0, f1, ...)."),
    encoding: str = typer.Option("utf8", "--encoding", help="CSV text encoding."),
    records_key: str = typer.Option(None, "--records-key", help="API: dotted path of the records list in the JSON body."),
    next_key: str = typer.Option(None, "--next-key", help="API: dotted path of the next-page link in the body."),
    page_param: str = typer.Option(None, "--page-param", help="API: query parameter holding the page number."),
    offset_param: str = typer.Option(None, "--offset-param", help="API: query parameter holding the offset."),
    limit_param: str = typer.Option(None, "--limit-param", help="API: query parameter holding the page size."),
    page_size: int = typer.Option(100, "--page-size", help="API: records per page for offset paging."),
    auth_env: str = typer.Option(None, "--auth-env", help="API: environment variable holding the token."),
    auth_header: str = typer.Option("Authorization", "--auth-header", help="API: header for the token ('Bearer TOKEN' in Authorization, the bare token in any other header)."),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest SOURCE into a new version of dataset NAME."""
    from loopml.data.ingest import ingest
    from loopml.data.sources import open_source, source_kind

    options: dict[str, Any] = {}
    kind = source_kind(source, format=format, table=table, query=query)
    if kind == "http":
        options = {k: v for k, v in dict(
            records_key=records_key, next_key=next_key, page_param=page_param,
            offset_param=offset_param, limit_param=limit_param, auth_env=auth_env,
        ).items() if v is not None}
        options.update(page_size=page_size, auth_header=auth_header)
        if auth_header.lower() != "authorization":
            options["auth_scheme"] = ""  # a key header (X-API-Key) carries the bare token
    elif kind == "file":
        options = {"delimiter": delimiter, "header": not no_header, "encoding": encoding}
    src = open_source(source, format=format, table=table, query=query, **options)
    with open_workspace() as ws, _progress() as (progress, task):
        info = ingest(
            ws, src, name, expectations=expect, fail_on_invalid=fail_on_invalid,
            incremental_by=incremental_by, partition_by=partition_by, description=description,
            progress=lambda n: progress.update(task, description=f"ingesting {name}: {n:,} rows"),
        )
    if as_json:
        print_json(info.to_dict())
        return
    v = info.validation
    if not info.created:
        console.print(f"[yellow]Unchanged:[/] content equals {info.ref}; no new version created")
        return
    console.print(
        f"[green]Created {info.ref}[/]: {info.row_count:,} rows, {len(info.schema)} columns, "
        f"{info.num_bytes / 1e6:.1f} MB"
    )
    if "rows_quarantined" in v:
        console.print(
            f"  read {v['rows_read']:,} rows: {v['rows_ingested']:,} ingested, "
            f"{v['rows_quarantined']:,} quarantined"
        )
    for rule, count in v.get("failures", {}).items():
        console.print(f"  [red]{count:,}[/] × {escape(rule)}")


class _progress:
    """A transient spinner on stderr, fed by the ingest callback."""

    def __enter__(self) -> tuple[Progress, Any]:
        self.p = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=err_console, transient=True,
        )
        self.p.__enter__()
        return self.p, self.p.add_task("reading source", total=None)

    def __exit__(self, *exc: object) -> None:
        self.p.__exit__(None, None, None)


@data_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List datasets with their latest version."""
    from loopml.data import Catalog

    with open_workspace() as ws:
        rows = Catalog(ws).list()
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    if not rows:
        console.print("No datasets yet. Ingest one with `loopml data ingest SOURCE --name NAME`.")
        return
    t = Table("name", "versions", "latest", "rows", "updated")
    for r in rows:
        t.add_row(escape(r.name), str(r.versions), str(r.latest), f"{r.row_count:,}", r.updated_at.strftime("%Y-%m-%d %H:%M"))
    console.print(t)


@data_app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="NAME or NAME:VERSION."),
    quarantine: int = typer.Option(0, "--quarantine", help="Also print the first N quarantined rows."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a dataset version: schema, stats, source, partitions, lineage, quarantine."""
    from loopml.data import Catalog

    with open_workspace() as ws:
        cat = Catalog(ws)
        info = cat.get(ref)
        versions = cat.versions(info.name)
        up = ws.lineage.upstream(info.entity, depth=1)
        down = ws.lineage.downstream(info.entity, depth=1)
        qrows = cat.quarantine(info).slice(0, quarantine).to_pylist() if quarantine else []
    lineage = {
        "upstream": [{"from": str(e.src), "relation": e.relation} for e in up],
        "downstream": [{"to": str(e.dst), "relation": e.relation} for e in down],
    }
    if as_json:
        print_json({**info.to_dict(), "versions": [v.version for v in versions],
                    "lineage": lineage, "quarantine_rows": qrows})
        return
    console.print(f"[bold]{info.ref}[/]  ({len(versions)} version(s); id {info.id})")
    console.print(f"  created   {info.created_at:%Y-%m-%d %H:%M:%S} UTC")
    console.print(f"  rows      {info.row_count:,}   size {info.num_bytes / 1e6:.2f} MB   parts {len(info.parts)}")
    console.print(f"  source    {escape(_source_text(info.source))}")
    console.print(f"  quarantine {info.quarantine_count:,} row(s)")
    stats = info.stats.get("columns", {})
    t = Table("column", "type", "nulls", "min", "max", "mean", title="schema and statistics")
    for c in info.schema:
        st = stats.get(c["name"], {})
        mean = st.get("mean")
        t.add_row(escape(c["name"]), escape(c["type"]), f"{st.get('nulls', 0):,}", _short(st.get("min")), _short(st.get("max")),
                  "" if mean is None else f"{mean:.4g}")
    console.print(t)
    parts = info.partitions()
    if parts:
        pt = Table(*parts[0].keys(), title="partitions")
        for p in parts:
            pt.add_row(*(escape(str(v)) for v in p.values()))
        console.print(pt)
    for rule, count in info.validation.get("failures", {}).items():
        console.print(f"  [red]{count:,}[/] quarantined × {escape(rule)}")
    for e in lineage["upstream"]:
        console.print(f"  ← {e['relation']} {e['from']}")
    for e in lineage["downstream"]:
        console.print(f"  → {e['relation']} {e['to']}")
    if qrows:
        qt = Table(*qrows[0].keys(), title=f"first {len(qrows)} quarantined rows")
        for r in qrows:
            qt.add_row(*(_short(v) for v in r.values()))
        console.print(qt)


def _source_text(src: dict[str, Any]) -> str:
    main = src.get("uri") or src.get("kind", "?")
    extra = ", ".join(f"{k}={v}" for k, v in src.items() if k not in ("uri",) and v is not None)
    return f"{main} ({extra})" if extra else str(main)


def _short(v: Any, n: int = 24) -> str:
    """Shorten a value for a table cell, escaped so rich does not read ``[...]`` as markup."""
    s = "" if v is None else str(v)
    return escape(s if len(s) <= n else s[: n - 1] + "…")


@data_app.command("diff")
def diff_cmd(a: str = typer.Argument(..., help="NAME:V1"), b: str = typer.Argument(..., help="NAME:V2"),
             as_json: bool = JsonOpt) -> None:
    """Compare two dataset versions: schema changes and row counts."""
    from loopml.data import Catalog

    with open_workspace() as ws:
        d = Catalog(ws).diff(a, b)
    if as_json:
        print_json(d)
        return
    console.print(f"[bold]{d['from']} → {d['to']}[/]")
    console.print(f"  rows: {d['rows_from']:,} → {d['rows_to']:,} ({d['row_change']:+,})")
    if d["same_content"]:
        console.print("  identical content")
    for c in d["added_columns"]:
        console.print(f"  [green]+ {escape(c['name'])}[/] {escape(c['type'])}")
    for c in d["removed_columns"]:
        console.print(f"  [red]- {escape(c['name'])}[/] {escape(c['type'])}")
    for c in d["type_changes"]:
        console.print(f"  [yellow]~ {escape(c['name'])}[/] {escape(c['from'])} → {escape(c['to'])}")
    if not (d["added_columns"] or d["removed_columns"] or d["type_changes"]):
        console.print("  same schema")


@data_app.command("export")
def export_cmd(
    ref: str = typer.Argument(..., help="NAME or NAME:VERSION."),
    to: str = typer.Option(..., "--to", help="Target file or fsspec URL."),
    format: str = typer.Option(None, "--format", help="parquet, csv or jsonl (default: from the extension)."),
    as_json: bool = JsonOpt,
) -> None:
    """Export a dataset version to a file."""
    from loopml.data import Catalog

    with open_workspace() as ws:
        info = Catalog(ws).get(ref)
        Catalog(ws).export(info.ref, to, format=format)
    if as_json:
        print_json({"dataset": info.ref, "to": to, "rows": info.row_count})
        return
    console.print(f"[green]Exported {info.ref}[/] ({info.row_count:,} rows) to {to}")


@data_app.command("head")
def head_cmd(ref: str = typer.Argument(..., help="NAME or NAME:VERSION."),
             n: int = typer.Option(10, "-n", help="Rows to show."), as_json: bool = JsonOpt) -> None:
    """Print the first rows of a dataset version."""
    from loopml.data import Catalog

    with open_workspace() as ws:
        rows = Catalog(ws).duckdb(ref).limit(n).arrow()
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else rows.read_all().to_pylist()
    if as_json:
        print_json(records)
        return
    if not records:
        console.print("(no rows)")
        return
    t = Table(*records[0].keys())
    for r in records:
        t.add_row(*(_short(v) for v in r.values()))
    console.print(t)
