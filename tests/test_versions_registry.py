"""Versions a team can rely on: the ref and branch they came from, a publish policy that keeps
other refs' archives with their runs, descriptions, deprecation and deletion."""

from __future__ import annotations

import io
import itertools
import zipfile
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from bedrock.accounts.models import hash_token
from bedrock.actors import SYSTEM
from bedrock.events.models import Event, EventKind
from bedrock.models import services
from bedrock.models.models import ArchiveUpload, ModelAlias, ModelVersion
from bedrock.models.services import (
    archives_reconcile,
    model_version_delete,
    model_version_deprecate,
    model_version_publish,
    training_output_store,
)
from bedrock.pipelines.models import PipelineKind, PublishPolicy, Role
from bedrock.runs.models import Run, RunStatus
from bedrock.runs.services import run_create, run_rerun
from tests import factories
from tests.repos import git, hcl, make_repo, step
from tests.runflow import pipeline_for, repo_with, wait_until_done
from tests.test_graphql_api import client_for
from tests.test_teams import gql

pytestmark = pytest.mark.django_db

SHA = "3" * 40
_numbers = itertools.count(1)


@pytest.fixture
def artefact(tmp_path: Path) -> Path:
    root = tmp_path / "artefact"
    root.mkdir()
    (root / "model.pkl").write_bytes(b"weights " * 100)
    (root / "README").write_text("churn model\n")
    return root


SCORING_HCL = (
    'version = "1.0"\nbatch_score {\n  step "s" {\n    image = "x"\n'
    '    script = [{ sh = ["true"] }]\n  }\n}\n'
)


@pytest.fixture
def team(local_storage, tmp_path: Path):
    """A project with an admin, a developer, a viewer; an outsider; a training pipeline of main
    and a batch scoring pipeline."""
    project = factories.project("acme")
    # Named by role: team.admin, team.developer, team.viewer.
    people = {str(role): factories.user(f"{role}-user") for role in Role.values}
    for role, person in people.items():
        factories.member(project, person, role)
    training = factories.pipeline(project, name="train", branch="main")
    repo = make_repo(tmp_path / "scoring", {"bedrock.hcl": SCORING_HCL})
    scoring = factories.pipeline(
        project, kind=PipelineKind.BATCH_SCORING, name="score", git_url=str(repo)
    )
    return SimpleNamespace(
        **people,
        project=project,
        outsider=factories.user("outsider"),
        training=training,
        scoring=scoring,
        model=training.model,
        storage=local_storage,
    )


def finished(pipeline, ref: str = "main") -> Run:
    return Run.objects.create(
        pipeline=pipeline,
        number=next(_numbers),
        ref=ref,
        commit_sha=SHA,
        status=RunStatus.SUCCEEDED,
    )


def publish(team, artefact: Path, ref: str = "main") -> ModelVersion:
    return model_version_publish(run=finished(team.training, ref), directory=artefact)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


# --- ref and branch -------------------------------------------------------------------------------
@pytest.mark.parametrize("ref", ["main", "refs/heads/main"])
def test_a_version_of_the_pipelines_branch_records_its_ref_and_the_branch(team, artefact, ref):
    version = training_output_store(run=finished(team.training, ref), directory=artefact)

    assert version is not None
    assert (version.ref, version.branch) == (ref, "main")


@pytest.mark.parametrize("ref", [SHA, "v1.2.0", "feature"])
def test_a_version_of_a_commit_a_tag_or_another_branch_records_its_ref_and_no_branch(
    team, artefact, ref
):
    team.training.publish_policy = PublishPolicy.ANY
    team.training.save()

    version = training_output_store(run=finished(team.training, ref), directory=artefact)

    assert version is not None
    assert (version.ref, version.branch) == (ref, "")


