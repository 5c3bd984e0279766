"""``loopml serve``: the data plane, every endpoint of the workspace on one uvicorn server."""

from __future__ import annotations

import os

import typer
from rich.markup import escape

from loopml.cli._app import app, console, open_workspace


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8080, "--port", "-p", help="Port to listen on."),
    endpoint: str = typer.Option(None, "--endpoint", "-e",
                                 help="Serve this endpoint only (POST /invocations answers with it)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes (each loads the models)."),
    streams: bool = typer.Option(True, "--streams/--no-streams",
                                 help="Also accept stream records at POST /streams/NAME/records."),
    reload_interval: float = typer.Option(0.5, "--reload-interval",
                                          help="Seconds between checks for endpoint changes."),
    metrics_interval: float = typer.Option(5.0, "--metrics-interval",
                                           help="Seconds between writes of metrics to the metrics table."),
) -> None:
    """Serve the workspace's endpoints over HTTP (SageMaker's InvokeEndpoint API and container contract).

    Deploys, weight changes and deletions apply without a restart. Stop with Ctrl+C.
    """
    import uvicorn

    from loopml.errors import InvalidInput

    if workers < 1:
        raise InvalidInput(f"--workers must be 1 or more, got {workers}")
    if not 0 <= port <= 65535:
        raise InvalidInput(f"--port must be from 0 to 65535, got {port}")
    options = dict(host=host, port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools",
                   timeout_graceful_shutdown=10)
    with open_workspace() as ws:
        from loopml.serve.app import create_app
        from loopml.serve.endpoints import get_endpoint, list_endpoints

        names = [get_endpoint(ws, endpoint).name] if endpoint else [e.name for e in list_endpoints(ws)]
        url = f"http://{host}:{port}"
        what = f"endpoint {endpoint}" if endpoint else f"{len(names)} endpoint(s)"
        console.print(f"Serving {escape(what)} on [bold]{url}[/]  (POST "
                      f"{'/invocations' if endpoint else '/endpoints/NAME/invocations'}, GET /metrics, "
                      "GET /endpoints); Ctrl+C to stop")
        if not names:
            console.print("  no endpoints yet: deploy one with `loopml endpoints deploy NAME --model M:V` "
                          "(picked up without a restart)")
        if workers == 1:
            application = create_app(ws, endpoint=endpoint, streams=streams, reload_interval_s=reload_interval,
                                     metrics_flush_interval_s=metrics_interval)
            uvicorn.run(application, **options)  # type: ignore[arg-type]
            return
        os.environ["LOOPML_HOME"] = str(ws.home)
        os.environ["LOOPML_SERVE_STREAMS"] = "1" if streams else "0"
        os.environ["LOOPML_SERVE_RELOAD_INTERVAL"] = str(reload_interval)
        os.environ["LOOPML_SERVE_METRICS_INTERVAL"] = str(metrics_interval)
        if endpoint:
            os.environ["LOOPML_SERVE_ENDPOINT"] = endpoint
    uvicorn.run("loopml.serve.app:app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]
