"""What a step job's allocations say about the step, as Bedrock needs it.

Nomad's own summaries mislead for batch work: a job reads ``dead`` after success, failure and
stop alike, and an allocation reads ``failed`` while its poststop upload still runs. So the state
is read from the newest allocation's task states, row by row in this order (first match wins):

| allocations                                              | phase     | outcome              |
|----------------------------------------------------------|-----------|----------------------|
| none yet (evaluation pending or blocked)                 | queued    |                      |
| client status ``lost``, or a replacement appeared        | done      | failed: node lost    |
| client status ``unknown`` (client disconnected)          | unknown   | (the executor bounds)|
| "allocation exceeded max_run_duration", ``main`` alive   | stopping  | failed: time limit   |
| "allocation exceeded max_run_duration"                   | done      | failed: time limit   |
| the prestart ``fetch`` failed                            | done      | failed: fetch        |
| ``main`` pending                                         | starting  |                      |
| ``main`` running                                         | running   |                      |
| ``main`` dead, ``upload`` not yet                        | finishing |                      |
| all dead, main killed by our stop                        | done      | stopped              |
| main exit 124 (the ``timeout`` wrapper)                  | done      | failed: time limit   |
| main OOM-killed, or exit 137 without our stop            | done      | failed: out of memory|
| main exit 0, ``upload`` failed                           | done      | failed: upload       |
| main exit 0                                              | done      | succeeded            |
| otherwise                                                | done      | failed: exit code    |

Nomad marks the time limit on the allocation as it starts killing the tasks, before ``main`` is
dead and has written its last lines; so that row is ``stopping`` until ``main`` is dead, and the
executor copies the log and purges only then (or after a bounded wait).

Docker does not report OOM kills on cgroup v2 clients (Nomad says so in the docker driver), so a
``main`` killed with exit code 137 that Bedrock did not stop is taken as probably out of memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from bedrock.nomad.jobs import FETCH_TASK, MAIN_TASK, UPLOAD_TASK

QUEUED = "queued"
STARTING = "starting"
RUNNING = "running"
FINISHING = "finishing"
DONE = "done"
UNKNOWN = "unknown"
STOPPING = "stopping"  # the outcome is known, but main is still being killed

TIMEOUT_EXIT = 124
KILLED_EXIT = 137  # 128 + SIGKILL: what Docker reports for an OOM kill it did not notice
MAX_RUN_DURATION = "allocation exceeded max_run_duration"
OOM_MESSAGE = "OOM Killed"  # the docker driver's exit message when it did notice


@dataclass(frozen=True)
class StepState:
    phase: str
    exit_code: int | None = None  # set when done: 0 only for success
    reason: str = ""  # why it failed, in a user's terms
    allocation_id: str = ""
    stopped: bool = False

    @property
    def done(self) -> bool:
        return self.phase == DONE


def newest(allocations: list[dict]) -> dict | None:
    if not allocations:
        return None
    return max(allocations, key=lambda alloc: alloc.get("CreateIndex") or 0)


def _task(alloc: dict, name: str) -> dict:
    return (alloc.get("TaskStates") or {}).get(name) or {}


def _terminated(task: dict) -> dict:
    """Details of the task's last Terminated event: exit_code, oom_killed, signal (strings)."""
    for event in reversed(task.get("Events") or []):
        if event.get("Type") == "Terminated":
            details = dict(event.get("Details") or {})
            details.setdefault("exit_code", str(event.get("ExitCode", "")))
            return details
    return {}


def _exit_code(task: dict) -> int | None:
    text = _terminated(task).get("exit_code", "")
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _last_message(task: dict) -> str:
    for event in reversed(task.get("Events") or []):
        message = event.get("DisplayMessage") or event.get("Message") or ""
        if message and event.get("Type") not in ("Received", "Task Setup"):
            return f"{event.get('Type')}: {message}"
    return ""


def placement_problems(evaluations: list[dict]) -> str:
    """Why Nomad cannot place the job yet, from blocked evaluations, or ''."""
    reasons: list[str] = []
    for evaluation in evaluations:
        for metrics in (evaluation.get("FailedTGAllocs") or {}).values():
            for key in ("DimensionExhausted", "ConstraintFiltered", "ClassExhausted"):
                for what, count in (metrics.get(key) or {}).items():
                    reasons.append(f"{what} ({count} node{'s' if count != 1 else ''})")
            if not metrics.get("NodesEvaluated") and metrics.get("NodesAvailable") == {}:
                reasons.append("no nodes in the job's datacenters")
    return "; ".join(dict.fromkeys(reasons))


