"""The web UI through Django's test client: who sees what, and what each page and form shows.

The pipelines point at real Git repositories, so the config pages read real files.
"""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from bedrock.accounts.models import ApiToken
from bedrock.accounts.services import api_token_authenticate, api_token_create
from bedrock.actors import SYSTEM
from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import Pipeline, PipelineKind, Role
from bedrock.runs.models import Run, RunStatus, RunStep
from bedrock.runs.workspace import log_key, log_path
from bedrock.secrets.models import Secret
from bedrock.secrets.services import secret_set
from tests import factories
from tests.repos import EXAMPLE, commit, git, make_repo

pytestmark = pytest.mark.django_db

BROKEN_HCL = """version = "1.0"
train {
  step "train" {
    image = "python:3.11"
    script = [{ sh = ["python train.py"] }]
    resources {
      cpu = "1"
      memory = "lots"
    }
  }
  colour = "blue"
}
"""


class World:
    """A project with a training and a scoring pipeline on the example repository, a finished
    training run that published v1, a scoring run that used it, and one user per role."""


@pytest.fixture
def world(tmp_path) -> World:
    w = World()
    w.repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    w.sha = git(w.repo, "rev-parse", "HEAD")
    w.project = factories.project("churn")
    w.model = factories.model(w.project, "churn-model")
    w.training = factories.pipeline(
        w.project, name="churn-train", git_url=str(w.repo), model=w.model
    )
    w.scoring = factories.pipeline(
        w.project, name="churn-score", git_url=str(w.repo), kind=PipelineKind.BATCH_SCORING
    )
    w.admin = factories.user("ada")
    w.developer = factories.user("dev")
    w.viewer = factories.user("vic")
    w.outsider = factories.user("oscar")
    w.root = factories.user("root", is_superuser=True, is_staff=True)
    factories.member(w.project, w.admin, Role.ADMIN)
    factories.member(w.project, w.developer, Role.DEVELOPER)
    factories.member(w.project, w.viewer, Role.VIEWER)

    w.run = Run.objects.create(
        pipeline=w.training,
        number=1,
        ref="main",
        commit_sha=w.sha,
        config_text=(w.repo / "bedrock.hcl").read_text(),
        status=RunStatus.SUCCEEDED,
        parameters={"LEARNING_RATE": "0.5", "EPOCHS": "100", "SEED": "7"},
    )
    for position, (name, attempts) in enumerate([("prepare", 1), ("train", 2)]):
        path = log_path(w.run.pk, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}: hello from the log\nvalidation accuracy 0.91\n")
        RunStep.objects.create(
            run=w.run,
            name=name,
            position=position,
            status=RunStatus.SUCCEEDED,
            attempts=attempts,
            retry_limit=1,
            depends_on=["prepare"] if name == "train" else [],
            log_key=log_key(w.run.pk, name),
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.json", "{}")
    key = default_storage.save(f"models/ui/{w.run.pk}.zip", ContentFile(buffer.getvalue()))
    w.version = ModelVersion.objects.create(
        model=w.model,
        number=1,
        run=w.run,
        storage_key=key,
        size=len(buffer.getvalue()),
        sha256="ab" * 32,
        file_count=1,
    )
    w.scoring_run = Run.objects.create(
        pipeline=w.scoring,
        number=1,
        ref="main",
        commit_sha=w.sha,
        status=RunStatus.RUNNING,
        input_model_version=w.version,
        parameters={"THRESHOLD": "0.5"},
    )
    w.token = api_token_create(user=w.viewer, name="vics-cron").token
    return w


def pages(w: World) -> list[str]:
    """Every page (GET) the UI has for the world's objects."""
    return [
        "/",
        f"/pipelines/{w.training.pk}/",
        f"/pipelines/{w.training.pk}/secrets",
        f"/runs/{w.run.pk}/",
        f"/runs/{w.run.pk}/status",
        f"/runs/{w.run.pk}/steps/train/log?offset=0",
        "/models/",
        f"/models/{w.model.pk}/",
        f"/model-versions/{w.version.pk}/download",
        "/tokens/",
    ]


def object_pages(w: World) -> list[str]:
    """The GET pages of objects inside the project: an outsider must get a 404 for each."""
    return [
        f"/pipelines/{w.training.pk}/",
        f"/pipelines/{w.training.pk}/edit",
        f"/pipelines/{w.training.pk}/run",
        f"/pipelines/{w.training.pk}/secrets",
        f"/runs/{w.run.pk}/",
        f"/runs/{w.run.pk}/status",
        f"/runs/{w.run.pk}/steps/train/log",
        f"/models/{w.model.pk}/",
        f"/model-versions/{w.version.pk}/download",
        "/?project=churn",
    ]


def actions(w: World) -> list[tuple[str, dict]]:
    """Every POST that changes something inside the project."""
    return [
        (f"/pipelines/{w.training.pk}/edit", {"name": "renamed"}),
        (f"/pipelines/{w.training.pk}/archive", {}),
        (f"/pipelines/{w.training.pk}/run", {"ref": "main"}),
        (f"/pipelines/{w.training.pk}/secrets", {"name": "X", "value": "v"}),
        (f"/pipelines/{w.training.pk}/secrets/delete", {"name": "X"}),
        (f"/runs/{w.scoring_run.pk}/stop", {}),
        (f"/runs/{w.run.pk}/rerun", {}),
    ]


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def shown_once_read(client, django_capture_on_commit_callbacks):
    """A page as it shows once the config read it queued has run, as a worker would run it."""

    def show(url: str, data: dict | None = None) -> str:
        def request():
            return client.get(url) if data is None else client.post(url, data)

        with django_capture_on_commit_callbacks(execute=True):
            request()
        return text(request())

    return show


# --- who sees what -------------------------------------------------------------------------------
def test_the_first_page_a_visitor_sees_is_the_login_form(client):
    response = client.get("/", follow=True)

    assert response.redirect_chain == [("/login/?next=/", 302)]
    assert '<input type="password" name="password"' in text(response)


def test_after_logging_in_the_home_page_lists_the_users_pipelines_with_their_last_run(
    client, world
):
    login = client.post("/login/", {"username": "vic", "password": "pw-vic", "next": "/"})
    assert login.status_code == 302 and login["Location"] == "/"

    home = text(client.get("/"))

    assert "churn-train" in home and "churn-score" in home
    assert f'href="/runs/{world.run.pk}/"' in home
    assert 'class="badge status-succeeded">Succeeded' in home
    assert 'class="badge status-running">Running' in home


def test_the_home_page_of_a_user_in_no_project_says_so_and_lists_nothing(client, world):
    client.force_login(world.outsider)

    home = text(client.get("/"))

    assert "not a member of any project" in home
    assert "churn-train" not in home


@pytest.mark.parametrize("index", range(10))
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, world, index):
    url = pages(world)[index]

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("index", range(10))
def test_an_outsider_gets_a_404_for_every_page_of_the_project(client, world, index):
    client.force_login(world.outsider)

    assert client.get(object_pages(world)[index]).status_code == 404


