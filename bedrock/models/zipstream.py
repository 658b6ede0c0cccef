"""ZIP archives of a run's ``/artefact`` directory, written and read as streams.

The archives are ordinary ZIP files (PKWARE APPNOTE 6.3): ``unzip``, Python's ``zipfile`` and every
desktop tool open them. What makes them fast is how they are produced and consumed, not the format:

* Entries that do not compress are *stored*. Whether a file compresses is judged from a few samples
  spread across it, so random bytes (weights, already-compressed data) move at disk speed.
* Big compressible files are cut into chunks that worker threads deflate independently, pigz-style
  (zlib releases the GIL). Each chunk is a fresh raw-deflate stream ending in a sync flush, the last
  one in a final block; their concatenation is one valid deflate stream. A chunk that turns out not
  to compress is emitted as deflate *stored blocks* (level 0) instead of wasting time on it.
* The compressed length of every chunk is recorded in a private extra field of the central
  directory (``_CHUNK_INDEX_ID``); other tools ignore it, and :func:`unpack` uses it to inflate one
  big entry in parallel. Archives without it (any other tool's) are inflated entry by entry, still
  in parallel across entries.
* The output stream need not be seekable (a pipe into object storage): every file entry carries a
  data descriptor (general purpose bit 3), and ZIP64 records are written whenever a size, an offset
  or the entry count needs them.
* Memory stays flat: at most ``workers * 3 + 2`` chunks are in flight, whatever the archive's size.

Symbolic links are not archived as links. A link to a regular file is stored as that file's
content, as ``zip`` and ``zipfile`` do by default (Hugging Face downloads, for one, leave such
links). A link to a directory, a dangling link or a special file (FIFO, socket, device) is refused
with an error naming it, because following those can loop or pull in the whole machine.

:func:`unpack` refuses, before it writes anything, every entry that could land outside the
destination or be ambiguous: absolute paths, drive letters, ``..``, backslashes, symlink and other
special entries, duplicate names, and local headers that disagree with the central directory or
overlap each other. Every byte it writes is checked against the entry's declared size and CRC-32; on
any failure the destination is left as it was found (empty, or absent). Both directions hold the
archive to :class:`~bedrock.models.archivelimits.ArchiveLimits` (total size, entries, compression
ratio, depth), unpack before it writes where the central directory tells, and while it writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import stat
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from bedrock.filetrees import remove_tree
from bedrock.models.archivelimits import ArchiveLimits

__all__ = [
    "ArchiveError",
    "ArchiveLimitError",
    "ArchiveLimits",
    "EmptyArtefactError",
    "PackResult",
    "RefusedEntryError",
    "UnsafeArchiveError",
    "pack",
    "unpack",
]


class ArchiveError(Exception):
    """An artefact archive cannot be written or read; the message says which file and why."""


class EmptyArtefactError(ArchiveError):
    """The directory to pack holds no file at all."""


class UnsafeArchiveError(ArchiveError):
    """An entry could write outside the destination, or is ambiguous; nothing was written."""


class RefusedEntryError(ArchiveError):
    """The directory to pack holds what cannot be packed as it is: a name that is not UTF-8, a
    FIFO, socket or device, or a link that is not to a file inside it. Whoever filled the
    directory can fix it; the message says which entry and how."""


class ArchiveLimitError(ArchiveError):
    """The archive, or the directory to pack, exceeds an :class:`ArchiveLimits` bound."""


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack` wrote: the archive's byte count, SHA-256 (hex) and number of files."""

    size: int
    sha256: str
    file_count: int


# --- Tuning ---------------------------------------------------------------------------------------
# Level 1 deflates text about three times faster than zlib's default 6, for an archive a few percent
# larger; bench/artefacts.py measures both sides of that trade.
LEVEL = 1
# Files up to one chunk are read and compressed whole by one worker; bigger ones are split.
CHUNK_SIZE = 2 << 20
# Compressibility is judged on samples this big: large enough to see past a header.
_SAMPLE = 64 << 10
# Keep deflate output only if it saves at least 5 %: inflating costs more than copying.
_WORTH_DEFLATING = 0.95
# One private extra field holds a 4-byte length per chunk, and an extra field is at most 64 KiB.
_MAX_INDEXED_CHUNKS = 16_000
_CHUNK_INDEX_ID = 0x4B42  # "BK" little-endian: Bedrock chunk index
# ZIP64 kicks in above these; module-level so tests can exercise the ZIP64 paths with small data.
_ZIP64_LIMIT = 0xFFFFFFFF
_ZIP64_COUNT_LIMIT = 0xFFFF
_READ_SIZE = 1 << 20
_FEED = 64 << 10

