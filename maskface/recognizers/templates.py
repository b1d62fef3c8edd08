"""The alignments recognizers are trained with: ArcFace's 5-point warp, FaceNet's crop, dlib's chip.

- ``arcface112``: a least-squares similarity transform (rotation, uniform scale, shift) takes
  five points (eye centres, nose tip, mouth corners) onto the 112x112 template of the
  insightface models, and the image is warped with it.
- ``facenet160``: the face box, made square and enlarged by a margin (32 px of the 160), is cut
  out and resized to 160x160, as facenet's MTCNN alignment does, without rotation.
- ``dlib150``: dlib's own chip (:func:`maskface.recognizers.alignment.align_face`).
- ``dlib150-upper``: dlib's chip framing, but the similarity is fitted to the eyes, brows and
  nose bridge only (:data:`UPPER_TEMPLATE`). Under a mask dlib's predictor guesses the mouth
  and jaw points, and the full fit follows the guess: masked and bare chips of one photo
  differ by 10.4 chip pixels at the corners with ``dlib150`` and 4.6 with this one (LFW, 2D
  masks: ``benchmarks/bench_upper_alignment.py``).

The five points come from dlib's 68 landmarks or a :class:`Face` (via the 68 points that
:func:`~maskface.recognizers.alignment.face_landmarks` gives for any backend). A (5, 2) array
is taken as the five points already, in the ArcFace order below (what RetinaFace, SCRFD and
MTCNN detectors return); dlib's own 5-point predictor has no mouth corners, so its points
only suit ``dlib150``.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from maskface.geometry.face import Face
from maskface.geometry.reference import reference
from maskface.recognizers.alignment import align_face, face_landmarks

# The five points of insightface's 112x112 template, in chip pixels (pixel centres at integer
# coordinates, as cv2.warpAffine uses): image-left eye (the subject's right), image-right eye,
# nose tip, image-left and image-right mouth corners.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
ARCFACE_SIZE = 112
FACENET_SIZE = 160
FACENET_MARGIN = 32  # pixels of the 160x160 chip, facenet's align_dataset_mtcnn default
# dlib's 68-point indices of the brows, the nose bridge and the eyes: what a mask leaves visible.
UPPER_POINTS = np.r_[17:31, 36:48]
# Their mean position in dlib's unit face coordinates (0..1 across the face; a chip with
# padding p spans -p..1 + p), from 800 LFW folds 1-5 faces: tools/fit_upper_template.py.
UPPER_TEMPLATE = np.array([
    [0.0010, 0.1161],
    [0.0725, 0.0455],
    [0.1764, 0.0206],
    [0.2862, 0.0328],
    [0.3888, 0.0738],
    [0.5882, 0.0725],
    [0.6913, 0.0316],
    [0.8033, 0.0190],
    [0.9093, 0.0441],
    [0.9842, 0.1159],
    [0.4885, 0.1940],
    [0.4880, 0.2957],
    [0.4868, 0.3974],
    [0.4859, 0.5027],
    [0.1243, 0.2209],
    [0.1876, 0.1829],
    [0.2631, 0.1825],
    [0.3317, 0.2287],
    [0.2592, 0.2423],
    [0.1854, 0.2428],
    [0.6510, 0.2283],
    [0.7175, 0.1827],
    [0.7939, 0.1826],
    [0.8592, 0.2199],
    [0.7966, 0.2421],
    [0.7220, 0.2417],
])
# Name -> chip size of every alignment a recognizer can ask for.
ALIGNMENTS: dict[str, int] = {"arcface112": ARCFACE_SIZE, "facenet160": FACENET_SIZE,
                              "dlib150": 150, "dlib150-upper": 150}
# dlib's 68-point indices behind the five points.
_RIGHT_EYE, _LEFT_EYE = slice(36, 42), slice(42, 48)
_NOSE_TIP, _MOUTH_RIGHT, _MOUTH_LEFT = 30, 48, 54


def check_alignment(name: str) -> int:
    """The chip size of alignment ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return ALIGNMENTS[name]
    except KeyError:
        raise ValueError(f"unknown alignment {name!r}; choose from {sorted(ALIGNMENTS)}") from None


