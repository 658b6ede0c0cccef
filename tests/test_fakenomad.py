"""The fake Nomad agent and the field-map walker, driven through the real python-nomad client."""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nomad
import pytest
import requests
from nomad.api import exceptions as nx

from tests import nomad_fields
from tests.fakenomad import FakeNomad, Scenario, go_duration

JOB_ID = "run-8f14e45f"
S = 1_000_000_000
SECRETS = {"storage_token": "st-123", "wandb_api_key": "wb-456"}


@pytest.fixture(autouse=True)
def _no_nomad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # python-nomad silently reads NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, ...
    for key in list(os.environ):
        if key.startswith("NOMAD_"):
            monkeypatch.delenv(key)


@pytest.fixture
def example(shared_dir: Path) -> dict[str, Any]:
    return json.loads((shared_dir / "nomad" / "example-job.json").read_text())


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as server:
        yield server


@pytest.fixture
def client(fake: FakeNomad) -> nomad.Nomad:
    return nomad.Nomad(address=fake.address, token="tok-1", namespace="ml", region="global")


def task(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in body["Job"]["TaskGroups"][0]["Tasks"] if t["Name"] == name)


def group(body: dict[str, Any]) -> dict[str, Any]:
    return body["Job"]["TaskGroups"][0]


def put_secrets(client: nomad.Nomad, job_id: str = JOB_ID, items: dict | None = None) -> None:
    path = f"nomad/jobs/{job_id}"
    payload = {"Namespace": "ml", "Path": path, "Items": items or SECRETS}
    client.variable.create_variable(path, payload, namespace="ml", cas=0)


def register(client: nomad.Nomad, body: dict[str, Any], job_id: str = JOB_ID) -> dict[str, Any]:
    put_secrets(client, job_id)
    return client.job.register_job(job_id, body)


def play(client: nomad.Nomad, job_id: str = JOB_ID, listings: int = 16) -> list[list[dict]]:
    """Allocation listings, each one phase on; 16 take any scenario here to its end."""
    return [client.job.get_allocations(job_id) for _ in range(listings)]


def distinct(history: list[list[dict]]) -> list[list[dict]]:
    return [h for i, h in enumerate(history) if i == 0 or h != history[i - 1]]


def events(alloc: dict[str, Any], name: str) -> list[str]:
    return [e["Type"] for e in alloc["TaskStates"][name]["Events"]]


