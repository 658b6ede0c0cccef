"""The package index of Bedrock's client (/pypi/simple/), the executors' pip variables that point
steps at it, and the model archive endpoint behind ``bdrk.download_model``."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import zipfile
from datetime import timedelta
from email.parser import HeaderParser
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from bedrock.accounts.models import hash_token
from bedrock.models.models import ModelVersion
from bedrock.pipelines.spec import Resources
from bedrock.runs.executors.base import StepContext, package_index_variables
from bedrock.runs.models import Run, RunStatus
from bedrock.runs.plan import StepPlan
from bedrock.tracking import wheels
from tests import factories

ROOT = Path(__file__).resolve().parents[1]
PYTHON36 = Path.home() / ".pyenv" / "versions" / "3.6.15" / "bin" / "python"
WHEEL = "bdrk-{}-py3-none-any.whl"
ALL_VERSIONS = [
    "0.3.2",
    *(f"0.7.{n}" for n in range(5)),
    *(f"0.9.{n}" for n in range(6)),
    "0.10.0",
]


def _links(html: str) -> dict[str, str]:
    """File name -> href of every link on a simple page."""
    return {name: href for href, name in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', html)}


def _wheel(client, version: str) -> bytes:
    response = client.get(f"/pypi/files/{WHEEL.format(version)}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/octet-stream"
    assert int(response["Content-Length"]) == len(response.content)
    return response.content


# --- The simple pages and the wheels ---------------------------------------------------------


def test_the_root_page_lists_bdrk_alone(client):
    response = client.get("/pypi/simple/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert _links(response.content.decode()) == {"bdrk": "bdrk/"}
    assert client.head("/pypi/simple/bdrk/").status_code == 200


@pytest.mark.parametrize("name", ["bdrk", "BDRK", "Bdrk"])
def test_the_project_page_lists_every_pinned_version_with_hash_and_python(client, name):
    response = client.get(f"/pypi/simple/{name}/")

    assert response.status_code == 200
    html = response.content.decode()
    links = _links(html)
    assert list(links) == [WHEEL.format(v) for v in ALL_VERSIONS]
    for filename, href in links.items():
        assert re.fullmatch(rf"\.\./\.\./files/{re.escape(filename)}#sha256=[0-9a-f]{{64}}", href)
    assert html.count('data-requires-python="&gt;=3.6"') == len(ALL_VERSIONS)


def test_each_listed_hash_is_the_hash_of_the_file_served(client):
    links = _links(client.get("/pypi/simple/bdrk/").content.decode())

    for filename, href in links.items():
        version = filename.split("-")[1]
        listed = href.rsplit("#sha256=", 1)[1]
        assert hashlib.sha256(_wheel(client, version)).hexdigest() == listed, filename


@pytest.mark.parametrize("project", ["numpy", "bdrk-dev", "requests", "bdrk2"])
def test_any_other_project_is_a_404(client, project):
    assert client.get(f"/pypi/simple/{project}/").status_code == 404


@pytest.mark.parametrize(
    "filename", ["bdrk-0.4.0-py3-none-any.whl", "numpy-1.0-py3-none-any.whl", "bdrk-0.3.2.tar.gz"]
)
def test_a_file_the_index_does_not_list_is_a_404(client, filename):
    assert client.get(f"/pypi/files/{filename}").status_code == 404


def _record_problems(archive: zipfile.ZipFile) -> list[str]:
    (record_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
    rows = list(csv.reader(io.StringIO(archive.read(record_name).decode())))
    problems = []
    listed = {row[0] for row in rows}
    if listed != set(archive.namelist()):
        problems.append(f"RECORD lists {sorted(listed ^ set(archive.namelist()))} wrongly")
    for name, digest, size in rows:
        if name == record_name:
            if (digest, size) != ("", ""):
                problems.append("RECORD hashes itself")
            continue
        data = archive.read(name)
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if digest != f"sha256={expected}" or int(size) != len(data):
            problems.append(f"{name}: {digest},{size}")
    return problems


def test_the_wheel_carries_its_version_metadata_and_a_record_that_verifies(client):
    archive = zipfile.ZipFile(io.BytesIO(_wheel(client, "0.3.2")))

    assert _record_problems(archive) == []
    assert '__version__ = "0.3.2"' in archive.read("bdrk/_version.py").decode()
    names = archive.namelist()
    assert {"bdrk/__init__.py", "bedrock_client/__init__.py"} <= set(names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    metadata = HeaderParser().parsestr(archive.read("bdrk-0.3.2.dist-info/METADATA").decode())
    assert metadata["Metadata-Version"] == "2.1"
    assert (metadata["Name"], metadata["Version"]) == ("bdrk", "0.3.2")
    assert metadata["Requires-Python"] == ">=3.6"
    assert metadata.get_all("Provides-Extra") == ["analyzer", "cli", "model-monitoring"]
    assert metadata.get_all("Requires-Dist") == ['boxkite>=0.0.5; extra == "model-monitoring"']
    wheel = HeaderParser().parsestr(archive.read("bdrk-0.3.2.dist-info/WHEEL").decode())
    assert (wheel["Wheel-Version"], wheel["Tag"], wheel["Root-Is-Purelib"]) == (
        "1.0",
        "py3-none-any",
        "true",
    )


def test_every_py_file_of_the_client_is_in_the_wheel_as_it_is_on_disk(client):
    source = ROOT / "bedrock" / "client"
    on_disk = {
        path.relative_to(source).as_posix(): path.read_bytes()
        for package in ("bdrk", "bedrock_client")
        for path in (source / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    archive = zipfile.ZipFile(io.BytesIO(_wheel(client, "0.10.0")))

    for name, data in on_disk.items():
        assert archive.read(name) == data or name == "bdrk/_version.py", name


def test_a_wheel_is_the_same_bytes_each_time_it_is_built():
    source = ROOT / "bedrock" / "client"

    first = wheels.build_wheel(source, "0.9.1")

    assert wheels.build_wheel(source, "0.9.1") == first
    assert {info.date_time for info in zipfile.ZipFile(io.BytesIO(first)).infolist()} == {
        (1980, 1, 1, 0, 0, 0)
    }


def test_the_client_source_comes_from_its_setting(client, settings, tmp_path):
    source = tmp_path / "client"
    shutil.copytree(
        ROOT / "bedrock" / "client", source, ignore=shutil.ignore_patterns("__pycache__")
    )
    (source / "bdrk" / "extra_module.py").write_text("VALUE = 1\n")
    (source / "bdrk" / "_version.py").write_text('__version__ = "0.11.0"\n')
    settings.BEDROCK_CLIENT_SOURCE = source

    links = _links(client.get("/pypi/simple/bdrk/").content.decode())

    assert list(links)[-1] == WHEEL.format("0.11.0")
    archive = zipfile.ZipFile(io.BytesIO(_wheel(client, "0.3.2")))
    assert archive.read("bdrk/extra_module.py") == b"VALUE = 1\n"


def test_a_missing_client_source_is_logged_and_not_told_to_whoever_asks(
    client, settings, tmp_path, caplog
):
    settings.BEDROCK_CLIENT_SOURCE = tmp_path / "nowhere"

    for url in ("/pypi/simple/bdrk/", "/pypi/files/bdrk-0.3.2-py3-none-any.whl"):
        response = client.get(url)

        assert response.status_code == 503
        assert "bedrock.W050" in response.content.decode()
        assert str(tmp_path) not in response.content.decode()
    assert f"BEDROCK_CLIENT_SOURCE='{tmp_path / 'nowhere'}' holds no pyproject.toml" in caplog.text


def test_a_missing_client_source_fails_the_check_with_a_stable_id(tmp_path):
    from tests.test_checks import bedrock_check

    result = bedrock_check(tmp_path, BEDROCK_CLIENT_SOURCE=str(tmp_path / "nowhere"))

    assert "bedrock.W050" in result.stderr and "BEDROCK_CLIENT_SOURCE" in result.stderr


# --- pip against the index, served by a live server -------------------------------------------


def _pip_environment() -> dict[str, str]:
    # The machine's own pip configuration (local indexes, find-links) stays out: the index under
    # test and PyPI are all this pip sees.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return environment | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _venv(python: Path | str, where: Path) -> Path:
    subprocess.run([str(python), "-m", "venv", str(where)], check=True, capture_output=True)
    return where / "bin" / "python"


_PYTHONS = [
    pytest.param(sys.executable, id="host"),
    pytest.param(
        PYTHON36,
        id="python3.6",
        marks=pytest.mark.skipif(
            not PYTHON36.exists(), reason=f"no Python 3.6 at {PYTHON36} (pyenv's 3.6.15)"
        ),
    ),
]


@pytest.fixture(params=_PYTHONS)
def venv_python(request, tmp_path) -> Path:
    base = getattr(sys, "_base_executable", None) if request.param == sys.executable else None
    return _venv(base or request.param, tmp_path / "venv")


def _installed(python: Path, live_server, requirement: str, target: Path) -> str:
    """Installs ``requirement`` into ``target`` with the index as an extra one; pip's output."""
    pip = [str(python), "-m", "pip", "install", "--target", str(target), "--no-cache-dir"]
    index = ["--extra-index-url", f"{live_server.url}/pypi/simple/"]
    installed = subprocess.run(
        [*pip, *index, requirement],
        capture_output=True,
        text=True,
        env=_pip_environment(),
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return installed.stdout


def _imported_version(python: Path, target: Path) -> str:
    program = "import bdrk, bedrock_client; print(bdrk.__version__)"
    imported = subprocess.run(
        [str(python), "-c", program],
        capture_output=True,
        text=True,
        env=_pip_environment() | {"PYTHONPATH": str(target)},
        cwd=target,
    )
    assert imported.returncode == 0, imported.stderr
    return imported.stdout.strip()


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("requirement", "version"),
    [("bdrk==0.3.2", "0.3.2"), ("bdrk[analyzer]>=0.9.1,<0.10", "0.9.5"), ("bdrk", "0.10.0")],
)
def test_pip_resolves_the_pins_of_real_repositories_to_bedrocks_wheels(
    venv_python, live_server, tmp_path, requirement, version
):
    target = tmp_path / "site"

    _installed(venv_python, live_server, requirement, target)

    assert _imported_version(venv_python, target) == version


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_local_step_installs_the_pin_of_a_real_repository_from_the_index(live_server, tmp_path):
    from bedrock.runs.executors.local import LocalExecutor

    context = _context(tmp_path, {"BEDROCK_API_DOMAIN": live_server.url})
    command = "pip install -q bdrk==0.3.2 && python -c 'import bdrk; print(bdrk.__version__)'"

    handle = LocalExecutor().start(_plan(command), context)
    output = b"".join(handle.output()).decode()

    assert handle.wait(600) == 0, output
    assert output.splitlines()[-1] == "0.3.2"


