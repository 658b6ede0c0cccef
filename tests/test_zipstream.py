"""Model-version archives: round trips, interoperability, and refusing unsafe archives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from bedrock.models.archive import (
    ArchiveError,
    EmptyArtefactError,
    UnsafeArchiveError,
    codec,
    pack,
    packing,
    records,
    unpack,
    unpacking,
)

ROOT = Path(__file__).resolve().parents[1]


def text_bytes(size: int, seed: int = 1) -> bytes:
    """CSV-like text that compresses like real data, not one repeated line."""
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnop", k=rng.randint(2, 9))) for _ in range(500)]
    lines = []
    total = 0
    row = 0
    while total < size:
        line = f"{row},{rng.choice(words)} {rng.choice(words)},{rng.random():.3f}\n"
        lines.append(line)
        total += len(line)
        row += 1
    return "".join(lines).encode()[:size]


def random_bytes(size: int, seed: int = 2) -> bytes:
    return random.Random(seed).randbytes(size)


BIG_TEXT = 3 * packing.CHUNK_SIZE + 12_345  # more than several chunks, not a multiple of one
BIG_RANDOM = 2 * packing.CHUNK_SIZE + 999


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artefact")
    (root / "model").mkdir()
    (root / "model" / "weights.bin").write_bytes(random_bytes(BIG_RANDOM))
    (root / "model" / "vocab.txt").write_bytes(text_bytes(200_000, seed=3))
    (root / "data" / "deep" / "er").mkdir(parents=True)
    (root / "data" / "deep" / "er" / "features.csv").write_bytes(text_bytes(BIG_TEXT))
    (root / "data" / "noise.npy").write_bytes(random_bytes(300_000, seed=4))
    (root / "data" / "empty.txt").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "outer" / "inner-empty").mkdir(parents=True)
    (root / "ünïcødé ✓").mkdir()
    (root / "ünïcødé ✓" / "名前.json").write_text('{"ok": true}\n' * 50, encoding="utf-8")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "a-b.txt").write_text("sorts before a/ by byte\n")
    return root


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and every empty directory (None) under root."""
    found: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        if not dirs and not files and rel != ".":
            found[rel + "/"] = None
        for name in files:
            found[Path(rel, name).as_posix().removeprefix("./")] = Path(folder, name).read_bytes()
    return found


