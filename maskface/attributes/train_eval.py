"""One attribute model, trained now and scored later: the library behind
``maskface attributes train`` and ``maskface attributes eval``.

    trained = train_attribute_model(utk, utk_masked, "race", "race.pkl", train_on="masked")
    result, paths = evaluate_attribute_model("race.pkl", utk, utk_masked, "race-report/")

The model file records its target, training condition, seed, subset and split CSV, so the
evaluation scores exactly the test part of the split the model was picked on, for the
unmasked and the masked copy. :func:`fit_attribute_model` and :func:`score_attribute_model`
do the same on embeddings already in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskface.attributes.baseline import BaselineModel, fit_baseline
from maskface.attributes.metrics import evaluate
from maskface.attributes.splits import Split, make_split, save_split
from maskface.attributes.study import CONDITIONS, breakdown_groups, strata
from maskface.attributes.targets import TARGETS, target_values
from maskface.errors import InvalidInputError

# The split's train / validation / test fractions (as in the study).
FRACTIONS = (0.7, 0.1, 0.2)


@dataclass
class TrainedAttributeModel:
    """A fitted model, what it was trained on (``meta``), its file and its split's CSV."""

    model: BaselineModel
    meta: dict[str, Any]
    path: Path
    split_csv: Path


def _check(target: str, train_on: str) -> None:
    if target not in TARGETS:
        raise InvalidInputError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if train_on not in CONDITIONS:
        raise InvalidInputError(f"train_on must be one of {', '.join(CONDITIONS)}, "
                                f"not {train_on!r}")


def fit_attribute_model(
    features: Mapping[str, np.ndarray],
    attributes: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    target: str,
    split_csv: str | os.PathLike[str],
    *,
    train_on: str = "masked",
    split_kind: str = "uniform",
    seed: int = 0,
    models: list[str] | None = None,
) -> tuple[BaselineModel, Split]:
    """Split the rows (seeded; ``uniform`` stratifies on the target), save the split to
    ``split_csv`` and fit the baseline on the ``train_on`` embeddings of its train part,
    picking the model on its validation part."""
    _check(target, train_on)
    split = make_split(strata(attributes, target), split_kind, seed=seed)
    save_split(split, split_csv, list(names))
    y, x = target_values(attributes, target), features[train_on]
    model = fit_baseline(x[split.train], y[split.train], target, x[split.val], y[split.val],
                         models=models)
    return model, split


def score_attribute_model(
    model: BaselineModel,
    meta: Mapping[str, Any],
    features: Mapping[str, np.ndarray],
    attributes: Sequence[Mapping[str, Any]],
    split: Split,
    styles: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on the test part of ``split``, unmasked and masked; a report dict
    (``meta``, ``summary``, ``results``) for :func:`maskface.attributes.report.write_report`.
    ``styles`` (the mask style of each row) adds a per-style breakdown of the masked copy."""
    target, test = meta["target"], split.test
    y = target_values(attributes, target)[test]
    results = {}
    for cond in CONDITIONS:
        groups = breakdown_groups(attributes, test, styles if cond == "masked" else None)
        scores = evaluate(target, y, model.predict(features[cond][test]), groups)
        results[f"train_{meta['train_on']}/test_{cond}"] = {"model": model.name, **scores}
    return {"meta": {**meta, "targets": [target], "samples": len(attributes),
                     "fractions": list(FRACTIONS)},
            "summary": {k: v["overall"] for k, v in results.items()},
            "results": {target: results}}


def train_attribute_model(
    data: str | os.PathLike[str],
    masked: str | os.PathLike[str],
    target: str,
    out: str | os.PathLike[str],
    *,
    train_on: str = "masked",
    split_kind: str = "uniform",
    seed: int = 0,
    limit: int | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> TrainedAttributeModel:
    """Fit the embedding baseline for ``target`` on UTKFace at ``data`` and its masked copy,
    and write the model to ``out`` (a pickle) with its split beside it (``.split.csv``).

    ``limit`` uses a seeded random subset; embeddings are cached in ``cache`` (default: a
    ``cache`` folder beside ``out``).
    """
    from maskface.attributes.pipeline import pair_features, save_model

    _check(target, train_on)
    out = Path(out)
    pairs, features, info = pair_features(data, masked, cache or out.parent / "cache",
                                          limit=limit, seed=seed, progress=progress)
    names = [p.name for p in pairs.unmasked]
    split_csv = out.with_suffix(".split.csv")
    model, _ = fit_attribute_model(features, pairs.attributes, names, target, split_csv,
                                   train_on=train_on, split_kind=split_kind, seed=seed)
    meta = {"target": target, "train_on": train_on, "split": split_kind, "seed": seed,
            "limit": limit, "split_csv": str(split_csv), **info}
    save_model(model, out, meta)
    return TrainedAttributeModel(model, meta, out, split_csv)


def evaluate_attribute_model(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    masked: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Score a model written by :func:`train_attribute_model` on the test part of its split,
    unmasked and masked, and write the report (JSON, HTML, confusion PNGs) into ``out``.

    Returns the report dict and the written paths. Raises
    :class:`~maskface.errors.InvalidInputError` when the data are not the images the
    model's split lists.
    """
    from maskface.attributes.pipeline import load_model, pair_features
    from maskface.attributes.report import write_report
    from maskface.attributes.splits import load_split

    model_path = Path(model_path)
    model, meta = load_model(model_path)
    pairs, features, info = pair_features(data, masked, cache or model_path.parent / "cache",
                                          limit=meta["limit"], seed=meta["seed"],
                                          progress=progress)
    split, names = load_split(meta["split_csv"])
    if names != [p.name for p in pairs.unmasked]:
        raise InvalidInputError(
            f"the images of {data} and {masked} are not those the model's split "
            f"{meta['split_csv']} lists; evaluate on the data the model was trained on")
    result = score_attribute_model(model, {**meta, **info}, features, pairs.attributes, split,
                                   pairs.styles)
    return result, write_report(result, out)
