"""A PEP 503 package index of one project, ``bdrk``: Bedrock's client, for every step's pip.

Steps get ``PIP_EXTRA_INDEX_URL=<api domain>/pypi/simple/`` (bedrock.runs.executors.base), so a
requirements file pinning Basis AI's ``bdrk`` installs Bedrock's client from here while everything
else still comes from PyPI. The client is open code: no authentication, and nothing but the
client either; any other project name is a 404, so the index can never shadow a PyPI package.
"""

from __future__ import annotations

import logging
import re
from html import escape

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from bedrock.tracking.wheels import PROJECT, ClientSourceError, Wheel, wheel_named, wheels

logger = logging.getLogger(__name__)
_HTML = "text/html; charset=utf-8"
# PEP 629: the version of the simple API these pages follow.
_HEAD = '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'


def normalized(name: str) -> str:
    """PEP 503's normal form of a project name: ``Bdrk`` and ``BDRK`` are ``bdrk``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _page(title: str, links: list[str]) -> HttpResponse:
    body = "\n".join(links)
    html = f"{_HEAD}<title>{escape(title)}</title></head><body>\n{body}\n</body></html>\n"
    return HttpResponse(html, content_type=_HTML)


def _unavailable(exc: ClientSourceError) -> HttpResponse:
    # The reason names the server's paths: for its log and `bedrock check`, not for anyone asking.
    logger.error("The package index cannot build the client: %s", exc)
    return HttpResponse(
        "Bedrock's client is not available on this server; its operator finds why in the "
        "server's log and in `bedrock check` (bedrock.W050).",
        status=503,
        content_type="text/plain; charset=utf-8",
    )


@require_safe
def simple_root(request: HttpRequest) -> HttpResponse:
    """The projects of the index: ``bdrk`` alone."""
    return _page("Simple index", [f'<a href="{PROJECT}/">{PROJECT}</a>'])


def _link(wheel: Wheel) -> str:
    href = f"../../files/{wheel.filename}#sha256={wheel.sha256}"
    python = escape(wheel.requires_python)
    return f'<a href="{href}" data-requires-python="{python}">{wheel.filename}</a>'


@require_safe
def simple_project(request: HttpRequest, project: str) -> HttpResponse:
    """Every wheel of the project, each with its hash (pip checks it) and its Python versions."""
    if normalized(project) != PROJECT:
        raise Http404("This index serves bdrk alone; other packages come from PyPI.")
    try:
        built = wheels()
    except ClientSourceError as exc:
        return _unavailable(exc)
    return _page(f"Links for {PROJECT}", [_link(wheel) for wheel in built])


@require_safe
def wheel_file(request: HttpRequest, filename: str) -> HttpResponse:
    try:
        wheel = wheel_named(filename)
    except ClientSourceError as exc:
        return _unavailable(exc)
    if wheel is None:
        raise Http404(f"The index holds no file named {filename}.")
    response = HttpResponse(wheel.content, content_type="application/octet-stream")
    response["Content-Length"] = str(len(wheel.content))
    response["Content-Disposition"] = f'attachment; filename="{wheel.filename}"'
    return response
