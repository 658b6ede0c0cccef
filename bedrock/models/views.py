from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from bedrock.models.models import ModelVersion
from bedrock.models.selectors import model_versions_for


@require_GET
def model_version_download(request, pk: int):
    """The version's ZIP as an attachment named like ``churn-model-v3.zip``, for members only.

    An outsider gets a 404, never a hint that the version exists. A run's own token (see
    ``bedrock.secrets.middleware``) may fetch the version its run scores with, and no other.
    """
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
    try:
        handle = default_storage.open(version.storage_key, "rb")
    except FileNotFoundError:
        raise Http404("The archive of this model version is missing from storage.") from None
    response = FileResponse(handle, as_attachment=True, filename=version.filename)
    response["Content-Length"] = str(version.size)
    return response
