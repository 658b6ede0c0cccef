"""The embedded executor: each step is a process on this machine.

With bubblewrap (the sandbox), the step sees its checkout at /app and the run's artefact
directory at /artefact, exactly as in a container, plus its own virtual environment at /venv, its
own /tmp, HOME, /dev and /proc, and the host's programs and libraries read-only. Nothing else of
the host is there: not BEDROCK_HOME (keys, database, other runs, logs, Git caches), not the
server's virtual environment, not /root, /home, /var, /run or /opt. The step runs in new pid, ipc,
uts and user namespaces, in a session of its own, with no capabilities, as uid 65534 inside.
When the server runs as root, a user namespace would only rename root: the step would still be
uid 0 to the host's files and /proc/sys. Then bubblewrap mounts without one and the step drops to
the host's uid 65534 (``setpriv``) before anything of the user's runs; what the step writes (its
/app, /artefact, /tmp, HOME, /venv and pip cache) is handed to that uid first.
The network is the host's: steps install packages and call cloud APIs.

Without bubblewrap the step runs in its checkout as the server's own user, and
``BEDROCK_APP_DIR`` / ``BEDROCK_ARTEFACT_DIR`` say where things are. That is no boundary, so
only site administrators' runs execute then, unless ``BEDROCK_ALLOW_UNSANDBOXED`` accepts the risk
(:func:`unsandboxed_refusal`).

Every step gets a fresh virtual environment, so ``pip install`` in a step never changes the host's
Python, and a minimal environment, so the server's own variables (database URL, keys) never leak
into user code.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings

from bedrock.actors import SYSTEM, Actor, is_site_administrator
from bedrock.runs import installs
from bedrock.runs.executors import spark, stepvenv
from bedrock.runs.executors.base import (
    ExecutorError,
    StepContext,
    layered_environment,
    package_index_variables,
    refusal_notice,
    step_variables,
)
from bedrock.runs.executors.interpreters import Interpreter, host_interpreter, python_for_image
from bedrock.runs.plan import StepPlan
from bedrock.runs.workdir import APP, host_workdir, missing_workdir
from bedrock.runs.workspace import Workspace, remove_step_tree

# The host's programs and libraries. /opt, /srv and /usr's siblings hold other software and
# people's data (often a server's virtual environment or its env file), so they stay out.
_SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Of /etc, only what programs need to run, resolve names and verify TLS. The rest is the
# operator's (env files with database URLs, /etc/shadow, SSH host keys, Git credentials) and a
# step mapped to the server's uid could read root-owned files among them.
_ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pip.conf",
    "protocols",
    "resolv.conf",
    "services",
    # Certificates and OpenSSL's configuration, not ssl/private (the host's TLS keys).
    "ssl/certs",
    "ssl/openssl.cnf",
    "timezone",
    # RHEL's certificate store and the crypto policy its OpenSSL, GnuTLS and Java read.
    "pki",
    "crypto-policies",
    "java",
)
# Debian's OpenJDK links conf/security/java.security and friends into /etc/java-<version>.
_ETC_GLOBS = ("java-*",)
# nobody: the step's uid and gid inside the sandbox, never root even when the server is.
SANDBOX_UID = 65534
VENV = "/venv"
HOME = "/home/step"
PIP_CACHE = "/cache/pip"
UV_CACHE = "/cache/uv"


def sandbox_problem() -> str:
    """Why steps of the local executor would run without a sandbox here, or "" when they won't."""
    if not settings.BEDROCK_LOCAL_SANDBOX:
        return "BEDROCK_LOCAL_SANDBOX is off"
    path = shutil.which("bwrap")
    if path is None:
        return "bubblewrap is not installed"
    if _as_root() and _setpriv() is None:
        return (
            "setpriv (util-linux) is not installed, which a server running as root needs to run "
            "steps as an unprivileged user"
        )
    return _probe(path, _as_root())


def _as_root() -> bool:
    return os.geteuid() == 0


def _setpriv() -> str | None:
    # Looked up where the sandbox has it too: the system directories are bound at their paths.
    for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        if os.access(f"{directory}/setpriv", os.X_OK):
            return f"{directory}/setpriv"
    return None


def sandbox_available() -> bool:
    """True when the local executor runs each step in a bubblewrap sandbox."""
    return not sandbox_problem()


def bubblewrap() -> str | None:
    """The path of a working ``bwrap``, or None when steps run without a sandbox."""
    return None if sandbox_problem() else shutil.which("bwrap")


