"""Fitting the reference face to detected landmarks: similarity transform, head pose, visibility."""

from __future__ import annotations

import numpy as np

from maskface.geometry.face import Face, Pose
from maskface.geometry.reference import reference


def similarity_fit(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares ``dst ~ s * src @ R.T + t`` (Umeyama) for (N, 3) point sets.

    Returns rotation R (3x3, proper), scale s and translation t.
    """
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s = w @ src
    mu_d = w @ dst
    a = src - mu_s
    b = dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = float(w @ (a**2).sum(axis=1))
    scale = float((sig * d).sum() / var_s)
    trans = mu_d - scale * rot @ mu_s
    return rot, scale, trans


def pose_from_rotation(rot: np.ndarray) -> Pose:
    """Yaw, pitch, roll (degrees) of ``rot = Rz(roll) @ Ry(-yaw) @ Rx(-pitch)``."""
    theta = -np.arcsin(np.clip(rot[2, 0], -1.0, 1.0))
    phi = np.arctan2(rot[2, 1], rot[2, 2])
    psi = np.arctan2(rot[1, 0], rot[0, 0])
    return Pose(yaw=float(-np.degrees(theta)), pitch=float(-np.degrees(phi)),
                roll=float(np.degrees(psi)))


def rotation_from_pose(pose: Pose) -> np.ndarray:
    """Inverse of :func:`pose_from_rotation`."""
    t, p, r = np.radians([-pose.yaw, -pose.pitch, pose.roll])
    ry = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def face_from_mesh(
    landmarks: np.ndarray,
    mesh: np.ndarray,
    score: float,
    image_shape: tuple[int, ...],
    backend: str,
) -> Face:
    """Build a :class:`Face` from a dense 468-point mesh in image pixels."""
    ref = reference()
    rot, scale, trans = similarity_fit(ref.mesh, mesh, ref.fit_weights)
    h, w = image_shape[:2]
    normals = ref.normals @ rot.T
    inside = (mesh[:, 0] >= 0) & (mesh[:, 0] < w) & (mesh[:, 1] >= 0) & (mesh[:, 1] < h)
    facing = normals[:, 2] < 0.05
    x0, y0 = mesh[:, :2].min(axis=0)
    x1, y1 = mesh[:, :2].max(axis=0)
    box = np.array([max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)], dtype=np.float64)
    return Face(
        box=box,
        score=float(score),
        landmarks=landmarks.astype(np.float32),
        mesh=mesh.astype(np.float64),
        pose=pose_from_rotation(rot),
        visibility=float(np.mean(inside & facing)),
        rotation=rot,
        scale=scale,
        translation=trans,
        backend=backend,
    )
