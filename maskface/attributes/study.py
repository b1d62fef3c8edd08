"""The four-combination study: train unmasked/masked x test unmasked/masked.

Each row of ``features["unmasked"]`` and ``features["masked"]`` is the same image without and
with a mask drawn by our renderers, so all four combinations use identical splits and labels.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskface.attributes.baseline import fit_baseline
from maskface.attributes.metrics import evaluate
from maskface.attributes.splits import make_split, save_split
from maskface.attributes.targets import TARGETS, age_group, target_values
from maskface.datasets import load_dataset
from maskface.datasets.utkface import GENDERS, RACES

CONDITIONS: tuple[str, ...] = ("unmasked", "masked")


@dataclass
class MaskedPairs:
    """UTKFace images that have a masked copy: labels, both paths, and the style drawn."""

    attributes: list[dict[str, Any]] = field(default_factory=list)
    unmasked: list[Path] = field(default_factory=list)
    masked: list[Path] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)


def load_masked_pairs(
    root: str | os.PathLike[str], masked_root: str | os.PathLike[str]
) -> MaskedPairs:
    """Pair each UTKFace sample with its masked copy (made by ``maskface datasets mask``).

    Images the masking run did not mask (manifest status other than ``ok``) are left out
    and counted by status in ``excluded``, as are malformed names (``malformed_name``).
    """
    dataset = load_dataset("utkface", root)
    masked_dir = Path(masked_root) / dataset.image_root.name
    if not masked_dir.is_dir():
        masked_dir = Path(masked_root)
    manifest = masked_dir / "manifest.csv"
    if not manifest.exists():
        raise FileNotFoundError(f"no manifest.csv in {masked_dir}: is it a masked copy?")
    with open(manifest, newline="") as fh:
        rows = {r["input"]: r for r in csv.DictReader(fh)}
    pairs = MaskedPairs(excluded={"malformed_name": len(dataset.problems)})
    for sample in dataset.samples:
        row = rows.get(dataset.relpath(sample))
        status = row["status"] if row else "not_in_manifest"
        if status != "ok":
            pairs.excluded[status] = pairs.excluded.get(status, 0) + 1
            continue
        info = json.loads(row["info"] or "{}")
        pairs.attributes.append(sample.attributes)
        pairs.unmasked.append(sample.path)
        pairs.masked.append(masked_dir / row["outputs"].split(";")[0])
        pairs.styles.append((info.get("styles") or ["?"])[0])
    return pairs


def strata(attributes: Sequence[Mapping[str, Any]], target: str) -> np.ndarray:
    """What a uniform split of ``target`` stratifies on: its classes, or age groups for age."""
    values = target_values(attributes, target)
    return age_group(values) if target == "age" else values


def run_study(
    features: Mapping[str, np.ndarray],
    attributes: Sequence[Mapping[str, Any]],
    *,
    targets: Sequence[str] = tuple(TARGETS),
    split_kind: str = "random",
    seed: int = 0,
    styles: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    split_dir: str | os.PathLike[str] | None = None,
    models: list[str] | None = None,
) -> dict[str, Any]:
    """Fit the embedding baseline per target and training condition; test on both conditions.

    ``features`` maps ``"unmasked"``/``"masked"`` to row-aligned embeddings. A ``uniform``
    split is stratified on the target (on age groups for age); a ``random`` one is shared
    by all targets. Splits are saved as CSV under ``split_dir`` when given. Returns a
    JSON-ready dict with ``meta``, ``summary`` (the headline table) and ``results``.
    """
    n = len(attributes)
    for cond in CONDITIONS:
        if len(features[cond]) != n:
            raise ValueError(f"{cond} features have {len(features[cond])} rows, labels {n}")
    results: dict[str, Any] = {}
    summary: dict[str, dict[str, float]] = {}
    split_sizes: dict[str, dict[str, int]] = {}
    for target in targets:
        split = make_split(strata(attributes, target), split_kind, seed=seed)
        split_sizes[target] = split.sizes()
        if split_dir is not None:
            save_split(split, Path(split_dir) / f"{split_kind}-{target}-seed{seed}.csv",
                       names or [str(i) for i in range(n)])
        y = target_values(attributes, target)
        results[target] = {}
        for train_cond in CONDITIONS:
            x = features[train_cond]
            model = fit_baseline(x[split.train], y[split.train], target, x[split.val],
                                 y[split.val], models=models)
            for test_cond in CONDITIONS:
                test = split.test
                start = time.perf_counter()
                pred = model.predict(features[test_cond][test])
                test_groups = breakdown_groups(attributes, test,
                                               styles if test_cond == "masked" else None)
                scores = evaluate(target, y[test], pred, test_groups)
                key = f"train_{train_cond}/test_{test_cond}"
                results[target][key] = {
                    "model": model.name, "val_scores": model.val_scores,
                    "fit_seconds": round(model.fit_seconds, 2),
                    "predict_seconds": round(time.perf_counter() - start, 3), **scores,
                }
                metric = "mae" if target == "age" else "accuracy"
                summary.setdefault(key, {})[target] = scores["overall"][metric]
                if target == "age":
                    summary[key]["age_rmse"] = scores["overall"]["rmse"]
    meta = {"split": split_kind, "seed": seed, "fractions": [0.7, 0.1, 0.2],
            "samples": n, "split_sizes": split_sizes, "targets": list(targets),
            "styles": style_counts(styles)}
    return {"meta": meta, "summary": summary, "results": results}


def breakdown_groups(
    attributes: Sequence[Mapping[str, Any]],
    rows: np.ndarray,
    styles: Sequence[str] | None = None,
) -> dict[str, tuple[np.ndarray, Sequence[str]]]:
    """The per-group breakdowns of test ``rows``: sex, race and (masked copy) mask style."""
    groups: dict[str, tuple[np.ndarray, Sequence[str]]] = {
        "sex": (target_values(attributes, "sex")[rows], GENDERS),
        "race": (target_values(attributes, "race")[rows], RACES),
    }
    if styles:
        names = sorted(set(styles))
        groups["style"] = (np.array([names.index(s) for s in styles])[rows], names)
    return groups


def style_counts(styles: Sequence[str] | None) -> dict[str, int]:
    """How many images got each mask style."""
    if styles is None:
        return {}
    counts = Counter(styles)
    return {s: counts[s] for s in sorted(counts)}
