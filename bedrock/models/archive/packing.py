"""Pack a directory into a ZIP archive written as a stream, which need not be seekable.

* Entries that do not compress are *stored*. Whether a file compresses is judged from a few samples
  spread across it, so random bytes (weights, already-compressed data) move at disk speed.
* Big compressible files are cut into chunks that worker threads deflate independently, pigz-style
  (zlib releases the GIL). Each chunk is a fresh raw-deflate stream ending in a sync flush, the last
  one in a final block; their concatenation is one valid deflate stream. A chunk that turns out not
  to compress is emitted as deflate *stored blocks* (level 0) instead of wasting time on it.
* The compressed length of every chunk is recorded in a private extra field of the central
  directory (``CHUNK_INDEX_ID``); other tools ignore it, and unpacking uses it to inflate one
  big entry in parallel.
* The output stream need not be seekable (a pipe into object storage): every file entry carries a
  data descriptor (general purpose bit 3), and ZIP64 records are written whenever a size, an offset
  or the entry count needs them.
* Memory stays flat: at most ``workers * 3 + 2`` chunks are in flight, whatever the archive's size.

Symbolic links are not archived as links. A link to a regular file is stored as that file's
content, as ``zip`` and ``zipfile`` do by default (Hugging Face downloads, for one, leave such
links). A link to a directory, a dangling link or a special file (FIFO, socket, device) is refused
with an error naming it, because following those can loop or pull in the whole machine. The tree
is held to :class:`~bedrock.models.archivelimits.ArchiveLimits` (depth, entries, total size), so
Bedrock never makes an archive it would refuse to read.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zipfile
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bedrock.models.archive.codec import Deflater, crc32, raw_deflater
from bedrock.models.archive.errors import (
    ArchiveError,
    ArchiveLimitError,
    EmptyArtefactError,
    RefusedEntryError,
)
from bedrock.models.archive.fileio import (
    FEED,
    default_workers,
    read_into,
)
from bedrock.models.archive.records import (
    CENTRAL,
    CENTRAL_SIG,
    CHUNK_INDEX_ID,
    DESCRIPTOR,
    DESCRIPTOR64,
    DESCRIPTOR_SIG,
    END,
    END64,
    END64_SIG,
    END_SIG,
    FLAG_DESCRIPTOR,
    FLAG_UTF8,
    LOCAL,
    LOCAL_SIG,
    LOCATOR64,
    LOCATOR64_SIG,
    MADE_BY_UNIX,
    MSDOS_DIRECTORY,
    VERSION_DEFLATE,
    VERSION_ZIP64,
    crc32_combine,
    dos_datetime,
)
from bedrock.models.archivelimits import ArchiveLimits


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack` wrote: the archive's byte count, SHA-256 (hex) and number of files."""

    size: int
    sha256: str
    file_count: int


# --- Tuning ---------------------------------------------------------------------------------------
# Level 1 deflates text about three times faster than zlib's default 6 (ISA-L's level 1, see
# codec.py, ten times), for an archive a few percent larger; bench/artefacts.py measures that trade.
LEVEL = 1
# Files up to one chunk are read and compressed whole by one worker; bigger ones are split.
CHUNK_SIZE = 2 << 20
# Compressibility is judged on samples this big: large enough to see past a header.
_SAMPLE = 64 << 10
# Keep deflate output only if it saves at least 5 %: inflating costs more than copying.
_WORTH_DEFLATING = 0.95
# Bedrock's own archives stay this far within the compression ratio readers allow (1000:1).
_MOST_OWN_RATIO = 250
# One private extra field holds a 4-byte length per chunk, and an extra field is at most 64 KiB.
_MAX_INDEXED_CHUNKS = 16_000
# ZIP64 kicks in above these; module-level so tests can exercise the ZIP64 paths with small data.
_ZIP64_LIMIT = 0xFFFFFFFF
_ZIP64_COUNT_LIMIT = 0xFFFF


def _looks_incompressible(data: bytes | memoryview) -> bool:
    if not data:
        return True
    deflater = raw_deflater(LEVEL)
    deflated = len(deflater.compress(data)) + len(deflater.flush(zlib.Z_FINISH))
    return deflated >= len(data) * _WORTH_DEFLATING


@dataclass
class _Entry:
    name: str  # archive name: "/" separators, a trailing "/" for a directory
    path: str
    size: int
    mode: int
    mtime: float

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass
class _Piece:
    """One chunk of one entry as a worker returns it: its bytes as written, in parts."""

    parts: list[bytes | memoryview]
    crc: int
    raw_length: int
    method: int

    @property
    def length(self) -> int:
        return sum(len(part) for part in self.parts)


