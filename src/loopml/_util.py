"""Small helpers shared by the base packages (ids, time, hashing)."""

from __future__ import annotations

import hashlib
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
