"""Model-version archives in storage: whole or absent, verified before extraction."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages
from django.core.management import CommandError, call_command

from bedrock.models.archive import ArchiveError, EmptyArtefactError, packing
from bedrock.models.artefacts import (
    ArtefactExistsError,
    StoredArtefact,
    artefact_delete,
    artefact_fetch,
    artefact_store,
)
from tests.buckets import free_port


@pytest.fixture
def store_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


@pytest.fixture
def artefact(tmp_path: Path) -> Path:
    rng = random.Random(3)
    root = tmp_path / "artefact"
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(rng.randbytes(5 * packing.CHUNK_SIZE + 7))
    lines = (f"{i},{rng.choice(['a', 'bb', 'ccc'])},{rng.random():.4f}\n" for i in range(400_000))
    (root / "metrics.csv").write_text("".join(lines))
    (root / "empty").mkdir()
    (root / "README").write_text("churn model\n")
    return root


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def stored_names(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- Local storage --------------------------------------------------------------------------------


def test_a_stored_artefact_is_fetched_back_identical(store_root: Path, artefact: Path, tmp_path):
    stored = artefact_store(artefact, "models/churn/v1.zip")
    data = (store_root / "models" / "churn" / "v1.zip").read_bytes()
    assert stored == StoredArtefact(
        key="models/churn/v1.zip",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        file_count=3,
    )
    count = artefact_fetch(stored.key, tmp_path / "scoring", sha256=stored.sha256)
    assert count == 3
    assert files_under(tmp_path / "scoring") == files_under(artefact)
    assert (tmp_path / "scoring" / "empty").is_dir()


def test_an_existing_key_is_refused_and_left_untouched(store_root: Path, artefact: Path):
    (store_root / "models").mkdir(parents=True)
    (store_root / "models" / "v1.zip").write_bytes(b"somebody else's")
    with pytest.raises(ArtefactExistsError, match=r"'models/v1\.zip' already holds an object"):
        artefact_store(artefact, "models/v1.zip")
    assert stored_names(store_root) == ["models/v1.zip"]
    assert (store_root / "models" / "v1.zip").read_bytes() == b"somebody else's"


class RacingStorage(FileSystemStorage):
    """Another upload takes the key between our existence check and our save."""

    def exists(self, name: str) -> bool:
        if not getattr(self, "raced", False) and name == "v1.zip":
            self.raced = True
            Path(self.location).mkdir(parents=True, exist_ok=True)
            Path(self.path(name)).write_bytes(b"the other upload")
            return False
        return super().exists(name)


def test_a_key_taken_during_the_upload_is_not_silently_renamed(tmp_path: Path, artefact: Path):
    storage = RacingStorage(location=tmp_path / "storage")
    with pytest.raises(ArtefactExistsError, match="was taken while uploading"):
        artefact_store(artefact, "v1.zip", storage=storage)
    assert stored_names(tmp_path / "storage") == ["v1.zip"]
    assert (tmp_path / "storage" / "v1.zip").read_bytes() == b"the other upload"


def test_no_object_remains_when_packing_fails_midway(
    store_root: Path, artefact: Path, monkeypatch: pytest.MonkeyPatch
):
    real_chunk = packing._pack_chunk
    written = []

    def fail_on_third_chunk(fd, entry, buffer, offset, *args):
        if entry.name == "model/weights.bin" and offset >= 2 * packing.CHUNK_SIZE:
            # What a file that became unreadable does to the reading worker.
            raise PermissionError(13, "Permission denied", entry.path)
        written.append(offset)
        return real_chunk(fd, entry, buffer, offset, *args)

    monkeypatch.setattr(packing, "_pack_chunk", fail_on_third_chunk)
    with pytest.raises(PermissionError, match=r"weights\.bin"):
        artefact_store(artefact, "models/v1.zip")
    assert written  # the upload had started
    assert stored_names(store_root) == []


def test_an_empty_artefact_stores_nothing(store_root: Path, tmp_path: Path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(EmptyArtefactError):
        artefact_store(tmp_path / "nothing", "models/v1.zip")
    assert stored_names(store_root) == []


class FailingStorage(FileSystemStorage):
    """A backend that reads part of the upload, then fails like a dropped connection."""

    def _save(self, name, content):
        with open(self.path(name), "wb") as partial:
            partial.write(content.read(1 << 20))
        raise ConnectionResetError("connection reset by peer")


def test_a_failing_backend_leaves_no_object_and_no_thread(tmp_path: Path, artefact: Path):
    (tmp_path / "storage").mkdir()
    storage = FailingStorage(location=tmp_path / "storage")
    threads_before = threading.active_count()
    with pytest.raises(ConnectionResetError):
        artefact_store(artefact, "v1.zip", storage=storage)
    assert stored_names(tmp_path / "storage") == []
    assert threading.active_count() == threads_before  # the packing thread did not hang


def test_a_wrong_checksum_extracts_nothing(store_root: Path, artefact: Path, tmp_path: Path):
    stored = artefact_store(artefact, "v1.zip")
    wrong = hashlib.sha256(b"another archive").hexdigest()
    with pytest.raises(
        ArchiveError, match=f"checksum mismatch: expected {wrong} got {stored.sha256}"
    ):
        artefact_fetch("v1.zip", tmp_path / "scoring", sha256=wrong)
    assert not (tmp_path / "scoring").exists()


class RemoteLikeStorage(FileSystemStorage):
    """Local files without local paths: the code path S3 and GCS take."""

    def path(self, name: str) -> str:
        raise NotImplementedError("no local paths here")

    def _open(self, name, mode="rb"):
        return File(open(super().path(name), mode))  # File closes it

    def exists(self, name: str) -> bool:
        return os.path.exists(super().path(name))

    def size(self, name: str) -> int:
        return os.path.getsize(super().path(name))

    def delete(self, name: str) -> None:
        if self.exists(name):
            os.remove(super().path(name))

    def _save(self, name, content):
        full = super().path(name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "xb") as out:
            for chunk in content.chunks():
                out.write(chunk)
        return name


def test_fetch_streams_from_a_backend_without_local_paths(tmp_path: Path, artefact: Path):
    storage = RemoteLikeStorage(location=tmp_path / "storage")
    stored = artefact_store(artefact, "v1.zip", storage=storage)
    artefact_fetch("v1.zip", tmp_path / "scoring", sha256=stored.sha256, storage=storage)
    assert files_under(tmp_path / "scoring") == files_under(artefact)
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        artefact_fetch("v1.zip", tmp_path / "again", sha256="0" * 64, storage=storage)
    assert not (tmp_path / "again").exists()


def test_a_deleted_artefact_is_gone(store_root: Path, artefact: Path):
    artefact_store(artefact, "v1.zip")
    artefact_delete("v1.zip")
    assert not storages["default"].exists("v1.zip")
    assert stored_names(store_root) == []


# --- The command ----------------------------------------------------------------------------------


def test_the_artefact_command_packs_and_unpacks(artefact: Path, tmp_path: Path, capsys):
    archive = tmp_path / "out.zip"
    call_command("artefact", "pack", str(artefact), str(archive))
    packed = capsys.readouterr().out
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (
        f"packed 3 files into {archive}: {archive.stat().st_size} bytes, sha256 {digest}" in packed
    )
    call_command("artefact", "unpack", str(archive), str(tmp_path / "dest"), "--workers", "1")
    unpacked = capsys.readouterr().out
    assert f"unpacked 3 files into {tmp_path / 'dest'}" in unpacked and digest in unpacked
    assert files_under(tmp_path / "dest") == files_under(artefact)


def test_the_artefact_command_refuses_to_overwrite_an_archive(artefact: Path, tmp_path: Path):
    archive = tmp_path / "out.zip"
    archive.write_bytes(b"keep me")
    with pytest.raises(CommandError, match="exists; choose a new file name"):
        call_command("artefact", "pack", str(artefact), str(archive))
    assert archive.read_bytes() == b"keep me"


def test_the_artefact_command_reports_an_empty_directory_and_leaves_no_file(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="/artefact is empty"):
        call_command("artefact", "pack", str(tmp_path / "empty"), str(tmp_path / "out.zip"))
    assert not (tmp_path / "out.zip").exists()


# --- S3 over HTTP (moto_server) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    binary = shutil.which("moto_server")
    if binary is None:
        pytest.skip("moto_server is not installed: no S3 endpoint to test against")
    port = free_port()
    server = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.skip("moto_server did not start")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3_storage(s3_endpoint: str):
    import boto3
    from storages.backends.s3 import S3Storage

    bucket = f"artefacts-{random.randrange(10**9)}"
    options = {
        "endpoint_url": s3_endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    boto3.client("s3", **options).create_bucket(Bucket=bucket)
    return S3Storage(
        bucket_name=bucket,
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        access_key="test",
        secret_key="test",
        addressing_style="path",
        signature_version="s3v4",
        file_overwrite=False,
        location="artefacts",
    )


def test_an_artefact_round_trips_through_s3(s3_storage, artefact: Path, tmp_path: Path):
    stored = artefact_store(artefact, "churn/v1.zip", storage=s3_storage)
    head = s3_storage.bucket.Object("artefacts/churn/v1.zip")
    assert head.content_length == stored.size
    assert head.e_tag.strip('"').endswith(f"-{-(-stored.size // (8 << 20))}")  # multipart
    count = artefact_fetch(
        "churn/v1.zip", tmp_path / "out", sha256=stored.sha256, storage=s3_storage
    )
    assert count == 3
    assert files_under(tmp_path / "out") == files_under(artefact)
    with pytest.raises(ArtefactExistsError):
        artefact_store(artefact, "churn/v1.zip", storage=s3_storage)


def test_a_failed_pack_leaves_nothing_in_s3(
    s3_storage, artefact: Path, monkeypatch: pytest.MonkeyPatch
):
    real_chunk = packing._pack_chunk

    def fail_late(fd, entry, buffer, offset, *args):
        if offset >= 4 * packing.CHUNK_SIZE:
            raise PermissionError(13, "Permission denied", entry.path)
        return real_chunk(fd, entry, buffer, offset, *args)

    monkeypatch.setattr(packing, "_pack_chunk", fail_late)
    with pytest.raises(PermissionError):
        artefact_store(artefact, "churn/v2.zip", storage=s3_storage)
    assert list(s3_storage.bucket.objects.all()) == []
