"""Template tags and filters of the web UI."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from bedrock.envconfig import format_duration
from bedrock.pipelines.selectors import projects_for

register = template.Library()


@register.filter
def elapsed(value: timedelta | None) -> str:
    """A duration as people read it: ``45s``, ``3m 05s``, ``2h 04m``, ``3d 1h``."""
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def run_time_text(value: timedelta | None) -> str:
    """A run-time limit as the API writes it (``72h`` is ``3d``), so the page and the API agree."""
    return "" if value is None else format_duration(value)


register.filter("run_time", run_time_text)


@register.filter
def ago(value: datetime | None) -> str:
    """``just now``, ``5 minutes ago``, ``3 days ago``."""
    if value is None:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, depth=1)} ago"


@register.filter
def status_class(status: str | None) -> str:
    """The CSS class of a status badge, such as ``status-running``."""
    return f"status-{(status or 'none').lower()}"


@register.filter
def short_sha(sha: str | None) -> str:
    return (sha or "")[:10]


@register.inclusion_tag("ui/_project_switcher.html", takes_context=True)
def project_switcher(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    projects = list(projects_for(user).values_list("name", flat=True)) if user else []
    current = context.get("current_project")
    return {
        "projects": projects,
        "current": getattr(current, "name", None),
        "target": "ui:models" if context.get("section") == "models" else "ui:home",
    }


@register.filter
def metric_value(value: float | None) -> str:
    """A metric's value in six significant digits (``0.912346``, ``1.5e-07``); the page's title
    attributes carry the full value."""
    if value is None:
        return ""
    return f"{value:.6g}"
