"""What each Lambda function tells its operators, seen from a cold start in an interpreter of its
own (tests.support.cold_start) with the variables the stack gives it: every log record, the
library's as well as the handler's, carries the function's service name."""

import pytest

from tests.support.cold_start import cold_start
from tests.support.opensearch_loopback import LoopbackOpenSearch

FUNCTIONS = ("search", "indexer", "admin")
# A record each function writes from the library (a route, the ledger), not from its handler.
LIBRARY_MESSAGE = {"search": "search", "indexer": "event applied", "admin": "block list changed"}


@pytest.fixture(scope="module")
def start(model_path):
    """Start a function (once per module): its JSON log lines."""
    server = LoopbackOpenSearch().start()
    started: dict[str, list[dict]] = {}

    def start(function: str) -> list[dict]:
        if function not in started:
            variables = {"POWERTOOLS_SERVICE_NAME": f"lookalike-{function}"}
            started[function] = cold_start(function, server.url, model_path, variables)
        return started[function]

    yield start
    server.stop()
    assert not server.failures, server.failures[0]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_record_carries_the_service_name_the_stack_gives_the_function(start, function):
    logs = start(function)
    assert LIBRARY_MESSAGE[function] in [line["message"] for line in logs], logs
    services = {line["message"]: line["service"] for line in logs}
    assert set(services.values()) == {f"lookalike-{function}"}, f"records under other service names: {services}"
