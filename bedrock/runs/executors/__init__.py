"""Executors run one step attempt somewhere: ``local`` processes, ``docker`` containers or
``nomad`` batch jobs. :func:`bedrock.runs.executors.choice.get_executor` picks one."""

from __future__ import annotations

from bedrock.runs.executors.base import Executor, ExecutorError, StepContext, StepHandle

__all__ = ["Executor", "ExecutorError", "StepContext", "StepHandle"]
