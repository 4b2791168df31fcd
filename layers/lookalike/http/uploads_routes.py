"""`POST /uploads`: a presigned upload, for a query image too large to send in a request
(why and how long uploads live: `lookalike.uploads`).

The client asks for an upload here, POSTs the file to the returned URL as multipart/form-data
with the returned fields (the file last), then calls `POST /search` with `{"upload_id": ...}`.
"""

from typing import Annotated, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from lookalike.uploads import QueryUploadStore, UploadTicket

logger = Logger()

# The formats the core decodes (lookalike.images.is_image); the upload is refused by S3 unless it
# is sent with the Content-Type it was granted for.
ImageContentType = Literal["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"]


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_type: ImageContentType = Field(description="the Content-Type the file will be uploaded with")


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
