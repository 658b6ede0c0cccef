"""Installs resolved as of a run's commit date, on the local executor.

Old requirement files pin their direct dependencies only; the rest resolves to today's releases,
which often break them (marshmallow 4, thrift 0.25). A pipeline can ask, or the server can by
default, that its runs' ``pip install`` lines get what PyPI had on the day of the commit: the
run records that date, and each step's virtual environment gets a ``pip`` (:mod:`.pipshim`)
that hands installs to ``uv pip install --exclude-newer DATE``. pip itself has no such option
before 26.0 (``--uploaded-prior-to``), and the steps' environments come with older ones.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from bedrock.pipelines import git
from bedrock.pipelines.models import DatedInstalls, Pipeline
from bedrock.runs.executors.base import ExecutorError

# Where the sandbox shows uv: Bedrock's own virtual environment, which holds it, is not there.
UV_IN_SANDBOX = "/bedrock/bin/uv"
_PIP_SCRIPT = re.compile(r"pip(\d+(\.\d+)?)?")


def dated_installs_on(pipeline: Pipeline) -> bool:
    """Whether runs of ``pipeline`` resolve their installs as of their commit's date."""
    if pipeline.dated_installs == DatedInstalls.DEFAULT:
        return bool(settings.BEDROCK_DATED_INSTALLS)
    return pipeline.dated_installs == DatedInstalls.ON


def installs_as_of(
    pipeline: Pipeline, sha: str, *, cache_key: str, credentials: git.GitCredentials | None
) -> datetime | None:
    """The date a new run of ``pipeline`` at ``sha`` resolves its installs as of, or None.

    None on the other executors too: their steps' pip is the image's, which this cannot reach,
    and a date on the run would claim what did not happen."""
    if settings.BEDROCK_EXECUTOR != "local" or not dated_installs_on(pipeline):
        return None
    return git.commit_date(pipeline.git_url, sha, cache_key=cache_key, credentials=credentials)


def uv_date(moment: datetime) -> str:
    """RFC 3339 in UTC, as ``--exclude-newer`` reads it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uv() -> str | None:
    try:
        from uv import find_uv_bin
    except ImportError:
        return shutil.which("uv")
    try:
        return find_uv_bin()
    except FileNotFoundError:
        return shutil.which("uv")


def sandbox_mounts() -> list[str]:
    """bubblewrap's arguments that show uv to the step, read-only."""
    uv = _uv()
    return ["--ro-bind", uv, UV_IN_SANDBOX] if uv else []


def run_date(run_id: int) -> datetime | None:
    from bedrock.runs.models import Run

    return Run.objects.filter(pk=run_id).values_list("installs_as_of", flat=True).first()


def shim_text(*, date: datetime, uv: str, interpreter: str) -> str:
    """The source of the shim with its constants filled in, run by ``interpreter``."""
    source = Path(__file__).with_name("pipshim.py").read_text()
    lines = source.splitlines(keepends=True)
    lines[0] = f"#!{interpreter}\n"
    filled = {"DATE": uv_date(date), "UV": uv}
    for index, line in enumerate(lines):
        name = line.split(" = ", 1)[0]
        if name in filled and line.startswith(f"{name} = "):
            lines[index] = f"{name} = {filled.pop(name)!r}\n"
    return "".join(lines)


def prepare_venv(run_id: int, venv: Path, *, sandboxed: bool, interpreter: str) -> None:
    """Put the dated ``pip`` over the ``pip`` scripts of the step's ``venv`` (its host path),
    when the run has a date. ``interpreter`` is a Python of the host that the step can run."""
    date = run_date(run_id)
    if date is None:
        return
    uv = _uv()
    if uv is None:
        raise ExecutorError(
            "this run resolves its installs as of its commit's date, which needs uv: install "
            "it into Bedrock's environment (pip install uv) or turn dated installs off for "
            "the pipeline"
        )
    text = shim_text(date=date, uv=UV_IN_SANDBOX if sandboxed else uv, interpreter=interpreter)
    bin_dir = venv / "bin"
    for path in bin_dir.iterdir():
        if _PIP_SCRIPT.fullmatch(path.name):
            path.unlink()  # not written through: pip's script may be a link to another file
            path.write_text(text)
            path.chmod(0o755)


def notice(run_id: int) -> bytes:
    """The step log's line saying what the installs resolve as of, or b"" when undated."""
    date = run_date(run_id)
    if date is None:
        return b""
    return (
        f"bedrock: pip install resolves as of {uv_date(date)}, the date of the run's commit "
        "(uv pip install --exclude-newer); Bedrock's client bdrk is outside that bound\n"
    ).encode()
