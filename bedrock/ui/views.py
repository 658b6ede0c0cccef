"""Pages of the web UI.

Each view finds what the user may see through the selectors, calls a service for any change and
renders the result. Anything outside the user's projects is a 404, whether it exists or not; a
member whose role is too low for an action gets a 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from bedrock.accounts import services as account_services
from bedrock.accounts.selectors import api_tokens_for
from bedrock.models.models import ModelVersion
from bedrock.models.selectors import model_versions_for, models_for
from bedrock.pipelines import services as pipeline_services
from bedrock.pipelines import spec as hcl
from bedrock.pipelines.models import Pipeline, PipelineKind, Project, Role
from bedrock.pipelines.selectors import (
    has_role,
    pipeline_with_role,
    pipelines_for,
    projects_for,
    role_allows,
)
from bedrock.runs import services as run_services
from bedrock.runs.models import Run, RunStatus, RunStep, Trigger
from bedrock.runs.plan import stanza_for
from bedrock.runs.selectors import run_with_role
from bedrock.runs.workspace import read_log
from bedrock.secrets import services as secret_services
from bedrock.secrets.selectors import secret_rows_for
from bedrock.ui import teams
from bedrock.ui.aliases import run_model_aliases
from bedrock.ui.config import config_keep, kept_config, read_config
from bedrock.ui.forms import PipelineForm, RunForm, SecretForm, TokenForm
from bedrock.ui.templatetags.bedrock_ui import elapsed
from bedrock.ui.tracking import CompareError, compare_runs, run_tracking, tracking_state

PER_PAGE = 25
# The run page shows this much of each log at once; the rest follows through the log endpoint.
FIRST_LOG_BYTES = 256 * 1024
LOG_CHUNK_BYTES = 256 * 1024


# --- helpers -------------------------------------------------------------------------------------
def _page(request: HttpRequest, items, per_page: int = PER_PAGE) -> Page:
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def _pipeline_and_role(
    request: HttpRequest, pk: int, role: str = Role.VIEWER
) -> tuple[Pipeline, str]:
    """The pipeline and the caller's role in its project, read once for the whole request."""
    found = pipeline_with_role(request.user, pk)
    if found is None:
        raise Http404("No Pipeline matches the given query.")
    pipeline, held = found
    if not role_allows(held, role):
        raise PermissionDenied(f"This needs the {role} role in the project {pipeline.project}.")
    return found


def _pipeline(request: HttpRequest, pk: int, role: str = Role.VIEWER) -> Pipeline:
    return _pipeline_and_role(request, pk, role)[0]


def _run_and_role(request: HttpRequest, pk: int, role: str = Role.VIEWER) -> tuple[Run, str]:
    """The run and the caller's role in its project, read once for the whole request."""
    found = run_with_role(request.user, pk)
    if found is None:
        raise Http404("No Run matches the given query.")
    run, held = found
    if not role_allows(held, role):
        raise PermissionDenied(f"This needs the {role} role in the project {run.pipeline.project}.")
    return found


def _run(request: HttpRequest, pk: int, role: str = Role.VIEWER) -> Run:
    return _run_and_role(request, pk, role)[0]


def _admin_projects(user) -> QuerySet[Project]:
    projects = projects_for(user)
    if user.is_superuser:
        return projects
    return projects.filter(memberships__user=user, memberships__role=Role.ADMIN)


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _current_project(request: HttpRequest) -> Project | None:
    name = request.GET.get("project")
    if not name:
        return None
    return get_object_or_404(projects_for(request.user), name=name)


# --- home ----------------------------------------------------------------------------------------
@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The user's pipelines, each with its last run, optionally for one project."""
    current = _current_project(request)
    pipelines = pipelines_for(request.user)
    if current is not None:
        pipelines = pipelines.filter(project=current)
    latest = Run.objects.filter(pipeline=OuterRef("pk")).order_by("-created_at", "-id")
    page = _page(request, pipelines.annotate(last_run_id=Subquery(latest.values("pk")[:1])))
    last_runs = Run.objects.select_related("output_model_version").in_bulk(
        [p.last_run_id for p in page if p.last_run_id]
    )
    admin_projects = _admin_projects(request.user)
    return render(
        request,
        "ui/home.html",
        {
            "current_project": current,
            "page": page,
            "rows": [(p, last_runs.get(p.last_run_id)) for p in page],
            # Asked only by the page without pipelines, which calls it.
            "has_projects": projects_for(request.user).exists,
            "can_create": (
                has_role(request.user, current, Role.ADMIN) if current else admin_projects.exists()
            ),
        },
    )