@dataclass
class _Slot:
    """An item of the ordered output queue: a directory entry, or one chunk of a file."""

    entry: _Entry
    future: Future[_Piece] | None = None
    buffer: bytearray | None = None  # what the worker reads into; reused once written out
    # Set for a file split into chunks: its key in the open-files table, and which chunk this is.
    key: int | None = None
    index: int = 0
    count: int = 1


@dataclass
class _OpenFile:
    fd: int
    crc: int = 0
    raw: int = 0
    compressed: int = 0
    chunk_lengths: list[int] = field(default_factory=list)
    header_offset: int = 0
    method: int = zipfile.ZIP_STORED
    zip64: bool = False


def _collect(root: Path, limits: ArchiveLimits) -> list[_Entry]:
    """Regular files and empty directories under ``root``, sorted by archive name."""
    entries: list[_Entry] = []
    total = 0
    real_root = os.path.realpath(root)
    stack: list[tuple[str, str]] = [("", str(root))]
    while stack:
        prefix, path = stack.pop()
        with os.scandir(path) as scan:
            children = list(scan)
        if not children and prefix:
            st = os.stat(path, follow_symlinks=False)
            entries.append(_Entry(prefix, path, 0, st.st_mode, st.st_mtime))
        for child in children:
            rel = prefix + child.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise RefusedEntryError(
                    f"{rel!r}: the file name is not valid UTF-8; rename it before packing"
                ) from None
            if problem := limits.too_deep(rel, "packed"):
                raise ArchiveLimitError(problem)
            if child.is_dir(follow_symlinks=False):
                stack.append((rel + "/", child.path))
                continue
            st = child.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                st = _follow_link(rel, child.path, real_root)
            elif not stat.S_ISREG(st.st_mode):
                raise RefusedEntryError(
                    f"{rel}: is not a regular file or directory (a FIFO, socket or device); "
                    "remove it from /artefact"
                )
            entries.append(_Entry(rel, child.path, st.st_size, st.st_mode, st.st_mtime))
            total += st.st_size
            problem = limits.too_many(len(entries), "packed") or limits.too_big(total, "packed")
            if problem:
                raise ArchiveLimitError(f"{root} holds {problem}")
    entries.sort(key=lambda e: e.name)
    return entries


