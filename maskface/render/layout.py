"""Texture space: where every point of the reference face lands on the mask canvas.

The canvas is the face surface unrolled around a vertical cylinder through the head, so that a
pattern drawn on it keeps its physical size on the cheeks as well as in front: a frontal view
then shows the sides foreshortened, as a camera would. The canvas spans ``CANVAS_CM``
centimetres each way; ``face_frame`` gives the anchors styles draw against.

Below the jaw the face mesh ends while a mask goes on under the chin, so ``mask_mesh`` adds two
rings of vertices outside the lower face outline; renderers move them with the fitted head pose.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.interpolate import LinearNDInterpolator

from maskface.errors import InvalidInputError
from maskface.geometry import reference as ref_mod
from maskface.geometry.reference import reference, vertex_normals
from maskface.styles.base import WEAR_STYLES, FaceFrame

CANVAS_CM = 24.0
_CANVAS_LEFT_CM = -12.0
_CANVAS_TOP_CM = -7.5
_AXIS_Z = 6.5  # unroll axis depth (about the ears)
_RADIUS = 7.2  # unroll radius: front of the face keeps its size
_RING_CM = (1.2, 2.6)  # extension rings outside the jaw line
_RING_CENTRE = np.array([0.0, 0.5, -2.5])  # rings grow away from this point: down and back
_OVAL_LOWER = ref_mod.FACE_OVAL[6:31]  # from beside the left eye round the chin to the right
# Where ear loops go round the left ear (top of the ear root, ear lobe); the right mirrors it.
_EAR_CM = np.array([[7.3, -3.0, 6.8], [7.1, 0.8, 6.9]])


def to_canvas(points: np.ndarray, size: int) -> np.ndarray:
    """Canvas pixel coordinates (N, 2) of reference-frame points (N, 3) in cm."""
    theta = np.arctan2(points[:, 0], _AXIS_Z - points[:, 2])
    u = (_RADIUS * theta - _CANVAS_LEFT_CM) / CANVAS_CM
    v = (points[:, 1] - _CANVAS_TOP_CM) / CANVAS_CM
    return np.stack([u, v], axis=1) * size


@dataclass(frozen=True)
class MaskMesh:
    """The reference face extended under the jaw, with canvas coordinates.

    ``vertices`` (V, 3) in cm; the first 468 are the reference mesh, the rest ring vertices,
    ``parent[i]`` being the outline vertex ring vertex i hangs from (itself for mesh vertices).
    ``uv`` (V, 2) in [0, 1]; ``triangles`` (T, 3) counter-clockwise on the canvas (y down), so
    a triangle whose image winding is the same faces the camera. ``normals`` (V, 3) are unit
    vertex normals pointing out of the face (toward the camera in front).
    """

    vertices: np.ndarray
    parent: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray
    normals: np.ndarray


@cache
def mask_mesh() -> MaskMesh:
    """The extended mesh (built once per process)."""
    ref = reference()
    base = ref.mesh
    oval = np.array(_OVAL_LOWER)
    rings, parents = [], []
    for dist in _RING_CM:
        direction = base[oval] - _RING_CENTRE
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        rings.append(base[oval] + dist * direction)
        parents.append(oval)
    vertices = np.concatenate([base, *rings])
    parent = np.concatenate([np.arange(len(base)), *parents])
    uv = to_canvas(vertices, 1)

    n = len(oval)
    rows = [oval, *(len(base) + k * n + np.arange(n) for k in range(len(rings)))]
    strips = []
    for inner, outer in itertools.pairwise(rows):
        for i in range(n - 1):
            strips.append((inner[i], inner[i + 1], outer[i]))
            strips.append((inner[i + 1], outer[i + 1], outer[i]))
    tris = np.concatenate([ref.triangles, np.array(strips)])
    a, b, c = uv[tris[:, 0]], uv[tris[:, 1]], uv[tris[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tris = tris[np.abs(cross) > 1e-9]
    cross = cross[np.abs(cross) > 1e-9]
    tris[cross < 0] = tris[cross < 0][:, [0, 2, 1]]
    # A mask spans the hollows and lips instead of following them: shade it with the normals of
    # a smoothed copy of the surface.
    normals = vertex_normals(_smoothed(vertices, tris), tris)
    if normals[ref_mod.NOSE_TIP, 2] > 0:
        normals = -normals
    return MaskMesh(vertices, parent, uv, tris, normals)


def _smoothed(vertices: np.ndarray, triangles: np.ndarray, iterations: int = 12) -> np.ndarray:
    """Laplacian smoothing over the mesh edges (outline vertices stay put)."""
    n = len(vertices)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    degree = np.bincount(edges.ravel(), minlength=n).astype(np.float64)
    pinned = np.zeros(n, dtype=bool)
    pinned[list(ref_mod.FACE_OVAL)] = True
    pinned[468:] = True
    out = vertices.copy()
    for _ in range(iterations):
        acc = np.zeros_like(out)
        np.add.at(acc, edges[:, 0], out[edges[:, 1]])
        np.add.at(acc, edges[:, 1], out[edges[:, 0]])
        mean = acc / np.maximum(degree, 1)[:, None]
        out = np.where(pinned[:, None], out, 0.5 * out + 0.5 * mean)
    return out


@cache
def _surface_depth() -> LinearNDInterpolator:
    mesh = mask_mesh()
    return LinearNDInterpolator(mesh.vertices[:, :2], mesh.vertices[:, 2])


def _on_surface(xy: list[tuple[float, float]]) -> np.ndarray:
    """Lift frontal (x, y) points in cm onto the face surface."""
    pts = np.array(xy, dtype=np.float64)
    z = _surface_depth()(pts)
    return np.column_stack([pts, z])


def _symmetric_curve(half: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A curve given from the wearer's right side to the midline, completed to the left."""
    mirrored = [(-x, y) for x, y in reversed(half[:-1])]
    return [*half, *mirrored]


