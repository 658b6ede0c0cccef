"""deploy/bedrock.nomad.hcl, read as HCL: how its tasks get their secrets and stop in time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[1]


def unquoted(value: str) -> str:
    return value.strip('"')


def labelled(blocks: list[dict]) -> Iterator[tuple[str, dict]]:
    for block in blocks:
        for label, body in block.items():
            if not label.startswith("__"):
                yield unquoted(label), body


def tasks() -> Iterator[tuple[str, dict]]:
    job = hcl2.load((ROOT / "deploy" / "bedrock.nomad.hcl").open())
    for _, body in labelled(job["job"]):
        for _, group in labelled(body["group"]):
            yield from labelled(group["task"])


def test_each_secret_is_a_file_of_its_own_that_a_file_setting_reads():
    """Nomad's env-file parser reads an unquoted # as a comment and refuses stray quotes."""
    (locals_,) = hcl2.load((ROOT / "deploy" / "bedrock.nomad.hcl").open())["locals"]
    names = [unquoted(name) for name in locals_["secrets"]]
    assert names == [
        "DATABASE_URL",
        "BEDROCK_SECRET_KEYS",
        "BEDROCK_DJANGO_SECRET_KEY",
        "NOMAD_TOKEN",
    ]
    assert '"${name}_FILE" => "/secrets/${name}"' in locals_["env"]
    settings = (ROOT / "bedrock" / "settings.py").read_text()
    for name in names:
        assert f'env_secret("{name}")' in settings, name
    seen = 0
    for name, task in tasks():
        assert "template" not in task, f"{name} still renders an env-file template"
        ((_, template),) = labelled(task["dynamic"])
        assert template["for_each"] == "${local.secrets}"
        (content,) = template["content"]
        assert unquoted(content["destination"]) == "secrets/${template.value}"
        assert "{{ .${template.value} }}" in content["data"]  # field access: a missing item fails
        assert (content["uid"], content["gid"]) == (10001, 10001)  # deploy/Dockerfile's USER
        assert "local.env" in task["env"]
        seen += 1
    assert seen == 3


def test_no_task_asks_for_more_than_the_clients_default_max_kill_timeout():
    """Nomad caps kill_timeout at the client's max_kill_timeout, 30s by default."""
    for name, task in tasks():
        timeout = unquoted(task.get("kill_timeout", '"5s"'))
        assert timeout.endswith("s") and int(timeout[:-1]) <= 30, name
