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
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from bedrock.models.archive.records import (
    CENTRAL,
    CENTRAL_SIG,
    DIGITAL_SIGNATURE_SIG,
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

_EXTRA_ZIP64 = 0x0001
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
    directory = tail.get(directory_start, directory_size, "the central directory")
    return _parse_directory(directory, directory_start, shift, max_entries)


class _Tail:
    """The archive's last bytes, read once; reads elsewhere go to storage."""

    def __init__(self, read_range: ReadRange, start: int, length: int) -> None:
        self.read_range = read_range
        self.start = start
        self.data = _read_exact(read_range, start, length, "the end of the archive")

    def get(self, offset: int, length: int, what: str) -> bytes:
        begin = offset - self.start
        if begin >= 0 and begin + length <= len(self.data):
            return self.data[begin : begin + length]
        return _read_exact(self.read_range, offset, length, what)


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


def _parse_directory(
    directory: bytes, directory_start: int, shift: int, max_entries: int
) -> list[Entry]:
    entries: list[Entry] = []
    position = 0
    while position < len(directory):
        where = f"central directory record {len(entries) + 1} (byte {directory_start + position:,})"
        if _signature(directory[position : position + 4]) == DIGITAL_SIGNATURE_SIG:
            break  # the optional signature record that may close the central directory
        if position + CENTRAL.size > len(directory):
            raise BrowseError(f"{where}: the central directory ends mid-record; it is corrupt")
        fields = CENTRAL.unpack_from(directory, position)
        if fields[0] != CENTRAL_SIG:
            raise BrowseError(f"{where}: bad signature; the central directory is corrupt")
        if len(entries) == max_entries:
            raise BrowseError(
                f"the archive has more than the {max_entries:,} entries that can be listed here; "
                "download it to see them all"
            )
        name_length, extra_length, comment_length = fields[10], fields[11], fields[12]
        name_start = position + CENTRAL.size
        extra_start = name_start + name_length
        position = extra_start + extra_length + comment_length
        if position > len(directory):
            raise BrowseError(f"{where}: the record runs past the central directory; it is corrupt")
        raw_name = bytes(directory[name_start:extra_start])
        extras = _extra_fields(bytes(directory[extra_start : extra_start + extra_length]))
        entries.append(_entry(fields, raw_name, extras, directory_start, shift))
    return entries


def _entry(
    fields: tuple, raw_name: bytes, extras: dict[int, bytes], directory_start: int, shift: int
) -> Entry:
    (_, _, _, flags, method, dos_time, dos_date, crc, compressed, size) = fields[:10]
    header_offset = fields[16]
    name = _decode_name(raw_name, flags, extras.get(_EXTRA_UNICODE_PATH))
    # ZIP64 values are present only for the fields that overflowed, in this order (APPNOTE 4.5.3).
    wanted = [size == MAX32, compressed == MAX32, header_offset == MAX32]
    if any(wanted):
        zip64 = extras.get(_EXTRA_ZIP64, b"")
        values = iter(struct.unpack_from(f"<{len(zip64) // 8}Q", zip64))
        try:
            if wanted[0]:
                size = next(values)
            if wanted[1]:
                compressed = next(values)
            if wanted[2]:
                header_offset = next(values)
        except StopIteration:
            raise BrowseError(
                f"entry {name!r}: its sizes or offset overflow 32 bits, but its ZIP64 extra field "
                "is missing or too short; the archive is corrupt"
            ) from None
    header_offset += shift
    if header_offset + LOCAL.size + compressed > directory_start:
        raise BrowseError(
            f"entry {name!r}: its local header at byte {header_offset:,} and {compressed:,} "
            f"bytes of data would run into the central directory at byte {directory_start:,}; "
            "the archive is corrupt"
        )
    return Entry(
        name=name,
        size=size,
        compressed_size=compressed,
        method=method,
        crc32=crc,
        header_offset=header_offset,
        is_dir=name.endswith("/"),
        modified=_timestamp(extras.get(_EXTRA_TIMESTAMP)) or _dos_datetime(dos_date, dos_time),
    )


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


def _dos_datetime(dos_date: int, dos_time: int) -> datetime | None:
    try:
        return datetime(
            (dos_date >> 9) + 1980,
            (dos_date >> 5) & 0xF,
            dos_date & 0x1F,
            dos_time >> 11,
            (dos_time >> 5) & 0x3F,
            (dos_time & 0x1F) * 2,
            tzinfo=UTC,
        )
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
