"""What each Lambda function tells its operators, seen from a cold start in an interpreter of its
own (tests.support.cold_start) with the variables the stack gives it and those Lambda adds when
tracing is active: every log record, the library's as well as the handler's, carries the
function's service name, and the search and indexer functions send their trace segments to the
X-Ray daemon, played here by a UDP socket."""

import json
import socket
from dataclasses import dataclass

import pytest

from tests.support.cold_start import cold_start
from tests.support.opensearch_loopback import LoopbackOpenSearch

FUNCTIONS = ("search", "indexer", "admin")
# A record each function writes from the library (a route, the ledger), not from its handler.
LIBRARY_MESSAGE = {"search": "search", "indexer": "event applied", "admin": "block list changed"}
TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
# What Lambda passes a sampled invocation: its trace, and the id of the segment Lambda opened for it.
INVOCATION_SEGMENT = "53995c3f42cd8ad8"
TRACE_HEADER = f"Root={TRACE_ID};Parent={INVOCATION_SEGMENT};Sampled=1"


@dataclass
class Started:
    logs: list[dict]  # the JSON log lines
    segments: list[dict]  # the trace documents the daemon received


@pytest.fixture(scope="module")
def start(model_path):
    """Start a function (once per module, per tracing setting)."""
    server = LoopbackOpenSearch().start()
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.setblocking(False)
    started: dict[tuple[str, bool], Started] = {}

    def start(function: str, tracing: bool = True) -> Started:
        if (function, tracing) not in started:
            variables = {
                "POWERTOOLS_SERVICE_NAME": f"lookalike-{function}",
                "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
                "LAMBDA_TASK_ROOT": "/var/task",
                "_X_AMZN_TRACE_ID": TRACE_HEADER,
                "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:%d" % daemon.getsockname()[1],
            }
            logs = cold_start(function, server.url, model_path, variables)
            started[function, tracing] = Started(logs, _received(daemon))
        return started[function, tracing]

    yield start
    daemon.close()
    server.stop()
    assert not server.failures, server.failures[0]


def _received(daemon: socket.socket) -> list[dict]:
    """Each datagram is a JSON header line, then one segment or subsegment document."""
    documents = []
    while True:
        try:
            datagram = daemon.recv(1 << 16)
        except BlockingIOError:
            return documents
        documents.append(json.loads(datagram.decode().partition("\n")[2]))


def _named(segments: list[dict], suffix: str) -> dict:
    (segment,) = [segment for segment in segments if segment["name"].endswith(suffix)]
    return segment


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_record_carries_the_service_name_the_stack_gives_the_function(start, function):
    logs = start(function).logs
    assert LIBRARY_MESSAGE[function] in [line["message"] for line in logs], logs
    services = {line["message"]: line["service"] for line in logs}
    assert set(services.values()) == {f"lookalike-{function}"}, f"records under other service names: {services}"


def test_a_search_is_traced_inside_its_invocation(start):
    segments = start("search").segments
    handler = _named(segments, "## lambda_handler")
    search = _named(segments, ".search")
    assert handler["parent_id"] == INVOCATION_SEGMENT, "the handler's subsegment hangs off Lambda's segment"
    assert search["parent_id"] == handler["id"], "the search route's subsegment hangs off the handler's"
    assert {segment["trace_id"] for segment in segments} == {TRACE_ID}


def test_an_index_batch_is_traced_record_by_record(start):
    segments = start("indexer").segments
    handler = _named(segments, "## lambda_handler")
    record = _named(segments, ".record_handler")
    assert handler["parent_id"] == INVOCATION_SEGMENT
    assert record["parent_id"] == handler["id"], "each record's subsegment hangs off the batch's"
    reads = [segment for segment in segments if segment["name"] == "s3" and segment["parent_id"] == record["id"]]
    assert reads, "the record's S3 calls are traced inside it"


def test_the_stacks_tracing_switch_turns_tracing_off(start):
    started = start("search", tracing=False)
    assert "search" in [line["message"] for line in started.logs]
    assert started.segments == []