@functools.lru_cache(maxsize=4)
def _probe(path: str, as_root: bool) -> str:
    # Containers and hardened kernels may forbid user namespaces: find out once, not per step.
    # As root, this also finds out whether the drop to the sandbox's uid works.
    try:
        done = subprocess.run(
            [path, *_isolation_args(), "--ro-bind", "/", "/", "--", *_drop_args(), "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not work here: {exc}"
    if done.returncode != 0:
        return f"bubblewrap cannot create its namespaces here: {done.stderr.strip()}"
    return ""


def unsandboxed_refusal(actor: Actor) -> str:
    """Why a run started by ``actor`` may not execute on the local executor, or "".

    Without a sandbox a step is the server's own user: it can read the keys and the database.
    Then only site administrators' runs execute (and those of the command line, ``SYSTEM``,
    which is the operator), unless ``BEDROCK_ALLOW_UNSANDBOXED`` accepts the risk.
    """
    if settings.BEDROCK_EXECUTOR != "local" or settings.BEDROCK_ALLOW_UNSANDBOXED:
        return ""
    if is_site_administrator(actor):
        return ""
    problem = sandbox_problem()
    if not problem:
        return ""
    if problem == "bubblewrap is not installed":
        remedy = "install bubblewrap"
    elif problem == "BEDROCK_LOCAL_SANDBOX is off":
        remedy = "set BEDROCK_LOCAL_SANDBOX=on"
    elif problem.startswith("setpriv"):
        remedy = "install util-linux's setpriv"
    else:
        remedy = "let bubblewrap create user namespaces"
    return (
        f"the local executor has no sandbox on this server ({problem}): only site "
        f"administrators' runs can execute; {remedy} or set BEDROCK_ALLOW_UNSANDBOXED=on to "
        "accept the risk"
    )


def _isolation_args() -> list[str]:
    common = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "bedrock-step"]
    common += ["--new-session", "--die-with-parent", "--cap-drop", "ALL"]
    if _as_root():
        # No user namespace: bubblewrap's would map the step's uid to the host's 0. setpriv
        # needs these three to become uid 65534 with an empty bounding set; it drops them all.
        caps = ("SETUID", "SETGID", "SETPCAP")
        return [*common, *(arg for cap in caps for arg in ("--cap-add", f"CAP_{cap}"))]
    ids = ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    return [*common, "--unshare-user", *ids]


def _drop_args() -> list[str]:
    """The command that runs the step's own as the host's uid 65534, when the server is root."""
    if not _as_root():
        return []
    ids = [f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups"]
    caps = ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return [_setpriv() or "setpriv", *ids, *caps, "--"]


def _system_args(python: Interpreter) -> list[str]:
    args: list[str] = []
    for name in _SYSTEM_DIRS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _etc_paths():
        args += ["--ro-bind", path, path]
    for path in _python_paths(python):
        args += ["--ro-bind", path, path]
    return args


def _python_paths(python: Interpreter) -> list[str]:
    """The step's interpreter, and the server's, which runs the dated pip (bedrock.runs.installs)
    whatever the step's Python."""
    both = [*_interpreter_paths(python), *_interpreter_paths(host_interpreter())]
    return list(dict.fromkeys(both))


_ONE_PATH = ("--tmpfs", "--dev", "--proc", "--dir")
_TWO_PATHS = ("--bind", "--ro-bind", "--symlink")


def _with_parents(args: list[str]) -> list[str]:
    """``args`` with each mount point's missing parents made first, readable by everyone.

    bubblewrap makes them itself otherwise, 0700 when it runs as root or with the host's modes
    (a pyenv under /root): out of reach of a step that is not root to the host."""
    made = {Path("/")}
    mounted: set[Path] = set()  # the host's own directories: what they hold is there already
    done: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        width = 1 if arg in _ONE_PATH else 2 if arg in _TWO_PATHS else 0
        if width:
            destination = Path(args[index + width])
            for parent in reversed(destination.parents):
                if parent not in made and not mounted.intersection((parent, *parent.parents)):
                    made.add(parent)
                    done += ["--perms", "0755", "--dir", str(parent)]
            (made if arg == "--dir" else mounted).add(destination)
        done += args[index : index + width + 1]
        index += width + 1
    return done


def _etc_paths() -> list[str]:
    names = list(_ETC_ENTRIES)
    for pattern in _ETC_GLOBS:
        names += sorted(p.name for p in Path("/etc").glob(pattern) if p.is_dir())
    return [f"/etc/{name}" for name in names if os.path.exists(f"/etc/{name}")]


def _interpreter_paths(python: Interpreter) -> list[str]:
    # A venv links to its base interpreter by path: a pyenv or /opt build must be there too.
    prefix = python.prefix
    if _under_system_dirs(prefix):
        return []
    real = os.path.dirname(os.path.realpath(python.executable))
    return [prefix] if real.startswith(prefix + "/") else [prefix, real]


def _under_system_dirs(path: str) -> bool:
    return any(path == f"/{d}" or path.startswith(f"/{d}/") for d in _SYSTEM_DIRS)


def _visible(sandboxed: bool) -> Callable[[str], bool] | None:
    """Whether a step sees a host path: in the sandbox, only under the system directories."""
    return _under_system_dirs if sandboxed else None


def _bound_paths(python: Interpreter) -> list[str]:
    """The host paths bound read-only into every sandbox, resolved."""
    paths = [os.path.realpath(f"/{d}") for d in _SYSTEM_DIRS if os.path.isdir(f"/{d}")]
    return paths + [os.path.realpath(p) for p in (*_etc_paths(), *_python_paths(python))]


def _hidden_args(python: Interpreter) -> list[str]:
    """An empty, read-only tmpfs over each of Bedrock's own directories that lies under a bound
    path: BEDROCK_HOME defaults to the installation's ``var``, which a non-editable install into
    a base interpreter (the python image's /usr/local, a pyenv) puts inside the sandbox."""
    own: list[str | Path] = [settings.BEDROCK_HOME, settings.BEDROCK_GIT_CACHE]
    storage = settings.STORAGES.get("default", {})
    if storage.get("BACKEND") == "django.core.files.storage.FileSystemStorage":
        own.append(storage.get("OPTIONS", {}).get("location") or settings.MEDIA_ROOT)
    if sys.prefix != sys.base_prefix:
        own.append(sys.prefix)  # the server's virtual environment
    bound = _bound_paths(python)
    args: list[str] = []
    for path in dict.fromkeys(os.path.realpath(p) for p in own if p):
        inside = any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound)
        if inside and os.path.isdir(path):
            args += ["--tmpfs", path, "--remount-ro", path]
    return args


def _sandbox_args(
    context: StepContext, workdir: str = APP, python: Interpreter | None = None
) -> list[str]:
    python = python or host_interpreter()
    mounts = [
        *_system_args(python),
        *_hidden_args(python),
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        # The kernel's settings stay read-only, whoever the step is to the host.
        "--ro-bind",
        "/proc/sys",
        "/proc/sys",
        "--bind",
        str(context.step_dir / "tmp"),
        "/tmp",  # noqa: S108 (the step's own, bound from its step directory)
        "--bind",
        str(context.step_dir / "home"),
        HOME,
        "--bind",
        str(context.step_dir / "venv"),
        VENV,
        "--bind",
        str(_pip_cache(context)),
        PIP_CACHE,
        "--bind",
        str(_uv_cache(context)),
        UV_CACHE,
        "--bind",
        str(context.app_dir),
        "/app",
        "--bind",
        str(context.artefact_dir),
        "/artefact",
        *installs.sandbox_mounts(),
    ]
    return [
        "bwrap",
        "--tmpfs",
        "/",
        *_with_parents(mounts),
        # The sandbox's own root is a tmpfs: read-only, so a step writes only where it is meant to.
        "--remount-ro",
        "/",
        "--chdir",
        workdir,
        *_isolation_args(),
        "--",
        *_drop_args(),
    ]


def _package_index(context: StepContext) -> dict[str, str]:
    user, secrets = step_variables(context)
    domain = context.environment.get("BEDROCK_API_DOMAIN", "")
    return package_index_variables(domain, user | secrets)


def _project_cache(context: StepContext, tool: str) -> Path:
    # One cache per project: runs of a project share downloads, but a step cannot plant a wheel
    # that another project's run installs.
    project = stepvenv.project(context)
    if not project.isdigit():
        return context.step_dir / f"{tool}-cache"
    return Path(settings.BEDROCK_HOME) / "cache" / tool / f"project-{project}"


def _environment(
    step: StepPlan, context: StepContext, sandbox: bool, *, index: bool = True
) -> dict[str, str]:
    """The step's variables: its paths as it sees them, the run's, and pip's defaults; with
    Bedrock's own package index unless ``index`` is False."""
    venv = context.step_dir / "venv"
    if sandbox:
        paths = {"VIRTUAL_ENV": VENV, "HOME": HOME, "TMPDIR": "/tmp"}  # noqa: S108
        paths |= {"PIP_CACHE_DIR": PIP_CACHE, "UV_CACHE_DIR": UV_CACHE}
        paths |= {"BEDROCK_APP_DIR": "/app", "BEDROCK_ARTEFACT_DIR": "/artefact"}
    else:
        home, tmp = context.step_dir / "home", context.step_dir / "tmp"
        paths = {"VIRTUAL_ENV": str(venv), "HOME": str(home), "TMPDIR": str(tmp)}
        paths |= {"PIP_CACHE_DIR": str(_pip_cache(context))}
        paths |= {"UV_CACHE_DIR": str(_uv_cache(context))}
        paths |= {"BEDROCK_APP_DIR": str(context.app_dir)}
        paths["BEDROCK_ARTEFACT_DIR"] = str(context.artefact_dir)
    paths["PATH"] = f"{paths['VIRTUAL_ENV']}/bin:/usr/local/bin:/usr/bin:/bin"
    paths |= spark.variables(step, paths["VIRTUAL_ENV"], _visible(sandbox))
    return layered_environment(
        context,
        defaults={"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
        | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        own=paths | (_package_index(context) if index else {}),
    )


def _pip_cache(context: StepContext) -> Path:
    return _project_cache(context, "pip")


def _uv_cache(context: StepContext) -> Path:
    # uv's own (dated installs), not under the step's HOME, which every attempt gets empty.
    return _project_cache(context, "uv")


# Held while a run's /artefact is handed to the sandbox's uid, so that no step of the run starts
# (and could swap a directory for a symbolic link) while the walk is under way.
_HANDOVER = threading.Lock()
_HANDED_OVER = ".artefact-handed-over"


def _hand_over(context: StepContext) -> None:
    """Make what the step writes the sandbox uid's, when the server is root and the step is not.

    The pip cache, /tmp, HOME and /venv are made here: their tops are enough. The checkout is
    the supervisor's, written before the step; the run's /artefact gets the input model versions
    before its first step, so it is walked once, before any step of the run has started."""
    for top in (context.step_dir / "tmp", context.step_dir / "home", context.step_dir / "venv"):
        _give(top, recursive=False)
    _give(_pip_cache(context), recursive=False)
    _give(_uv_cache(context), recursive=False)
    _give(context.app_dir, recursive=True)
    marker = context.artefact_dir.parent / _HANDED_OVER
    with _HANDOVER:
        if not marker.exists():
            _give(context.artefact_dir, recursive=True)
            marker.touch()


def _give(top: Path, *, recursive: bool) -> None:
    # Never through a symbolic link (a checkout may hold one to /etc/shadow), and never a file
    # of several links: one may be another tree's too (a hard link to a root-owned file).
    pending = [str(top)]
    while pending:  # a loop, not recursion: the tree may be thousands of levels deep
        path = pending.pop()
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode) or (not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1):
            continue
        if stat.S_ISDIR(info.st_mode) and recursive:
            with os.scandir(path) as entries:
                pending += [entry.path for entry in entries]
        if (info.st_uid, info.st_gid) != (SANDBOX_UID, SANDBOX_UID):
            os.chown(path, SANDBOX_UID, SANDBOX_UID, follow_symlinks=False)


def _descendants(pid: int) -> list[int]:
    """Processes started by ``pid``, at any depth (they may be in other sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: the fields start after the last ')'.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending += children.get(child, [])
    return found


class LocalHandle:
    def __init__(
        self,
        process: subprocess.Popen,
        sandboxed: bool = False,
        notice: bytes = b"",
        succeeded: Callable[[], None] | None = None,
    ) -> None:
        self.process = process
        self.sandboxed = sandboxed
        self.notice = notice  # Bedrock's own line, first in the step's log
        # Called once, when the step has ended with exit code 0 (keeping its environment).
        self.succeeded = succeeded

    def output(self) -> Iterator[bytes]:
        assert self.process.stdout is not None
        if self.notice:
            yield self.notice
        yield from iter(self.process.stdout.readline, b"")

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        succeeded, self.succeeded = self.succeeded, None
        if code == 0 and succeeded is not None:
            succeeded()
        return code

    def kill(self, grace: float = 0.0) -> str:
        self.succeeded = None  # a step that was stopped did not succeed, whatever its exit code
        if self.process.poll() is not None:
            return ""
        if grace > 0:
            self._terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            else:
                self._signal(signal.SIGKILL)  # whatever of the group outlived bash
                return "ended on SIGTERM"
        self._signal(signal.SIGKILL)
        self.process.wait()
        if grace > 0:
            return f"killed with SIGKILL after the {grace:g} s grace period"
        return "killed with SIGKILL"

    def _terminate(self) -> None:
        if not self.sandboxed:
            self._signal(signal.SIGTERM)
            return
        # bwrap itself dies of SIGTERM and takes the sandbox down with SIGKILL: the step's own
        # processes (in the sandbox's session) get the SIGTERM instead, and bwrap ends with them.
        for pid in _descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    def _signal(self, number: int) -> None:
        # The step runs in its own session: signal the whole group, not just bash. Under bwrap,
        # SIGKILL of bwrap kills the sandbox's pid namespace, and everything in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, number)


class LocalExecutor:
    name = "local"
    remote = False

    def prepare(self, step: StepPlan, context: StepContext) -> None:
        """The slow part of a start (the venv), apart, so that a stop meanwhile starts nothing."""
        self._check_allowed(context)
        sandbox = bubblewrap() is not None
        venv = context.step_dir / "venv"
        caches = (_pip_cache(context), _uv_cache(context))
        for directory in (venv, context.step_dir / "home", *caches):
            directory.mkdir(parents=True, exist_ok=True)
        self._reset_tmp(context)
        if sandbox and _as_root():
            _hand_over(context)
        python = python_for_image(step.image).interpreter
        if not (venv / "bin" / "python").exists():  # a retry keeps the attempt before's
            self._create_venv(step, context, python, sandbox)
        host = host_interpreter().executable
        installs.prepare_venv(context.run_id, venv, sandboxed=sandbox, interpreter=host)
        spark.prepare(step, venv, VENV if sandbox else str(venv), _visible(sandbox))

    @staticmethod
    def _reset_tmp(context: StepContext) -> None:
        tmp = context.step_dir / "tmp"
        remove_step_tree(tmp)  # each attempt gets an empty /tmp
        tmp.mkdir()

    def start(self, step: StepPlan, context: StepContext) -> LocalHandle:
        self.prepare(step, context)  # at once when the supervisor has prepared it already
        cwd = host_workdir(context.app_dir, step.workdir)
        if cwd is None:
            raise ExecutorError(missing_workdir(step.workdir))
        sandbox = bubblewrap() is not None
        venv = context.step_dir / "venv"
        python = python_for_image(step.image)
        prefix = _sandbox_args(context, step.workdir, python.interpreter) if sandbox else []
        env = _environment(step, context, sandbox)
        process = subprocess.Popen(
            [*prefix, "bash", "-c", spark.command(step, venv)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Recorded so that a reconciler can kill the step if this supervisor dies first.
        with (context.step_dir / "pids").open("a") as pids:
            pids.write(f"{process.pid}\n")
        notice = refusal_notice(context) + python.notice.encode() + installs.notice(context.run_id)
        return LocalHandle(
            process,
            sandboxed=sandbox,
            notice=notice + stepvenv.reuse_notice(context),
            succeeded=functools.partial(stepvenv.keep, context, VENV if sandbox else str(venv)),
        )

    @staticmethod
    def _check_allowed(context: StepContext) -> None:
        # Checked again here, not only at creation: bubblewrap may have gone since, or the run
        # may predate the policy.
        from bedrock.runs.models import Run

        run = Run.objects.select_related("triggered_by").filter(pk=context.run_id).first()
        # A run no person triggered was started by the operator (the command line, a schedule).
        refusal = unsandboxed_refusal(run.triggered_by or SYSTEM if run is not None else SYSTEM)
        if refusal:
            raise ExecutorError(refusal)

    @staticmethod
    def _create_venv(
        step: StepPlan, context: StepContext, python: Interpreter, sandbox: bool
    ) -> None:
        venv = context.step_dir / "venv"
        inside = VENV if sandbox else str(venv)
        # Without Bedrock's own index, whose address changes with each `bedrock run --wait`
        # that serves the API itself: the client's version, all it serves, stands for it.
        variables = _environment(step, context, sandbox, index=False)
        name = stepvenv.installs_key(step, context, python, sandboxed=sandbox, variables=variables)
        # Made inside the sandbox when there is one, so that its paths are the ones the step sees.
        prefix = functools.partial(_sandbox_args, context, python=python) if sandbox else list
        stepvenv.make(context, python, name=name, inside=inside, sandbox_prefix=prefix)
        if sandbox and _as_root():
            _give(venv, recursive=True)  # copied by the server: the step's uid must own it

    def cleanup_run(self, run_id: int) -> None:
        """Kill the process groups of the run's steps that are still alive."""
        root = Workspace(run_id).root
        for pids in root.glob("steps/*/pids"):
            for line in pids.read_text().split():
                pid = int(line)
                try:
                    # Only a group still working in this run's directory: pids get reused.
                    if not os.readlink(f"/proc/{pid}/cwd").startswith(str(root)):
                        continue
                    os.killpg(pid, signal.SIGKILL)
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    continue
