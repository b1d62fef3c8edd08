"""Fit the map from BlazeFace detections onto dlib's HOG boxes (maskface/data/hog_box.npz).

    python tools/calibrate_boxes.py [--lfw ../shared/data/lfw] [--masked MASKED_LFW] [--n 3000]

The images come from LFW (deep-funneled) but never from View 2's pairs, so View 2 figures
are measured on faces the fit has not seen. The target is the HOG box of each bare face
(dlib's HOG on the whole image, no upsampling). With ``--masked`` (a masked copy of the
dataset, as ``maskface datasets mask`` writes it), BlazeFace's detection on the masked copy
is fitted to the same bare-face HOG box, so masked faces get the box their bare face would.
70% of the faces fit the map. The other 30% check it: the predictor's 68 landmarks, started
from the predicted box, against those started from HOG's box, in interocular distances.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from maskface.evaluation.embeddings import _blazeface, _central, _dlib_models, _landmarks
from maskface.geometry import hog_box
from maskface.imageio import read_image

DATA = Path(__file__).resolve().parents[2] / "shared/data/lfw"
OUT = Path(__file__).resolve().parents[1] / "maskface/data/hog_box.npz"


def _blaze(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    found = _blazeface()(image)
    if not found:
        return None
    box, _, keypoints = found[_central([tuple(b) for b, _, _ in found], *image.shape[1::-1])]
    return box, keypoints


def _measure(task: tuple[str, str | None]) -> tuple | None:
    """(HOG box, its landmarks, BlazeFace bare, BlazeFace masked or None), or None."""
    path, masked_path = task
    image = read_image(path)
    h, w = image.shape[:2]
    rects, bare = _dlib_models()[0](image, 0), _blaze(image)
    if not len(rects) or bare is None:
        return None
    boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
    box = np.array(boxes[_central(boxes, w, h)], np.float64)
    masked = None
    if masked_path is not None and os.path.exists(masked_path):
        masked = _blaze(read_image(masked_path))
    return box, _landmarks(image, tuple(box)), bare, masked


def _agreement(paths: list[str], boxes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Median landmark distance to the HOG-started landmarks, in interocular distances."""
    found = np.array([_landmarks(read_image(p), tuple(b)) for p, b in zip(paths, boxes,
                                                                          strict=True)])
    iod = np.linalg.norm(reference[:, 36:42].mean(1) - reference[:, 42:48].mean(1), axis=1)
    return np.median(np.linalg.norm(found - reference, axis=2), axis=1) / iod


def main() -> None:
    from maskface.datasets.lfw import LfwDataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=DATA, help="LFW root (with pairs.txt)")
    parser.add_argument("--masked", type=Path, help="a masked copy of the same LFW root")
    parser.add_argument("--n", type=int, default=3000, help="images to use")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    lfw = LfwDataset(args.lfw, layout="deep-funneled")
    view2 = {s.path for p in lfw.pairs("view2", strict=True).pairs for s in (p.a, p.b)}
    pool = sorted(s.path for s in lfw.samples if s.path not in view2)
    chosen = np.random.default_rng(0).choice(len(pool), min(args.n, len(pool)), replace=False)
    paths = [str(pool[i]) for i in sorted(chosen)]
    masked_root = args.masked / lfw.image_root.relative_to(args.lfw) if args.masked else None
    tasks = [(p, str(masked_root / Path(p).relative_to(lfw.image_root)) if masked_root else None)
             for p in paths]
    with ProcessPoolExecutor(os.cpu_count()) as workers:
        measured = list(workers.map(_measure, tasks, chunksize=16))
    rows = [(t, m) for t, m in zip(tasks, measured, strict=True) if m is not None]
    fit_n = int(0.7 * len(rows))
    train, test = rows[:fit_n], rows[fit_n:]

    # Bare faces, and masked ones where BlazeFace found them, against the bare HOG box.
    samples = [(m[2], m[0]) for _, m in train] + [(m[3], m[0]) for _, m in train if m[3]]
    weights = hog_box.fit(np.array([s[0][0] for s in samples]),
                          np.array([s[0][1] for s in samples]),
                          np.array([s[1] for s in samples]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, weights=weights.astype(np.float64))
    print(f"faces: {len(rows)} of {len(paths)} found by both detectors; "
          f"fitted on {len(samples)} detections ({fit_n} faces); wrote {args.out}")

    reference = np.array([m[1] for _, m in test])
    for label, side in (("bare", 0), ("masked", 1)):
        # (image path, BlazeFace detection, row in test) where that side was found
        found = [(t[side], m[2 + side], i) for i, (t, m) in enumerate(test) if m[2 + side]]
        if not found:
            continue
        box = hog_box.predict(np.array([d[0] for _, d, _ in found]),
                              np.array([d[1] for _, d, _ in found]), weights)
        e = _agreement([p for p, _, _ in found], box, reference[[i for _, _, i in found]])
        print(f"{label} held-out faces ({len(found)}): landmarks vs HOG-started, "
              f"median {np.median(e):.4f}, 90th percentile {np.percentile(e, 90):.4f} "
              "interocular distances")


if __name__ == "__main__":
    main()
