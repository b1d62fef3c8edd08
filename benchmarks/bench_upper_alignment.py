"""How far a mask moves the recognition chip: dlib150 against dlib150-upper.

    python benchmarks/bench_upper_alignment.py [--lfw ../shared/data/lfw] [--n 300]

One photo each of ``n`` people of LFW View 2 folds 6-10 (the upper-face template was fitted
on folds 1-5) is located bare and again after a 2D mask (surgical, N95, KN95, cloth in turn,
varied looks, JPEG 85), as ``maskface eval`` locates faces. For each alignment, the distance
between the chip's corners cut from the masked photo and from the bare photo, in chip pixels
(150 px chip), says how much the mask shifts, turns and scales what the recognizer sees.
Also: how far the upper-face chip of a bare face sits from dlib's own, and the time to cut a
chip.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from maskface.datasets.lfw import LfwDataset, fold_people
from maskface.geometry.locate import locate
from maskface.imageio import read_image
from maskface.recognizers.alignment import chip_corners, chip_points
from maskface.recognizers.templates import align_chip, upper_corners
from maskface.synthesis import mask_image

DATA = Path(__file__).resolve().parents[2] / "shared/data/lfw"
CHIP = np.array([[0, 0], [149, 0], [149, 149]], float)
STYLES = ("surgical", "n95", "kn95", "cloth")


def jpeg(image: np.ndarray, quality: int = 85) -> np.ndarray:
    """``image`` after a round trip through JPEG, as a masked copy on disk would be."""
    _, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


def corners(points: np.ndarray, alignment: str) -> np.ndarray:
    """Image positions of the chip's top-left, top-right and bottom-right pixels."""
    return chip_corners(points) if alignment == "dlib150" else upper_corners(points)


def shift(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean distance, in pixels of the chip at ``reference``, of ``other``'s corners."""
    return float(np.linalg.norm(chip_points(reference, other) - CHIP, axis=1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    lfw = LfwDataset(args.lfw)
    people = sorted(fold_people(lfw, "6-10"))
    chosen = sorted(np.random.default_rng(0).choice(len(people), args.n, replace=False))
    moved: dict[str, list[float]] = {"dlib150": [], "dlib150-upper": []}
    apart = []
    for k, i in enumerate(chosen):
        image = read_image(sorted((lfw.image_root / people[i]).iterdir())[0])
        bare = locate(image)
        result = mask_image(image, STYLES[k % len(STYLES)], renderer="2d", seed=k, vary=True)
        if bare is None or not result.faces:
            continue
        masked = locate(jpeg(result.image))
        if masked is None:
            continue
        for name, dist in moved.items():
            dist.append(shift(corners(bare, name), corners(masked, name)))
        apart.append(shift(corners(bare, "dlib150"), corners(bare, "dlib150-upper")))
    print(f"{len(apart)} faces (LFW folds 6-10), mean corner distance in chip pixels:")
    print("| alignment | masked vs bare: mean | median | 90th percentile |")
    print("|---|---|---|---|")
    for name, dist in moved.items():
        d = np.array(dist)
        print(f"| {name} | {d.mean():.2f} | {np.median(d):.2f} | {np.percentile(d, 90):.2f} |")
    a = np.array(apart)
    print(f"bare faces, dlib150-upper vs dlib150: mean {a.mean():.2f}, 90th percentile "
          f"{np.percentile(a, 90):.2f}")
    image = read_image(sorted((lfw.image_root / people[chosen[0]]).iterdir())[0])
    points = locate(image)
    for name in moved:
        t = time.perf_counter()
        for _ in range(500):
            align_chip(image, points, name)
        print(f"{name}: {(time.perf_counter() - t) / 500 * 1e3:.2f} ms a chip")


if __name__ == "__main__":
    main()
