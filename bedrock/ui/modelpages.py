"""The model pages: the list of models, a model with its versions and aliases, and the files
inside a version. The version actions are in :mod:`bedrock.ui.registry`."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from bedrock.models.artefacts import BrowseError
from bedrock.models.retention import retention_notes
from bedrock.models.selectors import model_versions_for, model_with_role, models_for
from bedrock.models.services import model_version_files
from bedrock.pipelines.models import Pipeline, PipelineKind, Role
from bedrock.pipelines.selectors import role_allows
from bedrock.runs.models import Run
from bedrock.tracking.models import Metric
from bedrock.ui.aliases import model_aliases_context
from bedrock.ui.views import _current_project, _page


@require_GET
@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    current = _current_project(request)
    models = (
        models_for(request.user)
        .annotate(version_count=Count("versions"), latest_version=Max("versions__number"))
        .order_by("project__name", "name")
    )
    if current is not None:
        models = models.filter(project=current)
    return render(
        request,
        "ui/model_list.html",
        {"current_project": current, "page": _page(request, models)},
    )


@require_GET
@login_required
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    found = model_with_role(request.user, pk)
    if found is None:
        raise Http404("No such model.")
    model, role = found
    scoring_runs = Run.objects.select_related("pipeline").order_by("-created_at", "-id")
    # Newest first by number alone: the default ordering's project and model names are the same
    # for every version here, and joining them to sort kept PostgreSQL from reading the
    # (model, number) index backwards, so the page sorted every version of the model.
    versions = (
        model.versions.select_related("run__pipeline", "run__triggered_by")
        .prefetch_related(
            Prefetch("scoring_runs", queryset=scoring_runs),
            Prefetch("run__metrics", queryset=Metric.objects.order_by("name")),
        )
        .order_by("-number")
    )
    can_run = role_allows(role, Role.DEVELOPER)
    # Whoever sees the model sees its project's pipelines: no second membership read.
    pipelines = Pipeline.objects.filter(project=model.project, archived_at__isnull=True)
    return render(
        request,
        "ui/model_detail.html",
        {
            "model": model,
            "current_project": model.project,
            **model_aliases_context(request, model),
            "can_run": can_run,
            "can_admin": role_allows(role, Role.ADMIN),
            "retention_notes": retention_notes(model),
            "page": _page(request, versions),
            "training_pipelines": pipelines.filter(model=model),
            "scoring_pipelines": (
                pipelines.filter(kind=PipelineKind.BATCH_SCORING) if can_run else []
            ),
        },
    )


FILES_PER_PAGE = 100


@require_GET
@login_required
def model_version_files_page(request: HttpRequest, pk: int) -> HttpResponse:
    """The files inside a version's archive, read from its central directory by ranged reads."""
    version = get_object_or_404(model_versions_for(request.user), pk=pk)
    problem = ""
    try:
        files = model_version_files(version=version)
    except FileNotFoundError:
        files, problem = [], "The archive of this version is missing from storage."
    except BrowseError as exc:
        files, problem = [], f"The archive of this version cannot be listed: {exc}"
    return render(
        request,
        "ui/model_version_files.html",
        {
            "version": version,
            "model": version.model,
            "current_project": version.model.project,
            "page": _page(request, files, FILES_PER_PAGE),
            "problem": problem,
        },
    )
