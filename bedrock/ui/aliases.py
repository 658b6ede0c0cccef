"""A model's aliases on its page: each alias and who moved it, their history, and for project
admins the forms that set, move, remove and roll back an alias (through bedrock.models.aliases).

The run form's picker lists the project's aliases before its versions (``run_model_aliases``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from bedrock.models.aliases import (
    MAX_NOTE_LENGTH,
    alias_history,
    model_alias_remove,
    model_alias_rollback,
    model_alias_set,
)
from bedrock.models.models import Model, ModelAlias, ModelAliasChange, ModelVersion
from bedrock.models.selectors import models_for
from bedrock.pipelines.models import Pipeline, Role
from bedrock.pipelines.selectors import has_role

SUGGESTED_NAMES = ("production", "staging", "champion")
HISTORY_SHOWN = 50


class _VersionField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ModelVersion) -> str:
        return f"v{obj.number}"


class AliasForm(forms.Form):
    """Set or move an alias to a version of the model."""

    name = forms.CharField(
        label="Alias",
        max_length=63,
        widget=forms.TextInput(attrs={"list": "alias-suggestions", "placeholder": "production"}),
        help_text="Lowercase letters, digits, - and _. An existing alias moves to the version.",
    )
    version = _VersionField(queryset=ModelVersion.objects.none(), empty_label=None)
    note = forms.CharField(
        required=False,
        max_length=MAX_NOTE_LENGTH,
        widget=forms.TextInput(attrs={"placeholder": "Why, for the history"}),
    )

    def __init__(self, *args: Any, model: Model, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Deprecated and deleted versions are refused by the service; they are not offered.
        field = cast(_VersionField, self.fields["version"])
        field.queryset = model.versions.filter(deprecated_at__isnull=True, deleted_at__isnull=True)


def model_aliases_context(request: HttpRequest, model: Model) -> dict[str, Any]:
    """What the model page's aliases section shows: ``{% include "ui/_model_aliases.html" %}``."""
    # What each alias's last change moved it from: the version "Roll back" returns it to.
    last_from = ModelAliasChange.objects.filter(model=model, alias=OuterRef("name")).values(
        "from_version__number"
    )[:1]
    aliases = list(
        model.aliases.select_related("version", "updated_by").annotate(
            rollback_to=Subquery(last_from)
        )
    )
    can_admin = has_role(request.user, model.project, Role.ADMIN)
    return {
        "aliases": aliases,
        "alias_history": alias_history(model)[:HISTORY_SHOWN],
        "alias_form": AliasForm(model=model) if can_admin else None,
        "alias_suggestions": SUGGESTED_NAMES,
    }


def _model(request: HttpRequest, pk: int) -> Model:
    # An outsider gets "not found", never a hint that the model exists.
    return get_object_or_404(models_for(request.user), pk=pk)


def _change(
    request: HttpRequest, pk: int, change: Callable[[HttpRequest, Model], str]
) -> HttpResponse:
    """Make ``change`` to the model's aliases and report what it did, or why it was refused."""
    model = _model(request, pk)
    try:
        done = change(request, model)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(request, done)
    return redirect(reverse("ui:model", args=[model.pk]) + "#aliases")


def _set(request: HttpRequest, model: Model) -> str:
    form = AliasForm(request.POST, model=model)
    if not form.is_valid():
        raise ValidationError([message for errors in form.errors.values() for message in errors])
    data = form.cleaned_data
    alias = model_alias_set(
        actor=request.user,
        model=model,
        name=data["name"],
        version=data["version"],
        note=data["note"],
    )
    return f"{alias} now names v{alias.version.number}."


def _remove(request: HttpRequest, model: Model) -> str:
    name, note = request.POST.get("name", ""), request.POST.get("note", "")
    model_alias_remove(actor=request.user, model=model, name=name, note=note)
    return f"Removed the alias {model.name}@{name}; its history stays."


def _rollback(request: HttpRequest, model: Model) -> str:
    name = request.POST.get("name", "")
    alias = model_alias_rollback(actor=request.user, model=model, name=name)
    return f"Rolled {alias} back to v{alias.version.number}."


@require_POST
@login_required
def model_alias_set_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, _set)


@require_POST
@login_required
def model_alias_remove_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, _remove)


@require_POST
@login_required
def model_alias_rollback_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _change(request, pk, _rollback)


# --- the run form -------------------------------------------------------------------------------
def run_model_aliases(pipeline: Pipeline) -> QuerySet[ModelAlias]:
    """The aliases a batch scoring run of ``pipeline`` may score with, as the picker lists them."""
    return (
        ModelAlias.objects.filter(model__project=pipeline.project)
        .select_related("model", "version")
        .order_by("model__name", "name")
    )