# Upper mask edge (wearer's right half, ending on the midline), in reference cm, per wear.
_TOP_EDGE = {
    "correct": [(-5.3, -2.7), (-3.8, -3.35), (-2.0, -4.0), (0.0, -4.55)],
    "under_nose": [(-5.6, -0.95), (-4.0, -1.05), (-2.3, -1.15), (0.0, -0.95)],
    "chin": [(-5.2, 3.0), (-3.8, 2.95), (-2.2, 3.1), (0.0, 3.25)],
}
# Where the lower edge leaves the jaw, per wear (the mask side edge runs from the top to it).
_SIDE_LOW = {"correct": (-6.45, 1.6), "under_nose": (-6.45, 1.9), "chin": (-5.6, 3.6)}


@cache
def _frame_cm(wear: str) -> dict[str, np.ndarray]:
    ear_l = _EAR_CM.mean(axis=0)
    ear_r = ear_l * np.array([-1.0, 1.0, 1.0])
    top = _on_surface(_symmetric_curve(_TOP_EDGE[wear]))
    mesh = mask_mesh()
    n = len(_OVAL_LOWER)
    ring = mesh.vertices[468 : 468 + n]  # first ring: just under the jaw line
    low_x, low_y = _SIDE_LOW[wear]
    side_low = _on_surface([(low_x, low_y), (-low_x, low_y)])
    limit = to_canvas(side_low, 1)[1, 0] - 0.5
    keep = np.abs(to_canvas(ring, 1)[:, 0] - 0.5) < limit - 0.02
    bottom_ring = ring[keep][::-1]  # from the wearer's right round the chin to the left
    bottom = np.concatenate([ear_r[None], side_low[:1], bottom_ring, side_low[1:], ear_l[None]])
    top = np.concatenate([ear_r[None], top, ear_l[None]])
    chin_under = ring[_OVAL_LOWER.index(ref_mod.CHIN)]
    named = {
        "nose_bridge": ref_mod.NOSE_BRIDGE, "nose_tip": ref_mod.NOSE_TIP,
        "subnasal": ref_mod.SUBNASAL, "mouth_right": ref_mod.MOUTH_RIGHT,
        "mouth_left": ref_mod.MOUTH_LEFT, "chin": ref_mod.CHIN,
    }
    out = {k: reference().mesh[i] for k, i in named.items()}
    lips = reference().mesh[[ref_mod.UPPER_LIP, ref_mod.LOWER_LIP]]
    out.update(
        ear_right=ear_r, ear_left=ear_l, chin_under=chin_under, mouth_center=lips.mean(axis=0),
        top_curve=top, bottom_curve=bottom,
    )
    return out


def face_frame(wear: str = "correct", size: int = 512) -> FaceFrame:
    """The texture-space anchors for a wear style on a ``size`` x ``size`` canvas."""
    if wear not in WEAR_STYLES:
        raise InvalidInputError(
            f"unknown wear style {wear!r}; choose from {', '.join(WEAR_STYLES)}")
    cm = _frame_cm(wear)
    px = {k: to_canvas(np.atleast_2d(v), size) for k, v in cm.items()}
    single = {k: v[0] for k, v in px.items() if k not in ("top_curve", "bottom_curve")}
    return FaceFrame(
        size=size, wear=wear, top_curve=px["top_curve"], bottom_curve=px["bottom_curve"],
        px_per_cm=size / CANVAS_CM, **single,
    )


def ear_points() -> np.ndarray:
    """Where straps meet the ears, in reference cm: (side, upper/lower, xyz) = (2, 2, 3).

    Side 0 is the wearer's right. Upper straps go over the top of the ear root, lower ones
    under the lobe.
    """
    return np.stack([_EAR_CM * np.array([-1.0, 1.0, 1.0]), _EAR_CM])
