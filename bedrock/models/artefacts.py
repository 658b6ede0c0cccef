"""Model-version archives in blob storage: the one module that talks to django-storages.

``artefact_store`` streams :func:`~bedrock.models.zipstream.pack` straight into the storage backend
through a pipe, so a training run's ``/artefact`` is never copied whole to local disk first (GCS is
the exception: its client must be able to rewind, so the archive is spooled to a temporary file).
Either the whole archive lands under exactly the key asked for, its size checked, or nothing does.

``artefact_fetch`` reads the object in chunks, never whole into memory (``storage.open().read()``
on S3 downloads the entire object into RAM), spools it to a local temporary file while hashing it,
and extracts only once its SHA-256 matches the one recorded for the model version. On the local
filesystem backend the stored file is read in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import Storage, storages

from bedrock.models.zipstream import (
    ArchiveError,
    EmptyArtefactError,
    PackResult,
    UnsafeArchiveError,
    pack,
    unpack,
)

# The archive errors are re-exported: callers of this module need not know about zipstream.
__all__ = [
    "ArchiveError",
    "ArtefactExistsError",
    "EmptyArtefactError",
    "StoredArtefact",
    "UnsafeArchiveError",
    "artefact_delete",
    "artefact_fetch",
    "artefact_store",
]

_CHUNK = 1 << 20
# Linux lets a pipe hold up to /proc/sys/fs/pipe-max-size (1 MiB by default) instead of 64 KiB:
# fewer context switches between the packing thread and the uploading one.
_PIPE_SIZE = 1 << 20


class ArtefactExistsError(ArchiveError):
    """The storage key is taken; artefacts are never overwritten or silently renamed."""


@dataclass(frozen=True)
class StoredArtefact:
    """An archive as stored: its key, byte count, SHA-256 (hex) and number of files."""

    key: str
    size: int
    sha256: str
    file_count: int


def _storage(storage: Storage | None) -> Storage:
    return storage if storage is not None else storages["default"]


class _Upload(File):
    """The reading end of the pipe, as Django's storages expect: read in 1 MiB chunks."""

    DEFAULT_CHUNK_SIZE = _CHUNK


def artefact_store(directory: Path, key: str, *, storage: Storage | None = None) -> StoredArtefact:
    """Pack ``directory`` and store the archive under exactly ``key``.

    Raises :class:`ArtefactExistsError` if ``key`` is taken, and whatever packing or the backend
    raised otherwise; in every failure, nothing stays stored under ``key``.
    """
    storage = _storage(storage)
    if storage.exists(key):
        raise ArtefactExistsError(
            f"storage key {key!r} already holds an object; artefacts are never overwritten"
        )
    try:
        if _needs_seekable_upload(storage):
            name, result = _store_spooled(directory, key, storage)
        else:
            name, result = _store_streamed(directory, key, storage)
    except BaseException:
        # Whatever the backend wrote before the failure (FileSystemStorage leaves a partial file).
        with contextlib.suppress(Exception):
            storage.delete(key)
        raise
    if name != key:
        # Someone took the key between our check and the upload, and the backend renamed ours.
        storage.delete(name)
        raise ArtefactExistsError(
            f"storage key {key!r} was taken while uploading (the backend stored {name!r}, now "
            "deleted); artefacts are never overwritten"
        )
    try:
        stored_size = storage.size(key)
    except BaseException:
        storage.delete(key)
        raise
    if stored_size != result.size:
        storage.delete(key)
        raise ArchiveError(
            f"storage holds {stored_size} bytes under {key!r}, but {result.size} were written; "
            "the upload was deleted"
        )
    return StoredArtefact(
        key=key, size=result.size, sha256=result.sha256, file_count=result.file_count
    )


