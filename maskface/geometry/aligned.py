"""Faces of already-aligned crops: where a known alignment template puts the face.

Training sets for recognizers are often stored aligned and cropped tight (ArcFace's 112x112,
FaceNet's 160x160, dlib's 150x150 chips). The face fills the frame, its chin and forehead
often cut off, and detectors, which look for a face inside the picture, may find none. But
the alignment says where the face is: :func:`template_mesh` poses the reference face (its
68 dlib points, hence its five ArcFace points and its box) exactly as that alignment would,
and :func:`aligned_face` starts the Face Mesh network from there, so every crop gets a face.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from maskface.errors import InvalidInputError, UnknownNameError
from maskface.geometry.face import Face
from maskface.geometry.fit import face_from_mesh
from maskface.geometry.reference import reference

# The alignments maskface.recognizers.templates cuts chips with, and their chip sides.
TEMPLATES: dict[str, int] = {"arcface112": 112, "facenet160": 160, "dlib150": 150}
# Pixels per centimetre of the virtual photo the reference face is aligned from: large, so
# dlib's integer landmarks cost nothing in precision.
_PIXELS_PER_CM = 200.0
# The network's landmarks are kept when the box of their 68 dlib points overlaps the
# template's by this much (IoU); else the template's are. On LFW crops the overlap is at least
# 0.59 (ArcFace, dlib: a turned head shifts the box) or 0.82 (FaceNet centres the box).
_AGREEMENT = 0.4


def check_template(template: str) -> str:
    """The canonical template name (case, ``-`` and ``_`` ignored); the choices otherwise."""
    key = str(template).strip().lower().replace("-", "").replace("_", "")
    if key not in TEMPLATES:
        raise UnknownNameError("alignment template", template, tuple(TEMPLATES))
    return key


@cache
def _template_matrix(template: str) -> np.ndarray:
    """(2, 3) map from the virtual photo to the template's chip at its own size."""
    from maskface.recognizers import templates

    size = TEMPLATES[template]
    points = reference().dlib68[:, :2] * _PIXELS_PER_CM
    if template == "arcface112":
        return templates.arcface_matrix(templates.points5_from_68(points), size)
    if template == "facenet160":
        return templates.facenet_matrix(points, size)
    from maskface.recognizers.alignment import chip_corners

    corners = chip_corners(points, size, 0.25).astype(np.float32)
    chip = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], np.float32)
    return cv2.getAffineTransform(corners, chip).astype(np.float64)


def template_mesh(template: str, size: int | None = None) -> np.ndarray:
    """The reference face's 468-point mesh (x, y, z) in pixels of a ``size`` chip cut with
    ``template`` (default size: the template's own)."""
    template = check_template(template)
    m = _template_matrix(template).copy()
    if size is not None:
        m *= size / TEMPLATES[template]
    mesh = reference().mesh * _PIXELS_PER_CM
    scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
    return np.column_stack([mesh[:, :2] @ m[:, :2].T + m[:, 2], mesh[:, 2] * scale])


@cache
def _default_analyser():
    from maskface.geometry.mediapipe_backend import MediaPipeAnalyser

    return MediaPipeAnalyser()


def _five(mesh: np.ndarray) -> np.ndarray:
    """The five ArcFace points of a 468-point mesh."""
    from maskface.recognizers.alignment import landmarks68_from_mesh
    from maskface.recognizers.templates import points5_from_68

    return points5_from_68(landmarks68_from_mesh(mesh))


def _box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the boxes of two meshes' 68 dlib points."""
    from maskface.recognizers.alignment import landmarks68_from_mesh

    pa, pb = landmarks68_from_mesh(a), landmarks68_from_mesh(b)
    lo, hi = np.maximum(pa.min(0), pb.min(0)), np.minimum(pa.max(0), pb.max(0))
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    union = float(np.prod(np.ptp(pa, 0)) + np.prod(np.ptp(pb, 0))) - inter
    return inter / union if union > 0 else 0.0


def aligned_face(crop: np.ndarray, template: str, analyser=None) -> Face:
    """The face of an RGB crop aligned with ``template`` (``arcface112``, ``facenet160`` or
    ``dlib150``), found without detection.

    The crop may be any square size (a 224-pixel ArcFace crop is the 112 one scaled). The
    Face Mesh network refines the template's landmarks from a crop framing them; when its
    landmarks stray from the template (a face it cannot read), the template's own are kept,
    so a face is always returned. ``analyser`` is a :class:`MediaPipeAnalyser` to reuse.
    """
    template = check_template(template)
    if crop.ndim != 3 or crop.shape[0] != crop.shape[1]:
        raise InvalidInputError(f"an aligned {template} crop is square; got an image of "
                                f"{crop.shape[1]}x{crop.shape[0]} pixels")
    if analyser is None:
        analyser = _default_analyser()
    side = crop.shape[0]
    start = template_mesh(template, side)
    pts, presence = analyser.mesh_from(np.ascontiguousarray(crop), start)
    mesh = pts if _box_overlap(pts, start) >= _AGREEMENT else start
    return face_from_mesh(mesh, mesh, presence if mesh is pts else 0.0, crop.shape,
                          analyser.name)
