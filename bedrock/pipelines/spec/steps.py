"""Steps: each step block read into a draft (image, install, script, resources, depends_on,
retry), and the checks on a stanza's steps as a whole."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bedrock.pipelines.spec.model import (
    STEP_NAME_MAX_LENGTH,
    STEP_NAME_PATTERN,
    KeyPath,
    Resources,
    render,
)
from bedrock.pipelines.spec.report import describe
from bedrock.pipelines.spec.resources import ResourceReader

# What install and script may hold together: Linux's 128 KiB for one argument, less room for the
# executors' wrappers around the command.
MAX_COMMAND_BYTES = 120 * 1024
_STEP_KEYS = ("image", "install", "script", "resources", "depends_on", "retry")
_STEP_EXTRA_KEYS = ("parameters", "secrets")
# A script item of span.hcl that names a Python file to run with spark-submit.
_PYTHON_FILE = re.compile(r"[^\s;&|<>()$`'\"]+\.py")


@dataclass
class StepDraft:
    name: str
    path: KeyPath
    image: str
    install: tuple[str, ...]
    script: tuple[str, ...]
    resources: Resources
    depends_on: list[tuple[str, int]]
    retry_limit: int


class StepReader(ResourceReader):
    """Reads step blocks into drafts; the graph orders them once every step is read."""

    def step_bodies(self, value: Any, stanza_path: KeyPath) -> list[tuple[str, dict]]:
        """(name, body) for each well-formed step block in file order, whichever parser."""
        pairs: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            pairs = list(value.items())  # pyhcl, one step (or several merged)
        elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
            for item in value:
                pairs.extend(item.items())
        else:
            self.error(
                (*stanza_path, "step"),
                f'expected step blocks, e.g. step "train" {{ … }}; found {describe(value)}',
                value=True,
            )
            return []
        result = []
        seen: dict[str, int] = {}
        for name, body in pairs:
            path = (*stanza_path, "step", name)
            if not isinstance(body, dict):
                self.error(
                    (*stanza_path, "step"),
                    'a step needs a name: step "name" { image = … script = … }',
                )
                continue
            occurrence = seen.get(name, 0)
            seen[name] = occurrence + 1
            if occurrence:
                first = self.loc.occurrences(path)
                where = f" (first at line {self.loc.position(first[0].pos)[0]})" if first else ""
                self.error(
                    path,
                    f"duplicate step name {name!r}{where}; step names must be unique in "
                    f"{render(stanza_path)}",
                    occurrence=occurrence,
                )
                continue
            if len(name) > STEP_NAME_MAX_LENGTH:
                self.error(path, f"step name is longer than {STEP_NAME_MAX_LENGTH} characters")
            elif not STEP_NAME_PATTERN.match(name):
                self.error(
                    path,
                    f"bad step name {name!r}: use letters, digits, '-', '_' and '.', "
                    "starting and ending with a letter or digit",
                )
            result.append((name, body))
        return result

    def step_draft(
        self,
        name: str,
        body: dict,
        path: KeyPath,
        *,
        check_keys: bool = True,
        serve: bool = False,
        spark: Any = None,
    ) -> StepDraft:
        """The draft of one step; ``spark`` is the 2019 stanza-level ``spark {}`` block, whose
        settings turn the script's Python files into spark-submit commands."""
        if check_keys:
            for key in body:
                if key not in _STEP_KEYS and key not in _STEP_EXTRA_KEYS:
                    self.warn(
                        (*path, key),
                        f"unknown key {key!r} in step {name!r} is ignored; expected "
                        + ", ".join(_STEP_KEYS),
                    )
        image = body.get("image")
        if "image" not in body:
            self.error(
                (*path, "image"),
                'image is required: the Docker image the step runs in, e.g. image = "python:3.11"',
            )
        elif not isinstance(image, str) or not image.strip():
            self.error(
                (*path, "image"),
                f"image must be a Docker image name; found {describe(image)}",
                value=True,
            )
        install: tuple[str, ...] = ()
        if "install" in body:
            install = (
                self.strings(
                    body["install"],
                    (*path, "install"),
                    'install = ["pip install -r requirements.txt"]',
                )
                or ()
            )
        spark_options = None
        if spark is not None:
            # Only a stanza that is its own step has one: the step's path is the stanza's.
            spark_options = self._spark_options(spark, (*path, "spark"))
        script = self._script(body, path, allow_spark=not serve, spark_options=spark_options)
        resources = Resources()
        if "resources" in body:
            resources = self.read_resources(body["resources"], (*path, "resources"))
        depends_on: list[tuple[str, int]] = []
        retry_limit = 0
        if not serve:
            if "depends_on" in body:
                depends_on = self._depends_on(body["depends_on"], (*path, "depends_on"))
            if "retry" in body:
                retry_limit = self.read_retry(body["retry"], (*path, "retry"))
        return StepDraft(
            name=name,
            path=path,
            image=str(image),
            install=install,
            script=script,
            resources=resources,
            depends_on=depends_on,
            retry_limit=retry_limit,
        )

    def _script(
        self,
        body: dict,
        path: KeyPath,
        *,
        allow_spark: bool,
        spark_options: list[str] | None = None,
    ) -> tuple[str, ...]:
        where = (*path, "script")
        if "script" not in body:
            self.error(
                where,
                'script is required: the commands to run, e.g. script = [{sh = ["python '
                'train.py"]}]',
            )
            return ()
        value = body["script"]
        if not isinstance(value, list):
            self.error(
                where,
                'script must be a list of commands, e.g. script = [{sh = ["python train.py"]}];'
                f" found {describe(value)}",
                value=True,
            )
            return ()
        commands: list[str] = []
        plain = False
        for index, item in enumerate(value):
            item_path = (*where, index)
            if isinstance(item, str):
                plain = True
                if spark_options is not None and _PYTHON_FILE.fullmatch(item.strip()):
                    # span.hcl ran each Python file of its script with the spark block's settings.
                    item = " ".join(["spark-submit", *spark_options, item.strip()])
                commands.append(item)
            elif isinstance(item, dict):
                commands.extend(self._script_item(item, item_path, allow_spark=allow_spark))
            else:
                self.error(
                    item_path,
                    "a script item is {sh = [...]}"
                    + (" or {spark-submit { … }}" if allow_spark else "")
                    + f"; found {describe(item)}",
                    value=True,
                )
        if plain and spark_options is not None:
            self.warn(
                where,
                "plain strings in script are the 2019 form; beside the spark block a Python "
                "file runs as spark-submit with its conf and settings, anything else as a shell "
                'command. Write script = [{spark-submit {script = "train.py" conf {…}}}]',
            )
        elif plain:
            self.warn(
                where,
                "plain strings in script are the 2019 form; they run as shell commands. "
                'Write script = [{sh = ["…"]}]',
            )
        if not value:
            self.error(where, 'script has no commands; add e.g. {sh = ["python train.py"]}')
        return tuple(commands)

    def _script_item(self, item: dict, path: KeyPath, *, allow_spark: bool) -> list[str]:
        kinds = [key for key in item if key in ("sh", "spark-submit")]
        for key in item:
            if key not in ("sh", "spark-submit"):
                self.error(
                    (*path, key),
                    f"unknown script command {key!r}: expected sh"
                    + (" or spark-submit" if allow_spark else ""),
                )
        if not item:
            self.error(path, "an empty script item: expected {sh = [...]}", value=True)
        if len(kinds) > 1:
            self.error(path, "a script item holds one command, sh or spark-submit, not both")
            return []
        commands: list[str] = []
        if "sh" in item:
            found = self.strings(item["sh"], (*path, "sh"), 'sh = ["python train.py"]')
            commands.extend(found or ())
        if "spark-submit" in item:
            if not allow_spark:
                self.error((*path, "spark-submit"), "serve runs sh commands only, not spark-submit")
            else:
                rendered = self._spark_submit(item["spark-submit"], (*path, "spark-submit"))
                if rendered is not None:
                    commands.append(rendered)
        return commands

    def _spark_submit(self, value: Any, path: KeyPath) -> str | None:
        """`spark-submit --conf k=v … --key value script.py`, as Bedrock rendered it."""
        body = self.block(value, path, 'spark-submit { script = "train.py" conf { … } }')
        if body is None:
            return None
        for key in body:
            if key not in ("script", "conf", "settings"):
                self.warn(
                    (*path, key),
                    f"unknown key {key!r} in spark-submit is ignored; expected script, conf "
                    "or settings",
                )
        script = body.get("script")
        if not isinstance(script, str) or not script.strip():
            self.error(
                (*path, "script"),
                'spark-submit needs the Python file to run: script = "train.py"'
                + ("" if "script" not in body else f"; found {describe(script)}"),
                value="script" in body,
            )
            return None
        return " ".join(["spark-submit", *self._conf_and_settings(body, path), script])

    def _spark_options(self, value: Any, path: KeyPath) -> list[str] | None:
        """spark-submit's options from the 2019 stanza-level ``spark { conf {} settings {} }``."""
        body = self.block(value, path, 'spark { conf { "k" = "v" } settings { jars = "…" } }')
        if body is None:
            return None
        for key in body:
            if key not in ("conf", "settings"):
                self.warn(
                    (*path, key),
                    f"unknown key {key!r} in spark is ignored; expected conf or settings",
                )
        return self._conf_and_settings(body, path)

    def _conf_and_settings(self, body: dict, path: KeyPath) -> list[str]:
        """`--conf k=v …` then `--key value …`, as Bedrock rendered them."""
        conf = self.string_map(body.get("conf", {}), (*path, "conf"), 'conf { "k" = "v" }')
        settings = self.string_map(
            body.get("settings", {}), (*path, "settings"), 'settings { jars = "…" }'
        )
        parts = [f"--conf {key}={value}" for key, value in conf.items()]
        return parts + [f"--{key} {value}" for key, value in settings.items()]

    def check_step_count(self, stanza: str, drafts: list[StepDraft]) -> None:
        limit = self.limits.steps
        if len(drafts) > limit:
            self.error(
                drafts[limit].path,
                f"{stanza} has {len(drafts)} steps; at most {limit} are allowed in a stanza "
                "(BEDROCK_MAX_STEPS)",
            )

    def check_command_lengths(self, drafts: list[StepDraft]) -> None:
        # A step's install and script reach bash as one argument, and Linux starts no program
        # with an argument over 128 KiB (MAX_ARG_STRLEN): say so now, not at execution.
        for draft in drafts:
            size = sum(len(entry.encode()) + 8 for entry in (*draft.install, *draft.script))
            if size > MAX_COMMAND_BYTES:
                self.error(
                    (*draft.path, "script"),
                    f"step {draft.name!r} runs {size} bytes of commands; at most "
                    f"{MAX_COMMAND_BYTES} fit in the one argument Linux passes to bash: move "
                    "the long part into a script file in the repository",
                )

    def _depends_on(self, value: Any, path: KeyPath) -> list[tuple[str, int]]:
        names = self.strings(value, path, 'depends_on = ["preprocess"]')
        if names is None:
            return []
        result: list[tuple[str, int]] = []
        for index, name in enumerate(names):
            if any(name == seen for seen, _ in result):
                self.warn((*path, index), f"{name!r} is listed twice", value=True)
                continue
            result.append((name, index))
        return result
