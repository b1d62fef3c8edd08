"""Fast compositing of colour layers on float32 RGB images.

NumPy broadcasting of a (size, size) weight against three channels is several times slower
than working channel by channel, and drawing speed matters (textures are drawn per image).
"""

from __future__ import annotations

import numpy as np


def flat(color: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An image (h, w, 3) float32 filled with ``color``."""
    height, width = shape
    row = np.tile(np.asarray(color, dtype=np.float32), width)[None, :]
    # repeating one prepared row is several times faster than a broadcast fill
    return np.repeat(row, height, axis=0).reshape(height, width, 3)


def layer(img: np.ndarray, color: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Paint ``color`` (an RGB triple or an image) over ``img`` in place with coverage ``weight``.

    ``weight`` is (h, w) in [0, 1]; returns ``img``.
    """
    color = np.asarray(color, dtype=np.float32)
    for c in range(3):
        channel = img[..., c]
        top = color[c] if color.ndim == 1 else color[..., c]
        channel += (top - channel) * weight
    return img


def scale(img: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Multiply every channel of ``img`` in place by a (h, w) factor; returns ``img``."""
    for c in range(3):
        img[..., c] *= factor
    return img
