"""HTTP JSON API source: paginated REST endpoints, with retries and token auth.

Pages are fetched one at a time and gathered into record batches of at most
:data:`~loopml.data.sources.files.BATCH_ROWS` rows, so memory stays bounded
however many pages the API has.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pyarrow as pa

from loopml.data.sources.files import BATCH_ROWS, records_to_batches
from loopml.errors import InvalidInput, SourceError

log = logging.getLogger(__name__)

#: longest wait between retries, and the largest ``Retry-After`` we honour
MAX_DELAY = 30.0
#: query parameters whose values are masked in descriptions and messages
_SECRET_PARAM = re.compile(r"token|key|secret|pass|auth|sig|cred|session", re.IGNORECASE)
_MISSING = object()
Records = list[dict[str, Any]]


@dataclass
class HttpSource:
    """Read records from a paginated JSON HTTP API.

    Parameters
    ----------
    url
        The endpoint, ``http://`` or ``https://``.
    records_key
        Dotted path of the list of records in each response (``data.items``).
        By default the body itself (a JSON array), or the only array of
        objects in a body that is a JSON object.
    next_key
        Dotted path of the next page's URL in the body (absolute or relative).
        A ``Link: <...>; rel="next"`` header is followed whenever present.
    page_param
        Query parameter numbering the pages (``start_page``, +1, ...) until an
        empty page.
    offset_param, limit_param
        Query parameters for offset pagination (0, ``page_size``, ...) until a
        page shorter than ``page_size``; ``limit_param`` (any style) sends
        ``page_size`` with the request.
    params, headers
        Extra query parameters and request headers.
    auth_env
        Name of the environment variable holding the API token (never the
        token itself); it is sent as ``auth_header: "{auth_scheme} {token}"``.
    max_retries, backoff, timeout
        Retries on 429, 5xx and network errors, waiting ``backoff * 2**attempt``
        seconds (or the server's ``Retry-After``); per-request timeout.
    max_pages
        Fail rather than follow more pages than this.

    Examples
    --------
    >>> src = HttpSource("https://api.example.com/v1/orders", records_key="data",
    ...                  next_key="links.next", auth_env="SHOP_TOKEN")
    >>> src.describe()["pagination"]
    {'style': 'next_key', 'next_key': 'links.next'}
    """

    url: str
    _: KW_ONLY
    records_key: str | None = None
    next_key: str | None = None
    page_param: str | None = None
    offset_param: str | None = None
    limit_param: str | None = None
    page_size: int = 100
    start_page: int = 1
    params: dict[str, Any] | None = field(default=None, repr=False)
    auth_env: str | None = None
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    headers: dict[str, str] | None = field(default=None, repr=False)
    max_retries: int = 5
    backoff: float = 0.5
    timeout: float = 30.0
    max_pages: int = 10_000
    kind: str = field(default="http", init=False)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise InvalidInput(f"HTTP source URL must start with http:// or https://, got {_safe_url(self.url)!r}")
        styles = [s for s in ("next_key", "page_param", "offset_param") if getattr(self, s)]
        if len(styles) > 1:
            raise InvalidInput(f"choose one pagination style, got {' and '.join(styles)}")
        checks = (("page_size", ">= 1", self.page_size >= 1), ("max_pages", ">= 1", self.max_pages >= 1),
                  ("max_retries", ">= 0", self.max_retries >= 0), ("backoff", ">= 0", self.backoff >= 0),
                  ("timeout", "> 0", self.timeout > 0))
        for name, rule, ok in checks:
            if not ok:
                raise InvalidInput(f"{name} must be {rule}, got {getattr(self, name)!r}")

    def describe(self) -> dict[str, Any]:
        """JSON description: URL with credentials and secret query values masked, no token."""
        d: dict[str, Any] = {
            "kind": self.kind, "uri": _safe_url(self.url),
            "pagination": self._pagination(), "records_key": self.records_key,
        }
        if self.params:
            d["params"] = {k: "***" if _SECRET_PARAM.search(k) else v for k, v in self.params.items()}
        if self.auth_env:
            d["auth_env"] = self.auth_env
        return d

    def _pagination(self) -> dict[str, Any]:
        size = {"limit_param": self.limit_param, "page_size": self.page_size} if self.limit_param else {}
        if self.page_param:
            return {"style": "page", "page_param": self.page_param, "start_page": self.start_page, **size}
        if self.offset_param:
            return {"style": "offset", "offset_param": self.offset_param, "page_size": self.page_size, **size}
        if self.next_key:
            return {"style": "next_key", "next_key": self.next_key, **size}
        return {"style": "link_header", **size}

    # -- reading ------------------------------------------------------------------
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Fetch every page and stream the records as batches of up to ``BATCH_ROWS`` rows."""
        headers = {"Accept": "application/json", **(self.headers or {})}
        token = None
        if self.auth_env:
            token = os.environ.get(self.auth_env)
            if not token:
                raise InvalidInput(
                    f"environment variable ${self.auth_env} (auth_env) is not set; export the API token in it"
                )
            headers[self.auth_header] = f"{self.auth_scheme} {token}" if self.auth_scheme else token
        buf: Records = []
        try:
            with httpx.Client(headers=headers, timeout=self.timeout, follow_redirects=True) as client:
                for records in self._pages(client):
                    buf.extend(records)
                    while len(buf) >= BATCH_ROWS:
                        yield from records_to_batches(buf[:BATCH_ROWS])
                        del buf[:BATCH_ROWS]
        except SourceError as e:
            if token and token in str(e):  # an API that echoes the token back
                raise SourceError(str(e).replace(token, "***")) from None
            raise
        yield from records_to_batches(buf)

    def _pages(self, client: httpx.Client) -> Iterator[Records]:
        base = {**(self.params or {}), **({self.limit_param: self.page_size} if self.limit_param else {})}
        url, query = httpx.URL(self.url), base
        page, offset, previous = self.start_page, 0, None
        seen: set[str] = set()
        for _ in range(self.max_pages):
            if self.page_param:
                query = {**base, self.page_param: page}
            elif self.offset_param:
                query = {**base, self.offset_param: offset}
            resp = self._get(client, url.copy_merge_params(query))
            seen.add(str(resp.url))
            body = _json(resp)
            records = self._records(body, resp)
            if self.page_param or self.offset_param:
                if records and records == previous:
                    raise SourceError(
                        f"{_safe_url(str(resp.url))} returned the same records as the page before; "
                        f"check that the API understands {self.page_param or self.offset_param!r}"
                    )
                previous = records
            yield records
            if self.page_param:
                if not records:
                    return
                page += 1
            elif self.offset_param:
                if len(records) < self.page_size:
                    return
                offset += len(records)
            else:
                nxt = self._next_url(body, resp)
                if nxt is None:
                    return
                if str(nxt) in seen:
                    raise SourceError(
                        f"{_safe_url(str(resp.url))} links to {_safe_url(str(nxt))} as its next page, "
                        "which was already read; the API's pagination loops"
                    )
                url, query = nxt, {}
        raise SourceError(
            f"{_safe_url(self.url)} still had more pages after max_pages={self.max_pages}; "
            "raise max_pages or check the pagination options"
        )

    def _next_url(self, body: Any, resp: httpx.Response) -> httpx.URL | None:
        nxt = _dig(body, self.next_key) if self.next_key else None
        if nxt in (None, "", _MISSING):
            nxt = resp.links.get("next", {}).get("url")
        if nxt is None:
            return None
        if not isinstance(nxt, str):
            raise SourceError(
                f"next_key {self.next_key!r} in the response from {_safe_url(str(resp.url))} holds "
                f"a JSON {_jtype(nxt)}; it must be the next page's URL"
            )
        return resp.url.join(nxt)

    def _get(self, client: httpx.Client, url: httpx.URL) -> httpx.Response:
        """GET ``url``, retrying on 429, 5xx and network errors; fail at once on other 4xx."""
        safe, last = _safe_url(str(url)), ""
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                resp = client.get(url)
            except httpx.UnsupportedProtocol as e:
                raise SourceError(f"cannot fetch {safe}: {e}") from e
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            except httpx.HTTPError as e:
                raise SourceError(f"cannot fetch {safe}: {type(e).__name__}: {e}") from e
            else:
                if resp.status_code == 429 or resp.status_code >= 500:
                    last, wait = f"status {resp.status_code} {resp.reason_phrase}", _retry_after(resp)
                elif resp.status_code >= 400:
                    raise SourceError(self._client_error(resp, safe))
                else:
                    return resp
            if attempt == self.max_retries:
                break
            delay = wait if wait is not None else min(self.backoff * 2**attempt, MAX_DELAY)
            log.warning("%s: %s; retry %d of %d in %.2fs", safe, last, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
        raise SourceError(
            f"{safe} kept failing (last: {last}); retried {self.max_retries} times; "
            "the API may be down or rate limiting, try again later or raise max_retries"
        )

    def _client_error(self, resp: httpx.Response, safe: str) -> str:
        status = resp.status_code
        if status in (401, 403):
            hint = (f"check the token in ${self.auth_env}" if self.auth_env else
                    "the API wants credentials: set auth_env (--auth-env VAR) to a variable holding the token")
        else:
            hint = "check the URL" if status in (404, 410) else "check the URL and its parameters"
        return f"{safe} returned {status} {resp.reason_phrase}: {_body_message(resp)}; {hint}"

    def _records(self, body: Any, resp: httpx.Response) -> Records:
        where = _safe_url(str(resp.url))
        if self.records_key:
            records = _dig(body, self.records_key)
            if records is _MISSING:
                keys = f"; its keys are {sorted(body)[:20]}" if isinstance(body, dict) else ""
                raise SourceError(f"the response from {where} has no {self.records_key!r} (records_key){keys}")
            records = [] if records is None else records
        elif isinstance(body, dict):
            lists = [v for v in body.values() if isinstance(v, list) and all(isinstance(r, dict) for r in v)]
            if len(lists) != 1:
                raise SourceError(
                    f"the response from {where} is an object with {len(lists)} arrays of records "
                    f"(keys {sorted(body)[:20]}); pass records_key (--records-key) naming the records"
                )
            records = lists[0]
        else:
            records = body
        if not isinstance(records, list):
            raise SourceError(f"the records in the response from {where} are a JSON {_jtype(records)}, "
                              "expected an array of objects; check records_key")
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise SourceError(f"record {i} in the response from {where} is a JSON {_jtype(r)}; "
                                  "records must be JSON objects (check records_key)")
        return records


def _json(resp: httpx.Response) -> Any:
    try:
        return json.loads(resp.content)
    except ValueError as e:
        ctype = resp.headers.get("content-type", "").split(";")[0].strip()
        got = ("an empty body" if not resp.content else
               f"invalid JSON ({e})" if "json" in ctype else ctype or "a body without content type")
        raise SourceError(
            f"expected JSON from {_safe_url(str(resp.url))}, got {got}; "
            "check the URL points at the API, not a web page"
        ) from e


def _dig(doc: Any, path: str) -> Any:
    """``doc["a"]["b"]`` for ``path="a.b"``, or ``_MISSING``."""
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _body_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "detail", "error_description", "error", "title"):
            if isinstance(body.get(key), str):
                return body[key][:200]
    return " ".join(resp.text.split())[:200] or "(empty body)"


def _retry_after(resp: httpx.Response) -> float | None:
    """``Retry-After`` in seconds when it is given as a small number (dates are ignored)."""
    try:
        seconds = float(resp.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_DELAY else None


def _safe_url(url: str) -> str:
    """``url`` without user/password and with secret-looking query values masked."""
    parts = urlsplit(url)
    netloc = ("***@" if "@" in parts.netloc else "") + parts.netloc.rsplit("@", 1)[-1]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _jtype(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
