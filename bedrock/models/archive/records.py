"""The ZIP format's records (PKWARE APPNOTE 6.3, section 4.3), defined once for every direction.

Packing writes them, unpacking and browsing read them: the layouts, signatures and flags below, the
private extra field that indexes Bedrock's deflate chunks, MS-DOS times, and CRC-32 combination.
"""

from __future__ import annotations

import struct
import time
from functools import lru_cache

# --- ZIP record layouts (APPNOTE 4.3) ------------------------------------------------------------
LOCAL = struct.Struct("<IHHHHHIIIHH")
LOCAL_SIG = 0x04034B50
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
CENTRAL_SIG = 0x02014B50
DESCRIPTOR = struct.Struct("<IIII")
DESCRIPTOR64 = struct.Struct("<IIQQ")
DESCRIPTOR_SIG = 0x08074B50
END = struct.Struct("<IHHHHIIH")
END_SIG = 0x06054B50
END64 = struct.Struct("<IQHHIIQQQQ")
END64_SIG = 0x06064B50
LOCATOR64 = struct.Struct("<IIQI")
LOCATOR64_SIG = 0x07064B50

FLAG_ENCRYPTED = 0x1
FLAG_DESCRIPTOR = 0x8
FLAG_UTF8 = 0x800
MADE_BY_UNIX = 3 << 8
VERSION_DEFLATE = 20
VERSION_ZIP64 = 45
MSDOS_DIRECTORY = 0x10
# Where an entry's 32-bit size or offset says "see the ZIP64 extra field".
MAX32 = 0xFFFFFFFF
END_SIG_BYTES = struct.pack("<I", END_SIG)
# The end record is followed by a comment of at most 65,535 bytes, so it starts in this tail.
TAIL = END.size + (1 << 16)
# One private extra field holds a 4-byte length per chunk of a big deflated entry.
CHUNK_INDEX_ID = 0x4B42  # "BK" little-endian: Bedrock chunk index


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


def dos_datetime(mtime: float) -> tuple[int, int]:
    t = time.localtime(mtime)
    if t.tm_year < 1980:
        return 0, (1 << 5) | 1  # 1980-01-01 00:00, the earliest a ZIP can say
    if t.tm_year > 2107:
        return (23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return dos_time, dos_date
