"""What every request passes before a route reads it: the size limit, and the mark that tells the
error handlers whose fault a failure is.

API Gateway refuses requests over 10 MB before they reach the Lambda; the local server and the
app refuse them too, so a request fails the same way everywhere. (A synchronous Lambda
invocation is further capped at 6 MB, base64 overhead included.)
"""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from lookalike.errors import ImageTooLargeError

MAX_REQUEST_BYTES = 10 * 1024 * 1024

# Set by `admit` before a route runs: an exception raised before it comes from powertools reading
# the client's bytes (a bad body), one raised after it from our own code.
_ADMITTED = "lookalike_request_admitted"


def admit(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    event = app.current_event
    body = event.body or ""
    size = len(body) * 3 // 4 if event.is_base64_encoded else len(body.encode())
    if size > MAX_REQUEST_BYTES:
        raise ImageTooLargeError(f"the request is {size} bytes; the limit is {MAX_REQUEST_BYTES}")
    app.append_context(**{_ADMITTED: True})
    return next_middleware(app)


def was_admitted(app: APIGatewayHttpResolver) -> bool:
    return bool(app.context.get(_ADMITTED))
