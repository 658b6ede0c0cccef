"""Runs on Nomad, end to end through the supervisor, against the fake Nomad HTTP API.

The executor talks to `tests/fakenomad.py` through the real python-nomad client. The fake plays
each job's allocation lifecycle (it does not run containers), so where a job's upload task would
send /artefact to Bedrock, the test sends it itself, over HTTP to the live server, with the run
token the job's template would read from the Nomad Variable.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from bedrock.actors import SYSTEM
from bedrock.models.models import ModelVersion
from bedrock.nomad.client import client as nomad_client
from bedrock.nomad.client import nomad_errors
from bedrock.nomad.executor import NomadExecutor
from bedrock.runs.models import Run, RunStatus
from bedrock.runs.plan import run_key_for
from bedrock.runs.services import run_create, run_stop, runs_reconcile
from bedrock.runs.workspace import Workspace
from bedrock.secrets.services import secret_set
from tests.fakenomad import FakeNomad, Scenario
from tests.repos import hcl, step
from tests.runflow import pipeline_for, repo_with, step_log, wait_for, wait_until_done

# ruff: noqa: S310 (urllib against the test servers only)
pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cr3t-value-never-in-a-body"
TOKEN = "nomad-acl-token"


@pytest.fixture
def nomad(settings, live_server, monkeypatch):
    for name in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION"):
        monkeypatch.delenv(name, raising=False)
    with FakeNomad() as fake:
        fake.token = TOKEN
        settings.BEDROCK_EXECUTOR = "nomad"
        settings.NOMAD_ADDR = fake.address
        settings.NOMAD_TOKEN = TOKEN
        settings.NOMAD_NAMESPACE = "default"
        settings.BEDROCK_NOMAD_POLL_SECONDS = 0.02
        settings.BEDROCK_API_DOMAIN = live_server.url
        yield fake


def upload_as_the_hook(
    fake: FakeNomad, job: dict, files: dict[str, str], *, attempt: str = "", expect: int = 201
) -> None:
    """What `bedrock hook upload` does at the end of a successful main task."""
    meta = job["Meta"]
    token = fake.variable(f"nomad/jobs/{job['ID']}")["BEDROCK_API_TOKEN"]
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    request = urllib.request.Request(
        f"{job['TaskGroups'][0]['Tasks'][0]['Env']['BEDROCK_API_DOMAIN']}/runs/"
        f"{meta['bedrock_run_id']}/steps/{meta['bedrock_step']}/artefact"
        f"?attempt={attempt or meta['bedrock_attempt']}",
        data=body.getvalue(),
        method="PUT",
        headers={"X-Bedrock-Access-Token": token, "Content-Type": "application/zip"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as refused:
        status = refused.code
    assert status == expect


def training(tmp_path, steps: str | None = None, **pipeline):
    steps = steps or step("train", "python train.py")
    config = hcl("train", steps, parameters='ALPHA = "0.5"', secrets='"DB_PASSWORD"')
    pipeline = pipeline_for(repo_with(tmp_path, config), **pipeline)
    secret_set(actor=SYSTEM, pipeline=pipeline, name="DB_PASSWORD", value=SECRET)
    return pipeline


def assert_nothing_left(fake: FakeNomad, run) -> None:
    listed = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                f"{fake.address}/v1/jobs?prefix=bedrock-{run.pk}-",
                headers={"X-Nomad-Token": TOKEN},
            )
        ).read()
    )
    assert listed == [], "jobs of the run are still registered"
    for request in fake.requests_to("PUT", r"^/v1/var/"):
        assert fake.variable(request.path.removeprefix("/v1/var/")) is None
    assert fake.dropped == []


def stage_archives(run) -> list[str]:
    try:
        return default_storage.listdir(f"runs/{run.pk}/steps/")[1]
    except FileNotFoundError:
        return []


def assert_secret_only_in_the_variable(fake: FakeNomad) -> None:
    for request in fake.requests:
        text = (request.body or b"").decode(errors="replace") + json.dumps(request.query)
        if request.method == "PUT" and request.path.startswith("/v1/var/"):
            continue
        assert SECRET not in text and "bdrkrun_" not in text, request.path


def test_a_training_run_on_nomad_publishes_its_upload_and_leaves_nothing(tmp_path, nomad):
    def scenario(job):
        upload_as_the_hook(nomad, job, {"model.txt": "weights", "metrics.json": "{}"})
        return Scenario("success", stdout=f"training with alpha 0.5\npassword {SECRET}\n")

    nomad.scenario_for = scenario
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    version = ModelVersion.objects.get(run=run)
    with default_storage.open(version.storage_key) as handle:
        assert sorted(zipfile.ZipFile(handle).namelist()) == ["metrics.json", "model.txt"]
    log = step_log(run, "train")
    assert "training with alpha 0.5" in log
    assert SECRET not in log and "password ********" in log
    assert "submitted the Nomad job bedrock-" in log
    (register,) = nomad.requests_to("POST", rf"^/v1/job/bedrock-{run.pk}-train-1$")
    assert register.headers.get("X-Nomad-Token") == TOKEN
    assert nomad.requests_to("DELETE", rf"^/v1/job/bedrock-{run.pk}-train-1$")
    assert_nothing_left(nomad, run)
    assert_secret_only_in_the_variable(nomad)
    wait_for(  # the supervisor cleans up just after it records the run's end
        lambda: not stage_archives(run),
        timeout=30,
        what="the stage archives to be deleted",
    )
    assert not Run.objects.get(pk=run.pk).cleanup_pending


def test_the_variable_holds_the_token_and_secrets_before_the_job_is_registered(tmp_path, nomad):
    seen = {}

    def scenario(job):
        seen.update(nomad.variable(f"nomad/jobs/{job['ID']}") or {})
        return Scenario("failure")

    nomad.scenario_for = scenario
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)
    assert run.status == RunStatus.FAILED
    assert seen["DB_PASSWORD"] == SECRET and seen["BEDROCK_API_TOKEN"].startswith("bdrkrun_")
    put = nomad.requests_to("PUT", r"^/v1/var/")[0]
    assert put.query.get("cas") == "0"  # create-only


@pytest.mark.parametrize(
    ("kind", "reason", "exit_code"),
    [
        ("failure", "step 'train' failed with exit code 1", 1),
        ("oom", "running out of memory (OOM)", 137),
        ("lost", "node running the step was lost", -1),
        ("max_run_duration", "max_run_duration", 124),
        ("prestart_failure", "prestart task fetch", -1),
        ("poststop_failure", "poststop task upload", -1),
    ],
)
def test_each_way_a_job_can_end_gives_its_reason(tmp_path, nomad, kind, reason, exit_code):
    nomad.default_scenario = Scenario(kind, stdout="working\n")
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)

    assert run.status == RunStatus.FAILED
    assert reason in run.failure_reason
    train = run.steps.get(name="train")
    assert train.status == RunStatus.FAILED and train.exit_code == exit_code
    assert_nothing_left(nomad, run)


def test_a_step_whose_name_has_a_dot_runs_under_a_job_id_nomad_accepts(tmp_path, nomad):
    def scenario(job):
        upload_as_the_hook(nomad, job, {"model.txt": "weights"})
        return Scenario("success")

    nomad.scenario_for = scenario
    pipeline = training(tmp_path, step("train.v2", "python train.py"))
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline), timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    (put,) = nomad.requests_to("PUT", r"^/v1/var/")
    assert put.path.startswith(f"/v1/var/nomad/jobs/bedrock-{run.pk}-train-v2-")
    assert_nothing_left(nomad, run)


def test_a_failed_step_is_retried_as_a_new_job_and_only_the_last_attempts_upload_counts(
    tmp_path, nomad
):
    scenarios = iter([Scenario("failure"), Scenario("success")])

    def scenario(job):
        chosen = next(scenarios)
        if chosen.kind == "success":
            # A straggler of attempt 1 is refused once attempt 2 runs.
            upload_as_the_hook(nomad, job, {"late.txt": "first try"}, attempt="1", expect=409)
            upload_as_the_hook(nomad, job, {"model.txt": "second try"})
        else:  # an attempt that uploaded, then failed: its files must not reach the version
            upload_as_the_hook(nomad, job, {"model.txt": "first try", "stale.txt": "x"})
        return chosen

    nomad.scenario_for = scenario
    steps = step("train", "python train.py", extra="retry {\nlimit = 1\n}")
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path, steps)), timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    registered = [r.path for r in nomad.requests_to("POST", r"^/v1/job/")]
    assert registered == [f"/v1/job/bedrock-{run.pk}-train-1", f"/v1/job/bedrock-{run.pk}-train-2"]
    assert run.steps.get(name="train").attempts == 2
    version = ModelVersion.objects.get(run=run)
    with default_storage.open(version.storage_key) as handle:
        archive = zipfile.ZipFile(handle)
        assert archive.namelist() == ["model.txt"]
        assert archive.read("model.txt") == b"second try"
    assert_nothing_left(nomad, run)


def test_what_a_failed_attempt_uploaded_is_dropped_when_the_next_one_starts(tmp_path, nomad):
    scenarios = iter([Scenario("failure"), Scenario("success")])

    def scenario(job):
        chosen = next(scenarios)
        if chosen.kind == "failure":
            upload_as_the_hook(nomad, job, {"model.txt": "from the failed attempt"})
        return chosen  # the second attempt succeeds and uploads nothing

    nomad.scenario_for = scenario
    steps = step("train", "python train.py", extra="retry {\nlimit = 1\n}")
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path, steps)), timeout=60)

    assert run.status == RunStatus.FAILED
    assert "succeeded but uploaded no /artefact" in run.failure_reason
    assert not ModelVersion.objects.filter(run=run).exists()


def test_dependent_steps_run_in_order_and_the_last_ones_upload_is_published(tmp_path, nomad):
    order = []

    def scenario(job):
        name = job["Meta"]["bedrock_step"]
        order.append(name)
        upload_as_the_hook(nomad, job, {f"{name}.txt": name})
        return Scenario("success")

    nomad.scenario_for = scenario
    steps = step("prepare", "python prepare.py") + step(
        "fit", "python fit.py", depends_on='"prepare"'
    )
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path, steps)), timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert order == ["prepare", "fit"]
    fetch_env = nomad.requests_to("POST", rf"bedrock-{run.pk}-fit-1$")[0].json["Job"]["TaskGroups"][
        0
    ]["Tasks"][0]["Env"]
    assert fetch_env["BEDROCK_HOOK_DEPENDENCIES"] == "prepare"
    version = ModelVersion.objects.get(run=run)
    with default_storage.open(version.storage_key) as handle:
        # fit's upload is the run's /artefact: on a real cluster its fetch unpacked prepare's.
        assert zipfile.ZipFile(handle).namelist() == ["fit.txt"]


def test_a_500_on_register_is_retried_and_a_lost_reply_adopts_the_job(tmp_path, nomad):
    nomad.fail_next("POST", r"^/v1/job/bedrock-\d+-train-1$", status=500)
    nomad.fail_next("POST", r"^/v1/job/bedrock-\d+-train-1$", status=500, after_effect=True)
    nomad.default_scenario = Scenario("failure", stdout="ran once\n")
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)

    assert run.status == RunStatus.FAILED and "exit code 1" in run.failure_reason
    # three register calls: refused, stored but the reply lost (adopted), never a fourth
    assert len(nomad.requests_to("POST", r"^/v1/job/")) == 2
    assert step_log(run, "train").count("ran once") == 1
    assert_nothing_left(nomad, run)


def test_a_job_already_registered_for_the_same_step_is_adopted(tmp_path, nomad):
    pipeline = training(tmp_path)
    original = NomadExecutor._register
    calls = []

    def register_twice(self, api, job):
        calls.append(job.job_id)
        api.job.register_job(job.job_id, job.body)  # as if an earlier try got through
        return original(self, api, job)

    nomad.default_scenario = Scenario("failure")
    NomadExecutor._register = register_twice
    try:
        run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline), timeout=60)
    finally:
        NomadExecutor._register = original
    assert run.status == RunStatus.FAILED and "exit code 1" in run.failure_reason
    assert len(nomad.requests_to("POST", r"^/v1/job/")) == 2  # the second hit EnforceIndex
    assert_nothing_left(nomad, run)


def before_the_first_start(monkeypatch, prepare) -> None:
    """Call ``prepare(job_id)`` once, just before the executor starts the first step job:
    what the test puts in Nomad is there before Bedrock looks, however fast the run begins."""
    original = NomadExecutor.start
    done = []

    def start(self, step_plan, context):
        if not done:
            done.append(True)
            prepare(f"bedrock-{context.run_id}-{step_plan.name}-{context.attempt}")
        return original(self, step_plan, context)

    monkeypatch.setattr(NomadExecutor, "start", start)


def test_someone_elses_job_under_the_id_is_refused_and_left_alone(tmp_path, nomad, monkeypatch):
    stranger = {}

    def register_a_stranger(job_id):
        stranger.update(
            ID=job_id,
            Name=job_id,
            Type="batch",
            Meta={"bedrock_run_id": "999"},
            TaskGroups=[
                {
                    "Name": "g",
                    "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "busybox"}}],
                }
            ],
        )
        nomad.put_variable(f"nomad/jobs/{job_id}", {"THEIRS": "their-value"})
        urllib.request.urlopen(
            urllib.request.Request(
                f"{nomad.address}/v1/job/{job_id}",
                data=json.dumps({"Job": stranger}).encode(),
                method="POST",
                headers={"X-Nomad-Token": TOKEN},
            )
        )

    nomad.default_scenario = Scenario("hang")
    before_the_first_start(monkeypatch, register_a_stranger)
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)

    assert run.status == RunStatus.FAILED
    assert "not this step's" in run.failure_reason and "run 999" in run.failure_reason
    assert nomad.job(stranger["ID"])["Meta"] == {"bedrock_run_id": "999"}
    assert nomad.variable(f"nomad/jobs/{stranger['ID']}") == {"THEIRS": "their-value"}
    assert not nomad.requests_to("PUT", r"^/v1/var/"), "wrote under someone else's job"
    # The run's cleanup follows its end: it looked, and left the stranger's job alone.
    # The supervisor removes the workspace once the cleanup is over.
    wait_for(lambda: not Workspace(run.pk).root.exists(), timeout=30, what="the cleanup")
    assert nomad.requests_to("GET", r"^/v1/jobs$")
    assert nomad.job(stranger["ID"]) is not None


def test_a_variable_left_by_someone_else_is_refused_and_its_values_stay_out_of_the_reason(
    tmp_path, nomad, monkeypatch
):
    left = {"bedrock.run_key": "another-install", "THEIRS": "their-value"}
    paths = []

    def leave_a_variable(job_id):
        paths.append(f"nomad/jobs/{job_id}")
        nomad.put_variable(paths[0], left)

    before_the_first_start(monkeypatch, leave_a_variable)
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)
    (path,) = paths

    assert run.status == RunStatus.FAILED
    assert "variable" in run.failure_reason and "not this run's" in run.failure_reason
    # Nomad's 409 carries the variable in the way, values and all: none may reach the run.
    for text in (run.failure_reason, run.steps.get(name="train").failure_reason):
        assert "their-value" not in text and SECRET not in text
    assert nomad.variable(path) == left
    assert not nomad.requests_to("POST", r"^/v1/job/"), "registered beside someone's variable"


def test_a_variable_an_earlier_try_of_this_run_left_is_replaced(tmp_path, nomad, monkeypatch):
    nomad.default_scenario = Scenario("failure")
    paths = []

    def leave_our_variable(job_id):
        paths.append(f"nomad/jobs/{job_id}")
        run = Run.objects.get(pk=int(job_id.split("-")[1]))
        nomad.put_variable(paths[0], {"bedrock.run_key": run_key_for(run), "STALE": "x"})

    before_the_first_start(monkeypatch, leave_our_variable)
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)
    (path,) = paths

    assert run.status == RunStatus.FAILED and "exit code 1" in run.failure_reason
    puts = nomad.requests_to("PUT", rf"^/v1/var/{path}$")
    (first, replaced) = [p.query.get("cas") for p in puts]
    assert first == "0" and replaced not in ("0", None)  # replaced at the index it was read at
    assert puts[-1].json["Items"]["DB_PASSWORD"] == SECRET
    assert_nothing_left(nomad, run)


def test_a_job_that_cannot_be_purged_is_not_retried_and_the_reconciler_removes_it(tmp_path, nomad):
    nomad.default_scenario = Scenario("failure")
    steps = step("train", "python train.py", extra="retry {\nlimit = 2\n}")
    # The step's own purge and the end-of-run cleanup both fail: Nomad has no leader.
    nomad.fail_next("DELETE", r"^/v1/job/bedrock-\d+-train-1$", status=500, times=2)
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path, steps)), timeout=60)

    assert run.status == RunStatus.FAILED
    assert "could not be purged, so the step is not retried" in run.failure_reason
    assert [r.path for r in nomad.requests_to("POST", r"^/v1/job/")] == [
        f"/v1/job/bedrock-{run.pk}-train-1"
    ]
    wait_for(
        lambda: Run.objects.get(pk=run.pk).cleanup_pending,
        timeout=30,
        what="the run's cleanup to be left for the reconciler",
    )
    assert nomad.job(f"bedrock-{run.pk}-train-1") is not None
    assert nomad.variable(f"nomad/jobs/bedrock-{run.pk}-train-1") is not None

    assert runs_reconcile()["cleaned"] == 1
    assert not Run.objects.get(pk=run.pk).cleanup_pending
    assert_nothing_left(nomad, run)


def test_stop_run_stops_the_job_and_the_run_ends_stopped(tmp_path, nomad):
    nomad.default_scenario = Scenario("hang", stdout="epoch 1\n")
    run = run_create(actor=SYSTEM, pipeline=training(tmp_path))
    wait_for(
        lambda: nomad.requests_to("GET", r"/allocations$") and "epoch 1" in step_log(run, "train"),
        timeout=60,
        what="the job to run",
    )
    run_stop(actor=SYSTEM, run=run)
    run = wait_until_done(run, timeout=60)

    assert run.status == RunStatus.STOPPED
    deletes = [r.query for r in nomad.requests_to("DELETE", rf"^/v1/job/bedrock-{run.pk}-")]
    assert deletes[0].get("purge") == "False"  # a stop first: the upload still runs
    assert_nothing_left(nomad, run)


def test_the_watchdog_stops_a_job_past_the_run_time_limit(tmp_path, nomad):
    nomad.default_scenario = Scenario("hang")
    pipeline = training(tmp_path, max_run_time=timedelta(seconds=2))
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline), timeout=60)

    assert run.status == RunStatus.FAILED
    assert "maximum run time" in run.failure_reason
    assert_nothing_left(nomad, run)


def test_a_job_nomad_cannot_place_fails_after_the_queue_timeout_with_why(tmp_path, nomad, settings):
    settings.BEDROCK_NOMAD_QUEUE_TIMEOUT = timedelta(seconds=1)
    nomad.default_scenario = Scenario("unplaceable")
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)

    assert run.status == RunStatus.FAILED
    assert "could not place the step within 1s" in run.failure_reason
    assert "devices: no devices match request" in run.failure_reason
    assert "waiting for Nomad to place the step" in step_log(run, "train")
    assert_nothing_left(nomad, run)


def test_an_unreachable_nomad_fails_the_step_with_the_address(tmp_path, settings, live_server):
    settings.BEDROCK_EXECUTOR = "nomad"
    settings.NOMAD_ADDR = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.BEDROCK_API_DOMAIN = live_server.url
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)

    assert run.status == RunStatus.FAILED
    assert "unreachable" in run.failure_reason and "127.0.0.1:9" in run.failure_reason


def test_the_reconciler_purges_the_jobs_of_a_run_whose_supervisor_died(tmp_path, nomad):
    nomad.default_scenario = Scenario("hang")
    pipeline = training(tmp_path)
    run = run_create(actor=SYSTEM, pipeline=pipeline)
    wait_for(
        lambda: nomad.requests_to("POST", rf"^/v1/job/bedrock-{run.pk}-"),
        timeout=60,
        what="the job to be registered",
    )
    job_id = f"bedrock-{run.pk}-train-1"
    NomadExecutor().cleanup_run(run.pk)  # what the reconciler calls for an orphaned run
    assert nomad.requests_to("DELETE", rf"^/v1/job/{job_id}$")
    run = wait_until_done(run, timeout=60)
    assert run.status == RunStatus.FAILED
    assert_nothing_left(nomad, run)


def readme_policy() -> str:
    """The controller's ACL policy exactly as the README's Nomad section gives it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("#### ACL policy for the controller", 1)[1]
    return section.split("```hcl\n", 1)[1].split("```", 1)[0]


