"""Browse a ZIP archive kept in remote storage: list its entries and stream one, by byte ranges.

Object stores serve byte ranges, so showing what a multi-gigabyte model archive holds, or handing
out one file of it, needs no download of the whole archive:

* :func:`list_entries` reads the archive's tail (the end-of-central-directory record and the longest
  comment it can carry), the ZIP64 records when there are any and are not already in that tail, and
  then the central directory in one ranged read. Nothing of the entries' data is read.
* :func:`open_entry` reads the entry's local header and streams its data in ranged reads of
  ``chunk_size``, inflating as it goes. Memory stays flat whatever the entry's size and however well
  it compresses: no piece handed out is bigger than ``chunk_size``, and an entry that inflates past
  its declared size is stopped at once.

The caller binds a :data:`ReadRange` to its storage; this module imports nothing from Django and
keeps no state. Any standard ZIP can be listed (PKWARE APPNOTE 6.3): Bedrock's own archives
(:mod:`.packing`: data descriptors, ZIP64, a private extra field) and other tools',
with or without a comment, ZIP64 records or bytes prepended to the archive, with UTF-8 or CP437
names. Stored and deflated entries can be opened; other methods are refused by name.

Names are reported exactly as the archive has them, unsafe ones included (absolute, with ``..``,
with backslashes): they are for display and for :func:`find_entry`, never file system paths.
"""

from __future__ import annotations

import contextlib
import errno
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from bedrock.models.archive.records import (
    END,
    END64,
    END64_SIG,
    END_SIG_BYTES,
    FLAG_ENCRYPTED,
    FLAG_UTF8,
    LOCAL,
    LOCAL_SIG,
    LOCATOR64,
    LOCATOR64_SIG,
    MAX32,
    TAIL,
)

__all__ = [
    "MAX_DIRECTORY_SIZE",
    "BrowseError",
    "Entry",
    "EntryNotFoundError",
    "ReadRange",
    "find_entry",
    "list_entries",
    "open_entry",
]

ReadRange: TypeAlias = Callable[[int, int], bytes]
"""``read_range(start, length)``: exactly ``length`` bytes from ``start``, fewer only at the end."""


class BrowseError(Exception):
    """The archive cannot be listed, or an entry cannot be read; the message says why."""


class EntryNotFoundError(BrowseError, KeyError):
    """No entry has the name asked for. Also a ``KeyError``, for callers that treat it as one."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no entry named {name!r} in the archive; names are matched exactly, including case "
            "and the trailing '/' of a directory"
        )
        self.name = name

    def __str__(self) -> str:
        # KeyError's own __str__ would print the message as a quoted repr.
        return str(self.args[0])


# A central directory bigger than this is refused rather than fetched in one read: 64 MiB is some
# 500,000 entries, far beyond what anyone browses in a page.
MAX_DIRECTORY_SIZE = 64 << 20

_EXTRA_TIMESTAMP = 0x5455  # Info-ZIP extended timestamp: UTC modification time
_EXTRA_UNICODE_PATH = 0x7075  # Info-ZIP Unicode path: a UTF-8 name beside a CP437 one

_STORED = 0
_DEFLATED = 8
_METHODS = {
    0: "stored",
    1: "shrunk",
    6: "imploded",
    8: "deflated",
    9: "deflate64",
    12: "bzip2",
    14: "lzma",
    93: "zstd",
    95: "xz",
    96: "jpeg",
    97: "wavpack",
    98: "ppmd",
    99: "aes-encrypted",
}
# What open_entry reads past the name, hoping to fetch the local header and the first data in one
# request: the size of a ZIP64 extra field, which is what packing and zipfile put there.
_LOCAL_EXTRA_GUESS = 20


@dataclass(frozen=True)
class Entry:
    """One entry of an archive's central directory.

    ``name`` is exactly what the archive says, decoded as UTF-8 when the entry is flagged so and as
    CP437 otherwise (undecodable bytes become U+FFFD). ``header_offset`` is where the entry's local
    header starts, counted from the first byte of the stored object. ``modified`` is
    timezone-aware: exact when the archive carries Info-ZIP's extended timestamp, otherwise the
    MS-DOS date and time, which record no zone and are taken as UTC (what Bedrock's workers
    write); None when the archive records no valid date.
    """

    name: str
    size: int
    compressed_size: int
    method: int
    crc32: int
    header_offset: int
    is_dir: bool
    modified: datetime | None

    @property
    def compression(self) -> str:
        """The compression method's name: "stored", "deflated", "bzip2", … or "method N"."""
        return _METHODS.get(self.method, f"method {self.method}")


