from __future__ import annotations

from django.contrib import admin

from bedrock.models.admin import ReadOnlyHistoryMixin
from bedrock.runs.models import Run, RunStep

# Shown and read-only alike: one list typed as both (``fields`` may also hold groups).
_STEP_FIELDS = (
    "position",
    "name",
    "status",
    "attempts",
    "retry_limit",
    "started_at",
    "finished_at",
    "exit_code",
    "failure_reason",
)


class RunStepInline(ReadOnlyHistoryMixin, admin.TabularInline):
    model = RunStep
    fields = _STEP_FIELDS
    readonly_fields = _STEP_FIELDS
    extra = 0
    can_delete = False


@admin.register(Run)
class RunAdmin(ReadOnlyHistoryMixin, admin.ModelAdmin):
    """Runs are started through the UI, the API or `bedrock run`, never typed into the admin."""

    list_display = [
        "__str__",
        "status",
        "short_commit",
        "trigger",
        "triggered_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger", "pipeline__kind", "pipeline__project"]
    list_select_related = ["pipeline__project", "triggered_by"]
    search_fields = ["pipeline__name", "commit_sha", "ref", "failure_reason"]
    date_hierarchy = "created_at"
    inlines = [RunStepInline]

    @admin.display(description="commit", ordering="commit_sha")
    def short_commit(self, obj: Run) -> str:
        return obj.commit_sha[:10]
