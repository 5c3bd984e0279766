"""``loopml endpoints``: deploy models behind endpoints, blue/green updates, traffic, replicas, API keys, history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import (
    JsonOpt,
    app,
    console,
    err_console,
    open_workspace,
    parse_pairs,
    print_json,
)

if TYPE_CHECKING:
    from loopml.serve.deployments import DeploymentInfo
    from loopml.serve.endpoints import EndpointChangeInfo, EndpointInfo
    from loopml.workspace import Workspace

endpoints_app = typer.Typer(help="Real-time endpoints: deploy, blue/green updates with rollback, A/B variants, "
                                 "multi-model, replicas and serverless, weights, API keys.",
                            no_args_is_help=True)
app.add_typer(endpoints_app, name="endpoints")

ByOpt = typer.Option(None, "--by", help="Who makes the change (default: your login name).")
ReasonOpt = typer.Option(None, "--reason", "-r", help="Why (kept in the endpoint's history).")


def _variants_table(info: EndpointInfo) -> Table:
    c = info.config
    if c.multi_model is not None:
        t = Table("target model", "model", "package", title=f"{escape(info.name)}: multi-model "
                  f"(at most {c.multi_model.max_loaded} loaded)")
        for target, m in sorted(c.multi_model.models.items()):
            t.add_row(escape(target), escape(m.model), m.package_sha256[:12])
        return t
    total = sum(v.weight for v in c.variants) or 1.0
    t = Table("variant", "model", "weight", "traffic", "package", title=escape(info.name))
    for v in c.variants:
        t.add_row(escape(v.name), escape(v.model), f"{v.weight:g}", f"{100 * v.weight / total:.1f}%",
                  v.package_sha256[:12])
    return t


def _settings(info: EndpointInfo) -> str:
    c = info.config
    bits = [f"version {info.version}", info.status]
    if c.capture.percentage:
        bits.append(f"capture {c.capture.percentage:g}%")
    if c.micro_batching.enabled:
        bits.append(f"micro-batching ({c.micro_batching.max_batch_rows} rows, {c.micro_batching.max_wait_ms:g} ms)")
    if c.auth.required:
        bits.append(f"API key required ({len(info.api_keys)} active)")
    bits.append(f"max {c.limits.max_rows:,} rows, {c.limits.max_payload_bytes:,} bytes")
    extra = c.extra
    if extra.get("serverless"):
        sv = extra["serverless"]
        bits.append(f"serverless ({sv['memory_mb']} MB, max concurrency {sv['max_concurrency']}, "
                    f"idle timeout {sv['idle_timeout_s']:g} s)")
    elif extra.get("scaling"):
        sc = extra["scaling"]
        bits.append(f"replicas {sc['min_replicas']}-{sc['max_replicas']} (target {sc['target_inflight']:g} "
                    "in flight each)")
    if extra.get("backend") and extra["backend"] != "local":
        bits.append(f"backend {extra['backend']}")
    return ", ".join(bits)


_STATUS_STYLE = {"Succeeded": "green", "InProgress": "yellow", "RolledBack": "red", "Failed": "red"}


def _print_deployments(deps: list[DeploymentInfo]) -> None:
    """One line per deployment (newest first), and its reason below it."""
    console.print("[bold]deployments[/] (newest first)")
    for d in deps:
        style = _STATUS_STYLE.get(d.status, "")
        status = d.status if d.status != "InProgress" else f"InProgress: {d.phase}, green {d.green_share:.0%}"
        moves = ", ".join(b["model"] for b in d.blue) + " -> " + ", ".join(g["model"] for g in d.green)
        console.print(f"  {escape(d.id)}  {d.created_at:%Y-%m-%d %H:%M:%S}  {escape(d.strategy)}  "
                      f"[{style}]{escape(status)}[/]  {escape(moves)}")
        if d.reason:
            console.print(f"      {escape(d.reason)}", style="dim")


@endpoints_app.command("deploy")
def deploy_cmd(
    name: str = typer.Argument(..., help="The endpoint (created, or its config replaced)."),
    model: str = typer.Option(None, "--model", "-m", help="One model (M:V, M@ALIAS or M), as variant AllTraffic."),
    variant: list[str] = typer.Option(None, "--variant", help="A production variant NAME=M:V:WEIGHT (repeat for A/B)."),
    multi_model: list[str] = typer.Option(None, "--multi-model",
                                          help="A multi-model target TARGET=M:V (repeat); requests pick with "
                                               "the Target-Model header."),
    max_loaded: int = typer.Option(8, "--max-loaded", help="Multi-model: most models loaded at once."),
    max_memory_mb: float = typer.Option(None, "--max-memory-mb",
                                        help="Multi-model: most MB of loaded packages (on disk)."),
    capture: float = typer.Option(0.0, "--capture", help="Percentage of requests to capture (0-100)."),
    auth: bool = typer.Option(False, "--auth", help="Require an API key (create one with `endpoints api-key`)."),
    micro_batching: bool = typer.Option(False, "--micro-batching", help="Batch concurrent single-row requests."),
    max_batch_rows: int = typer.Option(64, "--max-batch-rows", help="Micro-batching: rows per model call."),
    max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", help="Micro-batching: longest wait for a batch."),
    max_rows: int = typer.Option(10_000, "--max-rows", help="Most rows per request."),
    max_payload_bytes: int = typer.Option(6 * 1024 * 1024, "--max-payload-bytes", help="Largest request body."),
    require_approved: bool = typer.Option(False, "--require-approved", help="Refuse versions not Approved."),
    replicas: str = typer.Option(None, "--replicas",
                                 help="Serve each variant from MIN:MAX autoscaled worker processes (or N)."),
    target_inflight: float = typer.Option(None, "--target-inflight",
                                          help="Replicas: requests in flight per replica to aim at (default 2)."),
    serverless: bool = typer.Option(False, "--serverless",
                                    help="Serverless: no replica while idle, cold start on the first request."),
    memory_mb: int = typer.Option(2048, "--memory-mb", help="Serverless: memory limit of each replica (MB)."),
    max_concurrency: int = typer.Option(20, "--max-concurrency",
                                        help="Serverless: most requests in flight; more get 429."),
    idle_timeout: float = typer.Option(60.0, "--idle-timeout",
                                       help="Serverless: seconds without a request before scaling to zero."),
    backend: str = typer.Option("local", "--backend", help="local (this machine) or ray (Ray Serve)."),
    strategy: str = typer.Option(None, "--strategy",
                                 help="For an endpoint that exists: a blue/green update with this strategy "
                                      "(all-at-once, canary:PCT:SECONDS, linear:PCT:SECONDS); see `update`."),
    reason: str = ReasonOpt,
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Deploy models behind endpoint NAME: one model, A/B variants, or a multi-model endpoint.

    Running `loopml serve` processes pick the change up within a second. With --strategy, an
    existing endpoint gets its new model through a guarded blue/green update instead.
    """
    from loopml.errors import InvalidInput
    from loopml.serve.endpoints import deploy, get_endpoint, parse_variant
    from loopml.serve.serverless import check_serverless

    targets = parse_pairs(multi_model or [], "--multi-model", "a=churn:3") if multi_model else None
    sv = check_serverless(memory_mb, max_concurrency, idle_timeout_s=idle_timeout) if serverless else None
    if sv is not None and (replicas is not None or target_inflight is not None):
        raise InvalidInput("give --replicas or --serverless, not both: a serverless endpoint scales from zero by itself")
    with open_workspace() as ws:
        if strategy is not None:
            from loopml.errors import NotFound

            try:
                get_endpoint(ws, name)
                exists = True
            except NotFound:
                exists = False  # a new endpoint: nothing to shift from, a plain deploy
            if exists:
                if targets or replicas or serverless or backend != "local":
                    raise InvalidInput("--strategy updates the models of an existing endpoint; change its replicas, "
                                       "serverless or backend settings with a plain `deploy` (without --strategy)")
                if capture or auth or micro_batching or max_rows != 10_000 or max_payload_bytes != 6 * 1024 * 1024:
                    raise InvalidInput("--strategy updates the models only; change settings with `loopml endpoints "
                                       f"update {name} --capture ... --max-rows ...` (settings apply first there)")
                _run_update(ws, name, model=model, variant=variant, strategy=strategy, alarm=[], max_error_rate=0.05,
                            max_p99_ms=None, termination_wait=0.0, timeout=3600.0, guardrail_period=10, poll=1.0,
                            require_approved=require_approved, no_wait=False, by=by, reason=reason, as_json=as_json)
                return
        info = deploy(
            ws, name, model=model, variants=[parse_variant(v) for v in variant or []] or None,
            multi_model=targets, max_loaded=max_loaded, max_memory_mb=max_memory_mb,
            capture_percentage=capture, api_key_required=auth, micro_batching=micro_batching,
            max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms, max_rows=max_rows,
            max_payload_bytes=max_payload_bytes, require_approved=require_approved, replicas=replicas,
            target_inflight=target_inflight, serverless=sv, backend=backend, by=by, reason=reason,
        )
    if as_json:
        print_json(info.to_dict())
        return
    verb = "Deployed" if info.version == 1 else "Updated"
    console.print(f"[green]{verb} endpoint {escape(info.name)}[/] ({escape(_settings(info))})")
    console.print(_variants_table(info))
    if info.config.auth.required and not info.api_keys:
        console.print(f"  requests need an API key: create one with `loopml endpoints api-key {escape(name)}`")


