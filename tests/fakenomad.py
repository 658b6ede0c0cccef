"""A fake Nomad agent: the HTTP API Bedrock's Nomad client talks to, served on 127.0.0.1.

No Nomad binary runs here, so the tests replace Nomad at its one seam, its HTTP API. The fake serves
exactly the URLs python-nomad sends, answers with the status codes and plain-text error bodies Nomad
uses (`research/nomad.md` §0), validates job bodies the way the agent and the server do (§1), and
plays each registered job through the allocation lifecycle Nomad reports (§4).

Playback is deterministic: a job moves one phase each time its allocations are listed
(`GET /v1/job/<id>/allocations`) or `advance()` is called, never with the wall clock. Which story a
job plays is a `Scenario`, picked by `scenario_for(job)`, then the longest matching prefix in
`scenarios`, then `default_scenario`.

Phases of an allocation (tasks from the registered job: prestart = `Lifecycle.Hook` "prestart",
main = no `Lifecycle` (or "poststart"), poststop = "poststop"):

    register           evaluation "pending", no allocation, job "pending"
    1                  evaluation "complete", allocation with every task "pending" ("Received")
    2 (if prestart)    prestart tasks "running"
    3 (if prestart)    prestart tasks "dead" ("Terminated", exit 0)
    4 .. 4+polls-1     main "running"; its log grows by one chunk a phase
    next               main "dead" ("Terminated" with exit code, oom flag, signal)
    next (if poststop) poststop "running"
    next (if poststop) poststop "dead"; allocation "complete", or "failed" if any task failed

A task whose template reads a Nomad variable (`nomadVar "<path>"`) that does not exist in the job's
namespace stays "pending" with a "Template" event "Missing: nomad.var.block(...)" until the variable
appears, as on a real client; a key missing from the variable with `ErrMissingKey` fails the task.
An unknown docker `Config` key fails the task at start ("Failed Validation", "Not Restarting").

Scenario kinds:

- "success": every task exits 0.
- "failure": main exits `exit_code` (1); "Not Restarting", `Failed` true; poststop still runs.
- "oom": main exits 137 with `Details.oom_killed` "true" and exit message "OOM Killed".
- "lost": while main runs, the node goes down: `ClientStatus` "lost", `DesiredStatus` "stop",
  `DesiredDescription` "alloc is lost since its node is down"; a replacement allocation appears
  (the old one's `NextAllocation` names it) and stays "pending".
- "max_run_duration": main is killed ("Killing" with "allocation exceeded max_run_duration"),
  poststop never starts, the allocation ends `ClientStatus` "complete" with that `ClientDescription`
  (as Nomad 2.0.3+ reports it: a timeout is not a task failure).
- "prestart_failure": the first prestart task exits `exit_code` (1) and fails; main never starts:
  it goes "dead" (not failed) with a "Sibling Task Failed" event naming the prestart task, as the
  alloc runner kills the siblings of a failed task; poststop tasks then run, as they do once every
  other task is dead.
- "poststop_failure": main exits 0, the first poststop task exits `exit_code` (1) and fails.
- "hang": main runs until the job is stopped; then "Killing", "Killed", `Failed` false, and
  poststop runs to completion.
- "unplaceable": no allocation; the evaluation completes with `FailedTGAllocs` and a "blocked"
  evaluation waits (job "pending") until the job is stopped.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests import nomad_fields

KINDS = (
    "success",
    "failure",
    "oom",
    "lost",
    "max_run_duration",
    "prestart_failure",
    "poststop_failure",
    "hang",
    "unplaceable",
)
ZERO_TIME = "0001-01-01T00:00:00Z"
SECOND = 1_000_000_000
MAX_EVENTS = 10  # the client keeps the last ten events of a task
_IDLE = True  # what a playback yields when it waits on something outside it (a stop, a variable)

_Playback = Generator[bool | None, None, Any]

_JOB_TYPES = ("service", "batch", "system", "sysbatch")
_HOOKS = ("prestart", "poststart", "poststop")
_RESTART_DEFAULTS = {
    "batch": {"Attempts": 3, "Interval": 86400 * SECOND, "Delay": 15 * SECOND, "Mode": "fail"},
    "service": {"Attempts": 2, "Interval": 1800 * SECOND, "Delay": 15 * SECOND, "Mode": "fail"},
}
_RESCHEDULE_DEFAULTS = {
    "batch": {
        "Attempts": 1,
        "Interval": 86400 * SECOND,
        "Delay": 5 * SECOND,
        "DelayFunction": "constant",
        "MaxDelay": 0,
        "Unlimited": False,
    },
    "service": {
        "Attempts": 0,
        "Interval": 0,
        "Delay": 30 * SECOND,
        "DelayFunction": "exponential",
        "MaxDelay": 3600 * SECOND,
        "Unlimited": True,
    },
}
_NOMAD_VAR = re.compile(r'nomadVar\s+"([^"]+)"')
_TEMPLATE_KEY = re.compile(r"\{\{-?\s*\.([A-Za-z_][A-Za-z0-9_]*)")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$")
_DURATION_UNITS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


@dataclass
class Scenario:
    """How a registered job plays out; see the module docstring for each kind."""

    kind: str = "success"
    exit_code: int | None = None  # exit code of the task the kind fails; None: the kind's own
    stdout: str = ""  # main's stdout, appended in `main_polls` chunks while main runs
    stderr: str = ""
    main_polls: int = 2  # phases main is seen running before it ends (or, for "hang", logs)
    task_logs: dict[str, dict[str, str]] = field(default_factory=dict)  # other tasks' logs
    unplaceable_reason: str = "devices: no devices match request"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown scenario kind {self.kind!r}; one of {KINDS}")
        if self.main_polls < 1:
            raise ValueError("main_polls must be at least 1")


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    method: str
    path: str  # unquoted, without the query string
    query: dict[str, str]  # last value of each parameter, as sent ("True", "0", ...)
    json: Any  # the decoded body, or None
    headers: dict[str, str]
    body: bytes


@dataclass
class _Injection:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: str
    after_effect: bool
    disconnect: bool
    times: int


class _HTTPError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass
class _Alloc:
    stub: dict[str, Any]
    logs: dict[tuple[str, str], bytearray] = field(default_factory=dict)
    stopping: bool = False
    collected: bool = False
    status_override: str | None = None  # "lost", or "complete" after max_run_duration


@dataclass
class _Job:
    namespace: str
    id: str
    job: dict[str, Any]
    scenario: Scenario
    version: int
    create_index: int
    job_modify_index: int
    modify_index: int
    submit_time: int
    stop: bool = False
    evals: list[dict[str, Any]] = field(default_factory=list)
    allocs: list[_Alloc] = field(default_factory=list)
    playbacks: list[_Playback] = field(default_factory=list)


def _zero(struct: str) -> dict[str, Any]:
    """A struct's JSON as Go would encode its zero value (fields from the field map)."""
    out: dict[str, Any] = {}
    for name, gotype in nomad_fields.struct_fields("v2.0.5", struct).items():
        if gotype.startswith(("*", "[]", "map[")):
            out[name] = None
        elif gotype == "string":
            out[name] = ""
        elif gotype == "bool":
            out[name] = False
        elif gotype == "time.Time":
            out[name] = ZERO_TIME
        elif gotype in ("int", "int64", "uint64", "int8", "uint8", "time.Duration", "float64"):
            out[name] = 0
        else:
            out[name] = None
    return out


