"""Pages of a team: creating a project, its members and roles, its models.

As everywhere in the UI, a project outside the user's is a 404 and a member whose role is too low
for a change gets a 403; the services decide, these views only find, render and redirect.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MinValueValidator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from bedrock.accounts.services import CreatedToken, api_token_create
from bedrock.actors import Actor
from bedrock.models.models import Model
from bedrock.models.selectors import models_for
from bedrock.models.services import model_create, model_update
from bedrock.pipelines import services as pipeline_services
from bedrock.pipelines.models import Membership, Pipeline, Project, Role
from bedrock.pipelines.selectors import projects_for, remember_role, role_allows, role_of

# --- forms ---------------------------------------------------------------------------------------


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"name": "Letters, digits, '-', '_' and '.'; unique on this site."}


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DEVELOPER)


class ModelSettingsForm(forms.ModelForm):
    class Meta:
        model = Model
        fields = ["name", "description", "keep_versions"]
        labels = {"keep_versions": "Keep the newest versions"}
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {
            "keep_versions": "Keep the newest this many versions, and every version an alias "
            "points at or a run used recently; the others are deleted. Empty keeps them all.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        keep = cast(forms.IntegerField, self.fields["keep_versions"])
        keep.min_value = 1
        keep.validators.append(MinValueValidator(1))
        keep.widget.attrs["min"] = 1


def add_errors(form: forms.BaseForm, exc: ValidationError) -> None:
    """A service's errors on the form's fields, the others above the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


# --- finding a project ---------------------------------------------------------------------------
def _project_and_role(request: HttpRequest, pk: int) -> tuple[Project, str]:
    """The project and the caller's role in it, in one read; a 404 outside the user's projects."""
    user = request.user
    project = projects_for(user).annotate(caller_role=role_of(user, "pk")).filter(pk=pk).first()
    if project is None:
        raise Http404("No Project matches the given query.")
    remember_role(project, user, project.caller_role)
    return project, project.caller_role


def _admin_project(request: HttpRequest, pk: int) -> Project:
    project, role = _project_and_role(request, pk)
    if not role_allows(role, Role.ADMIN):
        raise PermissionDenied(f"This needs the admin role in the project {project}.")
    return project


def _back(project: Project) -> HttpResponse:
    return redirect("ui:project", pk=project.pk)


# --- projects ------------------------------------------------------------------------------------
@require_GET
@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    projects = projects_for(user).annotate(caller_role=role_of(user, "pk"))
    return render(
        request,
        "ui/project_list.html",
        {"projects": projects, "can_create": pipeline_services.may_create_projects(user)},
    )


@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    allowed = pipeline_services.may_create_projects(request.user)
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and allowed and form.is_valid():
        try:
            project = pipeline_services.project_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"Created the project {project.name}; you are its admin.")
            return _back(project)
    return render(request, "ui/project_new.html", {"form": form, "allowed": allowed})


@require_GET
@login_required
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    project, role = _project_and_role(request, pk)
    return _project_page(request, project, role)


def _project_page(
    request: HttpRequest,
    project: Project,
    role: str | None,
    *,
    member_form: forms.BaseForm | None = None,
    project_form: forms.BaseForm | None = None,
) -> HttpResponse:
    """The project page; with a bound form, that form again with its errors, in its place."""
    is_admin = role_allows(role, Role.ADMIN)
    members = Membership.objects.filter(project=project).select_related("user")
    bound = member_form is not None or project_form is not None
    if project_form is None and is_admin:
        project_form = ProjectForm(instance=project)
    return render(
        request,
        "ui/project_detail.html",
        {
            "project": project,
            "current_project": project,
            "role": role,
            "is_admin": is_admin,
            "members": members.order_by("user__username"),
            "roles": Role.choices,
            "models": models_for(request.user).filter(project=project).order_by("name"),
            "member_form": member_form or MemberForm(),
            "project_form": project_form,
        },
        status=400 if bound else 200,
    )


@require_POST
@login_required
def project_edit(request: HttpRequest, pk: int) -> HttpResponse:
    project = _admin_project(request, pk)
    form = ProjectForm(request.POST, instance=Project.objects.get(pk=project.pk))
    if form.is_valid():
        try:
            pipeline_services.project_update(
                actor=request.user, project=project, **form.cleaned_data
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"Saved the project {project.name}.")
            return _back(project)
    return _project_page(request, project, Role.ADMIN, project_form=form)