@endpoints_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List the endpoints."""
    from loopml.serve.endpoints import list_endpoints

    with open_workspace() as ws:
        eps = list_endpoints(ws)
    if as_json:
        print_json([e.to_dict() for e in eps])
        return
    if not eps:
        console.print("No endpoints yet. Deploy one with `loopml endpoints deploy NAME --model M:V`.")
        return
    t = Table("endpoint", "status", "version", "serves", "capture", "auth", "updated")
    for e in eps:
        c = e.config
        if c.multi_model is not None:
            serves = f"multi-model: {len(c.multi_model.models)} models"
        else:
            total = sum(v.weight for v in c.variants) or 1.0
            serves = ", ".join(f"{v.name}={v.model} ({100 * v.weight / total:.0f}%)" for v in c.variants)
        t.add_row(escape(e.name), e.status, str(e.version), escape(serves),
                  f"{c.capture.percentage:g}%" if c.capture.percentage else "",
                  "key" if c.auth.required else "", e.updated_at.strftime("%Y-%m-%d %H:%M"))
    console.print(t)


@endpoints_app.command("describe")
def describe_cmd(
    name: str = typer.Argument(..., help="The endpoint."),
    as_json: bool = JsonOpt,
) -> None:
    """Show an endpoint: variants and weights (or targets), settings, API keys, recent changes."""
    from loopml.serve.deployments import list_deployments
    from loopml.serve.endpoints import endpoint_history, get_endpoint, list_api_keys

    with open_workspace() as ws:
        info = get_endpoint(ws, name)
        history = endpoint_history(ws, name)
        keys = list_api_keys(ws, name)
        deps = list_deployments(ws, name, limit=10)
    if as_json:
        out = info.to_dict()
        out["history"] = [{k: v for k, v in h.to_dict().items() if k not in ("old_config", "new_config")}
                          for h in history]
        out["api_keys"] = [k.to_dict() for k in keys]
        out["deployments"] = [d.to_dict() for d in deps]
        print_json(out)
        return
    console.print(f"[bold]{escape(info.name)}[/]  {escape(_settings(info))}")
    console.print(f"  created {info.created_at:%Y-%m-%d %H:%M:%S} UTC by {escape(info.created_by)}, "
                  f"updated {info.updated_at:%Y-%m-%d %H:%M:%S} UTC")
    console.print(_variants_table(info))
    if keys:
        t = Table("API key", "description", "created", "revoked", title="API keys")
        for k in keys:
            t.add_row(escape(k.id), escape(k.description), k.created_at.strftime("%Y-%m-%d %H:%M"),
                      "" if k.revoked_at is None else k.revoked_at.strftime("%Y-%m-%d %H:%M"))
        console.print(t)
    if deps:
        _print_deployments(deps)
    _history_table(history[-10:])


def _history_table(history: list[EndpointChangeInfo]) -> None:
    t = Table("version", "when (UTC)", "change", "by", "reason", title="changes")
    for h in history:
        t.add_row(str(h.version), h.at.strftime("%Y-%m-%d %H:%M:%S"), escape(h.action), escape(h.by),
                  escape(h.reason or ""))
    console.print(t)


@endpoints_app.command("history")
def history_cmd(
    name: str = typer.Argument(..., help="The endpoint (deleted ones too)."),
    as_json: bool = JsonOpt,
) -> None:
    """Every change of an endpoint: version, when, what, who, why (with old and new config in --json)."""
    from loopml.serve.endpoints import endpoint_history

    with open_workspace() as ws:
        history = endpoint_history(ws, name)
    if as_json:
        print_json([h.to_dict() for h in history])
        return
    _history_table(history)


@endpoints_app.command("update")
def update_cmd(
    name: str = typer.Argument(..., help="The endpoint."),
    model: str = typer.Option(None, "--model", "-m",
                              help="Deploy this model (M:V, M@ALIAS, M) by a blue/green update with guardrails."),
    variant: list[str] = typer.Option(None, "--variant",
                                      help="Or a new set of variants NAME=M:V:WEIGHT (repeat), by the same update."),
    strategy: str = typer.Option("all-at-once", "--strategy",
                                 help="Traffic shifting: all-at-once[:SECONDS], canary:PCT:SECONDS, "
                                      "linear:PCT:SECONDS (SECONDS: the baking period after each step)."),
    alarm: list[str] = typer.Option(None, "--alarm", help="An alarm that rolls the update back when in ALARM "
                                                          "(repeat)."),
    max_error_rate: float = typer.Option(0.05, "--max-error-rate",
                                         help="Guardrail: roll back above this 5XX error rate of the new "
                                              "version (0-1)."),
    max_p99_ms: float = typer.Option(None, "--max-p99-ms",
                                     help="Guardrail: roll back above this p99 latency (ms) of the new version."),
    termination_wait: float = typer.Option(0.0, "--termination-wait",
                                           help="Seconds the old version stays (at weight 0) after the last shift."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Roll back if the update is not done after this long."),
    guardrail_period: int = typer.Option(10, "--guardrail-period",
                                         help="Period of the guardrail alarms in seconds (>= the server's "
                                              "--metrics-interval)."),
    poll: float = typer.Option(1.0, "--poll", help="Seconds between two evaluations of the alarms."),
    no_wait: bool = typer.Option(False, "--no-wait",
                                 help="Run the update in a detached process; watch it with `endpoints describe`."),
    require_approved: bool = typer.Option(False, "--require-approved", help="Refuse versions not Approved."),
    capture: float = typer.Option(None, "--capture", help="Percentage of requests to capture (0 turns it off)."),
    auth: bool = typer.Option(None, "--auth/--no-auth", help="Require an API key, or stop requiring one."),
    micro_batching: bool = typer.Option(None, "--micro-batching/--no-micro-batching",
                                        help="Batch concurrent single-row requests, or stop."),
    max_batch_rows: int = typer.Option(None, "--max-batch-rows", help="Micro-batching: rows per model call."),
    max_wait_ms: float = typer.Option(None, "--max-wait-ms", help="Micro-batching: longest wait for a batch."),
    max_rows: int = typer.Option(None, "--max-rows", help="Most rows per request."),
    max_payload_bytes: int = typer.Option(None, "--max-payload-bytes", help="Largest request body."),
    max_loaded: int = typer.Option(None, "--max-loaded", help="Multi-model: most models loaded at once."),
    reason: str = ReasonOpt,
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Update an endpoint: new models by a guarded blue/green update (--model), and/or its settings.

    With --model (or --variant), the new version runs beside the old one and traffic shifts per
    --strategy; during each baking period alarms watch the new version (its 5XX error rate, its
    p99 latency, and every --alarm); on an alarm all traffic returns to the old version and the
    update is marked RolledBack (exit code 1). Without --model, only the settings given change.
    """
    from loopml.serve.endpoints import update_endpoint

    settings = dict(capture_percentage=capture, api_key_required=auth, micro_batching=micro_batching,
                    max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms, max_rows=max_rows,
                    max_payload_bytes=max_payload_bytes, max_loaded=max_loaded)
    with open_workspace() as ws:
        if any(v is not None for v in settings.values()) or not (model or variant):
            info = update_endpoint(ws, name, by=by, reason=reason, **settings)  # type: ignore[arg-type]
            if not (model or variant):
                if as_json:
                    print_json(info.to_dict())
                    return
                console.print(f"Endpoint {escape(info.name)}: {escape(_settings(info))}")
                return
        _run_update(ws, name, model=model, variant=variant, strategy=strategy, alarm=alarm or [],
                    max_error_rate=max_error_rate, max_p99_ms=max_p99_ms, termination_wait=termination_wait,
                    timeout=timeout, guardrail_period=guardrail_period, poll=poll, require_approved=require_approved,
                    no_wait=no_wait, by=by, reason=reason, as_json=as_json)


