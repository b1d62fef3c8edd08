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


def collect(root: Path, count: int) -> np.ndarray:
    files = sorted(root.glob("*/*.jpg"))
    step = max(1, len(files) // count)
    analyser = MediaPipeAnalyser()
    meshes = []
    for path in files[::step][:count]:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        boxes = analyser.detect_boxes(image)
        if not boxes:
            continue
        box = max(boxes, key=lambda b: (b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))[0]
        pts = analyser.mesh_in_box(image, box)
        if pts is not None:
            meshes.append(pts[:468])
    return np.stack(meshes)


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
    meshes = collect(args.lfw / "lfw-deepfunneled", args.count)
    print(f"{len(meshes)} meshes")
    mean, mirror = symmetrise(frontalise(procrustes_mean(meshes)))
    mean -= mean[[NOSE_BRIDGE, CHIN]].mean(axis=0) * np.array([1, 1, 0])
    mean *= OUTER_CANTHI_CM / np.linalg.norm(mean[EYE_CORNERS[0]] - mean[EYE_CORNERS[1]])
    mean[:, 2] -= mean[:, 2].mean()
    np.savez_compressed(args.out, mesh=mean.astype(np.float32), mirror=mirror.astype(np.int16))
    print(f"wrote {args.out}: width {np.ptp(mean[:, 0]):.1f} cm, height {np.ptp(mean[:, 1]):.1f} cm")


if __name__ == "__main__":
    main()
