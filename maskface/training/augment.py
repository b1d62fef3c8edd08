"""Augmentations of aligned chips, drawn from a generator so a step is reproducible.

The masks themselves are rendered ahead (:mod:`maskface.training.data`); what varies per
step is cheap at chip size: small shifts, scales and rotations (the landmarks under a mask
are less sure, so the alignment wanders), photometric changes, blur, JPEG, grey, and generic
lower-face occluders (a hand, a scarf, a phone) that teach the network to rely on the upper
face whatever covers the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ChipAugment:
    """Probabilities and ranges of each augmentation (``strength`` 0 turns all off)."""

    strength: float = 1.0
    shift: float = 0.04  # of the chip side
    scale: float = 0.06
    rotate: float = 6.0  # degrees
    photometric: float = 0.8
    blur: float = 0.2
    jpeg: float = 0.3
    grey: float = 0.05
    occluder: float = 0.15  # of the bare chips

    def __call__(self, chips: np.ndarray, masked: np.ndarray,
                 rngs: Sequence[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
        """Augmented copies of (B, S, S, 3) uint8 chips, one generator per chip (so a chip's
        augmentation does not depend on which process or batch position handles it);
        ``masked`` comes back updated for the bare chips that got an occluder."""
        out = np.empty_like(chips)
        masked = masked.copy()
        for i, (chip, rng) in enumerate(zip(chips, rngs, strict=True)):
            out[i], occluded = self.one(chip, rng, occlude=not masked[i])
            masked[i] |= occluded
        return out, masked

    def one(self, chip: np.ndarray, rng: np.random.Generator, *, occlude: bool = True
            ) -> tuple[np.ndarray, bool]:
        s = self.strength
        if s <= 0:
            return chip.copy(), False
        size = chip.shape[0]
        x = chip
        # Geometry: one affine warp around the chip centre.
        angle = rng.uniform(-1, 1) * self.rotate * s
        scale = 1 + rng.uniform(-1, 1) * self.scale * s
        tx, ty = rng.uniform(-1, 1, 2) * self.shift * s * size
        m = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, scale)
        m[:, 2] += (tx, ty)
        x = cv2.warpAffine(x, m, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT101)
        occluded = False
        if occlude and rng.random() < self.occluder * s:
            x = _occlude(x, rng)
            occluded = True
        if rng.random() < self.photometric * s:
            x = _photometric(x, rng, s)
        if rng.random() < self.blur * s:
            k = int(rng.choice([3, 5]))
            x = (cv2.GaussianBlur(x, (k, k), 0) if rng.random() < 0.6
                 else _motion_blur(x, k, rng))
        if rng.random() < self.grey * s:
            x = np.repeat(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
        if rng.random() < self.jpeg * s:
            q = int(rng.integers(35, 90))
            ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok:
                x = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return np.ascontiguousarray(x), occluded


def _photometric(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    f = x.astype(np.float32)
    contrast = 1 + rng.uniform(-0.3, 0.3) * s
    brightness = rng.uniform(-25, 25) * s
    gains = 1 + rng.uniform(-0.08, 0.08, 3) * s  # white balance
    mean = f.mean()
    f = (f - mean) * contrast + mean + brightness
    f *= gains
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * (1 + rng.uniform(-0.35, 0.35) * s)  # saturation
    return np.clip(f, 0, 255).astype(np.uint8)


def _motion_blur(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2] = 1.0 / k
    m = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, m, (k, k))
    return cv2.filter2D(x, -1, kernel / max(kernel.sum(), 1e-6))


def _occlude(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random polygon over the mouth and chin, flat, striped or noisy in a random colour."""
    size = x.shape[0]
    top = rng.uniform(0.52, 0.68) * size  # somewhere between the nose tip and the mouth
    n = int(rng.integers(5, 9))
    xs = np.sort(rng.uniform(-0.05, 1.05, n)) * size
    upper = top + rng.normal(0, 0.04 * size, n)
    pts = np.concatenate([np.stack([xs, upper], 1),
                          [[xs[-1], size * 1.05], [xs[0], size * 1.05]]]).astype(np.int32)
    cover = np.zeros(x.shape[:2], np.uint8)
    cv2.fillPoly(cover, [pts], 255)
    colour = rng.integers(0, 256, 3).astype(np.float32)
    fill = np.empty_like(x, dtype=np.float32)
    kind = rng.integers(3)
    if kind == 0:  # flat, lit from above
        ramp = np.linspace(1.1, 0.75, size, dtype=np.float32)[:, None, None]
        fill[:] = colour * ramp
    elif kind == 1:  # stripes (knit, scarf)
        period = rng.uniform(4, 14)
        phase = np.sin(np.arange(size) * 2 * np.pi / period + rng.uniform(0, 6.3))
        other = rng.integers(0, 256, 3).astype(np.float32)
        t = ((phase > 0).astype(np.float32))[None, :, None]
        fill[:] = colour * t + other * (1 - t)
        if rng.random() < 0.5:
            fill = fill.transpose(1, 0, 2).copy()
    else:  # textured noise
        noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 2)
        fill[:] = colour * (1 + 0.25 * noise[:, :, None])
    a = cv2.GaussianBlur(cover, (3, 3), 0).astype(np.float32)[:, :, None] / 255.0
    return np.clip(x * (1 - a) + fill * a, 0, 255).astype(np.uint8)