def leftover(fake: FakeNomad, run, job_id: str) -> str:
    """A variable a crashed attempt of the run left behind, marked with its run key."""
    path = f"nomad/jobs/{job_id}"
    fake.put_variable(path, {"bedrock.run_key": run_key_for(run), "DB_PASSWORD": SECRET})
    return path


def test_the_readme_policy_runs_a_training_and_lets_cleanup_find_what_a_run_left(tmp_path, nomad):
    nomad.acl_policy = readme_policy()

    def scenario(job):
        upload_as_the_hook(nomad, job, {"model.txt": "weights"})
        return Scenario("success")

    nomad.scenario_for = scenario
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)
    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert_nothing_left(nomad, run)

    path = leftover(nomad, run, f"bedrock-{run.pk}-train-7")
    NomadExecutor().cleanup_run(run.pk)
    assert nomad.variable(path) is None


def test_without_list_on_variables_cleanup_finds_nothing_to_remove(tmp_path, nomad):
    nomad.acl_policy = readme_policy().replace('"read", "list", ', "")
    run = Run.objects.get(pk=run_create(actor=SYSTEM, pipeline=training(tmp_path)).pk)
    wait_until_done(run, timeout=60)  # the run fails: it may not read the job's variable back
    path = leftover(nomad, run, f"bedrock-{run.pk}-train-7")
    NomadExecutor().cleanup_run(run.pk)
    assert nomad.variable(path) is not None  # the listing came back empty