@pytest.mark.parametrize("index", range(7))
def test_an_outsider_gets_a_404_for_every_action_and_nothing_changes(client, world, index):
    client.force_login(world.outsider)
    url, data = actions(world)[index]

    assert client.post(url, data).status_code == 404
    world.training.refresh_from_db()
    world.scoring_run.refresh_from_db()
    assert world.training.name == "churn-train" and not world.training.archived
    assert world.scoring_run.status == RunStatus.RUNNING
    assert Run.objects.count() == 2 and not Secret.objects.exists()


@pytest.mark.parametrize("who", ["viewer", "developer", "admin", "root"])
def test_every_member_and_a_site_administrator_can_read_every_page(client, world, who):
    client.force_login(getattr(world, who))

    for url in pages(world):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("index", range(7))
def test_a_viewer_may_not_change_anything(client, world, index):
    client.force_login(world.viewer)
    url, data = actions(world)[index]

    assert client.post(url, data).status_code == 403
    world.scoring_run.refresh_from_db()
    assert world.scoring_run.status == RunStatus.RUNNING
    assert Run.objects.count() == 2 and not Secret.objects.exists()


def test_a_viewer_sees_no_buttons_for_what_their_role_cannot_do(client, world):
    client.force_login(world.viewer)

    pipeline = text(client.get(f"/pipelines/{world.training.pk}/"))
    run = text(client.get(f"/runs/{world.scoring_run.pk}/"))
    secrets = text(client.get(f"/pipelines/{world.training.pk}/secrets"))

    assert "Start run" not in pipeline and "Edit" not in pipeline and "Archive" not in pipeline
    assert "Stop run" not in run and "Re-run" not in run
    assert "Save secret" not in secrets
    assert client.get(f"/pipelines/{world.training.pk}/run").status_code == 403
    assert client.get("/pipelines/new").status_code == 403