# ==================================================================================================
# Listing
# ==================================================================================================


def list_entries(
    read_range: ReadRange, archive_size: int, *, max_entries: int = 100_000
) -> list[Entry]:
    """The archive's entries in central-directory order, read from its tail and central directory.

    Raises :class:`BrowseError` when the object is not a ZIP archive, is truncated or corrupt, is
    split across several files, or has a central directory bigger than :data:`MAX_DIRECTORY_SIZE`
    or more than ``max_entries`` entries.
    """
    if archive_size < END.size:
        raise BrowseError(
            f"not a ZIP archive: it is {archive_size:,} bytes long, and even an empty ZIP archive "
            f"takes {END.size} bytes"
        )
    tail_start = max(0, archive_size - TAIL)
    tail = _Tail(read_range, tail_start, archive_size - tail_start)
    end_offset = tail.start + _find_end_record(tail.data)
    _, disk, directory_disk, _, count, directory_size, directory_offset, _ = END.unpack_from(
        tail.data, end_offset - tail.start
    )
    # The central directory ends where the end records begin: at the ZIP64 record when there is one.
    directory_end = end_offset
    disks = 1
    locator_offset = end_offset - LOCATOR64.size
    if locator_offset >= 0:
        locator = tail.get(
            locator_offset, LOCATOR64.size, "the ZIP64 end-of-central-directory locator"
        )
        if _signature(locator) == LOCATOR64_SIG:
            _, _, recorded_offset, disks = LOCATOR64.unpack(locator)
            directory_end, end64 = _read_end64(tail, locator_offset, recorded_offset)
            _, _, _, _, disk, directory_disk, _, count, directory_size, directory_offset = end64
    if disk or directory_disk or disks > 1:
        raise BrowseError(
            "the archive is split across several files (a spanned or multi-volume ZIP); join its "
            "parts into one archive to browse it"
        )
    if count > max_entries:
        raise BrowseError(
            f"the archive has {count:,} entries, more than the {max_entries:,} that can be "
            "listed here; download it to see them all"
        )
    if directory_size > MAX_DIRECTORY_SIZE:
        raise BrowseError(
            f"the archive's central directory takes {directory_size:,} bytes, more than the "
            f"{MAX_DIRECTORY_SIZE:,} read to list it; download the archive to see its entries"
        )
    directory_start = directory_end - directory_size
    if directory_start < directory_offset:
        raise BrowseError(
            f"the central directory should start at byte {directory_offset:,} and take "
            f"{directory_size:,} bytes, but the end records are at byte {directory_end:,}; the "
            "archive is truncated at its start or corrupt"
        )
    # More room than the end record says: bytes were prepended (a self-extracting stub, say), and
    # every offset the archive records is short by their length.
    shift = directory_start - directory_offset
    if directory_size == 0:
        return []
    infos = _read_directory(_RangedFile(tail, end_offset))
    if len(infos) > max_entries:
        raise BrowseError(
            f"the archive has more than the {max_entries:,} entries that can be listed here; "
            "download it to see them all"
        )
    # Each entry replaces its ZipInfo as it is made, so the listing never holds both in full.
    infos.reverse()
    entries = []
    while infos:
        entries.append(_entry(infos.pop(), directory_start, shift))
    return entries


