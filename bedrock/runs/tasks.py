"""django-q2 entry points: load by id, call a service. Queued on commit; safe to run twice."""

from __future__ import annotations

from bedrock.runs import services


def run_submit(run_id: int) -> bool:
    return services.run_submit(run_id=run_id)


def reconcile() -> dict[str, int]:
    return services.runs_reconcile()
