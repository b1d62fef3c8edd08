"""MediaPipe backend: full-range face detection, then Face Mesh on a crop around every face.

Face Mesh's own detector is a short-range (selfie) model that misses small faces and faces
in large photos; running the full-range detector first and giving Face Mesh a crop in which
the face fills about half the frame makes small, border-touching and group faces work alike.
"""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np

from maskface.geometry.face import Face
from maskface.geometry.fit import face_from_mesh

# Quieten the C++ logging MediaPipe prints at start-up.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_CROP_SIZE = 256
_CROP_SCALE = 2.0  # crop side over detection-box side
_DETECT_MAX_SIDE = 1280


class MediaPipeAnalyser:
    """Dense 468-point (478 with ``refine=True``) landmarks with depth for every face."""

    name = "mediapipe"

    def __init__(self, min_score: float = 0.5, refine: bool = False) -> None:
        self.min_score = min_score
        self.refine = refine
        self._lock = threading.Lock()
        self._detectors: dict[int, object] = {}
        self._mesh = None

    def _detector(self, model: int):
        if model not in self._detectors:
            from mediapipe.python.solutions import face_detection

            self._detectors[model] = face_detection.FaceDetection(
                model_selection=model, min_detection_confidence=self.min_score
            )
        return self._detectors[model]

    def _mesh_graph(self):
        if self._mesh is None:
            from mediapipe.python.solutions import face_mesh

            self._mesh = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=self.refine,
                min_detection_confidence=0.3,
            )
        return self._mesh

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Face boxes (x0, y0, x1, y1) in image pixels with detection scores."""
        h, w = image.shape[:2]
        factor = min(1.0, _DETECT_MAX_SIDE / max(h, w))
        small = image if factor == 1.0 else cv2.resize(
            image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA
        )
        found: list[tuple[np.ndarray, float]] = []
        for model in (1, 0):  # full range first; the short-range model helps on close-ups
            result = self._detector(model).process(small)
            for det in result.detections or []:
                rel = det.location_data.relative_bounding_box
                box = np.array(
                    [rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w,
                     (rel.ymin + rel.height) * h],
                    dtype=np.float64,
                )
                score = float(det.score[0])
                if all(_iou(box, other) < 0.4 for other, _ in found):
                    found.append((box, score))
            if found:
                break
        return found

    def mesh_in_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """Face Mesh landmarks (N, 3) in image pixels for the face in ``box``, or None."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * _CROP_SCALE
        # The detector's box covers brows to mouth; shift down so the chin is well inside.
        cy += 0.1 * side / _CROP_SCALE
        s = _CROP_SIZE / side
        affine = np.array([[s, 0, _CROP_SIZE / 2 - s * cx], [0, s, _CROP_SIZE / 2 - s * cy]])
        crop = cv2.warpAffine(
            image, affine, (_CROP_SIZE, _CROP_SIZE), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(127, 127, 127),
        )
        result = self._mesh_graph().process(crop)
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        pts = np.array([(p.x, p.y, p.z) for p in lm], dtype=np.float64) * _CROP_SIZE
        pts[:, :3] /= s
        pts[:, 0] += cx - _CROP_SIZE / 2 / s
        pts[:, 1] += cy - _CROP_SIZE / 2 / s
        return pts

    def __call__(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first."""
        with self._lock:  # MediaPipe graphs are not re-entrant
            faces = []
            for box, score in self.detect_boxes(image):
                pts = self.mesh_in_box(image, box)
                if pts is None:
                    continue
                faces.append(face_from_mesh(pts, pts[:468], score, image.shape, self.name))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def close(self) -> None:
        for graph in [*self._detectors.values(), self._mesh]:
            if graph is not None:
                graph.close()
        self._detectors, self._mesh = {}, None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