def classify(
    allocations: list[dict], *, stop_requested: bool = False, memory_mb: int | None = None
) -> StepState:
    """The step's state; ``memory_mb`` is what its main task asked for, named when it ran out."""
    alloc = newest(allocations)
    if alloc is None:
        return StepState(QUEUED)
    alloc_id = alloc.get("ID", "")
    cut_short = _allocation_cut_short(allocations, alloc)
    if cut_short is not None:
        return cut_short
    fetch, main, upload = (_task(alloc, name) for name in (FETCH_TASK, MAIN_TASK, UPLOAD_TASK))
    main_state = main.get("State", "pending")
    if fetch.get("State") == "dead" and fetch.get("Failed"):
        # main never ran; the upload, if it starts, finds nothing to send.
        return _hook_failed(
            fetch, "fetching the step's source and /artefact failed (prestart task fetch)", alloc_id
        )
    if main_state == "pending":
        return StepState(STARTING, allocation_id=alloc_id)
    if main_state == "running":
        return StepState(RUNNING, allocation_id=alloc_id)
    if upload and upload.get("State") != "dead":
        # Poststop runs after success, failure and a stop alike; finish only once it is done.
        return StepState(FINISHING, allocation_id=alloc_id)
    return _main_ended(main, upload, alloc_id, stop_requested=stop_requested, memory_mb=memory_mb)


def _allocation_cut_short(allocations: list[dict], alloc: dict) -> StepState | None:
    """The state of an allocation Nomad lost, cannot see or stopped at the time limit."""
    alloc_id = alloc.get("ID", "")
    client_status = alloc.get("ClientStatus")
    replaced = len(allocations) > 1 or any(a.get("NextAllocation") for a in allocations)
    if client_status == "lost" or replaced:
        lost = next((a for a in allocations if a.get("ClientStatus") == "lost"), alloc)
        detail = lost.get("DesiredDescription") or lost.get("ClientDescription") or ""
        return StepState(
            DONE,
            exit_code=-1,
            reason="the Nomad node running the step was lost" + (f" ({detail})" if detail else ""),
            allocation_id=alloc_id,
        )
    if client_status == "unknown":
        return StepState(UNKNOWN, allocation_id=alloc_id)
    if alloc.get("ClientDescription") == MAX_RUN_DURATION:
        main_alive = _task(alloc, MAIN_TASK).get("State", "pending") != "dead"
        return StepState(
            STOPPING if main_alive else DONE,
            exit_code=TIMEOUT_EXIT,
            reason="Nomad stopped the step at the run's maximum run time (max_run_duration)",
            allocation_id=alloc_id,
        )
    return None


def _main_ended(
    main: dict, upload: dict, alloc_id: str, *, stop_requested: bool, memory_mb: int | None
) -> StepState:
    """Why the main task ended, once the upload after it is done."""
    exit_code = _exit_code(main)
    killed = any(event.get("Type") == "Killed" for event in main.get("Events") or [])
    if stop_requested and (killed or exit_code != 0):
        return StepState(
            DONE,
            exit_code=exit_code if exit_code is not None else -9,
            reason="stopped",
            allocation_id=alloc_id,
            stopped=True,
        )
    if exit_code == TIMEOUT_EXIT:
        return StepState(
            DONE,
            exit_code=exit_code,
            reason="killed by timeout at the run's maximum run time",
            allocation_id=alloc_id,
        )
    oom = _out_of_memory(main, exit_code)
    if oom:
        asked = f" (the step asked for {memory_mb} MiB)" if memory_mb else ""
        return StepState(
            DONE,
            exit_code=exit_code if exit_code is not None else KILLED_EXIT,
            reason=f"killed, {oom[0]}{asked}{oom[1]}; ask for more with resources.memory",
            allocation_id=alloc_id,
        )
    if exit_code == 0:
        return _succeeded_unless_upload_failed(upload, alloc_id)
    if exit_code is None:
        message = _last_message(main)
        return StepState(
            DONE,
            exit_code=-1,
            reason="the step's container did not run" + (f": {message}" if message else ""),
            allocation_id=alloc_id,
        )
    return StepState(DONE, exit_code=exit_code, allocation_id=alloc_id)


def _out_of_memory(main: dict, exit_code: int | None) -> tuple[str, str] | None:
    """What is known of an OOM kill and why: Docker said so, or a bare SIGKILL (our own stops
    are told apart before this, and the time limit ends with 124); None otherwise."""
    details = _terminated(main)
    said = details.get("oom_killed") == "true" or details.get("exit_message") == OOM_MESSAGE
    said = said or any(
        OOM_MESSAGE in (event.get("DisplayMessage") or event.get("Message") or "")
        for event in main.get("Events") or []
    )
    if said:
        return "out of memory", ""
    if exit_code == KILLED_EXIT:
        return "probably out of memory", ": exit code 137 (SIGKILL) without a stop from Bedrock"
    return None


def _succeeded_unless_upload_failed(upload: dict, alloc_id: str) -> StepState:
    if upload.get("Failed"):
        return _hook_failed(upload, "uploading /artefact failed (poststop task upload)", alloc_id)
    return StepState(DONE, exit_code=0, allocation_id=alloc_id)


def _hook_failed(task: dict, what: str, alloc_id: str) -> StepState:
    message = _last_message(task)
    return StepState(
        DONE,
        exit_code=-1,
        reason=what + (f": {message}" if message else ""),
        allocation_id=alloc_id,
    )