class _Tail:
    """The archive's last bytes, read once; reads elsewhere go to storage.

    The ZIP64 records outside the tail are read twice, by the size check and then by zipfile: the
    records (never the central directory, read once) are kept so that storage serves them once.
    """

    def __init__(self, read_range: ReadRange, start: int, length: int) -> None:
        self.read_range = read_range
        self.start = start
        self.data = _read_exact(read_range, start, length, "the end of the archive")
        self._records: dict[tuple[int, int], bytes] = {}

    def get(self, offset: int, length: int, what: str) -> bytes:
        begin = offset - self.start
        if begin >= 0 and begin + length <= len(self.data):
            return self.data[begin : begin + length]
        if length > END64.size:
            return _read_exact(self.read_range, offset, length, what)
        if (offset, length) not in self._records:
            self._records[offset, length] = _read_exact(self.read_range, offset, length, what)
        return self._records[offset, length]


def _read_exact(read_range: ReadRange, start: int, length: int, what: str) -> bytes:
    data = read_range(start, length)
    if len(data) != length:
        raise BrowseError(
            f"{what}: expected {length:,} bytes at byte {start:,}, storage returned "
            f"{len(data):,}; the archive is truncated or shorter than its recorded size"
        )
    return data


def _signature(data: bytes) -> int:
    return int.from_bytes(data[:4], "little")


def _find_end_record(tail: bytes) -> int:
    """Where the end-of-central-directory record starts in ``tail``.

    Its signature may also occur inside the comment or the data, so the record whose comment ends
    exactly at the end of the archive wins; failing that, the last one whose comment fits (some
    tools leave bytes after the archive, and zipfile accepts that too).
    """
    fallback = None
    position = len(tail)
    while (position := tail.rfind(END_SIG_BYTES, 0, position)) >= 0:
        if position + END.size <= len(tail):
            comment_end = position + END.size + END.unpack_from(tail, position)[7]
            if comment_end == len(tail):
                return position
            if fallback is None and comment_end < len(tail):
                fallback = position
    if fallback is not None:
        return fallback
    raise BrowseError(
        f"not a ZIP archive: no end-of-central-directory record in the last {len(tail):,} bytes; "
        "the file is not a ZIP, or it is truncated"
    )


def _read_end64(tail: _Tail, locator_offset: int, recorded_offset: int) -> tuple[int, tuple]:
    """The ZIP64 end record's offset and fields.

    It normally sits right before its locator, which also holds up when bytes were prepended to the
    archive and the recorded offset is off by their length; the recorded offset is the fallback.
    """
    for offset in dict.fromkeys((locator_offset - END64.size, recorded_offset)):
        if offset < 0 or offset + END64.size > locator_offset:
            continue
        record = tail.get(offset, END64.size, "the ZIP64 end-of-central-directory record")
        if _signature(record) == END64_SIG:
            return offset, END64.unpack(record)
    raise BrowseError(
        "the ZIP64 end-of-central-directory record is missing where its locator points; the "
        "archive is truncated or corrupt"
    )


class _RangedFile:
    """What zipfile reads the central directory from: the archive up to its end record, by ranges.

    The end record found above is served without its comment, and the file ends with it: zipfile
    then takes that record (its own backward search would take a look-alike signature inside the
    comment) and reads the ZIP64 records and the central directory at their offsets, through the
    tail already read where it holds them and one ranged read where it does not.
    """

    def __init__(self, tail: _Tail, end_offset: int) -> None:
        self._tail = tail
        self._end = end_offset
        record = bytearray(tail.get(end_offset, END.size, "the end-of-central-directory record"))
        record[-2:] = b"\0\0"  # no comment
        self._record = bytes(record)
        self._size = end_offset + END.size
        self._position = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            # What a real file raises, and what zipfile expects of one too short for ZIP64 records.
            raise OSError(errno.EINVAL, "seek before the start of the archive")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        start = self._position
        stop = self._size if size is None or size < 0 else min(self._size, start + size)
        if stop <= start:
            return b""
        data = b""
        if start < self._end:
            data = self._tail.get(start, min(stop, self._end) - start, "the central directory")
        if stop > self._end:
            data += self._record[max(start, self._end) - self._end : stop - self._end]
        self._position = stop
        return data


def _read_directory(archive: _RangedFile) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(archive) as opened:
            opened.NameToInfo.clear()  # zipfile's index by name: only the list is needed
            return opened.filelist
    except UnicodeDecodeError:
        raise BrowseError(
            "an entry is flagged as named in UTF-8, but its name is not valid UTF-8; the "
            "archive is corrupt"
        ) from None
    except (zipfile.BadZipFile, NotImplementedError) as exc:
        raise BrowseError(
            f"the central directory is corrupt ({exc}); it cannot be listed"
        ) from None


