"""dlib's HOG face box, predicted from a BlazeFace detection.

dlib's 68-point shape predictor was trained on boxes from dlib's HOG detector, and where it
lands depends on where that box sits. HOG costs 6-25 ms a face and misses about 30% of masked
faces; BlazeFace takes 2 ms and finds them. So the HOG box is predicted from BlazeFace's box
and six keypoints by a linear map. The inputs are expressed in units of BlazeFace's box, so
the map holds at any position and scale in the photo.

The weights ship as ``maskface/data/hog_box.npz``. ``tools/calibrate_boxes.py`` fits them
on LFW images outside View 2 and on masked copies of the same images, where the target is
always the HOG box of the bare face. On held-out LFW faces, the landmarks started from the
predicted box are the same as those started from HOG's box for most faces. The map's inputs
do not depend on where the face is or how large it is. BlazeFace's own precision does,
because the network sees only 128 pixels. So callers detect a face that is small in its
photo a second time, in a crop that frames it as :data:`FACE_FRACTION` says.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

import numpy as np

# BlazeFace's box side over the image side (median) on the LFW images the map was fitted on.
FACE_FRACTION = 0.42
N_FEATURES = 14  # 6 keypoints (x, y), the box's aspect, a constant


def _centre_side(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2] - boxes[:, 0] + boxes[:, 3] - boxes[:, 1]) / 2
    return centre, np.maximum(side, 1e-6)


def features(boxes: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, ...]:
    """(N, 14) inputs of the map, and the centres and sides that normalise them.

    ``boxes``: (N, 4) BlazeFace boxes x0 y0 x1 y1; ``keypoints``: (N, 6, 2) in pixels."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    keypoints = np.asarray(keypoints, np.float64).reshape(-1, 6, 2)
    centre, side = _centre_side(boxes)
    points = (keypoints - centre[:, None]) / side[:, None, None]
    # width - height; with the side (their mean) as the unit, width and height add nothing more
    aspect = (boxes[:, 2] - boxes[:, 0] - boxes[:, 3] + boxes[:, 1]) / side
    x = np.concatenate([points.reshape(len(boxes), 12), aspect[:, None],
                        np.ones((len(boxes), 1))], 1)
    return x, centre, side


def fit(boxes: np.ndarray, keypoints: np.ndarray, hog_boxes: np.ndarray,
        ridge: float = 1e-6) -> np.ndarray:
    """Least-squares weights (14, 4) mapping BlazeFace detections onto ``hog_boxes``."""
    x, centre, side = features(boxes, keypoints)
    hog = np.asarray(hog_boxes, np.float64).reshape(-1, 2, 2)
    y = ((hog - centre[:, None]) / side[:, None, None]).reshape(-1, 4)
    # A tiny ridge only keeps the solve well-posed.
    return np.linalg.solve(x.T @ x + ridge * len(x) * np.eye(N_FEATURES), x.T @ y)


def predict(boxes: np.ndarray, keypoints: np.ndarray,
            weights: np.ndarray | None = None) -> np.ndarray:
    """(N, 4) predicted HOG boxes x0 y0 x1 y1 in pixels (shipped weights by default)."""
    x, centre, side = features(boxes, keypoints)
    w = shipped_weights() if weights is None else weights
    corners = (x @ w).reshape(-1, 2, 2) * side[:, None, None] + centre[:, None]
    return corners.reshape(-1, 4)


@cache
def shipped_weights() -> np.ndarray:
    """The weights fitted by ``tools/calibrate_boxes.py``."""
    with files("maskface").joinpath("data/hog_box.npz").open("rb") as fh:
        w = np.load(fh)["weights"].astype(np.float64)
    if w.shape != (N_FEATURES, 4):
        raise ValueError(f"maskface/data/hog_box.npz holds weights of shape {w.shape}")
    return w


@cache
def weights_digest() -> str:
    """A short digest of the shipped weights: caches of landmarks found with them name it."""
    return hashlib.blake2b(shipped_weights().tobytes(), digest_size=4).hexdigest()