def _rfc3339(ns: int) -> str:
    stamp = datetime.fromtimestamp(ns // SECOND, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % SECOND:09d}".rstrip("0")
    return f"{stamp}.{frac}Z" if frac else f"{stamp}Z"


def go_duration(ns: int) -> str:
    """`time.Duration.String()`: 86400 s → "24h0m0s", 5 s → "5s", 0.5 s → "500ms"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)

    def frac(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns, 1_000)}µs"
    if ns < SECOND:
        return f"{sign}{frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return f"{sign}{out}{frac(rest, SECOND)}s"


def _parse_wait(text: str | None) -> float:
    if not text:
        return 300.0
    match = _DURATION.match(text)
    if not match:
        raise _HTTPError(400, f"Invalid wait time: {text!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)] / 1e9


def _multierror(errors: list[str]) -> str:
    """The text of a Go `multierror.Error`, as Nomad's validation errors read."""
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "\n" + "".join(f"\t* {e}\n" for e in errors) + "\n"


def _hook(task: dict[str, Any]) -> str | None:
    lifecycle = task.get("Lifecycle")
    if not lifecycle:
        return None
    return lifecycle.get("Hook") or None


class FakeNomad:
    """A Nomad agent over real HTTP for tests. Use as a context manager or `start()`/`stop()`.

    Knobs: `version` (reported by `/v1/agent/self`, and the field map used to decode bodies),
    `region`, `token` (when set, requests need it as `X-Nomad-Token`, else 403), `scenario_for`,
    `scenarios`, `default_scenario`, `max_block` (cap in seconds on a blocking query's wait),
    `clock` (ns, for timestamps only; playback never reads it).

    Seen by tests: `requests` (every `Request`), `dropped` (walker findings Nomad would accept
    silently: unknown keys, non-canonical key spellings, unknown docker config keys — assert it is
    empty), `address`.
    """

    def __init__(self, *, version: str = "2.0.5", region: str = "global") -> None:
        # The fake checks every body against Nomad's field map; without it, it cannot stand in.
        nomad_fields.require()
        self.version = version
        self.region = region
        self.token: str | None = None
        self.scenario_for: Callable[[dict[str, Any]], Scenario | None] | None = None
        self.scenarios: dict[str, Scenario] = {}
        self.default_scenario = Scenario()
        self.max_block = 0.5
        self.clock: Callable[[], int] = time.time_ns
        self.requests: list[Request] = []
        self.dropped: list[str] = []
        self._lock = threading.RLock()  # a scenario_for callback may read the fake back
        self._changed = threading.Condition(self._lock)
        self._index = 10
        self._last_ns = 0
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._variables: dict[tuple[str, str], dict[str, Any]] = {}
        self._injections: list[_Injection] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.node_id = str(uuid.UUID(int=0x5EED))

    # ---------------------------------------------------------------- server

    def start(self) -> FakeNomad:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def _serve(self) -> None:
                fake._serve(self)

            do_GET = do_PUT = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeNomad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        assert self._server is not None, "FakeNomad is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---------------------------------------------------------------- test controls

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 500,
        body: str = "rpc error: No cluster leader",
        *,
        after_effect: bool = False,
        disconnect: bool = False,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests matching `method` and `path_regex` (searched in the
        path) with `status` and a plain-text `body`. With `after_effect` the request takes effect
        first (the reply is lost, not the request); with `disconnect` the connection is closed
        without any reply."""
        with self._lock:
            self._injections.append(
                _Injection(
                    method.upper(),
                    re.compile(path_regex),
                    status,
                    body,
                    after_effect,
                    disconnect,
                    times,
                )
            )

    def advance(self, job_id: str, *, namespace: str = "default", phases: int = 1) -> None:
        """Move the job's playback on by `phases` phases (as that many allocation listings)."""
        with self._lock:
            job = self._job_or_fail(namespace, job_id)
            for _ in range(phases):
                self._advance(job)

    def settle(self, job_id: str, *, namespace: str = "default", limit: int = 100) -> int:
        """Advance until the playback has ended or waits on something outside it (a stop of a
        hanging job, a missing variable, a node for a replacement); the phases it took."""
        with self._lock:
            job = self._job_or_fail(namespace, job_id)
            for n in range(limit):
                if not self._advance(job):
                    return n
        raise AssertionError(f"job {job_id} still changing after {limit} phases")

    def collect(self, alloc_id: str) -> None:
        """Garbage-collect an allocation on its client: its logs are gone (404)."""
        with self._lock:
            self._alloc_or_fail(alloc_id).collected = True

    def job(self, job_id: str, *, namespace: str = "default") -> dict[str, Any]:
        """The job as `GET /v1/job/<id>` returns it."""
        with self._lock:
            return self._job_view(self._job_or_fail(namespace, job_id))

    def allocations(self, job_id: str, *, namespace: str = "default") -> list[dict[str, Any]]:
        """The allocations, without advancing the playback."""
        with self._lock:
            job = self._job_or_fail(namespace, job_id)
            return copy.deepcopy([a.stub for a in job.allocs])

    def variable(self, path: str, *, namespace: str = "default") -> dict[str, str] | None:
        with self._lock:
            var = self._variables.get((namespace, path))
            return dict(var["Items"]) if var else None

    def put_variable(self, path: str, items: dict[str, str], *, namespace: str = "default") -> None:
        with self._lock:
            self._store_variable(namespace, path, items)

    def requests_to(self, method: str, path_regex: str) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == method.upper() and re.search(path_regex, r.path)
            ]

    # ---------------------------------------------------------------- HTTP plumbing

    _ROUTES: tuple[tuple[str, str], ...] = (
        (r"/v1/agent/self", "agent_self"),
        (r"/v1/agent/members", "agent_members"),
        (r"/v1/vars", "vars"),
        (r"/v1/var/(?P<path>.+)", "var"),
        (r"/v1/jobs", "jobs"),
        (r"/v1/job/(?P<job_id>[^/]+)/allocations", "job_allocations"),
        (r"/v1/job/(?P<job_id>[^/]+)/evaluations", "job_evaluations"),
        (r"/v1/job/(?P<job_id>[^/]+)", "job"),
        (r"/v1/allocation/(?P<alloc_id>[^/]+)", "allocation"),
        (r"/v1/evaluation/(?P<eval_id>[^/]+)", "evaluation"),
        (r"/v1/client/fs/logs/(?P<alloc_id>[^/]+)", "logs"),
    )

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parsed: Any = None
        bad_json: str | None = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                bad_json = f"invalid character in JSON body: {exc}"
        request = Request(handler.command, path, query, parsed, dict(handler.headers.items()), raw)
        status, payload, headers, disconnect = self._handle(request, bad_json)
        if disconnect:
            handler.close_connection = True
            return
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload).encode()
            content_type = "application/json"
        elif isinstance(payload, bytes):
            data = payload
            content_type = "text/plain; charset=utf-8"
        else:
            data = str(payload).encode()
            content_type = "text/plain; charset=utf-8"
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(
        self, request: Request, bad_json: str | None
    ) -> tuple[int, Any, dict[str, str], bool]:
        with self._lock:
            self.requests.append(request)
            injection = self._take_injection(request)
            if injection is not None and not injection.after_effect:
                return self._injected(injection)
            try:
                status, payload = self._dispatch(request, bad_json)
            except _HTTPError as exc:
                status, payload = exc.status, exc.text
            if injection is not None:
                return self._injected(injection)
            headers = {
                "X-Nomad-Index": str(self._index),
                "X-Nomad-KnownLeader": "true",
                "X-Nomad-LastContact": "0",
            }
            return status, payload, headers, False

    def _injected(self, injection: _Injection) -> tuple[int, Any, dict[str, str], bool]:
        return injection.status, injection.body, {}, injection.disconnect

    def _take_injection(self, request: Request) -> _Injection | None:
        for injection in self._injections:
            if injection.method == request.method and injection.pattern.search(request.path):
                injection.times -= 1
                if injection.times <= 0:
                    self._injections.remove(injection)
                return injection
        return None

    def _dispatch(self, request: Request, bad_json: str | None) -> tuple[int, Any]:
        if self.token is not None:
            sent = request.headers.get("X-Nomad-Token") or ""
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.token not in (sent, bearer):
                raise _HTTPError(403, "Permission denied")
        for pattern, name in self._ROUTES:
            match = re.fullmatch(pattern, request.path)
            if match:
                handler = getattr(self, f"_{name}_{request.method.lower()}", None)
                if handler is None:
                    raise _HTTPError(405, "Invalid method")
                if bad_json is not None:
                    raise _HTTPError(400, bad_json)
                self._authorize(request, name, match.groupdict())
                return handler(request, **match.groupdict())
        raise _HTTPError(
            404, f"Invalid URL: {request.method} {request.path} is not served by FakeNomad"
        )

    # ---------------------------------------------------------------- state helpers

    def _now(self) -> int:
        self._last_ns = max(self.clock(), self._last_ns + 1)
        return self._last_ns

    def _bump(self) -> int:
        self._index += 1
        self._changed.notify_all()
        return self._index

    def _namespace(self, request: Request) -> str:
        return request.query.get("namespace") or "default"

    def _job_or_fail(self, namespace: str, job_id: str) -> _Job:
        job = self._jobs.get((namespace, job_id))
        if job is None:
            raise KeyError(f"no job {job_id!r} in namespace {namespace!r}")
        return job

    def _find_alloc(self, alloc_id: str) -> tuple[_Job, _Alloc] | None:
        for job in self._jobs.values():
            for alloc in job.allocs:
                if alloc.stub["ID"] == alloc_id:
                    return job, alloc
        return None

    def _alloc_or_fail(self, alloc_id: str) -> _Alloc:
        found = self._find_alloc(alloc_id)
        if found is None:
            raise KeyError(f"no allocation {alloc_id!r}")
        return found[1]

    # ---------------------------------------------------------------- agent

    def _agent_self_get(self, request: Request) -> tuple[int, Any]:
        member = self._member()
        return 200, {
            "config": {
                "Version": {
                    "Version": self.version,
                    "VersionPrerelease": "",
                    "VersionMetadata": "",
                    "Revision": "fake",
                },
                "Region": self.region,
                "Datacenter": "dc1",
                "NodeName": "fake-node-1",
            },
            "member": member,
            "stats": {},
        }

    def _agent_members_get(self, request: Request) -> tuple[int, Any]:
        return 200, {
            "ServerName": "fake-node-1",
            "ServerRegion": self.region,
            "ServerDC": "dc1",
            "Members": [self._member()],
        }

    def _member(self) -> dict[str, Any]:
        return {
            "Name": f"fake-node-1.{self.region}",
            "Addr": "127.0.0.1",
            "Port": 4648,
            "Status": "alive",
            "Tags": {"build": self.version, "region": self.region, "dc": "dc1", "role": "nomad"},
        }

    # ---------------------------------------------------------------- variables

    def _var_view(self, var: dict[str, Any], *, items: bool = True) -> dict[str, Any]:
        view = {k: v for k, v in var.items() if k != "Items"}
        if items:
            view["Items"] = dict(var["Items"])
        return view

    def _store_variable(self, namespace: str, path: str, items: dict[str, str]) -> dict[str, Any]:
        index, now = self._bump(), self._now()
        old = self._variables.get((namespace, path))
        var = {
            "Namespace": namespace,
            "Path": path,
            "CreateIndex": old["CreateIndex"] if old else index,
            "ModifyIndex": index,
            "CreateTime": old["CreateTime"] if old else now,
            "ModifyTime": now,
            "Items": dict(items),
        }
        self._variables[(namespace, path)] = var
        return var

    def _check_cas(self, request: Request, namespace: str, path: str) -> None:
        if "cas" not in request.query:
            return
        try:
            cas = int(request.query["cas"])
        except ValueError:
            raise _HTTPError(400, f"failed to parse cas: {request.query['cas']!r}") from None
        existing = self._variables.get((namespace, path))
        current = existing["ModifyIndex"] if existing else 0
        if cas != current:
            # Nomad answers a check-and-set conflict with the variable that is in the way,
            # decrypted, items and all, when the caller may read it (ours always may).
            conflict = (
                self._var_view(existing)
                if existing
                else {"Namespace": namespace, "Path": path, "ModifyIndex": 0}
            )
            raise _VariableConflict(conflict)

    # ---------------------------------------------------------------- files as the task's user

    # The user each image runs as, "uid" or "uid:gid" as its USER resolves on the client; an
    # image not named runs as root. Assign a new mapping rather than change this one.
    image_users: Mapping[str, str] = MappingProxyType({})

    def task_files(self, job: dict[str, Any], task_name: str) -> list[TaskFile]:
        """The files the task's templates render, owned as the Nomad client writes them (its own
        user, root, unless the template names a uid or gid; 0644 unless it names perms), and
        whether the image's user may read each one."""
        task = next(t for t in job["TaskGroups"][0]["Tasks"] if t["Name"] == task_name)
        uid, _, gid = self.image_users.get(task["Config"].get("image", ""), "0").partition(":")
        user = (int(uid), int(gid or uid))
        files = []
        for template in task.get("Templates") or []:
            owner = (_id_or_root(template.get("Uid")), _id_or_root(template.get("Gid")))
            mode = int(template.get("Perms") or "0644", 8)
            files.append(
                TaskFile(
                    path=template["DestPath"],
                    content=self._render(job["Namespace"], template.get("EmbeddedTmpl") or ""),
                    owner=owner,
                    mode=mode,
                    readable=_may_read(user, owner, mode),
                )
            )
        return files

    def _render(self, namespace: str, body: str) -> str:
        """A `with nomadVar` template of field reads and `index`es, as consul-template renders
        it (a missing item is an empty string here; the task fails before it starts anyway)."""
        paths = _NOMAD_VAR.findall(body)
        var = self._variables.get((namespace, paths[0])) if paths else None
        items = var["Items"] if var else {}
        body = re.sub(r"\{\{-?\s*(with nomadVar \"[^\"]*\"|end)\s*-?\}\}", "", body)
        body = re.sub(r'\{\{\s*index \. "([^"]+)"\s*\}\}', lambda m: items.get(m[1], ""), body)
        return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: items.get(m[1], ""), body)

    def run_main(self, job: dict[str, Any], command: str) -> Scenario:
        """Run the main task's own program under bash here, with `command` as the step's, in a
        task directory holding its rendered files: each readable or not as `task_files` says
        (root runs it as nobody, so that an unreadable file really is). The scenario that
        plays what it printed and how it exited; for a `scenario_for`."""
        task = next(t for t in job["TaskGroups"][0]["Tasks"] if _hook(t) is None)
        config = task["Config"]
        assert config.get("entrypoint") == ["bash"], "run_main runs a bash -c program"
        with tempfile.TemporaryDirectory(prefix="fakenomad-task-") as root:
            for file in self.task_files(job, task["Name"]):
                target = os.path.join(root, file.path)
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                with open(target, "w") as handle:
                    handle.write(file.content)
                os.chmod(target, 0o444 if file.readable else 0)
            os.makedirs(os.path.join(root, "alloc", "data"))
            for folder in (root, os.path.join(root, "alloc"), os.path.join(root, "alloc", "data")):
                os.chmod(folder, 0o777)  # noqa: S103 (nobody writes main.exit there)
            program = (
                config["args"][1]
                .replace("/secrets/", f"{root}/secrets/")
                .replace("/alloc/data", f"{root}/alloc/data")
            )
            nobody = {"user": 65534, "group": 65534} if os.geteuid() == 0 else {}
            done = subprocess.run(
                ["bash", "-c", program, "bedrock-step", command],
                capture_output=True,
                text=True,
                cwd=root,
                env={"PATH": os.environ.get("PATH", ""), **(task.get("Env") or {})},
                timeout=60,
                **nobody,
            )
        if done.returncode == 0:
            return Scenario("success", stdout=done.stdout, stderr=done.stderr)
        return Scenario(
            "failure", exit_code=done.returncode, stdout=done.stdout, stderr=done.stderr
        )

    # ---------------------------------------------------------------- ACL policy

    # The token's policy, as the HCL a platform team applies with `nomad acl policy apply`;
    # None: the token may do everything, as a management token or a cluster without ACLs.
    # Namespace capabilities and variable path rules are enforced as Nomad's acl package does.
    acl_policy: str | None = None

    _JOB_CAPABILITIES: dict[tuple[str, str], tuple[str, ...]] = {
        ("jobs", "GET"): ("list-jobs",),
        ("jobs", "POST"): ("submit-job",),
        ("job", "POST"): ("submit-job",),
        ("job", "GET"): ("read-job",),
        ("job", "DELETE"): ("submit-job", "deregister-job", "purge-job"),
        ("job_allocations", "GET"): ("read-job",),
        ("job_evaluations", "GET"): ("read-job",),
        ("allocation", "GET"): ("read-job",),
        ("evaluation", "GET"): ("read-job",),
        ("logs", "GET"): ("read-logs",),
    }
    _VARIABLE_CAPABILITY = {"GET": "read", "PUT": "write", "DELETE": "destroy"}

    def _policy(self) -> dict[str, Any] | None:
        if self.acl_policy is None:
            return None
        import hcl  # pyhcl: Nomad parses ACL policies as HCL 1

        return _blocks(hcl.loads(self.acl_policy).get("namespace"))

    def _namespace_rules(self, namespace: str) -> dict[str, Any]:
        """The rules of the namespace block that matches: by name, else the closest glob."""
        policy = self._policy() or {}
        if namespace in policy:
            return policy[namespace]
        globs = [g for g in policy if fnmatch.fnmatchcase(namespace, g)]
        if not globs:
            return {}
        return policy[min(globs, key=lambda g: len(namespace) - len(g.replace("*", "")))]

    def _may_use_variable(self, namespace: str, path: str, capability: str) -> bool:
        """`ACL.AllowVariableOperation`: the exact path's rule, else the closest matching glob;
        `read` brings `list` with it (acl/policy.go, expandVariablesCapabilities)."""
        if self.acl_policy is None:
            return True
        paths = _blocks((self._namespace_rules(namespace).get("variables") or {}).get("path"))
        if path in paths:
            rule = paths[path]
        else:
            globs = [g for g in paths if "*" in g and fnmatch.fnmatchcase(path, g)]
            if not globs:
                return False
            rule = paths[min(globs, key=lambda g: len(path) - len(g.replace("*", "")))]
        capabilities = set(rule.get("capabilities") or [])
        if "deny" in capabilities:
            return False
        if "read" in capabilities:
            capabilities.add("list")
        return capability in capabilities

    def _authorize(self, request: Request, route: str, params: dict[str, str]) -> None:
        """403 "Permission denied" for what the token's policy does not allow."""
        if self.acl_policy is None or route.startswith("agent_"):
            return
        namespace = self._namespace(request)
        if route == "var":
            if request.method == "PUT" and isinstance(request.json, dict):
                namespace = request.query.get("namespace") or request.json.get("Namespace") or ""
            wanted = self._VARIABLE_CAPABILITY[request.method]
            if not self._may_use_variable(namespace or "default", params["path"], wanted):
                raise _HTTPError(403, "Permission denied")
            return
        if route == "vars":
            # A listing needs some variables rule in the namespace; it is then filtered by path.
            if not (self._namespace_rules(namespace).get("variables") or {}).get("path"):
                raise _HTTPError(403, "Permission denied")
            return
        granted = set(self._namespace_rules(namespace).get("capabilities") or [])
        needed = self._JOB_CAPABILITIES.get((route, request.method), ())
        if route == "job" and request.query.get("purge", "").lower() == "true":
            needed = ("submit-job", "purge-job")
        if needed and not granted & set(needed):
            raise _HTTPError(403, "Permission denied")

    def _vars_get(self, request: Request) -> tuple[int, Any]:
        # The list holds metadata only: a variable's items are read one path at a time.
        namespace = self._namespace(request)
        prefix = request.query.get("prefix", "")
        return 200, [
            self._var_view(var, items=False)
            for (ns, path), var in sorted(self._variables.items())
            if namespace in ("*", ns)
            and path.startswith(prefix)
            and self._may_use_variable(ns, path, "list")
        ]

    def _var_get(self, request: Request, path: str) -> tuple[int, Any]:
        var = self._variables.get((self._namespace(request), path))
        if var is None:
            raise _HTTPError(404, "variable not found")
        return 200, self._var_view(var)

    def _var_put(self, request: Request, path: str) -> tuple[int, Any]:
        _check_variable_path(path)
        body = request.json
        if not isinstance(body, dict):
            raise _HTTPError(400, "json: cannot unmarshal into Go value of type structs.Variable")
        namespace = request.query.get("namespace") or body.get("Namespace") or "default"
        if body.get("Path") not in (None, "", path):
            raise _HTTPError(400, f"variable path {body['Path']!r} does not match URL {path!r}")
        items = body.get("Items")
        if not isinstance(items, dict) or not items:
            raise _HTTPError(400, "variable missing required Items object")
        for key, value in items.items():
            if not isinstance(value, str):
                raise _HTTPError(
                    400,
                    f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                    f"VariableDecrypted.Items of type string (key {key!r})",
                )
        try:
            self._check_cas(request, namespace, path)
        except _VariableConflict as conflict:
            return 409, conflict.variable
        return 200, self._var_view(self._store_variable(namespace, path, items))

    def _var_delete(self, request: Request, path: str) -> tuple[int, Any]:
        namespace = self._namespace(request)
        try:
            self._check_cas(request, namespace, path)
        except _VariableConflict as conflict:
            return 409, conflict.variable
        if self._variables.pop((namespace, path), None) is not None:
            self._bump()
        return 200, b""

    # ---------------------------------------------------------------- register

    def _jobs_post(self, request: Request) -> tuple[int, Any]:
        return self._register(request, url_id=None)

    def _job_post(self, request: Request, job_id: str) -> tuple[int, Any]:
        return self._register(request, url_id=job_id)

    def _field_version(self) -> str:
        wanted = f"v{self.version}"
        return wanted if wanted in nomad_fields.load_fields()["versions"] else "v2.0.5"

    def _register(self, request: Request, url_id: str | None) -> tuple[int, Any]:
        body = request.json
        if not isinstance(body, dict):
            raise _HTTPError(
                400, "json: cannot unmarshal body into Go value of type api.JobRegisterRequest"
            )
        decoded, findings = nomad_fields.decode(body, version=self._field_version())
        type_errors = [f for f in findings if f.kind == nomad_fields.TYPE]
        if type_errors:
            raise _HTTPError(400, type_errors[0].go_error)
        job = decoded.get("Job")
        if not job:
            raise _HTTPError(400, "Job must be specified")
        if job.get("ID") is None:
            raise _HTTPError(400, "Job ID hasn't been provided")
        if url_id is not None and job["ID"] != url_id:
            raise _HTTPError(400, "Job ID does not match name")
        self.dropped.extend(str(f) for f in findings)
        # The query parameter wins over the request's Namespace, which wins over Job.Namespace.
        namespace = (
            request.query.get("namespace")
            or decoded.get("Namespace")
            or job.get("Namespace")
            or "default"
        )
        job = self._canonicalize(job, namespace)
        errors = self._validate(job)
        if errors:
            raise _HTTPError(500, _multierror(errors))
        existing = self._jobs.get((namespace, job["ID"]))
        if decoded.get("EnforceIndex"):
            self._enforce_index(existing, decoded.get("JobModifyIndex") or 0)
        record = self._upsert(namespace, job, existing)
        evaluation = record.evals[-1]
        return 200, {
            "EvalID": evaluation["ID"],
            "EvalCreateIndex": evaluation["CreateIndex"],
            "JobModifyIndex": record.job_modify_index,
            "Warnings": "",
            "Index": record.job_modify_index,
            "LastContact": 0,
            "KnownLeader": False,
        }

    @staticmethod
    def _enforce_index(existing: _Job | None, index: int) -> None:
        prefix = "Enforcing job modify index"
        if index == 0 and existing is not None:
            raise _HTTPError(500, f"{prefix} 0: job already exists")
        if index > 0 and existing is None:
            raise _HTTPError(500, f"{prefix} {index}: job does not exist")
        if index > 0 and existing is not None and existing.job_modify_index != index:
            raise _HTTPError(
                500,
                f"{prefix} {index}: job exists with conflicting job modify index: "
                f"{existing.job_modify_index}",
            )

    def _canonicalize(self, job: dict[str, Any], namespace: str) -> dict[str, Any]:
        """The defaults `api.Job.Canonicalize` fills in before the server sees the job."""
        job = copy.deepcopy(job)
        job["Namespace"] = namespace
        job.setdefault("Name", job["ID"])
        job["Name"] = job["Name"] or job["ID"]
        job["Region"] = job.get("Region") or self.region
        job["Type"] = job.get("Type") or "service"
        if job.get("Priority") is None:
            job["Priority"] = 50
        if not job.get("Datacenters"):
            job["Datacenters"] = ["*"]
        job["TaskGroups"] = job.get("TaskGroups") or []
        restart_default = _RESTART_DEFAULTS.get(job["Type"], _RESTART_DEFAULTS["service"])
        resched_default = _RESCHEDULE_DEFAULTS.get(job["Type"])
        for group in job["TaskGroups"]:
            if group.get("Count") is None:
                group["Count"] = 1
            group["RestartPolicy"] = {**restart_default, **_present(group.get("RestartPolicy"))}
            if resched_default is not None:
                merged = {**resched_default, **_present(job.get("Reschedule"))}
                group["ReschedulePolicy"] = {**merged, **_present(group.get("ReschedulePolicy"))}
            group["EphemeralDisk"] = {
                "SizeMB": 300,
                "Sticky": False,
                "Migrate": False,
                **_present(group.get("EphemeralDisk")),
            }
            group["Tasks"] = group.get("Tasks") or []
            for task in group["Tasks"]:
                resources = _present(task.get("Resources"))
                if not resources.get("Cores"):
                    resources.setdefault("CPU", 100)
                resources.setdefault("MemoryMB", 300)
                for device in resources.get("Devices") or []:
                    if device is not None and device.get("Count") is None:
                        device["Count"] = 1
                task["Resources"] = resources
                if task.get("KillTimeout") is None:
                    task["KillTimeout"] = 5 * SECOND
                task["LogConfig"] = {
                    "MaxFiles": 10,
                    "MaxFileSizeMB": 10,
                    **_present(task.get("LogConfig")),
                }
                task["RestartPolicy"] = {
                    **group["RestartPolicy"],
                    **_present(task.get("RestartPolicy")),
                }
        return job

    def _validate(self, job: dict[str, Any]) -> list[str]:
        """The server's `Job.Validate`, for the rules a batch job from Bedrock can break."""
        errors: list[str] = []
        job_id = job["ID"]
        if not job_id:
            errors.append("Missing job ID")
        elif " " in job_id:
            errors.append("Job ID contains a space")
        elif "\x00" in job_id:
            errors.append("Job ID contains a null character")
        if job["Type"] not in _JOB_TYPES:
            errors.append(f"Invalid job type: {job['Type']!r}")
        if not 1 <= job["Priority"] <= 100:
            errors.append("Job priority must be between [1, 100]")
        if not job["TaskGroups"]:
            errors.append("Missing job task groups")
        seen: dict[str, int] = {}
        for i, group in enumerate(job["TaskGroups"]):
            name = group.get("Name") or ""
            if name in seen:
                errors.append(f"Job task group {i + 1} redefines '{name}' from group {seen[name]}")
            seen[name] = i + 1
            group_errors = self._validate_group(job, group)
            if group_errors:
                errors.append(f"Task group {name} validation failed: {_multierror(group_errors)}")
        return errors

    def _validate_group(self, job: dict[str, Any], group: dict[str, Any]) -> list[str]:
        errors: list[str] = []
        if not group.get("Name"):
            errors.append("Missing task group name")
        if group["Count"] < 0:
            errors.append("Task group count can't be negative")
        if not group["Tasks"]:
            errors.append("Missing tasks for task group")
        elif all(_hook(t) is not None for t in group["Tasks"]):
            errors.append(
                "Missing main task: every task has a Lifecycle hook; "
                "a group needs at least one task without one"
            )
        errors += _restart_errors(group["RestartPolicy"])
        errors += _reschedule_errors(group.get("ReschedulePolicy"))
        max_run = group.get("MaxRunDuration")
        if max_run is not None:
            if job["Type"] not in ("batch", "sysbatch"):
                errors.append(
                    f"max_run_duration is only valid for batch and sysbatch jobs, "
                    f"not {job['Type']!r}"
                )
            if max_run <= 0:
                errors.append(f"max_run_duration must be greater than zero (got {max_run})")
        seen: dict[str, int] = {}
        for i, task in enumerate(group["Tasks"]):
            name = task.get("Name") or ""
            if name in seen:
                errors.append(f"Task {i + 1} redefines '{name}' from task {seen[name]}")
            seen[name] = i + 1
            task_errors = self._validate_task(task)
            if task_errors:
                errors.append(f"Task {name} validation failed: {_multierror(task_errors)}")
        return errors

    def _validate_task(self, task: dict[str, Any]) -> list[str]:
        errors: list[str] = []
        if not task.get("Name"):
            errors.append("Missing task name")
        elif "/" in task["Name"]:
            errors.append("Task name cannot include slashes")
        if not task.get("Driver"):
            errors.append("Missing task driver")
        lifecycle = task.get("Lifecycle")
        if lifecycle and lifecycle.get("Hook") not in _HOOKS:
            errors.append(f"invalid hook: {lifecycle.get('Hook')}")
        if task["KillTimeout"] < 0:
            errors.append("KillTimeout must be a positive value")
        errors += _restart_errors(task["RestartPolicy"])
        errors += _resource_errors(task["Resources"])
        for i, template in enumerate(task.get("Templates") or []):
            problems = []
            if not template.get("SourcePath") and not template.get("EmbeddedTmpl"):
                problems.append("Must specify a source path or have an embedded template")
            if not template.get("DestPath"):
                problems.append("Must specify a destination for the template")
            mode = template.get("ChangeMode")
            if mode is not None and mode not in ("noop", "restart", "signal", "script"):
                problems.append(f"Invalid change mode ({mode})")
            if problems:
                errors.append(f"Template {i + 1} validation failed: {_multierror(problems)}")
        return errors

    def _scenario(self, job: dict[str, Any]) -> Scenario:
        if self.scenario_for is not None:
            chosen = self.scenario_for(copy.deepcopy(job))
            if chosen is not None:
                return chosen
        for prefix in sorted(self.scenarios, key=len, reverse=True):
            if job["ID"].startswith(prefix):
                return self.scenarios[prefix]
        return self.default_scenario

    def _upsert(self, namespace: str, job: dict[str, Any], existing: _Job | None) -> _Job:
        index, now = self._bump(), self._now()
        if existing is None:
            record = _Job(
                namespace=namespace,
                id=job["ID"],
                job=job,
                scenario=self._scenario(job),
                version=0,
                create_index=index,
                job_modify_index=index,
                modify_index=index,
                submit_time=now,
            )
            self._jobs[(namespace, job["ID"])] = record
            self._place(record, index)
            return record
        existing.job_modify_index = existing.modify_index = index
        existing.submit_time = now
        if existing.job == job and not existing.stop:
            # An unchanged batch job is not run again: the scheduler finds nothing to do.
            existing.evals.append(self._evaluation(existing, index, "job-register", "complete"))
            return existing
        existing.job, existing.stop = job, False
        existing.version += 1
        existing.scenario = self._scenario(job)
        for alloc in existing.allocs:
            self._desire_stop(alloc, "alloc not needed due to job update")
        self._place(existing, index)
        return existing

    def _place(self, record: _Job, index: int) -> None:
        evaluation = self._evaluation(record, index, "job-register", "pending")
        record.evals.append(evaluation)
        record.playbacks.append(self._play_placement(record, evaluation, record.version))

    def _evaluation(self, record: _Job, index: int, trigger: str, status: str) -> dict[str, Any]:
        now = self._now()
        evaluation = _zero("Evaluation")
        evaluation.update(
            ID=str(uuid.uuid4()),
            Namespace=record.namespace,
            Priority=record.job["Priority"],
            Type=record.job["Type"],
            TriggeredBy=trigger,
            JobID=record.id,
            JobModifyIndex=record.job_modify_index,
            Status=status,
            CreateIndex=index,
            ModifyIndex=index,
            CreateTime=now,
            ModifyTime=now,
        )
        return evaluation

    # ---------------------------------------------------------------- job reads

    def _job_status(self, record: _Job) -> str:
        for alloc in record.allocs:
            stub = alloc.stub
            if stub["DesiredStatus"] == "run" and stub["ClientStatus"] in ("pending", "running"):
                return "running"
        if any(e["Status"] in ("pending", "blocked") for e in record.evals):
            return "pending"
        return "dead"

    def _job_view(self, record: _Job) -> dict[str, Any]:
        view = copy.deepcopy(record.job)
        view.update(
            Stop=record.stop,
            Status=self._job_status(record),
            StatusDescription="",
            Version=record.version,
            Stable=False,
            CreateIndex=record.create_index,
            ModifyIndex=record.modify_index,
            JobModifyIndex=record.job_modify_index,
            SubmitTime=record.submit_time,
        )
        return view

    def _lookup(self, request: Request, job_id: str) -> _Job:
        record = self._jobs.get((self._namespace(request), job_id))
        if record is None:
            raise _HTTPError(404, "job not found")
        return record

    def _job_get(self, request: Request, job_id: str) -> tuple[int, Any]:
        return 200, self._job_view(self._lookup(request, job_id))

    def _jobs_get(self, request: Request) -> tuple[int, Any]:
        namespace = self._namespace(request)
        prefix = request.query.get("prefix", "")
        with_meta = request.query.get("meta", "").lower() == "true"
        stubs = []
        for (ns, job_id), record in sorted(self._jobs.items()):
            if namespace not in ("*", ns) or not job_id.startswith(prefix):
                continue
            stub = _zero("JobListStub")
            stub.update(
                ID=record.id,
                Name=record.job["Name"],
                Namespace=ns,
                Datacenters=record.job["Datacenters"],
                Type=record.job["Type"],
                Priority=record.job["Priority"],
                Stop=record.stop,
                Status=self._job_status(record),
                JobSummary=self._summary(record),
                CreateIndex=record.create_index,
                ModifyIndex=record.modify_index,
                JobModifyIndex=record.job_modify_index,
                SubmitTime=record.submit_time,
                Meta=record.job.get("Meta") if with_meta else None,
            )
            stubs.append(stub)
        return 200, stubs

    def _summary(self, record: _Job) -> dict[str, Any]:
        counts = {
            g["Name"]: dict.fromkeys(
                ("Queued", "Complete", "Failed", "Running", "Starting", "Lost", "Unknown"), 0
            )
            for g in record.job["TaskGroups"]
        }
        names = {"pending": "Starting", "running": "Running", "complete": "Complete"}
        names |= {"failed": "Failed", "lost": "Lost", "unknown": "Unknown"}
        for alloc in record.allocs:
            group = counts.get(alloc.stub["TaskGroup"])
            if group is not None:
                group[names[alloc.stub["ClientStatus"]]] += 1
        return {
            "JobID": record.id,
            "Namespace": record.namespace,
            "Summary": counts,
            "Children": {"Pending": 0, "Running": 0, "Dead": 0},
            "CreateIndex": record.create_index,
            "ModifyIndex": record.modify_index,
        }

    def _job_allocations_get(self, request: Request, job_id: str) -> tuple[int, Any]:
        record = self._jobs.get((self._namespace(request), job_id))
        if record is not None:
            self._advance(record)
        if "index" in request.query:
            try:
                wanted = int(request.query["index"])
            except ValueError:
                raise _HTTPError(400, "Invalid index value") from None
            deadline = time.monotonic() + min(
                _parse_wait(request.query.get("wait")), self.max_block
            )
            while self._index <= wanted:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        record = self._jobs.get((self._namespace(request), job_id))
        return 200, copy.deepcopy([a.stub for a in record.allocs] if record else [])

    def _job_evaluations_get(self, request: Request, job_id: str) -> tuple[int, Any]:
        record = self._jobs.get((self._namespace(request), job_id))
        return 200, copy.deepcopy(record.evals if record else [])

    def _allocation_get(self, request: Request, alloc_id: str) -> tuple[int, Any]:
        found = self._find_alloc(alloc_id)
        if found is None:
            raise _HTTPError(404, "alloc not found")
        record, alloc = found
        view = copy.deepcopy(alloc.stub)
        view["Job"] = self._job_view(record)
        return 200, view

    def _evaluation_get(self, request: Request, eval_id: str) -> tuple[int, Any]:
        for record in self._jobs.values():
            for evaluation in record.evals:
                if evaluation["ID"] == eval_id:
                    return 200, copy.deepcopy(evaluation)
        raise _HTTPError(404, "eval not found")

    # ---------------------------------------------------------------- deregister

    def _job_delete(self, request: Request, job_id: str) -> tuple[int, Any]:
        namespace = self._namespace(request)
        record = self._jobs.get((namespace, job_id))
        purge = request.query.get("purge", "").lower() == "true"
        if record is None:
            return 200, {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0, "Index": 0}
        index = self._bump()
        record.stop = True
        record.version += 1
        record.job_modify_index = record.modify_index = index
        for evaluation in record.evals:
            if evaluation["Status"] in ("pending", "blocked"):
                evaluation.update(Status="canceled", ModifyIndex=index, ModifyTime=self._now())
        for alloc in record.allocs:
            self._desire_stop(alloc, "alloc not needed due to job update")
        evaluation = self._evaluation(record, index, "job-deregister", "complete")
        record.evals.append(evaluation)
        if purge:
            del self._jobs[(namespace, job_id)]
        return 200, {
            "EvalID": evaluation["ID"],
            "EvalCreateIndex": index,
            "JobModifyIndex": index,
            "Index": index,
            "LastContact": 0,
            "KnownLeader": False,
        }

    def _desire_stop(self, alloc: _Alloc, why: str) -> None:
        if alloc.stub["DesiredStatus"] == "run":
            alloc.stub.update(DesiredStatus="stop", DesiredDescription=why)
            alloc.stopping = True

    # ---------------------------------------------------------------- logs

    def _logs_get(self, request: Request, alloc_id: str) -> tuple[int, Any]:
        found = self._find_alloc(alloc_id)
        if found is None or found[1].collected:
            raise _HTTPError(404, f'unknown allocation "{alloc_id}"')
        alloc = found[1]
        task = request.query.get("task", "")
        kind = request.query.get("type", "")
        if not task:
            raise _HTTPError(400, "must include task name")
        if task not in alloc.stub["TaskStates"]:
            raise _HTTPError(400, f'unknown task name "{task}"')
        if kind not in ("stdout", "stderr"):
            raise _HTTPError(400, "must provide a valid type: stdout or stderr")
        try:
            offset = int(request.query.get("offset") or 0)
        except ValueError:
            raise _HTTPError(400, "invalid offset") from None
        data = bytes(alloc.logs.get((task, kind), b""))
        if request.query.get("origin", "start") == "end":
            start = max(0, len(data) - offset)
        else:
            start = min(offset, len(data))
        chunk = data[start:]
        if request.query.get("plain", "").lower() == "true":
            return 200, chunk
        if not chunk:
            return 200, b""
        frame = {
            "File": f"alloc/logs/{task}.{kind}.0",
            "Offset": len(data),
            "Data": base64.b64encode(chunk).decode(),
        }
        return 200, frame

    # ---------------------------------------------------------------- playback

    def _advance(self, record: _Job) -> bool:
        """One phase of every live playback of the job; whether anything changed."""
        before = json.dumps([a.stub for a in record.allocs] + record.evals, sort_keys=True)
        before_allocs = {a.stub["ID"]: json.dumps(a.stub, sort_keys=True) for a in record.allocs}
        progressed = False
        for playback in list(record.playbacks):
            try:
                progressed |= next(playback) is not _IDLE
            except StopIteration:
                record.playbacks.remove(playback)
                progressed = True
        after = json.dumps([a.stub for a in record.allocs] + record.evals, sort_keys=True)
        if after == before:
            return progressed
        index, now = self._bump(), self._now()
        record.modify_index = index
        for alloc in record.allocs:
            if before_allocs.get(alloc.stub["ID"]) != json.dumps(alloc.stub, sort_keys=True):
                alloc.stub.update(ModifyIndex=index, ModifyTime=now)
        return True

    def _play_placement(self, record: _Job, evaluation: dict[str, Any], version: int) -> _Playback:
        """The scheduler's pass over a new evaluation: one phase, with nothing to wait for."""
        yield from ()  # a generator like the other playbacks; all of it runs in its first phase
        index = self._index + 1
        if record.stop or record.version != version or evaluation["Status"] != "pending":
            return  # stopped or replaced before the scheduler got to it
        groups = record.job["TaskGroups"]
        if record.scenario.kind == "unplaceable":
            failed = {g["Name"]: self._failed_metric(record.scenario) for g in groups}
            blocked = self._evaluation(record, index, "queued-allocs", "blocked")
            blocked.update(PreviousEval=evaluation["ID"], FailedTGAllocs=failed)
            evaluation.update(
                Status="complete",
                ModifyIndex=index,
                FailedTGAllocs=copy.deepcopy(failed),
                BlockedEval=blocked["ID"],
            )
            record.evals.append(blocked)
            return
        evaluation.update(Status="complete", ModifyIndex=index, QueuedAllocations={})
        for group in groups:
            for n in range(group["Count"]):
                alloc = self._new_alloc(record, group, evaluation["ID"], n, index)
                record.playbacks.append(self._play_alloc(record, group, alloc))

    @staticmethod
    def _failed_metric(scenario: Scenario) -> dict[str, Any]:
        metric = _zero("AllocationMetric")
        metric.update(
            NodesEvaluated=3,
            NodesInPool=3,
            NodesAvailable={"dc1": 3},
            NodesExhausted=3,
            DimensionExhausted={scenario.unplaceable_reason: 3},
            CoalescedFailures=0,
            NodePool="default",
        )
        return metric

    def _new_alloc(
        self, record: _Job, group: dict[str, Any], eval_id: str, n: int, index: int
    ) -> _Alloc:
        now = self._now()
        stub = _zero("AllocationListStub")
        stub.update(
            ID=str(uuid.uuid4()),
            EvalID=eval_id,
            Name=f"{record.id}.{group['Name']}[{n}]",
            Namespace=record.namespace,
            NodeID=self.node_id,
            NodeName="fake-node-1",
            JobID=record.id,
            JobType=record.job["Type"],
            JobVersion=record.version,
            TaskGroup=group["Name"],
            DesiredStatus="run",
            ClientStatus="pending",
            ClientDescription="No tasks have started",
            CreateIndex=index,
            ModifyIndex=index,
            CreateTime=now,
            ModifyTime=now,
            TaskStates={
                t["Name"]: {
                    "State": "pending",
                    "Failed": False,
                    "Restarts": 0,
                    "LastRestart": ZERO_TIME,
                    "StartedAt": ZERO_TIME,
                    "FinishedAt": ZERO_TIME,
                    "Events": [self._event("Received", DisplayMessage="Task received by client")],
                }
                for t in group["Tasks"]
            },
        )
        alloc = _Alloc(stub)
        record.allocs.append(alloc)
        return alloc

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = _zero("TaskEvent")
        event.update(Type=kind, Time=self._now(), Details={})
        event.update(fields)
        return event

    def _emit(self, alloc: _Alloc, task: str, event: dict[str, Any]) -> None:
        events = alloc.stub["TaskStates"][task]["Events"]
        events.append(event)
        del events[:-MAX_EVENTS]

    def _refresh(self, alloc: _Alloc) -> None:
        """`ClientStatus` by Nomad's rule: a failed task makes the allocation failed at once."""
        if alloc.status_override is not None:
            alloc.stub["ClientStatus"] = alloc.status_override
            return
        states = alloc.stub["TaskStates"].values()
        if any(s["State"] == "dead" and s["Failed"] for s in states):
            status, why = "failed", "Failed tasks"
        elif any(s["State"] == "running" for s in states):
            status, why = "running", "Tasks are running"
        elif any(s["State"] == "pending" for s in states):
            status, why = "pending", "No tasks have started"
        else:
            status, why = "complete", "All tasks have completed"
        alloc.stub.update(ClientStatus=status, ClientDescription=why)

    def _log(self, alloc: _Alloc, task: str, kind: str, text: str) -> None:
        if text:
            alloc.logs.setdefault((task, kind), bytearray()).extend(text.encode())

    def _start_problem(self, record: _Job, task: dict[str, Any]) -> list[dict[str, Any]] | str:
        """ "blocked" while a template waits on a missing variable; the failure events of a task
        that cannot start; [] when it starts."""
        for template in task.get("Templates") or []:
            body = template.get("EmbeddedTmpl") or ""
            for path in _NOMAD_VAR.findall(body):
                var = self._variables.get((record.namespace, path))
                if var is None:
                    return "blocked"
                if template.get("ErrMissingKey"):
                    for key in _TEMPLATE_KEY.findall(body):
                        if key not in var["Items"]:
                            message = (
                                f"Template failed: {template.get('DestPath')}: "
                                f'map has no entry for key "{key}"'
                            )
                            return [
                                self._event(
                                    "Killing",
                                    FailsTask=True,
                                    DisplayMessage=message,
                                    KillReason=message,
                                    Details={"fails_task": "true", "kill_reason": message},
                                )
                            ]
        if task.get("Driver") == "docker":
            allowed = nomad_fields.docker_config_keys(self._field_version())
            unknown = [k for k in task.get("Config") or {} if k not in allowed]
            if unknown:
                message = "failed to decode driver config: " + _multierror(
                    [
                        f'Unsupported argument: An argument named "{k}" is not expected here.'
                        for k in unknown
                    ]
                )
                return [
                    self._event(
                        "Failed Validation",
                        ValidationError=message,
                        DisplayMessage=message,
                        Details={"validation_error": message},
                    ),
                    self._not_restarting("Error was unrecoverable"),
                ]
        return []

    def _not_restarting(self, reason: str) -> dict[str, Any]:
        return self._event(
            "Not Restarting",
            FailsTask=True,
            RestartReason=reason,
            DisplayMessage=reason,
            Details={"fails_task": "true", "restart_reason": reason},
        )

    def _exit_code(self, scenario: Scenario, role: str, first: bool) -> int:
        failing = {
            "failure": ("main", 1),
            "oom": ("main", 137),
            "prestart_failure": ("prestart", 1),
            "poststop_failure": ("poststop", 1),
        }.get(scenario.kind)
        if failing is None or failing[0] != role or not (first or role == "main"):
            return 0
        if scenario.kind == "oom":
            return 137
        return failing[1] if scenario.exit_code is None else scenario.exit_code

    def _play_alloc(self, record: _Job, group: dict[str, Any], alloc: _Alloc) -> _Playback:
        tasks = group["Tasks"]
        prestart = [t for t in tasks if _hook(t) == "prestart"]
        main = [t for t in tasks if _hook(t) in (None, "poststart")]
        poststop = [t for t in tasks if _hook(t) == "poststop"]
        failed_task = None
        if prestart:
            failed_task = yield from self._stage(record, group, alloc, prestart, "prestart")
        if failed_task == "lost":
            return
        if failed_task is not None or alloc.stopping:
            for task in main:
                self._never_started(alloc, task["Name"], failed_task)
            self._refresh(alloc)
            yield
        else:
            failed_task = yield from self._stage(record, group, alloc, main, "main")
            if failed_task in ("lost", "max_run_duration"):
                return
        if poststop:
            yield from self._stage(record, group, alloc, poststop, "poststop")

    def _never_started(self, alloc: _Alloc, name: str, failed_sibling: str | None) -> None:
        state = alloc.stub["TaskStates"][name]
        if state["State"] == "dead":
            return
        if failed_sibling:
            message = f"Task's sibling {failed_sibling!r} failed"
            self._emit(
                alloc,
                name,
                self._event(
                    "Sibling Task Failed",
                    FailedSibling=failed_sibling,
                    DisplayMessage=message,
                    Details={"failed_sibling": failed_sibling},
                ),
            )
        else:
            self._emit(
                alloc, name, self._event("Killed", DisplayMessage="Task successfully killed")
            )
        state.update(State="dead", FinishedAt=_rfc3339(self._now()))

    def _stage(
        self,
        record: _Job,
        group: dict[str, Any],
        alloc: _Alloc,
        tasks: list[dict[str, Any]],
        role: str,
    ) -> _Playback:
        """Run one lifecycle stage; returns the name of a failed task, "lost",
        "max_run_duration", or None."""
        scenario = record.scenario
        stoppable = role != "poststop"  # a job stop does not kill poststop tasks
        names = [t["Name"] for t in tasks]
        states = alloc.stub["TaskStates"]
        # Templates block the start while their variable is missing.
        while True:
            if stoppable and alloc.stopping:
                for name in names:
                    self._never_started(alloc, name, None)
                self._refresh(alloc)
                return None
            problems = {t["Name"]: self._start_problem(record, t) for t in tasks}
            blocked = [n for n, p in problems.items() if p == "blocked"]
            if not blocked:
                break
            for name in blocked:
                events = states[name]["Events"]
                if not any(e["Type"] == "Template" for e in events):
                    path = next(
                        p
                        for t in tasks
                        if t["Name"] == name
                        for tmpl in t.get("Templates") or []
                        for p in _NOMAD_VAR.findall(tmpl.get("EmbeddedTmpl") or "")
                        if (record.namespace, p) not in self._variables
                    )
                    message = f"Missing: nomad.var.block({path}@{record.namespace}.{self.region})"
                    self._emit(alloc, name, self._event("Template", DisplayMessage=message))
            yield _IDLE
        # Start.
        failed_task: str | None = None
        now = _rfc3339(self._now())
        for task in tasks:
            name = task["Name"]
            problem = problems[name]
            self._emit(
                alloc, name, self._event("Task Setup", DisplayMessage="Building Task Directory")
            )
            if problem:
                for event in problem:
                    self._emit(alloc, name, event)
                states[name].update(State="dead", Failed=True, FinishedAt=now)
                failed_task = failed_task or name
                continue
            if task.get("Driver") == "docker":
                image = (task.get("Config") or {}).get("image", "")
                self._emit(
                    alloc,
                    name,
                    self._event(
                        "Driver",
                        DisplayMessage=f"Downloading image {image}",
                        DriverMessage=f"Downloading image {image}",
                    ),
                )
            self._emit(alloc, name, self._event("Started", DisplayMessage="Task started by client"))
            states[name].update(State="running", StartedAt=now)
        running = [t for t in tasks if states[t["Name"]]["State"] == "running"]
        if not running:
            self._refresh(alloc)
            yield
            return failed_task
        polls = scenario.main_polls if role == "main" else 1
        chunks = {
            (t["Name"], kind): _chunks(self._task_log(scenario, t["Name"], role, kind), polls)
            for t in running
            for kind in ("stdout", "stderr")
        }
        for poll in range(polls):
            for (name, kind), parts in chunks.items():
                self._log(alloc, name, kind, parts[poll])
            self._refresh(alloc)
            yield
            if stoppable and alloc.stopping:
                yield from self._kill(alloc, running)
                yield
                return failed_task
        if role == "main" and scenario.kind == "lost":
            yield from self._lose(record, group, alloc)
            return "lost"
        if role == "main" and scenario.kind == "max_run_duration":
            yield from self._timeout(alloc, running, group)
            return "max_run_duration"
        while role == "main" and scenario.kind == "hang":
            if alloc.stopping:
                yield from self._kill(alloc, running)
                yield
                return failed_task
            yield _IDLE
        # Exit.
        now = _rfc3339(self._now())
        for i, task in enumerate(running):
            name = task["Name"]
            code = self._exit_code(scenario, role, first=(i == 0))
            oom = scenario.kind == "oom" and role == "main"
            details = {"exit_code": str(code), "signal": "0", "oom_killed": str(oom).lower()}
            message = f"Exit Code: {code}"
            if oom:
                details["exit_message"] = "OOM Killed"
                message += ', Exit Message: "OOM Killed"'
            self._emit(
                alloc,
                name,
                self._event("Terminated", ExitCode=code, Details=details, DisplayMessage=message),
            )
            states[name].update(State="dead", FinishedAt=now)
            if code != 0:
                policy = task["RestartPolicy"]
                attempts = policy["Attempts"]
                reason = (
                    "Policy allows no restarts"
                    if attempts == 0
                    else f"Exceeded allowed attempts {attempts} in interval "
                    f'{go_duration(policy["Interval"])} and mode is "fail"'
                )
                self._emit(alloc, name, self._not_restarting(reason))
                states[name].update(Failed=True, Restarts=attempts)
                failed_task = failed_task or name
        self._refresh(alloc)
        yield
        return failed_task

    def _task_log(self, scenario: Scenario, name: str, role: str, kind: str) -> str:
        if name in scenario.task_logs:
            return scenario.task_logs[name].get(kind, "")
        if role == "main":
            return scenario.stdout if kind == "stdout" else scenario.stderr
        return ""

    def _kill(self, alloc: _Alloc, running: list[dict[str, Any]], reason: str = "") -> _Playback:
        """ "Killing" for a phase, then "Killed": dead, not failed. The caller yields after."""
        for task in running:
            timeout = task["KillTimeout"]
            message = (
                reason or f"Sent interrupt. Waiting {go_duration(timeout)} before force killing"
            )
            self._emit(
                alloc,
                task["Name"],
                self._event(
                    "Killing",
                    KillTimeout=timeout,
                    KillReason=reason,
                    DisplayMessage=message,
                    Details={"kill_timeout": go_duration(timeout)},
                ),
            )
        self._refresh(alloc)
        yield
        now = _rfc3339(self._now())
        for task in running:
            self._emit(
                alloc,
                task["Name"],
                self._event("Killed", DisplayMessage="Task successfully killed"),
            )
            alloc.stub["TaskStates"][task["Name"]].update(State="dead", FinishedAt=now)
        self._refresh(alloc)

    def _timeout(
        self, alloc: _Alloc, running: list[dict[str, Any]], group: dict[str, Any]
    ) -> _Playback:
        reason = "allocation exceeded max_run_duration"
        yield from self._kill(alloc, running, reason)
        # Poststop tasks are not started after a max_run_duration timeout.
        for task in group["Tasks"]:
            self._never_started(alloc, task["Name"], None)
        alloc.status_override = "complete"
        alloc.stub.update(ClientStatus="complete", ClientDescription=reason)
        yield

    def _lose(self, record: _Job, group: dict[str, Any], alloc: _Alloc) -> _Playback:
        index = self._index + 1
        alloc.status_override = "lost"
        alloc.stub.update(
            ClientStatus="lost",
            ClientDescription="",
            DesiredStatus="stop",
            DesiredDescription="alloc is lost since its node is down",
        )
        evaluation = self._evaluation(record, index, "node-update", "complete")
        record.evals.append(evaluation)
        n = int(alloc.stub["Name"].rsplit("[", 1)[1].rstrip("]"))
        replacement = self._new_alloc(record, group, evaluation["ID"], n, index)
        alloc.stub["NextAllocation"] = replacement.stub["ID"]
        record.playbacks.append(self._play_stuck(alloc=replacement))
        yield

    def _play_stuck(self, *, alloc: _Alloc) -> _Playback:
        """A replacement allocation that waits for a node; stopped with the job."""
        while not alloc.stopping:
            yield _IDLE
        for name in alloc.stub["TaskStates"]:
            self._never_started(alloc, name, None)
        self._refresh(alloc)
        yield


