"""The pipeline, secrets and start-run pages render the kept config and never wait on Git."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from bedrock.pipelines import git, snapshots
from bedrock.pipelines.models import PipelineConfigSnapshot, Role
from bedrock.pipelines.tasks import pipeline_config_refresh
from tests import factories
from tests.repos import EXAMPLE, commit, make_repo

pytestmark = pytest.mark.django_db

# Holds the pipeline's cache lock as a worker fetching a slow repository would.
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def pipeline(tmp_path):
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    project = factories.project("churn")
    made = factories.pipeline(project, name="churn-train", git_url=str(repo))
    made.repo = repo
    made.viewer = factories.user("vic")
    made.developer = factories.user("dev")
    factories.member(project, made.viewer, Role.VIEWER)
    factories.member(project, made.developer, Role.DEVELOPER)
    return made


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (the kernel's backlog accepts)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def page_urls(pipeline) -> list[str]:
    return [f"/pipelines/{pipeline.pk}/", f"/pipelines/{pipeline.pk}/secrets"]


def test_a_page_renders_the_kept_config_while_another_process_holds_the_pipelines_lock(
    client, pipeline, settings, django_capture_on_commit_callbacks
):
    pipeline_config_refresh(pipeline.pk, "main")
    kept = PipelineConfigSnapshot.objects.get(pipeline=pipeline)
    # Were the page to wait for the lock, it would give up after 6 x 1 + 5 seconds and say so.
    settings.BEDROCK_GIT_TIMEOUT = 1
    client.force_login(pipeline.developer)

    with django_capture_on_commit_callbacks() as queued, _holding(pipeline):
        pages = [text(client.get(url)) for url in page_urls(pipeline)]
        pages.append(text(client.get(f"/pipelines/{pipeline.pk}/run")))

    for page in pages:
        assert "stayed busy" not in page
        assert f'at commit <code title="{kept.commit_sha}">{kept.commit_sha[:7]}' in page
        assert "Config read" in page and "Refreshing" not in page
    assert '<div class="dag-name">train</div>' in pages[0]
    assert 'name="param-EPOCHS" value="300"' in pages[2]
    assert queued == []  # the kept read is of the head: nothing to refresh


def test_a_new_commit_shows_the_kept_config_as_refreshing_while_the_lock_is_held(
    client, pipeline, django_capture_on_commit_callbacks
):
    pipeline_config_refresh(pipeline.pk, "main")
    old = PipelineConfigSnapshot.objects.get(pipeline=pipeline).commit_sha
    new = commit(pipeline.repo, {"bedrock.hcl": _with_epochs(pipeline, "50")})
    client.force_login(pipeline.viewer)

    with django_capture_on_commit_callbacks() as queued, _holding(pipeline):
        first = text(client.get(f"/pipelines/{pipeline.pk}/"))
        again = text(client.get(f"/pipelines/{pipeline.pk}/secrets"))

    assert old[:7] in first and new[:7] not in first and "Refreshing…" in first
    assert "Refreshing…" in again
    assert len(queued) == 1  # the second page finds the read already queued


def test_the_task_refresh_updates_what_the_page_shows(
    client, pipeline, django_capture_on_commit_callbacks
):
    client.force_login(pipeline.viewer)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        reading = text(client.get(f"/pipelines/{pipeline.pk}/"))
    assert "bedrock.hcl at main is being read" in reading and len(queued) == 1
    assert '<meta http-equiv="refresh"' in reading  # reloads itself until the read is done
    read = text(client.get(f"/pipelines/{pipeline.pk}/"))
    assert "300" in read and 'http-equiv="refresh"' not in read

    new = commit(pipeline.repo, {"bedrock.hcl": _with_epochs(pipeline, "50")})
    with django_capture_on_commit_callbacks(execute=True):
        text(client.get(f"/pipelines/{pipeline.pk}/"))
    pipeline_config_refresh(pipeline.pk, "main")  # a second run of the same task changes nothing
    page = text(client.get(f"/pipelines/{pipeline.pk}/"))

    assert f'<code title="{new}">' in page and "&quot;50&quot;" in page
    assert "Refreshing…" not in page
    assert PipelineConfigSnapshot.objects.filter(pipeline=pipeline, commit_sha=new).count() == 1


def test_a_head_lookup_that_times_out_falls_back_to_what_is_kept(
    client, pipeline, settings, hung_port, django_capture_on_commit_callbacks
):
    settings.BEDROCK_GIT_HEAD_TIMEOUT = 1
    pipeline_config_refresh(pipeline.pk, "main")
    kept = PipelineConfigSnapshot.objects.get(pipeline=pipeline)
    hung = f"https://127.0.0.1:{hung_port}/churn.git"
    type(pipeline).objects.filter(pk=pipeline.pk).update(git_url=hung)
    pipeline.git_url = hung
    with pytest.raises(git.GitError, match="timed out after 1 seconds"):
        git.remote_head(hung, "main", timeout=1)
    client.force_login(pipeline.viewer)

    with django_capture_on_commit_callbacks() as fresh:
        page = text(client.get(f"/pipelines/{pipeline.pk}/"))
    PipelineConfigSnapshot.objects.filter(pk=kept.pk).update(
        read_at=kept.read_at - snapshots.STALE_AFTER - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks() as stale:
        old = text(client.get(f"/pipelines/{pipeline.pk}/"))

    assert kept.commit_sha[:7] in page and '<div class="dag-name">train</div>' in page
    assert fresh == []  # read moments ago: the lookup failing is no reason to read again
    assert kept.commit_sha[:7] in old and "Refreshing…" in old and len(stale) == 1


def test_the_last_failed_read_is_shown_beside_the_config_read_before(client, pipeline):
    pipeline_config_refresh(pipeline.pk, "main")
    commit(pipeline.repo, {"bedrock.hcl": "", "other.hcl": "x"})
    (pipeline.repo / "bedrock.hcl").unlink()
    commit(pipeline.repo, {"other.hcl": "y"})
    pipeline_config_refresh(pipeline.pk, "main")
    client.force_login(pipeline.viewer)

    page = text(client.get(f"/pipelines/{pipeline.pk}/"))

    assert "failed: bedrock.hcl not found at commit" in page
    assert '<div class="dag-name">train</div>' in page


def test_an_outsider_gets_nothing_and_queues_nothing(
    client, pipeline, django_capture_on_commit_callbacks
):
    pipeline_config_refresh(pipeline.pk, "main")
    client.force_login(factories.user("oscar"))

    with django_capture_on_commit_callbacks() as queued:
        statuses = [
            client.get(url).status_code
            for url in [*page_urls(pipeline), f"/pipelines/{pipeline.pk}/run?ref=v9"]
        ]

    assert statuses == [404, 404, 404]
    assert queued == []
    assert list(PipelineConfigSnapshot.objects.values_list("ref", flat=True)) == ["main"]


def _with_epochs(pipeline, value: str) -> str:
    return (pipeline.repo / "bedrock.hcl").read_text().replace('"300"', f'"{value}"')


class _holding:
    """The lock held by another process for the length of a ``with`` block."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    def __enter__(self) -> None:
        cache = Path(django_settings.BEDROCK_GIT_CACHE)
        cache.mkdir(parents=True, exist_ok=True)
        self.holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(cache / f"pipeline-{self.pipeline.pk}.lock")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        assert self.holder.stdout.readline().strip() == "locked"

    def __exit__(self, *exc: object) -> None:
        assert self.holder.stdin is not None
        self.holder.stdin.close()
        self.holder.wait()
