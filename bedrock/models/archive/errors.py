"""What packing and unpacking raise: every message says which file and why."""

from __future__ import annotations


class ArchiveError(Exception):
    """An artefact archive cannot be written or read; the message says which file and why."""


class EmptyArtefactError(ArchiveError):
    """The directory to pack holds no file at all."""


class UnsafeArchiveError(ArchiveError):
    """An entry could write outside the destination, or is ambiguous; nothing was written."""


class RefusedEntryError(ArchiveError):
    """The directory to pack holds what cannot be packed as it is: a name that is not UTF-8, a
    FIFO, socket or device, or a link that is not to a file inside it. Whoever filled the
    directory can fix it; the message says which entry and how."""


class ArchiveLimitError(ArchiveError):
    """The archive, or the directory to pack, exceeds an :class:`ArchiveLimits` bound."""
