"""The attribute targets: sex and race (classes), age (regression) and age groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskface.datasets.utkface import GENDERS, RACES

# (name, first age, last age); the last group is open-ended.
AGE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("baby", 0, 3),
    ("child", 4, 12),
    ("teenager", 13, 19),
    ("young", 20, 30),
    ("adult", 31, 45),
    ("middle-aged", 46, 60),
    ("senior", 61, 200),
)
_GROUP_STARTS = np.array([start for _, start, _ in AGE_GROUPS[1:]])


@dataclass(frozen=True)
class Target:
    """One prediction target: ``kind`` is ``"class"`` or ``"regression"``."""

    name: str
    kind: str
    classes: tuple[str, ...] = ()

    @property
    def is_classification(self) -> bool:
        return self.kind == "class"


TARGETS: dict[str, Target] = {
    "sex": Target("sex", "class", GENDERS),
    "race": Target("race", "class", RACES),
    "age": Target("age", "regression"),
    "age_group": Target("age_group", "class", tuple(name for name, _, _ in AGE_GROUPS)),
}


def get_target(name: str) -> Target:
    """The target called ``name`` (sex, race, age, age_group)."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}") from None


def age_group(ages: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """Age-group indices into :data:`AGE_GROUPS` for ages in years."""
    return np.searchsorted(_GROUP_STARTS, np.asarray(ages), side="right")


def target_values(attributes: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    """Labels of target ``name`` from UTKFace attribute dicts (int classes, float ages)."""
    get_target(name)
    if name == "sex":
        return np.array([a["gender"] for a in attributes], dtype=np.int64)
    ages = np.array([a["age"] for a in attributes], dtype=np.int64)
    if name == "race":
        return np.array([a["race"] for a in attributes], dtype=np.int64)
    if name == "age_group":
        return age_group(ages).astype(np.int64)
    return ages.astype(np.float64)
