"""Scores of one set of predictions: overall, confusion matrix, and per-group breakdowns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from maskface.attributes.targets import AGE_GROUPS, age_group, get_target


def _score(target: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    if get_target(target).is_classification:
        return {"accuracy": float(np.mean(y_true == y_pred)), "n": len(y_true)}
    err = y_pred - y_true
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
            "n": len(y_true)}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """Counts (classes, classes): row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true.astype(int), y_pred.astype(int)), 1)
    return matrix


def evaluate(
    target: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Mapping[str, tuple[np.ndarray, Sequence[str]]] | None = None,
) -> dict[str, Any]:
    """Overall score, confusion matrix (classes) and scores per group.

    ``groups`` maps a breakdown name (e.g. ``"race"``) to (per-row group index, group names).
    Age regression is also broken down by true age group. Empty groups are left out.
    """
    spec = get_target(target)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    result: dict[str, Any] = {"overall": _score(target, y_true, y_pred), "breakdown": {}}
    if spec.is_classification:
        result["confusion"] = confusion(y_true, y_pred, len(spec.classes)).tolist()
        result["classes"] = list(spec.classes)
    all_groups = dict(groups or {})
    if target == "age":
        all_groups["age_group"] = (age_group(y_true), [g for g, _, _ in AGE_GROUPS])
    for name, (index, labels) in all_groups.items():
        index = np.asarray(index)
        result["breakdown"][name] = {
            label: _score(target, y_true[index == k], y_pred[index == k])
            for k, label in enumerate(labels) if np.any(index == k)
        }
    return result
