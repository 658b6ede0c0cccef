"""Models and their versions: creating and editing a model, publishing a version (which exists
only once its archive is stored and verified) or keeping a run's archive with the run when its
pipeline's publish policy refuses it, describing, deprecating and deleting versions, signed
downloads and browsing the files inside one.

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
from django.utils import timezone

from bedrock.actors import SYSTEM, Actor, require_role
from bedrock.events.models import EventKind
from bedrock.events.services import event_record
from bedrock.models.artefacts import (
    ArchiveError,
    BrowseError,
    Entry,
    EntryStream,
    StoredArtefact,
    artefact_delete,
    artefact_download_url,
    artefact_entries,
    artefact_open_entry,
    artefact_store,
)
from bedrock.models.models import ArchiveUpload, Model, ModelAlias, ModelVersion
from bedrock.pipelines.models import Project, PublishPolicy, Role
from bedrock.pipelines.services import UNSET, _Unset, limit_reached

MAX_DESCRIPTION = 10_000
MAX_MODELS_PER_PROJECT = 500

logger = logging.getLogger(__name__)


def model_create(*, actor: Actor, project: Project, name: str, description: str = "") -> Model:
    """Create a model for training pipelines to publish versions of."""
    require_role(actor, project, Role.ADMIN, "Only a project admin may create models.")
    if project.models.count() >= MAX_MODELS_PER_PROJECT:
        raise limit_reached(
            "name",
            f"{project.name} has {MAX_MODELS_PER_PROJECT} models, the most a project may have.",
        )
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


def version_branch(run) -> str:
    """The branch to record on a version of ``run``: the branch its ref named when it was created
    (``main`` for ``main`` or ``refs/heads/main``; a re-run keeps its run's), empty for a tag or
    a commit.

    A run recorded before runs kept their branch counts as of the pipeline's branch when its ref
    names that branch.
    """
    if run.branch:
        return run.branch
    branch = run.pipeline.branch
    return branch if run.ref in (branch, f"refs/heads/{branch}") else ""


def publish_refusal(run) -> str:
    """Why the pipeline's publish policy keeps ``run`` from publishing a version; "" if it may."""
    pipeline = run.pipeline
    if pipeline.publish_policy == PublishPolicy.ANY or version_branch(run) == pipeline.branch:
        return ""
    return (
        f"The pipeline publishes versions only from its branch {pipeline.branch}; this run was "
        f"of {run.ref}. Its archive is kept with the run."
    )


def training_output_store(*, run, directory: Path) -> ModelVersion | None:
    """Publish a training run's /artefact as the next version, or, when the pipeline's publish
    policy refuses the run's ref, keep it as the run's own archive; None then.

    Both the supervisor and a remote step's upload call this, so the policy is decided once.
    """
    reason = publish_refusal(run)
    if reason:
        run_archive_keep(run=run, directory=directory, reason=reason)
        return None
    return model_version_publish(run=run, directory=directory)


def model_version_publish(*, run, directory: Path) -> ModelVersion:
    """Pack ``directory`` into storage, then record it as the model's next version.

    Safe to run twice, and twice at once: a run publishes at most one version, and an attempt
    that finds the run's version already recorded deletes the archive it stored and returns that
    version. If anything fails after the upload, the attempt's archive is deleted, so no object
    is left without its version. The version records the run's ref and, when that is the
    pipeline's branch, the branch (:func:`version_branch`). This does not ask the publish policy:
    :func:`training_output_store` does.
    """
    existing = ModelVersion.objects.filter(run=run).first()
    if existing is not None:
        return existing
    stored = archive_store(directory, storage_key_for(run), run_id=run.pk)
    try:
        with transaction.atomic():
            archive_upload_claim(stored.key)
            # Lock the model row (its project only read, for the event) so that concurrent
            # publishes number their versions one by one.
            model = (
                Model.objects.select_related("project")
                .select_for_update(of=("self",))
                .get(pk=run.pipeline.model_id)
            )
            latest = model.versions.aggregate(latest=Max("number"))["latest"] or 0
            version = ModelVersion.objects.create(
                model=model,
                number=latest + 1,
                run=run,
                storage_key=stored.key,
                size=stored.size,
                sha256=stored.sha256,
                file_count=stored.file_count,
                ref=run.ref,
                branch=version_branch(run),
            )
            _version_event(EventKind.MODEL_VERSION_PUBLISHED, version, actor=SYSTEM)
            return version
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


def _version_event(kind: EventKind, version: ModelVersion, *, actor: Actor, **extra) -> None:
    model = version.model
    payload = {
        "model_id": model.pk,
        "model": model.name,
        "version_id": version.pk,
        "number": version.number,
        "run_id": version.run_id,
        **extra,
    }
    event_record(project=model.project, kind=kind, payload=payload, actor=actor)


class _AlreadyKept(Exception):
    """Another attempt stored the run's archive first."""


def run_archive_keep(*, run, directory: Path, reason: str) -> None:
    """Store ``directory`` as ``run``'s own archive, with ``reason`` why it is no version.

    The same discipline as a version's: recorded as an upload before the first byte, claimed in
    the transaction that names it on the run, and deleted by whichever attempt loses a race, so
    the run keeps exactly one archive and no object is left unnamed.
    """
    from bedrock.runs.models import Run

    if Run.objects.filter(pk=run.pk).exclude(output_archive_key="").exists():
        return
    key = f"runs/{run.pk}/output-{uuid.uuid4().hex[:12]}.zip"
    stored = archive_store(directory, key, run_id=run.pk)
    try:
        with transaction.atomic():
            archive_upload_claim(stored.key)
            kept = Run.objects.filter(pk=run.pk, output_archive_key="").update(
                output_archive_key=stored.key,
                output_archive_size=stored.size,
                output_archive_sha256=stored.sha256,
                unpublished_reason=reason,
            )
            if not kept:
                raise _AlreadyKept
    except _AlreadyKept:
        _discard(stored.key)
        return
    except BaseException:
        _discard(stored.key)
        raise
    run.output_archive_key, run.output_archive_size = stored.key, stored.size
    run.output_archive_sha256, run.unpublished_reason = stored.sha256, reason


def run_archive_release(sender: object, instance, **kwargs: object) -> None:
    """When a run is deleted, delete the archive it kept (``post_delete`` of Run).

    The key is recorded as an upload without a run in the deleting transaction, so that if the
    storage refuses now (or the process dies before the commit's callback), the reconciler's
    :func:`archives_reconcile` finds it unnamed and deletes it.
    """
    key = instance.output_archive_key
    if not key:
        return
    ArchiveUpload.objects.get_or_create(storage_key=key, defaults={"run": None})
    transaction.on_commit(lambda: _discard(key))


def run_archive_download_url(*, run) -> str | None:
    """A signed URL for the run's own archive, as :func:`model_version_download_url`."""
    return artefact_download_url(
        run.output_archive_key,
        filename=run_archive_filename(run),
        expiry=settings.BEDROCK_DOWNLOAD_URL_EXPIRY,
    )


def run_archive_filename(run) -> str:
    return f"{run.pipeline.name}-run-{run.number}.zip"


# --- describing, deprecating and deleting versions ------------------------------------------------
def model_version_update(*, actor: Actor, version: ModelVersion, description: str) -> ModelVersion:
    """Describe a version: what it was trained on, what changed. A project developer or admin."""
    require_role(
        actor,
        version.model.project,
        Role.DEVELOPER,
        "Only a project developer may describe versions.",
    )
    if len(description) > MAX_DESCRIPTION:
        raise ValidationError(
            {
                "description": (
                    f"The description has {len(description):,} characters; at most "
                    f"{MAX_DESCRIPTION:,} are kept."
                )
            }
        )
    ModelVersion.objects.filter(pk=version.pk).update(description=description)
    version.description = description
    return version


def model_version_deprecate(*, actor: Actor, version: ModelVersion) -> ModelVersion:
    """No longer offer ``version`` for new runs; it stays downloadable, and a run that names it
    by id (a rerun) still takes it. A project admin."""
    return _set_deprecated(actor, version, timezone.now())


def model_version_undeprecate(*, actor: Actor, version: ModelVersion) -> ModelVersion:
    """Offer a deprecated version again."""
    return _set_deprecated(actor, version, None)


def _set_deprecated(actor: Actor, version: ModelVersion, when) -> ModelVersion:
    require_role(
        actor, version.model.project, Role.ADMIN, "Only a project admin may deprecate versions."
    )
    _refuse_deleted(version)
    with transaction.atomic():
        changed = ModelVersion.objects.filter(
            pk=version.pk, deprecated_at__isnull=when is not None
        ).update(deprecated_at=when)
        if changed and when is not None:
            _version_event(EventKind.MODEL_VERSION_DEPRECATED, version, actor=actor)
    version.refresh_from_db(fields=["deprecated_at"])
    return version


def _refuse_deleted(version: ModelVersion) -> None:
    if version.deleted_at is not None:
        raise ValidationError(
            f"v{version.number} of {version.model.name} was deleted on "
            f"{version.deleted_at:%Y-%m-%d}; its archive is gone."
        )


def model_version_delete(
    *, actor: Actor, version: ModelVersion, reason: str = "", **payload
) -> ModelVersion:
    """Delete the version's archive from storage and keep its row as a tombstone. A project admin.

    Refused while an alias points at it or an active run takes it as input. The archive's bytes
    are deleted inside the transaction that marks the row, holding its lock: if storage refuses,
    the version is not marked deleted and the caller sees the error, so there are never bytes
    without a record of them. ``reason`` and ``payload`` go into the event (retention's).
    """
    require_role(
        actor, version.model.project, Role.ADMIN, "Only a project admin may delete versions."
    )
    from bedrock.runs.models import ACTIVE_STATUSES

    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update(of=("self",)).select_related(
            "model__project"
        )
        version = locked.get(pk=version.pk)
        if version.deleted_at is not None:
            return version
        name = f"v{version.number}"
        alias = ModelAlias.objects.filter(version=version).order_by("name").first()
        if alias is not None:
            raise ValidationError(f"{name} is the {alias.name} alias; move the alias first.")
        active = version.scoring_runs.filter(status__in=list(ACTIVE_STATUSES)).first()
        if active is not None:
            raise ValidationError(
                f"{name} is the input of run #{active.number} of {active.pipeline.name}, which "
                "is still active; delete it once the run has ended."
            )
        artefact_delete(version.storage_key)
        version.deleted_at = timezone.now()
        version.save(update_fields=["deleted_at"])
        extra = {"reason": reason, **payload} if reason else payload
        _version_event(EventKind.MODEL_VERSION_DELETED, version, actor=actor, **extra)
    return version


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
    from bedrock.runs.models import ACTIVE_STATUSES, Run, RunStep

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
            or Run.objects.filter(output_archive_key=key).exists()
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


class VersionDeletedError(BrowseError):
    """The version was deleted, and its archive with it."""


def model_version_files(*, version: ModelVersion) -> list[Entry]:
    """The files inside the version's archive (directories left out), in archive order.

    Read from the archive's central directory by ranged reads, never by downloading it. Raises
    :class:`VersionDeletedError` for a deleted version.
    """
    if version.deleted_at is not None:
        raise VersionDeletedError(
            f"v{version.number} was deleted on {version.deleted_at:%Y-%m-%d}, and its archive "
            "with it"
        )
    entries = artefact_entries(version.storage_key, size=version.size)
    return [entry for entry in entries if not entry.is_dir]


def model_version_file_open(*, version: ModelVersion, name: str) -> EntryStream:
    """The content of the file ``name`` inside the version's archive, streamed by ranged reads."""
    return artefact_open_entry(version.storage_key, name, size=version.size)
