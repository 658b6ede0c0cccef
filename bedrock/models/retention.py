"""Retention: a model that keeps its newest N versions (``Model.keep_versions``) has the others
deleted by the reconciler, except those still in use.

A version beyond the newest N is kept while an alias points at it, while a batch scoring run
created within ``BEDROCK_RETENTION_RECENT_USE`` used it (that run may be rerun soon), or while an
active run takes it as input. Deleting goes through :func:`model_version_delete`, so the archive's
bytes and the row's tombstone stay together, and each deletion is recorded as an event whose
payload says ``"reason": "retention"``: the model page reads those back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from bedrock.actors import SYSTEM
from bedrock.events.models import Event, EventKind
from bedrock.models.models import Model, ModelVersion
from bedrock.models.services import model_version_delete

logger = logging.getLogger(__name__)

RETENTION = "retention"


def retention_candidates(model: Model, *, now: datetime | None = None) -> QuerySet[ModelVersion]:
    """The versions of ``model`` that retention would delete now: beyond the newest
    ``keep_versions`` not yet deleted, and not aliased, recently used or used by an active run."""
    from bedrock.runs.models import ACTIVE_STATUSES

    if model.keep_versions is None:
        return ModelVersion.objects.none()
    now = now or timezone.now()
    live = model.versions.filter(deleted_at__isnull=True).order_by("-number")
    kept = list(live.values_list("pk", flat=True)[: model.keep_versions])
    recent = now - settings.BEDROCK_RETENTION_RECENT_USE
    return (
        live.exclude(pk__in=kept)
        .exclude(aliases__isnull=False)
        .exclude(scoring_runs__created_at__gte=recent)
        .exclude(scoring_runs__status__in=list(ACTIVE_STATUSES))
        .distinct()
    )


def versions_retain(*, now: datetime | None = None) -> int:
    """Delete every version that its model's retention no longer keeps; the number deleted.

    A version that cannot be deleted now (an alias was set on it meanwhile, storage refused) is
    left as it is and logged; the next reconcile tries again.
    """
    deleted = 0
    for model in Model.objects.filter(keep_versions__isnull=False).select_related("project"):
        for version in retention_candidates(model, now=now).order_by("number"):
            try:
                model_version_delete(
                    actor=SYSTEM,
                    version=version,
                    reason=RETENTION,
                    keep_versions=model.keep_versions,
                )
            except ValidationError as exc:
                logger.info("retention kept %s: %s", version, " ".join(exc.messages))
                continue
            except Exception:
                logger.exception("retention could not delete %s; retrying later", version)
                continue
            deleted += 1
    return deleted


@dataclass(frozen=True)
class RetentionNote:
    """Versions that retention deleted on one day, as the model page says it."""

    day: date
    numbers: list[int]
    keep_versions: int | None

    def __str__(self) -> str:
        names = ", ".join(f"v{number}" for number in self.numbers)
        keeping = f" (keeping the newest {self.keep_versions})" if self.keep_versions else ""
        return f"Retention deleted {names} on {self.day:%Y-%m-%d}{keeping}"


def retention_notes(model: Model, *, limit: int = 5) -> list[RetentionNote]:
    """What retention deleted from ``model``, by day, newest day first (``limit`` days)."""
    events = Event.objects.filter(
        project_id=model.project_id,
        kind=EventKind.MODEL_VERSION_DELETED,
        payload__model_id=model.pk,
        payload__reason=RETENTION,
    ).order_by("-created_at", "-id")
    days: dict[date, RetentionNote] = {}
    for event in events[:500]:
        day = timezone.localdate(event.created_at)
        if day not in days:
            if len(days) == limit:
                break
            days[day] = RetentionNote(day, [], event.payload.get("keep_versions"))
        days[day].numbers.append(event.payload.get("number"))
    for note in days.values():
        note.numbers.sort()
    return list(days.values())
