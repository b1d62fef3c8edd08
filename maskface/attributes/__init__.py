"""Predicting sex, race and age from (masked) faces: how much does a mask hide?

    from maskface.attributes import TARGETS, make_split, fit_baseline
    split = make_split(labels, "uniform", target="race", seed=0)
    model = fit_baseline(features[split.train], y[split.train], "race",
                         features[split.val], y[split.val])

The fine-tuned CNN (dlib's face ResNet by default) lives in :mod:`maskface.attributes.finetune`
and trains on the same chips (:func:`maskface.attributes.features.cut_chips`).
Heavy dependencies (torch, timm, matplotlib) are imported only by the modules that need them.
"""

from __future__ import annotations

from maskface.attributes.baseline import BaselineModel, fit_baseline
from maskface.attributes.splits import Split, load_split, make_split, save_split
from maskface.attributes.targets import (
    AGE_GROUPS,
    TARGETS,
    Target,
    age_group,
    get_target,
    target_values,
)

__all__ = [
    "AGE_GROUPS",
    "TARGETS",
    "BaselineModel",
    "Split",
    "Target",
    "age_group",
    "fit_baseline",
    "get_target",
    "load_split",
    "make_split",
    "save_split",
    "target_values",
]