class NonSeekable(io.RawIOBase):
    """A write-only sink that, like a pipe, cannot seek or tell."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def pack_bytes(directory: Path, **kwargs) -> tuple[bytes, packing.PackResult]:
    sink = NonSeekable()
    result = pack(directory, sink, **kwargs)
    return bytes(sink.data), result


@pytest.fixture(scope="module")
def packed(artefact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data, _ = pack_bytes(artefact)
    path = tmp_path_factory.mktemp("packed") / "artefact.zip"
    path.write_bytes(data)
    return path


# --- Round trips ----------------------------------------------------------------------------------


def test_round_trip_restores_files_and_empty_directories_byte_for_byte(
    artefact: Path, packed: Path, tmp_path: Path
):
    count = unpack(packed, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(artefact)
    assert count == sum(1 for content in tree(artefact).values() if content is not None)


@pytest.mark.parametrize("workers", [1, 3])
def test_round_trip_is_the_same_whatever_the_number_of_workers(
    artefact: Path, packed: Path, tmp_path: Path, workers: int
):
    data, _ = pack_bytes(artefact, workers=workers)
    assert data == packed.read_bytes()
    unpack(io.BytesIO(data), tmp_path / "out", workers=workers)
    assert tree(tmp_path / "out") == tree(artefact)


def test_pack_result_size_and_sha256_are_those_of_the_bytes_written(artefact: Path):
    data, result = pack_bytes(artefact)
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.file_count == sum(1 for c in tree(artefact).values() if c is not None) == 8


def test_pack_writes_to_a_pipe(artefact: Path, packed: Path):
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def drain() -> None:
        with open(read_fd, "rb") as reader:
            while chunk := reader.read(65536):
                received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with open(write_fd, "wb") as out:
        result = pack(artefact, out)
    reader.join()
    assert bytes(received) == packed.read_bytes()
    assert result.size == len(received)


def test_executable_files_stay_executable(packed: Path, tmp_path: Path):
    unpack(packed, tmp_path / "out")
    assert os.stat(tmp_path / "out" / "run.sh").st_mode & stat.S_IXUSR
    assert not os.stat(tmp_path / "out" / "a-b.txt").st_mode & stat.S_IXUSR


# --- Interoperability -----------------------------------------------------------------------------


def test_python_zipfile_reads_our_archive_identically(artefact: Path, packed: Path):
    expected = tree(artefact)
    with zipfile.ZipFile(packed) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == sorted(expected)
        for name in names:
            if name.endswith("/"):
                assert expected[name] is None
            else:
                assert archive.read(name) == expected[name]


def test_the_unzip_tool_accepts_our_archive(packed: Path, tmp_path: Path, artefact: Path):
    if shutil.which("unzip") is None:
        pytest.skip("no unzip binary")
    tested = subprocess.run(["unzip", "-t", str(packed)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "No errors detected" in tested.stdout
    subprocess.run(["unzip", "-q", str(packed), "-d", str(tmp_path / "out")], check=True)
    assert tree(tmp_path / "out") == tree(artefact)


def test_compressible_entries_are_deflated_and_random_ones_stored(packed: Path):
    with zipfile.ZipFile(packed) as archive:
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
    assert kinds["data/deep/er/features.csv"] == zipfile.ZIP_DEFLATED
    assert kinds["model/vocab.txt"] == zipfile.ZIP_DEFLATED
    assert kinds["ünïcødé ✓/名前.json"] == zipfile.ZIP_DEFLATED
    assert kinds["model/weights.bin"] == zipfile.ZIP_STORED
    assert kinds["data/noise.npy"] == zipfile.ZIP_STORED
    assert kinds["data/empty.txt"] == zipfile.ZIP_STORED


def test_a_big_deflated_entry_records_its_chunks_and_compresses(packed: Path):
    with zipfile.ZipFile(packed) as archive:
        info = archive.getinfo("data/deep/er/features.csv")
    index = unpacking._read_chunk_index(info.extra)
    assert index is not None
    chunk, lengths = index
    assert len(lengths) == -(-BIG_TEXT // chunk) == 4
    assert sum(lengths) == info.compress_size
    assert info.compress_size < info.file_size * 0.7


def zipfile_archive(source: Path, out, compression: int, **kwargs) -> None:
    with zipfile.ZipFile(out, "w", compression, **kwargs) as archive:
        for folder, dirs, files in os.walk(source):
            for name in sorted(files):
                path = Path(folder, name)
                archive.write(path, path.relative_to(source).as_posix())
            if not dirs and not files:
                archive.write(folder, Path(folder).relative_to(source).as_posix() + "/")


@pytest.mark.parametrize(
    "compression",
    [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
    ids=["stored", "deflated", "bzip2", "lzma"],
)
@pytest.mark.slow
def test_archives_made_by_python_zipfile_unpack(artefact: Path, tmp_path: Path, compression: int):
    archive = tmp_path / "theirs.zip"
    zipfile_archive(artefact, archive, compression)
    unpack(archive, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(artefact)


def test_zipfile_archives_with_data_descriptors_unpack(artefact: Path, tmp_path: Path):
    sink = NonSeekable()  # zipfile writes data descriptors when it cannot seek back
    zipfile_archive(artefact, sink, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(io.BytesIO(bytes(sink.data))) as archive:
        assert all(info.flag_bits & 0x08 for info in archive.infolist() if not info.is_dir())
    unpack(io.BytesIO(bytes(sink.data)), tmp_path / "out")
    assert tree(tmp_path / "out") == tree(artefact)


def test_zipfile_zip64_archives_unpack(tmp_path: Path):
    archive = tmp_path / "zip64.zip"
    content = text_bytes(100_000)
    with (
        zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out,
        out.open("big.csv", "w", force_zip64=True) as member,
    ):
        member.write(content)
    with zipfile.ZipFile(archive) as check:
        assert check.getinfo("big.csv").extract_version >= 45
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "big.csv").read_bytes() == content


def test_zip64_records_are_written_when_needed_and_read_back(
    artefact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The real limits need 4 GiB; lowering them exercises the same code with small files.
    monkeypatch.setattr(packing, "_ZIP64_LIMIT", 100_000)
    monkeypatch.setattr(packing, "_ZIP64_COUNT_LIMIT", 4)
    data, _ = pack_bytes(artefact)
    assert struct.pack("<I", records.END64_SIG) in data
    assert struct.pack("<I", records.LOCATOR64_SIG) in data
    archive = tmp_path / "zip64.zip"
    archive.write_bytes(data)
    with zipfile.ZipFile(archive) as check:
        assert check.testzip() is None
        assert check.getinfo("model/weights.bin").extract_version == 45
        assert check.read("data/deep/er/features.csv") == text_bytes(BIG_TEXT)
    if shutil.which("unzip"):
        tested = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, text=True)
        assert tested.returncode == 0, tested.stdout
    unpack(archive, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(artefact)


def test_crc32_combine_matches_zlib():
    rng = random.Random(5)
    for _ in range(50):
        a = rng.randbytes(rng.randint(0, 5000))
        b = rng.randbytes(rng.randint(0, 5000))
        assert records.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


# --- Packing refusals -----------------------------------------------------------------------------


def test_an_empty_artefact_directory_is_refused(tmp_path: Path):
    (tmp_path / "only" / "empty" / "dirs").mkdir(parents=True)
    with pytest.raises(EmptyArtefactError, match="/artefact is empty"):
        pack(tmp_path, NonSeekable())


def test_a_link_to_a_file_is_stored_as_the_file(tmp_path: Path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "real.txt").write_text("content\n")
    (tmp_path / "src" / "link.txt").symlink_to("real.txt")
    data, _ = pack_bytes(tmp_path / "src")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("link.txt") == b"content\n"
        assert not stat.S_ISLNK(archive.getinfo("link.txt").external_attr >> 16)


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_a_link_to_a_file_outside_the_directory_is_refused(tmp_path: Path, target: str):
    """A step could otherwise publish the packing machine's files, its keys say."""
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "server-secret").write_text("key material")
    (tmp_path / "src" / "model.bin").write_text("weights")
    link = tmp_path / "server-secret" if target == "absolute" else Path("../../server-secret")
    (tmp_path / "src" / "sub" / "leak").symlink_to(link)
    out = io.BytesIO()
    with pytest.raises(ArchiveError, match=r"sub/leak: is a symbolic link to .*outside the direc"):
        pack(tmp_path / "src", out)
    assert b"key material" not in out.getvalue()


