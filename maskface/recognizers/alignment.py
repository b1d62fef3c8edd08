"""Face chips aligned the way dlib aligns them for its recognizer.

dlib's ``get_face_chip_details(shape, size, padding)`` fits a similarity transform from the
5 or 68 landmarks to its mean face and returns the chip as a rotated rectangle in the image.
That fit is cheap geometry and dlib is a hard dependency, so it is used as is. The pixels are
cut by dlib by default; ``method="numpy"`` resamples them here with the rule dlib uses
(bilinear, truncated to uint8, black where the 2x2 neighbourhood leaves the image). dlib first
picks a level of an image pyramid when the face is more than twice the chip size; the numpy
path shrinks the image with ``cv2.pyrDown`` instead, so only such large faces differ from
dlib's chips by more than rounding (tolerance in ``benchmarks/RESULTS.md``).

MediaPipe faces carry no 68-point landmarks; theirs are interpolated from the dense mesh at
the spots where dlib's 68 points sit on the reference face.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

from maskface.geometry.face import Face
from maskface.geometry.reference import reference


def chip_corners(landmarks: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Image positions (3, 2) of the chip's top-left, top-right and bottom-right pixels.

    ``landmarks`` are dlib's 5 or 68 points (K, 2) in image pixels.
    """
    import dlib

    points = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if len(points) not in (5, 68):
        raise ValueError(f"need 5 or 68 landmarks, got {len(points)}")
    # dlib's landmark type holds integer pixels: sub-pixel positions are rounded.
    details = dlib.get_face_chip_details(_detection(points), size, padding)
    r = details.rect
    corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]])
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    c, s = np.cos(details.angle), np.sin(details.angle)
    return (corners - centre) @ np.array([[c, s], [-s, c]]) + centre


def chip_points(corners: np.ndarray, points: np.ndarray, size: int = 150) -> np.ndarray:
    """Image ``points`` (K, 2) in pixels of the ``size`` chip whose top-left, top-right and
    bottom-right pixels are at ``corners`` (see :func:`chip_corners`)."""
    tl, tr, br = np.asarray(corners, np.float64)
    # The chip's x runs along tl -> tr and its y along tr -> br, size - 1 pixels each.
    basis = np.stack([tr - tl, br - tr]) / (size - 1)
    return (np.asarray(points, np.float64) - tl) @ np.linalg.inv(basis)


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    a = np.column_stack([src, np.ones(3)])
    return np.linalg.solve(a, dst).T


def sample_bilinear(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """A size x size chip whose pixel (x, y) is ``image`` at ``matrix @ (x, y, 1)``."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    px = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    py = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    h, w = image.shape[:2]
    left, top = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    inside = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    left, top = np.where(inside, left, 0), np.where(inside, top, 0)
    fx, fy = (px - left)[..., None], (py - top)[..., None]
    img = image.astype(np.float64)
    value = (1 - fy) * ((1 - fx) * img[top, left] + fx * img[top, left + 1]) + fy * (
        (1 - fx) * img[top + 1, left] + fx * img[top + 1, left + 1]
    )
    # dlib converts the interpolated value to uint8 by truncation.
    chip = np.clip(value, 0, 255).astype(np.uint8)
    chip[~inside] = 0
    return chip


def extract_chip(image: np.ndarray, corners: np.ndarray, size: int = 150) -> np.ndarray:
    """Resample the chip with the given corners (see :func:`chip_corners`) from ``image``."""
    matrix = _affine_from_points(
        np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], dtype=np.float64), corners
    )
    scale = np.hypot(matrix[0, 0], matrix[1, 0])  # image pixels per chip pixel
    while scale > 2 and min(image.shape[:2]) > 1:
        image = cv2.pyrDown(image)
        matrix = matrix / 2 - np.array([[0, 0, 0.25], [0, 0, 0.25]])
        scale /= 2
    return sample_bilinear(np.ascontiguousarray(image), matrix, size)


@cache
def _mesh_to_68() -> tuple[np.ndarray, np.ndarray]:
    ref = reference()
    tri = Delaunay(ref.mesh[:, :2])
    targets = ref.dlib68[:, :2]
    simplex = tri.find_simplex(targets)
    # Points just outside the mesh's hull (jaw corners) take the nearest triangle.
    if (simplex < 0).any():
        centroids = ref.mesh[tri.simplices, :2].mean(axis=1)
        for i in np.flatnonzero(simplex < 0):
            simplex[i] = int(np.argmin(np.linalg.norm(centroids - targets[i], axis=1)))
    t = tri.transform[simplex]
    bary = np.einsum("nij,nj->ni", t[:, :2], targets - t[:, 2])
    weights = np.column_stack([bary, 1 - bary.sum(axis=1)])
    return tri.simplices[simplex], weights


def landmarks68_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """dlib-style 68 landmarks (68, 2) interpolated from a 468-point face mesh."""
    vertices, weights = _mesh_to_68()
    return np.einsum("nk,nkd->nd", weights, np.asarray(mesh)[vertices, :2])


def face_landmarks(face: Face | np.ndarray) -> np.ndarray:
    """The 5 or 68 alignment landmarks of a :class:`Face` (or landmarks passed through)."""
    if isinstance(face, Face):
        if len(face.landmarks) == 68:
            return np.asarray(face.landmarks)[:, :2]
        return landmarks68_from_mesh(face.mesh)
    return np.asarray(face)[:, :2]


def align_face(
    image: np.ndarray,
    face: Face | np.ndarray,
    size: int = 150,
    padding: float = 0.25,
    method: str = "dlib",
) -> np.ndarray:
    """The aligned RGB chip (size, size, 3) of one face, as dlib's ``get_face_chip`` cuts it.

    ``method="dlib"`` lets dlib resample (exact, ~0.4 ms); ``"numpy"`` uses this module's
    re-implementation (identical chips on LFW, ~4 ms; no dlib image code involved).
    """
    points = face_landmarks(face)
    if method == "numpy":
        return extract_chip(image, chip_corners(points, size, padding), size)
    if method != "dlib":
        raise ValueError(f"unknown alignment method {method!r}")
    return dlib_chip(image, points, size, padding)


def _detection(points: np.ndarray):
    import dlib

    parts = dlib.points([dlib.point(round(x), round(y)) for x, y in points])
    box = dlib.rectangle(*(round(v) for v in (*points.min(0), *points.max(0))))
    return dlib.full_object_detection(box, parts)


def dlib_chip(
    image: np.ndarray, landmarks: np.ndarray, size: int = 150, padding: float = 0.25
) -> np.ndarray:
    """The chip cut by dlib itself (``dlib.get_face_chip``) from 5 or 68 landmarks (K, 2)."""
    import dlib

    shape = _detection(np.asarray(landmarks, dtype=np.float64)[:, :2])
    return dlib.get_face_chip(np.ascontiguousarray(image), shape, size, padding)
