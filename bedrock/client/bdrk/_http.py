"""Calls to Bedrock's API with the run's token: the one place the client opens a connection."""

import http.client
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from typing import IO, Optional

ATTEMPTS = 4
BACKOFF = 0.5  # seconds before the second attempt, doubled before each later one
TIMEOUT = 30


class Refused(Exception):
    """The server answered 4xx: sending the same request again would not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unreachable(Exception):
    """No answer, or only 5xx, after every attempt."""


def console(message: str) -> None:
    print("bdrk: " + message, file=sys.stderr, flush=True)


def api_domain() -> str:
    return os.environ.get("BEDROCK_API_DOMAIN", "").strip().rstrip("/")


def api_token() -> str:
    return os.environ.get("BEDROCK_API_TOKEN", "").strip()


def on_bedrock() -> bool:
    """A step Bedrock started has both; anywhere else the client only prints what it logs."""
    return bool(api_domain() and api_token())


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read().decode("utf-8", "replace")
    except OSError:
        return f"HTTP {error.code}"
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.strip()[:500] or f"HTTP {error.code}"


def call(
    method: str,
    path: str,
    body: Optional[bytes] = None,
    timeout: float = TIMEOUT,
    into: Optional[IO[bytes]] = None,
) -> bytes:
    """The response body (or written into a file); retries a lost connection or a 5xx with
    backoff, never a 4xx."""
    headers = {"Authorization": "Bearer " + api_token(), "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    url = api_domain() + path
    problem = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        # The URL is the platform's own BEDROCK_API_DOMAIN, never user input.
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                if into is None:
                    return response.read()
                # A model archive can be larger than memory: stream it, from the start each try.
                into.seek(0)
                into.truncate()
                shutil.copyfileobj(response, into, 1 << 20)
                return b""
        except urllib.error.HTTPError as error:
            if error.code < 500:
                raise Refused(error.code, _error_message(error)) from None
            problem = f"HTTP {error.code}: {_error_message(error)}"
        except (OSError, http.client.HTTPException) as error:  # URLError, a reset, a timeout
            problem = str(getattr(error, "reason", error))
    raise Unreachable(f"{method} {url} failed {ATTEMPTS} times: {problem}")
