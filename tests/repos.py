"""Real Git repositories for tests, made with the git binary."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "bedrock" / "examples" / "churn"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None, *, copy: Path | None = None) -> Path:
    """A repository on branch main with one commit holding ``files`` (and a copy of ``copy``)."""
    path.mkdir(parents=True, exist_ok=True)
    if copy is not None:
        shutil.copytree(copy, path, dirs_exist_ok=True)
    for name, text in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def hcl(stanza: str, steps: str, *, parameters: str = "", secrets: str = "") -> str:
    """A bedrock.hcl with one stanza."""
    return (
        f'version = "1.0"\n{stanza} {{\n{steps}\n'
        + (f"parameters {{\n{parameters}\n}}\n" if parameters else "")
        + (f"secrets = [{secrets}]\n" if secrets else "")
        + "}\n"
    )


def step(name: str, *commands: str, depends_on: str = "", extra: str = "") -> str:
    script = ", ".join(f'"{c}"' for c in commands)
    deps = f"depends_on = [{depends_on}]\n" if depends_on else ""
    return (
        f'step "{name}" {{\nimage = "python:3.11-slim"\n'
        f"script = [{{sh = [{script}]}}]\n{deps}{extra}\n}}"
    )
