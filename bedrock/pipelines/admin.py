from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Max

from bedrock.actors import Staff
from bedrock.pipelines import services
from bedrock.pipelines.models import DatedInstalls, Membership, Pipeline, Project
from bedrock.secrets.admin import SecretInline, save_secret_formset

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _ProjectCounts(TypedDict):
    _members: int
    _pipelines: int


class _PipelineLastRun(TypedDict):
    _last_run_at: datetime | None


# The fields the admin edits that pipeline_update takes by name.
PIPELINE_FIELDS = (
    "name",
    "git_url",
    "branch",
    "config_path",
    "kind",
    "model",
    "max_run_time",
    "dated_installs",
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "member_count", "pipeline_count", "created_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _members=Count("memberships", distinct=True),
                _pipelines=Count("pipelines", distinct=True),
            )
        )

    def save_model(self, request, obj: Project, form, change: bool) -> None:
        actor = Staff(request.user)
        if change:
            services.project_update(
                actor=actor, project=obj, name=obj.name, description=obj.description
            )
            return
        created = services.project_create(actor=actor, name=obj.name, description=obj.description)
        # The membership inline and the admin's log are bound to ``obj``.
        obj.pk = created.pk
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change: bool) -> None:
        actor = Staff(request.user)
        project = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row in formset.deleted_forms:
            if row.instance.pk is not None:
                services.membership_remove(
                    actor=actor, project=project, username=row.instance.user.username
                )
                formset.deleted_objects.append(row.instance)
        for row in formset.forms:
            if row in formset.deleted_forms or not row.has_changed():
                continue
            if row.instance.pk is not None and "user" in row.changed_data:
                # Giving a row to another person takes the role away from the first.
                old = Membership.objects.get(pk=row.instance.pk)
                services.membership_remove(actor=actor, project=project, username=old.user.username)
            membership = services.membership_set(
                actor=actor,
                project=project,
                username=row.cleaned_data["user"].username,
                role=row.cleaned_data["role"],
            )
            if row.instance.pk is None:
                formset.new_objects.append(membership)
            else:
                formset.changed_objects.append((membership, row.changed_data))

    def delete_model(self, request, obj: Project) -> None:
        services.project_delete(actor=Staff(request.user), project=obj)

    def delete_queryset(self, request, queryset) -> None:
        for project in queryset:
            self.delete_model(request, project)

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj: WithAnnotations[Project, _ProjectCounts]) -> int:
        return obj._members

    @admin.display(description="pipelines", ordering="_pipelines")
    def pipeline_count(self, obj: WithAnnotations[Project, _ProjectCounts]) -> int:
        return obj._pipelines


class ArchivedFilter(admin.SimpleListFilter):
    title = "archived"
    parameter_name = "archived"

    def lookups(self, request, model_admin):
        return [("no", "Active"), ("yes", "Archived")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(archived_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(archived_at__isnull=False)
        return queryset


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "git_url", "branch", "last_run_at", "archived"]
    list_filter = ["kind", ArchivedFilter, "project"]
    list_select_related = ["project"]
    search_fields = ["name", "git_url", "project__name"]
    autocomplete_fields = ["project", "model"]
    readonly_fields = ["created_by", "created_at", "archived_at"]
    fieldsets = [
        (None, {"fields": ["project", "name", "kind", "model"]}),
        ("Source", {"fields": ["git_url", "branch", "config_path"]}),
        ("Limits", {"fields": ["max_run_time"]}),
        ("Installs", {"fields": ["dated_installs"]}),
        ("History", {"fields": ["created_by", "created_at", "archived_at"]}),
    ]
    inlines = [SecretInline]
    actions = ["archive"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_last_run_at=Max("runs__created_at"))

    @admin.display(description="last run", ordering="_last_run_at")
    def last_run_at(self, obj: WithAnnotations[Pipeline, _PipelineLastRun]) -> datetime | None:
        return obj._last_run_at

    @admin.display(boolean=True, ordering="archived_at")
    def archived(self, obj: Pipeline) -> bool:
        return obj.archived

    def get_form(self, request, obj=None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change=change, **kwargs)
        # The form asks the service's rule, so the error shows on the field before anything saves.
        return type(form.__name__, (PipelineRulesForm, form), {"actor": Staff(request.user)})

    def save_model(self, request, obj: Pipeline, form, change: bool) -> None:
        actor = Staff(request.user)
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            services.pipeline_update(
                actor=actor,
                pipeline=obj,
                **{name: value for name, value in changes.items() if name in PIPELINE_FIELDS},
            )
            return
        created = services.pipeline_create(
            actor=actor,
            project=obj.project,
            **{name: getattr(obj, name) for name in PIPELINE_FIELDS},
        )
        # The secret inline and the admin's log are bound to ``obj``.
        obj.pk = created.pk
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change: bool) -> None:
        save_secret_formset(Staff(request.user), form.instance, formset)

    def delete_model(self, request, obj: Pipeline) -> None:
        services.pipeline_delete(actor=Staff(request.user), pipeline=obj)

    def delete_queryset(self, request, queryset) -> None:
        for pipeline in queryset:
            self.delete_model(request, pipeline)

    @admin.action(description="Archive the selected pipelines")
    def archive(self, request, queryset) -> None:
        for pipeline in queryset:
            services.pipeline_archive(actor=Staff(request.user), pipeline=pipeline)
        self.message_user(request, f"Archived {queryset.count()} pipeline(s).", messages.SUCCESS)


class PipelineRulesForm(forms.ModelForm):
    """Checks the pipeline services' rules for the person in the admin (``actor``)."""

    actor: Staff

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A post without it (a form of before the choice existed) keeps the server's default.
        self.fields["dated_installs"].required = False

    def clean_dated_installs(self) -> str:
        return self.cleaned_data.get("dated_installs") or DatedInstalls.DEFAULT

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if "max_run_time" in self.changed_data:
            current = None
            if self.instance.pk is not None:
                current = (
                    Pipeline.objects.values_list("max_run_time", flat=True)
                    .filter(pk=self.instance.pk)
                    .first()
                )
            problem = services.max_run_time_problem(
                actor=self.actor, new=cleaned.get("max_run_time"), current=current
            )
            if problem:
                self.add_error("max_run_time", problem)
        return cleaned