def _entry(info: zipfile.ZipInfo, directory_start: int, shift: int) -> Entry:
    extras = _extra_fields(info.extra)
    name = _decode_name(_raw_name(info), info.flag_bits, extras.get(_EXTRA_UNICODE_PATH))
    # zipfile replaces a 32-bit placeholder with its ZIP64 value, and leaves it when there is none.
    if MAX32 in (info.file_size, info.compress_size, info.header_offset - shift):
        raise BrowseError(
            f"entry {name!r}: its sizes or offset overflow 32 bits, but its ZIP64 extra field "
            "is missing or too short; the archive is corrupt"
        )
    header_offset = info.header_offset
    compressed = info.compress_size
    if header_offset + LOCAL.size + compressed > directory_start:
        raise BrowseError(
            f"entry {name!r}: its local header at byte {header_offset:,} and {compressed:,} "
            f"bytes of data would run into the central directory at byte {directory_start:,}; "
            "the archive is corrupt"
        )
    return Entry(
        name=name,
        size=info.file_size,
        compressed_size=compressed,
        method=info.compress_type,
        crc32=info.CRC,
        header_offset=header_offset,
        is_dir=name.endswith("/"),
        modified=_timestamp(extras.get(_EXTRA_TIMESTAMP)) or _dos_datetime(info.date_time),
    )


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    # CP437 maps each of the 256 byte values to a character of its own: this undoes the decoding.
    return info.orig_filename.encode("utf-8" if info.flag_bits & FLAG_UTF8 else "cp437")


def _extra_fields(extra: bytes) -> dict[int, bytes]:
    """The extra fields by id; the first wins, a field cut short keeps what there is."""
    fields: dict[int, bytes] = {}
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        fields.setdefault(kind, extra[position + 4 : position + 4 + length])
        position += 4 + length
    return fields


def _decode_name(raw_name: bytes, flags: int, unicode_path: bytes | None) -> str:
    if flags & FLAG_UTF8:
        return raw_name.decode("utf-8", "replace")
    # Info-ZIP's Unicode path field counts only while the plain name is the one it was made for.
    if (
        unicode_path is not None
        and len(unicode_path) > 5
        and unicode_path[0] == 1
        and int.from_bytes(unicode_path[1:5], "little") == zlib.crc32(raw_name)
    ):
        with contextlib.suppress(UnicodeDecodeError):
            return unicode_path[5:].decode("utf-8")
    return raw_name.decode("cp437")


def _timestamp(field: bytes | None) -> datetime | None:
    # Flags byte, then the modification time (bit 0) as seconds since the epoch, UTC.
    if field is None or len(field) < 5 or not field[0] & 1:
        return None
    return datetime.fromtimestamp(int.from_bytes(field[1:5], "little"), UTC)


def _dos_datetime(date_time: tuple[int, int, int, int, int, int]) -> datetime | None:
    try:
        return datetime(*date_time, tzinfo=UTC)
    except ValueError:  # month 0 and the like: no date recorded
        return None


# ==================================================================================================
# Finding and opening
# ==================================================================================================


def find_entry(entries: Iterable[Entry], name: str) -> Entry:
    """The first entry named exactly ``name``; :class:`EntryNotFoundError` when there is none."""
    for entry in entries:
        if entry.name == name:
            return entry
    raise EntryNotFoundError(name)


