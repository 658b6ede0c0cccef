"""The one place Bedrock talks to Nomad: a python-nomad client built from settings.

python-nomad 2.1.0 does not verify TLS certificates unless told to, and reads ``NOMAD_*``
variables from the environment on its own; both are made explicit here, from settings.
"""

from __future__ import annotations

import nomad
from django.conf import settings
from nomad.api import exceptions as nomad_errors

__all__ = ["client", "error_text", "nomad_errors", "status_of"]

TIMEOUT_SECONDS = 15


def client() -> nomad.Nomad:
    verify: bool | str = not settings.NOMAD_SKIP_VERIFY
    if verify and settings.NOMAD_CACERT:
        verify = settings.NOMAD_CACERT
    cert: tuple[str, str] | tuple[()] = ()
    if settings.NOMAD_CLIENT_CERT and settings.NOMAD_CLIENT_KEY:
        cert = (settings.NOMAD_CLIENT_CERT, settings.NOMAD_CLIENT_KEY)
    return nomad.Nomad(
        address=settings.NOMAD_ADDR.rstrip("/"),
        token=settings.NOMAD_TOKEN or None,
        namespace=settings.NOMAD_NAMESPACE or None,
        region=settings.NOMAD_REGION or None,
        timeout=TIMEOUT_SECONDS,
        verify=verify,
        cert=cert,
    )


def error_text(exc: Exception) -> str:
    """Nomad's own words for a failed call (plain-text bodies), never the request's headers."""
    response = getattr(exc, "nomad_resp", None)
    status = getattr(response, "status_code", None)
    text = getattr(response, "text", None)
    if status is not None:
        body = (text or "").strip()[:500]
        return f"HTTP {status}: {body}" if body else f"HTTP {status}"
    return f"{type(response or exc).__name__}: {response or exc}"[:500]


def status_of(exc: Exception) -> int | None:
    return getattr(getattr(exc, "nomad_resp", None), "status_code", None)
