"""`bedrock artefact pack DIR OUT.zip` and `bedrock artefact unpack ZIP DIR`.

The same code a training run uses to publish its /artefact and a batch scoring run uses to receive
a model version, for trying it out and for debugging an archive by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bedrock.models.archive import ArchiveError, pack, unpack


class Command(BaseCommand):
    help = "Pack a directory into a model-version ZIP archive, or unpack one into a directory."
    # Neither the database nor the deployment's settings are involved.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{pack,unpack}")
        packing = actions.add_parser("pack", help="write DIR's contents to a new OUT.zip")
        packing.add_argument("directory", type=Path, metavar="DIR")
        packing.add_argument("archive", type=Path, metavar="OUT.zip")
        unpacking = actions.add_parser("unpack", help="extract ZIP into DIR, absent or empty")
        unpacking.add_argument("archive", type=Path, metavar="ZIP")
        unpacking.add_argument("directory", type=Path, metavar="DIR")
        for sub in (packing, unpacking):
            sub.add_argument(
                "--workers", type=int, default=None, help="threads to use (default: one per CPU)"
            )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "pack":
                self._pack(options["directory"], options["archive"], options["workers"])
            else:
                self._unpack(options["archive"], options["directory"], options["workers"])
        except (ArchiveError, OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

    def _pack(self, directory: Path, archive: Path, workers: int | None) -> None:
        if archive.resolve().is_relative_to(directory.resolve()):
            raise CommandError(f"{archive} is inside {directory}: it would pack itself")
        started = time.perf_counter()
        try:
            out = archive.open("xb")
        except FileExistsError:
            raise CommandError(f"{archive} exists; choose a new file name") from None
        try:
            with out:
                result = pack(directory, out, workers=workers)
        except BaseException:
            with contextlib.suppress(OSError):
                archive.unlink()
            raise
        seconds = time.perf_counter() - started
        self.stdout.write(
            f"packed {result.file_count} files into {archive}: {result.size} bytes, "
            f"sha256 {result.sha256}, {seconds:.2f} s"
        )

    def _unpack(self, archive: Path, directory: Path, workers: int | None) -> None:
        started = time.perf_counter()
        with archive.open("rb") as f, archive.open("rb") as copy, ThreadPoolExecutor(1) as hasher:
            # Hashing beside the unpacking, on a handle of its own: it fills the time the
            # inflating threads spend waiting on reads and writes, instead of coming first.
            digest = hasher.submit(_sha256, copy)
            count = unpack(f, directory, workers=workers)
            size, sha256 = digest.result()
        seconds = time.perf_counter() - started
        self.stdout.write(
            f"unpacked {count} files into {directory}: {size} bytes, "
            f"sha256 {sha256}, {seconds:.2f} s"
        )


def _sha256(f: BinaryIO) -> tuple[int, str]:
    """The size and SHA-256 of what is left to read in ``f``."""
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
