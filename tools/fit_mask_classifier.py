"""Fit the masked/unmasked face classifier (maskface/data/mask_classifier.npz).

    python tools/fit_mask_classifier.py [--lfw ../shared/data/lfw] [--per-person 1] [--seed 0]

People of LFW View 2 folds 1-5 (``people.txt``) fit it; people of folds 6-10 measure it, so no
test face belongs to a person seen in training. Each chosen photo gives a bare sample and a
masked one: a style drawn from every built-in style but ``custom`` (random plausible look),
the 2D or the 3D renderer, worn correctly or under the nose. Test photos also get a mask worn
on the chin, reported on its own (the mouth and nose are bare: a borderline case, left out of
fitting and of the accuracy). Faces are located as a gallery locates them (BlazeFace, dlib's
68 points), on the masked image.

How well does it carry over to masks it has not seen? Two checks stand in for real masks:
leave-one-style-out (fit without a style, test on that style) and cross-renderer (fit on 2D
masks, test on 3D ones). The report (``--report``, JSON) has every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared/data/lfw"
OUT = Path(__file__).resolve().parents[1] / "maskface/data/mask_classifier.npz"
STYLES = ("surgical", "n95", "kn95", "cloth", "respirator")
RENDERERS = ("2d", "3d")


def _sample(task: dict) -> dict | None:
    """Features of one (photo, mask) sample, or None when no face is found."""
    from maskface.gallery.mask_classifier import classifier_chip, mask_features
    from maskface.geometry.locate import locate_faces
    from maskface.imageio import read_image
    from maskface.synthesis import mask_image

    image = read_image(task["path"])
    if task["style"]:
        result = mask_image(image, task["style"], renderer=task["renderer"], wear=task["wear"],
                            vary=True, seed=task["seed"])
        if result.status != "ok":
            return None
        image = result.image
    faces = locate_faces(image)
    if not faces:
        return None
    chip = classifier_chip(image, faces[0].landmarks)
    return {**task, "features": mask_features(chip[None])[0]}


def _chunk(tasks: list[dict]) -> list[dict | None]:
    return [_sample(t) for t in tasks]


def tasks_for(root: Path, per_person: int, seed: int) -> list[dict]:
    from maskface.datasets.lfw import LfwDataset

    ds = LfwDataset(root)
    rows, _ = ds.people("view2")
    rng = np.random.default_rng(seed)
    tasks = []
    for fold, name, count in rows:
        split = "train" if fold < 5 else "test"
        numbers = rng.permutation(np.arange(1, count + 1))[:per_person]
        for number in numbers:
            sample = ds.lookup(name, int(number))
            if sample is None:
                continue
            base = {"path": str(sample.path), "person": name, "split": split}
            tasks.append({**base, "style": "", "renderer": "", "wear": "", "label": 0,
                          "seed": 0})
            wear = "under_nose" if rng.random() < 0.25 else "correct"
            tasks.append({**base, "style": str(rng.choice(STYLES)),
                          "renderer": str(rng.choice(RENDERERS)), "wear": wear, "label": 1,
                          "seed": int(rng.integers(2**31))})
            if split == "test" and rng.random() < 0.25:
                tasks.append({**base, "style": str(rng.choice(STYLES)),
                              "renderer": str(rng.choice(RENDERERS)), "wear": "chin",
                              "label": -1, "seed": int(rng.integers(2**31))})
    return tasks


def run(tasks: list[dict], workers: int) -> list[dict]:
    from tqdm import tqdm

    chunks = [tasks[i:i + 16] for i in range(0, len(tasks), 16)]
    out: list[dict] = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool, \
            tqdm(total=len(tasks), unit="face", desc="features") as bar:
        for done in pool.map(_chunk, chunks):
            out += [d for d in done if d is not None]
            bar.update(len(done))
    return out


def fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int):
    """Standardised logistic regression, C chosen by grouped 5-fold CV (people kept apart)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]},
                          cv=GroupKFold(5), scoring="accuracy")
    search.fit(x, y, groups=groups)
    return search.best_estimator_, float(search.best_params_["logisticregression__C"])


def folded(model) -> tuple[np.ndarray, float]:
    """The pipeline's standardisation folded into the weights: w' = w / s, b' = b - w' . m."""
    scaler, lr = model.steps[0][1], model.steps[1][1]
    w = lr.coef_[0] / scaler.scale_
    return w, float(lr.intercept_[0] - w @ scaler.mean_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=DATA)
    ap.add_argument("--per-person", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()

    from sklearn.metrics import roc_auc_score

    from maskface.gallery.mask_classifier import MaskClassifier

    t0 = time.perf_counter()
    samples = run(tasks_for(args.lfw, args.per_person, args.seed), args.workers)
    t_features = time.perf_counter() - t0
    x = np.array([s["features"] for s in samples])
    y = np.array([s["label"] for s in samples])
    split = np.array([s["split"] for s in samples])
    style = np.array([s["style"] for s in samples])
    renderer = np.array([s["renderer"] for s in samples])
    wear = np.array([s["wear"] for s in samples])
    person = np.array([s["person"] for s in samples])
    train = (split == "train") & (y >= 0)
    test = (split == "test") & (y >= 0)
    model, c = fit(x[train], y[train], person[train], args.seed)
    p = model.predict_proba(x)[:, 1]
    pred = p >= 0.5

    def acc(sel: np.ndarray) -> dict:
        return {"n": int(sel.sum()), "accuracy": float(np.mean(pred[sel] == (y[sel] == 1)))}

    report: dict = {
        "samples": {"train": int(train.sum()), "test": int(test.sum()),
                    "chin_test": int(((split == "test") & (y < 0)).sum())},
        "features": int(x.shape[1]), "C": c, "seconds_features": round(t_features, 1),
        "test": {**acc(test), "auc": float(roc_auc_score(y[test], p[test]))},
        "test_unmasked": acc(test & (y == 0)),
        "test_masked": acc(test & (y == 1)),
        "test_by_renderer": {r: acc(test & (renderer == r)) for r in RENDERERS},
        "test_by_style": {s: acc(test & (style == s)) for s in STYLES},
        "test_by_wear": {w: acc(test & (wear == w)) for w in ("correct", "under_nose")},
        "test_chin_called_masked": float(np.mean(pred[(split == "test") & (y < 0)])),
        "train": acc(train),
    }
    # Generalisation checks: a style never seen, a renderer never seen.
    held_style = {}
    for s in STYLES:
        keep = train & (style != s)
        m, _ = fit(x[keep], y[keep], person[keep], args.seed)
        sel = test & (style == s)
        held_style[s] = float(np.mean(m.predict(x[sel]) == 1))
    report["leave_one_style_out_masked_recall"] = held_style
    keep = train & (renderer != "3d")
    m, _ = fit(x[keep], y[keep], person[keep], args.seed)
    sel = test & ((renderer == "3d") | (y == 0))
    report["fit_2d_test_3d"] = {"accuracy": float(np.mean(m.predict(x[sel]) == y[sel])),
                                "n": int(sel.sum())}

    w, b = folded(model)
    info = (f"LFW View 2 folds 1-5 people, {int(train.sum())} samples; held-out folds 6-10: "
            f"accuracy {100 * report['test']['accuracy']:.2f}% on {int(test.sum())} samples, "
            f"AUC {report['test']['auc']:.4f}")
    MaskClassifier(w, b, 0.5, info).save(args.out)
    report["file"] = str(args.out)
    report["file_bytes"] = args.out.stat().st_size
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")


if __name__ == "__main__":
    main()
