"""What a step's image must hold for the main task's program, and the images known to lack it.

The main task runs ``bash -c`` over the step's command, under ``timeout -s TERM -k`` (GNU
coreutils' options): an image without ``bash``, or whose ``timeout`` is BusyBox's, fails every
step before its command starts, on the Nomad client, with nothing in Bedrock's log. The image is
not pulled here, so only images whose name says what they are can be refused at render time: the
official Alpine and BusyBox images and the Alpine tags of the official images (no ``bash``), and
distroless images (no shell at all). Any other image is taken to be fine; the README's Nomad
section says what the clients and images need.
"""

from __future__ import annotations

from bedrock.runs.executors.base import ExecutorError

_NO_BASH = ("alpine", "busybox")
_LIBRARY_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "library/")


class UnsuitableImage(ExecutorError):
    """A step's image that cannot run the main task's program."""


def _split(image: str) -> tuple[str, str]:
    """``(repository, tag)`` of an image reference, without its digest."""
    name = image.split("@", 1)[0]
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:  # no tag, only a registry's port
        return name, "latest"
    return repository, tag


def _is_library(repository: str) -> bool:
    """An official Docker Hub image: ``python``, ``library/python``, ``docker.io/library/...``."""
    for prefix in _LIBRARY_PREFIXES:
        repository = repository.removeprefix(prefix)
    return "/" not in repository


def image_problem(image: str) -> str:
    """Why the main task cannot run in ``image``, when its name says so; else ``""``."""
    repository, tag = _split(image.strip().lower())
    base = repository.rsplit("/", 1)[-1]
    if base in _NO_BASH or (_is_library(repository) and any(n in tag for n in _NO_BASH)):
        kind = "BusyBox" if "busybox" in (base + tag) else "Alpine"
        return (
            f"the image {image} is {kind}-based, without bash and GNU timeout, which a step on "
            "Nomad runs under (bash -c, timeout -s TERM -k); use a Debian- or Ubuntu-based image "
            "such as python:3.11-slim, or one of your own with bash and coreutils installed "
            "(apk add bash coreutils)"
        )
    if "distroless" in repository:
        return (
            f"the image {image} is distroless, without the bash a step on Nomad runs under; use "
            "an image with bash and coreutils, such as python:3.11-slim"
        )
    return ""


def check_step_image(step_name: str, image: str) -> None:
    problem = image_problem(image)
    if problem:
        raise UnsuitableImage(f"step {step_name!r}: {problem}")
