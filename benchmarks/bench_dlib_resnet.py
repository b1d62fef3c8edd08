"""dlib's face-recognition ResNet in PyTorch vs dlib itself on LFW View 2 (issue 7).

    python benchmarks/bench_dlib_resnet.py                  # everything (dlib path ~11 min)
    python benchmarks/bench_dlib_resnet.py --dlib-limit 600 # dlib path on the first 600 faces

Stages, in order:

1. End-to-end unmasked LFW View 2 with ``dlib-resnet`` from a cold weight cache (a fresh
   ``$MASKFACE_CACHE``): read pairs.txt, decode the 7,701 images, detect (dlib HOG, no
   upsampling, on the central 170x170 region: deep-funneled LFW is centred on the face by
   construction), 68 landmarks, dlib's 150x150 chip with padding 0.25, embed batched. When HOG
   finds nothing, the landmarks are predicted in a fixed centre box (CENTRE_BOX); such faces
   are counted. Detection runs in 2 worker processes, embedding in the main one.
2. Throughput of batched inference from aligned chips.
3. The dlib path (``dlib.face_recognition_model_v1``, one chip at a time) on the same chips:
   its accuracy, time per face, and the parity (max |difference| of the raw 128-d
   descriptors) of the port, both the exact module and the fused fast path.
4. Alignment: this package's numpy resampling vs ``dlib.get_face_chip`` on the same landmarks.

Accuracy is LFW's 10-fold protocol: ``KFold(10)`` over the 6,000 pairs in file order (the
file's ten sets), cosine-similarity threshold chosen on nine folds, applied to the tenth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/lfw"
# left, top, right, bottom: the median HOG box over every 40th deep-funneled LFW image
CENTRE_BOX = (71, 82, 175, 186)
CROP = (40, 210)  # HOG search region (both axes)


def read_pairs(data: Path) -> tuple[Path, list[tuple[str, str]], np.ndarray]:
    """The image root and View 2's pairs as image paths relative to it, and same/different."""
    from maskface.datasets.lfw import LfwDataset

    lfw = LfwDataset(data, layout="deep-funneled")
    view2 = lfw.pairs("view2", strict=True)
    root = lfw.image_root

    def rel(sample) -> str:
        return sample.path.relative_to(root).as_posix()

    names = [(rel(p.a), rel(p.b)) for p in view2.pairs]
    return root, names, np.array([p.same for p in view2.pairs])


def _detect(path: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(chip, 68 landmarks, used the centre-box fallback) for one image."""
    import cv2
    import dlib

    from maskface.evaluation.embeddings import _dlib_models

    detector, predictor = _dlib_models()
    image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    lo, hi = CROP
    found = detector(np.ascontiguousarray(image[lo:hi, lo:hi]), 0)
    if found:
        best = max(found, key=lambda r: r.area())
        box = dlib.rectangle(
            best.left() + lo, best.top() + lo, best.right() + lo, best.bottom() + lo
        )
    else:
        box = dlib.rectangle(*CENTRE_BOX)
    shape = predictor(image, box)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int32)
    return dlib.get_face_chip(image, shape, 150, 0.25), points, not found


def kfold_accuracy(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of LFW's 10-fold accuracy (the package's own metric)."""
    from maskface.evaluation.metrics import kfold_accuracy as kfold

    result = kfold(same, scores, k=10)
    return result.mean, result.std


def cosine(emb: np.ndarray, index: dict[str, int], pairs: list[tuple[str, str]]) -> np.ndarray:
    a = np.array([index[p] for p, _ in pairs])
    b = np.array([index[q] for _, q in pairs])
    return (emb[a] * emb[b]).sum(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--dlib-limit", type=int, default=None, help="faces for the dlib path")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }

    # 1. end to end from a cold cache
    os.environ["MASKFACE_CACHE"] = tempfile.mkdtemp(prefix="maskface-cold-")
    t0 = time.perf_counter()
    from maskface.recognizers import create_recognizer

    root, pairs, same = read_pairs(args.data)
    images = sorted({p for pair in pairs for p in pair})
    index = {p: i for i, p in enumerate(images)}
    with get_context("spawn").Pool(2) as pool:
        results = pool.map(_detect, [str(root / p) for p in images], chunksize=64)
    chips = np.stack([r[0] for r in results])
    points = np.stack([r[1] for r in results])
    fallback = [p for p, r in zip(images, results, strict=True) if r[2]]
    t_detect = time.perf_counter() - t0
    port = create_recognizer("dlib-resnet")
    emb = port.embed_chips(chips)
    acc, sd = kfold_accuracy(cosine(emb, index, pairs), same)
    total = time.perf_counter() - t0
    flip_acc, flip_sd = kfold_accuracy(
        cosine(create_recognizer("dlib-resnet", flip=True).embed_chips(chips), index, pairs), same
    )
    report["eval"] = {
        "faces": len(images),
        "pairs": len(pairs),
        "fallback": len(fallback),
        "fallback_images": fallback,
        "seconds_total": round(total, 1),
        "seconds_detect_align": round(t_detect, 1),
        "accuracy": acc,
        "accuracy_std": sd,
        "accuracy_flip": flip_acc,
        "accuracy_flip_std": flip_sd,
    }
    print(json.dumps(report["eval"], indent=1), flush=True)

    # 2. throughput from aligned chips
    sample = chips[:1200]
    port.descriptors(sample[:48])
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        port.descriptors(sample)
        rates.append(len(sample) / (time.perf_counter() - t))
    report["throughput_faces_per_s"] = {"best": max(rates), "median": float(np.median(rates))}
    print(report["throughput_faces_per_s"], flush=True)

    # 3. the dlib path on the same chips, and parity
    import torch

    from maskface.recognizers.dlib_resnet import dlib_resnet

    n = len(chips) if args.dlib_limit is None else min(args.dlib_limit, len(chips))
    dlib_rec = create_recognizer("dlib")
    t = time.perf_counter()
    dlib_raw = dlib_rec.descriptors(chips[:n])
    dlib_ms = (time.perf_counter() - t) / n * 1000
    fused_raw = port.descriptors(chips[:n])
    exact = dlib_resnet()
    with torch.inference_mode():
        exact_raw = torch.cat(
            [
                exact(torch.from_numpy(chips[i : i + 32]).permute(0, 3, 1, 2).float())
                for i in range(0, n, 32)
            ]
        ).numpy()
    report["parity"] = {
        "faces": n,
        "max_abs_diff_exact": float(np.abs(exact_raw - dlib_raw).max()),
        "max_abs_diff_fused": float(np.abs(fused_raw - dlib_raw).max()),
        "dlib_ms_per_face": dlib_ms,
    }
    if n == len(chips):
        from maskface.recognizers import l2_normalize

        d_acc, d_sd = kfold_accuracy(cosine(l2_normalize(dlib_raw), index, pairs), same)
        report["parity"].update(accuracy_dlib=d_acc, accuracy_dlib_std=d_sd)
    print(json.dumps(report["parity"], indent=1), flush=True)

    # 4. alignment re-implementation vs dlib's chips
    from maskface.recognizers.alignment import align_face

    m = min(1000, len(chips))
    diffs = np.array(
        [
            np.abs(
                align_face(_read(root / images[i]), points[i], method="numpy").astype(int)
                - chips[i]
            ).max()
            for i in range(m)
        ]
    )
    report["alignment"] = {
        "faces": m,
        "max_pixel_diff": int(diffs.max()),
        "identical": int((diffs == 0).sum()),
    }
    print(report["alignment"], flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


def _read(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


if __name__ == "__main__":
    main()
