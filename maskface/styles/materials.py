"""Colour-independent surface detail of mask materials: albedo variation and micro relief.

Each material returns ``(albedo, height)`` over the whole canvas: ``albedo`` a multiplicative
factor around 1, ``height`` relief in canvas pixels. Both depend only on the canvas size, its
scale and a seed, so they are cached and shared by every colour and pattern.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

_SALT = {"nonwoven": 0x0F1B_0001, "weave": 0x0F1B_0002, "rubber": 0x0F1B_0003}


def _white(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Zero-mean uniform noise of unit standard deviation (far cheaper than Gaussian)."""
    return (rng.random(shape, dtype=np.float32) - 0.5) * np.float32(np.sqrt(12.0))


def _noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Zero-mean noise of about unit spread, smooth over ``cell`` px."""
    n = int(np.ceil(size / cell)) + 2
    grid = _white(rng, (n, n))
    big = cv2.resize(grid, (round(n * cell), round(n * cell)), interpolation=cv2.INTER_CUBIC)
    return big[:size, :size]


def _nonwoven(
    rng: np.random.Generator, size: int, px_per_cm: float
) -> tuple[np.ndarray, np.ndarray]:
    # spunbond/meltblown: a fine fibre speckle over a cloudy, uneven fibre density
    fibre = cv2.GaussianBlur(_white(rng, (size, size)), (0, 0), max(0.02 * px_per_cm, 0.5))
    cloud = _noise(rng, size, 0.5 * px_per_cm)
    albedo = 1.0 + 0.02 * fibre + 0.02 * cloud
    height = (0.004 * px_per_cm) * (fibre + 0.3 * cloud)
    return albedo, height


def _weave(
    rng: np.random.Generator, size: int, px_per_cm: float
) -> tuple[np.ndarray, np.ndarray]:
    # threads are usually finer than a texel: warp and weft show as streaks along the two axes
    # and as uneven yarn (slubs), never as a regular grid that would alias into moire
    streak = max(int(size / max(0.4 * px_per_cm, 2.0)), 2)  # streak length about 4 mm
    warp = cv2.resize(_white(rng, (size, streak)), (size, size), interpolation=cv2.INTER_LINEAR)
    weft = cv2.resize(_white(rng, (streak, size)), (size, size), interpolation=cv2.INTER_LINEAR)
    grain = cv2.GaussianBlur(_white(rng, (size, size)), (0, 0), 0.6)
    slub = _noise(rng, size, 0.8 * px_per_cm)
    albedo = 1.0 + 0.025 * (warp + weft) + 0.02 * grain + 0.02 * slub
    height = (0.01 * px_per_cm) * (0.5 * (warp + weft) + 0.5 * grain)
    return albedo, height


def _rubber(
    rng: np.random.Generator, size: int, px_per_cm: float
) -> tuple[np.ndarray, np.ndarray]:
    # moulded elastomer: nearly smooth, a faint mould speckle and slow tone drift
    speckle = cv2.GaussianBlur(_white(rng, (size, size)), (0, 0), 0.8)
    drift = _noise(rng, size, 1.5 * px_per_cm)
    albedo = 1.0 + 0.012 * speckle + 0.025 * drift
    height = (0.003 * px_per_cm) * speckle
    return albedo, height


_MAKE = {"nonwoven": _nonwoven, "weave": _weave, "rubber": _rubber}


@lru_cache(maxsize=16)
def material(name: str, size: int, px_per_cm: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(albedo, height)`` float32 (size, size) of a material, read-only (cached)."""
    rng = np.random.default_rng([seed, _SALT[name]])
    albedo, height = _MAKE[name](rng, size, px_per_cm)
    out = (albedo.astype(np.float32), height.astype(np.float32))
    for arr in out:
        arr.flags.writeable = False
    return out
