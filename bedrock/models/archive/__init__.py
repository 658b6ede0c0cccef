"""ZIP archives of a run's ``/artefact`` directory: written and read as streams, browsed by ranges.

The archives are ordinary ZIP files (PKWARE APPNOTE 6.3): ``unzip``, Python's ``zipfile`` and every
desktop tool open them. What makes them fast is how they are produced and consumed, not the format.

* :mod:`.records` — the format's records, signatures and flags, MS-DOS times, CRC-32 combination.
* :mod:`.packing` — :func:`pack`: a directory into a stream, deflated in parallel chunks.
* :mod:`.unpacking` — :func:`unpack`: an archive into a directory, every entry checked first.
* :mod:`.browse` — :func:`list_entries` and :func:`open_entry`: an archive in storage, by ranges.
* :mod:`.errors` and :mod:`.fileio` — what the others raise, and positional reads and writes.
* :mod:`.codec` — CRC-32 and inflate: ISA-L's where installed, else zlib's.
"""

from __future__ import annotations

from bedrock.models.archive.browse import (
    MAX_DIRECTORY_SIZE,
    BrowseError,
    Entry,
    EntryNotFoundError,
    ReadRange,
    find_entry,
    list_entries,
    open_entry,
)
from bedrock.models.archive.errors import (
    ArchiveError,
    ArchiveLimitError,
    EmptyArtefactError,
    RefusedEntryError,
    UnsafeArchiveError,
)
from bedrock.models.archive.packing import PackResult, pack
from bedrock.models.archive.unpacking import unpack
from bedrock.models.archivelimits import ArchiveLimits

__all__ = [
    "MAX_DIRECTORY_SIZE",
    "ArchiveError",
    "ArchiveLimitError",
    "ArchiveLimits",
    "BrowseError",
    "EmptyArtefactError",
    "Entry",
    "EntryNotFoundError",
    "PackResult",
    "ReadRange",
    "RefusedEntryError",
    "UnsafeArchiveError",
    "find_entry",
    "list_entries",
    "open_entry",
    "pack",
    "unpack",
]
