"""Model-version archives in blob storage: the one module that talks to django-storages.

``artefact_store`` streams :func:`~bedrock.models.archive.pack` straight into the storage backend,
so a training run's ``/artefact`` is never copied whole to local disk or memory first: through a
pipe into ``storage.save`` (a multipart upload on S3, parts of ``multipart_chunksize``), or straight
into a resumable upload on GCS. Either the whole archive lands under exactly the key asked for, its
size checked, or nothing does: a failed pack makes the upload fail rather than end early, so S3
aborts its multipart upload and GCS cancels its resumable one, and no object is ever completed.

``artefact_fetch`` reads the object in chunks, never whole into memory (``storage.open().read()``
on S3 downloads the entire object into RAM), spools it to a local temporary file while hashing it,
and extracts only once its SHA-256 matches the one recorded for the model version. On the local
filesystem backend the stored file is read in place.

``artefact_ranges`` reads byte ranges of a stored archive (``pread`` locally, ``GetObject`` with
``Range`` on S3, ranged media downloads on GCS): what browsing an archive and ranged downloads
need. ``artefact_download_url`` signs a short-lived URL where the backend can.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TypeGuard, cast

from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.utils.http import content_disposition_header

from bedrock.models.archive import (
    ArchiveError,
    ArchiveLimitError,
    BrowseError,
    EmptyArtefactError,
    Entry,
    EntryNotFoundError,
    PackResult,
    RefusedEntryError,
    UnsafeArchiveError,
    find_entry,
    list_entries,
    open_entry,
    pack,
    unpack,
)
from bedrock.models.archive.pipe import PackedStream

# The archive and browsing names are re-exported: callers of this module need not know about
# the archive package.
__all__ = [
    "ArchiveError",
    "ArchiveLimitError",
    "ArtefactExistsError",
    "BrowseError",
    "EmptyArtefactError",
    "Entry",
    "EntryNotFoundError",
    "EntryStream",
    "RangeReader",
    "RefusedEntryError",
    "SigningUnavailableError",
    "StoredArtefact",
    "UnsafeArchiveError",
    "artefact_delete",
    "artefact_download_url",
    "artefact_entries",
    "artefact_fetch",
    "artefact_open_entry",
    "artefact_ranges",
    "artefact_store",
]

_CHUNK = 1 << 20
# GCS resumable uploads send parts of this size (a multiple of 256 KiB); memory holds about one.
_GCS_PART = 8 << 20
# S3 allows 10,000 parts per upload; stay under it with room for the archive's own overhead.
_S3_MAX_PARTS = 9_000


class ArtefactExistsError(ArchiveError):
    """The storage key is taken; artefacts are never overwritten or silently renamed."""


class SigningUnavailableError(ImproperlyConfigured):
    """The storage's credentials cannot sign a download URL, and no signing account is set."""


@dataclass(frozen=True)
class StoredArtefact:
    """An archive as stored: its key, byte count, SHA-256 (hex) and number of files."""

    key: str
    size: int
    sha256: str
    file_count: int


def _storage(storage: Storage | None) -> Storage:
    return storage if storage is not None else storages["default"]


# django-storages ships no types: S3Storage and GoogleCloudStorage, whose buckets and signed URLs
# reach past Django's Storage, are typed Any.
_BucketStorage = Any


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
        if _is_gcs(storage):
            name, result = _store_resumable(directory, key, storage)
        else:
            name, result = _store_streamed(directory, key, _with_part_size_for(directory, storage))
    except ArtefactExistsError:
        raise  # the object under the key is somebody else's: leave it
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
    # Closing the reader, on success or failure, unblocks a packer still writing (EPIPE).
    with PackedStream(directory, name=f"pack {key}") as stream:
        # File reads, and closes, only: PackedStream is that much of a binary file.
        name = storage.save(key, _Upload(cast(IO[bytes], stream), name=key))
    stream.raise_failure()  # a backend that swallowed the reader's error
    assert stream.result is not None
    return name, stream.result


_WALK_DEPTH = 256  # far above BEDROCK_MAX_ARCHIVE_DEPTH's sensible values, far below recursion


