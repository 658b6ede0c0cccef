"""Model versions: publishing (a version exists only once its archive is stored and verified),
signed downloads and browsing the files inside one.

Callers check membership first (``model_versions_for``); these functions trust the version given.
"""

from __future__ import annotations

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


def storage_key_for(run) -> str:
    # One key per run: publishing twice overwrites nothing and a retry finds its own leftovers.
    return f"models/{run.pipeline.model_id}/run-{run.pk}.zip"


def model_version_publish(*, run, directory: Path) -> ModelVersion:
    """Pack ``directory`` into storage, then record it as the model's next version.

    Safe to run twice: a run publishes at most one version. If anything fails after the upload,
    the stored archive is deleted, so no object is left without its version.
    """
    existing = ModelVersion.objects.filter(run=run).first()
    if existing is not None:
        return existing
    key = storage_key_for(run)
    artefact_delete(key)  # a leftover of an attempt that died between upload and record
    stored = artefact_store(directory, key)
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
        existing = ModelVersion.objects.filter(run=run).first()
        if existing is not None and existing.storage_key == key:
            return existing
        artefact_delete(key)
        raise
    except BaseException:
        artefact_delete(key)
        raise


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
