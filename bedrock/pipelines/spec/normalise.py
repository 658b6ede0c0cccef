"""Normalising: either parser's output turned into a `Spec`: the top level, the stanzas, and
their parameters and secrets. Steps are read by `steps`, ordered by `graph`."""

from __future__ import annotations

from typing import Any

from bedrock.pipelines import environment
from bedrock.pipelines.spec import graph
from bedrock.pipelines.spec.locate import Entry
from bedrock.pipelines.spec.model import (
    PIPELINE_STANZAS,
    STANZAS,
    SUPPORTED_VERSION,
    TOLERATED_VERSIONS,
    KeyPath,
    Problem,
    Spec,
    Stanza,
    Step,
    render,
)
from bedrock.pipelines.spec.report import describe
from bedrock.pipelines.spec.steps import StepDraft, StepReader

_ENV_NAME = environment.ENVIRONMENT_NAME  # the one rule, beside the names refused
_STANZA_KEYS = ("step", "parameters", "secrets")
_LEGACY_STEP_KEYS = ("image", "install", "script", "resources", "retry")
_SERVE_STEP_KEYS = ("image", "install", "script", "resources")
_SERVE_KEYS = (*_SERVE_STEP_KEYS, "parameters", "secrets")


class Normaliser(StepReader):
    """Turns either parser's output into a `Spec`, collecting problems on the way."""

    def run(self, data: Any, parser: str) -> Spec | None:
        if not isinstance(data, dict):
            self.error((), "expected key = value settings and stanzas at the top level")
            return None
        for entry_path, entries in self.loc.entries.items():
            self._check_repeated_attributes(entry_path, entries)
        self._check_nul_byte()
        version = self._version(data)
        stanzas: dict[str, Stanza] = {}
        for key, value in data.items():
            path: KeyPath = (key,)
            if key in STANZAS and len(self.loc.occurrences(path)) > 1:
                # pyhcl merges repeated top-level blocks, python-hcl2 lists them: ask for one.
                self.duplicate(path)
            if key in PIPELINE_STANZAS:
                stanza = self._pipeline_stanza(key, value)
            elif key == "serve":
                stanza = self._serve(value)
            elif key == "features":
                self.warn(path, "the features stanza (2019) is no longer supported; it is ignored")
                continue
            elif key == "version":
                continue
            else:
                self.warn(
                    path,
                    f"unknown key {key!r} is ignored; expected version, train, batch_score "
                    "or serve",
                )
                continue
            if stanza is not None:
                stanzas[key] = stanza
        if not any(key in data for key in STANZAS):
            self.error((), "no train, batch_score or serve stanza: the file defines nothing to run")
        if any(problem.is_error for problem in self._problems):
            return None
        return Spec(
            version=version,
            stanzas=stanzas,
            warnings=tuple(self.problems()),
            parser=parser,
        )

    def _check_repeated_attributes(self, path: KeyPath, entries: list[Entry]) -> None:
        """A key set twice in one block: python-hcl2 keeps the last, pyhcl makes a list of both."""
        seen: dict[int, Entry] = {}
        for index, entry in enumerate(entries):
            if entry.kind != "attr":
                continue
            if entry.parent in seen:
                first_line = self.loc.position(seen[entry.parent].pos)[0]
                self.error(
                    path,
                    f"{path[-1]} is set more than once in the same block (also at line "
                    f"{first_line}); keep one",
                    occurrence=index,
                )
            seen[entry.parent] = entry

    def _version(self, data: dict) -> str | None:
        if "version" not in data:
            self.warn(
                ("version",),
                f'no version: read as version "{SUPPORTED_VERSION}"; '
                f'add version = "{SUPPORTED_VERSION}" at the top',
            )
            return None
        value = data["version"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.warn(("version",), f'version should be a string: version = "{value}"', value=True)
            value = str(value)
        if not isinstance(value, str):
            self.error(
                ("version",),
                f'version must be the string "{SUPPORTED_VERSION}"; found {describe(value)}',
                value=True,
            )
            return None
        if value in TOLERATED_VERSIONS:
            self.warn(
                ("version",),
                f'version "{value}" was never a Bedrock file format; read as "{SUPPORTED_VERSION}"',
                value=True,
            )
        elif value != SUPPORTED_VERSION:
            self.error(
                ("version",),
                f'unsupported version "{value}": this Bedrock reads version "{SUPPORTED_VERSION}"',
                value=True,
            )
        return value

    # stanzas ----------------------------------------------------------------------------
    def _pipeline_stanza(self, name: str, value: Any) -> Stanza | None:
        path: KeyPath = (name,)
        body = self.block(value, path, f'{name} {{ step "{name}" {{ … }} }}')
        if body is None:
            return None
        legacy = [key for key in _LEGACY_STEP_KEYS if key in body]
        for key in body:
            if key == "spark" and ("step" in body or "script" not in legacy):
                self.warn(
                    (*path, key),
                    "the spark block (2019) is ignored beside step blocks; put Spark settings "
                    "in a spark-submit script item",
                )
            elif key != "spark" and key not in _STANZA_KEYS and key not in _LEGACY_STEP_KEYS:
                self.warn(
                    (*path, key),
                    f"unknown key {key!r} in {name} is ignored; expected step, parameters "
                    "or secrets",
                )
        parameters = self._parameters(body, path)
        secrets = list(self._secrets(body, path))
        drafts: list[StepDraft] = []
        if "step" in body:
            for key in legacy:
                self.error(
                    (*path, key),
                    f"{key} belongs inside a step block: {name} has step blocks, so "
                    "stanza-level image/install/script are not used",
                )
            for step_name, step_body in self.step_bodies(body["step"], path):
                step_path = (*path, "step", step_name)
                drafts.append(self.step_draft(step_name, step_body, step_path))
                secrets += self._merge_step_extras(step_body, step_path, path, parameters)
        elif legacy:
            # The 2019 single-step form: the stanza itself is the one step.
            only_step_keys = {key: body[key] for key in _LEGACY_STEP_KEYS if key in body}
            spark = body.get("spark")
            drafts.append(
                self.step_draft(name, only_step_keys, path, check_keys=False, spark=spark)
            )
        else:
            self.error(
                (*path, "step"),
                f'{name} has no steps: add step "name" {{ image = … script = [{{sh = [...]}}] }}',
            )
        self.check_step_count(name, drafts)
        self.check_command_lengths(drafts)
        # Steps with errors of their own still take part, so dependency errors show too.
        steps = graph.order(self, name, drafts)
        if steps is None:
            return None
        return Stanza(
            name=name,
            steps=steps,
            parameters=parameters,
            secrets=tuple(dict.fromkeys(secrets)),
        )

    def _serve(self, value: Any) -> Stanza | None:
        path: KeyPath = ("serve",)
        body = self.block(value, path, "serve { image = … script = [{sh = [...]}] }")
        if body is None:
            return None
        for key in body:
            if key not in _SERVE_KEYS:
                hint = " (serve takes image/install/script directly)" if key == "step" else ""
                self.warn((*path, key), f"unknown key {key!r} in serve is ignored{hint}")
        parameters = self._parameters(body, path)
        secrets = self._secrets(body, path)
        only_step_keys = {key: body[key] for key in _SERVE_STEP_KEYS if key in body}
        draft = self.step_draft("serve", only_step_keys, path, check_keys=False, serve=True)
        step = Step(
            name="serve",
            image=draft.image,
            install=draft.install,
            script=draft.script,
            resources=draft.resources,
            depends_on=(),
            retry_limit=0,
        )
        return Stanza(name="serve", steps=(step,), parameters=parameters, secrets=secrets)

    def _parameters(self, body: dict, path: KeyPath) -> dict[str, str]:
        if "parameters" not in body:
            return {}
        where = (*path, "parameters")
        result = self.string_map(body["parameters"], where, 'parameters { ALPHA = "0.5" }')
        for key in result:
            if not _ENV_NAME.fullmatch(key):
                # An error, not a warning: Docker and Nomad would pass "PATH=x" = "1" on as
                # PATH=x=1, which sets PATH.
                self.error(
                    (*where, key),
                    f"parameter {key!r} is not a valid environment variable name (letters, "
                    "digits and _, not starting with a digit)",
                )
            self._check_environment((*where, key), key, result[key], "parameter")
        return result

    def _secrets(self, body: dict, path: KeyPath) -> tuple[str, ...]:
        if "secrets" not in body:
            return ()
        where = (*path, "secrets")
        value = body["secrets"]
        names: list[str] = []
        is_list = True
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            is_list = False
            mapping = self.block(value, where, "") or {}
            self.warn(
                where,
                "secrets as a block is not Bedrock's form: its keys are read as secret names; "
                'write secrets = ["NAME", …]',
            )
            for key, secret in mapping.items():
                if secret not in ("", None):
                    self.warn(
                        (*where, key),
                        "a secret value written in the file is ignored; set the value in "
                        "Bedrock, and remove it from the repository",
                    )
                names.append(str(key))
        else:
            found = self.strings(value, where, 'secrets = ["DB_PASSWORD"]')
            names = list(found or ())
        unique = list(dict.fromkeys(names))
        if len(unique) != len(names):
            self.warn(where, "a secret is listed more than once")
        for name in unique:
            if not _ENV_NAME.fullmatch(name):
                self.error(
                    where,
                    f"secret {name!r} is not a valid environment variable name (letters, "
                    "digits and _, not starting with a digit)",
                )
            # Point at the name itself: the list item, or the block's key.
            at: str | int = names.index(name) if is_list else name
            self._check_environment((*where, at), name, "", "secret")
        return tuple(unique)

    def _check_nul_byte(self) -> None:
        """A NUL byte cannot reach bash (its argv) nor a step's environment: refuse the file
        now rather than fail the step when it starts."""
        offset = self.loc.text.find("\0")
        if offset >= 0:
            line, column = self.loc.position(offset)
            message = "the file holds a NUL byte (\\0), which no command or variable can carry"
            self._problems.append(Problem("", message + "; remove it", line, column, "error"))

    def _check_environment(self, path: KeyPath, name: str, value: str, kind: str) -> None:
        """Names a loader, shell or interpreter acts on, and NUL bytes, never reach a step
        (the one list is `bedrock.pipelines.environment`)."""
        if reason := environment.refused_environment_name(name, kind=kind):
            self.error(path, reason)
        for what, text in (("name", name), ("value", value)):
            if problem := environment.nul_byte_problem(text, f"the {kind}'s {what}"):
                self.error(path, problem, value=what == "value")

    def _merge_step_extras(
        self,
        step_body: dict,
        step_path: KeyPath,
        stanza_path: KeyPath,
        parameters: dict[str, str],
    ) -> tuple[str, ...]:
        """Step-level parameters/secrets (seen once, in 2021): kept, but stanza-wide.

        Adds the step's parameters to `parameters` and returns the step's secret names.
        """
        stanza = render(stanza_path)
        if "parameters" in step_body:
            self.warn(
                (*step_path, "parameters"),
                f"parameters inside a step are not Bedrock's form; they are merged into "
                f"{stanza}.parameters, which every step of {stanza} sees",
            )
            for key, text in self._parameters(step_body, step_path).items():
                if key in parameters and parameters[key] != text:
                    self.warn(
                        (*step_path, "parameters", key),
                        f"{stanza}.parameters also sets {key}; that value is used",
                    )
                else:
                    parameters.setdefault(key, text)
        if "secrets" not in step_body:
            return ()
        self.warn(
            (*step_path, "secrets"),
            f"secrets inside a step are not Bedrock's form; they are merged into {stanza}.secrets",
        )
        return self._secrets(step_body, step_path)
