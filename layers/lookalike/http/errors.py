"""Every failure as a JSON `ErrorResponse` whose status says whose fault it is: 400 a body that
does not parse, 404 no such image or route, 413 too large, 415 not an image, 422 a bad box or
parameter. A 500 means a bug of ours: its message is generic and its traceback goes to the log.
"""

from http import HTTPStatus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as NoRouteError
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from pydantic import BaseModel

from lookalike.errors import LookalikeError
from lookalike.http.admission import was_admitted

logger = Logger()

# A 422 names this many problems and counts the rest, so its size does not grow with the request.
_PROBLEMS_NAMED = 10


class ErrorDetail(BaseModel):
    status: int
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_document(status: int, message: str) -> dict:
    return ErrorResponse(error=ErrorDetail(status=status, message=message)).model_dump()


def error_response(status: int, message: str) -> Response:
    status = int(status)
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=error_document(status, message)
    )


def errors_documented(*statuses: HTTPStatus) -> dict[int, dict]:
    """A route's `responses` entries for these failures, each an `ErrorResponse`."""
    return {
        status.value: {"description": status.phrase, "content": {"application/json": {"model": ErrorResponse}}}
        for status in statuses
    }


def add_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(LookalikeError)
    def refused(error: LookalikeError) -> Response:
        return error_response(error.status, str(error))

    @app.exception_handler(RequestValidationError)
    def invalid(error: RequestValidationError) -> Response:
        problems = error.errors()
        unreadable = [problem for problem in problems if problem["type"] in ("json_invalid", "multipart_invalid")]
        if unreadable:
            reason = unreadable[0].get("ctx", {}).get("error", "")
            kind = "JSON" if unreadable[0]["type"] == "json_invalid" else "multipart/form-data"
            return error_response(HTTPStatus.BAD_REQUEST, f"the request body is not valid {kind}: {reason}".rstrip(": "))
        described = [_describe(problem) for problem in problems[:_PROBLEMS_NAMED]]
        if len(problems) > _PROBLEMS_NAMED:
            described.append(f"and {len(problems) - _PROBLEMS_NAMED} more")
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "; ".join(described))

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported(error: RequestUnsupportedContentType) -> Response:
        content_type = app.current_event.headers.get("content-type", "")
        return error_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"cannot read a {content_type} body: send JSON or multipart/form-data",
        )

    @app.not_found
    def no_route(error: NoRouteError) -> Response:
        event = app.current_event
        return error_response(HTTPStatus.NOT_FOUND, f"no route for {event.http_method} {event.path}")

    @app.exception_handler(ServiceError)
    def service_error(error: ServiceError) -> Response:
        return error_response(error.status_code, str(error.msg))

    @app.exception_handler(ResponseValidationError)
    def bad_response(error: ResponseValidationError) -> Response:
        logger.error("a route returned what its model refuses", extra={"errors": error.errors()})
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response:
        if not was_admitted(app):
            logger.warning("unreadable request", exc_info=error)
            return error_response(HTTPStatus.BAD_REQUEST, f"the request could not be read: {error}")
        logger.error("unhandled error", exc_info=error)
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")


def _describe(problem: dict) -> str:
    where = ".".join(str(part) for part in problem["loc"] if part != "body") or "body"
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{where}: {message}"
