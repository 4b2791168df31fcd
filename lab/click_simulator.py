"""A deterministic click simulator: simulated users play against the real search over HTTP.

It exercises the whole learning loop here, without users: searches go through `POST /search`
and what users do through `POST /events` (impressions as application/json, clicks and dwell as
text/plain, the way a page's `navigator.sendBeacon` sends them), on the local server run in
this process, into the store's event log (`<store>/events.sqlite`).

Data: Tiny ImageNet's training subset only (read from the tar in place), never validation
images, which reported evaluations use. For each of the first `classes` classes (WordNet ids in
sorted order), file numbers 0..per_class-1 form the gallery (`gallery/WNID/WNID_N.JPEG`,
indexed) and the next `queries_per_class` the queries (`gallery/.queries/WNID/WNID_N.JPEG`:
inside the gallery folder, so that training finds them by key, but hidden, so never indexed).
A result is relevant to a query when it is of the query's class.

Users (the click model, `ClickModel`): each session issues one query drawn from the query pool,
so a query is seen by several sessions and evidence can accumulate across them. The session
sees the ranked results and, under the position-based model, examines the result at position p
with probability (1/p)^eta and clicks an examined result with probability `attract_relevant`
(same class) or `attract_irrelevant` (noise clicks). Each click is followed by a dwell time,
log-normal around `dwell_relevant_ms` or `dwell_irrelevant_ms` (a quick bounce back: many
irrelevant clicks stay under a second); a dwell report is lost with probability `lost_dwell`;
a click is sent twice (a double click, another event id) with probability `repeat_click`; a
whole events request is sent again (a retry, the same event ids) with probability `retry`.

Everything random comes from one generator seeded with the seed and the data parameters, so
the same run posts the same events (but for the query ids the server draws). Runs append to the
store's log: the same seed again replays the same sessions, which adds searches to the online
metrics but no evidence to the training set (it counts distinct sessions); another seed adds
other users. Delete `<store>/events.sqlite` to start afresh.
"""

import base64
import http.client
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.cli import progress_bar
from lookalike.embedding import Embedder
from lookalike.errors import LookalikeError
from lookalike.interactions.sqlite_log import EVENTS_FILENAME, SqliteEventLog
from lookalike.http.app import create_app
from lookalike.http.search_routes import logger as route_log
from lookalike.http.server import make_server
from lookalike.indexing import Indexer, ProgressCallback
from lookalike.search import SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from lab.datasets import TINY_IMAGENET_TRAIN, TRAIN_IMAGES_PER_CLASS, tiny_imagenet_train

QUERIES_FOLDER = ".queries"


