"""CRC-32 and raw inflate for the archive code: ISA-L's (the ``isal`` package) where installed.

Unpacking spends most of its CPU time inflating and checking CRC-32s. ISA-L inflates standard
deflate streams about twice as fast as zlib 1.2, and computes CRC-32 with carry-less
multiplication several times faster; both release the GIL like zlib, so worker threads still run
in parallel. The streams and checksums are the same, so archives read and written either way are
identical. Where no wheel exists, zlib does the work, more slowly. Deflating stays with zlib: its
level 1 is what the archive's size is measured against.
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


def raw_inflater() -> Inflater:
    """An inflater for a raw deflate stream (no zlib or gzip header), as ZIP entries hold."""
    inflater: Inflater = _module.decompressobj(-15)
    return inflater