def test_a_developer_runs_but_does_not_edit_pipelines(client, world):
    client.force_login(world.developer)

    pipeline = text(client.get(f"/pipelines/{world.training.pk}/"))

    assert "Start run" in pipeline and "Edit" not in pipeline
    assert client.get(f"/pipelines/{world.training.pk}/edit").status_code == 403
    assert client.get(f"/pipelines/{world.training.pk}/run").status_code == 200


def test_the_project_switcher_lists_the_users_projects_and_filters_the_pipelines(client, world):
    other = factories.project("fraud")
    factories.member(other, world.viewer)
    factories.pipeline(other, name="fraud-train")
    factories.pipeline(factories.project("secret-project"), name="hidden")
    client.force_login(world.viewer)

    page = text(client.get("/?project=fraud"))

    assert '<option value="fraud" selected>' in page and '<option value="churn">' in page
    assert "secret-project" not in page
    assert "fraud-train" in page and "churn-train" not in page
    assert client.get("/?project=secret-project").status_code == 404


def test_the_pipeline_list_is_paginated_by_25(client, world):
    for number in range(30):
        factories.pipeline(world.project, name=f"p{number:02d}")
    client.force_login(world.viewer)

    first = text(client.get("/?project=churn"))
    second = text(client.get("/?project=churn&page=2"))

    # churn-score and churn-train come first, so p22 is the 25th.
    assert "Page 1 of 2" in first and "p22</a>" in first and "p23</a>" not in first
    assert "p23</a>" in second and "p29</a>" in second and "p22</a>" not in second


# --- pipeline page -------------------------------------------------------------------------------
def test_the_pipeline_page_renders_the_config_at_the_branch_head_as_steps(
    client, world, shown_once_read
):
    secret_set(actor=SYSTEM, pipeline=world.scoring, name="UNUSED", value="hidden-value")
    client.force_login(world.viewer)

    page = shown_once_read(f"/pipelines/{world.training.pk}/")

    assert str(world.repo) in page and "<code>main</code>" in page
    assert world.sha[:10] in page
    assert '<div class="dag-name">prepare</div>' in page
    assert '<div class="dag-name">train</div>' in page
    assert "after prepare" in page
    assert "LEARNING_RATE" in page and "EPOCHS" in page
    assert "hidden-value" not in page
    assert f'href="/runs/{world.run.pk}/">#1</a>' in page
    assert "produced v1" in page


def test_the_pipeline_page_shows_declared_secrets_against_the_ones_set(
    client, world, shown_once_read, tmp_path
):
    commit(
        world.repo,
        {
            "bedrock.hcl": (world.repo / "bedrock.hcl")
            .read_text()
            .replace(
                "  parameters {\n    LEARNING",
                '  secrets = ["DB_URL", "API_KEY"]\n  parameters {\n    LEARNING',
            )
        },
    )
    secret_set(actor=SYSTEM, pipeline=world.training, name="DB_URL", value="postgres://s3cr3t")
    secret_set(actor=SYSTEM, pipeline=world.training, name="BEDROCK_GIT_TOKEN", value="tok-s3cr3t")
    client.force_login(world.viewer)

    page = shown_once_read(f"/pipelines/{world.training.pk}/")

    assert re.search(
        r"<code>DB_URL</code></td><td><span class=\"badge status-succeeded\">Set", page
    )
    assert re.search(
        r"<code>API_KEY</code></td><td><span class=\"badge status-failed\">Missing", page
    )
    assert "<code>BEDROCK_GIT_TOKEN</code>" in page
    assert "s3cr3t" not in page


def test_the_pipeline_page_shows_a_git_error_instead_of_failing(
    client, world, shown_once_read, tmp_path
):
    Pipeline.objects.filter(pk=world.training.pk).update(branch="no-such-branch")
    client.force_login(world.viewer)

    page = shown_once_read(f"/pipelines/{world.training.pk}/")

    assert "Cannot read bedrock.hcl at no-such-branch" in page
    assert "no-such-branch" in page and "not found" in page


