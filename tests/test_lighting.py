"""Light and white-balance estimators on images the tests draw with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from maskface.render.lighting import estimate_lighting, estimate_white, linear_to_srgb


def _lit_sphere(direction: np.ndarray, cast=(1.0, 1.0, 1.0), size: int = 200):
    """A matte grey sphere lit by ambient + one directional light, and its surface samples."""
    d = direction / np.linalg.norm(direction)
    yy, xx = np.mgrid[0:size, 0:size]
    r = size * 0.45
    x, y = (xx - size / 2) / r, (yy - size / 2) / r
    inside = x**2 + y**2 < 0.95
    z = -np.sqrt(np.clip(1 - x**2 - y**2, 0, None))  # toward the camera
    normals = np.stack([x, y, z], axis=-1)
    lum = 0.25 + 0.6 * np.clip(-(normals @ d), 0, None)
    lin = lum[..., None] * 0.6 * np.asarray(cast)
    img = np.where(inside[..., None], lin, 0.18 * np.asarray(cast))
    image = np.round(linear_to_srgb(img) * 255).astype(np.uint8)
    ys, xs = np.nonzero(inside & (z < -0.5))  # a face shows normals within ~60 degrees
    pick = np.arange(0, len(xs), 7)
    return image, np.stack([xs[pick], ys[pick]], 1).astype(float), normals[ys[pick], xs[pick]]


@pytest.mark.parametrize(
    "direction",
    [(0.0, 0.0, 1.0), (0.6, 0.2, 0.77), (-0.5, 0.4, 0.77), (0.3, -0.6, 0.74), (-0.7, 0, 0.7)],
)
def test_light_direction_is_recovered_within_15_degrees(direction):
    d = np.asarray(direction) / np.linalg.norm(direction)
    image, points, normals = _lit_sphere(d)
    light = estimate_lighting(image, points, normals)
    angle = np.degrees(np.arccos(np.clip(light.direction @ d, -1, 1)))
    assert angle < 15, angle


def test_side_light_is_not_mistaken_for_front_light():
    image, points, normals = _lit_sphere(np.array([0.8, 0.0, 0.6]))
    light = estimate_lighting(image, points, normals)
    assert light.direction[0] > 0.5


@pytest.mark.parametrize("cast", [(1.25, 1.0, 0.7), (0.8, 1.0, 1.3)])
def test_colour_cast_is_recovered(cast):
    rng = np.random.default_rng(0)
    # A varied scene of neutral surfaces under a coloured light.
    grey = rng.uniform(0.05, 0.7, (120, 160, 1))
    scene = np.clip(grey * np.asarray(cast), 0, 1)
    white = estimate_white(scene, strength=1.0)
    expected = np.asarray(cast) / (np.asarray(cast) @ [0.2126, 0.7152, 0.0722])
    assert np.allclose(white, expected, rtol=0.05)
    partial = estimate_white(scene, strength=0.5)
    assert np.all(np.sign(partial - 1) == np.sign(expected - 1))


def test_brighter_photo_gives_higher_exposure():
    d = np.array([0.0, 0.0, 1.0])
    image, points, normals = _lit_sphere(d)
    dark = (image * 0.45).astype(np.uint8)
    bright = estimate_lighting(image, points, normals)
    dim = estimate_lighting(dark, points, normals)
    assert dim.exposure < bright.exposure * 0.8
