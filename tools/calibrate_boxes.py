"""Fit the maps from BlazeFace boxes (and landmark boxes) onto dlib's HOG boxes.

    python tools/calibrate_boxes.py [--lfw ../shared/data/lfw/lfw-deepfunneled] [--n 600]

dlib's 68-point predictor was trained on HOG detector boxes. When HOG misses a face that
BlazeFace finds (most often a masked one), the predictor is started from BlazeFace's box
mapped onto the HOG box, then from the box of the landmarks it found, mapped the same way.
Each map is a scale of the box side and a centre offset in box sides (medians, fitted on
half the images). The other half is used to check agreement with the HOG pipeline, in
interocular distances. The printed constants go into ``maskface/evaluation/embeddings.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from maskface.evaluation.embeddings import _blazeface, _central, _dlib_models, _landmarks
from maskface.imageio import read_image

LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw/lfw-deepfunneled"


def _centre_size(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    side = (boxes[:, 2] - boxes[:, 0] + boxes[:, 3] - boxes[:, 1]) / 2
    return (boxes[:, :2] + boxes[:, 2:]) / 2, side


def _fit(src: np.ndarray, hog: np.ndarray) -> tuple[float, np.ndarray]:
    c, s = _centre_size(src)
    hc, hs = _centre_size(hog)
    return float(np.median(hs / s)), np.median((hc - c) / s[:, None], axis=0)


def _apply(box: np.ndarray, k: float, offset: np.ndarray) -> tuple[float, ...]:
    c, s = _centre_size(box[None])
    centre, half = c[0] + offset * s[0], k * s[0] / 2
    return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--n", type=int, default=600)
    args = parser.parse_args()
    paths = sorted(args.lfw.glob("*/*.jpg"))
    chosen = np.random.default_rng(0).choice(len(paths), min(args.n, len(paths)), replace=False)
    hog, _ = _dlib_models()
    images, hog_boxes, blaze_boxes, hog_points = [], [], [], []
    for i in chosen:
        image = read_image(paths[i])
        h, w = image.shape[:2]
        rects, found = hog(image, 0), _blazeface()(image)
        if not len(rects) or not found:
            continue
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
        box = boxes[_central(boxes, w, h)]
        images.append(image)
        hog_boxes.append(box)
        blaze_boxes.append(found[_central([tuple(b) for b, _, _ in found], w, h)][0])
        hog_points.append(_landmarks(image, box))
    hog_b, blaze_b, ref = np.array(hog_boxes, float), np.array(blaze_boxes), np.array(hog_points)
    half = len(images) // 2
    k1, o1 = _fit(blaze_b[:half], hog_b[:half])
    marks = np.concatenate([ref.min(axis=1), ref.max(axis=1)], axis=1)
    k2, o2 = _fit(marks[:half], hog_b[:half])
    errors = []
    for j in range(half, len(images)):
        first = _landmarks(images[j], _apply(blaze_b[j], k1, o1))
        refit = np.concatenate([first.min(axis=0), first.max(axis=0)])
        points = _landmarks(images[j], _apply(refit, k2, o2))
        iod = np.linalg.norm(ref[j, 36:42].mean(0) - ref[j, 42:48].mean(0))
        errors.append(np.linalg.norm(points - ref[j], axis=1).mean() / iod)
    e = np.array(errors)
    print(f"faces: {len(images)} (fit on {half})")
    print(f"_BLAZE_TO_HOG = ({k1:.3f}, ({o1[0]:.3f}, {o1[1]:.3f}))")
    print(f"_LANDMARKS_TO_HOG = ({k2:.3f}, ({o2[0]:.3f}, {o2[1]:.3f}))")
    print(f"landmarks vs HOG pipeline (interocular): median {np.median(e):.3f}, "
          f"95th percentile {np.percentile(e, 95):.3f}")


if __name__ == "__main__":
    main()
