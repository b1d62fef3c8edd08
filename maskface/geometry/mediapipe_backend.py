"""MediaPipe backend: BlazeFace detection, then the Face Mesh landmark model on each face.

Both models are the ``.tflite`` files the pinned MediaPipe wheel bundles. Detection runs through
MediaPipe's own graphs (anchors, non-maximum suppression). The landmark model runs directly in
LiteRT on a crop we choose: first the detection's box turned upright by the eye line, then a
second pass on the box of the first pass's landmarks, as MediaPipe's video tracking does. This
skips the detector Face Mesh would run again inside its graph (half the cost), and lets faces
found by any detector (small faces in tiles, faces at the border) get landmarks.
"""

from __future__ import annotations

import os
import threading
import warnings

import cv2
import numpy as np

from maskface.geometry.blazeface import ShortRangeDetector
from maskface.geometry.face import Face
from maskface.geometry.fit import face_from_mesh
from maskface.geometry.tflite import interpreter, quiet

# Quieten the C++ logging MediaPipe prints at start-up, and a protobuf deprecation warning
# its Python side raises on every call (nothing a user can act on).
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)

_INPUT = 192  # landmark model input side
_ROI_SCALE = 1.5  # crop side over face side, as MediaPipe's face landmark graphs use
_DETECT_MAX_SIDE = 4096  # huge images are searched downscaled to this side
_TILE = 400
_BIG_FACE = 0.2  # a face this large (share of the short side) ends the search early
_EYES = (33, 263)  # outer eye corners: the crop's rotation comes from them
# The first pass lands within ~1% of the face width of the second (measured on LFW): below
# this width that is under 2 pixels, and the second pass is skipped.
_ONE_PASS_WIDTH = 200


class _Landmarker:
    """The Face Mesh landmark network (468 points + face presence) on an upright crop."""

    def __init__(self) -> None:
        self._net = interpreter("face_landmark/face_landmark.tflite")
        self._input = self._net.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self._net.get_output_details()}
        self._points, self._flag = outputs["conv2d_21"], outputs["conv2d_31"]

    def __call__(
        self, image: np.ndarray, centre: np.ndarray, size: float, angle: float
    ) -> tuple[np.ndarray, float]:
        """Landmarks (468, 3) in image pixels and face presence for a square crop.

        The crop has side ``size``, is centred on ``centre`` and turned by ``angle`` radians.
        """
        c, s = np.cos(angle), np.sin(angle)
        k = size / _INPUT
        to_image = np.array([[c * k, -s * k, 0.0], [s * k, c * k, 0.0]])
        to_image[:, 2] = centre - to_image[:, :2] @ np.array([_INPUT / 2, _INPUT / 2])
        crop = cv2.warpAffine(
            image, cv2.invertAffineTransform(to_image), (_INPUT, _INPUT),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        )
        self._net.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
        self._net.invoke()
        raw = self._net.get_tensor(self._points).reshape(468, 3).astype(np.float64)
        logit = float(self._net.get_tensor(self._flag).ravel()[0])
        pts = np.empty_like(raw)
        pts[:, :2] = raw[:, :2] @ to_image[:, :2].T + to_image[:, 2]
        pts[:, 2] = raw[:, 2] * k
        return pts, 1.0 / (1.0 + np.exp(-logit))


def _roi_from_landmarks(pts: np.ndarray) -> tuple[np.ndarray, float, float]:
    eye = pts[_EYES[1], :2] - pts[_EYES[0], :2]
    angle = float(np.arctan2(eye[1], eye[0]))
    # Box of the landmarks in the face's own upright frame.
    c, s = np.cos(-angle), np.sin(-angle)
    upright = pts[:, :2] @ np.array([[c, -s], [s, c]]).T
    lo, hi = upright.min(axis=0), upright.max(axis=0)
    centre_up = (lo + hi) / 2
    centre = centre_up @ np.array([[c, s], [-s, c]]).T
    return centre, float((hi - lo).max() * _ROI_SCALE), angle


