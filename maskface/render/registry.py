"""Renderer registry: ``create_renderer(name)``, ``list_renderers()``.

Entries are factories that import their renderer on first use, so listing the names (the
command line's choices) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from maskface.registry import Registry

if TYPE_CHECKING:
    from maskface.geometry.face import Face
    from maskface.render.renderer2d import MaskLayer
    from maskface.styles import MaskStyle


class Renderer(Protocol):
    """Draws a mask style on one face of an image, returning the layer to composite."""

    name: str

    def render(
        self, image: np.ndarray, face: Face, style: MaskStyle, wear: str,
        rng: np.random.Generator,
    ) -> MaskLayer | None: ...


RENDERERS: Registry[Any] = Registry("renderer")


@RENDERERS.register("2d")
def _renderer_2d(**kwargs: Any) -> Renderer:
    from maskface.render.renderer2d import Renderer2D

    return Renderer2D(**kwargs)


@RENDERERS.register("3d")
def _renderer_3d(**kwargs: Any) -> Renderer:
    from maskface.render.renderer3d import Renderer3D

    return Renderer3D(**kwargs)


def list_renderers(pattern: str | None = None) -> list[str]:
    """Names accepted by :func:`create_renderer` (those matching ``pattern``, if given)."""
    return RENDERERS.list(pattern)


def create_renderer(name: str = "2d", **kwargs: Any) -> Renderer:
    """A renderer by name: ``"2d"`` (texture warped over the face mesh) or ``"3d"`` (a mask
    surface of its own, standing off the reconstructed face)."""
    return RENDERERS.create(name, **kwargs)