@dataclass(frozen=True)
class TaskFile:
    """A file a template renders into a task's directory, and whether its user may read it."""

    path: str  # DestPath, relative to the task directory
    content: str
    owner: tuple[int, int]  # uid, gid
    mode: int
    readable: bool


def _id_or_root(value: int | None) -> int:
    # template.go: a uid or gid that is unset or negative leaves the file the agent's (root's).
    return value if value is not None and value >= 0 else 0


def _may_read(user: tuple[int, int], owner: tuple[int, int], mode: int) -> bool:
    """Unix permission bits, for a container user with Docker's default capabilities (root's
    CAP_DAC_OVERRIDE reads anything)."""
    if user[0] == 0:
        return True
    if user[0] == owner[0]:
        return bool(mode & 0o400)
    if user[1] == owner[1]:
        return bool(mode & 0o040)
    return bool(mode & 0o004)


def _blocks(value: dict[str, Any] | list[dict[str, Any]] | None) -> dict[str, Any]:
    """Labelled HCL blocks by label: pyhcl gives a list when a block type repeats."""
    if isinstance(value, list):
        return {label: body for block in value for label, body in block.items()}
    return value or {}


# ---------------------------------------------------------------- variable paths

# nomad/structs/variables.go: a variable path Nomad stores (a job's is nomad/jobs/<job id>).
_VARIABLE_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")