def test_the_pipeline_page_lists_each_problem_of_an_invalid_config_with_its_line(
    client, world, shown_once_read
):
    commit(world.repo, {"bedrock.hcl": BROKEN_HCL})
    client.force_login(world.viewer)

    page = shown_once_read(f"/pipelines/{world.training.pk}/")

    assert "line 8, column 16" in page and "train.step.train.resources.memory" in page
    assert "line 11, column 3" in page and "unknown key &#x27;colour&#x27;" in page
    assert (
        '<span class="line here"><span class="ln">8</span>      memory = &quot;lots&quot;' in page
    )


def test_the_run_history_is_paginated_by_25(client, world):
    for number in range(2, 32):
        Run.objects.create(pipeline=world.training, number=number, ref="main", status="Failed")
    client.force_login(world.viewer)

    first = text(client.get(f"/pipelines/{world.training.pk}/"))
    second = text(client.get(f"/pipelines/{world.training.pk}/?page=2"))

    assert "#31</a>" in first and "#7</a>" in first and "#6</a>" not in first
    assert "#6</a>" in second and "#1</a>" in second


# --- create and edit -----------------------------------------------------------------------------
def pipeline_data(world: World, **overrides) -> dict:
    return {
        "project": world.project.pk,
        "name": "churn-again",
        "kind": PipelineKind.TRAINING,
        "git_url": str(world.repo),
        "branch": "main",
        "config_path": "bedrock.hcl",
        "model": world.model.pk,
        "max_run_time": "72h",
        **overrides,
    }


def test_an_admin_creates_a_pipeline_after_its_config_is_checked(client, world):
    client.force_login(world.admin)

    response = client.post("/pipelines/new", pipeline_data(world))

    created = Pipeline.objects.get(name="churn-again")
    assert response.status_code == 302 and response["Location"] == f"/pipelines/{created.pk}/"
    assert created.created_by == world.admin and created.model == world.model


def test_the_create_form_shows_each_problem_of_the_config_with_its_line(client, world, tmp_path):
    broken = make_repo(tmp_path / "broken", {"bedrock.hcl": BROKEN_HCL})
    client.force_login(world.admin)

    response = client.post("/pipelines/new", pipeline_data(world, git_url=str(broken)))

    page = text(response)
    assert response.status_code == 200
    assert not Pipeline.objects.filter(name="churn-again").exists()
    assert "1 error</strong>, 1 warning" in page
    assert "line 8, column 16" in page and "memory must be a quantity" in page
    assert "line 11, column 3" in page
    assert "Save even though the config at the branch head has errors" in page


def test_the_create_form_saves_a_broken_config_when_told_to(client, world, tmp_path):
    broken = make_repo(tmp_path / "broken", {"bedrock.hcl": BROKEN_HCL})
    client.force_login(world.admin)

    response = client.post(
        "/pipelines/new", pipeline_data(world, git_url=str(broken), save_anyway="on")
    )

    assert response.status_code == 302
    assert Pipeline.objects.filter(name="churn-again").exists()


def test_the_create_form_says_when_the_file_lacks_the_stanza_its_kind_runs(client, world, tmp_path):
    scoring_only = make_repo(
        tmp_path / "s",
        {
            "bedrock.hcl": 'version = "1.0"\nbatch_score {\n  step "s" {\n    image = "x"\n'
            '    script = [{ sh = ["true"] }]\n  }\n}\n'
        },
    )
    client.force_login(world.admin)

    page = text(client.post("/pipelines/new", pipeline_data(world, git_url=str(scoring_only))))

    assert "the file has no train stanza" in page
    assert not Pipeline.objects.filter(name="churn-again").exists()


def test_the_create_form_shows_field_errors_and_git_errors(client, world):
    client.force_login(world.admin)

    page = text(
        client.post(
            "/pipelines/new",
            pipeline_data(world, name="churn-train", branch="gone", max_run_time="forever"),
        )
    )

    assert "Write a duration such as 90s, 30m, 72h or 7d." in page
    assert Pipeline.objects.filter(name="churn-train").count() == 1


def test_the_create_form_reports_a_branch_that_does_not_exist(client, world):
    client.force_login(world.admin)

    page = text(client.post("/pipelines/new", pipeline_data(world, branch="gone")))

    assert "Cannot read bedrock.hcl at gone" in page
    assert "BEDROCK_GIT_TOKEN" in page  # the hint for private repositories
    assert not Pipeline.objects.filter(name="churn-again").exists()


