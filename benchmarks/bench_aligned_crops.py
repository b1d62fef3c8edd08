"""Masking already-aligned crops: LFW faces cut to the ArcFace 112x112 template (and others).

    python benchmarks/bench_aligned_crops.py [--data ../shared/data] [--n 2000] [--every 1]
        [--template arcface112|facenet160|dlib150] [--renderer 2d]

Each LFW deep-funneled photo (``--n`` of them, a seeded sample; ``--n 0`` for all 13,233)
has its face found by the default analyser and cut with ``maskface.recognizers.templates
.align_chip`` to the template, as recognizer training sets are stored. Each crop is then
masked with ``maskface.mask_image`` two ways:

- ``detect``: the default analyser finds the face in the crop on its own;
- ``aligned``: the analyser is told the crop's template (``create_analyser("mediapipe",
  aligned=...)``): no detection, the template places the face and the Face Mesh network
  refines it.

Coverage is the share of crops that got a mask. Landmark error: the crop's true mesh is the
photo's mesh carried into the crop by the alignment's own transform; the error is the mean
distance of the five ArcFace points to it, in eye distances (median and 99th percentile).
Photos whose face is not found in the first place (3 of LFW) are left out and counted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import maskface
from maskface.geometry.aligned import TEMPLATES, _five
from maskface.recognizers import templates
from maskface.recognizers.alignment import chip_corners, landmarks68_from_mesh

DATA = Path(__file__).resolve().parents[1].parent / "shared/data"


def chip_and_truth(image: np.ndarray, face, template: str) -> tuple[np.ndarray, np.ndarray]:
    """The template's crop of ``face`` and the face's five points carried into it."""
    chip = templates.align_chip(image, face, template)
    size = TEMPLATES[template]
    if template == "arcface112":
        m = templates.arcface_matrix(templates.five_points(face), size)
    elif template == "facenet160":
        m = templates.facenet_matrix(face, size)
    else:
        import cv2

        corners = chip_corners(landmarks68_from_mesh(face.mesh), size, 0.25).astype(np.float32)
        square = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], np.float32)
        m = cv2.getAffineTransform(corners, square).astype(np.float64)
    mesh = face.mesh[:, :2] @ m[:, :2].T + m[:, 2]
    return chip, _five(mesh)


def _error(face, truth: np.ndarray) -> float:
    found = _five(face.mesh)
    return float(np.linalg.norm(found - truth, axis=1).mean()
                 / np.linalg.norm(truth[1] - truth[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=2000, help="photos (0: all of LFW)")
    parser.add_argument("--template", choices=sorted(TEMPLATES), default="arcface112")
    parser.add_argument("--renderer", default="2d")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lfw = args.data / "lfw" / "lfw-deepfunneled"
    if not lfw.is_dir():
        raise SystemExit(f"LFW not found at {lfw}")
    paths = sorted(lfw.glob("*/*.jpg"))
    if args.n:
        rng = np.random.default_rng(args.seed)
        paths = [paths[i] for i in sorted(rng.choice(len(paths), args.n, replace=False))]
    detect = maskface.create_analyser("mediapipe")
    aligned = maskface.create_analyser("mediapipe", aligned=args.template)
    found = {"detect": [], "aligned": []}
    errors = {"detect": [], "aligned": []}
    seconds = {"detect": 0.0, "aligned": 0.0}
    missed: dict[str, list[str]] = {"detect": [], "aligned": []}
    no_face = 0
    for path in tqdm(paths, unit="photo"):
        image = maskface.read_image(path)
        faces = detect(image)
        if not faces:
            no_face += 1
            continue
        h, w = image.shape[:2]
        face = min(faces, key=lambda f: np.hypot(*((f.box[:2] + f.box[2:]) / 2 - (w / 2, h / 2))))
        chip, truth = chip_and_truth(image, face, args.template)
        for name, analyser in (("detect", detect), ("aligned", aligned)):
            start = time.perf_counter()
            # What mask_image(chip, analyser=analyser) does, keeping the face it chose.
            chosen = maskface.select_faces(chip, "largest", analyser=analyser)
            result = maskface.mask_image(chip, "surgical", faces=chosen,
                                         renderer=args.renderer, seed=args.seed)
            seconds[name] += time.perf_counter() - start
            found[name].append(bool(result.faces))
            if not result.faces:
                missed[name].append(path.stem)
                continue
            errors[name].append(_error(chosen[0], truth))
    n = len(found["detect"])
    print(f"{args.template}: {n} crops of {len(paths)} LFW photos ({no_face} photos with no "
          f"face to cut), renderer {args.renderer}")
    print("| how the face is found | masked | coverage | 5-point error, median / p99 "
          "(eye distances) | time a crop |")
    print("|---|---|---|---|---|")
    for name in ("detect", "aligned"):
        e = np.array(errors[name])
        print(f"| {name} | {sum(found[name]):,} / {n:,} | {np.mean(found[name]):.2%} | "
              f"{np.median(e):.3f} / {np.percentile(e, 99):.3f} | "
              f"{1000 * seconds[name] / n:.1f} ms |")
    for name in ("detect", "aligned"):
        if missed[name]:
            print(f"{name} missed: {', '.join(missed[name][:20])}"
                  + (" ..." if len(missed[name]) > 20 else ""))


if __name__ == "__main__":
    main()