def _follow_link(rel: str, path: str, real_root: str) -> os.stat_result:
    """Links are followed only to files inside the packed directory: a step must not be able to
    publish a file of the machine packing its /artefact (a key, a database) by linking to it."""
    target = os.readlink(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RefusedEntryError(
            f"{rel}: is a symbolic link to {target!r}, which does not resolve ({exc.strerror}); "
            "copy the file it should point to into /artefact instead"
        ) from None
    resolved = os.path.realpath(path)
    if os.path.commonpath([resolved, real_root]) != real_root:
        raise RefusedEntryError(
            f"{rel}: is a symbolic link to {target!r}, outside the directory being packed; "
            "only links to files inside /artefact are followed, so copy the file in instead"
        )
    if not stat.S_ISREG(st.st_mode):
        raise RefusedEntryError(
            f"{rel}: is a symbolic link to {target!r}, which is not a regular file; only links to "
            "files are followed, so copy the directory into /artefact instead"
        )
    return st


def _compressed_bound(size: int, chunk: int) -> int:
    # zlib's deflateBound plus the 5-byte sync marker each chunk ends with.
    chunks = max(1, -(-size // chunk))
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 18 * chunks


def _chunk_size_for(size: int) -> int:
    # Keep the chunk index within one extra field: very big files get bigger chunks.
    needed = -(-size // _MAX_INDEXED_CHUNKS)
    mib = 1 << 20
    return max(CHUNK_SIZE, -(-needed // mib) * mib)


def _deflate(data: memoryview, level: int, final: bool) -> list[bytes | memoryview]:
    parts = _deflate_with(raw_deflater(level), data, final)
    if level and sum(len(part) for part in parts) * _MOST_OWN_RATIO < len(data):
        # ISA-L packs runs of one byte about 600:1: within a reader's ratio limit (1000:1 by
        # default), but not with the margin zlib's level 1 (about 230:1) leaves for a lower one.
        parts = _deflate_with(zlib.compressobj(level, zlib.DEFLATED, -15), data, final)
    return parts


def _deflate_with(compressor: Deflater, data: memoryview, final: bool) -> list[bytes | memoryview]:
    # Fed in slices so that each output object stays small: see read_into on big allocations.
    parts: list[bytes | memoryview] = []
    for start in range(0, len(data), FEED):
        if out := compressor.compress(data[start : start + FEED]):
            parts.append(out)
    parts.append(compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH))
    return parts


def _changed(entry: _Entry, now: int) -> ArchiveError:
    return ArchiveError(
        f"{entry.name}: the file changed size while being packed ({entry.size} bytes, then "
        f"{now}); pack /artefact only after training has finished"
    )


def _pack_small(entry: _Entry, buffer: bytearray) -> _Piece:
    """A whole file of at most one chunk: read it, and keep the deflated form if it pays."""
    fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = read_into(fd, buffer, entry.size, 0)
        now = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if len(data) != entry.size or now != entry.size:
        raise _changed(entry, now)
    crc = crc32(data)
    size = len(data)
    if size > 2 * _SAMPLE and _looks_incompressible(data[:_SAMPLE]):
        return _Piece([data], crc, size, zipfile.ZIP_STORED)
    if size:
        deflated = _deflate(data, LEVEL, final=True)
        if sum(len(part) for part in deflated) < size * _WORTH_DEFLATING:
            return _Piece(deflated, crc, size, zipfile.ZIP_DEFLATED)
    return _Piece([data], crc, size, zipfile.ZIP_STORED)


def _pack_chunk(
    fd: int, entry: _Entry, buffer: bytearray, offset: int, length: int, method: int, final: bool
) -> _Piece:
    data = read_into(fd, buffer, length, offset)
    if len(data) != length:
        raise _changed(entry, os.fstat(fd).st_size)
    crc = crc32(data)
    if method == zipfile.ZIP_STORED:
        return _Piece([data], crc, length, method)
    # Stored deflate blocks for a chunk that does not compress: a mixed file costs disk speed there.
    level = 0 if _looks_incompressible(data[:_SAMPLE]) else LEVEL
    return _Piece(_deflate(data, level, final), crc, length, method)


def _choose_method(fd: int, entry: _Entry) -> int:
    """Deflate a big file only if samples from its start, middle and end compress."""
    size = entry.size
    offsets = sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)})
    sample = b"".join(os.pread(fd, _SAMPLE, offset) for offset in offsets)
    return zipfile.ZIP_STORED if _looks_incompressible(sample) else zipfile.ZIP_DEFLATED


class _Output:
    """Counts and hashes every byte on its way to a possibly non-seekable stream."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self._hash.update(view)
        self.offset += len(view)
        while view:
            written = self._out.write(view)
            if written is None:
                raise RefusedEntryError("the output stream is non-blocking and would block")
            view = view[written:]

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _encode_name(name: str) -> tuple[bytes, int]:
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), FLAG_UTF8


def _local_header(entry: _Entry, method: int, zip64: bool) -> bytes:
    name, flags = _encode_name(entry.name)
    dos_time, dos_date = dos_datetime(entry.mtime)
    if entry.is_dir:
        return (
            LOCAL.pack(
                LOCAL_SIG, VERSION_DEFLATE, flags, 0, dos_time, dos_date, 0, 0, 0, len(name), 0
            )
            + name
        )
    extra = b""
    sizes = 0
    version = VERSION_DEFLATE
    if zip64:
        # Sizes come later in the data descriptor; this extra field tells readers they are 8 bytes.
        extra = struct.pack("<HHQQ", 1, 16, 0, 0)
        sizes = 0xFFFFFFFF
        version = VERSION_ZIP64
    header = LOCAL.pack(
        LOCAL_SIG,
        version,
        flags | FLAG_DESCRIPTOR,
        method,
        dos_time,
        dos_date,
        0,
        sizes,
        sizes,
        len(name),
        len(extra),
    )
    return header + name + extra


def _central_record(
    entry: _Entry,
    *,
    method: int,
    crc: int,
    compressed: int,
    raw: int,
    header_offset: int,
    zip64_local: bool,
    chunk_index: bytes = b"",
) -> bytes:
    name, flags = _encode_name(entry.name)
    dos_time, dos_date = dos_datetime(entry.mtime)
    if not entry.is_dir:
        flags |= FLAG_DESCRIPTOR
    zip64_fields: list[int] = []
    raw_field, compressed_field, offset_field = raw, compressed, header_offset
    if zip64_local or raw >= _ZIP64_LIMIT or compressed >= _ZIP64_LIMIT:
        zip64_fields += [raw, compressed]
        raw_field = compressed_field = 0xFFFFFFFF
    if header_offset >= _ZIP64_LIMIT:
        zip64_fields.append(header_offset)
        offset_field = 0xFFFFFFFF
    extra = b""
    version = VERSION_DEFLATE
    if zip64_fields:
        extra = struct.pack(f"<HH{len(zip64_fields)}Q", 1, 8 * len(zip64_fields), *zip64_fields)
        version = VERSION_ZIP64
    extra += chunk_index
    mode = entry.mode & 0xFFFF
    external = mode << 16
    if entry.is_dir:
        external |= MSDOS_DIRECTORY
    header = CENTRAL.pack(
        CENTRAL_SIG,
        MADE_BY_UNIX | VERSION_ZIP64,
        version,
        flags,
        method,
        dos_time,
        dos_date,
        crc,
        compressed_field,
        raw_field,
        len(name),
        len(extra),
        0,
        0,
        0,
        external,
        offset_field,
    )
    return header + name + extra


def _chunk_index(chunk: int, lengths: list[int]) -> bytes:
    if len(lengths) < 2:
        return b""  # one chunk: nothing to parallelise
    payload = struct.pack(f"<I{len(lengths)}I", chunk, *lengths)
    return struct.pack("<HH", CHUNK_INDEX_ID, len(payload)) + payload


def _end_records(count: int, cd_offset: int, cd_size: int, end_offset: int) -> bytes:
    records = b""
    needs64 = count >= _ZIP64_COUNT_LIMIT or cd_offset >= _ZIP64_LIMIT or cd_size >= _ZIP64_LIMIT
    if needs64:
        records += END64.pack(
            END64_SIG,
            END64.size - 12,
            MADE_BY_UNIX | VERSION_ZIP64,
            VERSION_ZIP64,
            0,
            0,
            count,
            count,
            cd_size,
            cd_offset,
        )
        records += LOCATOR64.pack(LOCATOR64_SIG, 0, end_offset, 1)
    records += END.pack(
        END_SIG,
        0,
        0,
        min(count, 0xFFFF),
        min(count, 0xFFFF),
        min(cd_size, 0xFFFFFFFF),
        min(cd_offset, 0xFFFFFFFF),
        0,
    )
    return records


def pack(
    directory: Path,
    out: BinaryIO,
    *,
    workers: int | None = None,
    limits: ArchiveLimits | None = None,
) -> PackResult:
    """Write a ZIP of ``directory``'s contents to ``out``, which need not be seekable.

    Entries are the regular files and empty directories under ``directory``, named relative to it
    with "/" separators and sorted. Links to files inside ``directory`` are stored as the target's
    content; other links and special files are refused (see the module docstring). Raises
    :class:`EmptyArtefactError` when there is no file, :class:`ArchiveLimitError` when the tree is
    deeper, or holds more entries or bytes, than ``limits`` (by default the settings') allow,
    :class:`RefusedEntryError` when an entry cannot be packed as it is (both the content's
    fault, not the packer's), and :class:`ArchiveError` otherwise; ``out`` then holds a partial
    archive that the caller must discard.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArchiveError(f"{directory} is not a directory; nothing to pack")
    entries = _collect(directory, limits or ArchiveLimits.current())
    file_count = sum(1 for e in entries if not e.is_dir)
    if file_count == 0:
        raise EmptyArtefactError(
            f"{directory} has no files: the /artefact is empty, so there is nothing to publish. "
            "The training step must write its model files under /artefact."
        )
    with _Packer(out, default_workers(workers)) as packer:
        for entry in entries:
            packer.add(entry)
        size, sha256 = packer.finish()
    return PackResult(size=size, sha256=sha256, file_count=file_count)


class _Packer:
    """Workers read and compress; this thread writes their results in order.

    At most ``max_in_flight`` chunks are queued or being worked on, each with its own read buffer,
    so memory is bounded by that count times the chunk size.
    """

    def __init__(self, out: BinaryIO, workers: int) -> None:
        self.output = _Output(out)
        self.central: list[bytes] = []
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zip-pack")
        self.pending: deque[_Slot] = deque()
        self.max_in_flight = workers * 3 + 2
        self.free_buffers: list[bytearray] = []
        self.open_files: dict[int, _OpenFile] = {}

    def __enter__(self) -> _Packer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for state in self.open_files.values():
            os.close(state.fd)

    def _buffer(self, size: int) -> bytearray:
        buffer = self.free_buffers.pop() if self.free_buffers else bytearray(CHUNK_SIZE)
        return buffer if len(buffer) >= size else bytearray(size)

    def _queue(self, slot: _Slot) -> None:
        self.pending.append(slot)
        while len(self.pending) >= self.max_in_flight:
            self._emit(self.pending.popleft())

    def add(self, entry: _Entry) -> None:
        if entry.is_dir:
            self._queue(_Slot(entry))
            return
        if entry.size <= CHUNK_SIZE:
            buffer = self._buffer(entry.size)
            self._queue(_Slot(entry, self.pool.submit(_pack_small, entry, buffer), buffer))
            return
        fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
        state = _OpenFile(fd)
        key = id(entry)
        self.open_files[key] = state
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        state.method = _choose_method(fd, entry)
        chunk = _chunk_size_for(entry.size)
        if state.method == zipfile.ZIP_STORED:
            state.zip64 = entry.size >= _ZIP64_LIMIT
        else:
            state.zip64 = _compressed_bound(entry.size, chunk) >= _ZIP64_LIMIT
        count = -(-entry.size // chunk)
        for index in range(count):
            offset = index * chunk
            length = min(chunk, entry.size - offset)
            buffer = self._buffer(length)
            final = index == count - 1
            future = self.pool.submit(
                _pack_chunk, fd, entry, buffer, offset, length, state.method, final
            )
            self._queue(_Slot(entry, future, buffer, key, index, count))

    def finish(self) -> tuple[int, str]:
        while self.pending:
            self._emit(self.pending.popleft())
        output = self.output
        cd_offset = output.offset
        for record in self.central:
            output.write(record)
        cd_size = output.offset - cd_offset
        output.write(_end_records(len(self.central), cd_offset, cd_size, output.offset))
        return output.offset, output.hexdigest()

    def _emit(self, slot: _Slot) -> None:
        entry = slot.entry
        output = self.output
        if slot.future is None:  # an empty directory
            header_offset = output.offset
            output.write(_local_header(entry, zipfile.ZIP_STORED, zip64=False))
            self.central.append(
                _central_record(
                    entry,
                    method=zipfile.ZIP_STORED,
                    crc=0,
                    compressed=0,
                    raw=0,
                    header_offset=header_offset,
                    zip64_local=False,
                )
            )
            return
        piece = slot.future.result()
        if slot.key is None:
            self._emit_whole(entry, piece)
        else:
            self._emit_chunk(slot, piece)
        assert slot.buffer is not None
        self.free_buffers.append(slot.buffer)

    def _emit_whole(self, entry: _Entry, piece: _Piece) -> None:
        output = self.output
        header_offset = output.offset
        compressed = piece.length
        zip64 = compressed >= _ZIP64_LIMIT or piece.raw_length >= _ZIP64_LIMIT
        output.write(_local_header(entry, piece.method, zip64))
        for part in piece.parts:
            output.write(part)
        output.write(_descriptor(piece.crc, compressed, piece.raw_length, zip64))
        self.central.append(
            _central_record(
                entry,
                method=piece.method,
                crc=piece.crc,
                compressed=compressed,
                raw=piece.raw_length,
                header_offset=header_offset,
                zip64_local=zip64,
            )
        )

    def _emit_chunk(self, slot: _Slot, piece: _Piece) -> None:
        entry = slot.entry
        output = self.output
        assert slot.key is not None
        state = self.open_files[slot.key]
        if slot.index == 0:
            state.header_offset = output.offset
            output.write(_local_header(entry, state.method, state.zip64))
        for part in piece.parts:
            output.write(part)
        compressed = piece.length
        state.crc = crc32_combine(state.crc, piece.crc, piece.raw_length)
        state.raw += piece.raw_length
        state.compressed += compressed
        state.chunk_lengths.append(compressed)
        if slot.index < slot.count - 1:
            return
        del self.open_files[slot.key]
        try:
            now = os.fstat(state.fd).st_size
        finally:
            os.close(state.fd)
        if now != entry.size or state.raw != entry.size:
            raise _changed(entry, now)
        if not state.zip64 and state.compressed >= _ZIP64_LIMIT:
            # Cannot happen within _compressed_bound; refusing beats writing a corrupt archive.
            raise ArchiveError(f"{entry.name}: compressed beyond its bound; this is a bug")
        output.write(_descriptor(state.crc, state.compressed, state.raw, state.zip64))
        index = b""
        if state.method == zipfile.ZIP_DEFLATED:
            index = _chunk_index(_chunk_size_for(entry.size), state.chunk_lengths)
        self.central.append(
            _central_record(
                entry,
                method=state.method,
                crc=state.crc,
                compressed=state.compressed,
                raw=state.raw,
                header_offset=state.header_offset,
                zip64_local=state.zip64,
                chunk_index=index,
            )
        )


def _descriptor(crc: int, compressed: int, raw: int, zip64: bool) -> bytes:
    if zip64:
        return DESCRIPTOR64.pack(DESCRIPTOR_SIG, crc, compressed, raw)
    return DESCRIPTOR.pack(DESCRIPTOR_SIG, crc, compressed, raw)