@pytest.mark.parametrize("kind", ["directory", "dangling"])
def test_links_to_directories_and_dangling_links_are_refused_by_name(tmp_path: Path, kind: str):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "file.txt").write_text("x")
    target = "sub" if kind == "directory" else "missing"
    (tmp_path / "src" / "bad-link").symlink_to(target)
    with pytest.raises(ArchiveError, match=f"bad-link: is a symbolic link to '{target}'"):
        pack(tmp_path / "src", NonSeekable())


def test_a_file_that_shrinks_while_packing_is_reported_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "src").mkdir()
    victim = tmp_path / "src" / "growing.csv"
    victim.write_bytes(text_bytes(BIG_TEXT))
    collect = packing._collect

    def collect_then_truncate(root: Path, *limits):
        entries = collect(root, *limits)
        with victim.open("r+b") as f:
            f.truncate(packing.CHUNK_SIZE + 10)
        return entries

    monkeypatch.setattr(packing, "_collect", collect_then_truncate)
    with pytest.raises(
        ArchiveError, match=r"growing\.csv: the file changed size while being packed"
    ):
        pack(tmp_path / "src", NonSeekable())


# --- Unsafe archives ------------------------------------------------------------------------------


def crafted(tmp_path: Path, *entries: tuple[str | zipfile.ZipInfo, bytes]) -> Path:
    path = tmp_path / "crafted.zip"
    with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we want
        for name, data in entries:
            archive.writestr(name, data)
    return path


def symlink_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("bad_name", "reason"),
    [
        ("/tmp/escaped-absolute", "absolute path"),
        ("../escaped-parent", "'..'"),
        ("a/../../escaped-nested", "'..'"),
        ("..\\escaped-backslash", "backslash"),
        ("sub\\..\\..\\escaped-backslash", "backslash"),
        ("C:/escaped-drive", "drive letter"),
        ("ok.txt", "duplicate name"),
        ("./.", "the name is empty"),
    ],
)
def test_unsafe_entry_names_are_refused_before_anything_is_written(
    tmp_path: Path, bad_name: str, reason: str
):
    archive = crafted(tmp_path, ("ok.txt", b"harmless"), (bad_name, b"payload"))
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(UnsafeArchiveError, match=reason) as refused:
        unpack(archive, dest)
    assert repr(bad_name) in str(refused.value)
    assert not (tmp_path / "deep").exists()  # not even dest's parent was created
    escaped = [p for p in tmp_path.rglob("escaped*")]
    assert escaped == []
    assert not Path("/tmp/escaped-absolute").exists()