def test_the_create_form_reports_a_duplicate_name_in_the_project(client, world):
    client.force_login(world.admin)

    page = text(client.post("/pipelines/new", pipeline_data(world, name="churn-train")))

    assert "already exists" in page
    assert Pipeline.objects.filter(name="churn-train").count() == 1


def test_only_a_site_administrator_may_raise_the_maximum_run_time(client, world):
    client.force_login(world.admin)
    page = text(client.post("/pipelines/new", pipeline_data(world, max_run_time="5d")))
    assert "Only a site administrator may raise the maximum run time" in page

    client.force_login(world.root)
    assert client.post("/pipelines/new", pipeline_data(world, max_run_time="5d")).status_code == 302


def test_the_edit_form_checks_the_config_at_the_new_branch(client, world):
    git(world.repo, "checkout", "-q", "-b", "broken")
    commit(world.repo, {"bedrock.hcl": BROKEN_HCL})
    client.force_login(world.admin)
    data = pipeline_data(world, name="churn-train", branch="broken")
    del data["project"]

    page = text(client.post(f"/pipelines/{world.training.pk}/edit", data))

    assert "line 8, column 16" in page
    world.training.refresh_from_db()
    assert world.training.branch == "main"

    data["branch"] = "main"
    assert client.post(f"/pipelines/{world.training.pk}/edit", data).status_code == 302


def test_an_admin_archives_a_pipeline_and_it_starts_no_more_runs(client, world):
    client.force_login(world.admin)

    client.post(f"/pipelines/{world.training.pk}/archive")

    world.training.refresh_from_db()
    assert world.training.archived
    assert "Start run" not in text(client.get(f"/pipelines/{world.training.pk}/"))
    assert "churn-train" not in text(client.get("/"))


# --- starting runs -------------------------------------------------------------------------------
def test_the_start_run_form_shows_the_commit_and_the_files_parameters(
    client, world, shown_once_read
):
    client.force_login(world.developer)

    page = shown_once_read(f"/pipelines/{world.training.pk}/run")

    assert world.sha in page
    assert 'name="param-LEARNING_RATE" value="0.5"' in page
    assert 'name="param-EPOCHS" value="300"' in page
    assert 'name="model_version"' not in page  # training takes no version


def test_the_start_run_form_resolves_another_ref_on_request(client, world, shown_once_read):
    git(world.repo, "tag", "v1")
    new_sha = commit(
        world.repo,
        {"bedrock.hcl": (world.repo / "bedrock.hcl").read_text().replace('"300"', '"50"')},
    )
    client.force_login(world.developer)

    tagged = shown_once_read(
        f"/pipelines/{world.training.pk}/run", {"ref": "v1", "action": "check"}
    )
    head = shown_once_read(f"/pipelines/{world.training.pk}/run")
    missing = shown_once_read(f"/pipelines/{world.training.pk}/run?ref=nope")

    assert world.sha in tagged and 'name="param-EPOCHS" value="300"' in tagged
    assert new_sha in head and 'name="param-EPOCHS" value="50"' in head
    assert "not found" in missing
    assert Run.objects.count() == 2


def test_starting_a_run_pins_the_commit_and_takes_the_edited_parameters(client, world):
    client.force_login(world.developer)

    response = client.post(
        f"/pipelines/{world.training.pk}/run",
        {
            "ref": "main",
            "param-LEARNING_RATE": "0.1",
            "param-EPOCHS": "300",
            "param-SEED": "7",
            "extra_parameters": "EXTRA=yes\n",
        },
    )

    run = Run.objects.get(pipeline=world.training, number=2)
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.status == RunStatus.ACCEPTED and run.commit_sha == world.sha
    assert run.parameters == {"LEARNING_RATE": "0.1", "EPOCHS": "300", "SEED": "7", "EXTRA": "yes"}
    assert run.triggered_by == world.developer


def test_a_start_sent_without_the_parameter_fields_keeps_the_files_defaults(client, world):
    """The page shows no parameter fields while the config is being read; starting from it must
    not turn every parameter into an empty string."""
    client.force_login(world.developer)

    client.post(f"/pipelines/{world.training.pk}/run", {"ref": "main", "extra_parameters": ""})

    run = Run.objects.get(pipeline=world.training, number=2)
    assert run.parameters["LEARNING_RATE"] == "0.5" and run.parameters["EPOCHS"] == "300"