# --- ZIP record layouts (APPNOTE 4.3) ------------------------------------------------------------
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIG = 0x04034B50
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_CENTRAL_SIG = 0x02014B50
_DESCRIPTOR = struct.Struct("<IIII")
_DESCRIPTOR64 = struct.Struct("<IIQQ")
_DESCRIPTOR_SIG = 0x08074B50
_END = struct.Struct("<IHHHHIIH")
_END_SIG = 0x06054B50
_END64 = struct.Struct("<IQHHIIQQQQ")
_END64_SIG = 0x06064B50
_LOCATOR64 = struct.Struct("<IIQI")
_LOCATOR64_SIG = 0x07064B50

_FLAG_ENCRYPTED = 0x1
_FLAG_DESCRIPTOR = 0x8
_FLAG_UTF8 = 0x800
_MADE_BY_UNIX = 3 << 8
_VERSION_DEFLATE = 20
_VERSION_ZIP64 = 45
_MSDOS_DIRECTORY = 0x10
_DRIVE = re.compile(r"^[A-Za-z]:")


def _default_workers(workers: int | None) -> int:
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- CRC-32 combination ---------------------------------------------------------------------------
# Chunks are checksummed by the workers that read them; their CRCs are merged in order here. This is
# zlib's crc32_combine (x^(8·len) mod P arithmetic), which Python's zlib module does not expose.
_CRC_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _x2n_table() -> tuple[int, ...]:
    p = 1 << 30  # x^1
    table = [p]
    for _ in range(31):
        p = _multmodp(p, p)
        table.append(p)
    return tuple(table)


_X2N = _x2n_table()


@lru_cache(maxsize=64)
def _shift_operator(length: int) -> int:
    """x^(8·length) mod P: what appending ``length`` bytes does to a CRC."""
    p = 1 << 31  # x^0
    k = 3
    n = length
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A+B given CRC(A), CRC(B) and len(B)."""
    if length2 == 0:
        return crc1
    return _multmodp(_shift_operator(length2), crc1) ^ crc2


# --- Helpers shared by both directions ------------------------------------------------------------


def _dos_datetime(mtime: float) -> tuple[int, int]:
    t = time.localtime(mtime)
    if t.tm_year < 1980:
        return 0, (1 << 5) | 1  # 1980-01-01 00:00, the earliest a ZIP can say
    if t.tm_year > 2107:
        return (23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return dos_time, dos_date


def _looks_incompressible(data: bytes | memoryview) -> bool:
    if not data:
        return True
    return len(zlib.compress(data, 1)) >= len(data) * _WORTH_DEFLATING


def _read_into(fd: int, buffer: bytearray, length: int, offset: int) -> memoryview:
    """Up to ``length`` bytes at ``offset`` into ``buffer``; shorter only at end of file.

    Reading into buffers that are reused, rather than into fresh multi-megabyte ``bytes``, spares a
    page fault per 4 KiB: each fresh allocation that size is a new mmap the kernel must zero.
    """
    view = memoryview(buffer)[:length]
    got = 0
    while got < length:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return view[:got]


def _pread_exact(fd: int, length: int, offset: int, what: str) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise ArchiveError(f"{what}: the archive ends early; it is truncated or corrupt")
    return data


class _Buffers(threading.local):
    """One read buffer per worker thread, grown on demand and kept."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def get(self, size: int) -> bytearray:
        if len(self.buffer) < size:
            self.buffer = bytearray(size)
        return self.buffer


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