def _with_part_size_for(directory: Path, storage: Storage) -> Storage:
    """``storage``, or a copy whose S3 parts are big enough for this archive to fit 10,000 parts.

    The configured part size (8 MiB: up to some 70 GiB) is kept for every archive that fits, so
    memory (``max_in_memory_upload_chunks`` parts) stays what the settings say; only bigger
    archives get bigger parts, since S3 refuses the 10,001st.
    """
    config = getattr(storage, "transfer_config", None)
    if config is None or not hasattr(config, "multipart_chunksize"):
        return storage
    # An archive is never much bigger than its content: entries that do not compress are stored.
    bound = 1 << 20
    top = len(Path(directory).parts)
    for folder, folders, files in os.walk(directory):
        if len(Path(folder).parts) - top >= _WALK_DEPTH:
            # os.walk recurses per level: a tree a step made thousands deep would raise
            # RecursionError here. pack refuses such a tree anyway, naming the depth limit.
            folders[:] = []
        for name in files:
            with contextlib.suppress(OSError):
                bound += os.stat(os.path.join(folder, name)).st_size + 200 + 2 * len(name)
    if bound <= config.multipart_chunksize * _S3_MAX_PARTS:
        return storage
    part = -(-bound // _S3_MAX_PARTS)
    part = -(-part // (1 << 20)) << 20  # whole MiB
    resized: _BucketStorage = copy.copy(storage)
    resized.transfer_config = copy.copy(config)
    resized.transfer_config.multipart_chunksize = part
    return resized


def _store_resumable(directory: Path, key: str, storage: _BucketStorage) -> tuple[str, PackResult]:
    """pack() writes straight into a GCS resumable upload, one part at a time.

    ``GoogleCloudStorage.save`` would rewind its input, which a stream cannot do. The upload is
    finalised only when pack() returns; if it raises, the writer cancels the upload and no object
    appears. ``if_generation_match=0`` makes GCS itself refuse to replace an existing object.
    """
    blob = storage.bucket.blob(
        _object_name(storage, key),
        chunk_size=getattr(storage, "blob_chunk_size", None) or _GCS_PART,
    )
    try:
        # ignore_flush: a flush cannot reach GCS short of finalising; the parts go up as they fill.
        with blob.open(
            "wb", if_generation_match=0, content_type="application/zip", ignore_flush=True
        ) as out:
            result = pack(directory, out)
    except Exception as exc:
        if _is_precondition_failure(exc):
            raise ArtefactExistsError(
                f"storage key {key!r} was taken while uploading; artefacts are never overwritten"
            ) from exc
        raise
    return key, result


def _is_precondition_failure(exc: Exception) -> bool:
    # A google.api_core PreconditionFailed, or the media library's InvalidResponse for a 412.
    response = getattr(exc, "response", None)
    return getattr(exc, "code", None) == 412 or getattr(response, "status_code", None) == 412


def _is_gcs(storage: Storage) -> TypeGuard[_BucketStorage]:
    try:
        from storages.backends.gcloud import GoogleCloudStorage
    except ImportError:  # google-cloud-storage not installed
        return False
    return isinstance(storage, GoogleCloudStorage)


def _is_s3(storage: Storage) -> TypeGuard[_BucketStorage]:
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # boto3 not installed
        return False
    return isinstance(storage, S3Storage)


def _object_name(storage: _BucketStorage, key: str) -> str:
    """The bucket's name for ``key``: what S3Storage and GoogleCloudStorage do, prefix included."""
    from storages.utils import clean_name

    return storage._normalize_name(clean_name(key))


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


# --- Byte ranges and signed URLs ------------------------------------------------------------------


class RangeReader:
    """Byte ranges of one stored archive; ``read_range`` is what browsing takes.

    Each call is one request to the backend (one ``pread`` locally) and returns exactly ``length``
    bytes from ``start``, fewer only at the end of the object. A missing object raises
    :class:`FileNotFoundError`. ``fetched`` counts the bytes the backend returned.
    """

    fetched = 0

    def read_range(self, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"no byte range starts at {start} with length {length}")
        if length == 0:
            return b""
        data = self._read(start, length)
        self.fetched += len(data)
        return data

    def iter_range(self, start: int, length: int, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """``length`` bytes from ``start`` in reads of ``chunk_size``; memory holds one chunk."""
        end = start + length
        while start < end:
            data = self.read_range(start, min(chunk_size, end - start))
            if not data:
                return
            yield data
            start += len(data)

    def _read(self, start: int, length: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the reader holds open; reading again afterwards is an error."""

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _FileRanges(RangeReader):
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDONLY)

    def _read(self, start: int, length: int) -> bytes:
        # pread keeps no file position: a reader may serve several threads at once.
        return os.pread(self._fd, length, start)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _S3Ranges(RangeReader):
    def __init__(self, storage: _BucketStorage, key: str) -> None:
        self._key = key
        self._object = storage.bucket.Object(_object_name(storage, key))

    def _read(self, start: int, length: int) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self._object.get(Range=f"bytes={start}-{start + length - 1}")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "InvalidRange":  # starts at or past the end
                return b""
            if code in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"artefact {self._key!r} is not in storage") from None
            raise
        with contextlib.closing(response["Body"]) as body:
            return body.read()


class _GCSRanges(RangeReader):
    def __init__(self, storage: _BucketStorage, key: str) -> None:
        self._key = key
        self._blob = storage.bucket.blob(_object_name(storage, key))

    def _read(self, start: int, length: int) -> bytes:
        from google.api_core.exceptions import NotFound, RequestRangeNotSatisfiable

        try:
            # A ranged read has no whole-object checksum to check; the archive's own CRCs remain.
            return self._blob.download_as_bytes(
                start=start, end=start + length - 1, checksum=None, raw_download=True
            )
        except RequestRangeNotSatisfiable:
            return b""
        except NotFound:
            raise FileNotFoundError(f"artefact {self._key!r} is not in storage") from None


class _OpenedRanges(RangeReader):
    """Any other backend: seek and read on the file its ``open`` returns."""

    def __init__(self, storage: Storage, key: str) -> None:
        self._file = storage.open(key, "rb")
        self._lock = threading.Lock()

    def _read(self, start: int, length: int) -> bytes:
        with self._lock:
            self._file.seek(start)
            return self._file.read(length)

    def close(self) -> None:
        self._file.close()


def artefact_ranges(key: str, *, storage: Storage | None = None) -> RangeReader:
    """A :class:`RangeReader` over the archive stored under ``key``; close it when done.

    Opening does not contact S3 or GCS: a missing object shows at the first read, as
    :class:`FileNotFoundError`. Locally it is raised here.
    """
    storage = _storage(storage)
    local = _local_path(storage, key)
    if local is not None:
        return _FileRanges(local)
    if _is_s3(storage):
        return _S3Ranges(storage, key)
    if _is_gcs(storage):
        return _GCSRanges(storage, key)
    return _OpenedRanges(storage, key)


def artefact_download_url(
    key: str, *, filename: str, expiry: timedelta, storage: Storage | None = None
) -> str | None:
    """A signed GET URL for ``key``, valid for ``expiry``, saving as the attachment ``filename``.

    None when the backend cannot sign URLs (the local filesystem): the caller streams the file.
    Signing is local computation, with no request to the backend (on GCS without a key file it
    asks the IAM API to sign), so a missing object shows only when the URL is fetched. Raises
    :class:`SigningUnavailableError` when GCS credentials have nothing to sign with.
    """
    storage = _storage(storage)
    disposition = content_disposition_header(as_attachment=True, filename=filename)
    if _is_s3(storage):
        return storage.url(
            key,
            parameters={
                "ResponseContentDisposition": disposition,
                "ResponseContentType": "application/zip",
            },
            expire=max(1, int(expiry.total_seconds())),
        )
    if _is_gcs(storage):
        try:
            return storage.url(
                key,
                parameters={
                    "response_disposition": disposition,
                    "response_type": "application/zip",
                    "expiration": expiry,
                },
            )
        except AttributeError as exc:
            # Both django-storages (no service-account email for signBlob) and
            # google-cloud-storage (credentials without a private key) say so by AttributeError.
            raise SigningUnavailableError(
                "cannot sign a GCS download URL: the credentials in use hold no private key and "
                "name no service account to sign as, as with application default credentials "
                f"from a user login ({exc}). Set BEDROCK_GCS_CREDENTIALS to a "
                "service-account JSON key file, or BEDROCK_GCS_SIGNING_EMAIL to a service "
                "account that these credentials may sign as through the IAM signBlob API (the "
                "Service Account Token Creator role)."
            ) from exc
    return None


# --- Browsing -------------------------------------------------------------------------------------


def artefact_entries(key: str, *, size: int, storage: Storage | None = None) -> list[Entry]:
    """The entries of the ``size``-byte archive under ``key``, read from its central directory.

    A few ranged reads at the archive's end, never its content. Raises :class:`FileNotFoundError`
    when the object is missing and :class:`BrowseError` when it is not a readable ZIP.
    """
    with artefact_ranges(key, storage=storage) as reader:
        return list_entries(reader.read_range, size)


class EntryStream:
    """One entry's content as an iterable of chunks; ``close`` releases the archive's reader.

    A web response calls ``close`` when it ends, whether or not the content was iterated.
    """

    def __init__(self, entry: Entry, reader: RangeReader, chunks: Iterator[bytes]) -> None:
        self.entry = entry
        self._reader = reader
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        self._reader.close()


def artefact_open_entry(
    key: str, name: str, *, size: int, storage: Storage | None = None
) -> EntryStream:
    """The content of the entry named exactly ``name``, streamed by ranged reads of 1 MiB.

    Raises :class:`EntryNotFoundError` when no entry has that name, :class:`BrowseError` when it
    cannot be opened (a directory, an unsupported method) and :class:`FileNotFoundError` when the
    archive is missing. Sizes and CRC-32 are checked as the content streams.
    """
    reader = artefact_ranges(key, storage=storage)
    try:
        entry = find_entry(list_entries(reader.read_range, size), name)
        chunks = open_entry(reader.read_range, entry, chunk_size=_CHUNK)
    except BaseException:
        reader.close()
        raise
    return EntryStream(entry, reader, chunks)
