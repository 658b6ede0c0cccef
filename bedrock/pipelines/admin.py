from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Max

from bedrock.pipelines import services
from bedrock.pipelines.models import Membership, Pipeline, Project
from bedrock.secrets.admin import SecretInline


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

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj: Project) -> int:
        return obj._members

    @admin.display(description="pipelines", ordering="_pipelines")
    def pipeline_count(self, obj: Project) -> int:
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
        ("History", {"fields": ["created_by", "created_at", "archived_at"]}),
    ]
    inlines = [SecretInline]
    actions = ["archive"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_last_run_at=Max("runs__created_at"))

    @admin.display(description="last run", ordering="_last_run_at")
    def last_run_at(self, obj: Pipeline):
        return obj._last_run_at

    @admin.display(boolean=True, ordering="archived_at")
    def archived(self, obj: Pipeline) -> bool:
        return obj.archived

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            # Raising a pipeline's run-time limit is for site administrators alone.
            fields.append("max_run_time")
        return fields

    def save_model(self, request, obj: Pipeline, form, change: bool) -> None:
        # The form already ran Pipeline.clean(), which holds the rules every interface obeys.
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Archive the selected pipelines")
    def archive(self, request, queryset) -> None:
        for pipeline in queryset:
            services.pipeline_archive(actor=None, pipeline=pipeline)
        self.message_user(request, f"Archived {queryset.count()} pipeline(s).", messages.SUCCESS)
