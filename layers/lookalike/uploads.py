"""Query uploads: where a query image too large for a request goes first, to be named by a search.

API Gateway refuses requests over 10 MB, and a synchronous Lambda invocation over 6 MB (base64
included: about 4.5 MB of image). A larger query goes to storage directly: the client asks for an
upload (a ticket), sends the file where the ticket says, then names the upload in its search.
Uploads live where the indexer never looks, so a query never becomes a gallery image, and they
expire within a day. The cloud keeps them in an S3 bucket (`lookalike.aws.uploads.QueryUploads`);
the local server takes none.
"""

from typing import Protocol

from pydantic import BaseModel, Field


class UploadTicket(BaseModel):
    upload_id: str = Field(description="search with {\"upload_id\": ...} once the upload succeeded")
    url: str = Field(description="POST the file here, as multipart/form-data")
    fields: dict[str, str] = Field(description="form fields to send unchanged, before the file field `file`")
    max_bytes: int = Field(description="the largest file the upload accepts")
    expires_in: int = Field(description="seconds the upload stays open")


class QueryUploadStore(Protocol):
    """Where query uploads go."""

    def create(self, content_type: str) -> UploadTicket: ...

    def read(self, upload_id: str) -> bytes:
        """The uploaded bytes; NotFoundError for an id never handed out, not uploaded or expired."""