def test_malformed_extra_parameters_are_shown_and_start_nothing(client, world):
    client.force_login(world.developer)

    page = text(
        client.post(
            f"/pipelines/{world.training.pk}/run",
            {"ref": "main", "extra_parameters": "ok=1\n2bad=x"},
        )
    )

    assert "Line 2: write NAME=value" in page
    reserved = text(
        client.post(
            f"/pipelines/{world.training.pk}/run",
            {"ref": "main", "extra_parameters": "BEDROCK_X=1"},
        )
    )
    assert "names starting with BEDROCK_ are reserved" in reserved
    assert Run.objects.count() == 2


def test_the_batch_scoring_form_offers_the_projects_versions_newest_first(
    client, world, shown_once_read
):
    second_run = Run.objects.create(
        pipeline=world.training, number=2, ref="main", commit_sha="c" * 40
    )
    newer = ModelVersion.objects.create(
        model=world.model,
        number=2,
        run=second_run,
        storage_key="k",
        size=1,
        sha256="0" * 64,
        file_count=1,
    )
    elsewhere = factories.project("elsewhere")
    factories.member(elsewhere, world.developer, Role.DEVELOPER)
    foreign_run = Run.objects.create(
        pipeline=factories.pipeline(elsewhere), number=1, ref="main", commit_sha="d" * 40
    )
    foreign = ModelVersion.objects.create(
        model=foreign_run.pipeline.model,
        number=1,
        run=foreign_run,
        storage_key="f",
        size=1,
        sha256="0" * 64,
        file_count=1,
    )
    client.force_login(world.developer)

    page = shown_once_read(f"/pipelines/{world.scoring.pk}/run")

    options = re.findall(r'<option value="(\d+)"', page)
    assert options == [str(newer.pk), str(world.version.pk)]
    assert str(foreign.pk) not in options
    assert f'<option value="{newer.pk}" selected>' in page
    assert "churn-model v2" in page and "run #2 of churn-train at ccccccc" in page
    assert 'name="param-THRESHOLD" value="0.5"' in page


def test_starting_a_batch_scoring_run_records_the_chosen_version(client, world):
    client.force_login(world.developer)

    client.post(
        f"/pipelines/{world.scoring.pk}/run",
        {"ref": "main", "model_version": world.version.pk, "param-THRESHOLD": "0.7"},
    )

    run = Run.objects.get(pipeline=world.scoring, number=2)
    assert run.input_model_version == world.version
    assert run.parameters["THRESHOLD"] == "0.7"


def test_a_model_version_can_be_preselected_from_the_model_page(client, world):
    client.force_login(world.developer)

    model_page = text(client.get(f"/models/{world.model.pk}/"))
    form = text(client.get(f"/pipelines/{world.scoring.pk}/run?model_version={world.version.pk}"))

    assert f"/pipelines/{world.scoring.pk}/run?model_version={world.version.pk}" in model_page
    assert f'<option value="{world.version.pk}" selected>' in form


# --- the run page --------------------------------------------------------------------------------
def test_the_run_page_shows_status_commit_parameters_steps_and_logs(client, world):
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.run.pk}/"))

    assert "Run #1" in page and "data-run-status>Succeeded" in page
    assert world.sha[:10] in page
    assert "<code>EPOCHS</code></td><td><code>100</code>" in page
    assert '<tr data-step="prepare">' in page and '<tr data-step="train">' in page
    assert "2 of 2" in page  # the train step's attempts
    assert "train: hello from the log" in page
    assert "churn-model v1" in page  # the version it produced


def test_the_run_page_of_a_scoring_run_links_the_version_it_used(client, world):
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{world.scoring_run.pk}/"))

    assert f'/models/{world.model.pk}/#version-1">churn-model v1</a>' in page
    assert 'data-active="true"' in page


def test_the_run_page_shows_the_planned_steps_before_they_start(client, world):
    run = Run.objects.create(
        pipeline=world.training,
        number=2,
        ref="main",
        commit_sha=world.sha,
        config_text=world.run.config_text,
        status=RunStatus.QUEUED,
    )
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{run.pk}/"))

    assert '<tr data-step="prepare">' in page and '<tr data-step="train">' in page
    assert "0 of 2" in page  # train may retry once


