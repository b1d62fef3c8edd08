"""Is a BlazeFace detection a face? A check that holds for masked faces too.

The Face Mesh network judges whether its crop shows a face ("presence"), but it learnt that
on bare faces: a mask hides the mouth and nose, and a quarter of masked faces get a presence
under 0.5. Searched over a whole image pyramid, BlazeFace also fires on textures (gravel,
foliage, fabric) with scores as high as a masked face's. What tells the two apart is the
shape of the 468-point mesh the network draws in its crop (it lays a face's geometry over a
masked face, and something looser over a texture), with the detector's score and the
presence. A logistic model over those, fitted by ``tools/fit_face_verifier.py`` on LFW
faces of View 2 folds 1-5, masked and bare, pasted on backgrounds unlike the benchmark's,
ships as ``maskface/data/face_verifier.npz``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

import numpy as np

N_FEATURES = 2 + 468 * 3  # score and presence logits, the mesh in its crop's frame


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-4), 1 - 1e-4)
    return float(np.log(p / (1 - p)))


def features(mesh: np.ndarray, centre: np.ndarray, size: float, angle: float,
             score: float, presence: float) -> np.ndarray:
    """(N_FEATURES,) inputs of the model for one detection.

    ``mesh`` (468, 3) in image pixels is the landmark network's output for the crop of side
    ``size`` centred on ``centre`` and turned by ``angle`` radians; the mesh is expressed in
    that crop's upright frame, in units of its side, so the features hold at any scale."""
    c, s = np.cos(-angle), np.sin(-angle)
    xy = (np.asarray(mesh[:, :2], np.float64) - centre) @ np.array([[c, -s], [s, c]]).T / size
    z = np.asarray(mesh[:, 2], np.float64) / size
    return np.concatenate([[_logit(score), _logit(presence)], xy.ravel(), z])


@cache
def _model() -> dict[str, np.ndarray]:
    with files("maskface").joinpath("data/face_verifier.npz").open("rb") as fh:
        data = dict(np.load(fh))
    if data["weights"].shape != (N_FEATURES,):
        raise ValueError(f"maskface/data/face_verifier.npz holds weights of shape "
                         f"{data['weights'].shape}, not ({N_FEATURES},)")
    return data


def probability(x: np.ndarray) -> float:
    """The model's probability that the detection with features ``x`` is a face."""
    m = _model()
    z = float(((x - m["mean"]) / m["scale"]) @ m["weights"]) + float(np.ravel(m["bias"])[0])
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def threshold() -> float:
    """The probability above which a detection counts as a face (set when fitting)."""
    return float(_model()["threshold"])


def weights_digest() -> str:
    """A short digest of the shipped model (results computed with it can name it)."""
    m = _model()
    raw = b"".join(np.ascontiguousarray(m[k]).tobytes() for k in sorted(m))
    return hashlib.blake2b(raw, digest_size=4).hexdigest()
