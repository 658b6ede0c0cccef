"""Models and their versions: creating and editing a model, publishing a version (which exists
only once its archive is stored and verified), signed downloads and browsing the files inside one.

Callers check membership first (``model_versions_for``); these functions trust the version given.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from bedrock.actors import Actor, require_role
from bedrock.models.artefacts import (
    ArchiveError,
    Entry,
    EntryStream,
    StoredArtefact,
    artefact_delete,
    artefact_download_url,
    artefact_entries,
    artefact_open_entry,
    artefact_store,
)
from bedrock.models.models import ArchiveUpload, Model, ModelVersion
from bedrock.pipelines.models import Project, Role
from bedrock.pipelines.services import UNSET, _Unset

logger = logging.getLogger(__name__)


def model_create(*, actor: Actor, project: Project, name: str, description: str = "") -> Model:
    """Create a model for training pipelines to publish versions of."""
    require_role(actor, project, Role.ADMIN, "Only a project admin may create models.")
    model = Model(project=project, name=name, description=description)
    model.full_clean()
    model.save()
    return model


def model_update(
    *,
    actor: Actor,
    model: Model,
    name: str,
    description: str,
    keep_versions: int | _Unset | None = UNSET,
) -> Model:
    """Rename or describe a model; ``keep_versions``, if given, is its retention (None keeps
    every version)."""
    require_role(actor, model.project, Role.ADMIN, "Only a project admin may edit models.")
    model.name, model.description = name, description
    if keep_versions is not UNSET:
        if keep_versions is not None and keep_versions < 1:
            raise ValidationError(
                {"keep_versions": "Keep at least 1 version, or leave it empty to keep them all."}
            )
        model.keep_versions = keep_versions
    model.full_clean()
    model.save()
    return model


def model_delete(*, actor: Actor, model: Model) -> None:
    """Delete a model that has no versions and no pipeline (ProtectedError otherwise)."""
    require_role(actor, model.project, Role.ADMIN, "Only a project admin may delete models.")
    model.delete()


def storage_key_for(run) -> str:
    """A fresh key for one attempt to publish ``run``'s archive.

    Every attempt gets a key of its own, so overlapping publishes of one run (a step retrying its
    upload while the first is still storing, or that upload racing the supervisor's) never
    overwrite or delete each other's archive: each attempt deletes only what it stored itself.
    """
    return f"models/{run.pipeline.model_id}/run-{run.pk}-{uuid.uuid4().hex[:12]}.zip"


def model_version_publish(*, run, directory: Path) -> ModelVersion:
    """Pack ``directory`` into storage, then record it as the model's next version.

    Safe to run twice, and twice at once: a run publishes at most one version, and an attempt
    that finds the run's version already recorded deletes the archive it stored and returns that
    version. If anything fails after the upload, the attempt's archive is deleted, so no object
    is left without its version.
    """
    existing = ModelVersion.objects.filter(run=run).first()
    if existing is not None:
        return existing
    stored = archive_store(directory, storage_key_for(run), run_id=run.pk)
    try:
        with transaction.atomic():
            archive_upload_claim(stored.key)
            # Lock the model row so that concurrent publishes number their versions one by one.
            model = Model.objects.select_for_update().get(pk=run.pipeline.model_id)
            latest = model.versions.aggregate(latest=Max("number"))["latest"] or 0
            return ModelVersion.objects.create(
                model=model,
                number=latest + 1,
                run=run,
                storage_key=stored.key,
                size=stored.size,
                sha256=stored.sha256,
                file_count=stored.file_count,
            )
    except IntegrityError:
        # Another attempt recorded the run's version first; its archive is the one that counts.
        _discard(stored.key)
        existing = ModelVersion.objects.filter(run=run).first()
        if existing is None:
            raise
        return existing
    except BaseException:
        _discard(stored.key)
        raise


def _discard(key: str) -> None:
    """Delete an archive this attempt stored and will not record, without hiding why."""
    try:
        artefact_delete(key)
    except Exception:
        # The caller's own error matters more; the record stays, so the reconciler retries.
        logger.exception("could not delete the unrecorded archive %r; it is retried later", key)
        return
    archive_upload_forget(key)


# --- uploads in progress ------------------------------------------------------------------------
class ArchiveAbandonedError(ArchiveError):
    """The upload was taken for abandoned (its run had ended) and its archive deleted."""


def archive_store(directory: Path, key: str, *, run_id: int | None) -> StoredArtefact:
    """:func:`artefact_store`, recorded as an :class:`ArchiveUpload` before the first byte.

    A process killed while packing leaves the record behind, and with it the name of the partial
    object for :func:`archives_reconcile` to delete. The caller names the archive (a version, a
    stage) in a transaction that calls :func:`archive_upload_claim`, or deletes it and its
    record.
    """
    ArchiveUpload.objects.create(storage_key=key, run_id=run_id)
    try:
        return artefact_store(directory, key)
    except BaseException:
        # artefact_store deleted whatever it wrote, and left alone an object it found under the
        # key (ArtefactExistsError), which this record must not mark. A kill here leaves it.
        archive_upload_forget(key)
        raise


def archive_upload_claim(key: str) -> None:
    """Inside the transaction that names ``key``: the upload is complete and the archive owned.

    Removing the record is what decides between the uploader and the reconciler, whichever comes
    first: raises :class:`ArchiveAbandonedError` when the reconciler took the record already.
    """
    if not ArchiveUpload.objects.filter(storage_key=key).delete()[0]:
        raise ArchiveAbandonedError(
            f"the archive {key!r} was deleted while it was uploaded, because its run had ended"
        )


def archive_upload_forget(key: str) -> None:
    """The upload of ``key`` failed and its object is gone: drop its record."""
    ArchiveUpload.objects.filter(storage_key=key).delete()


def archives_reconcile() -> int:
    """Delete the archives that interrupted uploads left in storage; the number deleted.

    An upload is abandoned once its run has ended (a run always does, at the latest when its
    maximum run time runs out): no version or stage can name its archive any more. An upload of
    a run still active may still be under way, however long it takes, and is left alone.
    """
    from bedrock.runs.models import ACTIVE_STATUSES, RunStep

    abandoned = list(
        ArchiveUpload.objects.filter(
            Q(run__isnull=True) | ~Q(run__status__in=list(ACTIVE_STATUSES))
        ).values_list("pk", "storage_key")
    )
    deleted = 0
    for pk, key in abandoned:
        # Taking the record first keeps a late uploader from naming the archive being deleted.
        if not ArchiveUpload.objects.filter(pk=pk).delete()[0]:
            continue
        named = (
            ModelVersion.objects.filter(storage_key=key).exists()
            or RunStep.objects.filter(artefact_key=key).exists()
        )
        if named:
            continue
        try:
            artefact_delete(key)
        except Exception:
            logger.exception("could not delete the abandoned archive %r; retrying later", key)
            ArchiveUpload.objects.get_or_create(storage_key=key, defaults={"run": None})
            continue
        logger.info("deleted the archive %r that an interrupted upload left in storage", key)
        deleted += 1
    return deleted


def model_version_download_url(*, version: ModelVersion) -> str | None:
    """A signed URL for the version's archive, valid for ``BEDROCK_DOWNLOAD_URL_EXPIRY`` and saved
    as ``version.filename``; None when the storage cannot sign URLs (the local filesystem)."""
    return artefact_download_url(
        version.storage_key,
        filename=version.filename,
        expiry=settings.BEDROCK_DOWNLOAD_URL_EXPIRY,
    )


def model_version_files(*, version: ModelVersion) -> list[Entry]:
    """The files inside the version's archive (directories left out), in archive order.

    Read from the archive's central directory by ranged reads, never by downloading it.
    """
    entries = artefact_entries(version.storage_key, size=version.size)
    return [entry for entry in entries if not entry.is_dir]


def model_version_file_open(*, version: ModelVersion, name: str) -> EntryStream:
    """The content of the file ``name`` inside the version's archive, streamed by ranged reads."""
    return artefact_open_entry(version.storage_key, name, size=version.size)
