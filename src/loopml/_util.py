"""Small helpers shared by the base packages (ids, time, hashing)."""

from __future__ import annotations

import getpass
import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import BinaryIO

_CHUNK = 1 << 20


def new_id(prefix: str) -> str:
    """Return a new unique id such as ``dsv-3f2a9c...`` (prefix names the entity kind)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def utcnow() -> datetime:
    """Timezone-aware current UTC time."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Interpret a naive datetime (as SQLite returns them) as UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """Hash a binary stream in chunks; return (hex digest, size in bytes)."""
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def sha256_strings(parts: Iterable[str]) -> str:
    """Hash an ordered sequence of strings (used to combine part hashes)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is a valid name for a ``what`` (dataset, recipe, ...), else raise."""
    from loopml.errors import InvalidInput

    if not _NAME.match(name or ""):
        raise InvalidInput(
            f"{what} name {name!r} is not allowed; use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (at most 200 characters)"
        )
    return name


def parse_versioned_ref(ref: str, what: str) -> tuple[str, int | None]:
    """Split ``NAME[:VER]`` into (name, version or None for the latest); ``what`` names the kind."""
    from loopml.errors import InvalidInput

    name, sep, ver = (ref or "").partition(":")
    check_name(name, what)
    if not sep or ver in ("", "latest"):
        return name, None
    if not ver.isdigit() or int(ver) < 1:
        raise InvalidInput(f"{what} version in {ref!r} must be a positive number or 'latest'")
    return name, int(ver)


def actor(by: str | None) -> str:
    """Who made a change: ``by`` checked (1-200 characters), else the login name, else ``unknown``."""
    from loopml.errors import InvalidInput

    if by is not None:
        if not isinstance(by, str) or not by.strip() or len(by) > 200:
            raise InvalidInput(f"by={by!r} must be a name of 1 to 200 characters")
        return by.strip()
    try:
        return getpass.getuser()[:200] or "unknown"
    except Exception:  # no passwd entry, no USER variable (containers)
        return "unknown"


def clean_reason(reason: str | None) -> str | None:
    """A change's reason on one line (at most 4,000 characters), or None."""
    from loopml.errors import InvalidInput

    if reason is None:
        return None
    if not isinstance(reason, str):
        raise InvalidInput(f"reason must be text, got {type(reason).__name__}")
    return " ".join(reason.split())[:4000] or None
