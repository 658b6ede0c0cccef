"""Endpoints a run's own steps call with the run's token (``BEDROCK_API_TOKEN``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from bedrock.models.artefacts import ArchiveError
from bedrock.models.services import model_version_publish
from bedrock.models.zipstream import unpack
from bedrock.pipelines.models import PipelineKind

_CHUNK = 1 << 20


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_POST
def run_artefact_upload(request: HttpRequest, pk: int) -> JsonResponse:
    """Publish a training run's /artefact, sent as a ZIP body, as its model's next version.

    Only the run's own token may call this, and only while the run is active; anyone else gets a
    404. Publishing is idempotent: a repeated upload returns the version the first one made.
    The archive is unpacked with the checks a batch scoring run's fetch makes (no entry may
    leave the directory) and packed again, so every stored version is Bedrock's own ZIP.
    """
    run = getattr(request, "bedrock_run", None)
    if run is None or run.pk != pk:
        return _error(404, f"There is no run {pk} that this token may upload to.")
    if run.pipeline.kind != PipelineKind.TRAINING:
        return _error(409, "Only a training run publishes a model version.")
    with tempfile.TemporaryFile(prefix="bedrock-upload-") as spool:
        while chunk := request.read(_CHUNK):
            spool.write(chunk)
        spool.seek(0)
        with tempfile.TemporaryDirectory(prefix="bedrock-upload-") as directory:
            try:
                unpack(spool, Path(directory))
                version = model_version_publish(run=run, directory=Path(directory))
            except ArchiveError as exc:
                return _error(400, f"The artefact cannot be published: {exc}")
    return JsonResponse(
        {
            "modelVersion": {
                "id": str(version.pk),
                "number": version.number,
                "size": version.size,
                "sha256": version.sha256,
                "fileCount": version.file_count,
            }
        },
        status=201,
    )
