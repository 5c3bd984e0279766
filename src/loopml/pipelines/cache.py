"""Step caching: expiry durations, cache keys, and looking up an earlier successful run.

A step opts in with an expiry (``cache="P30D"``, or seconds). Its cache key
hashes what determines its result: the step kind and its code (a Python step's
qualified name and source), the resolved arguments, and the content of its
inputs — the content hash of every dataset version a built-in step reads and
of every local file an argument names. A step whose key matches a
*successful* step execution that ended within the expiry reuses that
execution's outputs instead of running.

>>> parse_duration("P30D"), parse_duration("PT1H30M"), parse_duration(90)
(2592000.0, 5400.0, 90.0)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from loopml._util import sha256_strings, utcnow
from loopml.errors import InvalidInput, LoopmlError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from loopml.pipelines.models import StepExecutionRow
    from loopml.workspace import Workspace

_NUM = r"(\d+(?:\.\d+)?)"
_ISO = re.compile(
    rf"^P(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}W)?(?:{_NUM}D)?(?:T(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?)?$"
)
#: seconds per unit, in the pattern's group order (a year is 365 days and a month 30)
_UNIT_S = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)


def parse_duration(value: Any, what: str = "cache expiry") -> float | None:
    """Seconds of an ISO-8601 duration (``P30D``, ``PT12H``, ``P1DT2H``) or a number of seconds.

    ``True`` means no expiry (returns None).

    Raises
    ------
    InvalidInput
        Anything else, or a duration of zero.
    """
    if value is True:
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = _iso_seconds(value)
    if seconds is not None and seconds > 0:
        return seconds
    raise InvalidInput(f"{what} {value!r} is not a duration; write ISO-8601 such as P30D, PT12H or "
                       "P1DT6H, or a number of seconds")


def _iso_seconds(text: str) -> float | None:
    t = text.strip().upper()
    if not t.startswith("P") or t in ("P", "PT") or t.endswith("T"):
        return None
    date, sep, time = t.partition("T")
    # time units in lower case, so the minutes of the time part differ from the months of the date part
    m = _ISO.match(date + sep + time.replace("H", "h").replace("M", "m").replace("S", "s"))
    if m is None:
        return None
    return sum(float(v) * unit for v, unit in zip(m.groups(), _UNIT_S, strict=True) if v)


# -- keys -----------------------------------------------------------------------------------------
def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces) used for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str | None:
    """The content hash of a local file (memoised by path, size and mtime), or None if it is no file."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not os.path.isfile(path):
        return None
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    hit = _FILE_HASHES.get(key)
    if hit is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        hit = _FILE_HASHES[key] = h.hexdigest()
    return hit


def _looks_like_path(text: str) -> bool:
    return 0 < len(text) < 1024 and "\n" not in text and "${" not in text and "://" not in text


def input_hashes(ws: Workspace, args: Mapping[str, Any], dataset_args: Sequence[str]) -> dict[str, str]:
    """Content hashes of a step's inputs: dataset versions (for ``dataset_args``) and local files."""
    out: dict[str, str] = {}
    for name in dataset_args:
        ref = args.get(name)
        if isinstance(ref, str) and ref:
            from loopml.data import Catalog

            # a bad reference is left for the step itself to report
            with contextlib.suppress(LoopmlError):
                out[f"dataset:{name}"] = Catalog(ws).get(ref).content_hash

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            if _looks_like_path(value):
                digest = file_sha256(value)
                if digest is not None:
                    out[f"file:{where}"] = digest
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{where}.{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{where}.{i}")

    for k, v in args.items():
        walk(v, k)
    return out


def cache_key(kind: str, code: str, args: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """The key of a step run: kind, code identity, resolved arguments and input content hashes."""
    return sha256_strings([kind, code, canonical_json(args), canonical_json(inputs)])


def find_cached(s: Session, key: str, expire_after_s: float | None) -> StepExecutionRow | None:
    """The newest successful step execution with this key that ended within the expiry."""
    from loopml.pipelines.models import StepExecutionRow

    q = select(StepExecutionRow).where(StepExecutionRow.cache_key == key, StepExecutionRow.status == "Succeeded")
    if expire_after_s is not None:
        q = q.where(StepExecutionRow.end_time >= utcnow() - timedelta(seconds=expire_after_s))
    return s.scalars(q.order_by(StepExecutionRow.end_time.desc()).limit(1)).first()


__all__ = ["cache_key", "find_cached", "input_hashes", "parse_duration"]
