"""Endpoint API keys: the plaintext format, salted hashes, and the per-request check.

A key reads ``lmk.<key id>.<secret>``: the id finds the one stored hash to
compare with, so a check costs one HMAC whatever the number of keys. Only
``hmac_sha256(salt, secret)`` is stored; the plaintext is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from loopml.errors import Forbidden, Unauthorized

PREFIX = "lmk"
#: the header boto3 users add (boto3's own ``Authorization`` carries a SigV4 signature)
API_KEY_HEADER = "x-loopml-api-key"


def new_key() -> tuple[str, str, str, str]:
    """A fresh key: ``(key id, plaintext, salt, hash)``."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    return key_id, f"{PREFIX}.{key_id}.{secret}", salt, hash_secret(salt, secret)


def hash_secret(salt: str, secret: str) -> str:
    """``hmac_sha256(salt, secret)`` as hex."""
    return hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key, else None."""
    parts = key.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True)
class KeySet:
    """The active keys of one endpoint, as the server holds them: ``{key id: (salt, hash)}``."""

    keys: Mapping[str, tuple[str, str]]

    def verify(self, key: str) -> bool:
        """Whether ``key`` is one of these keys."""
        parts = split_key(key)
        if parts is None:
            return False
        stored = self.keys.get(parts[0])
        if stored is None:
            return False
        salt, digest = stored
        return hmac.compare_digest(hash_secret(salt, parts[1]), digest)


def key_from_headers(authorization: str | None, api_key_header: str | None) -> str | None:
    """The API key a request carries: ``Authorization: Bearer KEY`` or ``X-Loopml-Api-Key: KEY``."""
    if api_key_header:
        return api_key_header.strip()
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def check(endpoint: str, keys: KeySet, authorization: str | None, api_key_header: str | None) -> None:
    """Raise Unauthorized (no key) or Forbidden (a wrong key) unless the request carries a valid key."""
    key = key_from_headers(authorization, api_key_header)
    if key is None:
        raise Unauthorized(
            f"endpoint {endpoint!r} requires an API key: send 'Authorization: Bearer KEY' "
            f"(or 'X-Loopml-Api-Key: KEY'); create one with `loopml endpoints api-key {endpoint}`"
        )
    if not keys.verify(key):
        raise Forbidden(f"the API key is not valid for endpoint {endpoint!r} (revoked, or for another endpoint)")


__all__ = ["API_KEY_HEADER", "KeySet", "check", "hash_secret", "key_from_headers", "new_key", "split_key"]