@pytest.mark.slow
@pytest.mark.django_db
def test_the_model_monitoring_extra_pulls_boxkite_from_pypi(live_server, tmp_path):
    python = _venv(getattr(sys, "_base_executable", sys.executable), tmp_path / "venv")
    target = tmp_path / "site"

    _installed(python, live_server, "bdrk[model-monitoring]==0.3.2", target)

    assert _imported_version(python, target) == "0.3.2"
    assert list(target.glob("boxkite-*.dist-info"))


# --- The executors point pip at the index -----------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "trusted"),
    [
        ("http://127.0.0.1:8000", None),
        ("http://127.8.0.1:8000", None),
        ("http://localhost:8000/", None),
        ("http://[::1]:8000", None),
        ("https://bedrock.example.com", None),
        ("http://host.docker.internal:8000", "host.docker.internal"),
        ("http://10.0.0.7", "10.0.0.7"),
        ("http://[fd00::7]:8000", "[fd00::7]"),
    ],
)
def test_a_plain_http_index_that_pip_does_not_trust_gets_a_trusted_host(domain, trusted):
    variables = package_index_variables(domain, {})

    assert variables["PIP_EXTRA_INDEX_URL"] == domain.rstrip("/") + "/pypi/simple/"
    assert variables.get("PIP_TRUSTED_HOST") == trusted