def _run_update(ws: Workspace, name: str, *, model: str | None, variant: list[str] | None, strategy: str,
                alarm: list[str], max_error_rate: float | None, max_p99_ms: float | None, termination_wait: float,
                timeout: float, guardrail_period: int, poll: float, require_approved: bool, no_wait: bool,
                by: str | None, reason: str | None, as_json: bool) -> None:
    """Run a blue/green update with a live progress bar (stderr) and print how it ended."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from loopml.serve import deployments
    from loopml.serve.endpoints import get_endpoint, parse_variant

    kwargs: dict[str, Any] = dict(
        model=model, variants=[parse_variant(v) for v in variant or []] or None, strategy=strategy, alarms=alarm,
        max_error_rate=max_error_rate, max_p99_ms=max_p99_ms, termination_wait_s=termination_wait,
        timeout_s=timeout, guardrail_period_s=guardrail_period, poll_s=poll, require_approved=require_approved,
        by=by, reason=reason)
    if no_wait:
        d = deployments.update_endpoint(ws, name, wait=False, **kwargs)
        if as_json:
            print_json(d.to_dict())
            return
        console.print(f"Deployment {escape(d.id)} of {escape(name)} ({escape(d.strategy)}) runs in the background; "
                      f"watch it with `loopml endpoints describe {escape(name)}`")
        return
    bar = Progress(TextColumn("[bold]{task.fields[label]}[/]"), BarColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn(), console=err_console, transient=True, disable=as_json)
    task = bar.add_task("starting", total=1.0, label=f"deploying to {escape(name)}")

    def show(p: deployments.Progress) -> None:
        done = min(p.step, p.steps) / max(p.steps, 1) if p.phase != "done" else 1.0
        bar.update(task, completed=done, description=escape(p.message))
        if p.phase in ("shift", "rollback"):
            bar.console.print(f"  {escape(p.message)}", style="red" if p.phase == "rollback" else "dim")

    with bar:
        d = deployments.update_endpoint(ws, name, wait=True, progress=show, **kwargs)
    if as_json:
        print_json(d.to_dict())
    else:
        style = _STATUS_STYLE.get(d.status, "")
        console.print(f"[{style}]Deployment {escape(d.id)} {d.status}[/]" + (f": {escape(d.reason)}" if d.reason else ""))
        console.print(_variants_table(get_endpoint(ws, name)))
    if d.status != deployments.SUCCEEDED:
        raise typer.Exit(1)


@endpoints_app.command("rollback")
def rollback_cmd(
    name: str = typer.Argument(..., help="The endpoint whose update is in progress."),
    reason: str = ReasonOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Stop the endpoint's blue/green update now and send all traffic back to the old version."""
    from loopml.serve.deployments import rollback_deployment

    with open_workspace() as ws:
        d = rollback_deployment(ws, name, reason=reason)
    if as_json:
        print_json(d.to_dict())
        return
    console.print(f"Deployment {escape(d.id)} of {escape(name)}: {d.status}" + (f" ({escape(d.reason)})" if d.reason else ""))


