"""The local server: a thin adapter from HTTP to the routes the search Lambda runs.

Each request becomes the event API Gateway's HTTP API hands a Lambda (payload format 2.0), goes
through `app.resolve`, and the result is written back the way API Gateway writes it. Nothing here
knows a route: a new page is a new route module added in `lookalike.http.app`, and it then works
the same in the cloud.
"""

import base64
import json
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from lookalike.http import heap
from lookalike.http.admission import MAX_REQUEST_BYTES
from lookalike.http.errors import error_document

logger = Logger()

# Connections served at once, each on its own thread; one more is answered 503 and closed, so
# neither slow clients nor a burst can grow the threads (and their memory) without bound.
MAX_CONNECTIONS = 64
# Connections the kernel queues while the server is busy accepting (socketserver's default is 5,
# which makes a burst of clients wait a SYN retransmit, ~1 s).
LISTEN_BACKLOG = 128
# Once no request has been resolving for this long, freed heap memory goes back to the system.
_TRIM_AFTER_IDLE_S = 1.0

# After refusing a body as too large we still read and drop up to this much of it, so that the
# client, still sending, gets to read the 413 instead of a connection reset.
_DRAIN_LIMIT = 4 * MAX_REQUEST_BYTES

# Bodies of these types reach the Lambda as text; API Gateway base64-encodes every other body.
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
)


class LocalServer(ThreadingHTTPServer):
    """Requests are resolved in parallel, one thread per connection, at most `max_connections`
    of them; the app must keep each request's state per thread (`ThreadSafeResolver`)."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        app: APIGatewayHttpResolver,
        *,
        quiet: bool = False,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.app = app
        self.quiet = quiet
        self._connection_slots = threading.BoundedSemaphore(max_connections)
        self._resolving = 0
        self._resolving_lock = threading.Lock()
        self._idle_trim: threading.Timer | None = None
        heap.limit_arenas()
        super().__init__(address, _RequestHandler)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if not self._connection_slots.acquire(blocking=False):
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connection_slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_slots.release()

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """A client that drops its connection (reset, broken pipe) is no error of ours: no traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def _refuse_busy(self, request: socket.socket) -> None:
        status, headers, payload = _json(HTTPStatus.SERVICE_UNAVAILABLE, "the server is busy: try again shortly")
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Retry-After: 1", "Connection: close"]
        head += [f"{name}: {value}" for name, value in headers] + [f"Content-Length: {len(payload)}"]
        try:
            request.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            # Closing with the client's request unread would reset the connection and could lose
            # the answer; read what has arrived, without waiting for more.
            request.setblocking(False)
            request.recv(1 << 16)
        except OSError:
            pass
        self.shutdown_request(request)

    def resolve(self, event: dict) -> dict:
        """`app.resolve`, counting requests in flight so that memory is trimmed once none is."""
        with self._resolving_lock:
            self._resolving += 1
            if self._idle_trim is not None:
                self._idle_trim.cancel()
        try:
            # No Lambda context here; the routes read none.
            return self.app.resolve(event, None)  # type: ignore[arg-type]
        finally:
            with self._resolving_lock:
                self._resolving -= 1
                if self._resolving == 0:
                    self._idle_trim = threading.Timer(_TRIM_AFTER_IDLE_S, heap.return_free_memory)
                    self._idle_trim.daemon = True
                    self._idle_trim.start()


def make_server(
    app: APIGatewayHttpResolver,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    quiet: bool = False,
    max_connections: int = MAX_CONNECTIONS,
) -> LocalServer:
    """A bound server, not yet serving (port 0 picks a free port: see `server.server_port`)."""
    return LocalServer((host, port), app, quiet=quiet, max_connections=max_connections)


def serve(app: APIGatewayHttpResolver, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted."""
    server = make_server(app, host, port)
    print(f"serving on http://{host}:{server.server_port}", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def http_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
) -> dict:
    """The API Gateway HTTP API (2.0) event for one request; `target` is the request line's path."""
    parts = urlsplit(target)
    raw_path = parts.path or "/"
    lowered: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        lowered[name] = f"{lowered[name]},{value}" if name in lowered else value
    cookies = [cookie.strip() for cookie in lowered.pop("cookie", "").split(";") if cookie.strip()]
    now = datetime.now(timezone.utc)
    event: dict = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": lowered.get("host", "localhost").split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    if body:
        text = _as_text(body, lowered.get("content-type", ""))
        event["body"] = text if text is not None else base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = text is None
    return event


def _as_text(body: bytes, content_type: str) -> str | None:
    if not content_type.lower().startswith(_TEXT_TYPES) and "+json" not in content_type.lower():
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def http_response(result: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body bytes from what `app.resolve` returns (the 2.0 response format)."""
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    headers = [(name, str(value)) for name, value in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", cookie) for cookie in result.get("cookies") or []]
    return int(result["statusCode"]), headers, payload


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle plus the client's delayed
    # ACK holds every response on a kept-alive connection for ~40 ms.
    disable_nagle_algorithm = True
    timeout = 60  # seconds a client may stall mid-request before its connection is dropped

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def version_string(self) -> str:
        """The Server header names the product, not the Python version behind it."""
        return "lookalike"

    def handle_expect_100(self) -> bool:
        """Refuse a body declared too large before the client sends it."""
        length = self._declared_length()
        if length is not None and length > MAX_REQUEST_BYTES:
            self._send_error_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(length))
            return False
        return super().handle_expect_100()

    def _handle(self) -> None:
        started = time.perf_counter()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send_error_json(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not a chunked body")
            return
        length = self._declared_length()
        if length is None:
            self._send_error_json(HTTPStatus.BAD_REQUEST, "Content-Length is not a non-negative integer")
            return
        if length > MAX_REQUEST_BYTES:
            self._send_error_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(length))
            self._drain(length)
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self._send_error_json(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
            return
        event = http_event(
            # HEAD is GET without the body: `_write` leaves the body out.
            "GET" if self.command == "HEAD" else self.command,
            self.path,
            list(self.headers.items()),
            body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        status, headers, payload = self._resolve(event)
        self._write(status, headers, payload)
        took_ms = (time.perf_counter() - started) * 1000
        self.log_message("%s %s -> %d (%.0f ms)", self.command, _logged_path(self.path), status, took_ms)

    def _resolve(self, event: dict) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            return http_response(self.server.resolve(event))
        except Exception:
            logger.exception("the app failed to resolve a request")
            return _json(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _declared_length(self) -> int | None:
        """The Content-Length (0 when absent), or None when it is not a number."""
        values = self.headers.get_all("Content-Length") or ["0"]
        if len(set(values)) != 1 or not values[0].strip().isdigit():
            return None
        return int(values[0])

    def _drain(self, length: int) -> None:
        remaining = min(length, _DRAIN_LIMIT)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (a garbled request line, an unknown method) as JSON too."""
        self._send_error_json(HTTPStatus(code), message or HTTPStatus(code).phrase)

    def _send_error_json(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True
        self._write(*_json(status, message))
        self.log_message("%s %s -> %d %s", self.command, _logged_path(getattr(self, "path", "")), status, message)

    def _write(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Replaced by one line per request, with its latency, once the response is written."""

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def _logged_path(target: str) -> str:
    """The request target without its query string, which may carry a key or a user's terms."""
    return target.split("?", 1)[0]


def _too_large(length: int) -> str:
    return f"the request is {length} bytes; the limit is {MAX_REQUEST_BYTES}"


def _json(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(error_document(status, message)).encode()
