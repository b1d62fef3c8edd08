"""Where faces are and the chips a recognizer sees: the one face locator of every command.

Evaluation, training, the attribute study, galleries, the web app and video all find faces
and cut recognition chips here, so one recognizer gets the same chip from the same photo
whatever the command.

Detectors (:data:`DETECTORS`):

- ``blazeface`` (default): MediaPipe's short-range BlazeFace finds the face, masked or not.
  Its box and six keypoints predict the box dlib's HOG detector would give
  (:mod:`maskface.geometry.hog_box`), and dlib's 68-point predictor starts from that box, at
  a tenth of HOG's cost. A face small in its photo is detected a second time, framed as the
  box map was fitted. When BlazeFace finds nothing (faces tiny in a large photo), HOG takes over.
- ``dlib``: dlib's HOG detector at upsampling levels 0..``upsample``, stopping at the first
  level that finds a face (each level costs ~3x the one before).
- ``mediapipe``: the 68 points read off MediaPipe's 468-point face mesh.

:func:`locate` keeps one face per photo (the one nearest the centre: pre-cropped datasets
centre their subject), :func:`locate_faces` keeps every face, largest first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache

import numpy as np

from maskface.errors import InvalidInputError

DETECTORS: tuple[str, ...] = ("dlib", "blazeface", "mediapipe")
# Centre box as fractions of the image (left, top, right, bottom): the mean box dlib's HOG
# detector gives on LFW deep-funneled 250x250 images.
CENTER_BOX = (0.28, 0.32, 0.70, 0.74)

Box = tuple[float, float, float, float]
# The BlazeFace interpreter is not re-entrant: galleries and the web app call from threads.
_BLAZEFACE_LOCK = threading.Lock()


@dataclass(frozen=True)
class LocatedFace:
    """One face: its box, dlib's 68 landmarks, the detector's confidence and how it was found.

    ``box`` is (x0, y0, x1, y1) in image pixels as the detector drew it (BlazeFace's box, HOG's
    rectangle or the mesh's bounds), clipped to the image. ``score`` is the detector's
    confidence: BlazeFace's and MediaPipe's probability, 1.0 for dlib's HOG, 0.0 for the
    centre fallback. ``method`` is ``"detected"`` or ``"center"``.
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    method: str

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


def _check_detector(detector: str) -> None:
    if detector not in DETECTORS:
        raise InvalidInputError(f"unknown detector {detector!r}; choose from {DETECTORS}")


def _dlib_models():
    """dlib's HOG detector and 68-point predictor (:func:`maskface.geometry.dlib_backend._models`).

    Calls of the detector hold ``dlib_backend.MODELS_LOCK``; the predictor is thread-safe."""
    from maskface.geometry.dlib_backend import _models

    return _models()


@cache
def _blazeface():
    from maskface.geometry.blazeface import ShortRangeDetector

    return ShortRangeDetector()


def _detect_blazeface(image: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
    with _BLAZEFACE_LOCK:
        return _blazeface()(image)


def _reframe(image: np.ndarray, box: np.ndarray, fraction: float
             ) -> tuple[np.ndarray, float, np.ndarray] | None:
    with _BLAZEFACE_LOCK:
        return _blazeface().reframe(image, box, fraction)


def _central(boxes: list[Box], w: int, h: int) -> int:
    # Pre-cropped datasets centre the subject; other faces (crowds, posters) sit off-centre.
    centres = [((b[0] + b[2]) / 2 - w / 2) ** 2 + ((b[1] + b[3]) / 2 - h / 2) ** 2
               for b in boxes]
    return int(np.argmin(centres))


def _landmarks(image: np.ndarray, box: Box) -> np.ndarray:
    import dlib

    _, predictor = _dlib_models()
    shape = predictor(image, dlib.rectangle(*(round(v) for v in box)))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def center_landmarks(image: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks fitted inside :data:`CENTER_BOX` (the failure-to-enrol fallback)."""
    h, w = image.shape[:2]
    return _landmarks(image, tuple(f * s for f, s in zip(CENTER_BOX, (w, h, w, h), strict=True)))


def center_face(image: np.ndarray) -> LocatedFace:
    """The centre-box fallback as a :class:`LocatedFace` (``method="center"``, score 0)."""
    h, w = image.shape[:2]
    box = np.array(CENTER_BOX, np.float64) * (w, h, w, h)
    return LocatedFace(box, center_landmarks(image), 0.0, "center")


def _blazeface_face(image: np.ndarray, box: np.ndarray, score: float,
                    keypoints: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """One BlazeFace detection -> (its box, its score, 68 landmarks)."""
    from maskface.geometry import hog_box

    h, w = image.shape[:2]
    if (box[2] - box[0] + box[3] - box[1]) / 2 < 0.7 * hog_box.FACE_FRACTION * max(h, w):
        # A face small in the photo: detected again framed as the box map was fitted.
        framed = _reframe(image, box, hog_box.FACE_FRACTION)
        if framed is not None:
            box, score, keypoints = framed
    # The predictor starts from the box HOG would give this face (see geometry.hog_box).
    return box, score, _landmarks(image, tuple(hog_box.predict(box, keypoints)[0]))


def _blazeface_landmarks(image: np.ndarray) -> np.ndarray | None:
    h, w = image.shape[:2]
    found = _detect_blazeface(image)
    if not found:
        return None
    box, score, keypoints = found[_central([tuple(b) for b, _, _ in found], w, h)]
    return _blazeface_face(image, box, score, keypoints)[2]


def _hog_rects(image: np.ndarray, upsample: int) -> list[Box]:
    from maskface.geometry.dlib_backend import MODELS_LOCK

    hog, _ = _dlib_models()
    # Upsampling finds smaller faces but costs ~3x per level: only when needed.
    for level in range(upsample + 1):
        with MODELS_LOCK:
            rects = hog(image, level)
        if len(rects):
            break
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 array the detectors accept; :class:`InvalidInputError` for anything else."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InvalidInputError(f"expected a uint8 image, got dtype {image.dtype} "
                         "(read files with maskface.imageio.read_image)")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # alpha does not move faces
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    if min(image.shape[:2]) < 1:
        raise InvalidInputError(f"the image is empty (shape {image.shape})")
    return np.ascontiguousarray(image)


def locate(image: np.ndarray, detector: str = "blazeface", upsample: int = 1) -> np.ndarray | None:
    """68 landmarks (68, 2) of the face nearest the image centre, ``None`` if none is found.

    See the module docstring for the detectors."""
    _check_detector(detector)
    image = _as_rgb(image)
    h, w = image.shape[:2]
    if detector == "blazeface":
        found = _blazeface_landmarks(image)
        return locate(image, "dlib", upsample) if found is None else found
    if detector == "dlib":
        boxes = _hog_rects(image, upsample)
        return _landmarks(image, boxes[_central(boxes, w, h)]) if boxes else None
    from maskface.geometry.analysers import detect_faces
    from maskface.recognizers.alignment import face_landmarks

    faces = detect_faces(image, backend="mediapipe")
    if not faces:
        return None
    return face_landmarks(faces[_central([tuple(f.box) for f in faces], w, h)])


def _side(box) -> float:
    """The mean of a box's width and height."""
    return float(box[2] - box[0] + box[3] - box[1]) / 2


def _clip_box(box, w: int, h: int) -> np.ndarray:
    b = np.asarray(box, np.float64).copy()
    b[[0, 2]] = np.clip(b[[0, 2]], 0, w)
    b[[1, 3]] = np.clip(b[[1, 3]], 0, h)
    return b


def locate_faces(image: np.ndarray, detector: str = "blazeface", upsample: int = 1,
                 min_size: int = 20) -> list[LocatedFace]:
    """Every face in an RGB image, largest first; ``[]`` when there is none.

    Each face goes through the same path as :func:`locate`'s one face, so a photo of one
    person gives the landmarks :func:`locate` gives. ``min_size`` drops faces whose box is
    smaller than that many pixels a side (on average of width and height): too small to
    recognise and mostly false alarms."""
    _check_detector(detector)
    image = _as_rgb(image)
    h, w = image.shape[:2]
    faces: list[LocatedFace] = []
    if detector == "blazeface":
        for box, score, keypoints in _detect_blazeface(image):
            if _side(box) < min_size / 2:  # not worth refining: the reframed box is close
                continue
            box, score, points = _blazeface_face(image, box, score, keypoints)
            if _side(box) < min_size:
                continue
            faces.append(LocatedFace(_clip_box(box, w, h), points, float(score), "detected"))
        if not faces:  # as locate: HOG takes over when BlazeFace finds nothing
            return locate_faces(image, "dlib", upsample, min_size)
    elif detector == "dlib":
        for box in _hog_rects(image, upsample):
            if _side(box) < min_size:
                continue
            faces.append(LocatedFace(_clip_box(box, w, h), _landmarks(image, box), 1.0,
                                     "detected"))
    else:
        from maskface.geometry.analysers import detect_faces
        from maskface.recognizers.alignment import face_landmarks

        for face in detect_faces(image, backend="mediapipe"):
            if (face.width + face.height) / 2 < min_size:
                continue
            faces.append(LocatedFace(_clip_box(face.box, w, h),
                                     np.asarray(face_landmarks(face), np.float64)[:, :2],
                                     float(face.score), "detected"))
    # Stable sort: equal areas keep the detector's order, so results are deterministic.
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def cut_chip(image: np.ndarray, landmarks: np.ndarray, alignment: str = "dlib150",
             size: int | None = None, padding: float = 0.25) -> np.ndarray:
    """The recognition chip of the face with these 68 landmarks, as ``alignment`` cuts it.

    ``size`` defaults to the alignment's own (150 for ``dlib150``). Chips for a recognizer
    ``rec``: ``cut_chip(image, face.landmarks, rec.alignment, rec.chip_size, rec.padding)``.
    """
    from maskface.recognizers.templates import align_chip

    return align_chip(image, landmarks, alignment, size, padding)


def landmarks_or_center(image: np.ndarray, detector: str = "blazeface",
                        upsample: int = 1) -> tuple[np.ndarray, str]:
    """(68 landmarks, ``"detected"``) of the face nearest the centre, else (the centre box's
    landmarks, ``"center"``): the face every path embedder aligns (see :func:`face_chip`)."""
    found = locate(image, detector, upsample)
    if found is None:
        return center_landmarks(_as_rgb(image)), "center"
    return found, "detected"


def face_chip(image: np.ndarray, alignment: str = "dlib150", size: int | None = None,
              padding: float = 0.25, *, detector: str = "blazeface", upsample: int = 1,
              landmarks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(chip, 68 landmarks, ``"detected"`` or ``"center"``) of the face nearest the centre.

    The chip every path embedder (evaluation, the attribute study, training) feeds a
    recognizer: :func:`locate`, with the centre box standing in when no face is found (the
    face's usual place in pre-cropped datasets), then :func:`cut_chip`. ``landmarks``, when
    given, place the chip instead (e.g. those of the unmasked original of a masked copy);
    the method is then ``"given"``.
    """
    image = _as_rgb(image)
    if landmarks is not None:
        points, how = np.asarray(landmarks, np.float64), "given"
    else:
        points, how = landmarks_or_center(image, detector, upsample)
    return cut_chip(image, points, alignment, size, padding), points, how


__all__ = [
    "CENTER_BOX",
    "DETECTORS",
    "LocatedFace",
    "center_face",
    "center_landmarks",
    "cut_chip",
    "face_chip",
    "landmarks_or_center",
    "locate",
    "locate_faces",
]