def test_the_run_page_shows_every_step_while_the_supervisor_records_them_one_by_one(client, world):
    run = Run.objects.create(
        pipeline=world.training,
        number=2,
        ref="main",
        commit_sha=world.sha,
        config_text=world.run.config_text,
        status=RunStatus.RUNNING,
    )
    RunStep.objects.create(run=run, name="prepare", position=0, status=RunStatus.RUNNING)
    client.force_login(world.viewer)

    page = text(client.get(f"/runs/{run.pk}/"))

    assert '<tr data-step="prepare">' in page and '<tr data-step="train">' in page
    assert page.index('data-step="prepare"') < page.index('data-step="train"')


def test_the_log_endpoint_returns_new_text_from_an_offset(client, world):
    client.force_login(world.viewer)

    first = client.get(f"/runs/{world.run.pk}/steps/train/log?offset=0").json()
    with log_path(world.run.pk, "train").open("a") as handle:
        handle.write("more output\n")
    second = client.get(f"/runs/{world.run.pk}/steps/train/log?offset={first['next_offset']}")

    assert first["text"].startswith("train: hello from the log")
    assert second.json() == {
        "text": "more output\n",
        "next_offset": first["next_offset"] + len("more output\n"),
        "status": "Succeeded",
    }
    assert client.get(f"/runs/{world.run.pk}/steps/train/log?offset=x").status_code == 400
    assert client.get(f"/runs/{world.run.pk}/steps/nope/log").json()["text"] == ""


def test_the_status_endpoint_reports_the_run_its_steps_and_its_model_version(client, world):
    client.force_login(world.viewer)

    data = client.get(f"/runs/{world.run.pk}/status").json()

    assert data["status"] == "Succeeded" and data["active"] is False
    assert [(s["name"], s["status"], s["attempts"]) for s in data["steps"]] == [
        ("prepare", "Succeeded", 1),
        ("train", "Succeeded", 2),
    ]
    assert data["output_model_version"] == {
        "label": "churn-model v1",
        "url": f"/models/{world.model.pk}/#version-1",
    }


def test_a_developer_stops_a_run_that_has_not_started(client, world):
    run = Run.objects.create(pipeline=world.training, number=2, ref="main", status="Queued")
    client.force_login(world.developer)

    response = client.post(f"/runs/{run.pk}/stop")

    run.refresh_from_db()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.status == RunStatus.STOPPED


def test_the_stop_button_asks_for_confirmation(client, world):
    client.force_login(world.developer)

    page = text(client.get(f"/runs/{world.scoring_run.pk}/"))

    assert re.search(r'action="/runs/\d+/stop"[^>]*\s+data-confirm="Stop run #1', page)


def test_a_rerun_uses_the_same_commit_parameters_and_model_version(client, world):
    new_sha = commit(world.repo, {"README.md": "newer"})
    client.force_login(world.developer)

    response = client.post(f"/runs/{world.scoring_run.pk}/rerun")

    rerun = Run.objects.get(pipeline=world.scoring, number=2)
    assert response["Location"] == f"/runs/{rerun.pk}/"
    assert rerun.commit_sha == world.sha != new_sha
    assert rerun.parameters == {"THRESHOLD": "0.5", "OUTPUT_PATH": ""}
    assert rerun.input_model_version == world.version
    assert rerun.status == RunStatus.ACCEPTED


# --- the model page ------------------------------------------------------------------------------
def test_the_model_page_shows_each_versions_facts_lineage_and_scoring_runs(client, world):
    client.force_login(world.viewer)

    page = text(client.get(f"/models/{world.model.pk}/"))

    assert 'id="version-1"' in page
    assert "ab" * 32 in page
    assert "1 file" in page and "bytes" in page
    assert f'href="/runs/{world.run.pk}/">churn-train #1</a>' in page
    assert world.sha[:10] in page
    assert "EPOCHS=100" in page
    assert f'href="/model-versions/{world.version.pk}/download"' in page
    assert f'href="/runs/{world.scoring_run.pk}/">churn-score #1</a>' in page
    assert "Score with" not in page  # viewers start no runs


