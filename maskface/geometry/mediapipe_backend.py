"""MediaPipe backend: BlazeFace detection, then the Face Mesh landmark model on each face.

Both models are the ``.tflite`` files the pinned MediaPipe wheel bundles, run directly in
LiteRT. Detection searches an image pyramid (:mod:`maskface.geometry.detect`). The landmark
model runs on a crop we choose: first the detection's box turned upright by the eye line, then a
second pass on the box of the first pass's landmarks, as MediaPipe's video tracking does. This
skips the detector Face Mesh would run again inside its graph (half the cost), and lets faces
found by any detector (small faces in tiles, faces at the border) get landmarks.
"""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np

from maskface.geometry import verify as face_check
from maskface.geometry.detect import MIN_FACE, FaceFinder
from maskface.geometry.face import Face
from maskface.geometry.fit import face_from_mesh
from maskface.geometry.tflite import interpreter

# Quieten the C++ logging LiteRT prints at start-up (nothing a user can act on).
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_INPUT = 192  # landmark model input side
_ROI_SCALE = 1.5  # crop side over face side, as MediaPipe's face landmark graphs use
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
        self, image: np.ndarray, centre: np.ndarray, size: float, angle: float,
        border: int = cv2.BORDER_CONSTANT,
    ) -> tuple[np.ndarray, float]:
        """Landmarks (468, 3) in image pixels and face presence for a square crop.

        The crop has side ``size``, is centred on ``centre`` and turned by ``angle`` radians;
        what lies beyond the image is filled as ``border`` says (an OpenCV border mode).
        """
        c, s = np.cos(angle), np.sin(angle)
        k = size / _INPUT
        to_image = np.array([[c * k, -s * k, 0.0], [s * k, c * k, 0.0]])
        to_image[:, 2] = centre - to_image[:, :2] @ np.array([_INPUT / 2, _INPUT / 2])
        crop = cv2.warpAffine(
            image, cv2.invertAffineTransform(to_image), (_INPUT, _INPUT),
            flags=cv2.INTER_LINEAR, borderMode=border,
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
    """Dense 468-point landmarks with depth for every face (MediaPipe's bundled models).

    Faces are found by :class:`~maskface.geometry.detect.FaceFinder` (BlazeFace over an image
    pyramid: any aspect ratio, faces down to ``min_face`` pixels, ``search`` ``"auto"`` or
    ``"all"``); the landmark network then runs on each face's own crop, and a face whose crop
    it judges faceless (presence under ``min_presence``) is dropped unless, with ``verify``,
    the mesh it drew passes the face check of :mod:`maskface.geometry.verify` (masked faces).

    ``aligned="arcface112"`` (or ``"facenet160"``, ``"dlib150"``) says every image is a crop
    aligned with that template: each then has exactly one face, placed by the template and
    refined by the landmark network, without detection (:mod:`maskface.geometry.aligned`).
    """

    name = "mediapipe"

    def __init__(self, min_score: float = 0.5, min_presence: float = 0.5,
                 min_face: float = MIN_FACE, search: str = "auto", verify: bool = True,
                 aligned: str | None = None) -> None:
        if aligned is not None:
            from maskface.geometry.aligned import check_template

            aligned = check_template(aligned)
        self.aligned = aligned
        self.min_score = min_score
        self.min_presence = min_presence
        self.verify = verify
        self._finder = FaceFinder(min_score, min_face, search)
        self._lock = threading.Lock()
        self._landmarker: _Landmarker | None = None

    @property
    def min_face(self) -> float:
        return self._finder.min_face

    @property
    def search(self) -> str:
        return self._finder.search

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
        """Face boxes (x0, y0, x1, y1) in image pixels, scores and eye-line angles, best first."""
        out = []
        for box, score, kp in self._finder(image):
            eye = kp[1] - kp[0]
            out.append((box, score, float(np.arctan2(eye[1], eye[0]))))
        return out

    def measure(self, image: np.ndarray, box: np.ndarray, angle: float = 0.0,
                score: float = 1.0) -> tuple[np.ndarray, float, np.ndarray]:
        """One landmark pass on the crop of ``box``: landmarks (468, 3) in image pixels, the
        network's face presence, and the face check's features (:mod:`~.verify`)."""
        if self._landmarker is None:
            self._landmarker = _Landmarker()
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        size = max(box[2] - box[0], box[3] - box[1]) * _ROI_SCALE
        pts, presence = self._landmarker(image, centre, size, angle)
        return pts, presence, face_check.features(pts, centre, size, angle, score, presence)

    def landmarks(
        self, image: np.ndarray, box: np.ndarray, angle: float = 0.0, score: float = 1.0
    ) -> tuple[np.ndarray, float] | None:
        """Landmarks (468, 3) in image pixels and face presence for the face in ``box``, or
        ``None`` when the crop holds no face.

        A crop is a face when the network's presence reaches ``min_presence`` or, with
        ``verify`` (masked faces score low presence), when :mod:`~.verify` says so.
        """
        pts, presence, x = self.measure(image, box, angle, score)
        if presence < self.min_presence and not (
                self.verify and face_check.probability(x) >= face_check.threshold()):
            return None
        if np.ptp(pts[:, 0]) < _ONE_PASS_WIDTH:
            return pts, presence
        # Second pass on the crop the first pass's landmarks define: tighter and upright.
        pts2, presence2 = self._landmarker(image, *_roi_from_landmarks(pts))
        return (pts2, presence2) if presence2 >= presence * 0.9 else (pts, presence)

    def mesh_from(self, image: np.ndarray, start: np.ndarray,
                  border: int = cv2.BORDER_REPLICATE) -> tuple[np.ndarray, float]:
        """Landmarks (468, 3) and presence of the face whose mesh is roughly ``start``.

        Two passes, each on the crop the landmarks before it frame. Beyond the image the
        crop repeats its border: for faces that fill the frame, a black surround would read
        as a dark background the face stops at."""
        with self._lock:
            if self._landmarker is None:
                self._landmarker = _Landmarker()
            pts, _ = self._landmarker(image, *_roi_from_landmarks(start), border)
            return self._landmarker(image, *_roi_from_landmarks(pts), border)

    def __call__(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first."""
        image = np.ascontiguousarray(image)
        if self.aligned is not None:
            from maskface.geometry.aligned import aligned_face

            return [aligned_face(image, self.aligned, self)]
        faces: list[Face] = []

        def accept(detection) -> bool:
            box, score, kp = detection
            eye = kp[1] - kp[0]
            found = self.landmarks(image, box, float(np.arctan2(eye[1], eye[0])), score)
            if found is None:
                return False
            face = face_from_mesh(found[0], found[0], score, image.shape, self.name)
            # Two detections of one face (at two scales, or of a part of it) give
            # overlapping meshes of about the same size.
            if any(_similar(face, f) and (
                    np.linalg.norm(face.mesh[1, :2] - f.mesh[1, :2]) <= 0.25 * f.width
                    or _overlap(face.box, f.box) >= 0.5) for f in faces):
                return False
            faces.append(face)
            return True

        with self._lock:  # the interpreters are not re-entrant
            self._finder(image, accept)
        # A loose box around a head and its surroundings passes the landmark network (it
        # sees the face inside); the face itself, found too, is smaller and surer.
        faces = [f for f in faces if not any(
            g.score > f.score and g.width < 0.6 * f.width and _overlap(g.box, f.box) > 0.9
            for g in faces)]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def close(self) -> None:
        """Drop the networks (they are loaded again when needed)."""
        self._finder = FaceFinder(self.min_score, self.min_face, self.search)
        self._landmarker = None


def _similar(a: Face, b: Face) -> bool:
    """Whether two faces are of about the same size (widths within 2x)."""
    return 0.5 * b.width < a.width < 2 * b.width


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of two boxes over the smaller one's area."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0
