"""Face analyser registry: ``create_analyser(name)``, ``list_analysers()``, ``detect_faces``."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Protocol

import numpy as np

from maskface.geometry.face import Face


class FaceAnalyser(Protocol):
    """Finds faces in an RGB uint8 image, largest first (an empty list when there is none)."""

    name: str

    def __call__(self, image: np.ndarray) -> list[Face]: ...


def _mediapipe(**kwargs) -> FaceAnalyser:
    from maskface.geometry.mediapipe_backend import MediaPipeAnalyser

    return MediaPipeAnalyser(**kwargs)


def _dlib(**kwargs) -> FaceAnalyser:
    from maskface.geometry.dlib_backend import DlibAnalyser

    return DlibAnalyser(**kwargs)


_REGISTRY: dict[str, Callable[..., FaceAnalyser]] = {"mediapipe": _mediapipe, "dlib": _dlib}


def list_analysers() -> list[str]:
    """Names accepted by :func:`create_analyser`."""
    return sorted(_REGISTRY)


def create_analyser(name: str = "mediapipe", **kwargs) -> FaceAnalyser:
    """A new face analyser: ``"mediapipe"`` (468-point mesh) or ``"dlib"`` (68 points)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown face analyser {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name](**kwargs)


@cache
def _shared(name: str) -> FaceAnalyser:
    return create_analyser(name)


def detect_faces(image: np.ndarray, backend: str = "mediapipe") -> list[Face]:
    """Every face in an RGB uint8 image, largest first, with box, score, landmarks and pose."""
    return _shared(backend)(image)
