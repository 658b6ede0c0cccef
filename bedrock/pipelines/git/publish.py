"""Publishing a directory as a local repository (the bundled example)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bedrock.pipelines.git.session import open_session


def init_repository(source: Path, dest: Path, *, message: str, branch: str = "main") -> str:
    """Make ``dest`` a repository whose ``branch`` holds ``source``'s files; return the commit.

    Used to publish the bundled example as a local repository. When ``dest`` already holds a
    commit of the same files, nothing changes; otherwise a new commit is added on top.
    """
    dest.mkdir(parents=True, exist_ok=True)
    identity = {
        "GIT_AUTHOR_NAME": "Bedrock",
        "GIT_AUTHOR_EMAIL": "bedrock@localhost",
        "GIT_COMMITTER_NAME": "Bedrock",
        "GIT_COMMITTER_EMAIL": "bedrock@localhost",
    }
    with open_session(str(dest), None) as session:
        env = {**identity, "GIT_DIR": str(dest / ".git"), "GIT_WORK_TREE": str(dest)}
        if not (dest / ".git").exists():
            session.run("init", "-q", "-b", branch, action="Creating a repository in", env=env)
        for item in dest.iterdir():
            if item.name != ".git":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        shutil.copytree(
            source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
        session.run("add", "-A", ".", action="Adding files to", env=env)
        status, _, _ = session.run(
            "diff", "--cached", "--quiet", action="Comparing", env=env, check=False
        )
        if status != 0:
            session.run("commit", "-q", "-m", message, action="Committing to", env=env)
        _, head, _ = session.run("rev-parse", "HEAD", action="Reading", env=env)
        return head.decode().strip()
