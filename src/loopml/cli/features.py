"""``loopml features``: feature groups, ingest, online reads, point-in-time history, materialization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, err_console, open_workspace, print_json

features_app = typer.Typer(
    help="The feature store: feature groups, offline history, online records, training sets.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")


class _progress:
    """A transient spinner on stderr, fed by a library callback."""

    def __init__(self, what: str) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.what = what
        self.p = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          console=err_console, transient=True)

    def __enter__(self) -> Any:
        self.p.__enter__()
        task = self.p.add_task(self.what, total=None)
        return lambda n: self.p.update(task, description=f"{self.what}: {n:,}")

    def __exit__(self, *exc: object) -> None:
        self.p.__exit__(None, None, None)


def _short(v: Any, n: int = 40) -> str:
    s = "" if v is None else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


@features_app.command("create")
def create_cmd(
    name: str = typer.Argument(..., help="Feature group name."),
    id_col: str = typer.Option(..., "--id", help="Record identifier column, as COL or COL:TYPE (integral or string)."),
    time_col: str = typer.Option(..., "--time", help="Event time column."),
    feature: list[str] = typer.Option([], "--feature", "-f", help="Feature as NAME:TYPE (integral, fractional, string, timestamp), repeatable; with --from-dataset a bare NAME takes the dataset's type."),
    from_dataset: str = typer.Option(None, "--from-dataset", help="Infer the definitions from this dataset version NAME[:VER] (every column unless --feature lists some)."),
    description: str = typer.Option("", "--description", help="What the group holds."),
    owner: str = typer.Option("", "--owner", help="Who owns it."),
    tag: list[str] = typer.Option([], "--tag", help="Tag KEY=VALUE, repeatable."),
    ttl: str = typer.Option(None, "--ttl", help="Online records older than this are not returned, e.g. 30d, 12h."),
    offline_only: bool = typer.Option(False, "--offline-only", help="No online store for this group."),
    as_json: bool = JsonOpt,
) -> None:
    """Create feature group NAME."""
    from loopml.errors import InvalidInput
    from loopml.features import FeatureStore

    if not feature and not from_dataset:
        raise InvalidInput("give the features (--feature NAME:TYPE ...) or --from-dataset NAME[:VER]")
    record_id, sep, id_type = id_col.partition(":")
    tags: dict[str, str] = {}
    for t in tag:
        k, eq, v = t.partition("=")
        if not eq or not k:
            raise InvalidInput(f"tag {t!r} must be written KEY=VALUE")
        tags[k] = v
    with open_workspace() as ws, FeatureStore(ws) as fs:
        g = fs.create_group(
            name, record_id=record_id, event_time=time_col, features=feature or None,
            data=from_dataset, id_type=id_type.lower() if sep else None,  # type: ignore[arg-type]
            description=description, owner=owner, tags=tags, online=not offline_only, ttl=ttl,
        )
    if as_json:
        print_json(g.to_dict())
        return
    console.print(f"[green]Created feature group {g.name}[/]: id {g.record_id} ({g.id_type}), "
                  f"event time {g.event_time}, {len(g.features)} feature(s)")
    for f in g.features:
        console.print(f"  {f.name}: {f.type}")


@features_app.command("ingest")
def ingest_cmd(
    name: str = typer.Argument(..., help="Feature group."),
    dataset: str = typer.Argument(..., help="Dataset version NAME[:VER] to ingest."),
    offline_only: bool = typer.Option(False, "--offline-only", help="Only append to the offline store (materialize later)."),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest a dataset version into feature group NAME (offline, and online if enabled)."""
    from loopml.features import FeatureStore

    with open_workspace() as ws, FeatureStore(ws) as fs, _progress(f"ingesting into {name}") as cb:
        r = fs.ingest(name, dataset, online=False if offline_only else None, progress=cb)
    if as_json:
        print_json(r.to_dict())
        return
    if r.seq is None:
        console.print(f"[yellow]No rows[/] in {dataset}; nothing stored")
        return
    online = "" if r.online_records is None else f"; {r.online_records:,} online record(s) updated"
    console.print(f"[green]Ingested {r.rows:,} rows[/] into {name} (part {r.seq}){online}")
    if r.ignored_columns:
        console.print(f"  ignored columns not in the group: {', '.join(r.ignored_columns)}")


@features_app.command("get")
def get_cmd(
    name: str = typer.Argument(..., help="Feature group."),
    record_id: str = typer.Argument(..., help="Record identifier."),
    feature: list[str] = typer.Option([], "--feature", "-f", help="Only these features (repeatable)."),
    as_json: bool = JsonOpt,
) -> None:
    """Print the latest online record of RECORD_ID."""
    from loopml.errors import NotFound
    from loopml.features import FeatureStore

    with open_workspace() as ws, FeatureStore(ws) as fs:
        rec = fs.get_record(name, record_id, feature or None)
    if rec is None:
        raise NotFound(f"feature group {name!r} has no online record for id {record_id!r} (never "
                       f"ingested, deleted, or expired); see `loopml features describe {name}`")
    if as_json:
        print_json(rec)
        return
    t = Table("feature", "value")
    for k, v in rec.items():
        t.add_row(k, _short(v))
    console.print(t)


def _read_table(path: Path) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from loopml.errors import InvalidInput

    if not path.exists():
        raise InvalidInput(f"entity file {path} not found")
    ext = path.suffix.lower()
    if ext == ".parquet":
        return pq.read_table(path)
    if ext in (".csv", ".tsv"):
        return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t" if ext == ".tsv" else ","))
    raise InvalidInput(f"cannot read entity file {path}: use .parquet or .csv")


