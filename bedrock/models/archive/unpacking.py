"""Unpack a ZIP archive into a directory, refusing before it writes anything what could escape it.

:func:`unpack` refuses every entry that could land outside the destination or be ambiguous:
absolute paths, drive letters, ``..``, backslashes, symlink and other special entries, duplicate
names, and local headers that disagree with the central directory or overlap each other. Every byte
it writes is checked against the entry's declared size and CRC-32; on any failure the destination is
left as it was found (empty, or absent). The archive is held to
:class:`~bedrock.models.archivelimits.ArchiveLimits` (total size, entries, compression ratio,
depth) before it writes, where the central directory tells, and while it writes. Big entries of
Bedrock's own archives are inflated in parallel, chunk by chunk, by the index packing records; any
other tool's archive is inflated entry by entry, still in parallel across entries.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import stat
import struct
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bedrock.filetrees import remove_tree
from bedrock.models.archive.codec import INFLATE_ERRORS, crc32, raw_inflater
from bedrock.models.archive.errors import (
    ArchiveError,
    ArchiveLimitError,
    UnsafeArchiveError,
)
from bedrock.models.archive.fileio import (
    FEED,
    READ_SIZE,
    Buffers,
    default_workers,
    pread_exact,
    pwrite_all,
    read_into,
)
from bedrock.models.archive.records import (
    CHUNK_INDEX_ID,
    FLAG_ENCRYPTED,
    FLAG_UTF8,
    LOCAL,
    LOCAL_SIG,
    crc32_combine,
)
from bedrock.models.archivelimits import ArchiveLimits

_DRIVE = re.compile(r"^[A-Za-z]:")

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
    n_workers = default_workers(workers)
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
            while data := source.read(READ_SIZE):
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
    if info.flag_bits & FLAG_ENCRYPTED:
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
    header = pread_exact(fd, LOCAL.size, info.header_offset, what)
    fields = LOCAL.unpack(header)
    if fields[0] != LOCAL_SIG:
        raise ArchiveError(f"{what} is missing or corrupt (bad signature)")
    name_length, extra_length = fields[9], fields[10]
    local_name = pread_exact(fd, name_length, info.header_offset + LOCAL.size, what)
    encoding = "utf-8" if info.flag_bits & FLAG_UTF8 else "cp437"
    if local_name != raw_name.encode(encoding, errors="surrogateescape"):
        # Tools disagree on which of the two names to trust; refuse rather than guess.
        raise UnsafeArchiveError(
            f"entry {raw_name!r}: its local header names it {local_name!r} instead"
        )
    return info.header_offset + LOCAL.size + name_length + extra_length


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
        if kind == CHUNK_INDEX_ID and len(body) >= 8 and len(body) % 4 == 0:
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


_buffers = Buffers()


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
    buffer = _buffers.get(READ_SIZE)
    crc = 0
    for position in range(0, length, READ_SIZE):
        wanted = min(READ_SIZE, length - position)
        data = read_into(fd, buffer, wanted, offset + position)
        if len(data) != wanted:
            raise _corrupt(target, "the archive ends inside its data")
        _spend(target, wanted)
        crc = crc32(data, crc)
        pwrite_all(out_fd, data, out_offset + position)
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
    inflater = raw_inflater()
    buffer = _buffers.get(READ_SIZE)
    crc = 0
    produced = 0
    position = 0
    while position < length and not inflater.eof:
        wanted = min(READ_SIZE, length - position)
        data = read_into(fd, buffer, wanted, offset + position)
        if len(data) != wanted:
            raise _corrupt(target, "the archive ends inside its data")
        position += wanted
        for start in range(0, wanted, FEED):
            pending: bytes | memoryview = data[start : start + FEED]
            while True:
                try:
                    out = inflater.decompress(pending, FEED)
                except INFLATE_ERRORS as exc:
                    raise _corrupt(target, f"its deflate stream is invalid ({exc})") from None
                if produced + len(out) > raw_length:
                    raise _corrupt(target, f"it inflates to more than the {raw_length} declared")
                _spend(target, len(out))
                crc = crc32(out, crc)
                pwrite_all(out_fd, out, out_offset + produced)
                produced += len(out)
                pending = inflater.unconsumed_tail
                # Output short of the limit means the inflater holds nothing back: on to more input.
                if inflater.eof or (not pending and len(out) < FEED):
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
            while data := member.read(READ_SIZE):
                _spend(target, len(data))
                crc = crc32(data, crc)
                pwrite_all(out_fd, data, written)
                written += len(data)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise _corrupt(target, str(exc) or "it ends early") from None
    if written != target.info.file_size:
        raise _corrupt(
            target, f"it holds {written} bytes, not the {target.info.file_size} declared"
        )
    return crc
