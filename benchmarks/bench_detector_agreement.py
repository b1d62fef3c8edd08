"""How far the default ``blazeface`` detector's landmarks land from the HOG pipeline's, off LFW.

    python benchmarks/bench_detector_agreement.py [--data ../shared/data] [--n 200]

``maskface eval``'s default detector predicts dlib's HOG box from BlazeFace's detection
(maskface/geometry/hog_box.py). The map was fitted on LFW's 250x250 deep-funneled crops, so
this checks it on faces framed otherwise:

- UTKFace crops (200x200, the face filling more of the frame);
- LFW faces rotated by up to 20 degrees;
- LFW images scaled by 0.6-2x and pasted at a random place on a canvas 1.5-2.5x larger;
- LFW faces scaled by 0.5-1x on a canvas 3-4x larger (a face small in a large photo).

For each image where dlib's HOG detector (one upsampling level) finds a face, the reference
is dlib's 68 landmarks started from HOG's box. The figure is the median landmark distance
to it in interocular distances, with its 90th percentile and the share of faces over 0.1.
The images are built from a fixed seed. ``--no-reframe`` turns off the second detection of
faces small in the photo, to show what it brings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from maskface.evaluation.embeddings import locate
from maskface.imageio import read_image

DATA = Path(__file__).resolve().parents[1].parent / "shared/data"


def _paste(image: np.ndarray, rng: np.random.Generator, scale: tuple[float, float],
           grow: tuple[float, float]) -> np.ndarray:
    s = rng.uniform(*scale)
    small = cv2.resize(image, None, fx=s, fy=s,
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    side = int(max(small.shape[:2]) * rng.uniform(*grow))
    canvas = np.full((side, side, 3), rng.integers(0, 256), np.uint8)
    y = rng.integers(0, side - small.shape[0] + 1)
    x = rng.integers(0, side - small.shape[1] + 1)
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas


def _rotate(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-20, 20), 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def agreement(images: list[np.ndarray]) -> dict[str, float]:
    """Landmark distances of ``blazeface`` to HOG, in interocular distances."""
    errors, missed = [], 0
    for image in images:
        reference = locate(image, "dlib", upsample=1)
        if reference is None:
            continue
        found = locate(image, "blazeface", upsample=1)
        if found is None:
            missed += 1
            continue
        iod = np.linalg.norm(reference[36:42].mean(0) - reference[42:48].mean(0))
        errors.append(np.median(np.linalg.norm(found - reference, axis=1)) / iod)
    e = np.array(errors)
    return {"faces": len(e), "missed": missed, "median": float(np.median(e)),
            "p90": float(np.percentile(e, 90)), "over_0.1": float(np.mean(e > 0.1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=200, help="images per set")
    parser.add_argument("--no-reframe", action="store_true",
                        help="never detect small faces again in a crop (the detector before)")
    args = parser.parse_args()
    if args.no_reframe:
        from maskface.geometry import hog_box

        hog_box.FACE_FRACTION = 0.0  # the re-detection threshold is a fraction of it
    rng = np.random.default_rng(0)
    lfw = sorted((args.data / "lfw/lfw-deepfunneled").glob("*/*.jpg"))
    utk = sorted((args.data / "utkface/UTKFace").glob("*.jpg"))
    lfw = [lfw[i] for i in rng.choice(len(lfw), 3 * args.n, replace=False)]
    utk = [utk[i] for i in rng.choice(len(utk), args.n, replace=False)]
    sets = {
        "UTKFace crops": [read_image(p) for p in utk],
        "LFW rotated up to 20 degrees": [_rotate(read_image(p), rng) for p in lfw[: args.n]],
        "LFW scaled 0.6-2x on a 1.5-2.5x canvas": [
            _paste(read_image(p), rng, (0.6, 2.0), (1.5, 2.5))
            for p in lfw[args.n : 2 * args.n]],
        "LFW scaled 0.5-1x on a 3-4x canvas": [
            _paste(read_image(p), rng, (0.5, 1.0), (3.0, 4.0)) for p in lfw[2 * args.n :]],
    }
    print("| images | faces (HOG found) | BlazeFace missed | median | 90th percentile | over 0.1 |")
    print("|---|---|---|---|---|---|")
    for name, images in sets.items():
        r = agreement(images)
        print(f"| {name} | {r['faces']} | {r['missed']} | {r['median']:.4f} | {r['p90']:.4f} "
              f"| {100 * r['over_0.1']:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
