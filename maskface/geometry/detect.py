"""Finding every face in a photo of any shape, down to about 20 pixels, masked or not.

BlazeFace sees faces well when they are 30-100 pixels in its input (masked faces are the
harder; ``benchmarks/RESULTS.md`` has the curve). So the photo is searched over an image
pyramid:

1. The whole photo letterboxed to the network's 128 pixels finds faces larger than about a
   quarter of the long side (1.3 ms). When it finds none, the photo padded by replicating
   its border is searched too: a face that fills the frame (an aligned crop) then sits inside
   the network's view instead of spilling over it.
2. Levels from coarse to fine, each the photo resized so that the faces it is meant for are
   30-100 pixels, each searched in overlapping square tiles (the network is fully
   convolutional, so a tile costs no more per pixel than its own 128-pixel input). The finest
   level makes ``min_face``-pixel faces 30 pixels; levels are at most 3x apart.
3. Detections from all levels are merged (a face at a level boundary is seen twice); an
   unsure one is looked at again, framed, in case it boxes a smaller face with its
   surroundings.

``search="auto"`` stops after a level once the photo looks like a portrait or a close-up: a
sure face (score 0.7 or more) at least 0.35 of the photo's long side (the largest face of
99.5% of LFW's photos is). Dataset images and portraits then cost one network run; a
background face less than about a quarter of the long side is then not searched for.
``search="all"`` always searches every level down to ``min_face``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from maskface.errors import InvalidInputError, UnknownNameError
from maskface.geometry.blazeface import TILE_SIZES, BlazeFace, Detection, iou

MIN_FACE = 20.0  # pixels: the smallest face searched for by default (box side)
SEARCHES = ("auto", "all")
_FACE_IN_TILE = 30.0  # the smallest face the network finds reliably, masked too (pixels)
_LEVEL_RATIO = 3.0  # a level finds faces over a 3x range of sizes: levels at most 3x apart
_PORTRAIT = 0.35  # one face this large (share of the long side) ends an "auto" search
_PAD = 0.3  # the padded whole-photo view adds this share of the short side on each side
_MAX_PIXELS = 8e6  # the finest level is kept under this many pixels (about 0.8 s of search)
_SAME_FACE_IOU = 0.3
_SURE = 0.7  # detections scoring less are checked for a smaller face inside (_reframed)


class FaceFinder:
    """Face detections (box, score, 6 keypoints) in an RGB uint8 image of any shape.

    ``min_face`` is the smallest face side searched for, in pixels; on very large photos it
    grows so that the finest level stays under ``max_pixels`` pixels.
    """

    def __init__(self, min_score: float = 0.5, min_face: float = MIN_FACE,
                 search: str = "auto", max_pixels: float = _MAX_PIXELS) -> None:
        if search not in SEARCHES:
            raise UnknownNameError("face search", search, SEARCHES)
        if not min_face > 0:
            raise InvalidInputError(f"min_face must be a positive number of pixels, not {min_face}")
        self.min_score = min_score
        self.min_face = float(min_face)
        self.search = search
        self.max_pixels = max_pixels
        self._net = BlazeFace(min_score)

    def levels(self, h: int, w: int) -> list[float]:
        """Scales of the tiled pyramid levels for an ``h`` x ``w`` photo, coarse to fine."""
        coarse = 128 / max(h, w)  # the letterboxed whole photo
        finest = min(_FACE_IN_TILE / self.min_face, math.sqrt(self.max_pixels / (h * w)))
        if finest <= coarse * 1.05:
            return []
        n = math.ceil(math.log(finest / coarse) / math.log(_LEVEL_RATIO) - 1e-9)
        return [coarse * (finest / coarse) ** (k / n) for k in range(1, n + 1)]

    def __call__(self, image: np.ndarray,
                 accept: Callable[[Detection], bool] | None = None) -> list[Detection]:
        """Detections (box x0 y0 x1 y1, score, keypoints (6, 2); image pixels), best first.

        Keypoints: right eye, left eye, nose tip, mouth, right ear, left ear (the subject's).
        ``accept`` checks each new detection (a face seen again at another level is not
        offered twice); only those it accepts are returned and count for the padded view
        and the portrait stop, so a false detection neither ends the search nor hides a face
        that fills the frame.
        """
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        kept: list[Detection] = []

        def take(found: list[Detection]) -> None:
            for det in _merge(found):
                det = self._reframed(image, det)
                if kept and _same_face(det[0], np.array([k[0] for k in kept])).any():
                    continue
                if accept is None or accept(det):
                    kept.append(det)

        take(self._net(image))
        if not kept:
            take(self._padded(image))
        for scale in self.levels(h, w):
            if self._done(kept, h, w):
                break
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            level = cv2.resize(image, size, interpolation=interpolation)
            side = _tile_side(self._net, *level.shape[:2])
            # Back to photo pixels: the resize maps pixel centres, x' + 0.5 = (x + 0.5) s.
            k = np.array([w / size[0], h / size[1]])
            take([(((box.reshape(2, 2) + 0.5) * k - 0.5).ravel(), score, (kp + 0.5) * k - 0.5)
                  for box, score, kp in self._net.tiles(level, side)])
        return sorted(kept, key=lambda d: -d[1])

    def _reframed(self, image: np.ndarray, det: Detection) -> Detection:
        """An unsure detection seen again, framed as the network sees faces best.

        BlazeFace sometimes boxes a head with its shoulders and surroundings, and the
        landmark network, which sees the face inside, accepts the loose box. Seen again in a
        crop twice its size, such a box gives way to the surer, smaller face it holds."""
        box, score, _ = det
        if score >= _SURE:
            return det
        again = self._net.reframe(image, box, 0.5)
        if again is not None and again[1] > score and _side(again[0]) < 0.6 * _side(box):
            return again
        return det

    def _padded(self, image: np.ndarray) -> list[Detection]:
        """The whole photo framed by its replicated border, so a face filling it is found.

        The border is a share of the short side (the size of a face that fills the frame);
        the photo is shrunk to the network's view first, so the frame costs nothing."""
        h, w = image.shape[:2]
        pad = _PAD * min(h, w)
        scale = min(1.0, 128 / (max(h, w) + 2 * pad))
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
        p = max(1, round(pad * scale))
        framed = cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_REPLICATE)
        k = np.array([w / small.shape[1], h / small.shape[0]])
        return [(((box.reshape(2, 2) - p) * k).ravel(), score, (kp - p) * k)
                for box, score, kp in self._net(framed)]

    def _done(self, kept: list[Detection], h: int, w: int) -> bool:
        if self.search != "auto":
            return False
        return any(k[1] >= _SURE and _side(k[0]) >= _PORTRAIT * max(h, w) for k in kept)


