"""The local server under load on loopback: throughput and latency at 1, 4 and 16 clients, and a
user's search latency while another client sends the slowest image the server accepts.

    python -m lab bench http_load [--quick] [--seconds 20] [--max-requests 2000] [--gallery 60]

A synthetic gallery (noise over gradients, JPEG) is indexed with the real model into a temporary
store, and `lookalike.http.server` serves it on 127.0.0.1 from this process. Each client thread
keeps one connection and posts multipart searches (a gallery image cropped and re-encoded) back to
back; each level stops at --seconds or --max-requests, whichever comes first. The slow image is a
PNG of one colour at the request's full-decode budget (`images.FULL_DECODE_PIXELS`, 2000x2000, a
few KB): the most a query in a format without reduced decoding may cost. RSS is the whole process (server and clients), read from
/proc before the first level, after each level, and after the server has been idle long enough
to trim its heap. `--quick` is a smoke run: 2 s per level.
"""

import http.client
import io
import logging
import math
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lab.bench import argument_parser
from lookalike.embedding import Embedder
from lookalike.http.app import create_app
from lookalike.http.server import make_server
from lookalike.images import FULL_DECODE_PIXELS
from lookalike.indexing import Indexer
from lookalike.paths import default_model_path
from lookalike.search import SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore

CLIENT_COUNTS = (1, 4, 16)


def synthetic_gallery(root: Path, size: int, seed: int = 3) -> list[bytes]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for n in range(size):
        ramp = np.linspace(0, 255, 320, dtype=np.float32)
        base = np.stack([np.add.outer(ramp[:240] * rng.random(), ramp * rng.random())] * 3, axis=-1)
        pixels = np.clip(base / 2 + rng.normal(0, 40, (240, 320, 3)) + rng.integers(0, 128, 3), 0, 255)
        data = _encode(Image.fromarray(pixels.astype(np.uint8)), "JPEG")
        (root / f"synthetic-{n:04d}.jpg").write_bytes(data)
        images.append(data)
    return images


def slowest_accepted_png() -> bytes:
    side = math.isqrt(FULL_DECODE_PIXELS)
    return _encode(Image.new("RGB", (side, side), (120, 80, 40)), "PNG")


def _encode(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def multipart_search(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + image
    body += f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n10\r\n--{boundary}--\r\n'.encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Client(threading.Thread):
    """One connection, searching back to back until `stop` is set or `budget` runs out."""

    def __init__(self, port: int, query: bytes, stop: threading.Event, budget: threading.Semaphore) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.budget = port, stop, budget
        self.body, self.content_type = multipart_search(query)
        self.latencies_ms: list[float] = []
        self.errors = 0

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stop.is_set() and self.budget.acquire(blocking=False):
            started = time.perf_counter()
            try:
                connection.request("POST", "/search", self.body, {"Content-Type": self.content_type})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                ok = False
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            self.errors += not ok
        connection.close()


def run_clients(
    port: int, count: int, queries: Sequence[bytes], seconds: float, max_requests: int
) -> tuple[list[Client], float]:
    stop = threading.Event()
    budget = threading.Semaphore(max_requests)
    clients = [Client(port, queries[n % len(queries)], stop, budget) for n in range(count)]
    started = time.perf_counter()
    for client in clients:
        client.start()
    stop.wait(seconds)
    stop.set()
    for client in clients:
        client.join()
    return clients, time.perf_counter() - started


def summary(latencies_ms: list[float], elapsed_s: float, errors: int) -> str:
    p50, p99 = np.percentile(latencies_ms, [50, 99]) if latencies_ms else (float("nan"),) * 2
    return (
        f"{len(latencies_ms):5d} req in {elapsed_s:4.1f} s  {len(latencies_ms) / elapsed_s:6.1f} req/s  "
        f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  errors {errors}"
    )


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per level, a 20-image gallery")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--gallery", type=int, default=60)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args(argv)
    seconds, gallery_size = (2.0, 20) if args.quick else (args.seconds, args.gallery)
    # One log line per search would drown the figures (powertools' default service name).
    logging.getLogger("service_undefined").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir)
        images = synthetic_gallery(root / "gallery", gallery_size)
        embedder = Embedder(args.model or default_model_path())
        store = FaissStore(root / "store")
        source = FolderSource(root / "gallery")
        Indexer(source, embedder, store).sync()
        server = make_server(create_app(SearchService(embedder, store), source), "127.0.0.1", 0, quiet=True)
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        port = server.server_port
        queries = [_encode(Image.open(io.BytesIO(data)).crop((8, 8, 300, 230)), "JPEG") for data in images]
        try:
            print(f"gallery {gallery_size} images; {seconds:g} s or {args.max_requests} requests per level")
            print(f"RSS before load {rss_mb():.0f} MB")
            for count in CLIENT_COUNTS:
                clients, elapsed = run_clients(port, count, queries, seconds, args.max_requests)
                latencies = [ms for client in clients for ms in client.latencies_ms]
                errors = sum(client.errors for client in clients)
                print(f"{count:2d} clients: {summary(latencies, elapsed, errors)}  RSS {rss_mb():.0f} MB")

            slow = slowest_accepted_png()
            side = math.isqrt(FULL_DECODE_PIXELS)
            user, elapsed = run_clients(port, 1, queries, seconds, args.max_requests)
            print(f"user alone:               {summary(user[0].latencies_ms, elapsed, user[0].errors)}")
            stop = threading.Event()
            attacker = Client(port, slow, stop, threading.Semaphore(args.max_requests))
            attacker.start()
            user, elapsed = run_clients(port, 1, queries, seconds, args.max_requests)
            stop.set()
            attacker.join()
            print(
                f"user beside a {side}x{side} PNG ({len(slow) // 1024} KB) sender: "
                f"{summary(user[0].latencies_ms, elapsed, user[0].errors)}"
            )
            print(f"  the sender: {summary(attacker.latencies_ms, elapsed, attacker.errors)}")
            print(f"RSS after load {rss_mb():.0f} MB")
            time.sleep(3)
            print(f"RSS after 3 s idle (heap trimmed) {rss_mb():.0f} MB")
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
