"""Browsing archives by byte ranges: listings and contents match zipfile's, and reads stay small."""

from __future__ import annotations

import io
import os
import random
import struct
import tracemalloc
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bedrock.models.archive import (
    BrowseError,
    Entry,
    EntryNotFoundError,
    browse,
    find_entry,
    list_entries,
    open_entry,
    packing,
    records,
)


class CountingReader:
    """A ``ReadRange`` over a local file that records every read, as object storage bills them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.reads: list[tuple[int, int]] = []  # (start, bytes returned)

    def __call__(self, start: int, length: int) -> bytes:
        # An HTTP range cannot be empty or start before the object.
        assert start >= 0 and length > 0, (start, length)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, start)
        finally:
            os.close(fd)
        self.reads.append((start, len(data)))
        return data

    @property
    def bytes_read(self) -> int:
        return sum(length for _, length in self.reads)


def text_bytes(size: int, seed: int = 1) -> bytes:
    """CSV-like text that compresses like real data, not one repeated line."""
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnop", k=rng.randint(2, 9))) for _ in range(500)]
    lines = []
    total = 0
    while total < size:
        line = f"{len(lines)},{rng.choice(words)} {rng.choice(words)},{rng.random():.3f}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def random_bytes(size: int, seed: int = 2) -> bytes:
    return random.Random(seed).randbytes(size)


class NonSeekable(io.RawIOBase):
    """A write-only sink that, like a pipe into object storage, cannot seek."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def reader_for(tmp_path: Path, data: bytes, name: str = "archive.zip") -> CountingReader:
    path = tmp_path / name
    path.write_bytes(data)
    return CountingReader(path)


def zipfile_bytes(
    members: list[tuple[str | zipfile.ZipInfo, bytes]],
    compression: int = zipfile.ZIP_DEFLATED,
    comment: bytes = b"",
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
        archive.comment = comment
    return out.getvalue()


def read_all(reader: CountingReader, entry: Entry, **kwargs) -> bytes:
    return b"".join(open_entry(reader, entry, **kwargs))


def central_record_offset(data: bytes, number: int = 0) -> int:
    position = zipfile.ZipFile(io.BytesIO(data)).start_dir
    for _ in range(number):
        position = data.index(b"PK\x01\x02", position + 4)
    assert data[position : position + 4] == b"PK\x01\x02"
    return position


def assert_agrees_with_zipfile(reader: CountingReader, entries: list[Entry]) -> None:
    """Every field and every byte of content as Python's zipfile reads the same archive."""
    with zipfile.ZipFile(reader.path) as archive:
        infos = archive.infolist()
        assert [
            (e.name, e.size, e.compressed_size, e.method, e.crc32, e.header_offset, e.is_dir)
            for e in entries
        ] == [
            (
                i.filename,
                i.file_size,
                i.compress_size,
                i.compress_type,
                i.CRC,
                i.header_offset,
                i.is_dir(),
            )
            for i in infos
        ]
        assert [e.modified for e in entries] == [datetime(*i.date_time, tzinfo=UTC) for i in infos]
        for entry, info in zip(entries, infos, strict=True):
            if not entry.is_dir:
                assert read_all(reader, entry) == archive.read(info), entry.name


# --- Bedrock's own archives -----------------------------------------------------------------------


BIG_TEXT = 2 * packing.CHUNK_SIZE + 4321  # deflated in chunks, with the private chunk index


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artefact")
    (root / "model").mkdir()
    (root / "model" / "weights.bin").write_bytes(random_bytes(300_000))
    (root / "model" / "vocab.txt").write_bytes(text_bytes(200_000, seed=3))
    (root / "data").mkdir()
    (root / "data" / "features.csv").write_bytes(text_bytes(BIG_TEXT))
    (root / "data" / "empty.txt").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "ünïcødé ✓").mkdir()
    (root / "ünïcødé ✓" / "名前.json").write_text('{"ok": true}\n' * 50, encoding="utf-8")
    return root