# --- members -------------------------------------------------------------------------------------
@require_POST
@login_required
def membership_set(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a member or change their role: the project page's two forms both post here."""
    project = _admin_project(request, pk)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            membership = pipeline_services.membership_set(
                actor=request.user, project=project, **form.cleaned_data
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(
                request, f"{membership.user.username} is now {membership.role} of {project.name}."
            )
            return _back(project)
    return _project_page(request, project, Role.ADMIN, member_form=form)


@login_required
def membership_remove(request: HttpRequest, pk: int, username: str) -> HttpResponse:
    """GET asks to confirm; only the POST of that page removes the member."""
    project = _admin_project(request, pk)
    membership = (
        Membership.objects.filter(project=project, user__username=username)
        .select_related("user")
        .first()
    )
    if membership is None:
        raise Http404(f"{username} is not a member of {project.name}.")
    error = None
    if request.method == "POST":
        try:
            pipeline_services.membership_remove(
                actor=request.user, project=project, username=username
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"Removed {username} from {project.name}.")
            if membership.user_id == request.user.pk and not request.user.is_superuser:
                return redirect("ui:projects")
            return _back(project)
    context = {
        "project": project,
        "current_project": project,
        "membership": membership,
        "error": error,
    }
    return render(request, "ui/project_member_remove.html", context, status=400 if error else 200)


# --- models --------------------------------------------------------------------------------------
@login_required
def model_new(request: HttpRequest, pk: int) -> HttpResponse:
    return _model_page(request, _admin_project(request, pk), None)


@login_required
def model_edit(request: HttpRequest, pk: int) -> HttpResponse:
    model = models_for(request.user).filter(pk=pk).first()
    if model is None:
        raise Http404("No Model matches the given query.")
    model.project = _admin_project(request, model.project_id)
    return _model_page(request, model.project, model)


def _model_page(request: HttpRequest, project: Project, model: Model | None) -> HttpResponse:
    """Create a model (``model`` None) or edit one; the form binds a copy, so that the page's
    heading keeps the saved name while the form shows what was typed."""
    instance = Model.objects.get(pk=model.pk) if model is not None else None
    form = ModelSettingsForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        try:
            saved = _model_save(request.user, project, model, form.cleaned_data)
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"Saved the model {saved.name}.")
            return _back(project)
    context = {"project": project, "current_project": project, "form": form, "model": model}
    return render(request, "ui/project_model_form.html", context)


def _model_save(actor: Actor, project: Project, model: Model | None, fields: dict) -> Model:
    with transaction.atomic():
        if model is None:
            model = model_create(
                actor=actor, project=project, name=fields["name"], description=fields["description"]
            )
        return model_update(actor=actor, model=model, **fields)


# --- a pipeline with a new model -----------------------------------------------------------------
def pipeline_create_from_form(actor: Actor, form: Any) -> Pipeline:
    """Create the pipeline of a valid PipelineForm, and first the new model it names, if any, in
    one transaction: a pipeline the service refuses leaves no model behind."""
    project = form.cleaned_data["project"]
    fields = form.service_fields()
    new_model = form.cleaned_data.get("new_model")
    if not new_model:
        return pipeline_services.pipeline_create(actor=actor, project=project, **fields)
    with transaction.atomic():
        try:
            fields["model"] = model_create(actor=actor, project=project, name=new_model)
        except ValidationError as exc:
            # Every problem of the new model is one of the name the form's field gave.
            raise ValidationError({"new_model": exc.messages}) from exc
        return pipeline_services.pipeline_create(actor=actor, project=project, **fields)


# --- a token of the tokens page ------------------------------------------------------------------
def token_create_from_form(user: AuthUser, form: forms.Form) -> CreatedToken | None:
    """The token a valid TokenForm asks for, or None with the service's errors on the form."""
    data = form.cleaned_data
    try:
        return api_token_create(
            user=user,
            name=data["name"],
            expires_at=data.get("expires_at"),
            read_only=data["read_only"],
        )
    except ValidationError as exc:
        # The service names the expiry it worked out; the form, the choice it came from.
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"expires": exc.messages}
        fields = {
            "expires" if name == "expires_at" else name: text for name, text in errors.items()
        }
        add_errors(form, ValidationError(fields))
        return None