# --- pipelines -----------------------------------------------------------------------------------
def _save_pipeline(request: HttpRequest, form: PipelineForm, existing: Pipeline | None):
    """Check the config at the branch head, then create or update; None while errors remain."""
    check = read_config(form.instance)
    if not check.ok and not form.cleaned_data.get("save_anyway"):
        return None, check
    try:
        if existing is None:
            pipeline = teams.pipeline_create_from_form(request.user, form)
        else:
            pipeline = pipeline_services.pipeline_update(
                actor=request.user, pipeline=form.instance, **form.service_fields()
            )
    except ValidationError as exc:
        _add_errors(form, exc)
        return None, check
    config_keep(pipeline, check)
    return pipeline, check


@login_required
def pipeline_new(request: HttpRequest) -> HttpResponse:
    projects = _admin_projects(request.user)
    if not projects.exists():
        raise PermissionDenied("Only project admins may create pipelines.")
    initial_project = projects.filter(name=request.GET.get("project", "")).first()
    form = PipelineForm(
        request.POST or None,
        projects=projects,
        models=models_for(request.user).filter(project__in=projects),
        initial={"project": initial_project or projects.first(), "kind": PipelineKind.TRAINING},
    )
    check = None
    if request.method == "POST" and form.is_valid():
        pipeline, check = _save_pipeline(request, form, None)
        if pipeline is not None:
            messages.success(request, f"Created the pipeline {pipeline.name}.")
            return redirect("ui:pipeline", pk=pipeline.pk)
    return render(
        request,
        "ui/pipeline_form.html",
        {"form": form, "check": check, "current_project": initial_project},
    )


