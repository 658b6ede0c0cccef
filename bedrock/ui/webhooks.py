"""A project's webhooks: list, create (the secret shown once), edit, delete, test, and the
delivery log. Only project admins manage them; other members are refused (403), and anyone
outside the project finds nothing (404)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from bedrock.events import services
from bedrock.events.models import EventKind, Webhook
from bedrock.events.selectors import webhook_deliveries_for, webhooks_for
from bedrock.pipelines.models import Project, Role
from bedrock.pipelines.selectors import projects_for, role_allows, role_of

DELIVERIES_PER_PAGE = 25
KIND_CHOICES = [(kind.value, kind.label) for kind in services.SUBSCRIBABLE_KINDS]


class WebhookEditForm(forms.Form):
    description = forms.CharField(max_length=200, required=False)
    kinds = forms.MultipleChoiceField(
        choices=KIND_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Events",
        help_text="None chosen means every kind of event.",
    )
    active = forms.BooleanField(required=False, initial=True)


class WebhookForm(WebhookEditForm):
    url = forms.CharField(
        label="URL",
        max_length=2000,
        help_text="An http or https address on the public internet.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/bedrock"}),
    )
    field_order = ["url", "description", "kinds"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["active"]  # a new webhook starts on; the edit form turns it off


def _admin_project(request: HttpRequest, pk: int) -> Project:
    """The project, if the caller is its admin; 404 to outsiders, 403 to other members."""
    project = (
        projects_for(request.user).annotate(caller_role=role_of(request.user, "pk")).filter(pk=pk)
    ).first()
    if project is None:
        raise Http404("No Project matches the given query.")
    if not role_allows(project.caller_role, Role.ADMIN):
        raise PermissionDenied(f"Only admins of the project {project} manage its webhooks.")
    return project


def _webhook(request: HttpRequest, pk: int, webhook_pk: int) -> Webhook:
    project = _admin_project(request, pk)
    return get_object_or_404(webhooks_for(request.user).filter(project=project), pk=webhook_pk)


def _add_errors(form: forms.Form, exc: ValidationError) -> None:
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.error_dict.items():
        form.add_error(name if name in form.fields else None, errors)


@login_required
def webhooks(request: HttpRequest, pk: int) -> HttpResponse:
    """The project's webhooks and a form for one more; a new secret shows in this one response."""
    project = _admin_project(request, pk)
    form = WebhookForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = services.webhook_create(
                actor=request.user,
                project=project,
                url=form.cleaned_data["url"],
                kinds=form.cleaned_data["kinds"],
                description=form.cleaned_data["description"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            form = WebhookForm()
    response = render(
        request,
        "ui/webhooks.html",
        {
            "project": project,
            "current_project": project,
            "form": form,
            "created": created,
            "webhooks": webhooks_for(request.user).filter(project=project),
            "kind_labels": dict(EventKind.choices),
        },
    )
    add_never_cache_headers(response)
    return response


@login_required
def webhook_detail(request: HttpRequest, pk: int, webhook_pk: int) -> HttpResponse:
    """Edit what a webhook hears of, and its delivery log, newest first."""
    webhook = _webhook(request, pk, webhook_pk)
    initial = {"description": webhook.description, "kinds": webhook.kinds, "active": webhook.active}
    form = WebhookEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.webhook_update(actor=request.user, webhook=webhook, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Saved the webhook.")
            return redirect("ui:webhook", pk=pk, webhook_pk=webhook.pk)
    deliveries = webhook_deliveries_for(request.user).filter(webhook=webhook)
    return render(
        request,
        "ui/webhooks_detail.html",
        {
            "project": webhook.project,
            "current_project": webhook.project,
            "webhook": webhook,
            "form": form,
            "page": Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page")),
        },
    )


@login_required
def webhook_delete(request: HttpRequest, pk: int, webhook_pk: int) -> HttpResponse:
    """Ask first (GET), delete on the answer (POST)."""
    webhook = _webhook(request, pk, webhook_pk)
    if request.method == "POST":
        services.webhook_delete(actor=request.user, webhook=webhook)
        messages.success(request, f"Deleted the webhook to {webhook.url}.")
        return redirect("ui:webhooks", pk=pk)
    return render(
        request,
        "ui/webhooks_delete.html",
        {"project": webhook.project, "current_project": webhook.project, "webhook": webhook},
    )


@require_POST
@login_required
def webhook_test(request: HttpRequest, pk: int, webhook_pk: int) -> HttpResponse:
    webhook = _webhook(request, pk, webhook_pk)
    try:
        services.webhook_test(actor=request.user, webhook=webhook)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Sent a test event; its delivery is at the top of the log.")
    return redirect("ui:webhook", pk=pk, webhook_pk=webhook.pk)


@require_POST
@login_required
def webhook_redeliver(
    request: HttpRequest, pk: int, webhook_pk: int, delivery_pk: int
) -> HttpResponse:
    webhook = _webhook(request, pk, webhook_pk)
    delivery = get_object_or_404(
        webhook_deliveries_for(request.user).filter(webhook=webhook), pk=delivery_pk
    )
    services.webhook_redeliver(actor=request.user, delivery=delivery)
    messages.success(request, f"Sending event {delivery.event_id} again, as a new delivery.")
    return redirect("ui:webhook", pk=pk, webhook_pk=webhook.pk)