def test_the_readme_policy_keeps_the_controller_out_of_other_jobs_variables(nomad):
    """A rule on nomad/jobs/* would hand the controller the deploy job's own secrets."""
    nomad.put_variable("nomad/jobs/bedrock", {"DATABASE_URL": "postgres://u:p@db/bedrock"})
    api = nomad_client()
    nomad.acl_policy = readme_policy().replace("nomad/jobs/bedrock-*", "nomad/jobs/*")
    assert api.variable.get_variable("nomad/jobs/bedrock", namespace="default")["Items"]
    nomad.acl_policy = readme_policy()
    with pytest.raises(nomad_errors.URLNotAuthorizedNomadException):
        api.variable.get_variable("nomad/jobs/bedrock", namespace="default")


def test_the_secrets_reach_a_step_whose_image_does_not_run_as_root(tmp_path, nomad):
    """The client writes secret files as root: 0400 would leave them unreadable to USER 1000."""
    nomad.image_users = {"python:3.11-slim": "1000:1000"}

    def scenario(job):
        upload_as_the_hook(nomad, job, {"model.txt": "weights"})
        return nomad.run_main(job, 'echo "password $DB_PASSWORD, token ${#BEDROCK_API_TOKEN}"')

    nomad.scenario_for = scenario
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path)), timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    log = step_log(run, "train")
    assert "password ********, token " in log and "token 0" not in log


def test_a_step_in_an_image_without_bash_fails_before_anything_reaches_nomad(tmp_path, nomad):
    steps = step("train", "python train.py").replace("python:3.11-slim", "alpine:3.20")
    run = wait_until_done(run_create(actor=SYSTEM, pipeline=training(tmp_path, steps)), timeout=60)

    assert run.status == RunStatus.FAILED
    assert "the image alpine:3.20 is Alpine-based, without bash" in run.failure_reason
    assert nomad.requests_to("POST", r"^/v1/job") == []
    assert nomad.requests_to("PUT", r"^/v1/var/") == []
