"""Mask-local coordinates, outlines and line work, all derived from a :class:`FaceFrame`.

Styles describe their shapes in *mask coordinates* ``(u, v)``: ``u`` runs across the face from
-1 (the mask's side edge on the wearer's right, canvas left) to +1, ``v`` runs down from 0 on the
frame's top curve to 1 on its bottom curve, column by column. A shape drawn in (u, v) therefore
follows the curves whatever the wear style, and only its lateral extent is a physical size.
The curves are read as functions of canvas x, which holds for any outline that does not fold
back on itself horizontally. Pixel (row i, column j) has its centre at canvas point (j, i), as in
``cv2.remap``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskface.styles.base import FaceFrame

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_SCALE = 1 << _SHIFT
_EAR_MARGIN = 0.9  # a mask's side edge stays this fraction of the way from midline to ear

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in canvas pixels, end-exclusive


def curve_y(curve: np.ndarray, x: np.ndarray | float) -> np.ndarray:
    """y of a left-to-right polyline at canvas x (clamped to its ends)."""
    return np.interp(x, curve[:, 0], curve[:, 1])


@dataclass(frozen=True)
class MaskSpace:
    """Mask coordinates for a frame and a half-width (canvas px) from the midline."""

    frame: FaceFrame
    half_width: float

    @property
    def cx(self) -> float:
        return self.frame.center_x

    def x(self, u: np.ndarray | float) -> np.ndarray:
        """Canvas x of mask coordinate u."""
        return self.cx + np.asarray(u, dtype=np.float64) * self.half_width

    def top(self, x: np.ndarray | float) -> np.ndarray:
        return curve_y(self.frame.top_curve, x)

    def bottom(self, x: np.ndarray | float) -> np.ndarray:
        return curve_y(self.frame.bottom_curve, x)

    def to_canvas(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Canvas points (N, 2) of mask coordinates (N,), (N,)."""
        x = self.x(u)
        top = self.top(x)
        return np.column_stack([x, top + np.asarray(v) * (self.bottom(x) - top)])

    def grids(self, box: Box) -> Grids:
        """Mask coordinates of every pixel of ``box`` (see :class:`Grids`)."""
        x0, y0, x1, y1 = box
        xs = np.arange(x0, x1, dtype=np.float64)
        top = self.top(xs)
        span = np.maximum(self.bottom(xs) - top, 1.0).astype(np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        v = (ys - top.astype(np.float32)[None, :]) / span
        u = ((xs - self.cx) / self.half_width).astype(np.float32)[None, :]
        return Grids(box, xs.astype(np.float32)[None, :], ys, u, v, span)


@dataclass(frozen=True)
class Grids:
    """Per-pixel coordinates over a box (x0, y0, x1, y1) of the canvas.

    Drawing only inside the mask's bounding box saves most of the canvas. ``xs``, ``u`` and
    ``span`` (the column's top-to-bottom height in px) vary by column only and ``ys`` by row
    only, so they stay 1-row or 1-column arrays that broadcast; ``v`` is (h, w).
    """

    box: Box
    xs: np.ndarray
    ys: np.ndarray
    u: np.ndarray
    v: np.ndarray
    span: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.v.shape

    def window(
        self, centre: np.ndarray, half_width: float, half_height: float
    ) -> tuple[Grids, tuple[slice, slice]]:
        """The part of this grid around ``centre``, and the (rows, cols) slices that cut the
        same part out of arrays covering this grid's box; small features draw only there."""
        x0, y0, x1, y1 = self.box
        wx0 = min(max(int(np.floor(centre[0] - half_width)) - 1, x0), x1)
        wy0 = min(max(int(np.floor(centre[1] - half_height)) - 1, y0), y1)
        wx1 = max(min(int(np.ceil(centre[0] + half_width)) + 2, x1), wx0)
        wy1 = max(min(int(np.ceil(centre[1] + half_height)) + 2, y1), wy0)
        rows, cols = slice(wy0 - y0, wy1 - y0), slice(wx0 - x0, wx1 - x0)
        sub = Grids(
            (wx0, wy0, wx1, wy1), self.xs[:, cols], self.ys[rows], self.u[:, cols],
            self.v[rows, cols], self.span[:, cols],
        )
        return sub, (rows, cols)

    def paste(self, values: np.ndarray, size: int) -> np.ndarray:
        """A (size, size) canvas holding ``values`` in the box, zero elsewhere."""
        x0, y0, x1, y1 = self.box
        out = np.zeros((size, size), dtype=np.float32)
        out[y0:y1, x0:x1] = values
        return out


def bounding_box(points: np.ndarray, size: int, margin: int = 2) -> Box:
    """Pixel box (x0, y0, x1, y1) around ``points`` (N, 2), clipped to the canvas."""
    lo = np.floor(points.min(axis=0)).astype(int) - margin
    hi = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    return x0, y0, min(int(hi[0]), size), min(int(hi[1]), size)


def mask_space(frame: FaceFrame, half_width_cm: float) -> MaskSpace:
    """Mask coordinates whose side edges sit ``half_width_cm`` from the midline (kept off the
    ears, so a narrow face layout cannot push a mask past them)."""
    room = min(frame.center_x - frame.ear_right[0], frame.ear_left[0] - frame.center_x)
    return MaskSpace(frame, min(half_width_cm * frame.px_per_cm, _EAR_MARGIN * float(room)))


def fill_polygon(points: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased coverage (size, size) float32 in [0, 1] of a closed polygon (N, 2)."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    pts = np.round(points * _SCALE).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) * (1.0 / 255.0)


def fill_circles(centres: np.ndarray, radius: float, size: int) -> np.ndarray:
    """Anti-aliased coverage of filled discs of one radius at ``centres`` (N, 2)."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    rad = max(round(radius * _SCALE), 1)
    for c in np.round(centres * _SCALE).astype(np.int64):
        cv2.circle(canvas, (int(c[0]), int(c[1])), rad, 255, -1, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) * (1.0 / 255.0)


def draw_lines(segments: list[np.ndarray], width: float, size: int) -> np.ndarray:
    """Anti-aliased coverage of open polylines of a given width (px)."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    pts = [np.round(s * _SCALE).astype(np.int32) for s in segments if len(s) > 1]
    cv2.polylines(canvas, pts, False, 255, max(round(width), 1), cv2.LINE_AA, _SHIFT)
    coverage = canvas.astype(np.float32) * (1.0 / 255.0)
    # OpenCV widths are whole pixels: scale thin lines down instead of thickening them
    return coverage * min(width, 1.0)


def edge_distance(alpha: np.ndarray) -> np.ndarray:
    """Distance (px) from each covered pixel to the outline, 0 outside."""
    inside = (alpha > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # OpenCV's result can differ in the last bit from run to run; the squared distances are
    # whole numbers, so rounding them makes the result exact and repeatable
    return np.sqrt(np.round(dist * dist))


def resample(points: np.ndarray, step: float, closed: bool = False) -> np.ndarray:
    """Points spaced ``step`` px apart along a polyline (the first point kept)."""
    pts = np.concatenate([points, points[:1]]) if closed else points
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(arc[-1] // step), 1)
    at = np.arange(n + (0 if closed else 1)) * (arc[-1] / n)
    return np.column_stack([np.interp(at, arc, pts[:, 0]), np.interp(at, arc, pts[:, 1])])


def dashes(points: np.ndarray, dash: float, gap: float) -> list[np.ndarray]:
    """Split an open polyline into dashes of length ``dash`` separated by ``gap`` (px)."""
    fine = resample(points, min(dash, gap) / 4.0)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(fine, axis=0), axis=1))])
    on = (arc % (dash + gap)) < dash
    out, start = [], None
    for i, flag in enumerate(on):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append(fine[start:i])
            start = None
    if start is not None:
        out.append(fine[start:])
    return out


def offset_inward(points: np.ndarray, distance: float) -> np.ndarray:
    """A closed polygon moved ``distance`` px toward its inside along its vertex normals."""
    tangent = np.roll(points, -1, axis=0) - np.roll(points, 1, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    x, y = points[:, 0], points[:, 1]
    area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    # with y down, a positive shoelace area means clockwise on screen: the left normal points in
    return points + (distance if area > 0 else -distance) * normal