def _store_streamed(directory: Path, key: str, storage: Storage) -> tuple[str, PackResult]:
    """pack() writes into a pipe on a thread of its own while the backend reads the other end."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    outcome: dict[str, Any] = {}

    def produce() -> None:
        try:
            with open(write_fd, "wb") as out:
                outcome["result"] = pack(directory, out)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    producer = threading.Thread(target=produce, name=f"pack {key}", daemon=True)
    try:
        producer.start()
    except BaseException:
        os.close(write_fd)
        os.close(read_fd)
        raise
    try:
        # Closing the reader, on success or failure, unblocks a producer still writing (EPIPE).
        with open(read_fd, "rb") as reader:
            name = storage.save(key, _Upload(reader, name=key))
    finally:
        producer.join()
    # A failed pack closes the pipe early, which the backend takes for a complete, short upload.
    if "error" in outcome:
        raise outcome["error"]
    return name, outcome["result"]


def _store_spooled(directory: Path, key: str, storage: Storage) -> tuple[str, PackResult]:
    with tempfile.TemporaryFile(prefix="bedrock-pack-") as spool:
        result = pack(directory, spool)
        spool.seek(0)
        return storage.save(key, File(spool, name=key)), result


def _needs_seekable_upload(storage: Storage) -> bool:
    # google-cloud-storage rewinds the stream before uploading, which a pipe cannot do.
    try:
        from storages.backends.gcloud import GoogleCloudStorage
    except ImportError:  # google-cloud-storage not installed
        return False
    return isinstance(storage, GoogleCloudStorage)


def artefact_fetch(key: str, dest: Path, *, sha256: str, storage: Storage | None = None) -> int:
    """Download ``key``, check it against ``sha256``, extract it into ``dest``; count the files.

    ``dest`` must be absent or empty. On a checksum mismatch :class:`ArchiveError` is raised and no
    file is extracted.
    """
    storage = _storage(storage)
    expected = sha256.strip().lower()
    local = _local_path(storage, key)
    if local is not None:
        with open(local, "rb") as archive:
            digest = hashlib.sha256()
            while chunk := archive.read(_CHUNK):
                digest.update(chunk)
            _check_digest(key, expected, digest.hexdigest())
            archive.seek(0)
            return unpack(archive, dest)
    with tempfile.TemporaryFile(prefix="bedrock-fetch-") as spool:
        digest = hashlib.sha256()
        for chunk in _read_chunks(storage, key):
            digest.update(chunk)
            spool.write(chunk)
        _check_digest(key, expected, digest.hexdigest())
        spool.seek(0)
        return unpack(spool, dest)


def _check_digest(key: str, expected: str, actual: str) -> None:
    if actual != expected:
        raise ArchiveError(
            f"checksum mismatch: expected {expected} got {actual} for {key!r}; the stored archive "
            "is not the one that was published, so nothing was extracted"
        )


def _local_path(storage: Storage, key: str) -> str | None:
    try:
        path = storage.path(key)
    except NotImplementedError:
        return None
    if not os.path.exists(path):
        raise FileNotFoundError(f"artefact {key!r} is not in storage (looked for {path})")
    return path


def _read_chunks(storage: Storage, key: str) -> Iterator[bytes]:
    """The object's bytes in chunks, by the backend's streaming API where it has one."""
    with storage.open(key, "rb") as stored:
        s3_object = getattr(stored, "obj", None)  # storages.backends.s3.S3File
        if s3_object is not None:
            body = s3_object.get()["Body"]
            try:
                yield from body.iter_chunks(_CHUNK)
            finally:
                body.close()
            return
        blob = getattr(stored, "blob", None)  # storages.backends.gcloud.GoogleCloudFile
        if blob is not None:
            with blob.open("rb", chunk_size=_CHUNK) as reader:
                while chunk := reader.read(_CHUNK):
                    yield chunk
            return
        while chunk := stored.read(_CHUNK):
            yield chunk


def artefact_delete(key: str, *, storage: Storage | None = None) -> None:
    """Delete the archive stored under ``key``; a missing key is not an error."""
    _storage(storage).delete(key)
