"""The config pages show: kept per pipeline, ref and commit, read from Git by a task.

A page asks the server for the ref's head with a short ``git ls-remote`` (no fetch, no cache
lock), shows the kept read of that commit when there is one, and otherwise shows the newest kept
read and queues a fresh one. Only the task, and the run it starts, wait on the cache lock.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from bedrock.pipelines import git
from bedrock.pipelines.models import Pipeline, PipelineConfigSnapshot

# When the head cannot be asked, a kept read older than this is read again.
STALE_AFTER = timedelta(minutes=5)
# A queued read that has not finished by then is taken as lost (a worker died) and queued again.
REQUEUE_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class ConfigRead:
    """One read of a config file at a ref: the commit, the text, or the error that stopped it."""

    sha: str = ""
    text: str = ""
    error: str = ""


@dataclass(frozen=True)
class KeptConfig:
    """What a page may show for a ref without waiting on Git."""

    shown: PipelineConfigSnapshot | None
    failed: PipelineConfigSnapshot | None
    refreshing: bool
    current: bool


def head_timeout() -> float:
    return float(getattr(settings, "BEDROCK_GIT_HEAD_TIMEOUT", 3))


def cache_key(pipeline: Pipeline) -> str:
    if pipeline.pk:
        return f"pipeline-{pipeline.pk}"
    # A pipeline being created has no id yet: key its cache by its URL.
    return "check-" + hashlib.sha256(pipeline.git_url.encode()).hexdigest()[:24]


def credentials(pipeline: Pipeline) -> git.GitCredentials | None:
    if not pipeline.pk:
        return None
    from bedrock.secrets.services import git_credentials_for

    return git_credentials_for(pipeline)


def config_path(pipeline: Pipeline) -> str:
    return pipeline.config_path or "bedrock.hcl"


def config_read(pipeline: Pipeline, ref: str) -> ConfigRead:
    """Resolve ``ref`` and read the config file there, waiting on the cache lock if need be."""
    try:
        git.validate_ref(ref)
        key, creds = cache_key(pipeline), credentials(pipeline)
        sha = git.resolve_ref(pipeline.git_url, ref, cache_key=key, credentials=creds)
    except (git.GitError, ValueError) as exc:  # ValueError: a key git refuses before the network
        return ConfigRead(error=str(exc))
    try:
        text = git.read_file(
            pipeline.git_url, sha, config_path(pipeline), cache_key=key, credentials=creds
        )
    except (git.GitError, ValueError) as exc:
        return ConfigRead(sha=sha, error=str(exc))
    return ConfigRead(sha=sha, text=text)


def _rows(pipeline: Pipeline, ref: str) -> QuerySet[PipelineConfigSnapshot]:
    return PipelineConfigSnapshot.objects.filter(
        pipeline=pipeline, ref=ref, config_path=config_path(pipeline)
    )


def config_snapshot_store(*, pipeline: Pipeline, ref: str, read: ConfigRead) -> None:
    """Keep ``read`` as the config of ``ref``; it answers every read queued before now."""
    now = timezone.now()
    PipelineConfigSnapshot.objects.update_or_create(
        pipeline=pipeline,
        ref=ref,
        config_path=config_path(pipeline),
        commit_sha=read.sha,
        defaults={"text": read.text, "error": read.error, "read_at": now},
    )
    rows = _rows(pipeline, ref)
    rows.filter(refresh_queued_at__lte=now).update(refresh_queued_at=None)
    rows.filter(read_at=None, refresh_queued_at=None).delete()


def config_snapshot_refresh(*, pipeline_id: int, ref: str) -> bool:
    """Read the config of ``ref`` from Git and keep it; False when the pipeline is gone.

    Safe to run twice: the second read updates the same row.
    """
    pipeline = Pipeline.objects.filter(pk=pipeline_id).first()
    if pipeline is None:
        return False
    config_snapshot_store(pipeline=pipeline, ref=ref, read=config_read(pipeline, ref))
    return True


def _enqueue_refresh(pipeline_id: int, ref: str) -> None:
    from django_q.tasks import async_task

    async_task(
        "bedrock.pipelines.tasks.pipeline_config_refresh",
        pipeline_id,
        ref,
        task_name=f"read-config-{pipeline_id}",
    )


def config_snapshot_queue(*, pipeline: Pipeline, ref: str, commit_sha: str = "") -> bool:
    """Queue a read of ``ref`` unless one is already waiting; True if this call queued it."""
    now = timezone.now()
    row, created = PipelineConfigSnapshot.objects.get_or_create(
        pipeline=pipeline,
        ref=ref,
        config_path=config_path(pipeline),
        commit_sha=commit_sha,
        defaults={"refresh_queued_at": now},
    )
    if not created and _waiting(_rows(pipeline, ref), now):
        return False
    if not created:
        PipelineConfigSnapshot.objects.filter(pk=row.pk).update(refresh_queued_at=now)
    pipeline_id = pipeline.pk
    transaction.on_commit(lambda: _enqueue_refresh(pipeline_id, ref))
    return True


def _waiting(rows: QuerySet[PipelineConfigSnapshot], now: datetime) -> bool:
    return rows.filter(refresh_queued_at__gte=now - REQUEUE_AFTER).exists()


# The heads this process asked last: (pipeline, URL, ref) -> (time.monotonic(), sha or None).
_heads: dict[tuple[int | None, str, str], tuple[float, str | None]] = {}
_heads_lock = threading.Lock()
_HEADS_KEPT = 1024


def _head(pipeline: Pipeline, ref: str) -> str | None:
    """``_ask_head``'s answer, as this process had it within ``BEDROCK_GIT_HEAD_TTL``: a server
    that cannot be asked is not asked again, each time for seconds, by every view either."""
    ttl = settings.BEDROCK_GIT_HEAD_TTL.total_seconds()
    key = (pipeline.pk, pipeline.git_url, ref)
    with _heads_lock:
        kept = _heads.get(key)
    if kept is not None and time.monotonic() - kept[0] < ttl:
        return kept[1]
    sha = _ask_head(pipeline, ref)
    if ttl > 0:
        with _heads_lock:
            if len(_heads) >= _HEADS_KEPT:
                _heads.clear()
            _heads[key] = (time.monotonic(), sha)
    return sha


def _ask_head(pipeline: Pipeline, ref: str) -> str | None:
    """The commit ``ref`` names on the server now, or None when that cannot be told quickly."""
    try:
        return git.remote_head(
            pipeline.git_url, ref, timeout=head_timeout(), credentials=credentials(pipeline)
        )
    except (git.GitError, ValueError):
        return None


def kept_config(pipeline: Pipeline, ref: str) -> KeptConfig:
    """The kept read to show for ``ref``, queueing a fresh read when the kept one is not of the
    ref's head (or its age when the head cannot be asked)."""
    head = _head(pipeline, ref)
    rows = _rows(pipeline, ref).exclude(read_at=None)
    current = rows.filter(commit_sha=head).first() if head else None
    latest = current or rows.order_by("-read_at").first()
    now = timezone.now()
    if current is None and (
        head or latest is None or latest.read_at < now - STALE_AFTER  # type: ignore[operator]
    ):
        config_snapshot_queue(pipeline=pipeline, ref=ref, commit_sha=head or "")
    shown, failed = latest, None
    if latest is not None and latest.error:
        shown = rows.filter(error="").order_by("-read_at").first()
        failed = latest
    return KeptConfig(
        shown=shown,
        failed=failed,
        refreshing=_waiting(_rows(pipeline, ref), now),
        current=current is not None,
    )


__all__ = [
    "ConfigRead",
    "KeptConfig",
    "config_read",
    "config_snapshot_queue",
    "config_snapshot_refresh",
    "config_snapshot_store",
    "kept_config",
]