def last(alloc: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    return [e for e in alloc["TaskStates"][name]["Events"] if e["Type"] == kind][-1]


def states(alloc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {n: (s["State"], s["Failed"]) for n, s in alloc["TaskStates"].items()}


# ---------------------------------------------------------------- the walker


def test_the_example_job_walks_clean_at_2_0_5(example: dict[str, Any]) -> None:
    assert nomad_fields.walk(example) == []


def test_at_1_10_5_the_only_finding_in_the_example_is_max_run_duration(
    example: dict[str, Any],
) -> None:
    assert nomad_fields.walk(example, version="v1.10.5") == [
        "Job.TaskGroups[0].MaxRunDuration: unknown key (Nomad drops it)"
    ]


def test_a_duration_given_as_a_string_is_a_type_error(example: dict[str, Any]) -> None:
    task(example, "main")["KillTimeout"] = "30s"
    [finding] = nomad_fields.decode(example)[1]
    assert finding.kind == nomad_fields.TYPE
    assert finding.path == "Job.TaskGroups[0].Tasks[1].KillTimeout"
    assert "durations must be integers" in finding.message
    assert "cannot unmarshal string" in finding.go_error
    assert "of type time.Duration" in finding.go_error


def test_a_snake_case_key_is_reported_as_dropped(example: dict[str, Any]) -> None:
    task(example, "main")["kill_timeout"] = 30 * S
    assert nomad_fields.walk(example) == [
        "Job.TaskGroups[0].Tasks[1].kill_timeout: unknown key (Nomad drops it)"
    ]


def test_a_key_matched_only_case_insensitively_is_reported(example: dict[str, Any]) -> None:
    main = task(example, "main")
    main["killtimeout"] = main.pop("KillTimeout")
    decoded, findings = nomad_fields.decode(example)
    assert [(f.kind, f.path) for f in findings] == [
        (nomad_fields.CASE, "Job.TaskGroups[0].Tasks[1].killtimeout")
    ]
    assert "'KillTimeout'" in findings[0].message
    # Go still decodes it into the field, as Nomad would.
    assert decoded["Job"]["TaskGroups"][0]["Tasks"][1]["KillTimeout"] == 30 * S


def test_an_unknown_docker_config_key_is_reported_for_docker_tasks_only(
    example: dict[str, Any],
) -> None:
    task(example, "main")["Config"]["workdir"] = "/work"
    task(example, "fetch-model")["Driver"] = "raw_exec"
    task(example, "fetch-model")["Config"]["workdir"] = "/work"
    findings = nomad_fields.decode(example)[1]
    assert [(f.kind, f.path) for f in findings] == [
        (nomad_fields.DOCKER, "Job.TaskGroups[0].Tasks[1].Config.workdir")
    ]


def test_task_level_disk_mb_is_a_known_key_of_the_right_type(example: dict[str, Any]) -> None:
    task(example, "main")["Resources"]["DiskMB"] = 1024
    assert nomad_fields.walk(example) == []


@pytest.mark.parametrize(
    ("mutate", "where", "why"),
    [
        (
            lambda b: task(b, "main")["Env"].update(EPOCHS=20),
            "Tasks[1].Env.EPOCHS",
            "expected a string",
        ),
        (
            lambda b: b["Job"]["Meta"].update(retries=True),
            "Job.Meta.retries",
            "expected a string",
        ),
        (lambda b: group(b).update(Count="1"), "TaskGroups[0].Count", "expected an integer"),
        (lambda b: group(b).update(Count=1.5), "TaskGroups[0].Count", "expected an integer"),
        (
            lambda b: task(b, "fetch-model")["Lifecycle"].update(Sidecar="false"),
            "Lifecycle.Sidecar",
            "expected true or false",
        ),
        (
            lambda b: task(b, "main")["Resources"]["Devices"][0].update(Count=-1),
            "Devices[0].Count",
            "out of range for uint64",
        ),
        (lambda b: b["Job"].update(Datacenters="dc1"), "Job.Datacenters", "JSON array"),
        (lambda b: task(b, "main").update(Templates={}), "Tasks[1].Templates", "JSON array"),
    ],
)
def test_wrong_json_types_are_reported(
    example: dict[str, Any], mutate: Callable[[dict], Any], where: str, why: str
) -> None:
    mutate(example)
    [finding] = nomad_fields.decode(example)[1]
    assert finding.kind == nomad_fields.TYPE
    assert finding.path.endswith(where)
    assert why in finding.message


def test_what_the_fake_answers_uses_nomads_field_names(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="failure")
    register(client, example)
    history = play(client)
    for listing in history:
        for alloc in listing:
            assert nomad_fields.walk(alloc, root="AllocationListStub") == []
    for evaluation in client.job.get_evaluations(JOB_ID):
        assert nomad_fields.walk(evaluation, root="Evaluation") == []
    for stub in client.jobs.get_jobs(meta=True):
        assert nomad_fields.walk(stub, root="JobListStub") == []
    assert nomad_fields.walk(client.job.get_job(JOB_ID), root="Job") == []


# ---------------------------------------------------------------- registration


def test_the_example_job_is_accepted_with_nothing_dropped(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    reply = register(client, {**example, "EnforceIndex": True, "JobModifyIndex": 0})
    assert set(reply) >= {"EvalID", "EvalCreateIndex", "JobModifyIndex", "Warnings", "Index"}
    assert reply["EvalID"]
    assert fake.dropped == []
    job = client.job.get_job(JOB_ID)
    assert job["Status"] == "pending"
    assert job["Stop"] is False
    assert job["Version"] == 0
    assert job["JobModifyIndex"] == reply["JobModifyIndex"]
    assert job["Meta"]["run_id"] == "8f14e45f-ea37-4c2a-9e1b-3b9d1c0a7e55"
    [sent] = fake.requests_to("POST", r"^/v1/job/")
    assert sent.path == f"/v1/job/{JOB_ID}"
    assert sent.query == {"namespace": "ml", "region": "global"}
    assert sent.headers["X-Nomad-Token"] == "tok-1"
    assert sent.json["Job"]["ID"] == JOB_ID


def _reply(client: nomad.Nomad, body: dict[str, Any], job_id: str = JOB_ID) -> Any:
    try:
        client.job.register_job(job_id, body)
    except nx.BaseNomadException as exc:
        return exc
    raise AssertionError("registration was accepted")


BAD_BODIES: list[tuple[str, Callable[[dict], Any], type, int, str]] = [
    # name, mutation, python-nomad exception, status, text in the body
    ("no Job", lambda b: b.pop("Job"), nx.BadRequestNomadException, 400, "Job must be specified"),
    (
        "ID differs from URL",
        lambda b: b["Job"].update(ID="run-other"),
        nx.BadRequestNomadException,
        400,
        "Job ID does not match name",
    ),
    (
        "duration string",
        lambda b: task(b, "main").update(KillTimeout="30s"),
        nx.BadRequestNomadException,
        400,
        "cannot unmarshal string into Go struct field "
        "JobRegisterRequest.Job.TaskGroups.Tasks.KillTimeout of type time.Duration",
    ),
    (
        "Env value not a string",
        lambda b: task(b, "main")["Env"].update(EPOCHS=20),
        nx.BadRequestNomadException,
        400,
        "cannot unmarshal number 20",
    ),
    (
        "Meta value not a string",
        lambda b: b["Job"]["Meta"].update(gpu=True),
        nx.BadRequestNomadException,
        400,
        "cannot unmarshal bool",
    ),
    (
        "job type",
        lambda b: b["Job"].update(Type="batches"),
        nx.BaseNomadException,
        500,
        "Invalid job type: 'batches'",
    ),
    (
        "no task groups",
        lambda b: b["Job"].update(TaskGroups=[]),
        nx.BaseNomadException,
        500,
        "Missing job task groups",
    ),
    (
        "no main task",
        lambda b: task(b, "main").update(Lifecycle={"Hook": "prestart"}),
        nx.BaseNomadException,
        500,
        "Missing main task",
    ),
    (
        "lifecycle hook",
        lambda b: task(b, "upload-artefacts")["Lifecycle"].update(Hook="afterwards"),
        nx.BaseNomadException,
        500,
        "invalid hook: afterwards",
    ),
    (
        "zero attempts need mode fail",
        lambda b: group(b)["RestartPolicy"].update(Mode="delay"),
        nx.BaseNomadException,
        500,
        "Restart policy 'delay' with 0 attempts is ambiguous",
    ),
    (
        "restart interval under 5s",
        lambda b: group(b)["RestartPolicy"].update(Interval=2 * S),
        nx.BaseNomadException,
        500,
        "Interval can not be less than 5s (got 2s)",
    ),
    (
        "attempts times delay over interval",
        lambda b: group(b)["RestartPolicy"].update(Attempts=3, Interval=30 * S, Delay=15 * S),
        nx.BaseNomadException,
        500,
        "Nomad can't restart the TaskGroup 3 times in an interval of 30s with a delay of 15s",
    ),
    (
        "reschedule delay under 5s",
        lambda b: group(b)["ReschedulePolicy"].update(Attempts=1, Delay=1 * S),
        nx.BaseNomadException,
        500,
        "Delay cannot be less than 5s (got 1s)",
    ),
    (
        "reschedule delay function",
        lambda b: group(b)["ReschedulePolicy"].update(Attempts=1, DelayFunction="linear"),
        nx.BaseNomadException,
        500,
        "Invalid delay function 'linear'",
    ),
    (
        "cpu and cores",
        lambda b: task(b, "main")["Resources"].update(Cores=4),
        nx.BaseNomadException,
        500,
        "Task can only ask for 'cpu' or 'cores' resource",
    ),
    (
        "memory under 10",
        lambda b: task(b, "main")["Resources"].update(MemoryMB=8),
        nx.BaseNomadException,
        500,
        "Minimum MemoryMB value is 10; got 8",
    ),
    (
        "disk at task level",
        lambda b: task(b, "main")["Resources"].update(DiskMB=1024),
        nx.BaseNomadException,
        500,
        "Task can't ask for disk resources",
    ),
    (
        "memory max under memory",
        lambda b: task(b, "main")["Resources"].update(MemoryMaxMB=1024),
        nx.BaseNomadException,
        500,
        "MemoryMaxMB value (1024) should be larger than MemoryMB value (32768)",
    ),
    (
        "negative kill timeout",
        lambda b: task(b, "main").update(KillTimeout=-1),
        nx.BaseNomadException,
        500,
        "KillTimeout must be a positive value",
    ),
    (
        "max run duration on a service job",
        lambda b: b["Job"].update(Type="service"),
        nx.BaseNomadException,
        500,
        "max_run_duration is only valid for batch and sysbatch jobs",
    ),
    (
        "max run duration zero",
        lambda b: group(b).update(MaxRunDuration=0),
        nx.BaseNomadException,
        500,
        "max_run_duration must be greater than zero",
    ),
    (
        "device without a name",
        lambda b: task(b, "main")["Resources"]["Devices"][0].pop("Name"),
        nx.BaseNomadException,
        500,
        "device name must be given",
    ),
    (
        "device count zero",
        lambda b: task(b, "main")["Resources"]["Devices"][0].update(Count=0),
        nx.BaseNomadException,
        500,
        "device count must be at least 1",
    ),
    (
        "template without content",
        lambda b: task(b, "main")["Templates"][0].pop("EmbeddedTmpl"),
        nx.BaseNomadException,
        500,
        "Must specify a source path or have an embedded template",
    ),
    (
        "template without destination",
        lambda b: task(b, "main")["Templates"][0].pop("DestPath"),
        nx.BaseNomadException,
        500,
        "Must specify a destination for the template",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "exception", "status", "text"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_a_bad_job_is_rejected_with_nomads_status_and_text(
    client: nomad.Nomad,
    example: dict[str, Any],
    mutate: Callable[[dict], Any],
    exception: type,
    status: int,
    text: str,
) -> None:
    mutate(example)
    error = _reply(client, example)
    assert type(error) is exception
    assert error.nomad_resp.status_code == status
    assert error.nomad_resp.headers["Content-Type"].startswith("text/plain")
    assert text in error.nomad_resp.text
    with pytest.raises(nx.URLNotFoundNomadException):
        client.job.get_job(JOB_ID)


def test_a_job_id_with_a_space_is_a_validation_error(
    client: nomad.Nomad, example: dict[str, Any]
) -> None:
    example["Job"]["ID"] = "run 1"
    error = _reply(client, example, job_id="run 1")
    assert error.nomad_resp.status_code == 500
    assert "Job ID contains a space" in error.nomad_resp.text


def test_validation_errors_read_like_nomads_nested_multierror(
    client: nomad.Nomad, example: dict[str, Any]
) -> None:
    task(example, "main")["Resources"].update(DiskMB=1, MemoryMB=8)
    text = _reply(client, example).nomad_resp.text
    assert text.startswith("1 error occurred:\n\t* Task group run validation failed: ")
    assert "Task main validation failed: 2 errors occurred:" in text


def test_malformed_json_is_a_400(fake: FakeNomad) -> None:
    reply = requests.post(f"{fake.address}/v1/job/{JOB_ID}", data=b"{not json", timeout=5)
    assert reply.status_code == 400
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_unknown_keys_are_accepted_dropped_and_recorded(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    task(example, "main")["kill_timeout"] = 60 * S
    task(example, "main")["Config"]["workdir"] = "/work"
    register(client, example)
    assert fake.dropped == [
        "Job.TaskGroups[0].Tasks[1].kill_timeout: unknown key (Nomad drops it)",
        "Job.TaskGroups[0].Tasks[1].Config.workdir: unknown docker config key "
        "(the task fails validation when it starts)",
    ]
    stored = client.job.get_job(JOB_ID)["TaskGroups"][0]["Tasks"][1]
    assert "kill_timeout" not in stored
    assert stored["KillTimeout"] == 30 * S


def test_an_older_agent_drops_max_run_duration(example: dict[str, Any]) -> None:
    with FakeNomad(version="1.10.5") as old:
        client = nomad.Nomad(address=old.address, namespace="ml")
        assert client.agent.get_agent()["config"]["Version"]["Version"] == "1.10.5"
        register(client, example)
        assert old.dropped == ["Job.TaskGroups[0].MaxRunDuration: unknown key (Nomad drops it)"]
        assert "MaxRunDuration" not in client.job.get_job(JOB_ID)["TaskGroups"][0]


def test_the_namespace_query_wins_over_the_job_namespace(
    fake: FakeNomad, example: dict[str, Any]
) -> None:
    example["Job"]["Namespace"] = "elsewhere"
    nomad.Nomad(address=fake.address, namespace="ml").job.register_job(JOB_ID, example)
    assert fake.job(JOB_ID, namespace="ml")["Namespace"] == "ml"
    other = copy.deepcopy(example)
    other["Job"]["ID"] = other["Job"]["Name"] = "run-2"
    nomad.Nomad(address=fake.address).job.register_job("run-2", other)
    assert fake.job("run-2", namespace="elsewhere")["Namespace"] == "elsewhere"
    with pytest.raises(KeyError):
        fake.job("run-2", namespace="default")


def test_enforce_index_zero_refuses_an_existing_job(
    client: nomad.Nomad, example: dict[str, Any]
) -> None:
    body = {**example, "EnforceIndex": True, "JobModifyIndex": 0}
    first = register(client, body)
    with pytest.raises(nx.BaseNomadException) as caught:
        client.job.register_job(JOB_ID, body)
    assert type(caught.value) is nx.BaseNomadException
    assert caught.value.nomad_resp.status_code == 500
    assert caught.value.nomad_resp.text == "Enforcing job modify index 0: job already exists"
    assert client.job.get_job(JOB_ID)["JobModifyIndex"] == first["JobModifyIndex"]


def test_enforce_index_with_a_stale_index_is_refused(
    client: nomad.Nomad, example: dict[str, Any]
) -> None:
    first = register(client, example)
    stale = {**example, "EnforceIndex": True, "JobModifyIndex": first["JobModifyIndex"] - 1}
    text = _reply(client, stale).nomad_resp.text
    assert "job exists with conflicting job modify index" in text


def test_an_unchanged_job_registered_again_does_not_run_again(
    client: nomad.Nomad, example: dict[str, Any]
) -> None:
    register(client, example)
    play(client)
    client.job.register_job(JOB_ID, example)
    assert len(play(client)[-1]) == 1


def test_a_stopped_job_registered_again_runs_again(
    client: nomad.Nomad, example: dict[str, Any]
) -> None:
    register(client, example)
    play(client)
    client.job.deregister_job(JOB_ID)
    client.job.register_job(JOB_ID, example)
    job = client.job.get_job(JOB_ID)
    assert (job["Stop"], job["Version"]) == (False, 2)
    allocs = play(client)[-1]
    assert [a["ClientStatus"] for a in allocs] == ["complete", "complete"]
    assert [a["JobVersion"] for a in allocs] == [0, 2]


# ---------------------------------------------------------------- variables


def test_variables_are_create_only_with_cas_zero(fake: FakeNomad, client: nomad.Nomad) -> None:
    put_secrets(client)
    with pytest.raises(nx.VariableConflict) as caught:
        put_secrets(client, items={"storage_token": "other"})
    assert caught.value.nomad_resp.status_code == 409
    # As Nomad does for a caller that may read it: the conflict carries the values in the way.
    assert caught.value.nomad_resp.json()["Items"] == SECRETS
    assert fake.variable(f"nomad/jobs/{JOB_ID}", namespace="ml") == SECRETS
    got = client.variable.get_variable(f"nomad/jobs/{JOB_ID}", namespace="ml")
    assert got["Items"] == SECRETS
    assert got["Namespace"] == "ml"
    [sent] = fake.requests_to("PUT", "^/v1/var/")[:1]
    assert sent.path == f"/v1/var/nomad/jobs/{JOB_ID}"
    assert sent.query["cas"] == "0"


def test_variables_live_per_namespace_and_can_be_deleted(client: nomad.Nomad) -> None:
    put_secrets(client)
    with pytest.raises(nx.URLNotFoundNomadException) as caught:
        client.variable.get_variable(f"nomad/jobs/{JOB_ID}", namespace="default")
    assert caught.value.nomad_resp.text == "variable not found"
    client.variable.delete_variable(f"nomad/jobs/{JOB_ID}", namespace="ml")
    with pytest.raises(nx.URLNotFoundNomadException):
        client.variable.get_variable(f"nomad/jobs/{JOB_ID}", namespace="ml")


def test_variables_are_listed_by_prefix_without_their_items(client: nomad.Nomad) -> None:
    put_secrets(client)
    listed = client.variables.get_variables(prefix="nomad/jobs/", namespace="ml")
    assert [(v["Path"], "Items" in v) for v in listed] == [(f"nomad/jobs/{JOB_ID}", False)]
    assert client.variables.get_variables(prefix="nomad/jobs/other", namespace="ml") == []
    assert client.variables.get_variables(prefix="nomad/jobs/", namespace="default") == []


@pytest.mark.parametrize(
    "path", ["nomad/jobs/bedrock-1-train.v2-1", "nomad/jobs/a b", "nomad/jobs/" + "x" * 118]
)
def test_a_variable_path_outside_nomads_pattern_is_refused(
    fake: FakeNomad, client: nomad.Nomad, path: str
) -> None:
    with pytest.raises(nx.BadRequestNomadException) as caught:
        client.variable.create_variable(path, {"Items": {"a": "b"}}, namespace="ml", cas=0)
    assert caught.value.nomad_resp.text == f'invalid path "{path}"'
    assert fake.variable(path, namespace="ml") is None
    client.variable.create_variable(
        path[:128].replace(".", "-").replace(" ", "_"), {"Items": {"a": "b"}}, namespace="ml", cas=0
    )


def test_variable_items_must_be_strings(client: nomad.Nomad) -> None:
    with pytest.raises(nx.BadRequestNomadException) as caught:
        put_secrets(client, items={"epochs": 20})
    assert "Items" in caught.value.nomad_resp.text


# ---------------------------------------------------------------- scenarios


def test_success_plays_every_phase_in_order(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    register(client, example)
    assert client.job.get_job(JOB_ID)["Status"] == "pending"
    assert [e["Status"] for e in client.job.get_evaluations(JOB_ID)] == ["pending"]
    history = play(client)
    seen = [(a[0]["ClientStatus"], tuple(s for s, _ in states(a[0]).values())) for a in history]
    assert seen[:9] == [
        ("pending", ("pending", "pending", "pending")),
        ("running", ("running", "pending", "pending")),
        ("pending", ("dead", "pending", "pending")),
        ("running", ("dead", "running", "pending")),
        ("running", ("dead", "running", "pending")),
        ("pending", ("dead", "dead", "pending")),
        ("running", ("dead", "dead", "running")),
        ("complete", ("dead", "dead", "dead")),
        ("complete", ("dead", "dead", "dead")),
    ]
    alloc = history[-1][0]
    assert events(alloc, "main") == ["Received", "Task Setup", "Driver", "Started", "Terminated"]
    terminated = last(alloc, "main", "Terminated")
    assert terminated["Details"] == {"exit_code": "0", "signal": "0", "oom_killed": "false"}
    assert terminated["ExitCode"] == 0
    assert alloc["TaskStates"]["main"]["StartedAt"] != "0001-01-01T00:00:00Z"
    assert alloc["TaskStates"]["main"]["FinishedAt"].endswith("Z")
    assert alloc["DesiredStatus"] == "run"
    assert alloc["JobID"] == JOB_ID
    assert alloc["TaskGroup"] == "run"
    assert alloc["NodeID"]
    assert client.job.get_job(JOB_ID)["Status"] == "dead"
    [evaluation] = client.job.get_evaluations(JOB_ID)
    assert evaluation["Status"] == "complete"
    assert alloc["EvalID"] == evaluation["ID"]


def test_failure_fails_main_and_still_runs_poststop(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="failure", stderr="Traceback: boom\n")
    register(client, example)
    history = play(client)
    during_upload = [
        a[0] for a in history[1:] if a[0]["TaskStates"]["upload-artefacts"]["State"] == "running"
    ]
    assert during_upload
    assert {a["ClientStatus"] for a in during_upload} == {"failed"}
    alloc = history[-1][0]
    assert alloc["ClientStatus"] == "failed"
    assert states(alloc) == {
        "fetch-model": ("dead", False),
        "main": ("dead", True),
        "upload-artefacts": ("dead", False),
    }
    assert events(alloc, "main")[-2:] == ["Terminated", "Not Restarting"]
    assert last(alloc, "main", "Terminated")["Details"]["exit_code"] == "1"
    assert last(alloc, "main", "Not Restarting")["FailsTask"] is True
    assert "Traceback" in client.client.stream_logs.stream(
        alloc["ID"], "main", "stderr", plain=True
    )


def test_oom_reports_exit_137_and_the_oom_flag(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="oom")
    register(client, example)
    alloc = play(client)[-1][0]
    terminated = last(alloc, "main", "Terminated")
    assert terminated["Details"]["exit_code"] == "137"
    assert terminated["Details"]["oom_killed"] == "true"
    assert "OOM Killed" in terminated["DisplayMessage"]
    assert alloc["ClientStatus"] == "failed"


def test_a_lost_allocation_gets_a_pending_replacement(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="lost")
    register(client, example)
    lost, replacement = play(client)[-1]
    assert lost["ClientStatus"] == "lost"
    assert lost["DesiredStatus"] == "stop"
    assert lost["DesiredDescription"] == "alloc is lost since its node is down"
    assert lost["NextAllocation"] == replacement["ID"]
    assert replacement["ClientStatus"] == "pending"
    assert replacement["CreateIndex"] > lost["CreateIndex"]
    assert set(states(replacement).values()) == {("pending", False)}
    assert client.job.get_job(JOB_ID)["Status"] == "running"


def test_max_run_duration_kills_main_and_skips_poststop(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="max_run_duration")
    register(client, example)
    alloc = play(client)[-1][0]
    assert alloc["ClientStatus"] == "complete"
    assert alloc["ClientDescription"] == "allocation exceeded max_run_duration"
    assert last(alloc, "main", "Killing")["DisplayMessage"] == (
        "allocation exceeded max_run_duration"
    )
    assert states(alloc)["main"] == ("dead", False)
    upload = alloc["TaskStates"]["upload-artefacts"]
    assert upload["State"] == "dead"
    assert "Started" not in events(alloc, "upload-artefacts")
    assert upload["StartedAt"] == "0001-01-01T00:00:00Z"


def test_a_failed_prestart_task_keeps_main_from_starting(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="prestart_failure", exit_code=22)
    register(client, example)
    alloc = play(client)[-1][0]
    assert alloc["ClientStatus"] == "failed"
    assert states(alloc) == {
        "fetch-model": ("dead", True),
        "main": ("dead", False),
        "upload-artefacts": ("dead", False),
    }
    assert last(alloc, "fetch-model", "Terminated")["Details"]["exit_code"] == "22"
    assert "Started" not in events(alloc, "main")
    sibling = last(alloc, "main", "Sibling Task Failed")
    assert sibling["FailedSibling"] == "fetch-model"
    assert "Terminated" in events(alloc, "upload-artefacts")


def test_a_failed_poststop_task_fails_the_allocation_after_main_succeeded(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="poststop_failure")
    register(client, example)
    alloc = play(client)[-1][0]
    assert last(alloc, "main", "Terminated")["Details"]["exit_code"] == "0"
    assert states(alloc)["upload-artefacts"] == ("dead", True)
    assert alloc["ClientStatus"] == "failed"


def test_stopping_a_hanging_job_kills_main_and_runs_poststop(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="hang", stdout="epoch 1\n")
    register(client, example)
    alloc = play(client)[-1][0]
    assert alloc["ClientStatus"] == "running"
    assert states(alloc)["main"] == ("running", False)
    reply = client.job.deregister_job(JOB_ID, purge=False)
    assert reply["EvalID"]
    job = client.job.get_job(JOB_ID)
    assert (job["Stop"], job["Status"]) == (True, "dead")
    [alloc] = client.job.get_allocations(JOB_ID)
    assert alloc["DesiredStatus"] == "stop"
    assert alloc["DesiredDescription"] == "alloc not needed due to job update"
    assert events(alloc, "main")[-1] == "Killing"
    alloc = play(client)[-1][0]
    assert events(alloc, "main")[-2:] == ["Killing", "Killed"]
    assert "Terminated" not in events(alloc, "main")
    assert states(alloc) == {
        "fetch-model": ("dead", False),
        "main": ("dead", False),
        "upload-artefacts": ("dead", False),
    }
    assert "Terminated" in events(alloc, "upload-artefacts")
    assert alloc["ClientStatus"] == "complete"


def test_an_unplaceable_job_has_a_blocked_evaluation_and_no_allocation(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(kind="unplaceable")
    register(client, example)
    assert play(client)[-1] == []
    assert client.job.get_job(JOB_ID)["Status"] == "pending"
    evaluations = client.job.get_evaluations(JOB_ID)
    assert [e["Status"] for e in evaluations] == ["complete", "blocked"]
    failed = evaluations[1]["FailedTGAllocs"]["run"]
    assert failed["DimensionExhausted"] == {"devices: no devices match request": 3}
    assert failed["NodesEvaluated"] == 3
    assert evaluations[0]["BlockedEval"] == evaluations[1]["ID"]
    client.job.deregister_job(JOB_ID)
    assert client.job.get_job(JOB_ID)["Status"] == "dead"
    assert client.job.get_evaluations(JOB_ID)[1]["Status"] == "canceled"


def test_a_missing_variable_holds_the_task_pending_with_a_template_event(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    client.job.register_job(JOB_ID, example)  # no variable written first
    alloc = play(client)[-1][0]
    assert alloc["ClientStatus"] == "pending"
    assert states(alloc)["fetch-model"] == ("pending", False)
    assert states(alloc)["main"] == ("pending", False)
    template = last(alloc, "fetch-model", "Template")
    assert template["DisplayMessage"] == (
        f"Missing: nomad.var.block(nomad/jobs/{JOB_ID}@ml.global)"
    )
    put_secrets(client)
    assert play(client)[-1][0]["ClientStatus"] == "complete"


def test_a_key_missing_from_the_variable_fails_the_task(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    put_secrets(client, items={"wandb_api_key": "wb-456"})
    client.job.register_job(JOB_ID, example)
    alloc = play(client)[-1][0]
    assert states(alloc)["fetch-model"] == ("dead", True)
    assert (
        'map has no entry for key "storage_token"'
        in (last(alloc, "fetch-model", "Killing")["DisplayMessage"])
    )
    assert alloc["ClientStatus"] == "failed"


def test_an_unknown_docker_config_key_fails_the_task_when_it_starts(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    task(example, "main")["Config"]["workdir"] = "/work"
    register(client, example)
    alloc = play(client)[-1][0]
    assert states(alloc)["main"] == ("dead", True)
    assert events(alloc, "main")[-2:] == ["Failed Validation", "Not Restarting"]
    assert '"workdir"' in last(alloc, "main", "Failed Validation")["ValidationError"]


# ---------------------------------------------------------------- scenario choice


def test_scenario_for_wins_over_prefixes_which_win_over_the_default(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.scenarios = {"run-": Scenario(kind="failure"), "run-oom": Scenario(kind="oom")}
    fake.scenario_for = lambda job: (
        Scenario(kind="poststop_failure") if job["Meta"].get("pick") else None
    )

    def run(job_id: str, **meta: str) -> dict[str, Any]:
        body = copy.deepcopy(example)
        body["Job"].update(ID=job_id, Name=job_id)
        body["Job"]["Meta"].update(meta)
        for t in body["Job"]["TaskGroups"][0]["Tasks"]:
            for template in t["Templates"]:
                template["EmbeddedTmpl"] = template["EmbeddedTmpl"].replace(JOB_ID, job_id)
        register(client, body, job_id)
        return play(client, job_id)[-1][0]

    assert last(run("run-oom-1"), "main", "Terminated")["Details"]["oom_killed"] == "true"
    assert states(run("run-plain"))["main"] == ("dead", True)
    assert states(run("run-picked", pick="yes"))["upload-artefacts"] == ("dead", True)
    assert states(run("other"))["main"] == ("dead", False)


def test_advance_moves_a_job_without_listing_it(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    register(client, example)
    fake.advance(JOB_ID, namespace="ml", phases=4)
    [alloc] = fake.allocations(JOB_ID, namespace="ml")
    assert states(alloc)["main"] == ("running", False)
    assert fake.settle(JOB_ID, namespace="ml") > 0
    assert fake.allocations(JOB_ID, namespace="ml")[0]["ClientStatus"] == "complete"
    assert not fake.requests_to("GET", "/allocations$")


# ---------------------------------------------------------------- stop, purge, logs


def test_purge_forgets_the_job_and_its_logs(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.default_scenario = Scenario(stdout="done\n")
    register(client, example)
    alloc = play(client)[-1][0]
    assert client.client.stream_logs.stream(alloc["ID"], "main", "stdout", plain=True) == "done\n"
    client.job.deregister_job(JOB_ID, purge=True)
    with pytest.raises(nx.URLNotFoundNomadException) as caught:
        client.job.get_job(JOB_ID)
    assert caught.value.nomad_resp.text == "job not found"
    assert client.job.get_allocations(JOB_ID) == []
    with pytest.raises(nx.URLNotFoundNomadException) as caught:
        client.client.stream_logs.stream(alloc["ID"], "main", "stdout", plain=True)
    assert "unknown allocation" in caught.value.nomad_resp.text
    sent = fake.requests_to("DELETE", "^/v1/job/")[-1]
    assert sent.query["purge"] == "True"


def test_deregistering_a_missing_job_succeeds_with_no_evaluation(client: nomad.Nomad) -> None:
    assert client.job.deregister_job("run-never", purge=True)["EvalID"] == ""


def test_logs_grow_while_main_runs_and_read_from_an_offset(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    lines = "".join(f"epoch {i}\n" for i in range(6))
    fake.default_scenario = Scenario(stdout=lines, main_polls=3)
    register(client, example)
    seen = []
    for _ in range(12):
        [*allocs] = client.job.get_allocations(JOB_ID)
        if allocs:
            seen.append(
                client.client.stream_logs.stream(allocs[0]["ID"], "main", "stdout", plain=True)
            )
    growth = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert growth == ["", "epoch 0\nepoch 1\n", "epoch 0\nepoch 1\nepoch 2\nepoch 3\n", lines]
    alloc_id = allocs[0]["ID"]
    stream = client.client.stream_logs.stream
    assert stream(alloc_id, "main", "stdout", plain=True, offset=len("epoch 0\n")) == lines[8:]
    assert stream(alloc_id, "main", "stdout", plain=True, offset=8, origin="end") == "epoch 5\n"
    assert stream(alloc_id, "main", "stderr", plain=True) == ""
    framed = json.loads(stream(alloc_id, "main", "stdout", offset=40))
    assert framed["File"] == "alloc/logs/main.stdout.0"
    sent = fake.requests_to("GET", "^/v1/client/fs/logs/")[-1]
    assert sent.query["task"] == "main"
    assert sent.query["type"] == "stdout"


def test_logs_are_gone_once_the_client_collects_the_allocation(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    register(client, example)
    alloc = play(client)[-1][0]
    fake.collect(alloc["ID"])
    with pytest.raises(nx.URLNotFoundNomadException) as caught:
        client.client.stream_logs.stream(alloc["ID"], "main", "stdout", plain=True)
    assert caught.value.nomad_resp.text == f'unknown allocation "{alloc["ID"]}"'
    assert client.job.get_allocations(JOB_ID)[0]["ID"] == alloc["ID"]


# ---------------------------------------------------------------- blocking queries


def test_a_blocking_query_returns_at_once_when_the_index_moved_and_waits_otherwise(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.max_block = 0.3
    register(client, example)
    play(client)
    reply = client.job.request(JOB_ID, "allocations", method="get")
    index = int(reply.headers["X-Nomad-Index"])
    started = time.monotonic()
    reply = client.job.request(
        JOB_ID, "allocations", method="get", params={"index": index - 1, "wait": "60s"}
    )
    assert time.monotonic() - started < 0.25
    started = time.monotonic()
    reply = client.job.request(
        JOB_ID, "allocations", method="get", params={"index": index, "wait": "60s"}
    )
    assert time.monotonic() - started >= 0.3
    assert int(reply.headers["X-Nomad-Index"]) == index


def test_the_index_moves_exactly_when_the_allocations_change(
    client: nomad.Nomad, example: dict[str, Any]
) -> None:
    register(client, example)
    seen = []
    for _ in range(12):
        reply = client.job.request(JOB_ID, "allocations", method="get")
        seen.append((int(reply.headers["X-Nomad-Index"]), reply.json()))
    for (index, listing), (next_index, next_listing) in itertools.pairwise(seen):
        assert (next_index > index) == (next_listing != listing)
        assert next_index >= index
    assert len({index for index, _ in seen}) > 5


# ---------------------------------------------------------------- failures and access


def test_an_injected_failure_answers_once_and_leaves_no_job(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.fail_next("POST", r"^/v1/job/")
    with pytest.raises(nx.BaseNomadException) as caught:
        register(client, example)
    assert caught.value.nomad_resp.status_code == 500
    assert caught.value.nomad_resp.text == "rpc error: No cluster leader"
    with pytest.raises(nx.URLNotFoundNomadException):
        client.job.get_job(JOB_ID)
    client.job.register_job(JOB_ID, example)
    assert client.job.get_job(JOB_ID)["ID"] == JOB_ID


def test_a_lost_reply_still_registers_the_job(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.fail_next("POST", r"^/v1/job/", status=503, body="timeout", after_effect=True)
    with pytest.raises(nx.BaseNomadException) as caught:
        register(client, {**example, "EnforceIndex": True, "JobModifyIndex": 0})
    assert caught.value.nomad_resp.status_code == 503
    assert client.job.get_job(JOB_ID)["Meta"]["run_id"].startswith("8f14e45f")


def test_a_dropped_connection_after_the_effect_is_a_connection_error(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.fail_next("POST", r"^/v1/job/", after_effect=True, disconnect=True)
    with pytest.raises(nx.BaseNomadException) as caught:
        register(client, example)
    assert isinstance(caught.value.nomad_resp, requests.ConnectionError)
    assert client.job.get_job(JOB_ID)["ID"] == JOB_ID


def test_a_wrong_token_is_refused_when_acls_are_on(fake: FakeNomad) -> None:
    fake.token = "right"
    with pytest.raises(nx.URLNotAuthorizedNomadException) as caught:
        nomad.Nomad(address=fake.address, token="wrong").job.get_job(JOB_ID)
    assert caught.value.nomad_resp.text == "Permission denied"
    with pytest.raises(nx.URLNotFoundNomadException):
        nomad.Nomad(address=fake.address, token="right").job.get_job(JOB_ID)


def policy(capabilities: str, paths: dict[str, str], namespace: str = "ml") -> str:
    rules = "".join(
        f'path "{path}" {{ capabilities = [{caps}] }}\n' for path, caps in paths.items()
    )
    head = f'namespace "{namespace}" {{\ncapabilities = [{capabilities}]\n'
    return f"{head}variables {{\n{rules}}}\n}}\n"


def put_paths(fake: FakeNomad, *paths: str) -> None:
    for path in paths:
        fake.put_variable(path, {"a": "b"}, namespace="ml")


def listed(client: nomad.Nomad, prefix: str = "nomad/jobs/") -> list[str]:
    return [v["Path"] for v in client.variables.get_variables(prefix=prefix, namespace="ml")]


def test_a_variable_listing_is_filtered_to_the_paths_the_policy_may_list(
    fake: FakeNomad, client: nomad.Nomad
) -> None:
    put_paths(fake, "nomad/jobs/bedrock", "nomad/jobs/bedrock-1-a-1", "nomad/jobs/other-1")
    fake.acl_policy = policy("", {"nomad/jobs/bedrock-*": '"write", "destroy"'})
    assert listed(client) == []  # no list: Nomad filters the listing to nothing
    fake.acl_policy = policy("", {"nomad/jobs/bedrock-*": '"list"'})
    assert listed(client) == ["nomad/jobs/bedrock-1-a-1"]
    fake.acl_policy = policy("", {"nomad/jobs/*": '"read"'})  # read brings list with it
    assert listed(client) == [
        "nomad/jobs/bedrock",
        "nomad/jobs/bedrock-1-a-1",
        "nomad/jobs/other-1",
    ]


def test_the_closest_glob_decides_and_deny_wins(fake: FakeNomad, client: nomad.Nomad) -> None:
    put_paths(fake, "nomad/jobs/bedrock-1-a-1", "nomad/jobs/bedrock-2-a-1")
    fake.acl_policy = policy("", {"nomad/jobs/*": '"read"', "nomad/jobs/bedrock-2-*": '"deny"'})
    assert listed(client) == ["nomad/jobs/bedrock-1-a-1"]
    with pytest.raises(nx.URLNotAuthorizedNomadException):
        client.variable.get_variable("nomad/jobs/bedrock-2-a-1", namespace="ml")
    assert client.variable.get_variable("nomad/jobs/bedrock-1-a-1", namespace="ml")["Items"]


def test_variable_writes_reads_and_deletes_need_their_capability(
    fake: FakeNomad, client: nomad.Nomad
) -> None:
    fake.acl_policy = policy("", {"nomad/jobs/bedrock-*": '"write"'})
    put_secrets(client, "bedrock-1-a-1")
    with pytest.raises(nx.URLNotAuthorizedNomadException):
        put_secrets(client, "other-1")
    with pytest.raises(nx.URLNotAuthorizedNomadException):
        client.variable.get_variable("nomad/jobs/bedrock-1-a-1", namespace="ml")
    with pytest.raises(nx.URLNotAuthorizedNomadException):
        client.variable.delete_variable("nomad/jobs/bedrock-1-a-1", namespace="ml")
    assert fake.variable("nomad/jobs/bedrock-1-a-1", namespace="ml") == SECRETS


def test_job_endpoints_need_the_namespaces_capabilities(
    fake: FakeNomad, client: nomad.Nomad, example: dict[str, Any]
) -> None:
    fake.acl_policy = policy('"read-job"', {"nomad/jobs/*": '"write"'})
    with pytest.raises(nx.URLNotAuthorizedNomadException):
        register(client, example)
    with pytest.raises(nx.URLNotAuthorizedNomadException):
        client.jobs.get_jobs(prefix="run-")
    fake.acl_policy = policy('"submit-job", "list-jobs"', {"nomad/jobs/*": '"write"'})
    client.job.register_job(JOB_ID, example)
    assert [j["ID"] for j in client.jobs.get_jobs(prefix="run-")] == [JOB_ID]
    with pytest.raises(nx.URLNotAuthorizedNomadException):
        client.job.get_allocations(JOB_ID)
    fake.acl_policy = policy('"deregister-job"', {})
    with pytest.raises(nx.URLNotAuthorizedNomadException):  # a purge needs submit-job or purge-job
        client.job.deregister_job(JOB_ID, purge=True)
    client.job.deregister_job(JOB_ID)


# ---------------------------------------------------------------- files as the task's user


@pytest.mark.parametrize(
    ("user", "template", "readable"),
    [
        ("0", {"Perms": "0400"}, True),  # root reads anything
        ("1000", {"Perms": "0400"}, False),  # written as the agent's user, root
        ("1000", {}, True),  # consul-template's default 0644
        ("1000", {"Perms": "0400", "Uid": 1000}, True),
        ("1000", {"Perms": "0400", "Uid": -1}, False),  # negative: the agent's user
        ("1001:1000", {"Perms": "0440", "Gid": 1000}, True),
        ("1001:1001", {"Perms": "0440", "Gid": 1000}, False),
        ("1000", {"Perms": "0444"}, True),
    ],
)
def test_template_files_are_owned_as_the_client_writes_them_and_read_as_the_images_user(
    fake: FakeNomad, example: dict[str, Any], user: str, template: dict, readable: bool
) -> None:
    fake.put_variable(f"nomad/jobs/{JOB_ID}", SECRETS, namespace="ml")
    job = copy.deepcopy(example["Job"])
    fetch = task({"Job": job}, "fetch-model")
    fetch["Templates"] = [
        {
            "EmbeddedTmpl": f'{{{{ with nomadVar "nomad/jobs/{JOB_ID}" }}}}'
            '{{ .storage_token }}/{{ index . "wandb_api_key" }}{{ end }}',
            "DestPath": "secrets/token",
            **template,
        }
    ]
    fake.image_users = {fetch["Config"]["image"]: user}
    (file,) = fake.task_files(job, "fetch-model")
    assert (file.path, file.content, file.readable) == ("secrets/token", "st-123/wb-456", readable)


def test_an_endpoint_the_fake_does_not_serve_is_an_obvious_404(client: nomad.Nomad) -> None:
    with pytest.raises(nx.URLNotFoundNomadException) as caught:
        client.job.get_summary(JOB_ID)
    assert "not served by FakeNomad" in caught.value.nomad_resp.text


def test_the_agent_reports_its_version(fake: FakeNomad, client: nomad.Nomad) -> None:
    fake.version = "2.0.3"
    agent = client.agent.get_agent()
    assert agent["config"]["Version"]["Version"] == "2.0.3"
    assert agent["member"]["Tags"]["build"] == "2.0.3"


def test_go_durations_print_like_go() -> None:
    assert [go_duration(n) for n in (0, 5 * S, 86400 * S, S // 2, 90 * S, 1_500)] == [
        "0s",
        "5s",
        "24h0m0s",
        "500ms",
        "1m30s",
        "1.5µs",
    ]