@pytest.fixture
def branched(tmp_path):
    """A training pipeline on main of a repository that also has the branch scratch and a tag."""
    repo = repo_with(tmp_path, hcl("train", step("s", "true")))
    git(repo, "branch", "scratch")
    git(repo, "tag", "v1.0")
    return pipeline_for(repo), git(repo, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize(
    ("ref", "branch"),
    [("main", "main"), ("refs/heads/scratch", "scratch"), ("scratch", "scratch"), ("v1.0", "")],
)
def test_a_run_records_the_branch_its_ref_names_and_only_the_pipelines_branch_publishes(
    branched, ref, branch
):
    pipeline, _ = branched

    run = run_create(actor=SYSTEM, pipeline=pipeline, ref=ref)

    assert run.status == RunStatus.ACCEPTED, run.failure_reason
    assert (run.branch, services.version_branch(run)) == (branch, branch)
    assert (services.publish_refusal(run) == "") is (branch == "main")


def test_a_run_of_a_commit_has_no_branch_and_its_rerun_of_main_publishes(branched):
    pipeline, sha = branched

    of_commit = run_create(actor=SYSTEM, pipeline=pipeline, ref=sha)
    rerun = run_rerun(actor=SYSTEM, run=run_create(actor=SYSTEM, pipeline=pipeline))

    assert of_commit.branch == "" and services.publish_refusal(of_commit)
    assert (rerun.ref, rerun.branch) == (sha, "main")
    assert services.publish_refusal(rerun) == ""
    assert run_rerun(actor=SYSTEM, run=of_commit).branch == ""


def test_publishing_records_an_event_with_the_versions_ids(team, artefact):
    version = publish(team, artefact)

    event = Event.objects.get(kind=EventKind.MODEL_VERSION_PUBLISHED)
    assert event.project == team.project
    assert event.payload["version_id"] == version.pk
    assert event.payload["number"] == 1


def test_the_model_page_and_graphql_show_a_versions_ref_and_branch(team, artefact):
    version = publish(team, artefact, ref="refs/heads/main")

    page = client_for(team.viewer).get(f"/models/{team.model.pk}/").content.decode()
    assert "<code>refs/heads/main</code>" in page
    assert "<code>main</code>" in page
    found = gql(
        team.viewer,
        "query($id: ID!) { modelVersion(id: $id) { ref branch description deprecatedAt } }",
        id=version.pk,
    )
    assert found["modelVersion"] == {
        "ref": "refs/heads/main",
        "branch": "main",
        "description": "",
        "deprecatedAt": None,
    }


# --- publish policy -------------------------------------------------------------------------------
REASON = (
    "The pipeline publishes versions only from its branch main; this run was of scratch. Its "
    "archive is kept with the run."
)


def test_a_run_of_another_ref_publishes_nothing_and_keeps_its_archive_with_the_run(team, artefact):
    run = finished(team.training, "scratch")

    assert training_output_store(run=run, directory=artefact) is None

    run.refresh_from_db()
    assert not ModelVersion.objects.exists()
    assert run.unpublished_reason == REASON
    assert run.output_archive_key.startswith(f"runs/{run.pk}/")
    assert team.storage.size(run.output_archive_key) == run.output_archive_size
    assert not ArchiveUpload.objects.exists()


def test_a_second_store_of_a_runs_archive_keeps_the_first_and_deletes_its_own(team, artefact):
    run = finished(team.training, "scratch")
    training_output_store(run=run, directory=artefact)
    first = Run.objects.get(pk=run.pk).output_archive_key

    training_output_store(run=Run.objects.get(pk=run.pk), directory=artefact)

    assert Run.objects.get(pk=run.pk).output_archive_key == first
    _, names = team.storage.listdir(f"runs/{run.pk}")
    assert names == [Path(first).name]


def test_the_reconciler_leaves_a_runs_kept_archive_alone(team, artefact):
    run = finished(team.training, "scratch")
    training_output_store(run=run, directory=artefact)
    run.refresh_from_db()
    # A record left for the key, as a retried cleanup leaves one.
    ArchiveUpload.objects.create(storage_key=run.output_archive_key, run=run)

    archives_reconcile()

    assert team.storage.exists(run.output_archive_key)


def test_deleting_a_run_deletes_the_archive_it_kept(
    team, artefact, django_capture_on_commit_callbacks
):
    run = finished(team.training, "scratch")
    training_output_store(run=run, directory=artefact)
    key = Run.objects.get(pk=run.pk).output_archive_key

    with django_capture_on_commit_callbacks(execute=True):
        Run.objects.get(pk=run.pk).delete()

    assert not team.storage.exists(key)
    assert not ArchiveUpload.objects.exists()


def test_the_migration_fills_ref_and_branch_of_older_versions_from_their_runs(team):
    from importlib import import_module

    from django.apps import apps

    backfill = import_module("bedrock.models.migrations.0005_version_ref_backfill").backfill
    of_branch = factories.model_version(team.model, finished(team.training, "main"), 1)
    of_tag = factories.model_version(team.model, finished(team.training, "v2.0"), 2)

    backfill(apps, None)

    of_branch.refresh_from_db()
    of_tag.refresh_from_db()
    assert (of_branch.ref, of_branch.branch) == ("main", "main")
    assert (of_tag.ref, of_tag.branch) == ("v2.0", "")


def kept_run(team, artefact) -> Run:
    run = finished(team.training, "scratch")
    training_output_store(run=run, directory=artefact)
    run.refresh_from_db()
    return run


def test_a_member_downloads_a_runs_kept_archive_and_an_outsider_gets_404(team, artefact):
    run = kept_run(team, artefact)
    url = f"/runs/{run.pk}/output/download"

    response = client_for(team.viewer).get(url)
    assert response.status_code == 200
    with team.storage.open(run.output_archive_key) as stored:
        assert body(response) == stored.read()
    assert f"train-run-{run.number}.zip" in response["Content-Disposition"]
    assert client_for(team.outsider).get(url).status_code == 404
    assert client_for(None).get(url).status_code == 302


def test_a_run_that_kept_no_archive_has_no_download(team, artefact):
    run = finished(team.training)
    assert client_for(team.admin).get(f"/runs/{run.pk}/output/download").status_code == 404


def test_the_run_page_says_why_and_links_the_archive(team, artefact):
    run = kept_run(team, artefact)

    page = client_for(team.viewer).get(f"/runs/{run.pk}/").content.decode()

    assert "The pipeline publishes versions only from its branch main" in page
    assert f'href="/runs/{run.pk}/output/download"' in page
    listing = client_for(team.viewer).get(f"/pipelines/{team.training.pk}/").content.decode()
    assert "kept its archive" in listing


RUN_OUTPUT = "query($id: ID!) { run(id: $id) { unpublishedReason outputArchiveUrl } }"


def test_graphql_gives_a_member_the_reason_and_the_archive_url_and_an_outsider_nothing(
    team, artefact
):
    run = kept_run(team, artefact)

    found = gql(team.viewer, RUN_OUTPUT, id=run.pk)["run"]
    assert found["unpublishedReason"] == REASON
    assert found["outputArchiveUrl"].endswith(f"/runs/{run.pk}/output/download")
    assert gql(team.outsider, RUN_OUTPUT, id=run.pk)["run"] is None


def test_a_remote_upload_of_another_ref_is_kept_with_the_run(team):
    token = "bdrkrun_" + "t" * 43
    run = finished(team.training, "scratch")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, token_hash=hash_token(token))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.pkl", b"weights")

    response = Client().post(
        f"/runs/{run.pk}/artefact",
        buffer.getvalue(),
        content_type="application/zip",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 201, response.content
    assert response.json()["modelVersion"] is None
    assert response.json()["unpublishedReason"] == REASON
    assert not ModelVersion.objects.exists()
    assert Run.objects.get(pk=run.pk).output_archive_key


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_run_at_a_commit_succeeds_and_keeps_its_archive_and_one_of_the_branch_publishes(
    tmp_path, local_storage
):
    writes = step("s", "echo weights > $BEDROCK_ARTEFACT_DIR/model.txt")
    repo = repo_with(tmp_path, hcl("train", writes))
    pipeline = pipeline_for(repo)
    sha = git(repo, "rev-parse", "HEAD").strip()

    at_commit = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline, ref=sha))
    of_branch = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline))

    assert at_commit.status == RunStatus.SUCCEEDED, at_commit.failure_reason
    assert at_commit.unpublished_reason.startswith(
        f"The pipeline publishes versions only from its branch main; this run was of {sha}."
    )
    assert local_storage.exists(at_commit.output_archive_key)
    assert of_branch.status == RunStatus.SUCCEEDED, of_branch.failure_reason
    version = ModelVersion.objects.get()
    assert (version.run_id, version.number, version.branch) == (of_branch.pk, 1, "main")


