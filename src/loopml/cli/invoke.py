"""``loopml invoke``: send one request to an endpoint, in this process or to a running server."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from loopml.cli._app import JsonOpt, app, err_console, open_workspace, print_json

_SUFFIX_TYPES = {".csv": "text/csv", ".jsonl": "application/jsonlines", ".ndjson": "application/jsonlines",
                 ".json": "application/json"}


@app.command("invoke")
def invoke_cmd(
    endpoint: str = typer.Argument(..., help="The endpoint."),
    data: str = typer.Option(None, "--data", "-d", help='The request body inline, e.g. \'{"x1": 0.5}\'.'),
    body: Path = typer.Option(None, "--body", "-b", help="Read the request body from this file ('-': stdin)."),
    content_type: str = typer.Option(None, "--content-type", "-t",
                                     help="application/json (default), text/csv or application/jsonlines "
                                          "(default from --body's suffix)."),
    accept: str = typer.Option(None, "--accept", "-a", help="Response format (default: the request's)."),
    url: str = typer.Option(None, "--url", help="Send it to this `loopml serve` instead of predicting in-process."),
    api_key: str = typer.Option(None, "--api-key", envvar="LOOPML_API_KEY",
                                help="API key for --url (or $LOOPML_API_KEY)."),
    variant: str = typer.Option(None, "--variant", help="Send it to this production variant."),
    target_model: str = typer.Option(None, "--target-model", help="The model of a multi-model endpoint."),
    inference_id: str = typer.Option(None, "--inference-id", help="Your id of the request (with --url)."),
    as_json: bool = JsonOpt,
) -> None:
    """Invoke endpoint ENDPOINT with one request and print the answer.

    Without --url the workspace's endpoint config is read and the model runs
    in this process (no server needed); with --url the request goes over HTTP.
    """
    from loopml.errors import InvalidInput
    from loopml.serve.client import Endpoint

    if (data is None) == (body is None):
        raise InvalidInput("give the request body with --data JSON or --body FILE (one of them)")
    if data is not None:
        payload = data.encode()
    elif str(body) == "-":
        payload = sys.stdin.buffer.read()
    else:
        try:
            payload = body.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read --body {body}: {e.strerror or e}") from None
    if content_type is None:
        content_type = _SUFFIX_TYPES.get(body.suffix.lower(), "application/json") if body is not None \
            else "application/json"
    if url is not None:
        with Endpoint(url, endpoint, api_key=api_key) as ep:
            r = ep.invoke(payload, content_type, accept, variant=variant, target_model=target_model,
                          inference_id=inference_id)
    else:
        with open_workspace() as ws, Endpoint(ws, endpoint) as ep:
            r = ep.invoke(payload, content_type, accept, variant=variant, target_model=target_model)
    if as_json:
        text = r.body.decode("utf-8", "replace")
        try:
            parsed: object = r.json()
        except ValueError:
            parsed = text
        print_json({"endpoint": endpoint, "variant": r.variant, "content_type": r.content_type, "body": parsed})
        return
    sys.stdout.write(r.body.decode("utf-8", "replace").rstrip("\n") + "\n")
    err_console.print(f"variant {escape(r.variant)}", style="dim")
