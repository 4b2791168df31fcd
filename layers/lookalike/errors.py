"""The errors the core raises for bad input.

Each one names the HTTP status it stands for, so that every edge (the local server, the Lambda
handler, the CLI's JSON lines) reports the same failure the same way without a mapping table of
its own.
"""


class LookalikeError(Exception):
    """A request the core refuses; `status` is the HTTP status that describes it."""

    status = 400


class NotAnImageError(LookalikeError):
    """The bytes are not an image Pillow can decode (unknown format, corrupt or truncated)."""

    status = 415


class ImageTooLargeError(LookalikeError):
    """The image or request is larger than we agree to decode (decompression bombs included)."""

    status = 413


class InvalidCropBoxError(LookalikeError):
    """The crop box lies outside the image, is empty, or is too small to describe anything."""

    status = 422


class InvalidParameterError(LookalikeError):
    """A request parameter (k, a filter, a method name) is outside what we accept."""

    status = 422


class NotFoundError(LookalikeError):
    """The named gallery image does not exist."""

    status = 404


class ImageTooSmallError(LookalikeError):
    """The image is too small to describe anything (a side under `images.MIN_IMAGE_SIDE` pixels)."""

    status = 422
