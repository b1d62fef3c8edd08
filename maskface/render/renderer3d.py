"""The 3D renderer: a separate mask surface standing off the reconstructed face.

The 2D renderer lays the texture on the skin itself. Here the mask is its own surface, built
once on the reference face. It starts from the skin pushed out by the fabric's thickness and
is then relaxed like cloth: each vertex is pulled toward its neighbours, but never into the
face. It therefore spans the hollows beside the nose and under the lower lip, stretches
straight from the nose tip to the cheeks, and keeps the thickness everywhere.

For each photo this surface is posed with the fitted head pose (rotation, scale, translation
from the landmarks with depth) and bent by a smoothed version of the way this face differs
from the reference, so that a long chin or wide cheeks carry the mask with them. It is then
drawn like the 2D renderer, with the same textures, lighting, colour temperature, soft edges
and light wrap. The shading uses the mask surface's own normals: flat where cloth bridges a
hollow, and turning where it wraps the cheeks.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from maskface.geometry.face import Face
from maskface.geometry.reference import FACE_OVAL, reference, vertex_normals
from maskface.render.layout import mask_mesh
from maskface.render.renderer2d import Renderer2D, _mouth_bridge, normal_map

_THICKNESS_CM = 0.25
_RELAX_ROUNDS = 40
_RESIDUAL_SMOOTHING = 6  # Laplacian steps applied to the face's deviation from the reference


def _neighbour_mean(n: int, triangles: np.ndarray) -> np.ndarray:
    """Dense (n, n) matrix averaging each vertex's mesh neighbours."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    adj = np.zeros((n, n))
    adj[edges[:, 0], edges[:, 1]] = 1.0
    adj[edges[:, 1], edges[:, 0]] = 1.0
    return adj / np.maximum(adj.sum(axis=1, keepdims=True), 1.0)


@cache
def mask_surface() -> tuple[np.ndarray, np.ndarray]:
    """The mask surface's vertices (V, 3) in reference cm and their outward unit normals."""
    mm = mask_mesh()
    skin = mm.vertices
    out = mm.normals  # smoothed, pointing out of the face
    floor = skin + _THICKNESS_CM * out
    mean = _neighbour_mean(len(skin), mm.triangles)
    pinned = np.zeros(len(skin), dtype=bool)
    pinned[list(FACE_OVAL)] = True
    pinned[468:] = True
    # Each vertex only moves out along its skin normal (height h >= 0 above the fabric's
    # floor), so the texture stays where it was on the face while the surface relaxes.
    height = np.zeros(len(skin))
    for _ in range(_RELAX_ROUNDS):
        surf = floor + height[:, None] * out
        target = np.einsum("ij,ij->i", mean @ surf - floor, out)
        height = np.where(pinned, 0.0, np.maximum(0.5 * height + 0.5 * target, 0.0))
    surf = floor + height[:, None] * out
    normals = vertex_normals(surf, mm.triangles)
    if np.einsum("ij,ij->", normals, out) < 0:
        normals = -normals
    return surf, normals


@cache
def _residual_filter() -> np.ndarray:
    """(468, 468) low-pass filter for per-vertex offsets over the face mesh."""
    ref = reference()
    mean = _neighbour_mean(len(ref.mesh), ref.triangles)
    step = 0.5 * np.eye(len(ref.mesh)) + 0.5 * mean
    return np.linalg.matrix_power(step, _RESIDUAL_SMOOTHING)


@cache
def _surface_normal_map(size: int) -> np.ndarray:
    return normal_map(mask_surface()[1], size)


class Renderer3D(Renderer2D):
    """Draws the mask as its own surface over the face; see the module docstring."""

    name = "3d"

    def project(self, face: Face) -> np.ndarray:
        ref = reference().mesh
        n = len(ref)
        surf, _ = mask_surface()
        rigid = ref @ face.rotation.T * face.scale + face.translation
        residual = face.mesh[:n] - rigid
        mouth, around, weights = _mouth_bridge()
        residual[mouth] = weights @ residual[around]  # the mask does not follow the lips
        residual = _residual_filter() @ residual
        parent = mask_mesh().parent
        return surf @ face.rotation.T * face.scale + face.translation + residual[parent]

    def normal_map(self, size: int) -> np.ndarray:
        return _surface_normal_map(size)
