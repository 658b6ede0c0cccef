"""CRC-32, raw deflate and inflate for the archive code: ISA-L's (package ``isal``) if installed.

Packing and unpacking spend most of their CPU time deflating, inflating and computing CRC-32s.
ISA-L deflates about three times as fast as zlib's level 1 (into slightly smaller streams), inflates
about twice as fast, and computes CRC-32 with carry-less multiplication several times faster; it
releases the GIL like zlib, so worker threads still run in parallel. Its streams are standard
deflate, which zlib, ``unzip`` and every other tool read. Where it has no wheel, zlib does the work,
more slowly, and the archives are as valid.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from types import ModuleType
from typing import Protocol

_isal: ModuleType | None
try:
    from isal import isal_zlib as _isal
except ImportError:  # no wheel for this platform: zlib is correct, only slower
    _isal = None


class Inflater(Protocol):
    """The part of ``zlib.decompressobj``'s interface unpacking uses."""

    @property
    def eof(self) -> bool: ...

    @property
    def unconsumed_tail(self) -> bytes: ...

    def decompress(self, data: bytes | memoryview, max_length: int = 0, /) -> bytes: ...


_module: ModuleType = _isal or zlib
ACCELERATED = _isal is not None
# What an inflater raises on a stream that is not valid deflate (ISA-L's error is its own class).
INFLATE_ERRORS: tuple[type[Exception], ...] = tuple({zlib.error, _module.error})


# crc32(data, value=0): the CRC-32 of data, continuing from value.
crc32: Callable[..., int] = _module.crc32


class Deflater(Protocol):
    """The part of ``zlib.compressobj``'s interface packing uses."""

    def compress(self, data: bytes | memoryview, /) -> bytes: ...

    def flush(self, mode: int, /) -> bytes: ...


def raw_deflater(level: int) -> Deflater:
    """A compressor of raw deflate at ``level``: ISA-L's at level 1, zlib's at any other.

    Level 0 must stay zlib's: it emits the stored blocks a chunk that does not compress is kept
    as, where ISA-L's level 0 still compresses. ISA-L's level 1 expands what does not compress by
    no more than zlib's bound (``packing._compressed_bound``), which its level 3 exceeds.
    """
    if _isal is None or level != 1:
        return zlib.compressobj(level, zlib.DEFLATED, -15)
    deflater: Deflater = _isal.compressobj(1, zlib.DEFLATED, -15)
    return deflater


def raw_inflater() -> Inflater:
    """An inflater for a raw deflate stream (no zlib or gzip header), as ZIP entries hold."""
    inflater: Inflater = _module.decompressobj(-15)
    return inflater