def _side(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def _tile_side(net: BlazeFace, h: int, w: int) -> int:
    """The tile size that covers an ``h`` x ``w`` level for the least network work.

    Larger tiles waste less on overlaps but cost a little more per pixel (measured: 86,
    92 and 97 ns a pixel for 256, 384 and 512)."""
    per_pixel = {256: 86, 384: 92, 512: 97}
    return min(TILE_SIZES, key=lambda s: net.count_tiles(h, w, s) * per_pixel[s])


def _merge(found: list[Detection]) -> list[Detection]:
    """One detection per face, best first: a face at the boundary of two levels, or in the
    plain and the padded view, is found twice with nearly the same box."""
    found = sorted(found, key=lambda d: -d[1])
    if len(found) < 2:
        return found
    boxes = np.array([d[0] for d in found])
    alive = np.ones(len(found), dtype=bool)
    out = []
    for i in range(len(found)):
        if not alive[i]:
            continue
        out.append(found[i])
        alive &= ~_same_face(boxes[i], boxes)
        alive[i] = False
    return out


def _same_face(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Which of ``boxes`` show the face of ``box`` again."""
    return (iou(box, boxes) > _SAME_FACE_IOU) | _within(box, boxes)


def _within(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Boxes of a similar size (within 4x in area) whose centre lies inside ``box``, or that
    hold its centre: the same face seen at two scales, or a part of it seen on its own."""
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    similar = (areas < 4 * area) & (area < 4 * areas)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    centre = (box[:2] + box[2:]) / 2
    inside = np.all((centres > box[:2]) & (centres < box[2:]), axis=1)
    holds = np.all((centre > boxes[:, :2]) & (centre < boxes[:, 2:]), axis=1)
    return similar & (inside | holds)
