"""MediaPipe's short-range BlazeFace detector run directly in LiteRT.

MediaPipe's own graph around this 1.7 ms network costs about three times as much again; the
decoding it does (SSD anchors, sigmoid scores, weighted non-maximum suppression) is a few
lines of numpy, written here from the model's published configuration.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from maskface.geometry.tflite import interpreter

_SIZE = 128
_MIN_SUPPRESSION_IOU = 0.3


@cache
def _anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1]: 2 per cell on the 16x16 grid, 6 on the 8x8 grid."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.mgrid[0:grid, 0:grid]
        centres = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out)


class ShortRangeDetector:
    """Faces (box, score, 6 keypoints) in an RGB uint8 image; best on faces > ~1/8 of it."""

    def __init__(self, min_score: float = 0.5) -> None:
        self.min_score = min_score
        self._net = interpreter("face_detection/face_detection_short_range.tflite")
        self._input = self._net.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self._net.get_output_details()}
        self._boxes, self._scores = outputs["regressors"], outputs["classificators"]

    def __call__(self, image: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """Detections as (box x0 y0 x1 y1 in pixels, score, keypoints (6, 2) in pixels).

        Keypoints: right eye, left eye, nose tip, mouth, right ear, left ear (the subject's).
        """
        h, w = image.shape[:2]
        side = max(h, w)
        # Letterbox to a square, as MediaPipe does, so faces keep their shape.
        scale = _SIZE / side
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        px, py = (_SIZE - nw) // 2, (_SIZE - nh) // 2
        tensor = np.zeros((_SIZE, _SIZE, 3), np.float32)
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        tensor[py : py + nh, px : px + nw] = small.astype(np.float32) / 127.5 - 1.0
        self._net.set_tensor(self._input, tensor[None])
        self._net.invoke()
        raw = self._net.get_tensor(self._boxes)[0]
        logits = np.clip(self._net.get_tensor(self._scores)[0, :, 0].astype(np.float64), -100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.min_score)
        if len(keep) == 0:
            return []
        anchors = _anchors()[keep]
        reg = raw[keep] / _SIZE
        centre = reg[:, :2] + anchors
        half = reg[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        found = _weighted_nms(boxes, scores[keep], kps)
        # From the letterboxed unit square back to image pixels.
        offset = np.array([px, py]) / _SIZE
        out = []
        for box, score, kp in found:
            box = (box.reshape(2, 2) - offset) * _SIZE / scale
            out.append((box.ravel(), score, (kp - offset) * _SIZE / scale))
        return out

    def reframe(self, image: np.ndarray, box: np.ndarray, fraction: float
                ) -> tuple[np.ndarray, float, np.ndarray] | None:
        """Detect the face at ``box`` again, in a square crop it spans ``fraction`` of.

        The network sees 128 pixels, so a face small in a large photo gets a coarse box
        and keypoints; framed by the crop it is detected at full precision. Returns the
        detection nearest the crop's centre, in image pixels, or ``None``."""
        side = (box[2] - box[0] + box[3] - box[1]) / 2
        n = max(8, round(side / fraction))
        x0 = round((box[0] + box[2]) / 2 - n / 2)
        y0 = round((box[1] + box[3]) / 2 - n / 2)
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
        crop = cv2.warpAffine(image, shift, (n, n), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT)
        found = self(crop)
        if not found:
            return None
        centres = [np.linalg.norm((b[:2] + b[2:]) / 2 - n / 2) for b, _, _ in found]
        b, score, kp = found[int(np.argmin(centres))]
        return b + np.array([x0, y0, x0, y0]), score, kp + np.array([x0, y0])


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-12)


def _weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Blend overlapping detections weighted by score (BlazeFace's suppression)."""
    order = np.argsort(-scores)
    boxes, scores, kps = boxes[order], scores[order], kps[order]
    alive = np.ones(len(boxes), dtype=bool)
    out = []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        group = alive & (_iou(boxes[i], boxes) > _MIN_SUPPRESSION_IOU)
        w = scores[group] / scores[group].sum()
        out.append((w @ boxes[group], float(scores[i]), np.einsum("n,nkc->kc", w, kps[group])))
        alive &= ~group
    return out