def test_the_pipeline_form_sets_the_publish_policy(team):
    form_data = {
        "name": "train",
        "kind": PipelineKind.TRAINING,
        "git_url": team.training.git_url,
        "branch": "main",
        "config_path": "bedrock.hcl",
        "model": team.model.pk,
        "max_run_time": "72h",
        "publish_policy": PublishPolicy.ANY,
        "save_anyway": "on",
    }
    from bedrock.ui.forms import PipelineForm

    form = PipelineForm(form_data, instance=team.training, projects=None, models=None)
    form.fields["model"].queryset = type(team.model).objects.all()
    assert form.is_valid(), form.errors
    assert form.service_fields()["publish_policy"] == PublishPolicy.ANY


def test_update_pipeline_sets_the_publish_policy_for_an_admin_only(team):
    mutation = """mutation($id: ID!) { updatePipeline(id: $id, data: {publishPolicy: ANY}) {
        ... on Pipeline { publishPolicy } ... on OperationInfo { messages { kind } } } }"""

    found = gql(team.developer, mutation, id=team.training.pk)["updatePipeline"]
    assert found == {"messages": [{"kind": "PERMISSION"}]}
    assert gql(team.admin, mutation, id=team.training.pk)["updatePipeline"] == {
        "publishPolicy": "ANY"
    }


