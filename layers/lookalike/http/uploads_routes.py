"""`POST /uploads`: a presigned upload, for a query image too large to send in a request.

API Gateway refuses requests over 10 MB, and a synchronous Lambda invocation over 6 MB (base64
included: about 4.5 MB of image). A larger query goes to storage directly: the client asks for an
upload here, POSTs the file to the returned URL as multipart/form-data with the returned fields
(the file last), then calls `POST /search` with `{"upload_id": ...}`. Uploads live where the
indexer never looks, so a query never becomes a gallery image, and they expire within a day.

The routes module imports this one (it resolves `upload_id`), so this one cannot import it.
"""

from typing import Annotated, Literal, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

logger = Logger(service="lookalike")

# The formats the core decodes (lookalike.images.is_image); the upload is refused by S3 unless it
# is sent with the Content-Type it was granted for.
ImageContentType = Literal["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"]


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_type: ImageContentType = Field(description="the Content-Type the file will be uploaded with")


class UploadTicket(BaseModel):
    upload_id: str = Field(description="search with {\"upload_id\": ...} once the upload succeeded")
    url: str = Field(description="POST the file here, as multipart/form-data")
    fields: dict[str, str] = Field(description="form fields to send unchanged, before the file field `file`")
    max_bytes: int = Field(description="the largest file the upload accepts")
    expires_in: int = Field(description="seconds the upload stays open")


class QueryUploadStore(Protocol):
    """Where query uploads go (an S3 bucket in the cloud: `lookalike.aws.uploads.QueryUploads`)."""

    def create(self, content_type: str) -> UploadTicket: ...

    def read(self, upload_id: str) -> bytes:
        """The uploaded bytes; NotFoundError for an id never handed out, not uploaded or expired."""


def add_upload_routes(app: APIGatewayHttpResolver, uploads: QueryUploadStore) -> None:
    @app.post(
        "/uploads",
        summary="A presigned upload for a large query image; then search with its upload_id",
        responses={200: {"description": "Where and how to upload"}, 422: {"description": "Bad content_type"}},
    )
    def create_upload(request: Annotated[UploadRequest, Body(description="JSON")]) -> UploadTicket:
        ticket = uploads.create(request.content_type)
        logger.info("upload handed out", extra={"upload_id": ticket.upload_id, "content_type": request.content_type})
        return ticket