@endpoints_app.command("resume")
def resume_cmd(
    name: str = typer.Argument(..., help="The endpoint whose update's controller died."),
    stale_after: float = typer.Option(30.0, "--stale-after",
                                      help="Take over a controller on another host silent for this many seconds."),
    as_json: bool = JsonOpt,
) -> None:
    """Take over an update whose controller died, and continue it (the current step bakes again)."""
    from loopml.serve.deployments import resume_deployment

    with open_workspace() as ws:
        d = resume_deployment(ws, name, stale_after_s=stale_after)
    if as_json:
        print_json(d.to_dict())
    else:
        console.print(f"Deployment {escape(d.id)} of {escape(name)}: {d.status}" + (f" ({escape(d.reason)})" if d.reason else ""))
    if d.status != "Succeeded":
        raise typer.Exit(1)


@endpoints_app.command("update-weights")
def update_weights_cmd(
    name: str = typer.Argument(..., help="The endpoint."),
    weights: list[str] = typer.Argument(..., help="VARIANT=WEIGHT pairs (others keep their weight)."),
    reason: str = ReasonOpt,
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Shift traffic between variants, without a redeploy or a server restart."""
    from loopml.serve.endpoints import parse_weights, update_weights

    with open_workspace() as ws:
        info = update_weights(ws, name, parse_weights(weights), by=by, reason=reason)
    if as_json:
        print_json(info.to_dict())
        return
    console.print(_variants_table(info))


@endpoints_app.command("delete")
def delete_cmd(
    name: str = typer.Argument(..., help="The endpoint."),
    reason: str = ReasonOpt,
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete an endpoint and its API keys (its history stays)."""
    from loopml.serve.endpoints import delete_endpoint

    with open_workspace() as ws:
        delete_endpoint(ws, name, by=by, reason=reason)
    if as_json:
        print_json({"endpoint": name, "deleted": True})
        return
    console.print(f"Deleted endpoint {escape(name)}")


@endpoints_app.command("api-key")
def api_key_cmd(
    name: str = typer.Argument(..., help="The endpoint."),
    description: str = typer.Option("", "--description", "-d", help="What the key is for."),
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create an API key for an endpoint and print it (once: only its hash is kept)."""
    from loopml.serve.endpoints import create_api_key, get_endpoint

    with open_workspace() as ws:
        key = create_api_key(ws, name, description=description, by=by)
        required = get_endpoint(ws, name).config.auth.required
    if as_json:
        print_json(key.to_dict())
        return
    typer.echo(key.key)
    note = "" if required else f" (the endpoint does not require keys yet: `loopml endpoints update {name} --auth`)"
    err_console.print(f"API key {escape(key.id)} for {escape(name)}: shown once, store it now{escape(note)}",
                      style="dim")


@endpoints_app.command("api-keys")
def api_keys_cmd(
    name: str = typer.Argument(..., help="The endpoint."),
    as_json: bool = JsonOpt,
) -> None:
    """List an endpoint's API keys (ids and dates; secrets are never stored)."""
    from loopml.serve.endpoints import list_api_keys

    with open_workspace() as ws:
        keys = list_api_keys(ws, name)
    if as_json:
        print_json([k.to_dict() for k in keys])
        return
    t = Table("API key", "description", "created by", "created", "revoked")
    for k in keys:
        t.add_row(escape(k.id), escape(k.description), escape(k.created_by), k.created_at.strftime("%Y-%m-%d %H:%M"),
                  "" if k.revoked_at is None else k.revoked_at.strftime("%Y-%m-%d %H:%M"))
    console.print(t)


@endpoints_app.command("revoke-key")
def revoke_key_cmd(
    name: str = typer.Argument(..., help="The endpoint."),
    key_id: str = typer.Argument(..., help="The key's id (see `endpoints api-keys`)."),
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Revoke an API key (running servers refuse it within a second)."""
    from loopml.serve.endpoints import revoke_api_key

    with open_workspace() as ws:
        revoke_api_key(ws, name, key_id, by=by)
    if as_json:
        print_json({"endpoint": name, "key_id": key_id, "revoked": True})
        return
    console.print(f"Revoked API key {escape(key_id)} of {escape(name)}")
