"""Fit the upper-face template of the ``dlib150-upper`` alignment (printed for templates.py).

    python tools/fit_upper_template.py [--lfw ../shared/data/lfw] [--n 800]

For one photo of each of ``n`` people of LFW View 2 folds 1-5 (never the test folds 6-10), the
face is located as every command locates it (BlazeFace, dlib's 68 points) and cut as dlib
cuts its chip; the mean position of the eyes, brows and nose bridge in that chip, in dlib's
unit face coordinates, is the template. Fitting only these points onto it keeps a mask's
hallucinated mouth and jaw points out of the alignment, while a bare face gets nearly the
chip dlib would cut.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from maskface.datasets.lfw import LfwDataset, fold_people
from maskface.geometry.locate import locate
from maskface.imageio import read_image
from maskface.recognizers.alignment import chip_corners, chip_points
from maskface.recognizers.templates import UPPER_POINTS

DATA = Path(__file__).resolve().parents[2] / "shared/data/lfw"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=DATA)
    ap.add_argument("--n", type=int, default=800)
    args = ap.parse_args()
    lfw = LfwDataset(args.lfw)
    people = sorted(fold_people(lfw, "1-5"))
    chosen = np.random.default_rng(0).choice(len(people), min(args.n, len(people)), replace=False)
    size, padding = 150, 0.25
    unit = []
    for k in sorted(chosen):
        folder = lfw.image_root / people[k]
        image = read_image(sorted(folder.iterdir())[0])
        points = locate(image)
        if points is None:
            continue
        chip = chip_points(chip_corners(points, size, padding), points[UPPER_POINTS], size)
        unit.append(chip / (size - 1) * (1 + 2 * padding) - padding)
    template = np.mean(unit, axis=0)
    print(f"# {len(unit)} faces")
    print("UPPER_TEMPLATE = np.array([")
    for x, y in template:
        print(f"    [{x:.4f}, {y:.4f}],")
    print("])")


if __name__ == "__main__":
    main()
