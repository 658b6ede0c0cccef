"""A run whose requirements leave a dependency unpinned gets the release of its commit's day."""

from __future__ import annotations

import pytest

from bedrock.actors import SYSTEM
from bedrock.pipelines.models import DatedInstalls
from bedrock.runs.models import RunStatus
from bedrock.runs.services import run_create
from tests.pyindex import Release, serving
from tests.repos import hcl, step
from tests.runflow import pipeline_for, step_log, wait_until_done
from tests.test_dated_installs import COMMITTED, dated_repo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

INDEXES = {
    "simple": [
        Release("top", "1.0", "2020-01-01T00:00:00Z", requires=("dep",)),
        Release("dep", "1.0", "2021-06-01T00:00:00Z"),
        Release("dep", "2.0", "2025-06-01T00:00:00Z"),  # after the commit
    ],
}
SHOW = """import os
from importlib.metadata import version
print("dep", version("dep"), "bdrk", version("bdrk"))
# A training run leaves a model.
with open(os.path.join(os.environ["BEDROCK_ARTEFACT_DIR"], "model.txt"), "w") as model:
    model.write(version("dep"))
"""
SCRIPT = ("pip install -r requirements.txt", "python show.py")


@pytest.mark.parametrize(
    ("setting", "sandbox", "dep", "noticed"),
    [
        (DatedInstalls.ON, True, "1.0", True),
        # Without bubblewrap the shim runs uv from where Bedrock has it, not from /bedrock/bin.
        (DatedInstalls.ON, False, "1.0", True),
        (DatedInstalls.OFF, True, "2.0", False),
    ],
)
def test_an_unpinned_dependency_resolves_as_of_the_commit_date_when_the_pipeline_asks(
    tmp_path, settings, step_api, setting, sandbox, dep, noticed
):
    settings.BEDROCK_LOCAL_SANDBOX = sandbox
    # Bedrock's own index (step_api) serves its client bdrk, with no upload times.
    files = {
        "bedrock.hcl": hcl("train", step("train", *SCRIPT)),
        "requirements.txt": "top==1.0\nbdrk==0.3.2\n",
        "show.py": SHOW,
    }
    pipeline = pipeline_for(dated_repo(tmp_path / "repo", files))
    pipeline.dated_installs = setting
    pipeline.save()

    with serving(INDEXES) as base:
        index = {"PIP_INDEX_URL": f"{base}/simple/"}
        run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline, parameters=index))

    log = step_log(run, "train")
    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, log)
    assert f"dep {dep} bdrk 0.3.2" in log
    assert run.installs_as_of == (COMMITTED if noticed else None)
    first = "\n".join(log.splitlines()[:2])  # after the line on the step's Python
    assert ("bedrock: pip install resolves as of 2022-03-04T05:06:07Z" in first) is noticed


def test_a_sub_folder_pipeline_on_an_old_python_with_dated_installs_and_the_pinned_client(
    tmp_path, settings, step_api
):
    """What old repositories combine: a config in a sub-folder with relative paths, a
    `python:3.9` image whose pins need 3.9, dated installs and `bdrk==0.3.2`."""
    from bedrock.runs.executors.interpreters import python_for_image

    if python_for_image("python:3.9").interpreter.minor != "3.9":
        pytest.skip("no Python 3.9 on this machine (pyenv, uv or python3.9 on PATH)")
    settings.BEDROCK_LOCAL_SANDBOX = True
    show = SHOW.replace('print("dep"', 'import sys; print(sys.version_info[:2], "dep"')
    steps = step("train", *SCRIPT).replace("python:3.11-slim", "python:3.9")
    files = {
        "sub/bedrock.hcl": hcl("train", steps),
        "sub/requirements.txt": "top==1.0\nbdrk==0.3.2\n",
        "sub/show.py": show,
    }
    pipeline = pipeline_for(dated_repo(tmp_path / "repo", files))
    pipeline.config_path = "sub/bedrock.hcl"
    pipeline.dated_installs = DatedInstalls.ON
    pipeline.save()

    with serving(INDEXES) as base:
        index = {"PIP_INDEX_URL": f"{base}/simple/"}
        run = wait_until_done(run_create(actor=SYSTEM, pipeline=pipeline, parameters=index))

    log = step_log(run, "train")
    assert run.status == RunStatus.SUCCEEDED, (run.failure_reason, log)
    assert "(3, 9) dep 1.0 bdrk 0.3.2" in log
    assert "bedrock: python:3.9: using Python 3.9" in log
