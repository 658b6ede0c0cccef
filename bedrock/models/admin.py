from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin
from django.db.models import Count, Max
from django.template.defaultfilters import filesizeformat

from bedrock.actors import Staff
from bedrock.models import services
from bedrock.models.models import Model, ModelVersion

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _VersionCounts(TypedDict):
    _versions: int
    _latest: datetime | None


class ReadOnlyHistoryMixin:
    """Published history: editing any of it would falsify what a run produced or used."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# Shown and read-only alike: one list typed as both (``fields`` may also hold groups).
_VERSION_FIELDS = ("number", "human_size", "file_count", "sha256", "run", "created_at")


class ModelVersionInline(ReadOnlyHistoryMixin, admin.TabularInline):
    model = ModelVersion
    fields = _VERSION_FIELDS
    readonly_fields = _VERSION_FIELDS
    extra = 0
    show_change_link = True
    can_delete = False

    @admin.display(description="size")
    def human_size(self, obj: ModelVersion) -> str:
        return filesizeformat(obj.size)


@admin.register(Model)
class BedrockModelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "version_count", "latest_version_at", "created_at"]
    list_filter = ["project"]
    list_select_related = ["project"]
    search_fields = ["name", "description", "project__name"]
    readonly_fields = ["created_at"]
    inlines = [ModelVersionInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_versions=Count("versions"), _latest=Max("versions__created_at"))
        )

    def save_model(self, request, obj: Model, form, change: bool) -> None:
        actor = Staff(request.user)
        if change:
            services.model_update(
                actor=actor, model=obj, name=obj.name, description=obj.description
            )
            return
        created = services.model_create(
            actor=actor, project=obj.project, name=obj.name, description=obj.description
        )
        # The admin's log and redirect are bound to ``obj``.
        obj.pk = created.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj: Model) -> None:
        services.model_delete(actor=Staff(request.user), model=obj)

    def delete_queryset(self, request, queryset) -> None:
        for model in queryset:
            self.delete_model(request, model)

    @admin.display(description="versions", ordering="_versions")
    def version_count(self, obj: WithAnnotations[Model, _VersionCounts]) -> int:
        return obj._versions

    @admin.display(description="latest version", ordering="_latest")
    def latest_version_at(self, obj: WithAnnotations[Model, _VersionCounts]) -> datetime | None:
        return obj._latest


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyHistoryMixin, admin.ModelAdmin):
    list_display = ["__str__", "model", "number", "human_size", "file_count", "run", "created_at"]
    list_filter = ["model__project", "model"]
    list_select_related = ["model__project", "run__pipeline__project"]
    search_fields = ["model__name", "sha256"]
    date_hierarchy = "created_at"

    @admin.display(description="size", ordering="size")
    def human_size(self, obj: ModelVersion) -> str:
        return filesizeformat(obj.size)
