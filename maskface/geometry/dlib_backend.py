"""dlib backend: HOG face detector and the 68-point shape predictor (``face_recognition_models``).

The renderers need the dense mesh, so the reference face is posed onto the 68 points with
``solvePnP`` and then bent through them with a thin-plate spline over its residuals: the
dense mesh passes through dlib's landmarks and keeps the reference shape in between.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from maskface.geometry.face import Face
from maskface.geometry.fit import face_from_mesh
from maskface.geometry.reference import reference


def dlib_model_path(filename: str) -> str:
    """Path of a model file shipped by ``face_recognition_models``.

    Found without importing the package, whose import needs ``pkg_resources`` (gone from
    recent setuptools).
    """
    spec = find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ImportError("face_recognition_models is not installed: "
                          "pip install face_recognition_models")
    path = Path(spec.origin).parent / "models" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from face_recognition_models")
    return str(path)


# dlib's HOG detector keeps scratch buffers between calls: one call at a time, across threads
# and every module that uses it (DlibAnalyser, maskface.geometry.locate).
MODELS_LOCK = threading.RLock()


@cache
def _models():
    """dlib's HOG detector and 68-point predictor: the one cached pair every module uses."""
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(
        dlib_model_path("shape_predictor_68_face_landmarks.dat")
    )


def dense_mesh_from_68(points: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """The 468-point mesh (x, y, z in pixels) fitted to dlib's 68 landmarks (68, 2)."""
    ref = reference()
    h, w = image_shape[:2]
    focal = float(max(h, w))
    camera = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1]], dtype=np.float64)
    obj = ref.dlib68.astype(np.float64)
    # Start from a frontal pose at the right distance: without a guess the solver can land on
    # the depth-reversed (Necker) solution, which looks the same in 2D but turns yaw around.
    spread = np.std(points, axis=0).mean() / np.std(obj[:, :2], axis=0).mean()
    tz = focal / spread
    centre = points.mean(axis=0) - (w / 2, h / 2)
    tvec0 = np.array([[centre[0] * tz / focal], [centre[1] * tz / focal], [tz]])
    ok, rvec, tvec = cv2.solvePnP(
        obj, points.astype(np.float64), camera, None, rvec=np.zeros((3, 1)), tvec=tvec0,
        useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        raise RuntimeError("could not pose the reference face on the 68 landmarks")
    rot, _ = cv2.Rodrigues(rvec)

    def project(p: np.ndarray) -> np.ndarray:
        cam = p @ rot.T + tvec.ravel()
        xy = cam[:, :2] / cam[:, 2:3] * focal + (w / 2, h / 2)
        zc = float(tvec[2, 0])
        return np.column_stack([xy, (cam[:, 2] - zc) * focal / zc])

    mesh = project(ref.mesh)
    anchors = project(obj)
    residual = points - anchors[:, :2]
    bend = RBFInterpolator(anchors[:, :2], residual, kernel="thin_plate_spline", smoothing=1.0)
    mesh[:, :2] += bend(mesh[:, :2])
    return mesh


class DlibAnalyser:
    """dlib's HOG detector + 68-point landmarks, densified to the 468-point mesh."""

    name = "dlib"

    def __init__(self, upsample: int = 1, min_score: float = 0.25) -> None:
        self.upsample = upsample
        self.min_score = min_score

    def __call__(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first."""
        detector, predictor = _models()
        image = np.ascontiguousarray(image)
        with MODELS_LOCK:
            rects, scores, _ = detector.run(image, self.upsample, self.min_score)
            if not rects and self.upsample < 2 and max(image.shape[:2]) <= 1200:
                rects, scores, _ = detector.run(image, 2, self.min_score)  # small faces
            faces = []
            for rect, score in zip(rects, scores, strict=True):
                shape = predictor(image, rect)
                pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
                mesh = dense_mesh_from_68(pts, image.shape)
                lm = np.column_stack([pts, np.zeros(len(pts))])
                face = face_from_mesh(lm, mesh, float(score), image.shape, self.name)
                face.box = np.array([max(rect.left(), 0), max(rect.top(), 0),
                                     min(rect.right(), image.shape[1]),
                                     min(rect.bottom(), image.shape[0])], dtype=np.float64)
                faces.append(face)
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces
