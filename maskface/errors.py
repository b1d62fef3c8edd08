"""Exceptions maskface raises on purpose, so callers can tell them from bugs.

Every deliberate error is a :class:`MaskfaceError`. Errors about a value the caller gave (an
argument, an option, an array) are :class:`InvalidInputError`, which is also a ``ValueError``;
an unknown name given to a registry is :class:`UnknownNameError` (also a ``KeyError``). The
command line prints any of them as one line, never as a traceback.
"""

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


class InvalidInputError(MaskfaceError, ValueError):
    """A value given to maskface (argument, option, array) is not one it can use."""


class UnknownNameError(InvalidInputError, KeyError):
    """A name no registry entry answers to; the message lists the choices."""

    def __init__(self, kind: str, name: object, choices: list[str] | tuple[str, ...]) -> None:
        super().__init__(kind, name, tuple(choices))
        self.kind = kind
        self.name = name
        self.choices = tuple(choices)

    def __str__(self) -> str:
        # KeyError would otherwise print the repr of its argument.
        return f"unknown {self.kind} {self.name!r}; choose from {', '.join(self.choices)}"


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


class OutputError(BatchError):
    """The output folder or a file in it cannot be written (permissions, full disk, a file
    in the way)."""
