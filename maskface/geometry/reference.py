"""The reference face: a mean, mirror-symmetric 468-point Face Mesh shape with its topology.

The shape ships as ``maskface/data/reference_face.npz`` (built by ``tools/build_reference.py``
from Face Mesh landmarks of many real faces, Procrustes-aligned and symmetrised). Units are
centimetres; x points to the image's right, y down, z away from the camera; the face looks
straight at the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import numpy as np
from scipy.spatial import Delaunay

# Named Face Mesh vertices (subject's right = image left).
NOSE_BRIDGE = 168  # between the eyes
NOSE_UPPER = 6
NOSE_TIP = 1
SUBNASAL = 2
UPPER_LIP = 0
LOWER_LIP = 17
MOUTH_RIGHT = 61
MOUTH_LEFT = 291
CHIN = 152
EYE_RIGHT_OUTER = 33
EYE_LEFT_OUTER = 263
EAR_RIGHT = 234  # face outline at the tragus height
EAR_LEFT = 454
FOREHEAD = 10

# The face outline, clockwise in the image from the top of the forehead.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
# Regions whose pixels are not skin (used to leave them out of lighting estimates).
EYES_BROWS = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,
    70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276,
)
LIPS = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
)


@dataclass(frozen=True)
class ReferenceFace:
    """The reference mesh and what is derived from it once."""

    mesh: np.ndarray  # (468, 3) cm
    mirror: np.ndarray  # (468,) index of each vertex's mirror partner
    triangles: np.ndarray  # (T, 3), counter-clockwise seen from the camera (y down)
    normals: np.ndarray  # (468, 3) unit vertex normals, pointing at the camera (z < 0)
    fit_weights: np.ndarray  # (468,) weights for similarity fits (rigid parts count more)
    skin: np.ndarray  # indices of vertices on bare skin (no eyes, brows, lips)
    dlib68: np.ndarray  # (68, 3) where dlib's 68 landmarks sit on the reference face, cm


def _orient(mesh: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = mesh[tris[:, 0]], mesh[tris[:, 1]], mesh[tris[:, 2]]
    nz = np.cross(b - a, c - a)[:, 2]
    tris = tris.copy()
    flip = nz > 0  # normals must point to -z (the camera)
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris


def vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a triangle mesh."""
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    fn = np.cross(b - a, c - a)
    vn = np.zeros_like(points)
    for k in range(3):
        np.add.at(vn, triangles[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.maximum(norm, 1e-12)


@cache
def reference() -> ReferenceFace:
    """The reference face (loaded once per process)."""
    with files("maskface").joinpath("data/reference_face.npz").open("rb") as fh:
        data = np.load(fh)
        mesh = data["mesh"].astype(np.float64)
        mirror = data["mirror"].astype(np.int64)
        dlib68 = data["dlib68"].astype(np.float64)
    tris = _orient(mesh, Delaunay(mesh[:, :2]).simplices.astype(np.int64))
    # Delaunay fills the concave notch between the chin and jaw with slivers; drop triangles
    # whose three vertices all lie on the outline, which only such slivers have.
    on_oval = np.isin(tris, FACE_OVAL).all(axis=1)
    tris = tris[~on_oval]
    normals = vertex_normals(mesh, tris)
    weights = np.ones(len(mesh))
    weights[list(LIPS)] = 0.3  # the mouth moves with expression
    weights[[i for i in FACE_OVAL if mesh[i, 1] > mesh[NOSE_TIP, 1]]] = 0.5  # so does the jaw
    skin = np.setdiff1d(np.arange(len(mesh)), np.array(EYES_BROWS + LIPS + FACE_OVAL))
    return ReferenceFace(mesh, mirror, tris, normals, weights, skin, dlib68)