def packed(directory: Path, tmp_path: Path) -> CountingReader:
    sink = NonSeekable()
    packing.pack(directory, sink)
    return reader_for(tmp_path, bytes(sink.data), "packed.zip")


def test_our_archives_list_and_open_as_zipfile_reads_them(artefact: Path, tmp_path: Path):
    reader = packed(artefact, tmp_path)
    entries = list_entries(reader, reader.size)
    assert_agrees_with_zipfile(reader, entries)
    by_name = {e.name: e for e in entries}
    assert by_name["model/weights.bin"].compression == "stored"
    assert by_name["model/vocab.txt"].compression == "deflated"
    assert by_name["empty-dir/"].is_dir
    assert read_all(reader, by_name["ünïcødé ✓/名前.json"]) == ('{"ok": true}\n' * 50).encode()
    assert read_all(reader, by_name["data/features.csv"]) == text_bytes(BIG_TEXT)
    with zipfile.ZipFile(reader.path) as archive:
        # The listing above really crossed packing's private extra field and data descriptors.
        info = archive.getinfo("data/features.csv")
        assert struct.pack("<H", records.CHUNK_INDEX_ID) in info.extra
        assert info.flag_bits & 0x08


def test_our_zip64_archives_list_and_open(
    artefact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The real limits need 4 GiB; lowered, packing writes every ZIP64 record for small files.
    monkeypatch.setattr(packing, "_ZIP64_LIMIT", 100_000)
    monkeypatch.setattr(packing, "_ZIP64_COUNT_LIMIT", 4)
    reader = packed(artefact, tmp_path)
    assert struct.pack("<I", records.END64_SIG) in reader.path.read_bytes()
    entries = list_entries(reader, reader.size)
    assert_agrees_with_zipfile(reader, entries)
    assert max(e.header_offset for e in entries) > 100_000


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """About 50 MB of incompressible files, packed by packing."""
    root = tmp_path_factory.mktemp("big")
    files = {f"shard-{n:02}.bin": random_bytes(2 << 20, seed=n) for n in range(24)}
    files["notes.txt"] = text_bytes(500_000)
    for name, data in files.items():
        (root / name).write_bytes(data)
    path = tmp_path_factory.mktemp("big-zip") / "big.zip"
    with path.open("wb") as out:
        packing.pack(root, out)
    return path, files


def test_listing_a_50_mb_archive_reads_only_its_tail_and_central_directory(big_archive):
    path, files = big_archive
    reader = CountingReader(path)
    assert reader.size > 50_000_000
    entries = list_entries(reader, reader.size)
    assert sorted(e.name for e in entries) == sorted(files)
    assert reader.bytes_read < 1 << 20
    assert len(reader.reads) <= 2
    with zipfile.ZipFile(path) as archive:
        directory_start = archive.start_dir
    tail_start = reader.size - (65_536 + 22)
    assert all(start >= min(directory_start, tail_start) for start, _ in reader.reads)


def test_opening_one_entry_reads_about_its_compressed_size_in_chunks(big_archive):
    path, files = big_archive
    reader = CountingReader(path)
    entry = find_entry(list_entries(reader, reader.size), "shard-07.bin")
    reader.reads.clear()
    chunk = 256 << 10
    assert read_all(reader, entry, chunk_size=chunk) == files["shard-07.bin"]
    header = 30 + len(entry.name) + 20
    assert entry.compressed_size <= reader.bytes_read <= entry.compressed_size + header
    assert all(length <= chunk + header for _, length in reader.reads)
    assert len(reader.reads) <= entry.compressed_size // chunk + 2
    end = entry.header_offset + header + entry.compressed_size
    assert all(entry.header_offset <= start < end for start, _ in reader.reads)


def test_a_deflated_entry_streams_in_bounded_pieces_whatever_its_ratio(tmp_path: Path):
    # 64 MiB of zeros deflate to some 64 KiB: inflated in one go, they would all be in memory.
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.bin", "w") as member,
    ):
        for _ in range(64):
            member.write(bytes(1 << 20))
    reader = reader_for(tmp_path, out.getvalue())
    (entry,) = list_entries(reader, reader.size)
    assert entry.compressed_size < 1 << 20
    total = crc = biggest = 0
    tracemalloc.start()
    try:
        for piece in open_entry(reader, entry, chunk_size=1 << 20):
            total += len(piece)
            biggest = max(biggest, len(piece))
            crc = zlib.crc32(piece, crc)
            del piece
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (total, crc) == (64 << 20, zlib.crc32(bytes(64 << 20)))
    assert biggest <= 1 << 20
    assert peak < 8 << 20


