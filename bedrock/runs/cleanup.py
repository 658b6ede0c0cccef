"""Removing what an ended run left outside the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bedrock.runs.executors import Executor

import logging

from bedrock.runs.models import Run

logger = logging.getLogger(__name__)


def run_cleanup(run_id: int, *, executor: Executor | None = None) -> bool:
    """Remove what the run left outside the database: its executor's jobs, processes or
    containers, and its stage archives. True when all is gone; otherwise the run is marked
    ``cleanup_pending`` and the reconciler calls this again."""
    from bedrock.runs.executors.choice import get_executor
    from bedrock.runs.stages import stages_delete

    complete = True
    try:
        (executor or get_executor()).cleanup_run(run_id)
    except Exception as exc:
        logger.warning("cleaning up run %s: %s", run_id, exc)
        complete = False
    try:
        stages_delete(run_id)
    except Exception as exc:
        logger.warning("deleting the stage archives of run %s: %s", run_id, exc)
        complete = False
    Run.objects.filter(pk=run_id).update(cleanup_pending=not complete)
    return complete
