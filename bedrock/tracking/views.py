"""``POST /api/tracking``: what a run's steps log, sent with the run's token.

The token alone says which run: a step needs no id of its own to log, and a token can write to
its run and no other, only while the run is active. One request carries a batch (see
bedrock.tracking.batch); Bedrock's client sends thousands of points in each.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bedrock.envconfig import describe_size
from bedrock.runs.models import Run
from bedrock.tracking.batch import BatchError, parse_batch
from bedrock.tracking.services import tracking_record


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _body(request: HttpRequest, limit: int) -> bytes | None:
    """The body, read as a stream (the form limit does not apply), or None past ``limit``."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt  # the run's token authenticates; a browser session never does here
@require_POST
def tracking_batch(request: HttpRequest) -> JsonResponse:
    run = getattr(request, "bedrock_run", None)
    if not isinstance(run, Run) or not run.is_active:
        return _error(401, "Log with the run's own token (BEDROCK_API_TOKEN) while it runs.")
    limit = settings.BEDROCK_TRACKING_MAX_REQUEST_BYTES
    body = _body(request, limit)
    if body is None:
        return _error(
            413,
            f"The batch is larger than {describe_size(limit)} "
            "(BEDROCK_TRACKING_MAX_REQUEST_BYTES); send it in smaller parts. Nothing was stored.",
        )
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _error(400, f"The body is not JSON: {exc}. Nothing was stored.")
    try:
        recorded = tracking_record(run=run, batch=parse_batch(payload))
    except BatchError as exc:
        return _error(400, f"{exc} Nothing of the batch was stored.")
    return JsonResponse(recorded.as_dict())