# --- Archives made by Python's zipfile ------------------------------------------------------------


MEMBERS: list[tuple[str | zipfile.ZipInfo, bytes]] = [
    ("README.md", b"# model\n" * 100),
    ("weights/", b""),
    ("weights/layer-0.bin", random_bytes(70_000)),
    ("weights/layer-1.csv", text_bytes(150_000)),
    ("données/été.txt", "accentué\n".encode() * 10),
    ("模型/配置.json", b'{"layers": 2}'),
    ("empty.txt", b""),
]


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
def test_zipfile_archives_list_and_open(tmp_path: Path, compression: int):
    reader = reader_for(tmp_path, zipfile_bytes(MEMBERS, compression))
    entries = list_entries(reader, reader.size)
    assert [e.name for e in entries] == [name for name, _ in MEMBERS]
    assert {e.compression for e in entries if not e.is_dir and e.size} == {
        "stored" if compression == zipfile.ZIP_STORED else "deflated"
    }
    assert_agrees_with_zipfile(reader, entries)


def test_zipfile_archives_with_data_descriptors_list_and_open(tmp_path: Path):
    sink = NonSeekable()  # zipfile writes data descriptors when it cannot seek back
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in MEMBERS:
            with archive.open(str(name), "w") as member:
                member.write(data)
    reader = reader_for(tmp_path, bytes(sink.data))
    entries = list_entries(reader, reader.size)
    with zipfile.ZipFile(reader.path) as archive:
        assert all(info.flag_bits & 0x08 for info in archive.infolist())
    assert_agrees_with_zipfile(reader, entries)


def test_an_empty_archive_lists_nothing_after_one_read(tmp_path: Path):
    reader = reader_for(tmp_path, zipfile_bytes([]))
    assert reader.size == 22
    assert list_entries(reader, reader.size) == []
    assert reader.reads == [(0, 22)]


def test_a_comment_of_the_longest_length_is_skipped(tmp_path: Path):
    comment = b"x" * 65_535
    reader = reader_for(tmp_path, zipfile_bytes(MEMBERS, comment=comment))
    entries = list_entries(reader, reader.size)
    assert_agrees_with_zipfile(reader, entries)


def test_an_end_record_signature_inside_the_comment_is_not_taken_for_the_record(tmp_path: Path):
    # A look-alike record whose "comment" would not end where the archive does.
    fake = b"PK\x05\x06" + bytes(16) + struct.pack("<H", 3)
    data = zipfile_bytes([("a.txt", b"alpha")], comment=b"see " + fake + b" and more text")
    reader = reader_for(tmp_path, data)
    (entry,) = list_entries(reader, reader.size)
    assert (entry.name, read_all(reader, entry)) == ("a.txt", b"alpha")


def test_bytes_prepended_to_an_archive_shift_every_offset(tmp_path: Path):
    stub = b"#!/bin/sh\necho a self-extracting stub\nexit 0\n" * 20
    reader = reader_for(tmp_path, stub + zipfile_bytes(MEMBERS))
    entries = list_entries(reader, reader.size)
    assert entries[0].header_offset == len(stub)
    assert_agrees_with_zipfile(reader, entries)


