from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from bedrock.models.selectors import model_versions_for


@require_GET
@login_required
def model_version_download(request, pk: int):
    """The version's ZIP as an attachment named like ``churn-model-v3.zip``, for members only.

    An outsider gets a 404, never a hint that the version exists.
    """
    version = get_object_or_404(model_versions_for(request.user), pk=pk)
    try:
        handle = default_storage.open(version.storage_key, "rb")
    except FileNotFoundError:
        raise Http404("The archive of this model version is missing from storage.") from None
    response = FileResponse(handle, as_attachment=True, filename=version.filename)
    response["Content-Length"] = str(version.size)
    return response
