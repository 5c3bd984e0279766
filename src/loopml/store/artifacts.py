"""Content-addressed artifact store on any fsspec filesystem.

Every artifact is stored under its sha256 (``sha256/ab/abcdef...``), written
atomically (temporary name, then rename) and verified against the hash before
anyone reads it. Identical content is stored once. Names given by users never
become paths, and :func:`check_name` refuses names that try to escape.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from loopml._util import sha256_stream
from loopml.errors import IntegrityError, InvalidInput, NotFound

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact: its sha256 and size in bytes."""

    sha256: str
    size: int


def check_hash(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lowercase hex digits, else raise InvalidInput."""
    if not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise InvalidInput(f"{sha256!r} is not a sha256 artifact id (64 hex digits)")
    return sha256


def check_name(name: str) -> str:
    """Validate a user-given relative artifact name such as ``model/weights.bin``.

    Refuses absolute paths, ``..`` segments, backslashes, drive letters and
    control characters, so a name can never point outside its folder.
    """
    if not name or name.strip() != name:
        raise InvalidInput(f"artifact name {name!r} is empty or has surrounding spaces")
    if "\\" in name or any(ord(c) < 32 for c in name) or re.match(r"^[A-Za-z]:", name):
        raise InvalidInput(f"artifact name {name!r} has a backslash, drive or control character")
    p = PurePosixPath(name)
    if p.is_absolute() or any(part in ("..", ".", "") for part in name.split("/")):
        raise InvalidInput(
            f"artifact name {name!r} must be a relative path without '.' or '..' segments"
        )
    return name


class ArtifactStore:
    """Content-addressed blobs under ``root`` (a folder or any fsspec URL).

    Examples
    --------
    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> ref = store.put_bytes(b"hello")
    >>> store.get_bytes(ref.sha256)
    b'hello'
    """

    def __init__(self, root: str) -> None:
        self.url = root
        fs, path = fsspec.core.url_to_fs(root)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root = path.rstrip("/")
        self.is_local = isinstance(fs, LocalFileSystem)
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    # -- paths ------------------------------------------------------------------
    def _path(self, sha256: str) -> str:
        check_hash(sha256)
        return f"{self.root}/sha256/{sha256[:2]}/{sha256}"

    def local_path(self, sha256: str, verify: bool = True) -> str | None:
        """Path on the local disk of an artifact (verified first), or None if the store is remote."""
        if not self.is_local:
            return None
        if verify:
            self.verify(sha256)
        return self._path(sha256)

    def exists(self, sha256: str) -> bool:
        """True if the artifact is stored."""
        return bool(self.fs.exists(self._path(sha256)))

    # -- writing ----------------------------------------------------------------
    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data``; return its reference (no new copy if it is already stored)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self._path(digest)
        if not self.fs.exists(target):
            self._atomic_write(target, io.BytesIO(data))
        return ArtifactRef(digest, len(data))

    def put_file(self, local_path: str | os.PathLike[str], *, move: bool = False) -> ArtifactRef:
        """Store a local file by content. ``move=True`` lets the store take the file itself."""
        with open(local_path, "rb") as f:
            digest, size = sha256_stream(f)
        target = self._path(digest)
        if self.fs.exists(target):
            if move:
                os.unlink(local_path)
            return ArtifactRef(digest, size)
        if self.is_local and move:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(local_path, target)  # atomic on one filesystem
                return ArtifactRef(digest, size)
            except OSError:  # another filesystem: fall back to copy + rename
                pass
        with open(local_path, "rb") as f:
            self._atomic_write(target, f)
        if move:
            os.unlink(local_path)
        return ArtifactRef(digest, size)

    @contextmanager
    def staging_file(self, suffix: str = "") -> Iterator[str]:
        """A temporary local path to write a file into before :meth:`put_file` (cleaned up after).

        For a local store it sits on the same filesystem, so the final move is a rename.
        """
        if self.is_local:
            tmp_dir = Path(self.root) / "tmp"
            tmp_dir.mkdir(parents=True, exist_ok=True)
            directory: str | None = str(tmp_dir)
        else:
            directory = None
        fd, path = tempfile.mkstemp(suffix=suffix, dir=directory)
        os.close(fd)
        try:
            yield path
        finally:
            if os.path.exists(path):
                os.unlink(path)

    def _atomic_write(self, target: str, src: BinaryIO) -> None:
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            with self.fs.open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            self.fs.mv(tmp, target)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    # -- reading ----------------------------------------------------------------
    def verify(self, sha256: str) -> int:
        """Re-hash the stored content; raise IntegrityError if it no longer matches. Returns size."""
        path = self._path(sha256)
        try:
            with self.fs.open(path, "rb") as f:
                digest, size = sha256_stream(f)
        except FileNotFoundError as e:
            raise NotFound(f"artifact {sha256} is missing from {self.url}") from e
        if digest != sha256:
            raise self._tampered(sha256, digest)
        return size

    def get_bytes(self, sha256: str) -> bytes:
        """Return the verified content of an artifact."""
        path = self._path(sha256)
        try:
            with self.fs.open(path, "rb") as f:
                data: bytes = f.read()
        except FileNotFoundError as e:
            raise NotFound(f"artifact {sha256} is missing from {self.url}") from e
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise self._tampered(sha256, digest)
        return data

    def _tampered(self, sha256: str, digest: str) -> IntegrityError:
        return IntegrityError(
            f"artifact {sha256} in {self.url} was modified or corrupted (its content hashes "
            f"to {digest}); restore it from a backup or re-create it"
        )

    def open(self, sha256: str) -> BinaryIO:
        """Open a verified artifact for reading (a local file, or verified bytes in memory)."""
        if self.is_local:
            self.verify(sha256)
            return open(self._path(sha256), "rb")
        return io.BytesIO(self.get_bytes(sha256))