def test_symlink_entries_are_refused_and_nothing_is_written(tmp_path: Path):
    archive = crafted(tmp_path, ("ok.txt", b"harmless"), (symlink_entry("link", "/etc"), b"/etc"))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="'link': symbolic link"):
        unpack(archive, dest)
    assert list(dest.iterdir()) == []


def test_an_entry_under_a_file_of_the_same_name_is_refused(tmp_path: Path):
    archive = crafted(tmp_path, ("model", b"a file"), ("model/weights.bin", b"x"))
    with pytest.raises(UnsafeArchiveError, match="needs 'model' to be a directory"):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_local_header_naming_another_file_is_refused(tmp_path: Path):
    archive = crafted(tmp_path, ("safe.txt", b"harmless"))
    data = archive.read_bytes()
    # Rename in the local header only; the central directory still says safe.txt.
    archive.write_bytes(data.replace(b"safe.txt", b"evil.txt", 1))
    with pytest.raises(UnsafeArchiveError, match="local header names it"):
        unpack(archive, tmp_path / "dest")


def test_a_local_header_shared_by_two_entries_is_refused(tmp_path: Path):
    archive = crafted(tmp_path, ("a.txt", b"a" * 100), ("b.txt", b"b" * 100))
    data = bytearray(archive.read_bytes())
    # Point b's central directory record at a's local header: one body, two files.
    struct.pack_into("<I", data, data.rindex(b"PK\x01\x02") + 42, 0)
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match=r"'b\.txt': its local header names it b'a\.txt'"):
        unpack(archive, tmp_path / "dest")


def test_entries_whose_data_overlap_are_refused(tmp_path: Path):
    archive = tmp_path / "overlap.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("a.txt", b"a" * 100)
        out.writestr("b.txt", b"b" * 100)
    data = bytearray(archive.read_bytes())
    # Stretch a's compressed size over b's local header.
    first = data.index(b"PK\x01\x02")
    (size,) = struct.unpack_from("<I", data, first + 20)
    struct.pack_into("<I", data, first + 20, size + 40)
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match=r"'a\.txt': its data overlaps entry 'b\.txt'"):
        unpack(archive, tmp_path / "dest")


def test_a_non_empty_destination_is_refused(packed: Path, tmp_path: Path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="is not empty"):
        unpack(packed, tmp_path / "dest")
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["keep.txt"]


# --- Corrupt archives -----------------------------------------------------------------------------


def test_a_corrupted_byte_fails_the_crc_and_leaves_the_destination_empty(tmp_path: Path):
    archive = crafted(tmp_path, ("first.txt", b"fine"), ("second.bin", b"\x00" * 1000))
    data = bytearray(archive.read_bytes())
    data[data.index(b"\x00" * 1000) + 500] = 1
    archive.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=r"'second\.bin': CRC-32 mismatch"):
        unpack(archive, dest)
    assert list(dest.iterdir()) == []


