"""Steps' virtual environments: copies of an interpreter's template, and the environments of
steps that install kept per project for the next run with the same installs."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from bedrock.pipelines.spec import Resources
from bedrock.runs.executors.base import StepContext
from bedrock.runs.executors.local import LocalExecutor, bubblewrap
from bedrock.runs.installs import envcache
from bedrock.runs.plan import StepPlan
from bedrock.runs.workspace import remove_step_tree
from tests.pyindex import Release, serving

pytestmark = pytest.mark.django_db(transaction=True)

INDEXES = {"simple": [Release("top", "1.0", None), Release("other", "2.0", None)]}
REUSED = "bedrock: reusing the environment an earlier run of this project made"
_LIMITS = Resources(cpu=None, memory=None, gpu=None, millicpu=None, memory_bytes=None)
_runs = iter(range(990_500, 999_999))


def _step(tmp_path: Path, install: tuple[str, ...], script: str, **kwargs) -> tuple[int, str]:
    """Run a step of the local executor (no run) in a directory of its own: exit code, log."""
    return _step_at(tmp_path / f"run-{next(_runs)}", install, script, **kwargs)


def _step_at(
    root: Path,
    install: tuple[str, ...],
    script: str,
    *,
    project: str = "7",
    environment: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    files: dict[str, str] | None = None,
) -> tuple[int, str]:
    for name in ("app", "artefact", "step"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (root / "app" / name).write_text(text)
    context = StepContext(
        next(_runs),
        root / "app",
        root / "artefact",
        root / "step",
        {"BEDROCK_PROJECT_ID": project, **(environment or {})},
        dict(secrets or {}),
        1,
    )
    command = " && ".join(f"{{ {line}; }}" for line in (*install, script))
    plan = StepPlan("s", "", command, {}, (), _LIMITS, (), 0, install=install)
    handle = LocalExecutor().start(plan, context)
    output = b"".join(handle.output()).decode()
    code = handle.wait(120)
    assert code is not None, output
    return code, output


def _entries() -> list[Path]:
    return [p for p in envcache._root().glob("project-*/*") if not p.name.startswith(".")]


@pytest.fixture(autouse=True)
def _no_kept_environments():
    # One home per test session: what another test of this file kept must not count here.
    remove_step_tree(envcache._root())


@pytest.fixture
def index():
    with serving(INDEXES) as base:
        yield {"PIP_INDEX_URL": f"{base}/simple/"}


SHOW = "python -c 'import top; print(\"top\", top.VERSION)'"


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_second_step_with_the_same_install_lines_reuses_the_environment_and_says_so(
    tmp_path, settings, sandboxed
):
    if sandboxed and bubblewrap() is None:
        pytest.skip("bubblewrap is not installed")
    settings.BEDROCK_LOCAL_SANDBOX = sandboxed
    install = ("pip install -q top==1.0",)
    with serving(INDEXES) as base:
        index = {"PIP_INDEX_URL": f"{base}/simple/", "PIP_RETRIES": "0"}
        code, first = _step(tmp_path, install, SHOW, environment=index)
    assert code == 0, first
    assert REUSED not in first
    assert len(_entries()) == 1

    # The same index URL, with nothing answering there: only a kept environment satisfies it.
    code, second = _step(tmp_path, install, SHOW, environment=index)

    assert code == 0, second
    assert REUSED in second
    assert "top 1.0" in second


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_step_venv_copied_from_the_template_has_its_own_pip_that_installs_into_it(
    tmp_path, settings, index, sandboxed
):
    if sandboxed and bubblewrap() is None:
        pytest.skip("bubblewrap is not installed")
    settings.BEDROCK_LOCAL_SANDBOX = sandboxed
    check = (
        'pip --version && pip3 --version && python -m pip --version && head -1 "$(which pip)" '
        f"&& pip install -q top==1.0 && {SHOW} && python -c 'import sys; print(sys.prefix)'"
    )
    _step(tmp_path, (), "true")  # makes the template, if no test has yet
    root = tmp_path / "second"

    code, output = _step_at(root, (), check, environment=index)

    assert code == 0, output
    venv = "/venv" if sandboxed else str(root / "step" / "venv")
    assert f"#!{venv}/bin/python" in output
    assert output.count(f"from {venv}/lib/python") == 3  # pip, pip3, python -m pip
    assert "top 1.0" in output
    assert output.rstrip().endswith(venv)


def test_a_changed_install_line_requirement_file_or_pip_variable_makes_a_new_environment(
    tmp_path, index
):
    install = ("pip install -q -r requirements.txt",)
    files = {"requirements.txt": "top==1.0\n"}
    assert _step(tmp_path, install, SHOW, environment=index, files=files)[0] == 0

    changed_file = {"requirements.txt": "top==1.0\nother==2.0\n"}
    code, output = _step(tmp_path, install, SHOW, environment=index, files=changed_file)
    assert code == 0, output
    assert REUSED not in output

    changed_line = ("pip install -q -r requirements.txt other==2.0",)
    code, output = _step(tmp_path, changed_line, SHOW, environment=index, files=files)
    assert code == 0, output
    assert REUSED not in output

    variable = {**index, "PIP_NO_COMPILE": "1"}
    code, output = _step(tmp_path, install, SHOW, environment=variable, files=files)
    assert code == 0, output
    assert REUSED not in output

    code, output = _step(tmp_path, install, SHOW, environment=index, files=files)
    assert REUSED in output


def test_bedrocks_own_index_address_does_not_change_the_key(tmp_path, index):
    install = ("pip install -q top==1.0",)
    api = {**index, "PIP_RETRIES": "0", "BEDROCK_API_DOMAIN": "http://127.0.0.1:1111"}
    assert _step(tmp_path, install, SHOW, environment=api)[0] == 0

    # `bedrock run --wait` serves the API itself, at another port each time.
    code, output = _step(
        tmp_path,
        install,
        SHOW,
        environment={**api, "BEDROCK_API_DOMAIN": ("http://127.0.0.1:2222")},
    )

    assert code == 0, output
    assert REUSED in output


def test_another_projects_step_with_the_same_installs_never_gets_the_environment(tmp_path, index):
    install = ("pip install -q top==1.0",)
    assert _step(tmp_path, install, SHOW, environment=index, project="7")[0] == 0

    code, output = _step(tmp_path, install, SHOW, environment=index, project="8")

    assert code == 0, output
    assert REUSED not in output


def test_a_failed_step_keeps_nothing(tmp_path, index):
    install = ("pip install -q top==1.0",)

    code, output = _step(tmp_path, install, "false", environment=index)

    assert code == 1, output
    assert _entries() == []
    assert REUSED not in _step(tmp_path, install, SHOW, environment=index)[1]


def test_a_step_that_installs_nothing_keeps_nothing(tmp_path):
    assert _step(tmp_path, (), "true")[0] == 0
    assert _entries() == []


def test_the_kept_environment_holds_no_secret_in_clear(tmp_path, index):
    token = "tok-5ecr3t-value"
    # A private index, its token in the URL: a secret, which the key hashes with the rest.
    private = index["PIP_INDEX_URL"].replace("http://", f"http://user:{token}@")
    secret = {"PIP_EXTRA_INDEX_URL": private}
    install = ("pip install -q top==1.0",)

    code, output = _step(tmp_path, install, SHOW, environment=index, secrets=secret)
    assert code == 0, output
    code, output = _step(tmp_path, install, SHOW, environment=index, secrets=secret)

    assert REUSED in output
    assert token not in output
    for path in envcache._root().rglob("*"):
        assert token not in str(path)
        if path.is_file() and not path.is_symlink():
            assert token.encode() not in path.read_bytes(), path


def test_the_key_changes_with_the_date_and_the_pyspark_requirement(tmp_path):
    installs = envcache.Installs(
        interpreter="/usr/bin/python3 3.11.7",
        lines=("pip install top",),
        workdir=tmp_path,
        app_dir=tmp_path,
        date=datetime(2021, 1, 1, tzinfo=UTC),
        pyspark="",
        variables={"PIP_INDEX_URL": "http://x/", "HOME": "/home/step"},
        sandboxed=True,
    )
    key = envcache.key(installs)
    home = {"PIP_INDEX_URL": "http://x/", "HOME": "/elsewhere"}

    assert key == envcache.key(replace(installs, variables=home))  # only PIP_* and UV_* count
    assert key != envcache.key(replace(installs, date=datetime(2021, 1, 2, tzinfo=UTC)))
    assert key != envcache.key(replace(installs, date=None))
    assert key != envcache.key(replace(installs, pyspark="pyspark>=3.5,<3.6"))
    assert key != envcache.key(replace(installs, sandboxed=False))
    assert key != envcache.key(replace(installs, client="0.4.0"))
    assert key != envcache.key(replace(installs, variables={"UV_INDEX_URL": "http://x/"}))


def test_requirement_files_are_followed_into_the_files_they_name_and_never_outside(tmp_path):
    app = tmp_path / "app"
    (app / "reqs").mkdir(parents=True)
    (app / "reqs" / "base.txt").write_text("-c pins.txt\ntop\n")
    (app / "reqs" / "pins.txt").write_text("top==1.0\n")
    (app / "requirements.txt").write_text("-r reqs/base.txt\n")
    lines = ("pip install -rrequirements.txt --constraint=../secret.txt",)

    hashes = envcache.requirement_hashes(lines, app, app)

    assert set(hashes) == {"requirements.txt", "reqs/base.txt", "reqs/pins.txt", "../secret.txt"}
    assert hashes["../secret.txt"] == "outside"
    before = hashes["reqs/pins.txt"]
    (app / "reqs" / "pins.txt").write_text("top==2.0\n")
    assert envcache.requirement_hashes(lines, app, app)["reqs/pins.txt"] != before


def _kept(project: str, name: str, *, size: int, used: float, created: datetime) -> Path:
    entry = envcache._root() / f"project-{project}" / name
    (entry / "venv").mkdir(parents=True)
    meta = {"created": created.isoformat(), "size": size}
    (entry / envcache.META).write_text(json.dumps(meta))
    (entry / envcache.LOCK).write_text("")
    os.utime(entry, (used, used))
    return entry


def test_eviction_deletes_the_least_recently_used_once_the_cache_is_over_its_size(settings):
    settings.BEDROCK_ENV_CACHE_SIZE = 250
    now = timezone.now()
    oldest = _kept("1", "a", size=100, used=1000, created=now)
    newer = _kept("2", "b", size=100, used=2000, created=now)
    newest = _kept("1", "c", size=100, used=3000, created=now)

    gone = envcache.evict()

    assert gone == [oldest]
    assert not oldest.exists() and newer.exists() and newest.exists()


def test_an_environment_past_its_age_is_neither_reused_nor_kept(tmp_path, settings):
    settings.BEDROCK_ENV_CACHE_MAX_AGE = timedelta(days=7)
    now = timezone.now()
    old = _kept("1", "old", size=1, used=now.timestamp(), created=now - timedelta(days=8))
    young = _kept("1", "young", size=1, used=now.timestamp(), created=now - timedelta(days=6))
    (tmp_path / "venv").mkdir()

    assert envcache.restore("1", "old", tmp_path / "venv", "/venv") is None
    assert envcache.evict() == [old]
    assert young.exists()


def test_an_environment_in_use_is_not_evicted(settings):
    import fcntl

    settings.BEDROCK_ENV_CACHE_SIZE = 1
    entry = _kept("1", "busy", size=100, used=1000, created=timezone.now())
    with (entry / envcache.LOCK).open() as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        assert envcache.evict() == []
    assert envcache.evict() == [entry]


def test_a_size_of_zero_keeps_nothing(tmp_path, settings, index):
    settings.BEDROCK_ENV_CACHE_SIZE = 0
    code, output = _step(tmp_path, ("pip install -q top==1.0",), SHOW, environment=index)
    assert code == 0, output
    assert _entries() == []


def test_uv_gets_a_cache_of_the_projects_own(tmp_path, settings):
    code, output = _step(tmp_path, (), 'echo "uv=$UV_CACHE_DIR"; touch "$UV_CACHE_DIR/mark"')

    assert code == 0, output
    inside = "/cache/uv" if bubblewrap() else str(settings.BEDROCK_HOME / "cache/uv/project-7")
    assert f"uv={inside}\n" in output
    assert (settings.BEDROCK_HOME / "cache" / "uv" / "project-7" / "mark").exists()


def test_a_venv_after_the_first_of_an_interpreter_is_made_without_python_m_venv(
    tmp_path, monkeypatch
):
    from bedrock.runs.executors import venvs

    assert _step(tmp_path, (), "true")[0] == 0  # the template, if no test has made it yet

    def refused(*args, **kwargs):
        raise AssertionError("python -m venv ran again")

    monkeypatch.setattr(venvs, "_python_m_venv", refused)
    code, output = _step(tmp_path, (), "pip --version && python -c 'import sys; print(sys.prefix)'")

    assert code == 0, output
    assert "pip " in output


def test_two_processes_publishing_the_same_template_leave_one_whole_copy(tmp_path):
    from bedrock.runs.executors import venvs

    tree = tmp_path / "venv"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "pip").write_text("#!/venv/bin/python\n")
    destination = tmp_path / "cache" / "template"
    destination.parent.mkdir()

    assert venvs.publish(tree, "/venv", destination) is True
    (tree / "bin" / "pip").write_text("#!/venv/bin/python3\n")
    assert venvs.publish(tree, "/venv", destination) is False

    assert sorted(p.name for p in destination.parent.iterdir()) == ["template"]
    assert (destination / "venv" / "bin" / "pip").read_text() == "#!/venv/bin/python\n"
    assert (destination / venvs.MADE_AT).read_text() == "/venv"
