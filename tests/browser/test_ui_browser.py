"""The web UI in real Chromium: what a data scientist does, end to end, with runs that really run.

Runs started through the live server execute on the local executor in threads of this process
(BEDROCK_SUPERVISOR="thread" in the test settings).
"""

from __future__ import annotations

import re
import zipfile

import pytest

from bedrock.models.models import ModelVersion
from bedrock.pipelines.models import Pipeline, PipelineKind, Project
from bedrock.runs.models import Run, RunStatus
from tests.repos import EXAMPLE, hcl, make_repo, step

pytestmark = pytest.mark.django_db(transaction=True)

RUN_TIMEOUT = 180_000  # ms: a run creates a virtual environment per step


@pytest.fixture
def expect():
    from playwright.sync_api import expect

    return expect


def test_the_login_form_comes_first_and_then_the_users_pipelines(
    page, login, screenshot, scientist, expect, tmp_path
):
    project = Project.objects.get(name="example")
    Pipeline.objects.create(
        project=project,
        name="churn-score",
        git_url=str(make_repo(tmp_path / "churn", copy=EXAMPLE)),
        kind=PipelineKind.BATCH_SCORING,
    )

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Log in to Bedrock")).to_be_visible()
    screenshot("01-login")

    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    screenshot("01-login-failed")

    login(scientist)
    expect(page.get_by_role("heading", name="Pipelines")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="churn-score")
    expect(row).to_contain_text("No runs yet")
    expect(page.get_by_label("Project")).to_have_value("")
    screenshot("02-home")

    page.get_by_label("Project").select_option("example")
    expect(page).to_have_url(re.compile(r"\?project=example$"))
    expect(page.get_by_role("heading", name="example / Pipelines")).to_be_visible()


