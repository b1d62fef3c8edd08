"""Estimating how a face is lit, so a mask drawn on it can be lit the same way.

The skin is treated as a Lambertian surface under ambient plus one directional light:
``luminance = albedo * (ambient + light . normal)``, fitted by least squares over skin points
whose normals come from the fitted face mesh. The photo's white balance comes from a grey-world
estimate over the image, pulled toward neutral because real scenes are not grey on average.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_LUMA = np.array([0.2126, 0.7152, 0.0722])
_TYPICAL_SKIN = 0.28  # linear luminance of average skin under a normal exposure
_WHITE = 0.80  # linear luminance that a well-exposed white surface reaches


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] to linear light."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light to sRGB in [0, 1] (a 4096-entry table: finer than 8-bit output needs)."""
    idx = np.clip(np.asarray(x, dtype=np.float32) * (_LUT_SIZE - 1) + 0.5, 0, _LUT_SIZE - 1)
    return _TO_SRGB[idx.astype(np.int32)]


_SRGB_LUT = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_LUT_SIZE = 4096
_lin = np.linspace(0.0, 1.0, _LUT_SIZE)
_TO_SRGB = np.where(
    _lin <= 0.0031308, _lin * 12.92, 1.055 * np.power(_lin, 1 / 2.4) - 0.055
).astype(np.float32)


@dataclass(frozen=True)
class Lighting:
    """Light on a face, in the image frame (x right, y down, z away from the camera).

    Shading of a unit normal n is ``exposure * (ambient + direction . n * strength)``, relative
    to a surface lit head-on; ``white`` is the RGB gain of the illuminant (luminance 1).
    """

    ambient: float
    direction: np.ndarray
    strength: float
    exposure: float
    white: np.ndarray
    noise: float

    def shade(self, normals: np.ndarray) -> np.ndarray:
        """Irradiance factor for an array of unit normals (..., 3)."""
        lambert = np.clip(-(normals @ self.direction), 0.0, None)
        return self.exposure * (self.ambient + self.strength * lambert)

    def highlight(self, normals: np.ndarray, shininess: float = 24.0) -> np.ndarray:
        """Blinn-Phong specular term toward the camera for unit normals (..., 3)."""
        half = -self.direction + np.array([0.0, 0.0, -1.0])
        half /= max(float(np.linalg.norm(half)), 1e-9)
        facing = np.clip(normals @ half.astype(np.float32), 0.0, None)
        return self.exposure * self.strength * facing**shininess

    def as_dict(self) -> dict:
        return {
            "ambient": round(self.ambient, 4),
            "direction": [round(float(v), 4) for v in self.direction],
            "strength": round(self.strength, 4),
            "exposure": round(self.exposure, 4),
            "white": [round(float(v), 4) for v in self.white],
            "noise": round(self.noise, 4),
        }


