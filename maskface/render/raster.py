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
    canvas coordinates to sample (-1 where empty), ``bary`` (h, w, 3) the barycentric weights.
    """

    region: tuple[int, int, int, int]
    triangles: np.ndarray
    tri: np.ndarray
    map_x: np.ndarray
    map_y: np.ndarray
    bary: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        return self.tri >= 0

    def interpolate(self, values: np.ndarray) -> np.ndarray:
        """Interpolate per-vertex ``values`` (V, C) over the covered pixels: (h, w, C)."""
        out = np.zeros((*self.tri.shape, values.shape[1]), dtype=np.float32)
        ys, xs = np.nonzero(self.covered)
        corners = self.triangles[self.tri[ys, xs]]
        w = self.bary[ys, xs]
        out[ys, xs] = np.einsum("nk,nkc->nc", w, values[corners]).astype(np.float32)
        return out


def signed_area(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle (positive = counter-clockwise with y down)."""
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


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
    front = signed_area(points, triangles) > 1e-6
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
    for k in order:
        cv2.fillConvexPoly(label, fixed[k], int(k), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)

    # Per-triangle inverse of [[x0 x1 x2], [y0 y1 y2], [1 1 1]]: pixel -> barycentric.
    pm = np.ones((len(tris), 3, 3))
    pm[:, 0, :] = corners[:, :, 0]
    pm[:, 1, :] = corners[:, :, 1]
    inv = np.linalg.inv(pm)

    ys, xs = np.nonzero(label >= 0)
    k = label[ys, xs]
    pix = np.stack([xs + x0 + 0.0, ys + y0 + 0.0, np.ones(len(xs))], axis=1)
    bary = np.einsum("nij,nj->ni", inv[k], pix)
    tex = np.einsum("nk,nkc->nc", bary, uv[tris[k]])

    map_x = np.full(label.shape, -1.0, dtype=np.float32)
    map_y = np.full(label.shape, -1.0, dtype=np.float32)
    map_x[ys, xs] = tex[:, 0]
    map_y[ys, xs] = tex[:, 1]
    bary_img = np.zeros((*label.shape, 3), dtype=np.float32)
    bary_img[ys, xs] = bary
    # Report triangle indices in the caller's numbering.
    tri_img = np.full(label.shape, -1, dtype=np.int32)
    tri_img[ys, xs] = np.flatnonzero(front)[k]
    return Raster((x0, y0, x1, y1), triangles, tri_img, map_x, map_y, bary_img)


def sample(texture: np.ndarray, raster: Raster) -> np.ndarray:
    """Warp a canvas texture (H, W[, C]) into the raster's region (zero outside)."""
    return cv2.remap(
        texture, raster.map_x, raster.map_y, interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
