"""Downloads of model versions, and of single files inside them, for project members only.

An archive is handed out as a redirect to a signed URL valid for ``BEDROCK_DOWNLOAD_URL_EXPIRY``
where the storage can sign one (S3, GCS): the bytes flow from the bucket, not through Bedrock. On
the local filesystem Bedrock streams the file itself and honours a single ``Range`` (206, or 416
when nothing of it lies in the file), so interrupted downloads resume. A file inside an archive
is always streamed by Bedrock, read from the archive by ranged reads: no storage serves that alone.

An outsider gets a 404, never a hint that the version exists; an anonymous visitor is sent to log
in. A run's own token (see ``bedrock.accounts.middleware``) may fetch the version its run scores
with, and no other; and, by model and version number, any version of its own project's models
(``bdrk.download_model`` in a step), always streamed: a step may not reach a signed storage URL.
A deleted version answers 410 Gone, naming it. A training run whose ref its pipeline's publish
policy kept from publishing keeps its archive, downloaded here the same way by its project's
members.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.contrib.auth.views import redirect_to_login
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.utils.cache import add_never_cache_headers
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from bedrock.models.artefacts import BrowseError, EntryNotFoundError, RangeReader, artefact_ranges
from bedrock.models.models import Model, ModelVersion
from bedrock.models.selectors import model_versions_for
from bedrock.models.services import (
    model_version_download_url,
    model_version_file_open,
    run_archive_download_url,
    run_archive_filename,
)
from bedrock.runs.selectors import runs_for

_CHUNK = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_UNSATISFIABLE = (-1, -1)


def _version(request: HttpRequest, pk: int) -> ModelVersion | HttpResponse:
    run = getattr(request, "bedrock_run", None)
    if run is not None:
        if run.input_model_version_id != pk:
            raise Http404("This run token may fetch only its run's input model version.")
        versions = ModelVersion.objects.select_related("model")
    elif not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    else:
        versions = model_versions_for(request.user)
    version = get_object_or_404(versions, pk=pk)
    return _gone(version) if version.deleted_at else version


def _gone(version: ModelVersion) -> HttpResponse:
    return HttpResponse(
        f"v{version.number} of {version.model.name} was deleted on "
        f"{version.deleted_at:%Y-%m-%d}, and its archive with it.",
        status=410,
        content_type="text/plain; charset=utf-8",
    )


@require_GET
def model_version_download(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The version's ZIP as an attachment named like ``churn-model-v3.zip``."""
    version = _version(request, pk)
    if isinstance(version, HttpResponse):
        return version
    return _redirect_or_stream(
        request, model_version_download_url(version=version), _Archive.of_version(version)
    )


