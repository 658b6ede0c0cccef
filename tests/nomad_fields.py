"""Check a JSON body against the field names and Go types of Nomad's `api` structs.

Nomad decodes request bodies with plain `encoding/json`: an unknown key is dropped without a word,
a key is matched to its Go field case-insensitively, and a value of the wrong JSON type fails the
whole request with HTTP 400. The field map in `../nomad/nomad-api-fields.json` (generated from
`api/*.go` of each Nomad release) lets a test see what Nomad would do with a body we render.

`decode` mirrors the Go decoder: it returns the body as Nomad would keep it (canonical keys, unknown
keys gone) and the findings. `walk` returns the findings as text.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIELDS_PATH = (
    Path(__file__).resolve().parents[1].parent / "shared" / "nomad" / "nomad-api-fields.json"
)


def require() -> None:
    """Skip the calling test when the field map is not beside the checkout (CI always has it)."""
    if not FIELDS_PATH.is_file():
        pytest.skip(f"{FIELDS_PATH} is absent: Nomad's field map sits beside the checkout in CI")


UNKNOWN = "unknown"  # Nomad drops the key
CASE = "case"  # Go matches the key case-insensitively; we want the canonical spelling
TYPE = "type"  # Go's decoder rejects the value: HTTP 400
DOCKER = "docker"  # the docker driver rejects the task config when the task starts

_INT_RANGES = {
    "int": (-(2**63), 2**63 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int8": (-128, 127),
    "uint64": (0, 2**64 - 1),
    "uint32": (0, 2**32 - 1),
    "uint8": (0, 255),
    "time.Duration": (-(2**63), 2**63 - 1),
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


@dataclass(frozen=True)
class Finding:
    """One thing Nomad would do differently from what the body seems to say."""

    path: str
    kind: str
    message: str
    go_error: str = ""  # for TYPE findings: the text of Go's decoding error

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@functools.cache
def load_fields() -> dict[str, Any]:
    require()
    return json.loads(FIELDS_PATH.read_text())


def structs(version: str) -> dict[str, dict[str, Any]]:
    versions = load_fields()["versions"]
    if version not in versions:
        raise KeyError(f"no field map for Nomad {version}; have {sorted(versions)}")
    return versions[version]


def docker_config_keys(version: str) -> frozenset[str]:
    return frozenset(load_fields()["docker_task_config_keys"][version])


def struct_fields(version: str, name: str) -> dict[str, str]:
    """Field name → Go type of one struct, embedded structs included."""
    table = structs(version)
    fields: dict[str, str] = {}
    for key, gotype in table[name].items():
        if key == "__embedded__":
            for embedded in gotype:
                if embedded in table:
                    fields.update(struct_fields(version, embedded))
        else:
            fields[key] = gotype
    return fields


def walk(body: dict, *, version: str = "v2.0.5", root: str = "JobRegisterRequest") -> list[str]:
    """Every key Nomad would drop or match only by case, every wrong JSON type, every unknown
    docker `Config` key, as `Path.To[0].Key: what is wrong`."""
    return [str(f) for f in decode(body, version=version, root=root)[1]]


def decode(
    body: Any, *, version: str = "v2.0.5", root: str = "JobRegisterRequest"
) -> tuple[Any, list[Finding]]:
    """The body as Nomad's decoder would keep it, and the findings."""
    walker = _Walker(version, root)
    value = walker.value(body, root, path="", gopath=root)
    return value, walker.findings


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Walker:
    def __init__(self, version: str, root: str) -> None:
        self.version = version
        self.table = structs(version)
        self.docker_keys = docker_config_keys(version)
        self.findings: list[Finding] = []
        if root not in self.table:
            raise KeyError(f"no struct {root!r} in the field map for {version}")

    def type_error(self, path: str, gopath: str, value: Any, gotype: str, why: str) -> None:
        shown = _json_type(value)
        if shown == "number":
            shown = f"number {json.dumps(value)}"
        go_error = f"json: cannot unmarshal {shown} into Go struct field {gopath} of type {gotype}"
        self.findings.append(Finding(path or "(body)", TYPE, why, go_error))

    def value(self, value: Any, gotype: str, *, path: str, gopath: str) -> Any:
        # A JSON null leaves any Go value at its zero value: never an error.
        if value is None:
            return None
        gotype = gotype.removeprefix("*")
        if gotype.startswith("[]") and gotype != "[]byte":
            if not isinstance(value, list):
                self.type_error(path, gopath, value, gotype, f"expected a JSON array ({gotype})")
                return None
            inner = gotype[2:]
            return [
                self.value(v, inner, path=f"{path}[{i}]", gopath=gopath)
                for i, v in enumerate(value)
            ]
        if gotype.startswith("map[string]"):
            inner = gotype[len("map[string]") :]
            if not isinstance(value, dict):
                self.type_error(path, gopath, value, gotype, f"expected a JSON object ({gotype})")
                return None
            if inner in ("any", "interface{}"):
                return value
            return {
                k: self.value(v, inner, path=f"{path}.{k}" if path else k, gopath=gopath)
                for k, v in value.items()
            }
        return self.scalar_or_struct(value, gotype, path=path, gopath=gopath)

    def scalar_or_struct(self, value: Any, gotype: str, *, path: str, gopath: str) -> Any:
        if gotype == "string":
            if not isinstance(value, str):
                self.type_error(path, gopath, value, gotype, "expected a string")
            return value
        if gotype == "bool":
            if not isinstance(value, bool):
                self.type_error(path, gopath, value, gotype, "expected true or false")
            return value
        if gotype in _INT_RANGES:
            lo, hi = _INT_RANGES[gotype]
            if gotype == "time.Duration" and not (
                isinstance(value, int) and not isinstance(value, bool)
            ):
                self.type_error(
                    path,
                    gopath,
                    value,
                    gotype,
                    "durations must be integers (nanoseconds), e.g. 30000000000 for 30s",
                )
            elif not isinstance(value, int) or isinstance(value, bool):
                self.type_error(path, gopath, value, gotype, f"expected an integer ({gotype})")
            elif not lo <= value <= hi:
                self.type_error(
                    path, gopath, value, gotype, f"{value} is out of range for {gotype}"
                )
            return value
        if gotype in ("float64", "float32"):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                self.type_error(path, gopath, value, gotype, "expected a number")
            return value
        if gotype == "time.Time":
            if not isinstance(value, str) or not _RFC3339.match(value):
                self.type_error(path, gopath, value, gotype, "expected an RFC 3339 time string")
            return value
        if gotype == "[]byte":
            if not isinstance(value, str) or not _BASE64.match(value):
                self.type_error(path, gopath, value, gotype, "expected a base64 string")
            return value
        if gotype in self.table:
            if not isinstance(value, dict):
                self.type_error(path, gopath, value, gotype, f"expected a JSON object ({gotype})")
                return None
            return self.struct(value, gotype, path=path, gopath=gopath)
        # A type the map does not describe (Service, ScalingPolicy, ...): no opinion on it.
        return value

    def struct(self, value: dict, name: str, *, path: str, gopath: str) -> dict:
        fields = struct_fields(self.version, name)
        by_fold = {k.lower(): k for k in fields}
        out: dict[str, Any] = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            field = key if key in fields else by_fold.get(key.lower())
            if field is None:
                self.findings.append(Finding(where, UNKNOWN, "unknown key (Nomad drops it)"))
                continue
            if field != key:
                self.findings.append(
                    Finding(
                        where,
                        CASE,
                        f"not the canonical key {field!r} "
                        "(Go matches it case-insensitively; spell it exactly)",
                    )
                )
            gotype = fields[field]
            out[field] = self.value(item, gotype, path=where, gopath=f"{gopath}.{field}")
        if name == "Task" and out.get("Driver") == "docker" and isinstance(out.get("Config"), dict):
            for key in out["Config"]:
                if key not in self.docker_keys:
                    self.findings.append(
                        Finding(
                            f"{path}.Config.{key}",
                            DOCKER,
                            "unknown docker config key (the task fails validation when it starts)",
                        )
                    )
        return out