# --- descriptions ---------------------------------------------------------------------------------
DESCRIBE = """mutation($id: ID!, $text: String!) {
  updateModelVersion(id: $id, description: $text) {
    ... on ModelVersion { description }
    ... on OperationInfo { messages { kind code message } } } }"""


def test_a_developer_describes_a_version_a_viewer_may_not_and_an_outsider_finds_none(
    team, artefact
):
    version = publish(team, artefact)

    assert gql(team.developer, DESCRIBE, id=version.pk, text="Trained on May's data.")[
        "updateModelVersion"
    ] == {"description": "Trained on May's data."}
    refused = gql(team.viewer, DESCRIBE, id=version.pk, text="x")["updateModelVersion"]
    assert refused["messages"][0]["kind"] == "PERMISSION"
    hidden = gql(team.outsider, DESCRIBE, id=version.pk, text="x")["updateModelVersion"]
    assert hidden["messages"][0]["code"] == "not_found"
    assert ModelVersion.objects.get(pk=version.pk).description == "Trained on May's data."


def test_a_description_over_ten_thousand_characters_is_refused(team, artefact):
    version = publish(team, artefact)

    found = gql(team.admin, DESCRIBE, id=version.pk, text="x" * 10_001)["updateModelVersion"]

    assert found["messages"][0]["kind"] == "VALIDATION"
    assert "10,000" in found["messages"][0]["message"]


def test_the_description_form_saves_for_a_developer_only(team, artefact):
    version = publish(team, artefact)
    url = f"/model-versions/{version.pk}/describe"

    assert client_for(team.outsider).get(url).status_code == 404
    assert client_for(team.viewer).post(url, {"description": "no"}).status_code == 403
    response = client_for(team.developer).post(url, {"description": "Better recall."})
    assert response.status_code == 302
    page = client_for(team.viewer).get(f"/models/{team.model.pk}/").content.decode()
    assert "Better recall." in page and url not in page
    assert url in client_for(team.developer).get(f"/models/{team.model.pk}/").content.decode()


# --- deprecation ----------------------------------------------------------------------------------
def picker(team) -> str:
    return client_for(team.admin).get(f"/pipelines/{team.scoring.pk}/run").content.decode()


def test_a_deprecated_version_is_not_offered_nor_the_default_but_still_downloads(team, artefact):
    old = publish(team, artefact)
    newest = publish(team, artefact)

    model_version_deprecate(actor=team.admin, version=newest)

    page = picker(team)
    assert f'value="{old.pk}" selected' in page
    assert f'value="{newest.pk}"' not in page
    download = client_for(team.viewer).get(f"/model-versions/{newest.pk}/download")
    assert download.status_code == 200


@pytest.mark.parametrize(("offered", "numbers"), [(True, [1]), (False, [3, 2])])
def test_the_api_lists_the_versions_offered_for_new_runs_or_the_others(
    team, artefact, offered, numbers
):
    kept, deprecated, deleted = (publish(team, artefact) for _ in range(3))
    model_version_deprecate(actor=team.admin, version=deprecated)
    services.model_version_delete(actor=team.admin, version=deleted)

    found = gql(
        team.viewer,
        """query($id: ID!, $offered: Boolean!) { model(id: $id) {
          versions(filters: {offered: $offered}, ordering: [{number: DESC}]) {
            edges { node { number } } } } }""",
        id=team.model.pk,
        offered=offered,
    )["model"]["versions"]["edges"]

    assert [edge["node"]["number"] for edge in found] == numbers
    assert kept.number == 1