def test_train_from_the_example_repository_download_the_version_and_score_with_it(
    page, login, screenshot, scientist, expect, tmp_path
):
    repo = make_repo(tmp_path / "churn", copy=EXAMPLE)
    Pipeline.objects.create(
        project=Project.objects.get(name="example"),
        name="churn-score",
        git_url=str(repo),
        kind=PipelineKind.BATCH_SCORING,
    )
    login(scientist)

    # Create the training pipeline: the form checks the config at the branch head.
    page.get_by_role("link", name="New pipeline").click()
    page.get_by_label("Name").fill("churn-train")
    page.get_by_label("Training").check()
    page.get_by_label("Repository").fill(str(repo))
    page.get_by_label("Model", exact=True).select_option(label="example/churn-model")
    screenshot("03-new-pipeline")
    page.get_by_role("button", name="Check and create").click()

    expect(page.get_by_role("heading", name="churn-train")).to_be_visible()
    expect(page.locator(".dag-step")).to_have_count(2)
    expect(page.locator(".dag-step").nth(1)).to_contain_text("after prepare")
    screenshot("04-pipeline")

    # Start a training run with a parameter changed.
    page.get_by_role("link", name="Start run").click()
    expect(page.locator("[data-resolved]")).to_contain_text("resolves to")
    page.get_by_label("EPOCHS").fill("100")
    screenshot("05-start-training")
    page.get_by_role("button", name="Start run").click()

    # The run page follows the logs and the status without reloading.
    expect(page.get_by_role("heading", name=re.compile(r"Run #1"))).to_be_visible()
    page.evaluate("window.notReloaded = true")
    train_log = page.locator("#log-train pre.log")
    expect(train_log).to_contain_text("validation accuracy", timeout=RUN_TIMEOUT)
    expect(page.locator("[data-run-status]")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#log-prepare pre.log")).to_contain_text("prepared")
    expect(page.locator('tr[data-step="train"] [data-field="status"]')).to_have_text("Succeeded")
    expect(page.locator("[data-run-output]")).to_have_text("churn-model v1")
    screenshot("06-training-run")

    run = Run.objects.get(pipeline__name="churn-train")
    assert run.status == RunStatus.SUCCEEDED and run.parameters["EPOCHS"] == "100"

    # The model page: the version, where it came from, and its download.
    page.locator("[data-run-output] a").click()
    version = page.locator("#version-1")
    expect(version).to_contain_text(ModelVersion.objects.get(run=run).sha256)
    expect(version).to_contain_text("EPOCHS=100")
    expect(version).to_contain_text(run.commit_sha[:10])
    screenshot("07-model")
    with page.expect_download() as download:
        version.get_by_role("link", name=re.compile("Download")).click()
    assert download.value.suggested_filename == "churn-model-v1.zip"
    with zipfile.ZipFile(download.value.path()) as archive:
        assert sorted(archive.namelist()) == ["metrics.json", "model.json", "scaling.json"]

    # Score with the version just downloaded.
    version.get_by_role("link", name="Score with churn-score").click()
    expect(page.get_by_label("Model version")).to_have_value(
        str(ModelVersion.objects.get(run=run).pk)
    )
    screenshot("08-start-scoring")
    page.get_by_role("button", name="Start run").click()

    expect(page.locator("[data-run-status]")).to_have_text("Succeeded", timeout=RUN_TIMEOUT)
    expect(page.locator("#log-score pre.log")).to_contain_text("scored 200 customers")
    expect(page.get_by_role("link", name="churn-model v1")).to_be_visible()
    screenshot("09-scoring-run")

    # The model page lists the scoring run that used the version.
    page.get_by_role("link", name="churn-model v1").click()
    expect(page.locator("#version-1")).to_contain_text("churn-score #1")

    # The pipeline page and the home page show the runs and their outcome.
    page.get_by_role("link", name="churn-train").first.click()
    expect(page.get_by_role("row").filter(has_text="#1")).to_contain_text("produced v1")
    screenshot("10-pipeline-with-runs")
    page.get_by_role("link", name="Pipelines").click()
    expect(page.get_by_role("row").filter(has_text="churn-score")).to_contain_text("Succeeded")
    screenshot("10-home-with-runs")


def test_the_create_form_points_at_each_problem_in_the_config(
    page, login, screenshot, scientist, expect, tmp_path
):
    broken = (EXAMPLE / "bedrock.hcl").read_text().replace('memory = "512M"', 'memory = "lots"')
    broken = broken.replace('depends_on = ["prepare"]', 'depends_on = ["prepare", "clean"]')
    repo = make_repo(tmp_path / "broken", copy=EXAMPLE, files={"bedrock.hcl": broken})
    login(scientist)
    page.goto("/pipelines/new")
    page.get_by_label("Name").fill("churn-broken")
    page.get_by_label("Repository").fill(str(repo))
    page.get_by_label("Model", exact=True).select_option(label="example/churn-model")
    page.get_by_role("button", name="Check and create").click()

    problems = page.locator(".problem.error")
    expect(problems).to_have_count(2)
    dependency = problems.filter(has_text="unknown step 'clean'")
    memory = problems.filter(has_text="memory must be a quantity")
    expect(dependency).to_contain_text("line 19, column")
    expect(memory).to_contain_text("line 22, column")
    expect(memory.locator(".line.here")).to_contain_text('memory = "lots"')
    screenshot("03b-config-problems")
    assert not Pipeline.objects.filter(name="churn-broken").exists()

    page.get_by_label("Save even though").check()
    page.get_by_role("button", name="Check and create").click()
    expect(page.get_by_role("heading", name="churn-broken")).to_be_visible()
    expect(page.locator(".problem.error")).to_have_count(2)


def test_a_running_run_is_stopped_after_confirmation(
    page, login, screenshot, scientist, expect, tmp_path
):
    slow = step(
        "work", "echo started working; for i in $(seq 1 600); do echo tick $i; sleep 1; done"
    )
    repo = make_repo(tmp_path / "slow", {"bedrock.hcl": hcl("train", slow)})
    pipeline = Pipeline.objects.create(
        project=Project.objects.get(name="example"),
        name="slow-train",
        git_url=str(repo),
        kind=PipelineKind.TRAINING,
        model=Project.objects.get(name="example").models.get(),
    )
    login(scientist)
    page.goto(f"/pipelines/{pipeline.pk}/run")
    page.get_by_role("button", name="Start run").click()

    expect(page.locator("#log-work pre.log")).to_contain_text("tick 3", timeout=RUN_TIMEOUT)
    expect(page.locator("[data-run-status]")).to_have_text("Running")
    screenshot("11-running")

    # Dismissing the confirmation leaves the run alone.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Stop run").click()
    assert Run.objects.get(pipeline=pipeline).status == RunStatus.RUNNING

    asked = []

    def accept(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Stop run").click()
    expect(page.locator("[data-run-status]")).to_have_text("Stopped", timeout=60_000)
    assert asked and asked[0].startswith("Stop run #1 of slow-train?")
    expect(page.get_by_role("button", name="Stop run")).to_have_count(0)
    screenshot("12-stopped")
    assert Run.objects.get(pipeline=pipeline).status == RunStatus.STOPPED


def test_secrets_and_api_tokens_are_never_shown_back(
    page, login, screenshot, scientist, expect, tmp_path
):
    text = hcl("train", step("s", "true"), secrets='"DB_PASSWORD", "API_KEY"')
    pipeline = Pipeline.objects.create(
        project=Project.objects.get(name="example"),
        name="with-secrets",
        git_url=str(make_repo(tmp_path / "s", {"bedrock.hcl": text})),
        kind=PipelineKind.TRAINING,
        model=Project.objects.get(name="example").models.get(),
    )
    login(scientist)
    page.goto(f"/pipelines/{pipeline.pk}/")
    # The first visit queues the config's read; the page reloads itself until the worker has it.
    expect(page.get_by_role("row").filter(has_text="API_KEY")).to_contain_text(
        "Missing", timeout=60_000
    )
    page.get_by_role("link", name="Secrets", exact=True).click()

    page.get_by_label("Name").fill("DB_PASSWORD")
    page.get_by_label("Value", exact=True).fill("hunter2-s3cret")
    page.get_by_role("button", name="Save secret").click()
    expect(page.locator(".message")).to_have_text("Saved the secret DB_PASSWORD.")
    expect(page.get_by_label("Value", exact=True)).to_have_value("")
    assert "hunter2" not in page.content()
    screenshot("13-secrets")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row").filter(has_text="DB_PASSWORD").get_by_role(
        "button", name="Delete"
    ).click()
    expect(page.locator(".message")).to_have_text("Deleted the secret DB_PASSWORD.")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("airflow nightly")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("New API token").input_value()
    assert token.startswith("bdrk_")
    screenshot("14-token-created")

    page.goto("/tokens/")  # the token is gone for good
    assert token not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row").filter(has_text="airflow nightly")).to_contain_text("Revoked")
    screenshot("15-tokens")
