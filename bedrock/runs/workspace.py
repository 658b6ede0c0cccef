"""Where a run lives on this machine while it executes, and where its logs are kept afterwards."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from bedrock.filetrees import remove_tree

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _safe(name: str) -> str:
    # Step names are validated by the spec, but a path component must never depend on that alone.
    cleaned = _SAFE.sub("_", name).lstrip(".")
    return cleaned or "_"


@dataclass(frozen=True)
class Workspace:
    run_id: int

    @property
    def root(self) -> Path:
        return Path(settings.BEDROCK_HOME) / "runs" / str(self.run_id)

    @property
    def artefact(self) -> Path:
        """Shared by every step of the run; bound at /artefact."""
        return self.root / "artefact"

    def step_dir(self, step: str) -> Path:
        return self.root / "steps" / _safe(step)

    def step_app(self, step: str) -> Path:
        """The step's own checkout of the run's commit; bound at /app."""
        return self.step_dir(step) / "app"

    def create(self) -> None:
        self.artefact.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        """Delete everything but the logs, which live elsewhere."""
        remove_step_tree(self.root)


def remove_step_tree(path: Path) -> None:
    """Delete a tree that a step wrote into, however deep it made it (``shutil.rmtree`` fails
    past a thousand levels or so); a failure is logged, never raised, as ending the run matters
    more."""
    try:
        remove_tree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not delete %s: %s", path, exc)


def logs_root() -> Path:
    """Where run logs live: ``BEDROCK_LOGS_DIR``, else ``BEDROCK_HOME/logs``."""
    configured = settings.BEDROCK_LOGS_DIR
    return Path(configured) if configured else Path(settings.BEDROCK_HOME) / "logs"


def log_path(run_id: int, step: str) -> Path:
    return logs_root() / f"run-{run_id}" / f"{_safe(step)}.log"


def wake_path(run_id: int) -> Path:
    """A file that grows by a byte whenever the run or one of its steps changes status: a
    follower stats it (and the logs) to learn of a change without asking the database."""
    return logs_root() / f"run-{run_id}" / "wake"


def run_wake(run_id: int) -> None:
    """Tell the run's followers something changed; never fails what it reports."""
    path = wake_path(run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as wake:
            wake.write(b".")
    except OSError as exc:
        logger.debug("could not wake the followers of run %s: %s", run_id, exc)


def log_key(run_id: int, step: str) -> str:
    return f"run-{run_id}/{_safe(step)}.log"


def read_log(key: str, offset: int = 0, limit: int = 1 << 20) -> tuple[str, int]:
    """Log text from a byte offset, and the offset to read from next (to follow a live log)."""
    if not key:
        return "", offset
    path = logs_root() / key
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(limit)
    except FileNotFoundError:
        return "", offset
    return data.decode("utf-8", errors="replace"), offset + len(data)