def test_the_download_button_serves_the_zip(client, world):
    client.force_login(world.viewer)

    response = client.get(f"/model-versions/{world.version.pk}/download")

    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.namelist() == ["model.json"]


def test_the_models_list_shows_the_latest_version(client, world):
    client.force_login(world.viewer)

    page = text(client.get("/models/?project=churn"))

    assert "churn-model" in page and "v1" in page


# --- secrets -------------------------------------------------------------------------------------
def test_a_developer_sets_replaces_and_deletes_a_secret_and_never_sees_its_value(client, world):
    client.force_login(world.developer)
    url = f"/pipelines/{world.training.pk}/secrets"

    client.post(url, {"name": "DB_PASSWORD", "value": "first-s3cret"})
    client.post(url, {"name": "DB_PASSWORD", "value": "second-s3cret"})
    client.post(url, {"name": "SSH", "multiline_value": "-----BEGIN-----\nkey-s3cret\n-----END"})
    page = text(client.get(url + "?name=DB_PASSWORD"))

    assert Secret.objects.get(name="DB_PASSWORD").value == "second-s3cret"
    assert Secret.objects.get(name="SSH").value == "-----BEGIN-----\nkey-s3cret\n-----END"
    assert "<code>DB_PASSWORD</code>" in page and "<code>SSH</code>" in page
    assert "s3cret" not in page
    assert re.search(r'<input type="password" name="value"(?![^>]*value=)', page)

    client.post(url + "/delete", {"name": "DB_PASSWORD"})
    assert not Secret.objects.filter(name="DB_PASSWORD").exists()


def test_a_rejected_secret_form_does_not_write_the_value_back(client, world):
    client.force_login(world.developer)

    response = client.post(
        f"/pipelines/{world.training.pk}/secrets",
        {"name": "1 bad name", "value": "typed-s3cret", "multiline_value": "other-s3cret"},
    )

    page = text(response)
    assert response.status_code == 200
    assert "environment variable name" in page
    assert "s3cret" not in page
    assert not Secret.objects.exists()


def test_the_secrets_page_lists_declared_secrets_that_have_no_value(client, world, shown_once_read):
    commit(
        world.repo,
        {
            "bedrock.hcl": (world.repo / "bedrock.hcl")
            .read_text()
            .replace(
                "  parameters {\n    LEARNING",
                '  secrets = ["DB_URL"]\n  parameters {\n    LEARNING',
            )
        },
    )
    client.force_login(world.developer)

    page = shown_once_read(f"/pipelines/{world.training.pk}/secrets")

    assert "declares 1 secret without a value" in page and "<code>DB_URL</code>" in page


# --- API tokens ----------------------------------------------------------------------------------
def test_a_new_token_is_shown_once_and_works(client, world):
    client.force_login(world.developer)

    created = client.post("/tokens/", {"name": "airflow"})
    plaintext = re.search(r'value="(bdrk_[^"]+)"', text(created)).group(1)
    later = text(client.get("/tokens/"))

    assert "no-store" in created["Cache-Control"]
    assert api_token_authenticate(plaintext) == world.developer
    assert plaintext not in later and "airflow" in later
    assert ApiToken.objects.get(user=world.developer).prefix + "…" in later


def test_the_tokens_page_shows_when_each_token_was_last_used_and_only_the_users_own(client, world):
    other = api_token_create(user=world.developer, name="mine")
    api_token_authenticate(other.plaintext)
    client.force_login(world.developer)

    page = text(client.get("/tokens/"))

    assert "mine" in page and "vics-cron" not in page  # the viewer's token is not listed
    assert "just now</span>" in page  # last used


def test_a_user_revokes_their_token_but_not_someone_elses(client, world):
    client.force_login(world.developer)
    mine = api_token_create(user=world.developer, name="mine")

    assert client.post(f"/tokens/{world.token.pk}/revoke").status_code == 404
    client.post(f"/tokens/{mine.token.pk}/revoke")

    world.token.refresh_from_db()
    mine.token.refresh_from_db()
    assert world.token.revoked_at is None and mine.token.revoked_at is not None
    assert api_token_authenticate(mine.plaintext) is None
    assert "Revoked" in text(client.get("/tokens/"))


def test_logging_out_ends_the_session(client, world):
    client.force_login(world.viewer)

    client.post("/logout/")

    assert client.get("/")["Location"].startswith("/login/")
