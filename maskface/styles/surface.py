"""The drawing surface a style renders into, and the final RGBA assembly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskface.styles.outline import Grids
from maskface.styles.paint import layer


@dataclass
class Surface:
    """Canvas colour plus relief and shading over the mask's bounding box.

    ``rgb`` is the whole canvas: the base colour is kept outside the mask too, so that
    filtering at the edge does not pull in black. ``box_rgb`` (a view of ``rgb``), ``height``
    (px) and ``shade`` (a factor later applied to the colour) cover ``grids.box`` only.
    """

    grids: Grids
    rgb: np.ndarray
    box_rgb: np.ndarray
    height: np.ndarray
    shade: np.ndarray

    @classmethod
    def over(cls, grids: Grids, rgb: np.ndarray) -> Surface:
        """A flat, unshaded surface on ``grids``' box of the canvas colour ``rgb``."""
        x0, y0, x1, y1 = grids.box
        return cls(
            grids, rgb, rgb[y0:y1, x0:x1], np.zeros(grids.shape, dtype=np.float32),
            np.ones(grids.shape, dtype=np.float32),
        )

    def window(self, centre: np.ndarray, half_width: float, half_height: float) -> Surface:
        """The part of the surface around ``centre`` (views: drawing there draws here)."""
        grids, (rows, cols) = self.grids.window(centre, half_width, half_height)
        return Surface(
            grids, self.rgb, self.box_rgb[rows, cols], self.height[rows, cols],
            self.shade[rows, cols],
        )

    def paint(self, color: np.ndarray, weight: np.ndarray) -> None:
        """Lay ``color`` over the surface with coverage ``weight`` (same shape as the box)."""
        layer(self.box_rgb, color, weight)


def compose(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Stack colour and coverage into a clipped float32 RGBA image."""
    rgba = np.empty((*alpha.shape, 4), dtype=np.float32)
    np.clip(rgb, 0.0, 1.0, out=rgba[..., :3])
    rgba[..., 3] = alpha
    return rgba
