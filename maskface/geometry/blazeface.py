"""MediaPipe's short-range BlazeFace detector run directly in LiteRT.

MediaPipe's own graph around this 1.3 ms network costs about three times as much again; the
decoding it does (SSD anchors, sigmoid scores, weighted non-maximum suppression) is a few
lines of numpy, written here from the model's published configuration.

The network is fully convolutional: given a larger square input it scores every 8- and
16-pixel cell of it, as if slid over the image in 128-pixel windows, at the cost per pixel
of one window. :meth:`BlazeFace.tiles` uses this to search an image of any size for faces
of 30-100 pixels; :mod:`maskface.geometry.detect` builds the image pyramid around it.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from maskface.geometry.tflite import interpreter

_SIZE = 128  # the network's own input side
_STRIDES = ((8, 2), (16, 6))  # (cell side in pixels, anchors per cell) of the two heads
_MIN_SUPPRESSION_IOU = 0.3
TILE_SIZES = (256, 384, 512)  # square inputs the tiled search may use
# Seen in a tile, faces up to this side (pixels) are found: tiles overlap by as much, so
# each such face lies whole in one tile.
TILE_OVERLAP = 112

# A detection: box (x0, y0, x1, y1) in pixels, score, keypoints (6, 2) in pixels.
Detection = tuple[np.ndarray, float, np.ndarray]


@cache
def _anchors(height: int, width: int) -> np.ndarray:
    """(N, 2) anchor centres (x, y) in units of an input of ``height`` x ``width`` pixels.

    In the network's output order: head by head, cells row by row, anchors of a cell."""
    out = []
    for stride, per_cell in _STRIDES:
        rows, cols = height // stride, width // stride
        ys, xs = np.mgrid[0:rows, 0:cols]
        centres = np.stack([(xs + 0.5) / cols, (ys + 0.5) / rows], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out)