@login_required
def pipeline_edit(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(request, pk, Role.ADMIN)
    form = PipelineForm(
        request.POST or None,
        instance=_pipeline(request, pk, Role.ADMIN),  # a copy the form may change freely
        projects=None,
        models=models_for(request.user).filter(project=pipeline.project),
    )
    check = None
    if request.method == "POST" and form.is_valid():
        saved, check = _save_pipeline(request, form, pipeline)
        if saved is not None:
            messages.success(request, f"Saved the pipeline {saved.name}.")
            return redirect("ui:pipeline", pk=saved.pk)
    return render(
        request,
        "ui/pipeline_form.html",
        {"form": form, "check": check, "pipeline": pipeline, "current_project": pipeline.project},
    )


@require_POST
@login_required
def pipeline_archive(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(request, pk, Role.ADMIN)
    pipeline_services.pipeline_archive(actor=request.user, pipeline=pipeline)
    messages.success(request, f"Archived {pipeline.name}: it keeps its runs and starts no more.")
    return redirect("ui:pipeline", pk=pipeline.pk)


@require_GET
@login_required
def pipeline_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline, role = _pipeline_and_role(request, pk)
    config = kept_config(pipeline)
    runs = pipeline.runs.select_related(
        "triggered_by", "input_model_version__model", "output_model_version__model"
    )
    # Names and dates only: a secret's value is never loaded for a page.
    secrets_set = {row["name"]: row for row in secret_rows_for(pipeline)}
    declared = list(config.stanza.secrets) if config.stanza else []
    return render(
        request,
        "ui/pipeline_detail.html",
        {
            "pipeline": pipeline,
            "current_project": pipeline.project,
            "role": role,
            "can_run": role_allows(role, Role.DEVELOPER),
            "can_admin": role_allows(role, Role.ADMIN),
            "config": config,
            "page": _page(request, runs),
            "declared_secrets": [(name, name in secrets_set) for name in declared],
            "undeclared_secrets": sorted(set(secrets_set) - set(declared)),
        },
    )


# --- runs ----------------------------------------------------------------------------------------
@login_required
def run_new(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(request, pk, Role.DEVELOPER)
    if pipeline.archived:
        messages.error(request, f"{pipeline.name} is archived and starts no new runs.")
        return redirect("ui:pipeline", pk=pipeline.pk)
    checking = request.method == "POST" and request.POST.get("action") == "check"
    ref = (request.POST.get("ref") or request.GET.get("ref") or pipeline.branch).strip()
    starting = request.method == "POST" and not checking
    # Starting a run reads the exact commit anyway; only showing the form renders what is kept.
    if starting:
        config = read_config(pipeline, ref)
        config_keep(pipeline, config)
    else:
        config = kept_config(pipeline, ref)
    versions = (
        model_versions_for(request.user)
        .filter(model__project=pipeline.project, deprecated_at=None, deleted_at=None)
        .select_related("run__pipeline")
        .order_by("-created_at", "-pk")
    )
    initial: dict[str, Any] = {"ref": ref}
    if request.GET.get("model_version"):
        initial["model_version"] = request.GET["model_version"]
    form = RunForm(
        request.POST if starting else None,
        pipeline=pipeline,
        parameters=config.stanza.parameters if config.stanza else {},
        versions=versions,
        aliases=run_model_aliases(pipeline),
        initial=initial,
    )
    if form.is_bound and form.is_valid():
        version_id, alias = form.model_choice()
        try:
            run = run_services.run_create(
                actor=request.user,
                pipeline=pipeline,
                ref=form.cleaned_data["ref"],
                parameters=form.parameters(),
                model_version_id=version_id,
                model_alias=alias,
                trigger=Trigger.UI,
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return redirect("ui:run", pk=run.pk)
    return render(
        request,
        "ui/run_form.html",
        {
            "pipeline": pipeline,
            "current_project": pipeline.project,
            "form": form,
            "config": config,
            "has_versions": versions.exists(),
        },
    )


@dataclass
class StepRow:
    """A step as the run page shows it: a RunStep, or a step of the plan not started yet."""

    name: str
    status: str
    depends_on: list[str]
    attempts: int = 0
    max_attempts: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    failure_reason: str = ""
    log_text: str = ""
    log_offset: int = 0

    @property
    def duration(self):
        if self.started_at is None:
            return None
        from django.utils import timezone

        return (self.finished_at or timezone.now()) - self.started_at


def _row(step: RunStep, *, with_log: bool) -> StepRow:
    row = StepRow(
        name=step.name,
        status=step.status,
        depends_on=list(step.depends_on),
        attempts=step.attempts,
        max_attempts=1 + step.retry_limit,
        started_at=step.started_at,
        finished_at=step.finished_at,
        exit_code=step.exit_code,
        failure_reason=step.failure_reason,
    )
    if with_log:
        row.log_text, row.log_offset = read_log(step.log_key, 0, FIRST_LOG_BYTES)
    return row


def _planned_steps(run: Run) -> list[StepRow]:
    """The steps of the run's stored config, none of them started."""
    if not run.config_text or run.status == RunStatus.REJECTED:
        return []
    try:
        stanza = stanza_for(run.config_text, run.pipeline.kind, filename=run.pipeline.config_path)
    except hcl.SpecError:
        return []
    return [
        StepRow(
            name=step.name,
            status=RunStatus.ACCEPTED if run.is_active else run.status,
            depends_on=list(step.depends_on),
            max_attempts=1 + step.retry_limit,
        )
        for step in stanza.steps
    ]


def _step_rows(run: Run) -> list[StepRow]:
    """Every step of the run: the recorded ones, and the planned ones not recorded yet (the
    supervisor records them one by one as it starts), so the page knows all of them at once."""
    recorded = {step.name: _row(step, with_log=True) for step in run.steps.all()}
    planned = _planned_steps(run)
    rows = [recorded.pop(row.name, row) for row in planned]
    return rows + list(recorded.values())


@require_GET
@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run, role = _run_and_role(request, pk)
    steps = _step_rows(run)
    return render(
        request,
        "ui/run_detail.html",
        {
            "run": run,
            "pipeline": run.pipeline,
            "current_project": run.pipeline.project,
            "steps": steps,
            "open_step": _step_to_open(run, steps),
            "can_run": role_allows(role, Role.DEVELOPER),
            "tracking": run_tracking(run),
        },
    )


@require_GET
@login_required
def run_compare(request: HttpRequest, pk: int) -> HttpResponse:
    """Runs of one pipeline side by side: ``?run=3&run=5`` names them by their numbers."""
    pipeline = _pipeline(request, pk)
    try:
        comparison = compare_runs(pipeline, request.GET.getlist("run"))
    except CompareError as exc:
        messages.error(request, str(exc))
        return redirect("ui:pipeline", pk=pipeline.pk)
    return render(
        request,
        "ui/run_compare.html",
        {"pipeline": pipeline, "current_project": pipeline.project, "comparison": comparison},
    )


def _step_to_open(run: Run, steps: list[StepRow]) -> str:
    """The step whose log the page opens: the running one, else the failed one, else the last."""
    for wanted in (RunStatus.RUNNING, RunStatus.FAILED):
        for step in steps:
            if step.status == wanted:
                return step.name
    started = [step for step in steps if step.started_at]
    return started[-1].name if started else ""


def _version_json(version: ModelVersion | None) -> dict | None:
    if version is None:
        return None
    return {
        "label": f"{version.model.name} v{version.number}",
        "url": reverse("ui:model", args=[version.model_id]) + f"#version-{version.number}",
    }


@require_GET
@login_required
def run_status(request: HttpRequest, pk: int) -> JsonResponse:
    """The run's and its steps' statuses, for the page that follows a run."""
    run = _run(request, pk)
    output = getattr(run, "output_model_version", None)
    return JsonResponse(
        {
            "status": run.status,
            "active": run.is_active,
            "duration": elapsed(run.duration),
            "failure_reason": run.failure_reason,
            "exit_code": run.exit_code,
            "output_model_version": _version_json(output),
            "tracking": tracking_state(run.pk),
            "steps": [
                {
                    "name": step.name,
                    "status": step.status,
                    "attempts": step.attempts,
                    "max_attempts": step.max_attempts,
                    "duration": elapsed(step.duration),
                    "exit_code": step.exit_code,
                    "failure_reason": step.failure_reason,
                }
                for step in (_row(step, with_log=False) for step in run.steps.all())
            ],
        }
    )


@require_GET
@login_required
def run_tracking_parts(request: HttpRequest, pk: int) -> HttpResponse:
    """The run page's parameters, metrics and charts, for the page that follows a run."""
    run = _run(request, pk)
    return render(
        request, "ui/run_tracking_parts.html", {"run": run, "tracking": run_tracking(run)}
    )


@require_GET
@login_required
def step_log(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    """New log text of one step from a byte offset, and the offset to ask from next time."""
    run = _run(request, pk)
    try:
        offset = int(request.GET.get("offset", "0"))
    except ValueError:
        return HttpResponseBadRequest("offset must be a whole number of bytes")
    if offset < 0:
        return HttpResponseBadRequest("offset must not be negative")
    row = run.steps.filter(name=step).values("log_key", "status").first()
    if row is None:
        return JsonResponse({"text": "", "next_offset": offset, "status": None})
    text, next_offset = read_log(row["log_key"], offset, LOG_CHUNK_BYTES)
    return JsonResponse({"text": text, "next_offset": next_offset, "status": row["status"]})


@require_POST
@login_required
def run_stop(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk, Role.DEVELOPER)
    run = run_services.run_stop(actor=request.user, run=run)
    if run.is_active:
        messages.info(request, f"Asked run #{run.number} to stop.")
    else:
        messages.info(request, f"Run #{run.number} is {run.status.lower()}.")
    return redirect("ui:run", pk=run.pk)


@require_POST
@login_required
def run_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a new run of the same commit, parameters and input model version."""
    run = _run(request, pk, Role.DEVELOPER)
    try:
        new = run_services.run_rerun(actor=request.user, run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("ui:run", pk=run.pk)
    messages.success(request, f"Started run #{new.number}, a re-run of #{run.number}.")
    return redirect("ui:run", pk=new.pk)


# --- secrets -------------------------------------------------------------------------------------
@login_required
def secrets(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline, role = _pipeline_and_role(request, pk)
    can_edit = role_allows(role, Role.DEVELOPER)
    form = SecretForm(request.POST or None, initial={"name": request.GET.get("name", "")})
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Only project developers and admins may set secrets.")
        if form.is_valid():
            name = form.cleaned_data["name"]
            try:
                secret_services.secret_set(
                    actor=request.user,
                    pipeline=pipeline,
                    name=name,
                    value=form.cleaned_data["secret_value"],
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"Saved the secret {name}.")
                return redirect("ui:secrets", pk=pipeline.pk)
    config = kept_config(pipeline)
    declared = list(config.stanza.secrets) if config.stanza else []
    rows = secret_rows_for(pipeline)
    set_names = {row["name"] for row in rows}
    return render(
        request,
        "ui/secrets.html",
        {
            "pipeline": pipeline,
            "current_project": pipeline.project,
            "form": form,
            "can_edit": can_edit,
            "rows": [(row, row["name"] in declared) for row in rows],
            "missing": [name for name in declared if name not in set_names],
            "config": config,
        },
    )


@require_POST
@login_required
def secret_delete(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(request, pk, Role.DEVELOPER)
    name = request.POST.get("name", "")
    if secret_services.secret_delete(actor=request.user, pipeline=pipeline, name=name):
        messages.success(request, f"Deleted the secret {name}.")
    else:
        messages.error(request, f"There is no secret {name} to delete.")
    return redirect("ui:secrets", pk=pipeline.pk)


# --- API tokens ----------------------------------------------------------------------------------
class _SignedInRequest(HttpRequest):
    """A request past ``login_required``: its user is a real one (django-stubs' own pattern)."""

    user: User


@login_required
def tokens(request: _SignedInRequest) -> HttpResponse:
    """The user's own API tokens. A new token is shown in this one response and never again."""
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        created = teams.token_create_from_form(request.user, form)
        if created is not None:
            form = TokenForm()
    response = render(
        request,
        "ui/tokens.html",
        {
            "form": form,
            "created": created,
            "page": _page(request, api_tokens_for(request.user)),
        },
    )
    add_never_cache_headers(response)
    return response


@require_POST
@login_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(api_tokens_for(request.user), pk=pk)
    account_services.api_token_revoke(actor=request.user, token=token)
    messages.success(request, f"Revoked the token {token.prefix}… ({token.name or 'unnamed'}).")
    return redirect("ui:tokens")
