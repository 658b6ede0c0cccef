"""The model page's version actions: describe a version, deprecate it (and undo that), delete it.

Each change is a POST after a page that says what it will do; the services decide who may. An
outsider gets a 404, a member without the role a 403, as everywhere in the UI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from bedrock.models.models import ModelVersion
from bedrock.models.selectors import model_versions_for
from bedrock.models.services import (
    MAX_DESCRIPTION,
    model_version_delete,
    model_version_deprecate,
    model_version_undeprecate,
    model_version_update,
)
from bedrock.pipelines.models import Role
from bedrock.pipelines.selectors import has_role

logger = logging.getLogger(__name__)


class VersionDescriptionForm(forms.Form):
    description = forms.CharField(
        required=False,
        max_length=MAX_DESCRIPTION,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=f"What it was trained on, what changed; at most {MAX_DESCRIPTION:,} characters.",
    )


def _version(request: HttpRequest, pk: int, role: str) -> ModelVersion:
    version = get_object_or_404(model_versions_for(request.user), pk=pk)
    if not has_role(request.user, version.model.project, role):
        raise PermissionDenied(
            f"This needs the {role} role in the project {version.model.project}."
        )
    return version


def _on_model_page(version: ModelVersion) -> HttpResponse:
    url = reverse("ui:model", args=[version.model_id])
    return redirect(f"{url}#version-{version.number}")


@require_http_methods(["GET", "POST"])
@login_required
def model_version_describe(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version(request, pk, Role.DEVELOPER)
    form = VersionDescriptionForm(
        request.POST if request.method == "POST" else None,
        initial={"description": version.description},
    )
    if form.is_bound and form.is_valid():
        try:
            model_version_update(
                actor=request.user, version=version, description=form.cleaned_data["description"]
            )
        except ValidationError as exc:
            form.add_error("description" if hasattr(exc, "error_dict") else None, exc)
        else:
            messages.success(request, f"Saved the description of v{version.number}.")
            return _on_model_page(version)
    return render(
        request,
        "ui/model_version_describe.html",
        {"version": version, "form": form, "current_project": version.model.project},
    )


@dataclass(frozen=True)
class _Action:
    verb: str
    done: str
    warning: str


_ACTIONS = {
    "deprecate": _Action(
        "Deprecate",
        "Deprecated",
        "It is no longer offered for new batch scoring runs; it stays downloadable, and a run "
        "that names it (a rerun) still takes it.",
    ),
    "undeprecate": _Action("Offer again", "Offered", "It is offered for new runs again."),
    "delete": _Action(
        "Delete",
        "Deleted",
        "Its archive is deleted from storage for good: it can no longer be downloaded or scored "
        "with. Its number, its run and its history stay.",
    ),
}
_SERVICES: dict[str, Callable[..., ModelVersion]] = {
    "deprecate": model_version_deprecate,
    "undeprecate": model_version_undeprecate,
    "delete": model_version_delete,
}


@require_http_methods(["GET", "POST"])
@login_required
def model_version_change(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Confirm (GET), then deprecate, offer again or delete (POST) a version. A project admin."""
    if action not in _ACTIONS:
        raise Http404(f"There is no action {action!r} on a model version.")
    version = _version(request, pk, Role.ADMIN)
    if request.method == "POST":
        try:
            _SERVICES[action](actor=request.user, version=version)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except Exception as exc:
            # The storage refused (any backend's error): the version is unchanged, and the user
            # may try again.
            logger.exception("could not %s %s", action, version)
            messages.error(
                request, f"v{version.number} was not changed: the storage said {exc}. Try again."
            )
        else:
            messages.success(request, f"{_ACTIONS[action].done} v{version.number}.")
        return _on_model_page(version)
    return render(
        request,
        "ui/model_version_confirm.html",
        {
            "version": version,
            "action": action,
            "meaning": _ACTIONS[action],
            "current_project": version.model.project,
        },
    )
