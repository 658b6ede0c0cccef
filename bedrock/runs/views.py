"""Endpoints a run's own steps call with the run's token (``BEDROCK_API_TOKEN``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bedrock.envconfig import describe_size
from bedrock.models.archive import unpack
from bedrock.models.archive.pipe import PackedStream
from bedrock.models.artefacts import ArchiveError
from bedrock.models.services import training_output_store
from bedrock.pipelines import git
from bedrock.pipelines.models import PipelineKind
from bedrock.runs.models import Run, RunStep
from bedrock.runs.stages import StaleAttemptError, stage_store, stale_attempt
from bedrock.secrets.services import git_credentials_for

_CHUNK = 1 << 20


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


class _BodyTooLarge(Exception):
    pass


def _spool_body(request: HttpRequest, spool: BinaryIO) -> None:
    """Copy the request body to ``spool``, refusing it once it passes BEDROCK_MAX_UPLOAD_BYTES.

    A declared Content-Length over the limit is refused before a byte is read; a body that
    turns out longer (a chunked upload, a lying header) is refused at the first chunk past it.
    """
    limit = settings.BEDROCK_MAX_UPLOAD_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > limit:
        raise _BodyTooLarge
    received = 0
    while chunk := request.read(_CHUNK):
        received += len(chunk)
        if received > limit:
            raise _BodyTooLarge
        spool.write(chunk)
    spool.seek(0)


@contextlib.contextmanager
def _unpacked_body(request: HttpRequest, *, prefix: str) -> Iterator[Path]:
    """The request body as a directory: spooled within the upload limit, unpacked with the
    archive checks, and removed, with the spool, when the block ends.

    Raises ``_BodyTooLarge`` before anything is unpacked, and ``ArchiveError`` for an archive
    that the checks refuse.
    """
    with tempfile.TemporaryFile(prefix=prefix) as spool:
        _spool_body(request, spool)
        with tempfile.TemporaryDirectory(prefix=prefix) as directory:
            unpack(spool, Path(directory))
            yield Path(directory)


def _too_large() -> JsonResponse:
    limit = settings.BEDROCK_MAX_UPLOAD_BYTES
    return _error(
        413,
        f"The request body is larger than {describe_size(limit)}, the most an upload may be "
        "(BEDROCK_MAX_UPLOAD_BYTES); nothing was stored.",
    )


@require_POST
def run_artefact_upload(request: HttpRequest, pk: int) -> JsonResponse:
    """Publish a training run's /artefact, sent as a ZIP body, as its model's next version.

    Only the run's own token may call this, and only while the run is active; anyone else gets a
    404. Publishing is idempotent: a repeated upload returns the version the first one made.
    The archive is unpacked with the checks a batch scoring run's fetch makes (no entry may
    leave the directory, the archive limits) and packed again, so every stored version is
    Bedrock's own ZIP. A body over BEDROCK_MAX_UPLOAD_BYTES is refused with 413, unread. When the
    pipeline's publish policy refuses the run's ref, the archive is kept with the run instead:
    ``modelVersion`` is null and ``unpublishedReason`` says why.
    """
    run = getattr(request, "bedrock_run", None)
    if run is None or run.pk != pk:
        return _error(404, f"There is no run {pk} that this token may upload to.")
    if run.pipeline.kind != PipelineKind.TRAINING:
        return _error(409, "Only a training run publishes a model version.")
    try:
        with _unpacked_body(request, prefix="bedrock-upload-") as directory:
            version = training_output_store(run=run, directory=directory)
    except _BodyTooLarge:
        return _too_large()
    except ArchiveError as exc:
        return _error(400, f"The artefact cannot be published: {exc}")
    if version is None:
        run.refresh_from_db(
            fields=["output_archive_size", "output_archive_sha256", "unpublished_reason"]
        )
        kept = {"size": run.output_archive_size, "sha256": run.output_archive_sha256}
        body = {"modelVersion": None, "unpublishedReason": run.unpublished_reason, "archive": kept}
        return JsonResponse(body, status=201)
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


def _own_run(request: HttpRequest, pk: int) -> Run | None:
    """The run ``pk`` if the request carries that run's own token and the run is active."""
    run = getattr(request, "bedrock_run", None)
    if run is None or run.pk != pk or not run.is_active:
        return None
    return run


# The source is packed while the response is sent; two threads keep a busy server responsive.
_PACK_WORKERS = 2
# How many names of left-out links the source response lists in its header.
_LISTED_LINKS = 20


def _drop_unsafe_links(root: Path) -> list[str]:
    """Remove the symbolic links a source archive must not follow; return their names.

    Packing stores a link to a file as that file's content, so a link out of the checkout would
    serve a file of the server (its keys, say). Links to a file inside the checkout stay; links
    out of it, to a directory or to nothing cannot be archived and are left out.
    """
    top = root.resolve()
    dropped: list[str] = []
    for current, directories, files in os.walk(root):
        for name in [*directories, *files]:
            path = Path(current) / name
            if not path.is_symlink():
                continue
            target = path.resolve()
            if not (target.is_relative_to(top) and target.is_file()):
                path.unlink()
                dropped.append(path.relative_to(root).as_posix())
    return sorted(dropped)


