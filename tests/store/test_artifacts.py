from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from loopml import IntegrityError, InvalidInput, NotFound
from loopml.store import ArtifactStore, check_name


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "art"))
    return ArtifactStore(f"memory://art-{uuid.uuid4().hex}")


def test_round_trip_and_content_address(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"hello")
    assert ref.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert ref.size == 5
    assert store.get_bytes(ref.sha256) == b"hello"
    with store.open(ref.sha256) as f:
        assert f.read() == b"hello"
    assert store.exists(ref.sha256)


def test_identical_content_is_stored_once(store: ArtifactStore) -> None:
    a = store.put_bytes(b"same")
    b = store.put_bytes(b"same")
    assert a == b
    files = [p for p in store.fs.find(store.root) if "/sha256/" in p]
    assert len(files) == 1


def test_put_file_moves_or_copies(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 3_000_000)
    ref = store.put_file(src, move=True)
    assert not src.exists()
    assert store.verify(ref.sha256) == 3_000_000
    with store.staging_file(".bin") as p:
        Path(p).write_bytes(b"x" * 3_000_000)
        assert store.put_file(p) == ref
    assert not Path(p).exists()


def test_tampered_content_raises_integrity_error(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"original")
    with store.fs.open(store._path(ref.sha256), "wb") as f:
        f.write(b"tampered")
    with pytest.raises(IntegrityError, match="modified or corrupted"):
        store.get_bytes(ref.sha256)
    with pytest.raises(IntegrityError):
        store.open(ref.sha256)
    with pytest.raises(IntegrityError):
        store.verify(ref.sha256)


def test_missing_artifact_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFound):
        store.get_bytes("0" * 64)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "abc", "A" * 64, "0" * 63 + "/"])
def test_hash_ids_cannot_traverse(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(InvalidInput):
        store.get_bytes(bad)


@pytest.mark.parametrize(
    "name", ["../x", "a/../../b", "/etc/passwd", "a\\b", "C:x", "a//b", "./a", "", " a", "a\x00b"]
)
def test_check_name_refuses_escapes(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(name)


def test_check_name_accepts_relative_paths() -> None:
    assert check_name("model/weights.ubj") == "model/weights.ubj"


def test_local_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "art"))
    for i in range(5):
        store.put_bytes(str(i).encode())
    leftovers = [p for p in (tmp_path / "art").rglob(".tmp-*")]
    assert leftovers == []
