"""Model versions: publishing (a version exists only once its archive is stored and verified),
signed downloads and browsing the files inside one.

Callers check membership first (``model_versions_for``); these functions trust the version given.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from bedrock.models.artefacts import (
    Entry,
    EntryStream,
    artefact_delete,
    artefact_download_url,
    artefact_entries,
    artefact_open_entry,
    artefact_store,
)
from bedrock.models.models import Model, ModelVersion

logger = logging.getLogger(__name__)


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
    stored = artefact_store(directory, storage_key_for(run))
    try:
        with transaction.atomic():
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
        # The caller's own error matters more; the object is named so that it can be removed.
        logger.exception("could not delete the unrecorded archive %r; delete it by hand", key)


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
