"""Printed fabric patterns, drawn procedurally over the whole texture canvas.

Every pattern takes a primary and a secondary colour, a repeat size in centimetres (turned into
pixels with the frame's ``px_per_cm``, so a print keeps its real size on any canvas) and a seed
for its random choices (orientation, phase, noise). The result is an sRGB image covering the
whole canvas, without seams; styles clip it with their alpha. Which colour plays which part:

- ``stripes``: primary ground, secondary stripes.
- ``checks``: gingham (or, for some seeds, a tartan-like plaid) of primary bands on a
  secondary ground.
- ``dots``: secondary polka dots on a primary ground.
- ``camouflage``: primary and secondary patches with a darker and a middle tone.
- ``floral``: secondary flowers with darker hearts and small leaves on a primary ground.
- ``noise``: heather: primary with secondary fibre flecks.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from maskface.errors import InvalidInputError
from maskface.styles.colors import contrast_color, mix, to_hex, to_rgb
from maskface.styles.paint import flat, layer

PATTERNS: tuple[str, ...] = ("solid", "stripes", "checks", "dots", "camouflage", "floral", "noise")
DEFAULT_SCALE_CM: dict[str, float] = {
    "solid": 1.0,
    "stripes": 1.6,
    "checks": 1.4,
    "dots": 1.3,
    "camouflage": 5.0,
    "floral": 3.0,
    "noise": 0.5,
}
_PATTERN_SALT = 0x5EED_0001  # keeps pattern noise independent of other seeded layers
_SHIFT = 4  # sub-pixel bits for OpenCV drawing


def check_pattern(name: str, allowed: tuple[str, ...] = PATTERNS) -> str:
    """Validate a pattern name (case-insensitive) against ``allowed``."""
    key = str(name).strip().lower()
    if key not in allowed:
        raise InvalidInputError(f"unknown pattern {name!r}; choose from {', '.join(allowed)}")
    return key


def default_secondary(pattern: str, primary: str) -> str:
    """A second colour that suits ``pattern`` on ``primary`` (hex codes)."""
    rgb = to_rgb(primary)
    if pattern == "noise":
        return to_hex(mix(rgb, contrast_color(rgb), 0.35))
    if pattern == "camouflage":
        return to_hex(mix(rgb, np.zeros(3), 0.45))
    return to_hex(contrast_color(rgb))


def _line_distance(t: np.ndarray, period: float) -> np.ndarray:
    """Distance (px) to the nearest of the lines t = k * period."""
    frac = t - np.floor(t * (1.0 / period)) * period
    return np.minimum(frac, period - frac)


def _band(distance: np.ndarray, half_width: float) -> np.ndarray:
    """Coverage of a band ``half_width`` px either side of a line, 1-px anti-aliased."""
    return np.clip(half_width - distance + 0.5, 0.0, 1.0)


def _tile_coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def _two_tone(p, s, weight: np.ndarray) -> np.ndarray:
    return layer(flat(p, weight.shape), s, weight)


def _repeat(tile: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Cover the canvas with copies of a seamless tile, starting at a random phase."""
    th, tw = tile.shape[:2]
    oy, ox = int(rng.integers(th)), int(rng.integers(tw))
    reps = ((size + oy) // th + 1, (size + ox) // tw + 1, 1)
    return np.tile(tile, reps)[oy : oy + size, ox : ox + size]


# Periodic prints are drawn as one tile of whole pixels and repeated: far cheaper than
# evaluating them per canvas pixel, at the price of rounding the repeat to a pixel.
def _stripes(p, s, period, size, rng):
    angle = int(rng.integers(4))  # horizontal, vertical, or either diagonal
    duty = rng.uniform(0.28, 0.5)
    n = max(round(period), 3)
    if angle < 2:
        across = np.arange(n, dtype=np.float32)
        weight = _band(_line_distance(across, n), duty * n / 2)
        weight = weight[:, None] if angle == 0 else weight[None, :]
    else:
        n = max(round(period * np.sqrt(2.0)), 3)  # repeat along x and y of a 45-degree stripe
        xs, ys = _tile_coords(n, n)
        t = ys + xs if angle == 2 else ys - xs
        weight = _band(_line_distance(t, n) / np.sqrt(2.0), duty * n / np.sqrt(8.0))
    return _repeat(_two_tone(p, s, weight), size, rng)


def _checks(p, s, period, size, rng):
    n = max(round(period), 4)
    xs, ys = _tile_coords(n, n)
    across = _band(_line_distance(xs, n), n / 4)
    down = _band(_line_distance(ys, n), n / 4)
    tile = _two_tone(s, p, 0.5 * (across + down))
    if rng.random() < 0.4:  # plaid: a thin dark line through the middle of every gap
        half = max(n * 0.04, 0.5)
        thin = np.maximum(
            _band(_line_distance(xs + n / 2, n), half), _band(_line_distance(ys + n / 2, n), half)
        )
        layer(tile, mix(p, np.zeros(3), 0.6), 0.8 * thin)
    return _repeat(tile, size, rng)


def _dots(p, s, period, size, rng):
    n = max(round(period), 4)
    rows = max(round(period * np.sqrt(3.0) / 2.0), 2)  # hexagonal packing
    xs, ys = _tile_coords(2 * rows, n)
    dist = np.full(xs.shape, np.inf, dtype=np.float32)
    for shift_x, shift_y in ((0.0, 0.0), (n / 2, rows)):
        dx = _line_distance(xs + shift_x, n)
        dy = _line_distance(ys + shift_y, 2 * rows)
        dist = np.minimum(dist, np.sqrt(dx * dx + dy * dy))
    radius = n * rng.uniform(0.16, 0.25)
    return _repeat(_two_tone(p, s, _band(dist, radius)), size, rng)


def _smooth_noise(size: int, cell: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance noise smooth over ``cell`` px (cubic upsampling of a grid)."""
    n = int(np.ceil(size / cell)) + 3
    grid = rng.random((n, n), dtype=np.float32)
    big = cv2.resize(grid, (round(n * cell), round(n * cell)), interpolation=cv2.INTER_CUBIC)
    off = round(cell)
    field = big[off : off + size, off : off + size]
    sample = field[::4, ::4]
    return (field - float(sample.mean())) * (1.0 / max(float(sample.std()), 1e-6))


def _step(field: np.ndarray, threshold: float) -> np.ndarray:
    """Anti-aliased field > threshold, with a transition about one pixel wide."""
    gy, gx = np.gradient(field[::4, ::4])
    slope = float(np.mean(np.hypot(gx, gy))) / 4.0 + 1e-6
    return np.clip((field - threshold) * (1.0 / (1.5 * slope)) + 0.5, 0.0, 1.0)


def _camouflage(p, s, period, size, rng):
    # the blob fields are smooth, so they are built at half resolution and only thresholded
    # at full resolution, where the patch edges need their anti-aliasing
    half = (size + 1) // 2

    def blobs(cell: float) -> np.ndarray:
        low = _smooth_noise(half, cell / 2, rng) + 0.35 * _smooth_noise(half, cell / 6, rng)
        return cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)

    img = _two_tone(p, s, _step(blobs(period / 2), 0.0))
    layer(img, mix(s, np.zeros(3), 0.55), _step(blobs(period / 2.5), 0.75))
    return layer(img, mix(p, s, 0.5), _step(blobs(period / 3), 1.0))


def _flower_tile(p, s, period, rng) -> np.ndarray:
    """One repeat of the floral print: two flowers and a leaf pair, wrapped at the tile edge."""
    tile = max(round(period), 12)
    one = 1 << _SHIFT

    def fixed(x: float) -> int:
        return round(x * one)

    layers = np.zeros((3, 3 * tile, 3 * tile), dtype=np.uint8)  # petals, hearts, leaves
    heads = [
        (rng.uniform(0.15, 0.35), rng.uniform(0.15, 0.35), rng.uniform(0.2, 0.24)),
        (rng.uniform(0.62, 0.82), rng.uniform(0.6, 0.8), rng.uniform(0.13, 0.17)),
    ]
    leaf = (rng.uniform(0.6, 0.8), rng.uniform(0.15, 0.35), rng.uniform(0, 180))
    # drawing every motif in the 3 x 3 neighbourhood and keeping the middle wraps the tile
    for ky in range(3):
        for kx in range(3):
            for fx, fy, fr in heads:
                cx, cy, r = (kx + fx) * tile, (ky + fy) * tile, fr * tile
                petals = 5 + int(fr > 0.2)
                for k in range(petals):
                    ang = 360.0 * k / petals + 90.0 * fx
                    dx, dy = 0.55 * r * np.cos(np.deg2rad(ang)), 0.55 * r * np.sin(np.deg2rad(ang))
                    centre = (fixed(cx + dx), fixed(cy + dy))
                    axes = (fixed(0.55 * r), fixed(0.3 * r))
                    cv2.ellipse(layers[0], centre, axes, ang, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
                heart = (fixed(cx), fixed(cy))
                cv2.circle(layers[1], heart, fixed(0.28 * r), 255, -1, cv2.LINE_AA, _SHIFT)
            lx, ly, lang = leaf
            for side in (0.0, 180.0):
                rad = np.deg2rad(lang + side)
                centre = (
                    fixed((kx + lx) * tile + 0.07 * tile * np.cos(rad)),
                    fixed((ky + ly) * tile + 0.07 * tile * np.sin(rad)),
                )
                axes = (fixed(0.08 * tile), fixed(0.035 * tile))
                cv2.ellipse(
                    layers[2], centre, axes, lang + side, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT
                )
    w = layers[:, tile : 2 * tile, tile : 2 * tile].astype(np.float32) * (1.0 / 255.0)
    img = flat(p, (tile, tile))
    layer(img, mix(p, s, 0.45) * 0.85, w[2])
    layer(img, s, w[0])
    return layer(img, mix(s, p, 0.6) * 0.8, w[1])


def _floral(p, s, period, size, rng):
    return _repeat(_flower_tile(p, s, period, rng), size, rng)


def _heather(p, s, period, size, rng):
    # yarn streaks: noise stretched along the weft, over a finer speckle
    cols = max(int(size / max(period, 2.0)) * 2, 2)
    streaks = cv2.resize(
        rng.random((size, cols), dtype=np.float32), (size, size), interpolation=cv2.INTER_CUBIC
    )
    fibres = 0.75 * streaks + 0.25 * rng.random((size, size), dtype=np.float32)
    return _two_tone(p, s, np.clip((fibres - 0.5) * 2.2 + 0.5, 0.0, 1.0))


_DRAW = {
    "stripes": _stripes,
    "checks": _checks,
    "dots": _dots,
    "camouflage": _camouflage,
    "floral": _floral,
    "noise": _heather,
}


@lru_cache(maxsize=16)
def render_pattern(
    name: str,
    primary: str,
    secondary: str,
    scale_cm: float,
    px_per_cm: float,
    size: int,
    seed: int,
) -> np.ndarray:
    """The pattern as float32 sRGB (size, size, 3), read-only (results are cached)."""
    name = check_pattern(name)
    p, s = to_rgb(primary), to_rgb(secondary)
    if name == "solid":
        img = flat(p, (size, size))
    else:
        rng = np.random.default_rng([seed, _PATTERN_SALT])
        period = max(scale_cm * px_per_cm, 3.0)
        img = _DRAW[name](p, s, period, size, rng)
    img = np.ascontiguousarray(img, dtype=np.float32)
    img.flags.writeable = False
    return img
