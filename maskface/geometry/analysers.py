"""Face analyser registry: ``create_analyser(name)``, ``list_analysers()``, ``detect_faces``."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Protocol

import numpy as np

from maskface.geometry.face import Face
from maskface.registry import Registry


class FaceAnalyser(Protocol):
    """Finds faces in an RGB uint8 image, largest first (an empty list when there is none)."""

    name: str

    def __call__(self, image: np.ndarray) -> list[Face]: ...


ANALYSERS: Registry[Callable[..., FaceAnalyser]] = Registry("face analyser")


@ANALYSERS.register("mediapipe")
def _mediapipe(**kwargs) -> FaceAnalyser:
    from maskface.geometry.mediapipe_backend import MediaPipeAnalyser

    return MediaPipeAnalyser(**kwargs)


@ANALYSERS.register("dlib")
def _dlib(**kwargs) -> FaceAnalyser:
    from maskface.geometry.dlib_backend import DlibAnalyser

    return DlibAnalyser(**kwargs)


def list_analysers(pattern: str | None = None) -> list[str]:
    """Names accepted by :func:`create_analyser` (those matching ``pattern``, if given)."""
    return ANALYSERS.list(pattern)


def create_analyser(name: str = "mediapipe", **kwargs) -> FaceAnalyser:
    """A new face analyser: ``"mediapipe"`` (468-point mesh) or ``"dlib"`` (68 points)."""
    return ANALYSERS.create(name, **kwargs)


@cache
def _shared(name: str) -> FaceAnalyser:
    return create_analyser(name)


def detect_faces(image: np.ndarray, backend: str = "mediapipe") -> list[Face]:
    """Every face in a uint8 image (RGB, gray or RGBA), largest first, with box, score,
    landmarks and pose. Arrays it cannot take raise
    :class:`~maskface.errors.InvalidInputError` (before any native code sees them)."""
    from maskface.imageio import to_rgb

    return _shared(ANALYSERS.resolve(backend))(to_rgb(image))
