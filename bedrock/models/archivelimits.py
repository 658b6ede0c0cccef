"""How much an artefact archive may hold, for :func:`~bedrock.models.archive.unpack` and pack.

A 2 MB ZIP can expand to 2 GiB, and a small one can hold 100,000 entries or a tree thousands of
directories deep (deeper than ``PATH_MAX``, which no path-based tool can then delete). So unpack
refuses, from the central directory and before writing a byte: too many entries, a declared
total over the size limit, an entry that claims to compress better than the ratio limit, and a
path too deep or too long. While it writes, it counts the bytes really produced (each entry is
also stopped the moment it inflates past its declared size), so a lying header gains nothing.
Packing refuses the same depth, count and total, so Bedrock never makes an archive it would
refuse to read.

The limits are settings (``BEDROCK_MAX_ARCHIVE_*``); outside Django (a job's hook) the defaults
apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from bedrock.envconfig import describe_size, format_size, from_settings

# Entries smaller than this are not held to the ratio: tiny files of one repeated byte are
# common and harmless; the total size limit still bounds them together.
RATIO_FLOOR = 4 << 20
# Linux refuses paths past PATH_MAX (4096 bytes) and names past NAME_MAX (255); an entry's path
# must leave room for the directory it is unpacked into.
MAX_PATH_BYTES = 1024
MAX_NAME_BYTES = 255
# A central directory record is 46 bytes, the name and the extra fields; Bedrock's chunk indexes
# add 4 bytes per 2 MiB of a big file, well under a MiB for the largest archive allowed.
_RECORD_ALLOWANCE = 46 + MAX_PATH_BYTES + 256
_INDEX_ALLOWANCE = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """The defaults match settings.py's."""

    total_bytes: int = 50 << 30
    entries: int = 50_000
    ratio: int = 1000
    depth: int = 64

    @classmethod
    def current(cls) -> ArchiveLimits:
        """The limits from Django's settings, or the defaults where Django is not configured."""
        return from_settings(
            cls,
            {
                "total_bytes": "BEDROCK_MAX_ARCHIVE_BYTES",
                "entries": "BEDROCK_MAX_ARCHIVE_ENTRIES",
                "ratio": "BEDROCK_MAX_ARCHIVE_RATIO",
                "depth": "BEDROCK_MAX_ARCHIVE_DEPTH",
            },
        )

    def too_many(self, count: int, verb: str) -> str | None:
        if count <= self.entries:
            return None
        limit = self.entries
        return (
            f"more than {limit} entries; at most {limit} are {verb} (BEDROCK_MAX_ARCHIVE_ENTRIES)"
        )

    def directory_too_big(self, count: int, size: int) -> str | None:
        """Judged from the end records alone: zipfile reads the whole central directory into
        memory, and a directory's records, not the count it declares, say what it holds."""
        if problem := self.too_many(count, "unpacked"):
            return f"the archive declares {problem}"
        bound = self.entries * _RECORD_ALLOWANCE + _INDEX_ALLOWANCE
        if size <= bound:
            return None
        return (
            f"the archive's central directory takes {size} bytes, more than {self.entries} "
            "entries can need (BEDROCK_MAX_ARCHIVE_ENTRIES)"
        )

    def archive_too_big(self, size: int) -> str | None:
        """For a stream read before its end records can be: its length so far."""
        # Every entry's data, plus a local header and a central record for each.
        bound = self.total_bytes + 2 * self.entries * _RECORD_ALLOWANCE + _INDEX_ALLOWANCE
        if size <= bound:
            return None
        return (
            f"the archive is more than {bound} bytes long, more than one within "
            "BEDROCK_MAX_ARCHIVE_BYTES and BEDROCK_MAX_ARCHIVE_ENTRIES can be"
        )

    def too_big(self, size: int, verb: str) -> str | None:
        if size <= self.total_bytes:
            return None
        limit = describe_size(self.total_bytes)
        return (
            f"more than {limit} of files; at most that much is {verb} (BEDROCK_MAX_ARCHIVE_BYTES)"
        )

    def too_deep(self, path: str, verb: str) -> str | None:
        """The problem with ``path`` ("/"-separated, relative), or None."""
        parts = path.split("/")
        if len(parts) > self.depth:
            return (
                f"{shown(path)}: {len(parts)} levels deep; at most {self.depth} are {verb} "
                "(BEDROCK_MAX_ARCHIVE_DEPTH)"
            )
        encoded = len(path.encode("utf-8", errors="surrogateescape"))
        if encoded > MAX_PATH_BYTES:
            return (
                f"{shown(path)}: the path is {encoded} bytes; at most {MAX_PATH_BYTES} are {verb}"
            )
        longest = max(parts, key=len)
        if len(longest.encode("utf-8", errors="surrogateescape")) > MAX_NAME_BYTES:
            return f"{shown(path)}: a name in the path is longer than {MAX_NAME_BYTES} bytes"
        return None

    def too_compressed(self, size: int, compressed: int) -> str | None:
        if size <= RATIO_FLOOR or size <= self.ratio * max(compressed, 1):
            return None
        return (
            f"{size} bytes are compressed into {compressed}, more than {self.ratio}:1 "
            f"(BEDROCK_MAX_ARCHIVE_RATIO, for entries over {format_size(RATIO_FLOOR)})"
        )


def shown(path: str) -> str:
    """A path for a message: a name thousands of characters long is cut in the middle."""
    if len(path) <= 80:
        return repr(path)
    return repr(f"{path[:40]}…{path[-30:]}") + f" ({len(path)} characters)"