def to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB image to float32 linear light (table lookup)."""
    return _SRGB_LUT[image]


def estimate_white(image_lin: np.ndarray, strength: float = 0.35) -> np.ndarray:
    """Illuminant colour (RGB, luminance 1) by grey world over mid-tone linear pixels."""
    px = _thumbnail(image_lin).reshape(-1, 3) if image_lin.ndim == 3 else image_lin
    lum = px @ _LUMA
    lo, hi = np.quantile(lum, [0.05, 0.97])
    mid = px[(lum > lo) & (lum < hi) & (px.max(axis=1) < 0.98)]
    if len(mid) < 50:
        return np.ones(3)
    mean = mid.mean(axis=0)
    white = mean / max(float(mean @ _LUMA), 1e-6)
    white = (1 - strength) + strength * np.clip(white, 0.5, 2.0)
    return white / float(white @ _LUMA)


def fit_light(
    luminance: np.ndarray, normals: np.ndarray
) -> tuple[float, np.ndarray, float]:
    """Fit ``luminance ~ a + b . n`` (robustly) and return (a, unit direction, |b|).

    The direction points from the light toward the face, so a face lit from the camera's side
    has direction z > 0 (the light travels away from the camera).
    """
    design = np.column_stack([np.ones(len(normals)), normals])
    keep = np.ones(len(luminance), dtype=bool)
    coef = np.zeros(4)
    for _ in range(3):  # drop outliers (specular spots, hair, glasses) and refit
        coef, *_ = np.linalg.lstsq(design[keep], luminance[keep], rcond=None)
        resid = np.abs(design @ coef - luminance)
        keep = resid <= max(2.5 * np.median(resid[keep]), 1e-6)
    a, b = float(coef[0]), coef[1:]
    # luminance = a + b.n = a' + s * max(0, -d.n) near the front: d = -b / |b|
    strength = float(np.linalg.norm(b))
    direction = -b / strength if strength > 1e-9 else np.array([0.0, 0.0, 1.0])
    return a, direction, strength


def _thumbnail(image: np.ndarray, max_pixels: int = 4_000) -> np.ndarray:
    """Every k-th pixel each way, so global statistics cost the same on any image size."""
    h, w = image.shape[:2]
    k = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    return image[::k, ::k]


def estimate_lighting(image: np.ndarray, points: np.ndarray, normals: np.ndarray) -> Lighting:
    """Lighting from skin samples at image ``points`` (N, 2) with unit ``normals`` (N, 3).

    The caller chooses the points (bare, camera-facing skin). Exposure is the geometric mean
    of what the skin and the photo's white point suggest, so neither a dark complexion nor a
    dark background alone darkens the mask.
    """
    h, w = image.shape[:2]
    thumb = to_linear(_thumbnail(image)).reshape(-1, 3)
    white = estimate_white(thumb)
    white_point = float(np.quantile(thumb @ _LUMA, 0.99))
    px = np.clip(np.round(points).astype(int), 0, [w - 1, h - 1])
    if len(px) < 12:
        return Lighting(1.0, np.array([0.0, 0.0, 1.0]), 0.0, 1.0, white, 0.0)
    # Only the face's own region is smoothed and read.
    x0, y0 = np.maximum(px.min(axis=0) - 4, 0)
    x1, y1 = np.minimum(px.max(axis=0) + 5, [w, h])
    region = image[y0:y1, x0:x1]
    local = px - (x0, y0)
    smooth = cv2.GaussianBlur(region, (0, 0), 1.0)
    lum = to_linear(smooth[local[:, 1], local[:, 0]]) @ _LUMA
    a, direction, strength = fit_light(lum, normals)
    # Express in terms relative to a surface facing the camera at the mean skin level.
    head_on = max(a + strength * max(0.0, direction[2]), 1e-4)
    skin_level = float(np.median(lum))
    ambient = max(a, 0.0) / head_on
    rel_strength = strength / head_on
    total = max(ambient + rel_strength * max(0.0, direction[2]), 1e-4)
    ambient, rel_strength = ambient / total, rel_strength / total
    from_skin = np.clip(skin_level / _TYPICAL_SKIN, 0.35, 1.6)
    from_white = np.clip(white_point / _WHITE, 0.3, 1.3)
    exposure = float(np.sqrt(from_skin * from_white))
    noise = _noise_level(region, local)
    return Lighting(ambient, direction, rel_strength, exposure, white, noise)


def _noise_level(image: np.ndarray, px: np.ndarray) -> float:
    """Sensor/JPEG noise (sRGB units in [0, 1]) from the skin's fine detail."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    vals = np.abs(lap[px[:, 1], px[:, 0]])
    # For white noise of sigma s the 3x3 Laplacian has sigma ~ sqrt(20) s; skin texture adds
    # detail of its own, so take a low quantile (the flattest skin) rather than the median.
    sigma = float(np.quantile(vals, 0.25)) / 0.3186 / np.sqrt(20.0)
    return min(sigma, 0.03)
