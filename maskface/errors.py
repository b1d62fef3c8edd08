"""Exceptions maskface raises on purpose, so callers can tell them from bugs."""

from __future__ import annotations

import os

# Machine codes of ImageReadError.reason, as written to batch manifests.
READ_ERROR_REASONS: tuple[str, ...] = (
    "missing",  # no such file
    "empty",  # zero bytes
    "io_error",  # the file exists but the OS refused to read it (permissions, I/O error)
    "not_image",  # not an image format maskface or Pillow knows
    "unsupported",  # an image, but of a format, codec or pixel type maskface does not read
    "truncated",  # the file ends before its pixel data does
    "corrupt",  # the pixel data or header is damaged
    "too_large",  # more pixels than the configured limit
)


class MaskfaceError(Exception):
    """Base class of every error maskface raises deliberately."""


class ImageReadError(MaskfaceError):
    """An image file could not be read; ``reason`` is one of :data:`READ_ERROR_REASONS`."""

    def __init__(self, path: str | os.PathLike[str], reason: str, message: str) -> None:
        # Passing every field to Exception keeps the error picklable across processes.
        super().__init__(os.fspath(path), reason, message)
        self.path = os.fspath(path)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message


class BatchError(MaskfaceError):
    """A batch run cannot start or go on (bad arguments, unusable manifest, broken job)."""
