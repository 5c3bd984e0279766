"""A real ``loopml serve`` app on 127.0.0.1 in a background thread, and clients that send it traffic.

The demo and the end-to-end test use these to talk to an endpoint over real
HTTP, the way a user's application would.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from loopml.errors import LoopmlError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.workspace import Workspace

VARIANT_HEADER = "x-amzn-invoked-production-variant"


@contextmanager
def serving(
    ws: Workspace,
    *,
    metrics_flush_interval_s: float = 1.0,
    capture_flush_interval_s: float = 0.2,
    reload_interval_s: float = 0.2,
    start_timeout_s: float = 30.0,
) -> Iterator[str]:
    """Serve every endpoint of ``ws`` with uvicorn on 127.0.0.1 (a free port) in a thread.

    Yields the base URL; on exit the server stops, which flushes captured data
    and metrics.

    Raises
    ------
    LoopmlError
        The server did not start within ``start_timeout_s``.
    """
    import uvicorn

    from loopml.serve.app import create_app

    app = create_app(ws, metrics_flush_interval_s=metrics_flush_interval_s,
                     capture_flush_interval_s=capture_flush_interval_s, reload_interval_s=reload_interval_s)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                            loop="asyncio", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="loopml-demo-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise LoopmlError("the endpoint server did not start on 127.0.0.1")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON request carries them: plain numbers, text, null for missing."""
    out: list[dict[str, Any]] = []
    for row in df.to_dict("records"):
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and math.isnan(v):
                v = None
            rec[str(k)] = v
        out.append(rec)
    return out


@dataclass
class Answer:
    """One HTTP answer of the endpoint: status, the variant that answered, the predictions."""

    status: int
    variant: str | None
    predictions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


class Client:
    """Sends records to one endpoint over HTTP with its API key.

    Parameters
    ----------
    url
        The server's base URL.
    endpoint
        The endpoint's name.
    api_key
        Sent as ``Authorization: Bearer KEY`` (None: no key).
    """

    def __init__(self, url: str, endpoint: str, api_key: str | None = None, timeout_s: float = 30.0) -> None:
        self.path = f"/endpoints/{endpoint}/invocations"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)

    def invoke(self, records: Sequence[Mapping[str, Any]], *, headers: Mapping[str, str] | None = None) -> Answer:
        """POST ``records`` as JSON; the answer (a transport error is status 0)."""
        import orjson

        try:
            r = self._http.post(self.path, content=orjson.dumps(list(records)), headers=dict(headers or {}))
        except httpx.HTTPError as e:
            return Answer(0, None, error=f"{type(e).__name__}: {e}")
        if r.status_code != 200:
            return Answer(r.status_code, r.headers.get(VARIANT_HEADER), error=r.text[:300])
        return Answer(200, r.headers.get(VARIANT_HEADER), r.json().get("predictions", []))

    def send(self, df: pd.DataFrame, batch: int = 25) -> list[Answer]:
        """Send every row of ``df`` in requests of ``batch`` records; the answers, in order."""
        records = json_records(df)
        return [self.invoke(records[i:i + batch]) for i in range(0, len(records), batch)]

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Traffic:
    """Continuous traffic from a background thread: small requests, one after another, every answer counted.

    Parameters
    ----------
    client
        Where to send.
    df
        Rows to cycle through.
    batch
        Records per request.
    pause_s
        Seconds between requests.
    """

    def __init__(self, client: Client, df: pd.DataFrame, *, batch: int = 5, pause_s: float = 0.02) -> None:
        self.client = client
        self.records = json_records(df)
        self.batch = batch
        self.pause_s = pause_s
        self.statuses: Counter[int] = Counter()
        self.variants: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopml-demo-traffic", daemon=True)

    def _run(self) -> None:
        i = 0
        n = len(self.records)
        while not self._stop.is_set():
            chunk = [self.records[(i + k) % n] for k in range(self.batch)]
            i += self.batch
            a = self.client.invoke(chunk)
            self.statuses[a.status] += 1
            if a.variant:
                self.variants[a.variant] += 1
            if a.status != 200 and len(self.errors) < 20:
                self.errors.append(f"{a.status}: {a.error}")
            self._stop.wait(self.pause_s)

    @property
    def requests(self) -> int:
        """Answers received so far."""
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        """Answers other than 200 (transport errors count as status 0)."""
        return sum(n for s, n in self.statuses.items() if s != 200)

    def start(self) -> Traffic:
        """Start sending."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the request in flight."""
        self._stop.set()
        self._thread.join(60)

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["VARIANT_HEADER", "Answer", "Client", "Traffic", "json_records", "serving"]
