"""A step starts in its config file's folder, on every executor; and a Docker step whose image
cannot be had fails at once, naming the image."""

from __future__ import annotations

import zipfile
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
from django.core.files.storage import default_storage
from docker.errors import APIError, ImageNotFound
from docker.models.images import ImageCollection

from bedrock.actors import SYSTEM
from bedrock.nomad.jobs import MAIN_TASK, render_step
from bedrock.pipelines import spec
from bedrock.pipelines.spec import Resources
from bedrock.runs.executors.base import ExecutorError, StepContext
from bedrock.runs.executors.docker import DockerExecutor, container_options
from bedrock.runs.executors.local import LocalExecutor, bubblewrap
from bedrock.runs.models import RunStatus
from bedrock.runs.plan import StepPlan, build_plan
from bedrock.runs.services import run_create
from bedrock.runs.workdir import step_workdir
from tests.nomad_fields import walk
from tests.repos import hcl, make_repo, step
from tests.runflow import pipeline_for, step_log, wait_until_done

NO_RESOURCES = Resources(
    cpu=None, memory=None, gpu=None, millicpu=None, memory_bytes=None, gpu_count=0
)
# Reads a file beside it by a relative path and leaves what it saw in /artefact.
TRAIN_PY = (
    "import os\n"
    "rows = open('data.csv').read().split()\n"
    "out = os.path.join(os.environ['BEDROCK_ARTEFACT_DIR'], 'trained.txt')\n"
    "open(out, 'w').write(f'{len(rows)} rows in {os.path.basename(os.getcwd())}')\n"
)


def sub_folder_repo(tmp_path, *commands: str):
    """A repository whose pipeline lives in ``sub/``, beside its requirements and script."""
    files = {
        "sub/bedrock.hcl": hcl("train", step("train", *commands)),
        "sub/requirements.txt": "# nothing to install: pip only has to find this file\n",
        "sub/train.py": TRAIN_PY,
        "sub/data.csv": "a\nb\nc\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    pipeline = pipeline_for(repo)
    pipeline.config_path = "sub/bedrock.hcl"
    pipeline.save(update_fields=["config_path"])
    return pipeline


def trained(run) -> str:
    with default_storage.open(run.output_model_version.storage_key) as handle:
        return zipfile.ZipFile(handle).read("trained.txt").decode()


# What build_plan needs to know of a run besides its stanza and config path.
A_RUN = {
    "run_id": 7,
    "run_number": 1,
    "pipeline_id": 1,
    "project_id": 1,
    "parameters": {},
    "input_model_version_id": None,
    "time_limit": timedelta(hours=1),
    "publishes_model": True,
}


def plan_in(workdir: str) -> StepPlan:
    return StepPlan("train", "python:3.7", "python train.py", {}, (), NO_RESOURCES, (), 0, workdir)


def context_for(tmp_path) -> StepContext:
    for directory in (tmp_path / "app" / "sub", tmp_path / "artefact", tmp_path / "step"):
        directory.mkdir(parents=True)
    return StepContext(7, tmp_path / "app", tmp_path / "artefact", tmp_path / "step", {}, {}, 1)


@pytest.mark.parametrize(
    ("config_path", "workdir"),
    [
        ("bedrock.hcl", "/app"),
        ("", "/app"),
        ("sub/bedrock.hcl", "/app/sub"),
        ("./sub//train.hcl", "/app/sub"),
        ("a/b/bedrock.hcl", "/app/a/b"),
    ],
)
def test_a_step_starts_in_the_folder_of_its_config_file(config_path, workdir):
    assert step_workdir(config_path) == workdir


@pytest.mark.django_db(transaction=True)
def test_relative_paths_of_a_sub_folder_config_work_on_the_local_executor(tmp_path):
    pipeline = sub_folder_repo(tmp_path, "pip install -r requirements.txt", "python train.py")

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline))

    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, step_log(run, "train"))
    assert trained(run) == "3 rows in sub"


@pytest.mark.skipif(bubblewrap() is None, reason="only the sandbox has the checkout at /app")
@pytest.mark.django_db(transaction=True)
def test_a_sub_folder_step_that_changes_to_an_absolute_path_under_app_works(tmp_path):
    pipeline = sub_folder_repo(tmp_path, "cd /app/sub && python train.py")

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline))

    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, step_log(run, "train"))
    assert trained(run) == "3 rows in sub"