def points5_from_68(landmarks: np.ndarray) -> np.ndarray:
    """The five ArcFace points (5, 2) from dlib's 68 landmarks (68, 2)."""
    p = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if len(p) != 68:
        raise ValueError(f"need 68 landmarks, got {len(p)}")
    return np.array([p[_RIGHT_EYE].mean(0), p[_LEFT_EYE].mean(0), p[_NOSE_TIP],
                     p[_MOUTH_RIGHT], p[_MOUTH_LEFT]])


def five_points(face: Face | np.ndarray) -> np.ndarray:
    """The five ArcFace points (5, 2) of a :class:`Face`, 68 landmarks or five points."""
    points = face_landmarks(face)
    if len(points) == 5:
        return np.asarray(points, dtype=np.float64)
    if len(points) != 68:
        raise ValueError(f"need a Face, 68 landmarks or 5 points, got {len(points)} points")
    return points5_from_68(points)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 3) similarity (no reflection) mapping ``src`` points closest to ``dst``.

    Least squares over all points: with five well-spread points there are no outliers to
    reject, and a robust fit (LMEDS) would instead rest on a subset of them.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    # In complex form a similarity is z -> a z + b; the least-squares a has a closed form.
    zs, zd = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    denom = float(np.sum(np.abs(zs) ** 2))
    if denom < 1e-12:
        raise ValueError("the landmarks coincide; no alignment is possible")
    a = np.sum(np.conj(zs) * zd) / denom
    rot = np.array([[a.real, -a.imag], [a.imag, a.real]])
    return np.column_stack([rot, md - rot @ ms])