def default_work_dir() -> Path:
    """`$XDG_CACHE_HOME/lookalike/simulator` (~/.cache/...): outside any repository."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "lookalike" / "simulator"


@dataclass(frozen=True)
class ClickModel:
    eta: float = 1.0  # examination probability at position p: (1/p)^eta
    attract_relevant: float = 0.7
    attract_irrelevant: float = 0.1
    dwell_relevant_ms: float = 15_000  # median of the log-normal dwell
    dwell_irrelevant_ms: float = 1_200
    dwell_sigma: float = 0.9
    lost_dwell: float = 0.1
    repeat_click: float = 0.05
    retry: float = 0.05

    def clicks(self, relevant: list[bool], rng: np.random.Generator) -> list[int]:
        """The 1-based positions this user clicks, top first."""
        clicked = []
        for position, is_relevant in enumerate(relevant, start=1):
            examined = rng.random() < (1 / position) ** self.eta
            attracted = rng.random() < (self.attract_relevant if is_relevant else self.attract_irrelevant)
            if examined and attracted:
                clicked.append(position)
        return clicked

    def dwell_ms(self, relevant: bool, rng: np.random.Generator) -> int:
        median = self.dwell_relevant_ms if relevant else self.dwell_irrelevant_ms
        return int(median * np.exp(self.dwell_sigma * rng.standard_normal()))


@dataclass(frozen=True)
class SimulationSettings:
    work: Path = field(default_factory=default_work_dir)
    tar: Path = TINY_IMAGENET_TRAIN
    classes: int = 50
    per_class: int = 20
    queries_per_class: int = 2
    sessions: int = 1000
    seed: int = 0
    k: int = 10
    click_model: ClickModel = ClickModel()

    @property
    def gallery(self) -> Path:
        return self.work / "gallery"

    @property
    def store(self) -> Path:
        return self.work / "store"


@dataclass
class SimulationSummary:
    sessions: int = 0
    results_shown: int = 0
    relevant_shown: int = 0
    clicks: int = 0  # distinct results clicked
    relevant_clicks: int = 0
    events_posted: int = 0
    events_stored: int = 0
    events_duplicate: int = 0
    index_seconds: float = 0.0
    play_seconds: float = 0.0

    def text(self) -> str:
        irrelevant_shown = self.results_shown - self.relevant_shown
        irrelevant_clicks = self.clicks - self.relevant_clicks
        return "\n".join(
            [
                f"sessions {self.sessions}, results shown {self.results_shown} "
                f"({_share(self.relevant_shown, self.results_shown)} relevant)",
                f"clicks {self.clicks}: CTR of relevant results {_share(self.relevant_clicks, self.relevant_shown)}, "
                f"of irrelevant ones {_share(irrelevant_clicks, irrelevant_shown)}",
                f"events posted {self.events_posted}: stored {self.events_stored}, duplicates {self.events_duplicate}",
                f"indexing {self.index_seconds:.1f} s, playing {self.play_seconds:.1f} s",
            ]
        )


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def prepare_gallery(settings: SimulationSettings) -> tuple[list[str], list[str]]:
    """Writes (or reuses) the gallery and query images; returns (gallery keys, query keys).

    Images of an earlier run with other parameters are removed, so the folder holds exactly
    this run's images and indexing drops the others from the store."""
    if not 1 <= settings.per_class < settings.per_class + settings.queries_per_class <= TRAIN_IMAGES_PER_CLASS:
        raise LookalikeError(f"per_class + queries_per_class must be at most {TRAIN_IMAGES_PER_CLASS}, with both >= 1")
    if not settings.tar.is_file():
        raise LookalikeError(f"no Tiny ImageNet training tar at {settings.tar}: pass --tar")
    root = settings.gallery
    wanted: dict[str, bytes] = {}
    gallery_keys, query_keys = [], []
    images = tiny_imagenet_train(settings.tar, settings.classes, settings.per_class + settings.queries_per_class)
    for number, image in images:
        name = f"{image.label}/{image.name}"
        key = name if number < settings.per_class else f"{QUERIES_FOLDER}/{name}"
        (gallery_keys if number < settings.per_class else query_keys).append(key)
        wanted[key] = image.data
    for key, data in wanted.items():
        path = root / key
        if not path.is_file() or path.stat().st_size != len(data):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    for path in root.rglob("*.JPEG"):
        if path.relative_to(root).as_posix() not in wanted:
            path.unlink()
    return gallery_keys, query_keys


def image_class(key: str) -> str:
    """The WordNet id of a simulator key (`WNID/WNID_N.JPEG` or `.queries/WNID/WNID_N.JPEG`)."""
    return Path(key).name.split("_")[0]