class BlazeFace:
    """Faces (box, score, 6 keypoints) in an RGB uint8 image.

    Called on an image, it letterboxes it to 128 pixels: that finds faces larger than about a
    quarter of the image's long side. :meth:`tiles` finds faces of 30-100 pixels at the
    image's own scale.
    """

    def __init__(self, min_score: float = 0.5) -> None:
        self.min_score = min_score
        self._nets: dict[tuple[int, int], tuple] = {}

    def _net(self, height: int, width: int) -> tuple:
        """The interpreter for a ``height`` x ``width`` input, with its tensor indices."""
        key = (height, width)
        if key not in self._nets:
            net = interpreter("face_detection/face_detection_short_range.tflite")
            index = net.get_input_details()[0]["index"]
            if key != (_SIZE, _SIZE):
                net.resize_tensor_input(index, [1, height, width, 3])
                net.allocate_tensors()
            outputs = {d["name"]: d["index"] for d in net.get_output_details()}
            self._nets[key] = (net, index, outputs["regressors"], outputs["classificators"])
        return self._nets[key]

    def __call__(self, image: np.ndarray) -> list[Detection]:
        """Detections as (box x0 y0 x1 y1 in pixels, score, keypoints (6, 2) in pixels).

        Keypoints: right eye, left eye, nose tip, mouth, right ear, left ear (the subject's).
        The image is letterboxed to a square, as MediaPipe does, so faces keep their shape.
        """
        h, w = image.shape[:2]
        side = max(h, w)
        scale = _SIZE / side
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        px, py = (_SIZE - nw) // 2, (_SIZE - nh) // 2
        tensor = np.zeros((_SIZE, _SIZE, 3), np.float32)
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        tensor[py : py + nh, px : px + nw] = small.astype(np.float32) / 127.5 - 1.0
        found = self._run(tensor)
        # From the letterboxed unit square back to image pixels.
        offset = np.array([px, py]) / _SIZE
        out = []
        for box, score, kp in found:
            box = (box.reshape(2, 2) - offset) * _SIZE / scale
            out.append((box.ravel(), score, (kp - offset) * _SIZE / scale))
        return out

    def tiles(self, image: np.ndarray, side: int) -> list[Detection]:
        """Detections in an image of any size, seen at its own scale in overlapping tiles of
        ``side`` pixels (one of :data:`TILE_SIZES`; a thin image gets thinner tiles).

        Faces of about 30 to 100 pixels are found (see ``benchmarks/RESULTS.md``), each
        once."""
        if side not in TILE_SIZES:
            raise ValueError(f"tile side must be one of {TILE_SIZES}, not {side}")
        h, w = image.shape[:2]
        th, tw = _tile_length(h, side), _tile_length(w, side)
        rows, cols = _starts(h, th), _starts(w, tw)
        found: list[Detection] = []
        tensor = np.zeros((th, tw, 3), np.float32)
        size = np.array([tw, th], np.float64)
        for i, y0 in enumerate(rows):
            ylo, yhi = _owned(rows, i, th)
            for j, x0 in enumerate(cols):
                xlo, xhi = _owned(cols, j, tw)
                window = image[y0 : y0 + th, x0 : x0 + tw]
                tensor[:] = 0.0  # grey beyond the image, as the letterbox pads
                tensor[: window.shape[0], : window.shape[1]] = window / np.float32(127.5) - 1
                offset = np.array([x0, y0], np.float64)
                for box, score, kp in self._run(tensor):
                    box = box * np.tile(size, 2) + np.tile(offset, 2)
                    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                    # A face seen by two tiles is kept by the one that owns its centre:
                    # it lies whole in that tile if it is no larger than the overlap.
                    if xlo <= cx < xhi and ylo <= cy < yhi:
                        found.append((box, score, kp * size + offset))
        return found

    def count_tiles(self, h: int, w: int, side: int) -> int:
        """How many tiles :meth:`tiles` runs on an ``h`` x ``w`` image, and of what area."""
        th, tw = _tile_length(h, side), _tile_length(w, side)
        return len(_starts(h, th)) * len(_starts(w, tw)) * th * tw

    def _run(self, tensor: np.ndarray) -> list[Detection]:
        """Detections in units of the input's width and height for a prepared float tensor."""
        th, tw = tensor.shape[:2]
        net, index, boxes_out, scores_out = self._net(th, tw)
        net.set_tensor(index, tensor[None])
        net.invoke()
        logits = net.get_tensor(scores_out)[0, :, 0]
        # Thresholding the logit first saves the sigmoid over thousands of empty anchors.
        keep = np.flatnonzero(logits >= np.log(self.min_score / (1 - self.min_score)))
        if len(keep) == 0:
            return []
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep].astype(np.float64), -100, 100)))
        anchors = _anchors(th, tw)[keep]
        reg = net.get_tensor(boxes_out)[0][keep] / np.array([tw, th] * 8, np.float32)
        centre = reg[:, :2] + anchors
        half = reg[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        return weighted_nms(boxes, scores, kps)

    def reframe(self, image: np.ndarray, box: np.ndarray, fraction: float) -> Detection | None:
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


# The name the face locator (maskface.geometry.locate) knows the detector by.
ShortRangeDetector = BlazeFace


def _tile_length(length: int, side: int) -> int:
    """A tile's extent along an axis of ``length`` pixels: ``side``, or the axis itself
    rounded up to 64 pixels when it is shorter (few distinct input shapes, few networks)."""
    return min(side, max(64, -(-length // 64) * 64))


def _starts(length: int, tile: int) -> list[int]:
    """Tile origins along one axis, :data:`TILE_OVERLAP` apart from the tile's end; the
    last tile flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - TILE_OVERLAP))
    return [*starts, length - tile]


def _owned(starts: list[int], i: int, side: int) -> tuple[float, float]:
    """The span tile ``i`` owns along one axis: up to the middles of its overlaps."""
    lo = (starts[i - 1] + side + starts[i]) / 2 if i > 0 else -np.inf
    hi = (starts[i] + side + starts[i + 1]) / 2 if i + 1 < len(starts) else np.inf
    return lo, hi


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with each of ``boxes`` (N, 4)."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray) -> list[Detection]:
    """Blend overlapping detections weighted by score (BlazeFace's suppression)."""
    order = np.argsort(-scores)
    boxes, scores, kps = boxes[order], scores[order], kps[order]
    alive = np.ones(len(boxes), dtype=bool)
    out = []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        group = alive & (iou(boxes[i], boxes) > _MIN_SUPPRESSION_IOU)
        w = scores[group] / scores[group].sum()
        out.append((w @ boxes[group], float(scores[i]), np.einsum("n,nkc->kc", w, kps[group])))
        alive &= ~group
    return out