class MediaPipeAnalyser:
    """Dense 468-point landmarks with depth for every face (MediaPipe's bundled models)."""

    name = "mediapipe"

    def __init__(self, min_score: float = 0.5, min_presence: float = 0.5) -> None:
        self.min_score = min_score
        self.min_presence = min_presence
        self._lock = threading.Lock()
        self._full = None
        self._short: ShortRangeDetector | None = None
        self._landmarker: _Landmarker | None = None

    def _full_range(self):
        if self._full is None:
            with quiet():
                from mediapipe.python.solutions import face_detection

                self._full = face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=self.min_score
                )
                self._full.process(np.zeros((64, 64, 3), np.uint8))
        return self._full

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
        """Face boxes (x0, y0, x1, y1) in image pixels, scores and eye-line angles, best first.

        The short-range model finds the large faces of portraits and dataset crops fast. When
        it finds none that large, the full-range model searches the image, and large images
        also in overlapping tiles: it sees a 192-pixel thumbnail, which loses faces smaller
        than about a tenth of the image side.
        """
        h, w = image.shape[:2]
        if self._short is None:
            self._short = ShortRangeDetector(self.min_score)
        found = []
        for box, score, kp in self._short(image):
            eye = kp[1] - kp[0]
            found.append((box, score, float(np.arctan2(eye[1], eye[0]))))
        big = any(max(b[2] - b[0], b[3] - b[1]) >= _BIG_FACE * min(h, w) for b, _, _ in found)
        if not big:
            found += self._detect_in(image, 0, 0, 1.0)
            if max(h, w) > 2 * _TILE:
                factor = min(1.0, _DETECT_MAX_SIDE / max(h, w))
                tile = _TILE / factor  # tiles keep _TILE pixels after downscaling huge images
                step = tile * 0.75
                for y in np.arange(0, max(h - tile, 0) + step, step):
                    for x in np.arange(0, max(w - tile, 0) + step, step):
                        x0, y0 = int(min(x, max(w - tile, 0))), int(min(y, max(h - tile, 0)))
                        window = image[y0 : y0 + int(tile), x0 : x0 + int(tile)]
                        found += self._detect_in(window, x0, y0, factor)
        found.sort(key=lambda item: -item[1])
        kept: list[tuple[np.ndarray, float, float]] = []
        for box, score, angle in found:
            if all(_iou(box, other) < 0.3 and not _inside(box, other) for other, _, _ in kept):
                kept.append((box, score, angle))
        return kept

    def _detect_in(
        self, image: np.ndarray, x0: int, y0: int, factor: float
    ) -> list[tuple[np.ndarray, float, float]]:
        """Full-range detections in ``image`` (a window at x0, y0 of the photo, downscaled
        by ``factor`` first)."""
        h, w = image.shape[:2]
        if factor < 1.0:
            image = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))),
                               interpolation=cv2.INTER_AREA)
        result = self._full_range().process(np.ascontiguousarray(image))
        boxes = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            box = np.array([rel.xmin * w + x0, rel.ymin * h + y0,
                            (rel.xmin + rel.width) * w + x0, (rel.ymin + rel.height) * h + y0])
            kp = det.location_data.relative_keypoints  # 0: right eye, 1: left eye
            angle = float(np.arctan2((kp[1].y - kp[0].y) * h, (kp[1].x - kp[0].x) * w))
            boxes.append((box, float(det.score[0]), angle))
        return boxes

    def landmarks(
        self, image: np.ndarray, box: np.ndarray, angle: float = 0.0
    ) -> tuple[np.ndarray, float] | None:
        """Landmarks (468, 3) in image pixels and face presence for the face in ``box``."""
        if self._landmarker is None:
            self._landmarker = _Landmarker()
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        size = max(box[2] - box[0], box[3] - box[1]) * _ROI_SCALE
        pts, presence = self._landmarker(image, centre, size, angle)
        if presence < self.min_presence:
            return None
        if np.ptp(pts[:, 0]) < _ONE_PASS_WIDTH:
            return pts, presence
        # Second pass on the crop the first pass's landmarks define: tighter and upright.
        pts2, presence2 = self._landmarker(image, *_roi_from_landmarks(pts))
        return (pts2, presence2) if presence2 >= presence * 0.9 else (pts, presence)

    def __call__(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first."""
        image = np.ascontiguousarray(image)
        with self._lock:  # the graphs and the interpreter are not re-entrant
            faces: list[Face] = []
            for box, score, angle in self.detect_boxes(image):
                found = self.landmarks(image, box, angle)
                if found is None:
                    continue
                pts, _ = found
                face = face_from_mesh(pts, pts, score, image.shape, self.name)
                # Two boxes on one face (e.g. from neighbouring tiles) give the same mesh.
                if all(np.linalg.norm(face.mesh[1, :2] - f.mesh[1, :2]) > 0.25 * f.width
                       for f in faces):
                    faces.append(face)
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def close(self) -> None:
        if self._full is not None:
            self._full.close()
        self._full = self._short = self._landmarker = None


def _inside(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether most of box ``a`` lies within box ``b`` (a duplicate from another tile)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy > 0.6 * (a[2] - a[0]) * (a[3] - a[1])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