@require_GET
def run_source(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The files of the run's commit as a ZIP (no ``.git``), for the run's own token only.

    The checkout comes from the pipeline's Git cache, with the pipeline's credentials, which
    therefore never enter a job. It is packed while it is sent, so memory stays flat.
    """
    run = _own_run(request, pk)
    if run is None:
        return _error(404, f"There is no active run {pk} that this token may read.")
    if not run.commit_sha:
        return _error(409, f"Run {pk} has no resolved commit yet.")
    pipeline = run.pipeline
    scratch = Path(tempfile.mkdtemp(prefix="bedrock-source-"))

    def remove_scratch() -> None:
        shutil.rmtree(scratch, ignore_errors=True)

    try:
        tree = git.checkout(
            pipeline.git_url,
            run.commit_sha,
            scratch / "app",
            cache_key=f"pipeline-{pipeline.pk}",
            credentials=git_credentials_for(pipeline),
        )
        dropped = _drop_unsafe_links(tree)
    except git.GitError as exc:
        remove_scratch()
        return _error(502, f"The source of run {pk} cannot be read: {exc}")
    except BaseException:
        remove_scratch()
        raise
    response = StreamingHttpResponse(
        # A packing failure ends the body early: the client then holds a ZIP without its central
        # directory, which no reader accepts. The server's close() stops the packing.
        PackedStream(tree, workers=_PACK_WORKERS, name="pack-source", on_close=remove_scratch),
        content_type="application/zip",
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{pipeline.pk}-{run.commit_sha[:12]}.zip"'
    )
    response["X-Bedrock-Commit"] = run.commit_sha
    if dropped:
        # Escaped: a file name may hold any character but "/" and NUL, a newline included.
        listed = ", ".join(n.encode("unicode_escape").decode() for n in dropped[:_LISTED_LINKS])
        more = f" and {len(dropped) - _LISTED_LINKS} more" if len(dropped) > _LISTED_LINKS else ""
        response["X-Bedrock-Skipped-Links"] = f"{listed}{more}"
    return response


@csrf_exempt  # the run's token authenticates; a browser session never does here
@require_http_methods(["GET", "PUT"])
def run_step_artefact(request: HttpRequest, pk: int, name: str) -> HttpResponseBase:
    """A step's stage archive: PUT stores the step's /artefact (a ZIP body), GET returns it.

    For the run's own token only, while the run is active. A PUT names the attempt it comes from
    (``?attempt=N``) and is refused with 409 unless the step is running that attempt; it replaces
    what the step stored before. The archive is unpacked with the archive checks and packed
    again, so every stored stage is Bedrock's own ZIP; a body over BEDROCK_MAX_UPLOAD_BYTES is
    refused with 413, unread. GET sends ``X-Bedrock-Sha256`` for the
    client to verify, or 204 when the step stored no archive.
    """
    run = _own_run(request, pk)
    if run is None:
        return _error(404, f"There is no active run {pk} that this token may use.")
    run_step = RunStep.objects.filter(run=run, name=name).first()
    if run_step is None:
        return _error(404, f"Run {pk} has no step {name!r}.")
    if request.method == "PUT":
        attempt = request.GET.get("attempt", "")
        if not attempt.isdigit():
            return _error(400, "Name the step's attempt the archive comes from: ?attempt=N.")
        return _stage_upload(run_step, request, int(attempt))
    response: HttpResponseBase
    if not run_step.artefact_key:
        # Not an error: a step may leave /artefact empty. 404 stays for what is really missing.
        response = HttpResponse(status=204)
        response["X-Bedrock-Artefact"] = "none"
        return response
    try:
        handle = default_storage.open(run_step.artefact_key, "rb")
    except FileNotFoundError:
        return _error(404, f"The artefact of step {name!r} of run {pk} is missing from storage.")
    response = FileResponse(handle, content_type="application/zip")
    response["Content-Length"] = str(run_step.artefact_size)
    response["X-Bedrock-Sha256"] = run_step.artefact_sha256
    return response


def _stage_upload(run_step: RunStep, request: HttpRequest, attempt: int) -> JsonResponse:
    # Refused before the body is read; stage_store checks again under the row's lock.
    if problem := stale_attempt(run_step, attempt):
        return _error(409, f"{problem}; its upload is refused.")
    try:
        with _unpacked_body(request, prefix="bedrock-stage-") as directory:
            stored = stage_store(run_step, directory, attempt=attempt)
    except _BodyTooLarge:
        return _too_large()
    except StaleAttemptError as exc:
        return _error(409, f"{exc}; its upload is refused.")
    except ArchiveError as exc:
        return _error(400, f"The artefact of step {run_step.name!r} cannot be stored: {exc}")
    return JsonResponse(
        {
            "key": stored.key,
            "size": stored.size,
            "sha256": stored.sha256,
            "fileCount": stored.file_count,
        },
        status=201,
    )