@features_app.command("history")
def history_cmd(
    selections: list[str] = typer.Argument(..., help="GROUP (all features) or GROUP:FEATURE, several allowed."),
    entities: Path = typer.Option(..., "--entities", help="Parquet or CSV file of entity rows: record id(s) and a time."),
    out: Path = typer.Option(..., "--out", help="Training set file to write (.parquet or .csv)."),
    time_column: str = typer.Option(None, "--time-column", help="Entity time column (default: the group's event-time column name)."),
    max_age: str = typer.Option(None, "--max-age", help="Ignore feature values older than this, e.g. 30d."),
    full_names: bool = typer.Option(False, "--full-names", help="Name columns GROUP__FEATURE."),
    as_json: bool = JsonOpt,
) -> None:
    """Point-in-time correct training set: each entity row joined with features as of its time."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from loopml.errors import InvalidInput
    from loopml.features import FeatureStore

    ext = out.suffix.lower()
    if ext not in (".parquet", ".csv"):
        raise InvalidInput(f"cannot write {out}: use a .parquet or .csv file name")
    table = _read_table(entities)
    with open_workspace() as ws, FeatureStore(ws) as fs:
        result = fs.get_training_set(table, selections, time_column=time_column, max_age=max_age,
                                     full_names=full_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if ext == ".parquet":
        pq.write_table(result, tmp)
    else:
        pacsv.write_csv(result, tmp)
    tmp.replace(out)
    added = result.column_names[table.num_columns:]
    matched = {c: result.num_rows - result.column(c).null_count for c in added}
    if as_json:
        print_json({"out": str(out), "rows": result.num_rows, "features": added, "non_null": matched})
        return
    console.print(f"[green]Wrote {out}[/]: {result.num_rows:,} rows, {len(added)} feature column(s)")
    for c, n in matched.items():
        console.print(f"  {c}: {n:,} non-null")


@features_app.command("materialize")
def materialize_cmd(
    name: str = typer.Argument(..., help="Feature group."),
    incremental: bool = typer.Option(False, "--incremental", help="Only parts ingested since the last run."),
    as_json: bool = JsonOpt,
) -> None:
    """Load the latest record per id from the offline store into the online store."""
    from loopml.features import FeatureStore

    with open_workspace() as ws, FeatureStore(ws) as fs, _progress(f"materializing {name}") as cb:
        r = fs.materialize(name, incremental=incremental, progress=cb)
    if as_json:
        print_json(r.to_dict())
        return
    if not r.parts:
        console.print(f"{name} is up to date: no parts ingested since the last materialization")
        return
    console.print(f"[green]Materialized {name}[/]: {r.rows_read:,} rows in {len(r.parts)} part(s) -> "
                  f"{r.records:,} latest records ({r.written:,} newer than the online store) "
                  f"in {r.seconds:.2f} s")


@features_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List feature groups."""
    from loopml.features import FeatureStore

    with open_workspace() as ws:
        groups = FeatureStore(ws).list_groups()
    if as_json:
        print_json([g.to_dict() for g in groups])
        return
    if not groups:
        console.print("No feature groups yet. Create one with `loopml features create G --id COL "
                      "--time COL --feature NAME:TYPE`.")
        return
    t = Table("name", "record id", "event time", "features", "online", "description")
    for g in groups:
        t.add_row(g.name, g.record_id, g.event_time, str(len(g.features)),
                  "yes" if g.online else "no", _short(g.description))
    console.print(t)


@features_app.command("describe")
def describe_cmd(name: str = typer.Argument(..., help="Feature group."), as_json: bool = JsonOpt) -> None:
    """Show a feature group: definitions, offline parts, materialization, online records."""
    from loopml.features import FeatureStore

    with open_workspace() as ws, FeatureStore(ws) as fs:
        d = fs.describe(name)
    if as_json:
        print_json(d)
        return
    console.print(f"[bold]{d['name']}[/]  (id {d['id']})")
    if d["description"]:
        console.print(f"  {d['description']}")
    console.print(f"  record id   {d['record_id']} ({d['id_type']})")
    console.print(f"  event time  {d['event_time']}")
    if d["owner"]:
        console.print(f"  owner       {d['owner']}")
    if d["tags"]:
        console.print(f"  tags        {', '.join(f'{k}={v}' for k, v in d['tags'].items())}")
    ttl = d["ttl_seconds"]
    console.print(f"  online      {'yes' if d['online'] else 'no'}"
                  + (f", ttl {ttl:g} s" if ttl else "")
                  + ("" if d["online_records"] is None else f", {d['online_records']:,} record(s)"))
    off = d["offline"]
    console.print(f"  offline     {off['rows']:,} rows in {len(off['parts'])} part(s), "
                  f"{off['bytes'] / 1e6:.2f} MB, event times {off['min_event_time']} .. "
                  f"{off['max_event_time']}")
    m = d["materialized"]
    console.print(f"  materialized {m['at']} ({m['records']:,} records)" if m else "  materialized never")
    t = Table("feature", "type", title="features")
    for f in d["features"]:
        t.add_row(f["name"], f["type"])
    console.print(t)
    for e in d["lineage"]:
        console.print(f"  ← {e['relation']} {e['from']}")


@features_app.command("delete")
def delete_cmd(name: str = typer.Argument(..., help="Feature group."), as_json: bool = JsonOpt) -> None:
    """Delete feature group NAME and its online records (offline files stay in the artifact store)."""
    from loopml.features import FeatureStore

    with open_workspace() as ws, FeatureStore(ws) as fs:
        fs.delete_group(name)
    if as_json:
        print_json({"deleted": name})
        return
    console.print(f"[green]Deleted feature group {name}[/]")
