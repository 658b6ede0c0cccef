#!/usr/bin/env python3
"""Start a batch scoring run with the version a model alias names (or the model's newest or best
version) and wait for the outcome.

What a scheduler (cron, Airflow, a CI job) runs against Bedrock's GraphQL API. Standard library
only. Exit status: 0 if the run succeeded, 1 if it ended otherwise, 2 if it could not be started.

    BEDROCK_URL=http://127.0.0.1:8000 BEDROCK_TOKEN=bdrk_... \\
        python3 bedrock/examples/scheduler.py --pipeline 2 --alias churn@production \\
        --key "nightly-$(date +%F)"

The idempotency key makes a retried call safe: the same key on the same pipeline returns the run
the first call started instead of starting another.

With ``--best auc`` it scores with the version whose training run logged the highest auc instead
(``--best loss --lowest`` for the lowest loss); versions whose run logged no such metric are
never picked.

With ``--alias churn@production`` (or ``--alias production`` when only one model of the project
has it) it scores with the version the alias names when the run starts, and ``--model`` may be
left out. The run keeps that version: moving the alias later changes neither it nor its reruns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED", "REJECTED"}

NEWEST_VERSION = """query($model: ID!) { model(id: $model) { name
    versions(first: 1, filters: {offered: true}, ordering: [{number: DESC}]) {
      edges { node { id number } } } } }"""

# Ties go to the newest version; the filter leaves out versions whose run logged no such metric.
BEST_VERSION = """query($model: ID!, $metric: String!, $direction: SortDirection!) {
  model(id: $model) { name
    versions(first: 1, filters: {offered: true, metric: {name: $metric}},
             ordering: [{metric: {name: $metric, direction: $direction}}]) {
      edges { node { id number metrics { name latestValue } } } } } }"""

START_RUN = """mutation($pipeline: ID!, $version: ID!, $key: String, $parameters: JSON) {
  startRun(pipelineId: $pipeline, modelVersionId: $version, idempotencyKey: $key,
           parameters: $parameters) {
    ... on Run { id number status failureReason }
    ... on OperationInfo { messages { kind field message } }
  }
}"""

START_RUN_BY_ALIAS = """mutation($pipeline: ID!, $alias: String!, $key: String, $parameters: JSON) {
  startRun(pipelineId: $pipeline, modelAlias: $alias, idempotencyKey: $key,
           parameters: $parameters) {
    ... on Run { id number status failureReason inputModelAlias inputModelVersion { id number } }
    ... on OperationInfo { messages { kind field message } }
  }
}"""

RUN = """query($id: ID!) { run(id: $id) { status failureReason
    steps { edges { node { name } } } } }"""

STEP_LOG = """query($id: ID!, $step: String!, $offset: BigInt!) { run(id: $id) {
    steps(filters: {name: {exact: $step}}) { edges { node { log(offset: $offset) {
    text nextOffset } } } } } }"""


class ApiError(Exception):
    pass


def graphql(url: str, token: str, query: str, **variables) -> dict:
    request = urllib.request.Request(  # noqa: S310 (main() allows http and https only)
        url.rstrip("/") + "/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            body = json.load(response)
    except urllib.error.HTTPError as error:
        raise ApiError(f"HTTP {error.code}: {error.read().decode(errors='replace')}") from None
    if body.get("errors"):
        raise ApiError("; ".join(error["message"] for error in body["errors"]))
    return body["data"]


def newest_version(url: str, token: str, model_id: str) -> dict:
    model = graphql(url, token, NEWEST_VERSION, model=model_id)["model"]
    if model is None:
        raise ApiError(f"there is no model {model_id} (or this token may not see it)")
    edges = model["versions"]["edges"]
    if not edges:
        raise ApiError(f"the model {model['name']} has no version offered for new runs yet")
    return edges[0]["node"]


def best_version(url: str, token: str, model_id: str, metric: str, lowest: bool) -> dict:
    direction = "ASC" if lowest else "DESC"
    found = graphql(url, token, BEST_VERSION, model=model_id, metric=metric, direction=direction)
    model = found["model"]
    if model is None:
        raise ApiError(f"there is no model {model_id} (or this token may not see it)")
    edges = model["versions"]["edges"]
    if not edges:
        raise ApiError(f"no version of the model {model['name']} has a metric {metric!r}")
    version = edges[0]["node"]
    version["value"] = next(m["latestValue"] for m in version["metrics"] if m["name"] == metric)
    return version


def print_new_log(url: str, token: str, run_id: str, run: dict, offsets: dict[str, int]) -> None:
    """Print what each step logged since the last call; ``offsets`` remembers where each was."""
    for edge in run["steps"]["edges"]:
        name = edge["node"]["name"]
        found = graphql(url, token, STEP_LOG, id=run_id, step=name, offset=offsets.get(name, 0))
        for step in found["run"]["steps"]["edges"]:
            chunk = step["node"]["log"]
            for line in chunk["text"].splitlines():
                print(f"[{name}] {line}", flush=True)
            offsets[name] = chunk["nextOffset"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("BEDROCK_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("BEDROCK_TOKEN"))
    parser.add_argument("--pipeline", required=True, help="the batch scoring pipeline's id")
    parser.add_argument("--model", help="the id of the model to score with (not with --alias)")
    parser.add_argument(
        "--alias", help="score with the version this alias names, such as churn@production"
    )
    parser.add_argument("--key", help="idempotency key, such as nightly-2025-01-31")
    parser.add_argument(
        "--best", metavar="METRIC", help="score with the version with the highest METRIC"
    )
    parser.add_argument("--lowest", action="store_true", help="with --best: the lowest instead")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    parser.add_argument("--timeout", type=float, default=24 * 3600, help="seconds to wait")
    parser.add_argument("--logs", action="store_true", help="print the steps' logs as they grow")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set BEDROCK_TOKEN")
    if not args.url.startswith(("http://", "https://")):
        parser.error(f"--url must be an http:// or https:// address, not {args.url!r}")
    if bool(args.alias) == bool(args.model):
        parser.error("give --model (the newest or --best version) or --alias, one of the two")
    if args.alias and args.best:
        parser.error("--best picks a version of --model; an alias names its version itself")
    parameters = dict(item.partition("=")[::2] for item in args.param)

    try:
        if args.alias:
            started = start_by_alias(args, parameters)
        else:
            started = start_by_version(args, parameters)
    except (ApiError, OSError) as error:
        print(f"cannot start the run: {error}", file=sys.stderr)
        return 2
    if "messages" in started:
        for message in started["messages"]:
            print(f"cannot start the run: {message['message']}", file=sys.stderr)
        return 2
    return wait_for_run(args, started)


def start_by_alias(args: argparse.Namespace, parameters: dict[str, str]) -> dict:
    started = graphql(
        args.url,
        args.token,
        START_RUN_BY_ALIAS,
        pipeline=args.pipeline,
        alias=args.alias,
        key=args.key,
        parameters=parameters or None,
    )["startRun"]
    if "messages" not in started and started["inputModelVersion"]:
        version = started["inputModelVersion"]
        print(
            f"scoring with {started['inputModelAlias']}: model version {version['number']} "
            f"(id {version['id']})",
            flush=True,
        )
    return started


def start_by_version(args: argparse.Namespace, parameters: dict[str, str]) -> dict:
    if args.best:
        version = best_version(args.url, args.token, args.model, args.best, args.lowest)
        chosen = f"{args.best} {version['value']}"
    else:
        version = newest_version(args.url, args.token, args.model)
        chosen = "the newest"
    print(
        f"scoring with model version {version['number']} (id {version['id']}): {chosen}",
        flush=True,
    )
    started = graphql(
        args.url,
        args.token,
        START_RUN,
        pipeline=args.pipeline,
        version=version["id"],
        key=args.key,
        parameters=parameters or None,
    )["startRun"]
    return started


def wait_for_run(args: argparse.Namespace, started: dict) -> int:
    run_id, number, status = started["id"], started["number"], started["status"]
    print(f"run {number} (id {run_id}): {status}", flush=True)

    deadline = time.monotonic() + args.timeout
    offsets: dict[str, int] = {}
    run = started
    while True:
        try:
            run = graphql(args.url, args.token, RUN, id=run_id)["run"]
            if args.logs:
                print_new_log(args.url, args.token, run_id, run, offsets)
        except (ApiError, OSError) as error:  # a restarting server is no reason to give up
            print(f"polling failed, retrying: {error}", file=sys.stderr)
        else:
            if run["status"] != status:
                status = run["status"]
                print(f"run {number}: {status}", flush=True)
            if status in TERMINAL:
                break
        if time.monotonic() > deadline:
            print(f"gave up waiting after {args.timeout:.0f}s; the run goes on", file=sys.stderr)
            return 1
        time.sleep(args.interval)
    if status != "SUCCEEDED":
        print(f"the run ended {status}: {run.get('failureReason') or 'no reason given'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
