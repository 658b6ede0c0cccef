"""django-q2 entry points: load by id, call a service. Queued on commit; safe to run twice."""

from __future__ import annotations

from bedrock.pipelines import snapshots


def pipeline_config_refresh(pipeline_id: int, ref: str) -> bool:
    return snapshots.config_snapshot_refresh(pipeline_id=pipeline_id, ref=ref)
