"""A Lambda function's cold start in an interpreter of its own, for what only a new process shows.

powertools reads the environment once, when a module creates its Logger or Tracer: the service
name every log record carries (POWERTOOLS_SERVICE_NAME, which the stack sets per function) and
whether to trace. The test process imported the library's modules long before any test set a
variable, so a test of those runs the function here instead: `cold_start` starts
`python -m tests.support.cold_start FUNCTION ...` with the function's variables; that interpreter
builds the deployment (moto, the loopback OpenSearch named by its URL, the model), imports the
function, hands it one typical invocation, checks that it succeeded and exits. What the function
logged is its stdout: one JSON document per line.
"""

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.api_gateway import Reply, api_event, b64
from tests.support.lambda_harness import LambdaContext, deployment, load_function
from tests.support.photos import encode, photo

ROOT = Path(__file__).resolve().parents[2]
GALLERY_KEY = "cats/chelsea.jpg"


def cold_start(function: str, opensearch_url: str, model_path: Path, variables: Mapping[str, str]) -> list[dict]:
    """The JSON log lines of `function`'s cold start and one invocation, with `variables` set."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.support.cold_start", function, opensearch_url, str(model_path)],
        cwd=ROOT,
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, f"the {function} function failed:\n{completed.stderr[-3000:]}"
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def _search(function, cloud) -> None:
    body = json.dumps({"image": b64(encode(photo("chelsea")))}).encode()
    event = api_event("POST", "/search", body, "application/json")
    reply = Reply(function.lambda_handler(event, LambdaContext(function_name="lookalike-search")))
    assert reply.status == 200, reply.content


def _indexer(function, cloud) -> None:
    event = cloud.deliver(cloud.put(GALLERY_KEY, encode(photo("chelsea"))))
    response = function.lambda_handler(event, LambdaContext(function_name="lookalike-indexer"))
    assert response["batchItemFailures"] == [], response


def _admin(function, cloud) -> None:
    event = api_event("PUT", "/blocklist/" + GALLERY_KEY.replace("/", "%2F"))
    reply = Reply(function.lambda_handler(event, LambdaContext(function_name="lookalike-admin")))
    assert reply.status == 200, reply.content


INVOCATIONS = {"search": _search, "indexer": _indexer, "admin": _admin}


def main(argv: list[str]) -> None:
    function, opensearch_url, model_path = argv
    with pytest.MonkeyPatch.context() as monkeypatch, deployment(monkeypatch, opensearch_url, Path(model_path)) as cloud:
        INVOCATIONS[function](load_function(function), cloud)


if __name__ == "__main__":
    main(sys.argv[1:])