def arcface_matrix(points5: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The (2, 3) image-to-chip similarity taking five points onto the template at ``size``."""
    return similarity_transform(points5, ARCFACE_TEMPLATE * (size / ARCFACE_SIZE))


def warp_chip(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size chip whose pixel ``matrix @ (x, y, 1)`` is image pixel (x, y).

    Bilinear, black outside the image. A face more than twice the chip's size is first
    halved with ``cv2.pyrDown`` (as many times as needed), so big photos do not alias.
    """
    m = np.asarray(matrix, dtype=np.float64).copy()
    scale = np.sqrt(abs(np.linalg.det(m[:, :2])))  # chip pixels per image pixel
    while scale < 0.5 and min(image.shape[:2]) > 1:
        # pyrDown's output pixel x sits at input pixel 2x.
        image = cv2.pyrDown(image)
        m[:, :2] *= 2
        scale *= 2
    return cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_arcface(image: np.ndarray, face: Face | np.ndarray,
                  size: int = ARCFACE_SIZE) -> np.ndarray:
    """The ArcFace chip (size, size, 3): five points warped onto the (scaled) template."""
    return warp_chip(image, arcface_matrix(five_points(face), size), size)


@cache
def _reference68() -> np.ndarray:
    return reference().dlib68[:, :2].astype(np.float64)


def face_box(face: Face | np.ndarray) -> np.ndarray:
    """The face box (x0, y0, x1, y1) spanned by the 68 landmarks.

    Five points span only the inner face, so then the reference face's 68 points are posed
    onto them (by the similarity through their five points) and give the box.
    """
    points = face_landmarks(face)
    if len(points) == 5:
        ref = _reference68()
        m = similarity_transform(points5_from_68(ref), points)
        points = ref @ m[:, :2].T + m[:, 2]
    elif len(points) != 68:
        raise ValueError(f"need a Face, 68 landmarks or 5 points, got {len(points)} points")
    return np.array([*points.min(0), *points.max(0)], dtype=np.float64)


def facenet_matrix(face: Face | np.ndarray, size: int = FACENET_SIZE,
                   margin: float = FACENET_MARGIN) -> np.ndarray:
    """The (2, 3) image-to-chip scale-and-shift of the FaceNet crop (see :func:`align_facenet`)."""
    x0, y0, x1, y1 = face_box(face)
    side = max(x1 - x0, y1 - y0)
    # The face fills size - margin pixels; margin is given for 160 and scales with the size.
    k = (size - margin * size / FACENET_SIZE) / side
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    # Chip pixel (size - 1) / 2 is the chip's centre.
    shift = (size - 1) / 2 - k * centre
    return np.array([[k, 0.0, shift[0]], [0.0, k, shift[1]]])


def align_facenet(image: np.ndarray, face: Face | np.ndarray, size: int = FACENET_SIZE,
                  margin: float = FACENET_MARGIN) -> np.ndarray:
    """The FaceNet chip (size, size, 3): the square face box plus ``margin``, upright.

    ``margin`` is in pixels of a 160 chip (32: the face spans 128 of 160 pixels, centred).
    Unlike facenet, the box is not clipped to the image; what lies outside is black, so the
    face stays centred and unstretched.
    """
    return warp_chip(image, facenet_matrix(face, size, margin), size)


def upper_matrix(face: Face | np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The (2, 3) image-to-chip similarity of ``dlib150-upper``: the upper-face points onto
    :data:`UPPER_TEMPLATE` placed as dlib places its mean face in a chip of that padding."""
    points = face_landmarks(face)
    if len(points) != 68:
        raise ValueError(f"dlib150-upper needs 68 landmarks, got {len(points)} points")
    # Unit face coordinates -> chip pixels: -padding at pixel 0, 1 + padding at size - 1.
    target = (UPPER_TEMPLATE + padding) / (1 + 2 * padding) * (size - 1)
    return similarity_transform(points[UPPER_POINTS], target)


def upper_corners(face: Face | np.ndarray, size: int = 150, padding: float = 0.25
                  ) -> np.ndarray:
    """Image positions (3, 2) of the ``dlib150-upper`` chip's top-left, top-right and
    bottom-right pixels (as :func:`~maskface.recognizers.alignment.chip_corners` for
    ``dlib150``)."""
    inverse = cv2.invertAffineTransform(upper_matrix(face, size, padding))
    return np.array([[0, 0, 1], [size - 1, 0, 1], [size - 1, size - 1, 1]]) @ inverse.T


def align_upper(image: np.ndarray, face: Face | np.ndarray, size: int = 150,
                padding: float = 0.25) -> np.ndarray:
    """The ``dlib150-upper`` chip, resampled by dlib as its own chips are."""
    import dlib

    tl, tr, br = upper_corners(face, size, padding)
    centre, width = (tl + br) / 2, float(np.hypot(*(tr - tl)))
    angle = float(np.arctan2(tr[1] - tl[1], tr[0] - tl[0]))
    rect = dlib.drectangle(centre[0] - width / 2, centre[1] - width / 2,
                           centre[0] + width / 2, centre[1] + width / 2)
    details = dlib.chip_details(rect, dlib.chip_dims(size, size), angle)
    return dlib.extract_image_chip(np.ascontiguousarray(image), details)


def align_chip(image: np.ndarray, face: Face | np.ndarray, alignment: str = "dlib150",
               size: int | None = None, padding: float = 0.25) -> np.ndarray:
    """The chip of one face under ``alignment``, ``size`` pixels square (default: its own).

    ``padding`` only applies to ``dlib150``, which cuts ``dlib.get_face_chip``'s chip exactly
    as :func:`~maskface.recognizers.alignment.align_face` does.
    """
    default_size = check_alignment(alignment)
    size = size or default_size
    if alignment == "arcface112":
        return align_arcface(image, face, size)
    if alignment == "facenet160":
        return align_facenet(image, face, size)
    if alignment == "dlib150-upper":
        return align_upper(image, face, size, padding)
    return align_face(image, face, size, padding)


__all__ = [
    "ALIGNMENTS",
    "ARCFACE_TEMPLATE",
    "FACENET_MARGIN",
    "UPPER_POINTS",
    "UPPER_TEMPLATE",
    "align_arcface",
    "align_chip",
    "align_facenet",
    "align_upper",
    "arcface_matrix",
    "check_alignment",
    "face_box",
    "facenet_matrix",
    "five_points",
    "points5_from_68",
    "similarity_transform",
    "upper_corners",
    "upper_matrix",
    "warp_chip",
]
