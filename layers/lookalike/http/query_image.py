"""The query image a request names, whichever way it names it: its bytes (base64 in JSON and
form fields, a file part in multipart), a gallery image by id ("more like this"), or an upload
(`lookalike.uploads`). Every route that reads an image (`/search`, `/proposals`) takes a
`QueryImage` and turns it into bytes here, so they accept and refuse exactly the same requests.

Form fields arrive as text, so the box and tag fields parse their text forms as well as JSON.
"""

import base64
import binascii
import json
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import UploadFile
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from lookalike.errors import InvalidParameterError, NotFoundError
from lookalike.http.errors import errors_documented
from lookalike.images import FULL_DECODE_PIXELS, MAX_PIXELS
from lookalike.sources import ImageSource
from lookalike.stores.base import VectorStore
from lookalike.uploads import QueryUploadStore


def _decode_image(value: Any) -> Any:
    """A multipart file part, or base64 (optionally a `data:` URL) in JSON and plain form fields."""
    if isinstance(value, UploadFile):
        value = value.content
    elif isinstance(value, str):
        encoded = value.split(",", 1)[1] if value.startswith("data:") else value
        # The `base64` tool and MIME wrap lines every 76 characters.
        encoded = "".join(encoded.split())
        try:
            value = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("image is not valid base64") from None
    elif isinstance(value, list):
        raise ValueError("send exactly one image")
    if isinstance(value, bytes) and not value:
        raise ValueError("image is empty")
    return value


def _not_a_boolean(value: Any) -> Any:
    """JSON true and false are not the numbers 1 and 0, although Python's bool is an int."""
    if isinstance(value, bool):
        raise ValueError("a number, not true or false")
    return value


Integer = Annotated[int, BeforeValidator(_not_a_boolean)]


def _split_box(value: Any) -> Any:
    """Form fields arrive as text: "x0,y0,x1,y1" or "[x0, y0, x1, y1]"."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    return json.loads(text) if text.startswith("[") else [part.strip() for part in text.split(",")]


def _parse_object(value: Any) -> Any:
    """Form fields arrive as text: a JSON object."""
    return json.loads(value) if isinstance(value, str) else value


ImageBytes = Annotated[
    bytes,
    BeforeValidator(_decode_image),
    WithJsonSchema({"type": "string", "contentEncoding": "base64", "description": "the query image, base64"}),
]
BoxField = Annotated[
    list[Integer],
    BeforeValidator(_split_box),
    Field(min_length=4, max_length=4, description="[x0, y0, x1, y1]: pixels of the image as displayed, half-open"),
]
TagFilter = Annotated[
    dict[str, str], BeforeValidator(_parse_object), Field(description="only images with all of these tags")
]


class QueryImage(BaseModel):
    """Which image a request is about: its bytes, a gallery image by id ("more like this"), or an
    upload (an image too large for a request, uploaded to storage first: POST /uploads)."""

    model_config = ConfigDict(extra="forbid")

    image: ImageBytes | None = None
    image_id: str | None = Field(None, min_length=1, description="a gallery image's id: more like this")
    upload_id: str | None = Field(None, min_length=1, description="an upload's id, from POST /uploads")

    @model_validator(mode="before")
    @classmethod
    def _one_value_per_field(cls, data: Any) -> Any:
        """A url-encoded form gives every field as the list of its values."""
        if not isinstance(data, dict):
            return data
        return {
            name: value[0] if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) else value
            for name, value in data.items()
        }

    @model_validator(mode="after")
    def _exactly_one_image(self) -> "QueryImage":
        given = [name for name in QUERY_IMAGE_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"send exactly one of {', '.join(QUERY_IMAGE_FIELDS)}")
        return self


QUERY_IMAGE_FIELDS = ("image", "image_id", "upload_id")


def query_image_errors() -> dict[int, dict]:
    """What a route that reads a `QueryImage` may answer besides success."""
    return errors_documented(
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.NOT_FOUND,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
    )


def check_gallery_image(image_id: str, store: VectorStore) -> None:
    """Only what the store holds and does not block is served, never any other file of the
    source (a sidecar, a file that failed to index), whatever the id looks like."""
    (stored,) = store.get([image_id])
    if stored is None or image_id in store.blocked():
        raise NotFoundError(f"no gallery image {image_id!r}")


def gallery_image_bytes(image_id: str, store: VectorStore, source: ImageSource) -> bytes:
    check_gallery_image(image_id, store)
    return source.read(image_id)


def query_pixel_budget(request: QueryImage) -> int:
    """How many pixels the query's decoding may cost when its format has no reduced decoding: a
    gallery image named by id was decoded whole when it was indexed, under the gallery's limit;
    bytes from a client get the request budget."""
    return MAX_PIXELS if request.image_id is not None else FULL_DECODE_PIXELS


def query_image_bytes(
    request: QueryImage, store: VectorStore, source: ImageSource, uploads: QueryUploadStore | None = None
) -> bytes:
    """The bytes of the image a request names, whichever way it names it."""
    if request.image_id is not None:
        return gallery_image_bytes(request.image_id, store, source)
    if request.upload_id is not None:
        if uploads is None:
            raise InvalidParameterError("this server takes no uploads: send the image itself")
        return uploads.read(request.upload_id)
    return request.image