def test_a_zip64_local_header_is_read_although_the_central_directory_has_none(tmp_path: Path):
    out = io.BytesIO()
    content = text_bytes(100_000)
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("big.csv", "w", force_zip64=True) as member,
    ):
        member.write(content)
    reader = reader_for(tmp_path, out.getvalue())
    (entry,) = list_entries(reader, reader.size)
    local_extra_length = struct.unpack_from("<H", out.getvalue(), 28)[0]
    assert local_extra_length == 20
    assert read_all(reader, entry) == content
    assert_agrees_with_zipfile(reader, [entry])


def zip64_zipfile_bytes(monkeypatch: pytest.MonkeyPatch, comment: bytes = b"") -> bytes:
    """An archive with ZIP64 fields in every central record and ZIP64 end records."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 10)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    data = bytearray(zipfile_bytes(MEMBERS, comment=comment))
    monkeypatch.undo()
    # Real ZIP64 archives leave only placeholders in the classic end record.
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HHII", data, end + 8, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    assert b"PK\x06\x06" in data
    assert b"\xff\xff\xff\xff" in data[zipfile.ZipFile(io.BytesIO(data)).start_dir :]
    return bytes(data)


def test_zip64_end_records_and_extra_fields_are_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    reader = reader_for(tmp_path, zip64_zipfile_bytes(monkeypatch))
    entries = list_entries(reader, reader.size)
    assert len(entries) == len(MEMBERS)
    assert_agrees_with_zipfile(reader, entries)


def test_zip64_records_before_the_longest_comment_are_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The tail read then holds the end record but not the ZIP64 locator before it.
    reader = reader_for(tmp_path, zip64_zipfile_bytes(monkeypatch, comment=b"c" * 65_535))
    entries = list_entries(reader, reader.size)
    assert len(reader.reads) <= 4
    assert_agrees_with_zipfile(reader, entries)


# --- Names and dates ------------------------------------------------------------------------------


def test_names_without_the_utf8_flag_are_read_as_cp437(tmp_path: Path):
    data = zipfile_bytes([("caf?.txt", b"coffee")]).replace(b"caf?.txt", b"caf\x82.txt")
    reader = reader_for(tmp_path, data)
    (entry,) = list_entries(reader, reader.size)
    assert entry.name == "café.txt"
    assert read_all(reader, entry) == b"coffee"


def test_an_info_zip_unicode_path_field_names_the_entry(tmp_path: Path):
    info = zipfile.ZipInfo("cafe.txt")
    info.extra = struct.pack(
        "<HHBI", 0x7075, 5 + len("café.txt".encode()), 1, zlib.crc32(b"cafe.txt")
    )
    info.extra += "café.txt".encode()
    stale = zipfile.ZipInfo("tea.txt")  # made for another name: ignored
    stale.extra = struct.pack("<HHBI", 0x7075, 5 + 3, 1, zlib.crc32(b"other")) + b"xyz"
    reader = reader_for(tmp_path, zipfile_bytes([(info, b"coffee"), (stale, b"tea")]))
    assert [e.name for e in list_entries(reader, reader.size)] == ["café.txt", "tea.txt"]


def test_unsafe_names_are_listed_as_they_are_and_found_only_exactly(tmp_path: Path):
    names = ["../escape.txt", "/etc/passwd", "dir\\windows.txt", "./dot.txt", "A.txt"]
    reader = reader_for(tmp_path, zipfile_bytes([(name, name.encode()) for name in names]))
    entries = list_entries(reader, reader.size)
    assert [e.name for e in entries] == names
    for name in names:
        assert read_all(reader, find_entry(entries, name)) == name.encode()
    for missing in ["escape.txt", "etc/passwd", "dot.txt", "a.txt", "A.txt/"]:
        with pytest.raises(EntryNotFoundError) as caught:
            find_entry(entries, missing)
        assert str(caught.value).startswith(f"no entry named {missing!r} in the archive")


def test_a_missing_entry_is_both_a_key_error_and_a_browse_error(tmp_path: Path):
    reader = reader_for(tmp_path, zipfile_bytes(MEMBERS))
    entries = list_entries(reader, reader.size)
    assert find_entry(entries, "weights/").is_dir
    with pytest.raises(KeyError):
        find_entry(entries, "weights")
    with pytest.raises(BrowseError, match="trailing '/'"):
        find_entry(entries, "nope.txt")


def test_modification_times_are_aware_and_prefer_the_extended_timestamp(tmp_path: Path):
    dos_only = zipfile.ZipInfo("dos.txt", date_time=(2024, 5, 6, 7, 8, 10))
    extended = zipfile.ZipInfo("ut.txt", date_time=(2001, 1, 1, 0, 0, 0))
    extended.extra = struct.pack("<HHBI", 0x5455, 5, 1, 1_700_000_000)
    undated = zipfile.ZipInfo("undated.txt")
    data = bytearray(zipfile_bytes([(dos_only, b"a"), (extended, b"b"), (undated, b"c")]))
    struct.pack_into("<HH", data, central_record_offset(bytes(data), 2) + 12, 0, 0)
    reader = reader_for(tmp_path, bytes(data))
    assert [e.modified for e in list_entries(reader, reader.size)] == [
        datetime(2024, 5, 6, 7, 8, 10, tzinfo=UTC),
        datetime.fromtimestamp(1_700_000_000, UTC),
        None,
    ]


# --- Refusals -------------------------------------------------------------------------------------


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path):
    reader = reader_for(tmp_path, random_bytes(100_000), "model.bin")
    with pytest.raises(
        BrowseError,
        match=r"^not a ZIP archive: no end-of-central-directory record in the last 65,558 bytes",
    ):
        list_entries(reader, reader.size)
    assert reader.reads == [(100_000 - 65_558, 65_558)]


@pytest.mark.parametrize("data", [b"", b"hello"], ids=["empty", "five-bytes"])
def test_a_file_too_short_to_be_a_zip_is_refused_without_reading(tmp_path: Path, data: bytes):
    reader = reader_for(tmp_path, data)
    with pytest.raises(BrowseError, match=f"not a ZIP archive: it is {len(data)} bytes long"):
        list_entries(reader, reader.size)
    assert reader.reads == []


def test_an_archive_cut_short_is_refused(tmp_path: Path):
    data = zipfile_bytes(MEMBERS, zipfile.ZIP_STORED)
    assert len(data) > 2 * 65_558
    reader = reader_for(tmp_path, data[: len(data) * 2 // 3])
    with pytest.raises(
        BrowseError, match=r"no end-of-central-directory record.*or it is truncated"
    ):
        list_entries(reader, reader.size)


def test_an_archive_missing_its_start_is_refused(tmp_path: Path):
    reader = reader_for(tmp_path, zipfile_bytes(MEMBERS)[1000:])
    with pytest.raises(BrowseError, match="truncated at its start or corrupt"):
        list_entries(reader, reader.size)


def test_storage_returning_less_than_its_recorded_size_is_reported(tmp_path: Path):
    reader = reader_for(tmp_path, zipfile_bytes(MEMBERS))
    with pytest.raises(BrowseError, match="shorter than its recorded size"):
        list_entries(reader, reader.size + 100)


def test_an_entry_whose_data_was_cut_off_is_refused_while_streaming(tmp_path: Path):
    data = zipfile_bytes(MEMBERS, zipfile.ZIP_STORED)
    entry = find_entry(list_entries(reader_for(tmp_path, data), len(data)), "weights/layer-1.csv")
    cut = reader_for(tmp_path, data[: entry.header_offset + 5000], "cut.zip")
    with pytest.raises(
        BrowseError, match=r"'weights/layer-1\.csv': the archive ends inside its data"
    ):
        read_all(cut, entry, chunk_size=1000)


def test_a_corrupted_byte_fails_the_crc_check(tmp_path: Path):
    content = text_bytes(50_000)
    data = bytearray(zipfile_bytes([("table.csv", content)], zipfile.ZIP_STORED))
    data[data.index(content) + 20_000] ^= 0x01
    reader = reader_for(tmp_path, bytes(data))
    (entry,) = list_entries(reader, reader.size)
    with pytest.raises(BrowseError, match=r"'table.csv': CRC-32 mismatch .*the archive is corrupt"):
        read_all(reader, entry)


def test_a_wrong_crc_in_the_central_directory_fails_a_deflated_entry(tmp_path: Path):
    data = bytearray(zipfile_bytes([("table.csv", text_bytes(50_000))]))
    record = central_record_offset(bytes(data))
    crc = struct.unpack_from("<I", data, record + 16)[0]
    struct.pack_into("<I", data, record + 16, crc ^ 1)
    reader = reader_for(tmp_path, bytes(data))
    (entry,) = list_entries(reader, reader.size)
    with pytest.raises(
        BrowseError, match=f"the archive says {crc ^ 1:08x}, the data gives {crc:08x}"
    ):
        read_all(reader, entry)


def test_an_entry_inflating_past_its_declared_size_is_stopped_there(tmp_path: Path):
    data = bytearray(zipfile_bytes([("table.csv", text_bytes(500_000))]))
    struct.pack_into("<I", data, central_record_offset(bytes(data)) + 24, 100_000)
    reader = reader_for(tmp_path, bytes(data))
    (entry,) = list_entries(reader, reader.size)
    received = 0
    with pytest.raises(BrowseError, match="holds more than the 100,000 bytes declared"):
        for piece in open_entry(reader, entry, chunk_size=4096):
            received += len(piece)
    assert 90_000 < received <= 100_000


def test_an_entry_shorter_than_declared_is_refused(tmp_path: Path):
    data = bytearray(zipfile_bytes([("table.csv", text_bytes(50_000))]))
    struct.pack_into("<I", data, central_record_offset(bytes(data)) + 24, 50_001)
    reader = reader_for(tmp_path, bytes(data))
    (entry,) = list_entries(reader, reader.size)
    with pytest.raises(BrowseError, match="holds 50,000 bytes, not the 50,001 declared"):
        read_all(reader, entry)


def test_a_bzip2_entry_is_listed_but_refused_before_any_read(tmp_path: Path):
    reader = reader_for(
        tmp_path, zipfile_bytes([("model.pt", text_bytes(10_000))], zipfile.ZIP_BZIP2)
    )
    (entry,) = list_entries(reader, reader.size)
    assert (entry.method, entry.compression) == (12, "bzip2")
    reader.reads.clear()
    with pytest.raises(BrowseError, match=r"'model.pt' is compressed with bzip2 \(method 12\)"):
        open_entry(reader, entry)
    assert reader.reads == []


def test_an_encrypted_entry_is_refused(tmp_path: Path):
    data = bytearray(zipfile_bytes([("secret.txt", b"hunter2")]))
    data[6] |= 0x01  # the local header's "encrypted" flag
    reader = reader_for(tmp_path, bytes(data))
    (entry,) = list_entries(reader, reader.size)
    with pytest.raises(BrowseError, match=r"'secret\.txt' is encrypted"):
        open_entry(reader, entry)


def test_a_directory_cannot_be_opened(tmp_path: Path):
    reader = reader_for(tmp_path, zipfile_bytes(MEMBERS))
    entry = find_entry(list_entries(reader, reader.size), "weights/")
    with pytest.raises(BrowseError, match="'weights/' is a directory"):
        open_entry(reader, entry)


def test_an_entry_pointing_at_no_local_header_is_refused(tmp_path: Path):
    data = bytearray(zipfile_bytes([("a.txt", b"alpha"), ("b.txt", b"bravo")]))
    struct.pack_into("<I", data, central_record_offset(bytes(data), 1) + 42, 3)
    reader = reader_for(tmp_path, bytes(data))
    entry = find_entry(list_entries(reader, reader.size), "b.txt")
    with pytest.raises(BrowseError, match=r"'b\.txt': there is no local header at byte 3"):
        open_entry(reader, entry)


def test_more_entries_than_allowed_are_refused_after_reading_only_the_tail(tmp_path: Path):
    reader = reader_for(tmp_path, zipfile_bytes(MEMBERS))
    with pytest.raises(BrowseError, match="has 7 entries, more than the 5 that can be listed"):
        list_entries(reader, reader.size, max_entries=5)
    assert len(reader.reads) == 1
    assert len(list_entries(reader, reader.size, max_entries=7)) == 7


def test_an_end_record_understating_the_entries_does_not_lift_the_limit(tmp_path: Path):
    data = bytearray(zipfile_bytes(MEMBERS))
    struct.pack_into("<HH", data, data.rindex(b"PK\x05\x06") + 8, 1, 1)
    reader = reader_for(tmp_path, bytes(data))
    with pytest.raises(BrowseError, match="more than the 5 entries"):
        list_entries(reader, reader.size, max_entries=5)


def test_a_central_directory_over_the_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(browse, "MAX_DIRECTORY_SIZE", 100)
    data = zipfile_bytes(MEMBERS, zipfile.ZIP_STORED)
    reader = reader_for(tmp_path, data)
    directory_size = len(data) - zipfile.ZipFile(io.BytesIO(data)).start_dir - 22
    with pytest.raises(
        BrowseError, match=f"central directory takes {directory_size:,} bytes, more than the 100"
    ):
        list_entries(reader, reader.size)
    assert len(reader.reads) == 1
    assert reader.reads == [(len(data) - 65_558, 65_558)]  # the tail only


def test_a_small_entry_is_fetched_with_its_header_in_one_request(tmp_path: Path):
    reader = reader_for(tmp_path, zipfile_bytes(MEMBERS))
    entry = find_entry(list_entries(reader, reader.size), "weights/layer-0.bin")
    reader.reads.clear()
    assert read_all(reader, entry) == random_bytes(70_000)
    assert len(reader.reads) == 1
    assert reader.bytes_read < entry.compressed_size + 100


def handmade_zip(name: bytes, method: int, body: bytes, crc: int, size: int) -> bytes:
    """One entry, written field by field: for streams no ZIP tool would produce."""
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 33, crc, len(body), size, len(name), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        *(0x02014B50, 20, 20, 0, method, 0, 33, crc, len(body), size, len(name), 0, 0, 0, 0, 0, 0),
    )
    directory = central + name
    start = len(local) + len(name) + len(body)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), start, 0)
    return local + name + body + directory + end


def test_a_deflate_stream_without_its_final_block_is_refused(tmp_path: Path):
    content = text_bytes(20_000)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = compressor.compress(content) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert zlib.decompressobj(-15).decompress(body) == content  # all there, but not finished
    data = handmade_zip(b"cut.csv", 8, body, zlib.crc32(content), len(content))
    reader = reader_for(tmp_path, data)
    (entry,) = list_entries(reader, reader.size)
    with pytest.raises(BrowseError, match="deflate stream ends before its last block"):
        read_all(reader, entry)
    finished = body + zlib.compress(b"", 6)[2:-4]  # an empty final block closes the stream
    reader = reader_for(tmp_path, handmade_zip(b"ok.csv", 8, finished, entry.crc32, entry.size))
    assert read_all(reader, list_entries(reader, reader.size)[0]) == content
