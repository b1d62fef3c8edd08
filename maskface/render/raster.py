"""Piecewise-affine rasterisation of a textured triangle mesh into an image region.

Each image pixel is assigned to the nearest camera-facing triangle covering it (painter's
order, far to near), and gets that triangle's affine map to the texture canvas and its
barycentric weights. One remap then warps any number of texture layers, which is far faster
than warping triangle by triangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SUBPIXEL_BITS = 4


@dataclass
class Raster:
    """Per-pixel correspondence between an image region and the texture canvas.

    ``region`` is (x0, y0, x1, y1) in the image; the arrays cover that region. ``tri`` holds
    the index into ``triangles`` per pixel (-1 where no triangle), ``map_x``/``map_y`` the
    canvas coordinates to sample (-1 where empty). ``to_bary`` (T, 3, 3) maps a pixel
    (x, y, 1) to barycentric weights within each triangle.
    """

    region: tuple[int, int, int, int]
    triangles: np.ndarray
    tri: np.ndarray
    map_x: np.ndarray
    map_y: np.ndarray
    to_bary: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        return self.tri >= 0

    def interpolate(self, values: np.ndarray) -> np.ndarray:
        """Interpolate per-vertex ``values`` (V, C) over the covered pixels: (h, w, C)."""
        out = np.zeros((*self.tri.shape, values.shape[1]), dtype=np.float32)
        ys, xs = np.nonzero(self.covered)
        k = self.tri[ys, xs]
        pix = np.stack([xs + self.region[0], ys + self.region[1], np.ones(len(xs))], axis=1)
        w = np.einsum("nij,nj->ni", self.to_bary[k], pix)
        out[ys, xs] = np.einsum("nk,nkc->nc", w, values[self.triangles[k]])
        return out


def signed_area(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle (positive = counter-clockwise with y down)."""
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _barycentric_maps(corners: np.ndarray) -> np.ndarray:
    """(T, 3, 3) matrices taking (x, y, 1) to barycentric weights, in closed form."""
    (x0, y0), (x1, y1), (x2, y2) = (corners[:, k].T for k in range(3))
    det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    out = np.empty((len(corners), 3, 3))
    # w1 = ((y2 - y0)(x - x0) - (x2 - x0)(y - y0)) / det; w2 likewise; w0 = 1 - w1 - w2
    out[:, 1, 0], out[:, 1, 1] = (y2 - y0) / det, -(x2 - x0) / det
    out[:, 1, 2] = -(out[:, 1, 0] * x0 + out[:, 1, 1] * y0)
    out[:, 2, 0], out[:, 2, 1] = -(y1 - y0) / det, (x1 - x0) / det
    out[:, 2, 2] = -(out[:, 2, 0] * x0 + out[:, 2, 1] * y0)
    out[:, 0] = -out[:, 1] - out[:, 2]
    out[:, 0, 2] += 1.0
    return out


def rasterize(
    points: np.ndarray,
    depth: np.ndarray,
    uv: np.ndarray,
    triangles: np.ndarray,
    image_shape: tuple[int, ...],
    pad: int = 2,
) -> Raster | None:
    """Rasterise camera-facing ``triangles`` of a mesh projected at ``points`` (V, 2).

    ``depth`` (V,) grows away from the camera; ``uv`` (V, 2) are canvas pixel coordinates.
    Returns None when no camera-facing triangle falls inside the image.
    """
    h, w = image_shape[:2]
    front = np.flatnonzero(signed_area(points, triangles) > 1e-6)
    tris = triangles[front]
    if len(tris) == 0:
        return None
    corners = points[tris]
    lo = np.floor(corners.reshape(-1, 2).min(axis=0)).astype(int) - pad
    hi = np.ceil(corners.reshape(-1, 2).max(axis=0)).astype(int) + pad
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], w), min(hi[1], h)
    if x1 <= x0 or y1 <= y0:
        return None

    order = np.argsort(-depth[tris].mean(axis=1), kind="stable")
    label = np.full((y1 - y0, x1 - x0), -1, dtype=np.int32)
    fixed = np.round((corners - (x0, y0)) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    for k in order.tolist():
        cv2.fillConvexPoly(label, fixed[k], k, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)

    to_bary = _barycentric_maps(corners)
    # Per-triangle affine map pixel -> canvas: uv corners times the barycentric map.
    affine = np.einsum("tkc,tkj->tcj", uv[tris], to_bary)  # (T, 2, 3)
    ys, xs = np.nonzero(label >= 0)
    k = label[ys, xs]
    px, py = xs + float(x0), ys + float(y0)
    a = affine[k]
    map_x = np.full(label.shape, -1.0, dtype=np.float32)
    map_y = np.full(label.shape, -1.0, dtype=np.float32)
    map_x[ys, xs] = a[:, 0, 0] * px + a[:, 0, 1] * py + a[:, 0, 2]
    map_y[ys, xs] = a[:, 1, 0] * px + a[:, 1, 1] * py + a[:, 1, 2]
    full_to_bary = np.zeros((len(triangles), 3, 3))
    full_to_bary[front] = to_bary
    # Report triangle indices in the caller's numbering.
    label[ys, xs] = front[k]
    return Raster((x0, y0, x1, y1), triangles, label, map_x, map_y, full_to_bary)


def sample(texture: np.ndarray, raster: Raster) -> np.ndarray:
    """Warp a canvas texture (H, W[, C]) into the raster's region (zero outside)."""
    return cv2.remap(
        texture, raster.map_x, raster.map_y, interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