def test_a_deprecated_version_given_by_id_still_runs_as_a_rerun_must(team, artefact):
    version = publish(team, artefact)
    model_version_deprecate(actor=team.admin, version=version)

    run = run_create(actor=team.admin, pipeline=team.scoring, model_version_id=version.pk)

    assert run.status == RunStatus.ACCEPTED, run.failure_reason
    assert run.input_model_version == version


DEPRECATE = """mutation($id: ID!) { deprecateModelVersion(id: $id) {
    ... on ModelVersion { deprecatedAt } ... on OperationInfo { messages { kind code } } } }"""
UNDEPRECATE = DEPRECATE.replace("deprecateModelVersion", "undeprecateModelVersion")


def test_an_admin_deprecates_and_offers_again_a_developer_may_not_an_outsider_finds_none(
    team, artefact
):
    version = publish(team, artefact)

    assert gql(team.developer, DEPRECATE, id=version.pk)["deprecateModelVersion"] == {
        "messages": [{"kind": "PERMISSION", "code": None}]
    }
    hidden = gql(team.outsider, DEPRECATE, id=version.pk)["deprecateModelVersion"]
    assert hidden["messages"][0]["code"] == "not_found"
    assert gql(team.admin, DEPRECATE, id=version.pk)["deprecateModelVersion"]["deprecatedAt"]
    assert Event.objects.filter(kind=EventKind.MODEL_VERSION_DEPRECATED).count() == 1
    hidden = gql(team.outsider, UNDEPRECATE, id=version.pk)["undeprecateModelVersion"]
    assert hidden["messages"][0]["code"] == "not_found"
    refused = gql(team.developer, UNDEPRECATE, id=version.pk)["undeprecateModelVersion"]
    assert refused["messages"][0]["kind"] == "PERMISSION"
    assert gql(team.admin, UNDEPRECATE, id=version.pk)["undeprecateModelVersion"] == {
        "deprecatedAt": None
    }


def test_deprecating_through_the_page_asks_first_then_posts(team, artefact):
    version = publish(team, artefact)
    url = f"/model-versions/{version.pk}/deprecate"

    assert client_for(team.outsider).get(url).status_code == 404
    assert client_for(team.developer).post(url).status_code == 403
    confirm = client_for(team.admin).get(url)
    assert confirm.status_code == 200
    assert ModelVersion.objects.get(pk=version.pk).deprecated_at is None
    assert client_for(team.admin).post(url).status_code == 302
    assert ModelVersion.objects.get(pk=version.pk).deprecated_at is not None


# --- deletion -------------------------------------------------------------------------------------
def test_deleting_removes_the_archive_and_keeps_a_tombstone(team, artefact):
    version = publish(team, artefact)
    assert team.storage.exists(version.storage_key)

    model_version_delete(actor=team.admin, version=version)

    version.refresh_from_db()
    assert version.deleted_at is not None
    assert not team.storage.exists(version.storage_key)
    event = Event.objects.get(kind=EventKind.MODEL_VERSION_DELETED)
    assert event.payload["number"] == version.number
    page = client_for(team.viewer).get(f"/models/{team.model.pk}/").content.decode()
    assert "v1 — deleted" in page


def test_a_deleted_version_cannot_be_downloaded_or_used_by_a_new_run(team, artefact):
    version = publish(team, artefact)
    model_version_delete(actor=team.admin, version=version)

    response = client_for(team.viewer).get(f"/model-versions/{version.pk}/download")
    assert response.status_code == 410
    assert b"v1 of" in response.content
    run = run_create(actor=team.admin, pipeline=team.scoring, model_version_id=version.pk)
    assert run.status == RunStatus.REJECTED
    assert f"model version {version.pk} ({team.model.name} v1) was deleted" in run.failure_reason
    assert f'value="{version.pk}"' not in picker(team)
    files = client_for(team.viewer).get(f"/model-versions/{version.pk}/files/").content.decode()
    assert "v1 was deleted on" in files
    found = gql(
        team.viewer, "query($id: ID!) { modelVersion(id: $id) { downloadUrl } }", id=version.pk
    )
    assert found == {"modelVersion": {"downloadUrl": None}}


