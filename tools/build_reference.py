"""Build maskface/data/reference_face.npz: the mean, mirror-symmetric Face Mesh shape.

Runs MediaPipe Face Mesh over real faces (LFW by default), aligns the meshes by generalised
Procrustes, turns the mean to face the camera and makes it exactly mirror-symmetric. Only the
mean landmark coordinates are stored, no image data.

    python tools/build_reference.py --lfw ../shared/data/lfw --count 2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from maskface.geometry.fit import similarity_fit
from maskface.geometry.mediapipe_backend import MediaPipeAnalyser
from maskface.geometry.reference import CHIN, EAR_LEFT, EAR_RIGHT, NOSE_BRIDGE

EYE_CORNERS = (33, 263)
OUTER_CANTHI_CM = 9.0  # typical adult outer eye-corner distance


def collect(root: Path, count: int) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Face Mesh meshes of the largest face, and dlib's 68 points for the same face."""
    import dlib

    from maskface.geometry.dlib_backend import dlib_model_path

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(dlib_model_path("shape_predictor_68_face_landmarks.dat"))
    files = sorted(root.glob("*/*.jpg"))
    step = max(1, len(files) // count)
    analyser = MediaPipeAnalyser()
    meshes, dlib_points = [], []
    for path in files[::step][:count]:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        boxes = analyser.detect_boxes(image)
        if not boxes:
            continue
        box, _, angle = max(boxes, key=lambda b: (b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))
        found = analyser.landmarks(image, box, angle)
        if found is None:
            continue
        pts = found[0]
        meshes.append(pts)
        centre = pts[:, :2].mean(axis=0)
        found = [
            r for r in detector(image, 1)
            if r.left() < centre[0] < r.right() and r.top() < centre[1] < r.bottom()
        ]
        shape = predictor(image, found[0]) if found else None
        dlib_points.append(
            None if shape is None else np.array([(p.x, p.y) for p in shape.parts()], float)
        )
    return np.stack(meshes), dlib_points


def dlib_correspondence(
    meshes: np.ndarray, dlib_points: list[np.ndarray | None], mean: np.ndarray
) -> np.ndarray:
    """Reference-frame position (68, 3) of each dlib landmark.

    Each dlib point is written in barycentric coordinates of the Face Mesh triangle it falls
    in (or the nearest one, extrapolated) and carried over to the reference mesh; the median
    over all faces is kept.
    """
    from scipy.spatial import Delaunay

    tris = Delaunay(mean[:, :2]).simplices
    found = []
    for mesh, pts in zip(meshes, dlib_points, strict=True):
        if pts is None:
            continue
        a, b, c = (mesh[tris[:, k], :2] for k in range(3))
        centroids = (a + b + c) / 3
        out = np.empty((len(pts), 3))
        for i, p in enumerate(pts):
            v0, v1, v2 = b - a, c - a, p - a
            den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
                l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
            l0 = 1 - l1 - l2
            inside = np.flatnonzero((l0 >= 0) & (l1 >= 0) & (l2 >= 0) & np.isfinite(l1))
            k = inside[0] if len(inside) else int(np.argmin(((centroids - p) ** 2).sum(1)))
            t = tris[k]
            out[i] = l0[k] * mean[t[0]] + l1[k] * mean[t[1]] + l2[k] * mean[t[2]]
        found.append(out)
    return np.median(np.stack(found), axis=0)


def procrustes_mean(meshes: np.ndarray, iterations: int = 5) -> np.ndarray:
    mean = meshes[0] - meshes[0].mean(axis=0)
    for _ in range(iterations):
        aligned = []
        for m in meshes:
            rot, s, t = similarity_fit(m, mean)
            aligned.append(s * m @ rot.T + t)
        mean = np.median(np.stack(aligned), axis=0)
        mean -= mean.mean(axis=0)
        mean /= np.sqrt((mean**2).sum(axis=1).mean())
    return mean


def frontalise(mean: np.ndarray) -> np.ndarray:
    x = mean[EAR_LEFT] - mean[EAR_RIGHT]
    x /= np.linalg.norm(x)
    y = mean[CHIN] - mean[NOSE_BRIDGE]
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return mean @ np.stack([x, y, z]).T


def symmetrise(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for _ in range(3):
        mirrored = mean * np.array([-1.0, 1.0, 1.0])
        cost = np.linalg.norm(mean[:, None, :] - mirrored[None, :, :], axis=2)
        _, mirror = linear_sum_assignment(cost)
        # Re-estimate the frontal pose as the rotation taking the mesh onto its own mirror
        # image, halved: the symmetric plane then sits at x = 0.
        rot, _, _ = similarity_fit(mean, mirrored[mirror])
        angle = np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))
        if angle > 1e-6:
            axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
            axis /= np.linalg.norm(axis)
            half, _ = cv2.Rodrigues(axis * angle / 2)
            mean = mean @ half.T
        mean = mean - mean.mean(axis=0)
        mean[:, 0] -= mean[:, 0].mean()
    mirrored = mean * np.array([-1.0, 1.0, 1.0])
    sym = (mean + mirrored[mirror]) / 2
    return sym, mirror


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw", type=Path, default=Path("../shared/data/lfw"))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("maskface/data/reference_face.npz"))
    args = parser.parse_args()
    meshes, dlib_points = collect(args.lfw / "lfw-deepfunneled", args.count)
    print(f"{len(meshes)} meshes, {sum(p is not None for p in dlib_points)} with dlib points")
    mean, mirror = symmetrise(frontalise(procrustes_mean(meshes)))
    mean -= mean[[NOSE_BRIDGE, CHIN]].mean(axis=0) * np.array([1, 1, 0])
    mean *= OUTER_CANTHI_CM / np.linalg.norm(mean[EYE_CORNERS[0]] - mean[EYE_CORNERS[1]])
    mean[:, 2] -= mean[:, 2].mean()
    dlib68 = dlib_correspondence(meshes, dlib_points, mean)
    np.savez_compressed(
        args.out, mesh=mean.astype(np.float32), mirror=mirror.astype(np.int16),
        dlib68=dlib68.astype(np.float32),
    )
    size = np.ptp(mean[:, :2], axis=0)
    print(f"wrote {args.out}: width {size[0]:.1f} cm, height {size[1]:.1f} cm")


if __name__ == "__main__":
    main()