def _check_variable_path(path: str) -> None:
    """`VariableDecrypted.Validate`, answered 400 by the agent as Nomad does."""
    if not _VARIABLE_PATH.match(path):
        raise _HTTPError(400, f"invalid path {json.dumps(path)}")


class _VariableConflict(Exception):
    def __init__(self, variable: dict[str, Any]) -> None:
        super().__init__("cas conflict")
        self.variable = variable


def _present(value: dict[str, Any] | None) -> dict[str, Any]:
    """The keys that were given a value (Go's nil pointers fall back to the defaults)."""
    return {k: v for k, v in (value or {}).items() if v is not None}


def _chunks(text: str, parts: int) -> list[str]:
    lines = text.splitlines(keepends=True)
    size = -(-len(lines) // parts) if lines else 0
    chunks = ["".join(lines[i * size : (i + 1) * size]) for i in range(parts)]
    return chunks


def _restart_errors(policy: dict[str, Any]) -> list[str]:
    """`RestartPolicy.Validate`."""
    errors = []
    mode, attempts = policy.get("Mode"), policy.get("Attempts") or 0
    interval, delay = policy.get("Interval") or 0, policy.get("Delay") or 0
    if mode not in ("delay", "fail"):
        errors.append(f"Unsupported restart mode: {mode!r}")
    if attempts == 0 and mode != "fail":
        errors.append(f"Restart policy {mode!r} with {attempts} attempts is ambiguous")
    if interval < 5 * SECOND:
        errors.append(
            f"Interval can not be less than {go_duration(5 * SECOND)} (got {go_duration(interval)})"
        )
    if attempts * delay > interval:
        errors.append(
            f"Nomad can't restart the TaskGroup {attempts} times in an interval of "
            f"{go_duration(interval)} with a delay of {go_duration(delay)}"
        )
    return errors


def _reschedule_errors(policy: dict[str, Any] | None) -> list[str]:
    """`ReschedulePolicy.Validate`; a disabled policy (0 attempts, not unlimited) is not checked."""
    if not policy or (not policy.get("Attempts") and not policy.get("Unlimited")):
        return []
    errors = []
    delay = policy.get("Delay") or 0
    if delay < 5 * SECOND:
        errors.append(
            f"Delay cannot be less than {go_duration(5 * SECOND)} (got {go_duration(delay)})"
        )
    functions = ["constant", "exponential", "fibonacci"]
    if policy.get("DelayFunction") not in functions:
        errors.append(
            f"Invalid delay function {policy.get('DelayFunction')!r}, must be one of {functions}"
        )
    return errors


def _resource_errors(resources: dict[str, Any]) -> list[str]:
    errors = []
    cpu, cores = resources.get("CPU") or 0, resources.get("Cores") or 0
    memory, memory_max = resources.get("MemoryMB") or 0, resources.get("MemoryMaxMB") or 0
    if cpu and cores:
        errors.append("Task can only ask for 'cpu' or 'cores' resource, not both.")
    if not cores and cpu < 1:
        errors.append(f"Minimum CPU value is 1; got {cpu}")
    if memory < 10:
        errors.append(f"Minimum MemoryMB value is 10; got {memory}")
    if memory_max and memory_max < memory:
        errors.append(
            f"MemoryMaxMB value ({memory_max}) should be larger than MemoryMB value ({memory})"
        )
    if resources.get("DiskMB"):
        errors.append(
            "Task can't ask for disk resources, they have to be specified at the task group level."
        )
    for i, device in enumerate(resources.get("Devices") or []):
        device = device or {}
        if not device.get("Name"):
            errors.append(
                f"device {i + 1}: device name must be given as one of the following: "
                "type, vendor/type, or vendor/type/model"
            )
        if (device.get("Count") or 0) < 1:
            errors.append(f"device {i + 1}: device count must be at least 1")
    return errors