def test_a_version_an_alias_points_at_cannot_be_deleted(team, artefact):
    version = publish(team, artefact)
    ModelAlias.objects.create(model=team.model, name="production", version=version)

    with pytest.raises(ValidationError) as refused:
        model_version_delete(actor=team.admin, version=version)

    assert refused.value.messages == ["v1 is the production alias; move the alias first."]
    assert team.storage.exists(version.storage_key)
    assert ModelVersion.objects.get(pk=version.pk).deleted_at is None


def test_a_version_whose_bytes_storage_refuses_to_delete_is_not_marked(team, artefact, monkeypatch):
    version = publish(team, artefact)

    def refuse(key: str) -> None:
        raise OSError("permission denied")

    monkeypatch.setattr(services, "artefact_delete", refuse)
    with pytest.raises(OSError):
        model_version_delete(actor=team.admin, version=version)

    assert ModelVersion.objects.get(pk=version.pk).deleted_at is None
    assert not Event.objects.filter(kind=EventKind.MODEL_VERSION_DELETED).exists()
    page = client_for(team.admin).post(f"/model-versions/{version.pk}/delete", follow=True)
    assert "v1 was not changed: the storage said permission denied" in page.content.decode()
    assert team.storage.exists(version.storage_key)


DELETE = """mutation($id: ID!) { deleteModelVersion(id: $id) {
    ... on ModelVersion { deletedAt } ... on OperationInfo { messages { kind code message } } } }"""


def test_only_an_admin_deletes_through_graphql_and_an_outsider_finds_none(team, artefact):
    version = publish(team, artefact)

    refused = gql(team.developer, DELETE, id=version.pk)["deleteModelVersion"]
    assert refused["messages"][0]["kind"] == "PERMISSION"
    hidden = gql(team.outsider, DELETE, id=version.pk)["deleteModelVersion"]
    assert hidden["messages"][0]["code"] == "not_found"
    assert team.storage.exists(version.storage_key)
    assert gql(team.admin, DELETE, id=version.pk)["deleteModelVersion"]["deletedAt"]
    assert not team.storage.exists(version.storage_key)


def test_deleting_through_the_page_asks_first_and_says_why_it_refuses(team, artefact):
    version = publish(team, artefact)
    ModelAlias.objects.create(model=team.model, name="production", version=version)
    url = f"/model-versions/{version.pk}/delete"

    assert client_for(team.outsider).post(url).status_code == 404
    assert client_for(team.developer).post(url).status_code == 403
    assert "Delete v1" in client_for(team.admin).get(url).content.decode()
    response = client_for(team.admin).post(url, follow=True)
    assert "v1 is the production alias; move the alias first." in response.content.decode()
    ModelAlias.objects.all().delete()
    client_for(team.admin).post(url)
    assert not team.storage.exists(version.storage_key)


@pytest.mark.parametrize("backend", ["local_storage", "s3_storage", "gcs_storage"])
def test_deleting_removes_the_archive_from_local_storage_s3_and_gcs(backend, request, artefact):
    storage = request.getfixturevalue(backend)
    project = factories.project()
    pipeline = factories.pipeline(project, branch="main")
    version = model_version_publish(run=finished(pipeline), directory=artefact)
    assert storage.exists(version.storage_key)

    model_version_delete(actor=SYSTEM, version=version)

    assert not storage.exists(version.storage_key)
    assert ModelVersion.objects.get(pk=version.pk).deleted_at is not None


def test_a_runs_kept_archive_on_s3_is_a_redirect_to_a_signed_url_for_members_only(
    s3_storage, artefact
):
    project = factories.project()
    viewer = factories.user()
    factories.member(project, viewer, Role.VIEWER)
    run = finished(factories.pipeline(project, name="train", branch="main"), "scratch")
    training_output_store(run=run, directory=artefact)
    url = f"/runs/{run.pk}/output/download"

    response = client_for(viewer).get(url)

    assert response.status_code == 302
    assert "Signature=" in response["Location"]
    assert f"train-run-{run.number}.zip" in unquote(response["Location"])
    assert client_for(factories.user()).get(url).status_code == 404