def test_a_lying_chunk_index_is_caught(packed: Path, tmp_path: Path):
    data = bytearray(packed.read_bytes())
    with zipfile.ZipFile(packed) as archive:
        info = archive.getinfo("data/deep/er/features.csv")
    chunk, lengths = unpacking._read_chunk_index(info.extra)
    # Move one boundary by 100 bytes; the total still matches, so only inflating can tell.
    layout = f"<HHI{len(lengths)}I"
    size = 4 * (len(lengths) + 1)
    old = struct.pack(layout, records.CHUNK_INDEX_ID, size, chunk, *lengths)
    lengths[0] += 100
    lengths[1] -= 100
    new = struct.pack(layout, records.CHUNK_INDEX_ID, size, chunk, *lengths)
    assert data.count(old) == 1
    data[data.index(old) : data.index(old) + len(old)] = new
    (tmp_path / "lying.zip").write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"features\.csv"):
        unpack(tmp_path / "lying.zip", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_an_invalid_deflate_stream_fails_as_a_corrupt_archive_and_leaves_no_directory(
    tmp_path: Path,
):
    archive = tmp_path / "invalid.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("fine.txt", b"fine")
        out.writestr("broken.bin", random_bytes(50_000) * 4)
    data = bytearray(archive.read_bytes())
    start = data.index(b"broken.bin") + len("broken.bin")
    data[start : start + 8] = b"\xff" * 8  # block type 3, which deflate does not have
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"'broken\.bin': its deflate stream is invalid"):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_corrupt_chunk_in_the_middle_of_a_big_entry_leaves_no_directory(
    packed: Path, tmp_path: Path
):
    data = bytearray(packed.read_bytes())
    with zipfile.ZipFile(packed) as archive:
        info = archive.getinfo("data/deep/er/features.csv")
    _, lengths = unpacking._read_chunk_index(info.extra)
    assert len(lengths) > 2
    with packed.open("rb") as f:
        offset = unpacking._data_offset(info, info.orig_filename, f.fileno())
    middle = offset + lengths[0] + lengths[1] // 2
    data[middle : middle + 64] = bytes(64)
    (tmp_path / "corrupt.zip").write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"features\.csv"):
        unpack(tmp_path / "corrupt.zip", tmp_path / "dest", workers=3)
    assert not (tmp_path / "dest").exists()


def test_unpacking_with_zlib_alone_restores_the_same_files(
    artefact: Path, packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Where the isal package has no wheel, zlib inflates and checks the same streams.
    monkeypatch.setattr(unpacking, "raw_inflater", lambda: zlib.decompressobj(-15))
    monkeypatch.setattr(unpacking, "crc32", zlib.crc32)
    unpack(packed, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(artefact)


def test_the_codec_agrees_with_zlib_on_crc32_and_chunked_deflate_streams():
    text = text_bytes(3 << 20, seed=11)
    data = random_bytes(1 << 20, seed=12) + text
    assert codec.crc32(data) == zlib.crc32(data)
    assert codec.crc32(data[1000:], codec.crc32(data[:1000])) == zlib.crc32(data)
    # A sync-flushed chunk, as packing writes, drained in pieces as unpacking drains it.
    deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
    stream = deflater.compress(text) + deflater.flush(zlib.Z_SYNC_FLUSH)
    inflater = codec.raw_inflater()
    out = bytearray()
    pending: bytes = stream
    while pending or not out:
        out += inflater.decompress(pending, 64 << 10)
        pending = inflater.unconsumed_tail
    assert bytes(out) == text and not inflater.eof
    # And the codec's own chunks, sync-flushed then finished, are one stream zlib reads.
    first, second = codec.raw_deflater(1), codec.raw_deflater(1)
    ours = first.compress(text[: 1 << 20]) + first.flush(zlib.Z_SYNC_FLUSH)
    ours += second.compress(text[1 << 20 :]) + second.flush(zlib.Z_FINISH)
    inflated = zlib.decompressobj(-15)
    assert inflated.decompress(ours) == text and inflated.eof


def test_a_truncated_archive_is_refused(packed: Path, tmp_path: Path):
    (tmp_path / "short.zip").write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="not a readable ZIP archive"):
        unpack(tmp_path / "short.zip", tmp_path / "dest")


def test_an_entry_that_inflates_beyond_its_declared_size_is_refused(tmp_path: Path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("bomb.txt", b"\x00" * 5_000_000)
    data = bytearray(archive.read_bytes())
    cd = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 1000)  # declare 1000 bytes uncompressed
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="inflates to more than the 1000 declared"):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# --- Memory and the benchmark ---------------------------------------------------------------------

# VmHWM, not ru_maxrss: a child forked from this big pytest process inherits its high-water
# mark in ru_maxrss (the kernel counts the pre-exec address space): ~200 MB before we start.
MEMORY_PROBE = textwrap.dedent(
    """
    import re, sys
    from pathlib import Path
    from bedrock.models.archive import pack, unpack
    source, archive, dest = map(Path, sys.argv[1:])
    with archive.open("wb") as out:
        pack(source, out)
    unpack(archive, dest)
    status = Path("/proc/self/status").read_text()
    print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024)
    """
)