@require_GET
def run_output_download(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The archive a run kept because its pipeline's publish policy did not publish it."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    run = get_object_or_404(runs_for(request.user).exclude(output_archive_key=""), pk=pk)
    archive = _Archive(
        run.output_archive_key,
        run.output_archive_size or 0,
        run.output_archive_sha256,
        run_archive_filename(run),
    )
    return _redirect_or_stream(request, run_archive_download_url(run=run), archive)


def _redirect_or_stream(
    request: HttpRequest, url: str | None, archive: _Archive
) -> HttpResponseBase:
    if url is not None:
        response = HttpResponseRedirect(url)
        add_never_cache_headers(response)  # a cached redirect would outlive its signature
        return response
    return _stream_archive(request, archive)


@require_GET
def model_version_archive(request: HttpRequest, model: str, number: int) -> HttpResponseBase:
    """A version's ZIP by its model (name or id) and number, for a run's token in its project."""
    run = getattr(request, "bedrock_run", None)
    if run is None:
        return _not_found("Fetch a model version with the run's own token (BEDROCK_API_TOKEN).")
    models = Model.objects.filter(project_id=run.pipeline.project_id)
    # A name is what a step usually passes; an id only when no model of the project has that name.
    found = models.filter(name=model).first()
    if found is None and model.isdigit():
        found = models.filter(pk=int(model)).first()
    if found is None:
        return _not_found(f"The run's project has no model named {model!r}.")
    version = (
        ModelVersion.objects.select_related("model").filter(model=found, number=number).first()
    )
    if version is None:
        return _not_found(f"Model {found.name} has no version {number}.")
    if version.deleted_at is not None:
        return JsonResponse({"error": _gone(version).content.decode()}, status=410)
    return _stream_archive(request, _Archive.of_version(version))


def _not_found(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=404)


def _attachment(filename: str) -> str:
    header = content_disposition_header(True, filename)
    # Django returns None only for an inline response without a filename; its stubs say so for
    # every call.
    assert header is not None
    return header


class _RangeBody:
    """``length`` bytes from ``start`` in 1 MiB reads; the response closes the reader."""

    def __init__(self, reader: RangeReader, start: int, length: int) -> None:
        self._reader = reader
        self._start = start
        self._length = length

    def __iter__(self) -> Iterator[bytes]:
        return self._reader.iter_range(self._start, self._length, _CHUNK)

    def close(self) -> None:
        self._reader.close()


@dataclass(frozen=True)
class _Archive:
    """A stored ZIP as a download: a version's, or the one a run kept."""

    key: str
    size: int
    sha256: str
    filename: str

    @classmethod
    def of_version(cls, version: ModelVersion) -> _Archive:
        return cls(version.storage_key, version.size, version.sha256, version.filename)


def _stream_archive(request: HttpRequest, archive: _Archive) -> HttpResponseBase:
    size = archive.size
    etag = f'"{archive.sha256}"'
    byte_range = _requested_range(request, size, etag)
    response: HttpResponseBase
    if byte_range == _UNSATISFIABLE:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response
    try:
        reader = artefact_ranges(archive.key)
    except FileNotFoundError:
        raise Http404(f"The archive {archive.filename} is missing from storage.") from None
    start, end = byte_range or (0, size - 1)
    response = StreamingHttpResponse(
        _RangeBody(reader, start, end - start + 1),
        status=206 if byte_range else 200,
        content_type="application/zip",
    )
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Content-Disposition"] = _attachment(archive.filename)
    if byte_range:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        # Checked by the run hooks' downloads; a part cannot be checked against the whole's hash.
        response["X-Bedrock-SHA256"] = archive.sha256
    return response


def _requested_range(request: HttpRequest, size: int, etag: str) -> tuple[int, int] | None:
    """The one byte range asked for, inclusive; None for the whole file; or ``_UNSATISFIABLE``.

    As RFC 9110 allows, a malformed ``Range`` or one of several ranges is answered with the whole
    file, and so is a ``Range`` whose ``If-Range`` names another version of it.
    """
    header = request.headers.get("Range")
    if not header:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return _UNSATISFIABLE
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return _UNSATISFIABLE
    return start, min(int(last), size - 1) if last else size - 1


@require_GET
def model_version_file(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The file ``?name=`` inside the version's archive, as an attachment under its base name.

    Streamed from ranged reads of the archive, 1 MiB at a time, whatever the file's size.
    """
    version = _version(request, pk)
    if isinstance(version, HttpResponse):
        return version
    name = request.GET.get("name", "")
    if not name:
        return HttpResponseBadRequest(
            "Name the file to fetch: ?name=PATH, its path inside the archive as the version's "
            "file list shows it.",
            content_type="text/plain; charset=utf-8",
        )
    try:
        stream = model_version_file_open(version=version, name=name)
    except EntryNotFoundError:
        raise Http404(f"Version {version} holds no file named {name!r}.") from None
    except FileNotFoundError:
        raise Http404("The archive of this model version is missing from storage.") from None
    except BrowseError as exc:
        return HttpResponse(
            f"{name} cannot be read from {version.filename}: {exc}",
            status=422,
            content_type="text/plain; charset=utf-8",
        )
    response = StreamingHttpResponse(stream, content_type="application/octet-stream")
    response["Content-Length"] = str(stream.entry.size)
    response["Content-Disposition"] = _attachment(PurePosixPath(name).name or "file")
    response["X-Content-Type-Options"] = "nosniff"
    return response