def simulate(
    settings: SimulationSettings, embedder: Embedder, store_path: Path, progress: bool = True
) -> SimulationSummary:
    """Build the gallery, index it into `store_path`, serve it and play the sessions."""
    summary = SimulationSummary()
    started = time.perf_counter()
    _, query_keys = prepare_gallery(settings)
    store = FaissStore(store_path)
    source = FolderSource(settings.gallery)
    with progress_bar(disable=not progress) as on_progress:
        Indexer(source, embedder, store).sync(on_progress=on_progress)
    summary.index_seconds = time.perf_counter() - started
    log = SqliteEventLog(Path(store_path) / EVENTS_FILENAME)
    app = create_app(SearchService(embedder, store), source, admin=False, events=log)
    started = time.perf_counter()
    try:
        with _serving(app) as port, progress_bar("sessions", "session", disable=not progress) as on_progress:
            _play(port, settings, query_keys, summary, on_progress)
    finally:
        log.close()
    summary.play_seconds = time.perf_counter() - started
    return summary


@contextmanager
def _serving(app) -> Iterator[int]:
    """The app on a free local port (yielded), its per-request log lines silenced (thousands)."""
    # powertools gives every Logger of one service one stdlib logger: this silences every route's.
    level = route_log.log_level
    route_log.setLevel(logging.WARNING)
    server = make_server(app, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        route_log.setLevel(level)


def _play(
    port: int,
    settings: SimulationSettings,
    query_keys: list[str],
    summary: SimulationSummary,
    on_progress: ProgressCallback,
) -> None:
    model = settings.click_model
    rng = np.random.default_rng(
        [settings.seed, settings.classes, settings.per_class, settings.queries_per_class, settings.k]
    )
    for _ in range(settings.sessions):
        session_id = rng.bytes(16).hex()
        query_key = query_keys[int(rng.integers(len(query_keys)))]
        query_image = (settings.gallery / query_key).read_bytes()
        reply = _post(port, "/search", {"image": base64.b64encode(query_image).decode(), "k": settings.k})
        results = [hit["id"] for hit in reply["results"]]
        relevant = [image_class(image_id) == image_class(query_key) for image_id in results]
        ids = (f"e{number}" for number in itertools.count())
        common = {"query_id": reply["query_id"], "session_id": session_id}
        impression = {
            "type": "impression",
            "event_id": next(ids),
            **common,
            "query_key": query_key,
            "results": [{"image_id": image_id, "position": p} for p, image_id in enumerate(results, start=1)],
        }
        _post_events(port, [impression], "application/json", summary)
        actions = []
        for position in model.clicks(relevant, rng):
            image_id, is_relevant = results[position - 1], relevant[position - 1]
            click = {"type": "click", "event_id": next(ids), **common, "image_id": image_id, "position": position}
            actions.append(click)
            if rng.random() < model.repeat_click:
                actions.append({**click, "event_id": next(ids)})
            dwell_ms = model.dwell_ms(is_relevant, rng)
            if rng.random() >= model.lost_dwell:
                dwell = {"type": "dwell", "event_id": next(ids), **common, "image_id": image_id, "dwell_ms": dwell_ms}
                actions.append(dwell)
            summary.clicks += 1
            summary.relevant_clicks += is_relevant
        if actions:
            _post_events(port, actions, "text/plain;charset=UTF-8", summary)
            if rng.random() < model.retry:
                _post_events(port, actions, "text/plain;charset=UTF-8", summary)
        summary.sessions += 1
        summary.results_shown += len(results)
        summary.relevant_shown += sum(relevant)
        on_progress(summary.sessions, settings.sessions)


def _post_events(port: int, events: list[dict], content_type: str, summary: SimulationSummary) -> None:
    reply = _post(port, "/events", events, content_type)
    summary.events_posted += len(events)
    summary.events_stored += reply["stored"]
    summary.events_duplicate += reply["duplicates"]


def _post(port: int, path: str, payload, content_type: str = "application/json") -> dict:
    """One connection per request, as a page's beacons are sent. (On a kept-alive connection the
    local server's response, written as headers then body, waits for the client's delayed ACK:
    40 ms a request.)"""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", path, body=json.dumps(payload).encode(), headers={"Content-Type": content_type})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status not in (200, 202):
        raise LookalikeError(f"POST {path} answered {response.status}: {body[:500].decode(errors='replace')}")
    return json.loads(body)