@pytest.mark.django_db
def test_a_step_whose_folder_is_not_in_the_checkout_does_not_start(tmp_path):
    context = context_for(tmp_path)
    (tmp_path / "app" / "elsewhere").symlink_to("/usr")
    (tmp_path / "step" / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "step" / "venv" / "bin" / "python").touch()  # as if made: no need to wait for one

    for workdir in ("/app/gone", "/app/elsewhere"):
        with pytest.raises(ExecutorError, match=f"config file's folder, {workdir}, which is not"):
            LocalExecutor().start(plan_in(workdir), context)


def test_a_container_starts_in_the_folder_of_its_config_file(tmp_path):
    context = context_for(tmp_path)

    assert container_options(plan_in("/app/sub"), context)["working_dir"] == "/app/sub"
    assert container_options(plan_in("/app"), context)["working_dir"] == "/app"


def test_a_nomad_main_task_starts_in_the_folder_of_its_config_file():
    stanza = spec.load(hcl("train", step("train", "python train.py"))).stanza("train")
    plan = build_plan(stanza, config_path="sub/bedrock.hcl", **A_RUN)
    body = render_step(plan, plan.steps[0], attempt=1, time_left=timedelta(hours=1)).body

    (group,) = body["Job"]["TaskGroups"]
    main = next(task for task in group["Tasks"] if task["Name"] == MAIN_TASK)
    assert main["Config"]["work_dir"] == "/app/sub"
    assert walk(body, version="v2.0.5") == []  # work_dir is the Docker driver's own key


# --------------------------------------------------------------------------------------------
# Images the Engine lacks


class FakeEngineApi:
    """The low-level calls the SDK's image collection makes, for an image the Engine lacks."""

    def __init__(self, pull_events=(), pull_error: Exception | None = None) -> None:
        self.pull_events = list(pull_events)
        self.pull_error = pull_error

    def inspect_image(self, name: str):
        raise ImageNotFound(f"No such image: {name}")

    def pull(self, repository: str, tag=None, stream=False, **kwargs):
        if self.pull_error is not None:
            raise self.pull_error
        return iter(self.pull_events)


def executor_with(api: FakeEngineApi) -> DockerExecutor:
    engine = SimpleNamespace(api=api)
    engine.images = ImageCollection(client=engine)  # the SDK's own, over the fake calls
    executor = DockerExecutor.__new__(DockerExecutor)
    executor.client = engine
    return executor


REFUSED = APIError(
    "404 Client Error for http+docker://localhost/v1.47/images/create",
    explanation="pull access denied for nosuch, repository does not exist",
)


@pytest.mark.parametrize(
    ("api", "reason"),
    [
        (FakeEngineApi(pull_error=REFUSED), "pull access denied for nosuch"),
        (
            FakeEngineApi(
                pull_events=[
                    {"status": "Pulling from library/python", "id": "3.7"},
                    {"errorDetail": {"message": "toomanyrequests: rate limit"}, "error": "x"},
                ]
            ),
            "toomanyrequests: rate limit",
        ),
        (FakeEngineApi(pull_error=requests.exceptions.ReadTimeout("Read timed out")), "timed out"),
    ],
    ids=["refused", "refused-half-way", "engine-timed-out"],
)
def test_a_step_whose_image_cannot_be_pulled_fails_naming_the_image_and_why(tmp_path, api, reason):
    with pytest.raises(ExecutorError) as raised:
        executor_with(api).start(plan_in("/app"), context_for(tmp_path))

    message = str(raised.value)
    assert message.startswith("image python:3.7 is not on this Docker Engine and could not be")
    assert reason in message


@pytest.mark.django_db(transaction=True)
def test_a_docker_run_whose_image_cannot_be_pulled_fails_with_the_image_named(
    tmp_path, settings, monkeypatch
):
    settings.BEDROCK_EXECUTOR = "docker"
    engine = executor_with(FakeEngineApi(pull_error=REFUSED)).client
    monkeypatch.setattr("bedrock.runs.executors.docker.client", lambda: engine)
    repo = make_repo(tmp_path / "repo", {"bedrock.hcl": hcl("train", step("train", "true"))})

    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline_for(repo)))

    assert run.status == RunStatus.FAILED
    assert run.failure_reason == (
        "step 'train' could not start: image python:3.11-slim is not on this Docker Engine and "
        "could not be pulled: pull access denied for nosuch, repository does not exist"
    )
