"""Renderer registry: ``create_renderer(name)``, ``list_renderers()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from maskface.geometry.face import Face
from maskface.render.renderer2d import MaskLayer, Renderer2D
from maskface.render.renderer3d import Renderer3D
from maskface.styles import MaskStyle


class Renderer(Protocol):
    """Draws a mask style on one face of an image, returning the layer to composite."""

    name: str

    def render(
        self, image: np.ndarray, face: Face, style: MaskStyle, wear: str,
        rng: np.random.Generator,
    ) -> MaskLayer | None: ...


_REGISTRY: dict[str, Callable[..., Renderer]] = {"2d": Renderer2D, "3d": Renderer3D}


def list_renderers() -> list[str]:
    """Names accepted by :func:`create_renderer`."""
    return sorted(_REGISTRY)


def create_renderer(name: str = "2d", **kwargs) -> Renderer:
    """A renderer by name: ``"2d"`` (texture warped over the face mesh) or ``"3d"`` (a mask
    surface of its own, standing off the reconstructed face)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown renderer {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name](**kwargs)