@pytest.mark.slow
def test_memory_stays_bounded_for_a_200_mb_artefact(tmp_path: Path):
    source = tmp_path / "big"
    source.mkdir()
    block = text_bytes(1 << 20, seed=9)
    with (source / "table.csv").open("wb") as f:
        for i in range(100):  # 100 MiB of text; blocks repeat beyond deflate's 32 KiB window
            f.write(block[i:] + block[:i])
    with (source / "weights.bin").open("wb") as f:
        for _ in range(100):
            f.write(os.urandom(1 << 20))
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, source, tmp_path / "a.zip", tmp_path / "out"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    peak = int(probe.stdout.strip())
    assert peak < 150 * 1024 * 1024, f"peak RSS {peak / 1e6:.0f} MB"
    assert (tmp_path / "out" / "table.csv").stat().st_size == 100 << 20


@pytest.mark.slow
def test_the_benchmark_prints_its_table_and_json(tmp_path: Path):
    run = subprocess.run(
        [sys.executable, "bench/artefacts.py", "--size", "32MiB", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "measurement" in run.stdout and "ours-unpack" in run.stdout
    line = next(line for line in run.stdout.splitlines() if line.startswith("JSON "))
    report = json.loads(line.removeprefix("JSON "))
    assert set(report["results"]) == {
        "copy",
        "zipfile-pack",
        "zipfile-unpack",
        "ours-pack",
        "ours-unpack",
    }
    assert report["content_bytes"] > 30 * 2**20
    for measured in report["results"].values():
        assert measured["seconds"] > 0 and measured["peak_rss"] > 0
    assert set(report["ratios"]) >= {"pack_vs_zipfile", "unpack_vs_zipfile", "size_vs_zipfile"}
    assert list(tmp_path.iterdir()) == []  # its scratch directory is cleaned up


@pytest.mark.slow
def test_remove_tree_deletes_a_tree_deeper_than_recursion_and_path_max_allow(tmp_path: Path):
    from bedrock.filetrees import remove_tree

    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(3000):  # 3000 levels of "dd/": 9000 bytes of path, past PATH_MAX
        os.mkdir("dd", dir_fd=fd)
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
        child = os.open("dd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    with pytest.raises(RecursionError):
        shutil.rmtree(top)
    remove_tree(top)
    assert not top.exists()


# --- Limits ---------------------------------------------------------------------------------------


def test_bedrocks_own_archive_of_zeros_stays_under_the_ratio_limit(tmp_path: Path):
    from bedrock.models.archivelimits import RATIO_FLOOR, ArchiveLimits

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "zeros.bin").write_bytes(bytes(8 * RATIO_FLOOR))
    archive = tmp_path / "own.zip"
    with archive.open("wb") as out:
        pack(tmp_path / "src", out)
    [info] = zipfile.ZipFile(archive).infolist()
    assert info.file_size / info.compress_size < ArchiveLimits().ratio / 2
    assert unpack(archive, tmp_path / "out") == 1


def test_a_tree_at_the_depth_limit_unpacks_and_one_level_more_is_refused(tmp_path: Path):
    from bedrock.models.archive import ArchiveLimitError, ArchiveLimits

    limits = ArchiveLimits(depth=5)
    at_limit = tmp_path / "at.zip"
    with zipfile.ZipFile(at_limit, "w") as archive:
        archive.writestr("a/b/c/d/e.txt", "x")
    assert unpack(at_limit, tmp_path / "one", limits=limits) == 1
    deeper = tmp_path / "deeper.zip"
    with zipfile.ZipFile(deeper, "w") as archive:
        archive.writestr("a/b/c/d/e/f.txt", "x")
    with pytest.raises(ArchiveLimitError, match="6 levels deep; at most 5 are unpacked"):
        unpack(deeper, tmp_path / "two", limits=limits)
    assert not (tmp_path / "two").exists()


def test_packing_more_bytes_than_the_total_limit_is_refused(tmp_path: Path):
    from bedrock.models.archive import ArchiveLimitError, ArchiveLimits

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(b"x" * 11)
    with pytest.raises(ArchiveLimitError, match=r"more than 10 bytes of files; .*ARCHIVE_BYTES"):
        pack(tmp_path / "src", io.BytesIO(), limits=ArchiveLimits(total_bytes=10))
