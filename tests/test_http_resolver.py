"""Requests resolved on many threads at once each see their own event, over a real socket."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from aws_lambda_powertools.event_handler.api_gateway import Route
from pydantic import BaseModel

from lookalike.http.resolver import ThreadSafeResolver
from lookalike.http.server import make_server


class Word(BaseModel):
    word: str


@pytest.fixture
def overlapping_app():
    """POST /echo waits until two requests are inside it, then answers from its own event."""
    app = ThreadSafeResolver(enable_validation=True)
    both_inside = threading.Barrier(2, timeout=10)

    @app.post("/echo")
    def echo(request: Word) -> dict:
        both_inside.wait()
        return {
            "validated": request.word,
            "event": app.current_event.json_body["word"],
            "route": app.context["_route"].path,
        }

    @app.get("/echo/<word>")
    def echo_path(word: str) -> dict:
        both_inside.wait()
        return {"word": word, "path": app.current_event.path}

    return app


@pytest.fixture
def url(overlapping_app):
    server = make_server(overlapping_app, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_two_overlapping_requests_each_get_their_own_answer(url):
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(
            lambda word: requests.post(f"{url}/echo", json={"word": word}, timeout=30), ["alpha", "beta"]
        )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == {"validated": "alpha", "event": "alpha", "route": "/echo"}
    assert second.json() == {"validated": "beta", "event": "beta", "route": "/echo"}


def test_overlapping_path_parameters_stay_apart(url):
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda word: requests.get(f"{url}/echo/{word}", timeout=30), ["one", "two"]))
    assert [answer.json() for answer in answers] == [
        {"word": "one", "path": "/echo/one"},
        {"word": "two", "path": "/echo/two"},
    ]


def test_a_route_first_called_on_two_threads_runs_its_middlewares_once(monkeypatch):
    app = ThreadSafeResolver()
    calls: list[str] = []
    both_inside = threading.Barrier(2, timeout=10)
    build = Route._build_middleware_stack

    def slow_build(route, **kwargs):
        # Long enough for the other thread's first call to arrive while this one is building.
        time.sleep(0.3)
        build(route, **kwargs)

    monkeypatch.setattr(Route, "_build_middleware_stack", slow_build)

    def count(app, next_middleware):
        calls.append(app.current_event.path)
        return next_middleware(app)

    app.use(middlewares=[count])

    @app.get("/once")
    def once() -> dict:
        both_inside.wait()
        return {}

    event = {
        "version": "2.0",
        "rawPath": "/once",
        "rawQueryString": "",
        "headers": {},
        "requestContext": {"http": {"method": "GET", "path": "/once"}, "stage": "$default"},
    }
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: app.resolve(event, None), range(2)))
    assert [result["statusCode"] for result in results] == [200, 200]
    assert calls == ["/once", "/once"]
