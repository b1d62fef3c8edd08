"""Style registry: styles register by name and are created from names and keyword arguments."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

import numpy as np

from maskface.styles.style import MaskStyle

_REGISTRY: dict[str, type[MaskStyle]] = {}
_ALIASES = {"elastomeric": "respirator", "half_mask": "respirator"}
S = TypeVar("S", bound=type[MaskStyle])


def _parameters(cls: type[MaskStyle]) -> list[str]:
    return [f.name for f in fields(cls) if f.init]


def register_style(cls: S) -> S:
    """Class decorator adding a :class:`MaskStyle` subclass to the registry under its name."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a different style is already registered as {name!r}")
    _REGISTRY[name] = cls
    return cls


def list_styles() -> list[str]:
    """Names of every registered style, sorted."""
    return sorted(_REGISTRY)


def style_class(name: str) -> type[MaskStyle]:
    """The class registered under ``name`` (or one of its aliases)."""
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown mask style {name!r}; choose from {', '.join(list_styles())}")
    return _REGISTRY[key]


def create_style(name: str, **params: Any) -> MaskStyle:
    """A style by name, e.g. ``create_style("cloth", color="navy", pattern="dots")``."""
    cls = style_class(name)
    accepted = _parameters(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"style {cls.name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(accepted)}"
        )
    return cls(**params)


def style_from_params(params: dict[str, Any]) -> MaskStyle:
    """Rebuild the style recorded in a texture's ``params`` (extra recorded keys are ignored)."""
    if "style" not in params:
        raise ValueError("params do not name a style (no 'style' key)")
    cls = style_class(params["style"])
    return cls(**{k: params[k] for k in _parameters(cls) if k in params})


def random_style(name: str | None, rng: np.random.Generator) -> MaskStyle:
    """A plausible random look of style ``name``, or of a style picked by its weight if None."""
    if name is None:
        names = [n for n in list_styles() if _REGISTRY[n].weight > 0]
        weights = np.array([_REGISTRY[n].weight for n in names], dtype=np.float64)
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    cls = style_class(name)
    if cls.weight <= 0:
        raise ValueError(f"style {cls.name!r} cannot be drawn at random (it needs user files)")
    return cls.sample(rng)
