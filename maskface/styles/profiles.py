"""Cross-section shapes for relief and line work, cheap on large float32 arrays."""

from __future__ import annotations

import numpy as np


def step(distance: np.ndarray, edge: float) -> np.ndarray:
    """1 where ``distance`` < ``edge`` (px), falling to 0 across one pixel."""
    return np.clip(edge + 0.5 - distance, 0.0, 1.0)


def ridge(distance: np.ndarray, at: float, width: float) -> np.ndarray:
    """A smooth unit bump centred on ``distance == at``, zero beyond ``width`` px either side.

    A squared parabola rather than a Gaussian: as smooth where it matters and several times
    cheaper.
    """
    t = (distance - at) * (1.0 / width)
    t *= t
    np.subtract(1.0, t, out=t)
    np.maximum(t, 0.0, out=t)
    t *= t
    return t


def ramp(x: np.ndarray, start: float, end: float) -> np.ndarray:
    """0 below ``start``, 1 above ``end``, linear in between (either order)."""
    return np.clip((x - start) * (1.0 / (end - start)), 0.0, 1.0)


def disc_distance(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance (px, negative inside) to a circle of ``radius`` around the origin."""
    return np.sqrt(dx * dx + dy * dy) - radius


def box_distance(
    dx: np.ndarray, dy: np.ndarray, half_width: float, half_height: float, corner: float
) -> np.ndarray:
    """Signed distance (px, negative inside) to a rounded rectangle centred on the origin."""
    qx = np.abs(dx) - (half_width - corner)
    qy = np.abs(dy) - (half_height - corner)
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - corner
