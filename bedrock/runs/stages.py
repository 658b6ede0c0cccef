"""Stage archives: what each step of a run left in /artefact, kept while the run lasts.

A step's /artefact is stored as a ZIP under :func:`stage_key` when the step ends, and the steps that
depend on it start with those archives unpacked into their own /artefact, in dependency order, a
later archive overwriting an earlier one's files. On Nomad the hooks move them over the run's token
(``bedrock hook fetch|upload``); the supervisor calls these functions directly, and deletes the
archives with :func:`stages_delete` once the run is over.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import transaction

from bedrock.models.artefacts import StoredArtefact, artefact_delete, artefact_fetch
from bedrock.models.services import archive_store, archive_upload_claim, archive_upload_forget
from bedrock.pipelines.spec.model import STEP_NAME_PATTERN
from bedrock.runs.models import RunStatus, RunStep
from bedrock.runs.overlay import overlay

__all__ = [
    "StaleAttemptError",
    "stage_forget",
    "stage_key",
    "stage_store",
    "stages_delete",
    "stages_fetch",
    "stale_attempt",
]


def _prefix(run_id: int) -> str:
    return f"runs/{run_id}/steps/"


def stage_key(run_id: int, step_name: str) -> str:
    """A fresh storage key for a step's stage archive: ``runs/<run_id>/steps/<step>-<tag>.zip``.

    Each upload gets its own key, so a new archive is complete before the old one is let go, and
    two uploads of one step never write over each other.
    """
    if not STEP_NAME_PATTERN.match(step_name):
        # Step names are validated in bedrock.hcl; anything else here is a caller's mistake.
        raise ValueError(f"{step_name!r} is not a step name")
    return f"{_prefix(run_id)}{step_name}-{uuid.uuid4().hex[:12]}.zip"


def _clear(run_step_ids: list[int]) -> None:
    RunStep.objects.filter(pk__in=run_step_ids).update(
        artefact_key="", artefact_sha256="", artefact_size=None
    )


class StaleAttemptError(Exception):
    """An upload from an attempt of the step that is no longer the running one."""


def stale_attempt(run_step: RunStep, attempt: int) -> str:
    """Why an upload from ``attempt`` may not be recorded for ``run_step`` as it stands, or ''."""
    if run_step.status == RunStatus.RUNNING and run_step.attempts == attempt:
        return ""
    return f"Step {run_step.name!r} is not running attempt {attempt}"


def stage_store(
    run_step: RunStep, directory: Path, *, attempt: int | None = None
) -> StoredArtefact:
    """Store ``directory`` as ``run_step``'s stage archive, replacing one stored before.

    The new archive is stored under a key of its own, then recorded, and only then is the old one
    deleted: a failed upload leaves the step's earlier archive as it was. With ``attempt``, the
    archive is recorded only while the step is running that attempt; otherwise it is deleted and
    :class:`StaleAttemptError` raised. Raises what
    :func:`~bedrock.models.artefacts.artefact_store` raises (an empty ``directory`` is an
    :class:`~bedrock.models.artefacts.EmptyArtefactError`).
    """
    stored = archive_store(
        directory, stage_key(run_step.run_id, run_step.name), run_id=run_step.run_id
    )
    try:
        with transaction.atomic():
            current = RunStep.objects.select_for_update().get(pk=run_step.pk)
            if attempt is not None and (problem := stale_attempt(current, attempt)):
                raise StaleAttemptError(problem)
            archive_upload_claim(stored.key)
            old = current.artefact_key
            RunStep.objects.filter(pk=run_step.pk).update(
                artefact_key=stored.key, artefact_sha256=stored.sha256, artefact_size=stored.size
            )
    except BaseException:
        artefact_delete(stored.key)
        archive_upload_forget(stored.key)
        raise
    if old:
        artefact_delete(old)
    run_step.artefact_key = stored.key
    run_step.artefact_sha256 = stored.sha256
    run_step.artefact_size = stored.size
    return stored


def stage_forget(run_step_id: int) -> None:
    """Drop what an earlier attempt of the step stored, once the next attempt is recorded."""
    with transaction.atomic():
        old = RunStep.objects.select_for_update().get(pk=run_step_id).artefact_key
        _clear([run_step_id])
    if old:
        artefact_delete(old)


def stages_fetch(run_steps: list[RunStep], dest: Path) -> int:
    """Unpack the steps' archives into ``dest`` in the order given, later files replacing earlier.

    ``dest`` may already hold files (the input model version, say); archived files replace them.
    Steps that stored no archive are skipped. Each archive is checked against its recorded SHA-256
    before anything of it is extracted. Returns the number of distinct files placed.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    placed: set[str] = set()
    # Unpacked beside dest, so that moving the files over is a rename on one filesystem.
    with tempfile.TemporaryDirectory(prefix=".stages-", dir=dest.parent) as scratch:
        for number, run_step in enumerate(run_steps):
            if not run_step.artefact_key:
                continue
            unpacked = Path(scratch) / str(number)
            artefact_fetch(run_step.artefact_key, unpacked, sha256=run_step.artefact_sha256)
            placed |= overlay(unpacked, dest)
    return len(placed)


def stages_delete(run_id: int) -> None:
    """Delete every stage archive of the run, recorded or left behind by an interrupted upload."""
    steps = list(RunStep.objects.filter(run_id=run_id).exclude(artefact_key=""))
    keys = {step.artefact_key for step in steps}
    _clear([step.pk for step in steps])
    # FileSystemStorage raises FileNotFoundError for a missing folder; some backends cannot list.
    with contextlib.suppress(FileNotFoundError, NotImplementedError):
        _, files = default_storage.listdir(_prefix(run_id))
        keys.update(_prefix(run_id) + name for name in files if name.endswith(".zip"))
    for key in sorted(keys):
        artefact_delete(key)