# ==================================================================================================
# pack
# ==================================================================================================


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
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    # Fed in slices so that each output object stays small: see _read_into on big allocations.
    parts: list[bytes | memoryview] = []
    for start in range(0, len(data), _FEED):
        if out := compressor.compress(data[start : start + _FEED]):
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
        data = _read_into(fd, buffer, entry.size, 0)
        now = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if len(data) != entry.size or now != entry.size:
        raise _changed(entry, now)
    crc = zlib.crc32(data)
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
    data = _read_into(fd, buffer, length, offset)
    if len(data) != length:
        raise _changed(entry, os.fstat(fd).st_size)
    crc = zlib.crc32(data)
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
        return name.encode("utf-8"), _FLAG_UTF8


def _local_header(entry: _Entry, method: int, zip64: bool) -> bytes:
    name, flags = _encode_name(entry.name)
    dos_time, dos_date = _dos_datetime(entry.mtime)
    if entry.is_dir:
        return (
            _LOCAL.pack(
                _LOCAL_SIG, _VERSION_DEFLATE, flags, 0, dos_time, dos_date, 0, 0, 0, len(name), 0
            )
            + name
        )
    extra = b""
    sizes = 0
    version = _VERSION_DEFLATE
    if zip64:
        # Sizes come later in the data descriptor; this extra field tells readers they are 8 bytes.
        extra = struct.pack("<HHQQ", 1, 16, 0, 0)
        sizes = 0xFFFFFFFF
        version = _VERSION_ZIP64
    header = _LOCAL.pack(
        _LOCAL_SIG,
        version,
        flags | _FLAG_DESCRIPTOR,
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
    dos_time, dos_date = _dos_datetime(entry.mtime)
    if not entry.is_dir:
        flags |= _FLAG_DESCRIPTOR
    zip64_fields: list[int] = []
    raw_field, compressed_field, offset_field = raw, compressed, header_offset
    if zip64_local or raw >= _ZIP64_LIMIT or compressed >= _ZIP64_LIMIT:
        zip64_fields += [raw, compressed]
        raw_field = compressed_field = 0xFFFFFFFF
    if header_offset >= _ZIP64_LIMIT:
        zip64_fields.append(header_offset)
        offset_field = 0xFFFFFFFF
    extra = b""
    version = _VERSION_DEFLATE
    if zip64_fields:
        extra = struct.pack(f"<HH{len(zip64_fields)}Q", 1, 8 * len(zip64_fields), *zip64_fields)
        version = _VERSION_ZIP64
    extra += chunk_index
    mode = entry.mode & 0xFFFF
    external = mode << 16
    if entry.is_dir:
        external |= _MSDOS_DIRECTORY
    header = _CENTRAL.pack(
        _CENTRAL_SIG,
        _MADE_BY_UNIX | _VERSION_ZIP64,
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
    return struct.pack("<HH", _CHUNK_INDEX_ID, len(payload)) + payload


def _end_records(count: int, cd_offset: int, cd_size: int, end_offset: int) -> bytes:
    records = b""
    needs64 = count >= _ZIP64_COUNT_LIMIT or cd_offset >= _ZIP64_LIMIT or cd_size >= _ZIP64_LIMIT
    if needs64:
        records += _END64.pack(
            _END64_SIG,
            _END64.size - 12,
            _MADE_BY_UNIX | _VERSION_ZIP64,
            _VERSION_ZIP64,
            0,
            0,
            count,
            count,
            cd_size,
            cd_offset,
        )
        records += _LOCATOR64.pack(_LOCATOR64_SIG, 0, end_offset, 1)
    records += _END.pack(
        _END_SIG,
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
    with _Packer(out, _default_workers(workers)) as packer:
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
        return _DESCRIPTOR64.pack(_DESCRIPTOR_SIG, crc, compressed, raw)
    return _DESCRIPTOR.pack(_DESCRIPTOR_SIG, crc, compressed, raw)


# ==================================================================================================
# unpack
# ==================================================================================================

# Stored entries and other tools' small entries are copied in pieces of this size.
_RANGE = 4 << 20
_SUPPORTED_BY_ZIPFILE = {zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Target:
    """A validated archive entry and where its bytes are."""

    info: zipfile.ZipInfo
    relpath: str  # normalised, "/"-separated, never empty
    is_dir: bool
    data_offset: int = 0
    executable: bool = False
    chunks: list[tuple[int, int, int, int]] | None = (
        None  # (data offset, length, raw offset, length)
    )
    budget: _Budget | None = None  # shared by every entry of one archive


class _Budget:
    """The bytes all entries of one archive may really produce together, whatever they declare."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self._left = limits.total_bytes
        self._lock = threading.Lock()

    def spend(self, count: int) -> None:
        with self._lock:
            self._left -= count
            left = self._left
        if left < 0:
            problem = self._limits.too_big(self._limits.total_bytes - left, "unpacked")
            raise ArchiveLimitError(f"the archive expands to {problem}")


@dataclass
class _Unit:
    """An item of the ordered extraction queue: all of a small file, or one piece of a big one."""

    target: _Target
    future: Future[tuple[int, int]]
    index: int = 0
    count: int = 1


def unpack(
    source: BinaryIO | Path | str,
    dest: Path,
    *,
    workers: int | None = None,
    limits: ArchiveLimits | None = None,
) -> int:
    """Extract the ZIP ``source`` (a path or a binary file) into ``dest``; return the file count.

    ``dest`` must be absent or an empty directory. Every entry is validated before anything is
    written (:class:`UnsafeArchiveError` names the first bad one); every file's size and CRC-32 is
    checked as it is written, and on any failure ``dest`` is returned to how it was found. Reads any
    standard ZIP: stored or deflated (bzip2 and LZMA through ``zipfile``), with or without data
    descriptors, ZIP64. A stream that cannot seek is first spooled to a temporary file.
    :class:`ArchiveLimitError` when the archive exceeds ``limits`` (by default the settings'):
    refused from its central directory where it can be, else while it is written.
    """
    dest = Path(dest)
    limits = limits or ArchiveLimits.current()
    first_missing = _check_destination(dest)
    n_workers = _default_workers(workers)
    with _Source(source, limits) as (fileobj, fd):
        _check_end_records(fileobj, limits)
        try:
            archive = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise ArchiveError(f"not a readable ZIP archive: {exc}") from None
        except EOFError:
            raise ArchiveError("not a readable ZIP archive: it is empty or truncated") from None
        with archive:
            targets = _plan(archive, fd, limits)
            dest.mkdir(parents=True, exist_ok=True)
            try:
                _extract(targets, dest, archive, fd, n_workers)
            except OSError as exc:  # a full disk, say: the caller gets an ArchiveError too
                _restore(dest, first_missing)
                raise ArchiveError(f"cannot write the archive's files: {exc}") from None
            except BaseException:
                _restore(dest, first_missing)
                raise
    return sum(1 for t in targets if not t.is_dir)


def _check_end_records(fileobj: BinaryIO, limits: ArchiveLimits) -> None:
    """Refuse, before zipfile reads the central directory into memory, one too big to read.

    zipfile's own reader of the end records (``_EndRecData``, ZIP64 included) is private but has
    been stable for decades; when it finds nothing, zipfile.ZipFile reports the archive as bad.
    """
    try:
        end = zipfile._EndRecData(fileobj)  # type: ignore[attr-defined]
    except (OSError, struct.error):
        end = None
    finally:
        fileobj.seek(0)
    if not end:
        return
    count, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if problem := limits.directory_too_big(count, size):
        raise ArchiveLimitError(problem)


def _check_destination(dest: Path) -> Path | None:
    """Refuse a destination that holds anything; return the topmost directory unpack will create."""
    if dest.exists():
        if not dest.is_dir():
            raise ArchiveError(f"{dest} exists and is not a directory; unpack into a directory")
        with os.scandir(dest) as scan:
            if next(scan, None) is not None:
                raise ArchiveError(
                    f"{dest} is not empty; unpack into an empty or new directory, so that no "
                    "existing file is overwritten or mixed with the archive's"
                )
        return None
    first_missing = dest
    while not first_missing.parent.exists():
        first_missing = first_missing.parent
    return first_missing


def _restore(dest: Path, first_missing: Path | None) -> None:
    if first_missing is not None:
        with contextlib.suppress(OSError):
            remove_tree(first_missing)
        return
    with os.scandir(dest) as scan:
        children = list(scan)
    for child in children:
        if child.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                remove_tree(child.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(child.path)


class _Source:
    """The archive as a file object for zipfile's directory parsing and an fd for ``os.pread``.

    Positional reads let the workers share one descriptor without a lock; zipfile's own reads (for
    the directory, and bzip2/LZMA entries) seek before every read, so they do not interfere.
    """

    def __init__(self, source: BinaryIO | Path | str, limits: ArchiveLimits) -> None:
        self._source = source
        self._limits = limits
        self._owned: BinaryIO | None = None

    def __enter__(self) -> tuple[BinaryIO, int]:
        source = self._source
        if isinstance(source, str | os.PathLike):
            self._owned = open(source, "rb")  # closed in __exit__
            return self._owned, self._owned.fileno()
        fd = _usable_fd(source)
        if fd is not None:
            return source, fd
        # BytesIO, a pipe, an HTTP body: copy it to disk once, then read it like a file.
        spool = tempfile.TemporaryFile(prefix="bedrock-unpack-")
        try:
            copied = 0
            while data := source.read(_READ_SIZE):
                copied += len(data)
                if problem := self._limits.archive_too_big(copied):
                    raise ArchiveLimitError(problem)
                spool.write(data)
        except BaseException:
            spool.close()
            raise
        self._owned = spool
        spool.flush()
        spool.seek(0)
        return spool, spool.fileno()

    def __exit__(self, *exc_info: object) -> None:
        if self._owned is not None:
            self._owned.close()


def _usable_fd(source: BinaryIO) -> int | None:
    try:
        if not source.seekable():
            return None
        fd = source.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    with contextlib.suppress(AttributeError, OSError, ValueError):
        source.flush()  # a file just written through a buffer
    try:
        os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None
    return fd


def _plan(archive: zipfile.ZipFile, fd: int, limits: ArchiveLimits) -> list[_Target]:
    """Validate every entry before anything is written."""
    targets: list[_Target] = []
    seen: dict[str, str] = {}
    infos = archive.infolist()
    if problem := limits.too_many(len(infos), "unpacked"):
        raise ArchiveLimitError(f"the archive has {problem}")
    budget = _Budget(limits)
    declared = 0
    for info in infos:
        raw_name = info.orig_filename
        target = _validate_entry(info, raw_name)
        if target is None:
            continue
        _check_entry_limits(target, limits)
        declared += info.file_size
        if problem := limits.too_big(declared, "unpacked"):
            raise ArchiveLimitError(f"the archive declares {problem}")
        target.budget = budget
        if target.relpath in seen:
            raise UnsafeArchiveError(
                f"entry {raw_name!r}: duplicate name (also entry {seen[target.relpath]!r}); "
                "which one would win is ambiguous, so the archive is refused"
            )
        seen[target.relpath] = raw_name
        target.data_offset = _data_offset(info, raw_name, fd)
        if not target.is_dir:
            target.chunks = _chunk_plan(info, target.data_offset)
        targets.append(target)
    _check_layout(targets, archive.start_dir)
    _check_file_directory_clash(targets)
    return targets


def _validate_entry(info: zipfile.ZipInfo, raw_name: str) -> _Target | None:
    if "\x00" in raw_name:
        raise UnsafeArchiveError(f"entry {raw_name!r}: the name contains a NUL byte")
    if "\\" in raw_name:
        raise UnsafeArchiveError(
            f"entry {raw_name!r}: the name contains a backslash, which some tools treat as a "
            "directory separator; ZIP names use '/'"
        )
    if raw_name.startswith("/"):
        raise UnsafeArchiveError(f"entry {raw_name!r}: absolute path")
    if _DRIVE.match(raw_name):
        raise UnsafeArchiveError(f"entry {raw_name!r}: the name starts with a drive letter")
    parts = [p for p in raw_name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"entry {raw_name!r}: the path contains '..'")
    if info.flag_bits & _FLAG_ENCRYPTED:
        raise ArchiveError(f"entry {raw_name!r}: encrypted entries are not supported")
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise UnsafeArchiveError(
            f"entry {raw_name!r}: symbolic link; links could point outside the destination"
        )
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(f"entry {raw_name!r}: special file (mode {mode:o})")
    is_dir = raw_name.endswith("/") or kind == stat.S_IFDIR
    if not parts:
        if is_dir:
            return None  # "./" names the destination itself
        raise UnsafeArchiveError(f"entry {raw_name!r}: the name is empty")
    method = info.compress_type
    known = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, *_SUPPORTED_BY_ZIPFILE}
    if not is_dir and method not in known:
        raise ArchiveError(
            f"entry {raw_name!r}: compression method {method} is not supported; "
            "re-create the archive with deflate"
        )
    return _Target(info, "/".join(parts), is_dir, executable=bool(mode & 0o111) and not is_dir)


def _check_entry_limits(target: _Target, limits: ArchiveLimits) -> None:
    """Depth and path length (so no tree too deep to delete is ever made), and the ratio."""
    if problem := limits.too_deep(target.relpath, "unpacked"):
        raise ArchiveLimitError(f"entry {problem}")
    info = target.info
    if not target.is_dir and (problem := limits.too_compressed(info.file_size, info.compress_size)):
        raise ArchiveLimitError(f"entry {target.relpath!r}: {problem}")


def _data_offset(info: zipfile.ZipInfo, raw_name: str, fd: int) -> int:
    what = f"entry {raw_name!r}: local header"
    header = _pread_exact(fd, _LOCAL.size, info.header_offset, what)
    fields = _LOCAL.unpack(header)
    if fields[0] != _LOCAL_SIG:
        raise ArchiveError(f"{what} is missing or corrupt (bad signature)")
    name_length, extra_length = fields[9], fields[10]
    local_name = _pread_exact(fd, name_length, info.header_offset + _LOCAL.size, what)
    encoding = "utf-8" if info.flag_bits & _FLAG_UTF8 else "cp437"
    if local_name != raw_name.encode(encoding, errors="surrogateescape"):
        # Tools disagree on which of the two names to trust; refuse rather than guess.
        raise UnsafeArchiveError(
            f"entry {raw_name!r}: its local header names it {local_name!r} instead"
        )
    return info.header_offset + _LOCAL.size + name_length + extra_length


def _chunk_plan(info: zipfile.ZipInfo, data_offset: int) -> list[tuple[int, int, int, int]] | None:
    """Pieces that can be extracted independently, or None for one sequential pass."""
    size = info.file_size
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != size:
            raise ArchiveError(
                f"entry {info.orig_filename!r}: stored, yet {info.compress_size} bytes hold "
                f"{size}; the archive is corrupt"
            )
        if size <= _RANGE:
            return None
        return [
            (data_offset + offset, min(_RANGE, size - offset), offset, min(_RANGE, size - offset))
            for offset in range(0, size, _RANGE)
        ]
    if info.compress_type != zipfile.ZIP_DEFLATED:
        return None
    index = _read_chunk_index(info.extra)
    if index is None:
        return None
    chunk, lengths = index
    if chunk <= 0 or len(lengths) != -(-size // chunk) or sum(lengths) != info.compress_size:
        return None  # not an index we wrote for this entry: inflate it in one pass
    pieces = []
    compressed_offset = data_offset
    for number, length in enumerate(lengths):
        raw_offset = number * chunk
        pieces.append((compressed_offset, length, raw_offset, min(chunk, size - raw_offset)))
        compressed_offset += length
    return pieces


def _read_chunk_index(extra: bytes) -> tuple[int, list[int]] | None:
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4 : position + 4 + length]
        position += 4 + length
        if kind == _CHUNK_INDEX_ID and len(body) >= 8 and len(body) % 4 == 0:
            values = struct.unpack(f"<{len(body) // 4}I", body)
            return values[0], list(values[1:])
    return None


def _check_layout(targets: list[_Target], directory_start: int) -> None:
    """Refuse entries whose data overlap: the trick behind zip bombs that reuse one body."""
    spans = sorted(
        (t.info.header_offset, t.data_offset + t.info.compress_size, t.info.orig_filename)
        for t in targets
    )
    for (_, end, name), (next_start, _, next_name) in itertools.pairwise(spans):
        if end > next_start:
            raise UnsafeArchiveError(f"entry {name!r}: its data overlaps entry {next_name!r}")
    if spans and spans[-1][1] > directory_start:
        raise UnsafeArchiveError(
            f"entry {spans[-1][2]!r}: its data runs into the central directory"
        )


def _check_file_directory_clash(targets: list[_Target]) -> None:
    files = {t.relpath: t.info.orig_filename for t in targets if not t.is_dir}
    for target in targets:
        parts = target.relpath.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise UnsafeArchiveError(
                    f"entry {target.info.orig_filename!r}: needs {parent!r} to be a directory, "
                    f"but entry {files[parent]!r} is a file"
                )
        if target.is_dir and target.relpath in files:
            raise UnsafeArchiveError(
                f"entry {target.info.orig_filename!r}: is both a file and a directory"
            )


def _extract(
    targets: list[_Target], dest: Path, archive: zipfile.ZipFile, fd: int, workers: int
) -> None:
    directories = {t.relpath for t in targets if t.is_dir}
    for target in targets:
        if not target.is_dir:
            directories.update(_parents(target.relpath))
    for relpath in sorted(directories, key=lambda p: p.count("/")):
        os.makedirs(dest / relpath, exist_ok=True)
    open_fds: dict[int, int] = {}  # id(target) -> fd, for files written in several pieces
    crcs: dict[int, int] = {}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zip-unpack")
    pending: deque[_Unit] = deque()
    max_in_flight = workers * 3 + 2
    try:
        for target in targets:
            if target.is_dir:
                continue
            path = str(dest / target.relpath)
            if target.chunks is None:
                future = pool.submit(_extract_whole, target, path, fd, archive)
                units = [_Unit(target, future)]
            else:
                out_fd = os.open(path, _OPEN_NEW, 0o666)
                open_fds[id(target)] = out_fd
                crcs[id(target)] = 0
                os.ftruncate(out_fd, target.info.file_size)
                count = len(target.chunks)
                units = [
                    _Unit(target, pool.submit(_extract_piece, target, piece, fd, out_fd), i, count)
                    for i, piece in enumerate(target.chunks)
                ]
            for unit in units:
                pending.append(unit)
                while len(pending) >= max_in_flight:
                    _finish(pending.popleft(), open_fds, crcs)
        while pending:
            _finish(pending.popleft(), open_fds, crcs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for out_fd in open_fds.values():
            os.close(out_fd)


def _parents(relpath: str) -> Iterator[str]:
    parts = relpath.split("/")
    for depth in range(1, len(parts)):
        yield "/".join(parts[:depth])


def _finish(unit: _Unit, open_fds: dict[int, int], crcs: dict[int, int]) -> None:
    crc, length = unit.future.result()
    if unit.count == 1 and unit.target.chunks is None:
        return  # checked by the worker
    key = id(unit.target)
    crcs[key] = crc32_combine(crcs[key], crc, length)
    if unit.index < unit.count - 1:
        return
    out_fd = open_fds.pop(key)
    try:
        _check_crc(unit.target, crcs.pop(key))
        if unit.target.executable:
            _make_executable(out_fd)
    finally:
        os.close(out_fd)


def _check_crc(target: _Target, crc: int) -> None:
    if crc != target.info.CRC:
        raise ArchiveError(
            f"entry {target.info.orig_filename!r}: CRC-32 mismatch (archive says "
            f"{target.info.CRC:08x}, data gives {crc:08x}); the archive is corrupt"
        )


def _make_executable(fd: int) -> None:
    # Like chmod +x under the umask: execute wherever read is allowed.
    mode = os.fstat(fd).st_mode & 0o777
    os.fchmod(fd, mode | ((mode & 0o444) >> 2))


def _corrupt(target: _Target, why: str) -> ArchiveError:
    return ArchiveError(f"entry {target.info.orig_filename!r}: {why}; the archive is corrupt")


_buffers = _Buffers()


def _extract_piece(
    target: _Target, piece: tuple[int, int, int, int], fd: int, out_fd: int
) -> tuple[int, int]:
    data_offset, length, raw_offset, raw_length = piece
    if target.info.compress_type == zipfile.ZIP_STORED:
        crc = _copy_range(target, fd, data_offset, length, out_fd, raw_offset)
    else:
        final = raw_offset + raw_length == target.info.file_size
        crc = _inflate_range(
            target, fd, data_offset, length, out_fd, raw_offset, raw_length, final=final
        )
    return crc, raw_length


def _extract_whole(
    target: _Target, path: str, fd: int, archive: zipfile.ZipFile
) -> tuple[int, int]:
    info = target.info
    out_fd = os.open(path, _OPEN_NEW, 0o666)
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            crc = _copy_range(target, fd, target.data_offset, info.file_size, out_fd, 0)
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            crc = _inflate_range(
                target, fd, target.data_offset, info.compress_size, out_fd, 0, info.file_size
            )
        else:
            crc = _copy_with_zipfile(target, archive, out_fd)
        _check_crc(target, crc)
        if target.executable:
            _make_executable(out_fd)
    finally:
        os.close(out_fd)
    return crc, info.file_size


def _copy_range(
    target: _Target, fd: int, offset: int, length: int, out_fd: int, out_offset: int
) -> int:
    buffer = _buffers.get(_READ_SIZE)
    crc = 0
    for position in range(0, length, _READ_SIZE):
        wanted = min(_READ_SIZE, length - position)
        data = _read_into(fd, buffer, wanted, offset + position)
        if len(data) != wanted:
            raise _corrupt(target, "the archive ends inside its data")
        _spend(target, wanted)
        crc = zlib.crc32(data, crc)
        _pwrite_all(out_fd, data, out_offset + position)
    return crc


def _spend(target: _Target, count: int) -> None:
    if target.budget is not None:
        target.budget.spend(count)


def _inflate_range(
    target: _Target,
    fd: int,
    offset: int,
    length: int,
    out_fd: int,
    out_offset: int,
    raw_length: int,
    *,
    final: bool = True,
) -> int:
    """Inflate ``length`` compressed bytes into exactly ``raw_length`` bytes; return their CRC.

    A whole entry ends in deflate's final block; a chunk of ours that is not the last ends in a sync
    flush instead (``final=False``). Output comes in small pieces, so a bomb costs no memory: it is
    refused the moment it inflates past ``raw_length``.
    """
    inflater = zlib.decompressobj(-15)
    buffer = _buffers.get(_READ_SIZE)
    crc = 0
    produced = 0
    position = 0
    while position < length and not inflater.eof:
        wanted = min(_READ_SIZE, length - position)
        data = _read_into(fd, buffer, wanted, offset + position)
        if len(data) != wanted:
            raise _corrupt(target, "the archive ends inside its data")
        position += wanted
        for start in range(0, wanted, _FEED):
            pending: bytes | memoryview = data[start : start + _FEED]
            while True:
                out = inflater.decompress(pending, _FEED)
                if produced + len(out) > raw_length:
                    raise _corrupt(target, f"it inflates to more than the {raw_length} declared")
                _spend(target, len(out))
                crc = zlib.crc32(out, crc)
                _pwrite_all(out_fd, out, out_offset + produced)
                produced += len(out)
                pending = inflater.unconsumed_tail
                # Output short of the limit means zlib holds nothing back: on to more input.
                if inflater.eof or (not pending and len(out) < _FEED):
                    break
            if inflater.eof:
                break
    if final and not inflater.eof:
        raise _corrupt(target, "its deflate stream is truncated")
    if not final and inflater.eof:
        raise _corrupt(target, "a chunk ends its deflate stream early")
    if produced != raw_length:
        raise _corrupt(target, f"it inflates to {produced} bytes, not the {raw_length} declared")
    return crc


def _copy_with_zipfile(target: _Target, archive: zipfile.ZipFile, out_fd: int) -> int:
    """bzip2 and LZMA entries: zipfile inflates them and checks their size and CRC itself."""
    crc = 0
    written = 0
    try:
        with archive.open(target.info) as member:
            while data := member.read(_READ_SIZE):
                _spend(target, len(data))
                crc = zlib.crc32(data, crc)
                _pwrite_all(out_fd, data, written)
                written += len(data)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise _corrupt(target, str(exc) or "it ends early") from None
    if written != target.info.file_size:
        raise _corrupt(
            target, f"it holds {written} bytes, not the {target.info.file_size} declared"
        )
    return crc