def open_entry(
    read_range: ReadRange, entry: Entry, *, chunk_size: int = 1 << 20
) -> Iterator[bytes]:
    """The entry's uncompressed content, as pieces of at most ``chunk_size`` bytes.

    The local header is read when this is called, so a directory, an encrypted entry, a
    compression method other than stored or deflated, or a missing header raise
    :class:`BrowseError` here, before any content is produced. The data is then read in ranged
    reads of ``chunk_size`` as the iterator is consumed; the size and CRC-32 are checked as it
    goes, and a mismatch raises :class:`BrowseError` from the iterator, after the pieces read so
    far (never more than the declared size) were handed out.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if entry.is_dir:
        raise BrowseError(f"entry {entry.name!r} is a directory; it has no content to open")
    if entry.method not in (_STORED, _DEFLATED):
        raise BrowseError(
            f"entry {entry.name!r} is compressed with {entry.compression} (method "
            f"{entry.method}); only stored and deflated entries can be opened here, so download "
            f"the whole archive and extract it with a tool that reads {entry.compression}"
        )
    if entry.method == _STORED and entry.compressed_size != entry.size:
        raise _corrupt(
            entry, f"it is stored, yet {entry.compressed_size:,} bytes hold {entry.size:,}"
        )
    # One request for the header and the first data, when the local extra field is no bigger than
    # guessed; the name is never longer in UTF-8 than the bytes it was decoded from.
    guess = LOCAL.size + len(entry.name.encode("utf-8")) + _LOCAL_EXTRA_GUESS
    head = read_range(entry.header_offset, guess + min(entry.compressed_size, chunk_size))
    if len(head) < LOCAL.size:
        raise BrowseError(
            f"entry {entry.name!r}: the archive ends before its local header at byte "
            f"{entry.header_offset:,}; it is truncated"
        )
    signature, _, flags, method, _, _, _, _, _, name_length, extra_length = LOCAL.unpack_from(head)
    if signature != LOCAL_SIG:
        raise _corrupt(
            entry, f"there is no local header at byte {entry.header_offset:,}, where it should be"
        )
    if flags & FLAG_ENCRYPTED:
        raise BrowseError(
            f"entry {entry.name!r} is encrypted; download the archive and extract it with the "
            "password"
        )
    if method != entry.method:
        raise _corrupt(
            entry,
            f"its local header says compression method {method}, the central directory "
            f"{entry.method}",
        )
    skip = LOCAL.size + name_length + extra_length
    first = head[skip : skip + entry.compressed_size]
    data = _read_data(read_range, entry, entry.header_offset + skip, first, chunk_size)
    return _checked(entry, data if method == _STORED else _inflate(entry, data, chunk_size))


def _read_data(
    read_range: ReadRange, entry: Entry, start: int, first: bytes, chunk_size: int
) -> Iterator[bytes]:
    """The entry's compressed bytes: what the header read already holds, then ranged reads."""
    if first:
        yield first
    position = len(first)
    while position < entry.compressed_size:
        length = min(chunk_size, entry.compressed_size - position)
        data = read_range(start + position, length)
        if len(data) != length:
            raise BrowseError(
                f"entry {entry.name!r}: the archive ends inside its data, at byte "
                f"{start + position + len(data):,} of the {start + entry.compressed_size:,} "
                "needed; it is truncated"
            )
        position += length
        yield data


def _inflate(entry: Entry, compressed: Iterator[bytes], chunk_size: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(-15)
    for data in compressed:
        pending = data
        while not inflater.eof:
            try:
                out = inflater.decompress(pending, chunk_size)
            except zlib.error as exc:
                raise _corrupt(entry, f"its deflate data is invalid ({exc})") from None
            if out:
                yield out
            pending = inflater.unconsumed_tail
            # Output short of the limit means zlib holds nothing back: on to more input.
            if not pending and len(out) < chunk_size:
                break
        if inflater.eof:
            return
    raise _corrupt(entry, "its deflate stream ends before its last block")


def _checked(entry: Entry, pieces: Iterator[bytes]) -> Iterator[bytes]:
    crc = 0
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > entry.size:
            raise _corrupt(entry, f"it holds more than the {entry.size:,} bytes declared")
        crc = zlib.crc32(piece, crc)
        yield piece
    if size != entry.size:
        raise _corrupt(entry, f"it holds {size:,} bytes, not the {entry.size:,} declared")
    if crc != entry.crc32:
        raise _corrupt(
            entry,
            f"CRC-32 mismatch (the archive says {entry.crc32:08x}, the data gives {crc:08x})",
        )


def _corrupt(entry: Entry, why: str) -> BrowseError:
    return BrowseError(f"entry {entry.name!r}: {why}; the archive is corrupt")