def test_a_steps_own_index_and_trusted_host_are_kept_with_bedrocks_appended():
    mine = {"PIP_EXTRA_INDEX_URL": "https://pkgs.example.com/simple", "PIP_TRUSTED_HOST": "pkgs"}

    variables = package_index_variables("http://bedrock.internal:8000", mine)

    assert variables == {
        "PIP_EXTRA_INDEX_URL": "https://pkgs.example.com/simple http://bedrock.internal:8000/pypi/simple/",
        "PIP_TRUSTED_HOST": "pkgs bedrock.internal",
    }


def _plan(command: str = "true", environment: dict | None = None, secret_names=()) -> StepPlan:
    limits = Resources(
        cpu=None, memory=None, gpu=None, millicpu=None, memory_bytes=None, gpu_count=0
    )
    return StepPlan(
        "train", "python:3.11-slim", command, environment or {}, secret_names, limits, (), 0
    )


def _context(tmp_path, environment: dict, secrets: dict | None = None) -> StepContext:
    for name in ("app", "artefact", "step"):
        (tmp_path / name).mkdir(exist_ok=True)
    return StepContext(
        990_700, tmp_path / "app", tmp_path / "artefact", tmp_path / "step", environment,
        secrets or {}, 1,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_local_step_sees_the_index_after_its_own(tmp_path):
    from bedrock.runs.executors.local import LocalExecutor

    environment = {
        "BEDROCK_API_DOMAIN": "http://127.0.0.1:8123",
        "PIP_EXTRA_INDEX_URL": "https://pkgs.example.com/simple",
    }
    context = _context(tmp_path, environment, {"PIP_TRUSTED_HOST": "pkgs.example.com"})
    command = 'echo "index=$PIP_EXTRA_INDEX_URL"; echo "trusted=$PIP_TRUSTED_HOST"'

    handle = LocalExecutor().start(_plan(command), context)
    output = b"".join(handle.output()).decode()

    assert handle.wait(60) == 0, output
    assert "index=https://pkgs.example.com/simple http://127.0.0.1:8123/pypi/simple/\n" in output
    assert "trusted=pkgs.example.com\n" in output  # loopback needs no trust


def test_a_container_gets_the_index_at_the_address_it_reaches():
    from bedrock.runs.executors.docker import _variables

    environment = {"BEDROCK_API_DOMAIN": "http://127.0.0.1:8000"}
    context = StepContext(7, Path(), Path(), Path(), environment, {}, 1)

    shown, exported = _variables(context)

    assert shown["PIP_EXTRA_INDEX_URL"] == "http://host.docker.internal:8000/pypi/simple/"
    assert shown["PIP_TRUSTED_HOST"] == "host.docker.internal"
    assert "PIP_EXTRA_INDEX_URL" not in exported  # no secret of the name to follow


def test_a_containers_secret_index_keeps_its_value_out_of_the_environment():
    environment = {"BEDROCK_API_DOMAIN": "https://bedrock.example.com", "PIP_TRUSTED_HOST": "a"}
    secret = {"PIP_EXTRA_INDEX_URL": "https://me:hunter2@pkgs.example.com/simple"}
    context = StepContext(7, Path(), Path(), Path(), environment, secret, 1)
    from bedrock.runs.executors.docker import _variables

    shown, exported = _variables(context)

    assert "PIP_EXTRA_INDEX_URL" not in shown and "hunter2" not in repr(shown)
    assert shown["PIP_TRUSTED_HOST"] == "a"  # https needs no trust: the user's value alone
    assert exported["PIP_EXTRA_INDEX_URL"] == (
        "https://me:hunter2@pkgs.example.com/simple https://bedrock.example.com/pypi/simple/"
    )


def _nomad_main(parameters: dict, secrets: tuple[str, ...] = ()) -> dict:
    from bedrock.nomad.jobs import MAIN_TASK, render_step
    from bedrock.pipelines import spec
    from bedrock.runs.plan import build_plan

    secrets_block = f"secrets = {list(secrets)!r}".replace("'", '"') if secrets else ""
    text = f"""
version = "1.0"
train {{
  step fit {{
    image = "python:3.11"
    script = [{{sh = ["pip install -r requirements.txt"]}}]
  }}
  {secrets_block}
}}
"""
    stanza = spec.load(text).stanza("train")
    plan = build_plan(
        stanza, run_id=3, run_number=1, pipeline_id=1, project_id=1, parameters=parameters,
        input_model_version_id=None, time_limit=timedelta(hours=1), publishes_model=True,
    )  # fmt: skip
    (step,) = plan.steps
    body = render_step(plan, step, attempt=1, time_left=timedelta(hours=1)).body
    from tests.nomad_fields import walk

    assert walk(body, version="v2.0.5") == []
    (group,) = body["Job"]["TaskGroups"]
    return next(task for task in group["Tasks"] if task["Name"] == MAIN_TASK)


def test_a_nomad_step_gets_the_index_in_its_env_after_its_own(settings):
    settings.BEDROCK_API_DOMAIN = "http://bedrock.service.consul:8000"

    main = _nomad_main({"PIP_EXTRA_INDEX_URL": "https://pkgs.example.com/simple"})

    assert main["Env"]["PIP_EXTRA_INDEX_URL"] == (
        "https://pkgs.example.com/simple http://bedrock.service.consul:8000/pypi/simple/"
    )
    assert main["Env"]["PIP_TRUSTED_HOST"] == "bedrock.service.consul"


def test_a_nomad_secret_index_is_followed_by_bedrocks_in_its_template(settings):
    settings.BEDROCK_API_DOMAIN = "https://bedrock.example.com"

    main = _nomad_main({}, secrets=("PIP_EXTRA_INDEX_URL",))

    (template,) = [t for t in main["Templates"] if t["DestPath"].endswith("/PIP_EXTRA_INDEX_URL")]
    assert template["EmbeddedTmpl"].endswith(
        '{{ index . "PIP_EXTRA_INDEX_URL" }} https://bedrock.example.com/pypi/simple/{{ end }}'
    )
    assert "PIP_TRUSTED_HOST" not in main["Env"]


# --- The model archive for a run's token -----------------------------------------------------


class World:
    """A running run of a training pipeline, its project's model with a version, and another
    project's model of the same name."""

    def __init__(self) -> None:
        project = factories.project()
        self.pipeline = factories.pipeline(project)
        self.model = self.pipeline.model
        self.archive = self._zip(b"the model")
        self.version = self._version(self.model, 2, self.archive)
        self.token = "bdrkrun_" + secrets.token_urlsafe(32)
        self.run = Run.objects.create(
            pipeline=self.pipeline, number=9, ref="main", status=RunStatus.RUNNING,
            token_hash=hash_token(self.token),
        )  # fmt: skip
        elsewhere = factories.model(factories.project(), name=self.model.name)
        self.other = self._version(elsewhere, 2, self._zip(b"not yours"))

    @staticmethod
    def _zip(content: bytes) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("model.bin", content)
        return buffer.getvalue()

    def _version(self, model, number: int, archive: bytes) -> ModelVersion:
        pipeline = self.pipeline if model.project_id == self.pipeline.project_id else None
        pipeline = pipeline or factories.pipeline(model.project, model=model)
        run = Run.objects.create(
            pipeline=pipeline, number=number, ref="main", status=RunStatus.SUCCEEDED
        )
        key = default_storage.save(f"models/test/{model.pk}-{number}.zip", ContentFile(archive))
        return ModelVersion.objects.create(
            model=model, number=number, run=run, storage_key=key, size=len(archive),
            sha256=hashlib.sha256(archive).hexdigest(), file_count=1,
        )  # fmt: skip

    def get(self, client, model, number, **headers):
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {self.token}")
        return client.get(f"/api/models/{model}/versions/{number}/archive", **headers)


@pytest.fixture
def world(db) -> World:
    return World()


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_run_fetches_its_projects_model_version_by_name(client, world):
    response = world.get(client, world.model.name, 2)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert _body(response) == world.archive
    assert response["X-Bedrock-SHA256"] == world.version.sha256


def test_a_run_fetches_its_projects_model_version_by_id(client, world):
    response = world.get(client, world.model.pk, 2)

    assert response.status_code == 200
    assert _body(response) == world.archive


def test_a_run_token_sent_as_x_bedrock_api_token_is_honoured(client, world):
    response = world.get(client, world.model.name, 2, HTTP_X_BEDROCK_API_TOKEN=world.token)

    assert response.status_code == 200
    assert _body(response) == world.archive


def test_another_projects_model_is_a_404_even_by_its_id(client, world):
    response = world.get(client, world.other.model.pk, 2)

    assert response.status_code == 404
    assert "error" in response.json()


def test_an_unknown_version_is_a_404(client, world):
    response = world.get(client, world.model.name, 3)

    assert response.status_code == 404
    assert "has no version 3" in response.json()["error"]


def test_a_users_session_without_a_run_token_gets_a_404(client, world):
    owner = factories.user()
    factories.member(world.model.project, owner)
    client.force_login(owner)

    response = client.get(f"/api/models/{world.model.name}/versions/2/archive")

    assert response.status_code == 404
    assert "run's own token" in response.json()["error"]


def test_an_ended_runs_token_is_refused(client, world):
    Run.objects.filter(pk=world.run.pk).update(status=RunStatus.SUCCEEDED)

    assert world.get(client, world.model.name, 2).status_code == 401


def test_an_unknown_token_in_x_bedrock_api_token_is_refused_not_ignored(client, world):
    response = client.get(
        f"/api/models/{world.model.name}/versions/2/archive", HTTP_X_BEDROCK_API_TOKEN="bdrk_no"
    )

    assert response.status_code == 401
