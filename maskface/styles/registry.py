"""Style registry: styles register by name and are created from names and keyword arguments."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

import numpy as np

from maskface.errors import InvalidInputError
from maskface.registry import Registry
from maskface.styles.style import MaskStyle

STYLES: Registry[type[MaskStyle]] = Registry("mask style")
STYLES.alias("elastomeric", "respirator")
STYLES.alias("half_mask", "respirator")
S = TypeVar("S", bound=type[MaskStyle])


def _parameters(cls: type[MaskStyle]) -> list[str]:
    return [f.name for f in fields(cls) if f.init]


def register_style(cls: S) -> S:
    """Class decorator adding a :class:`MaskStyle` subclass to the registry under its name."""
    return STYLES.register(cls.name, cls)


def list_styles(pattern: str | None = None) -> list[str]:
    """Names of the registered styles, sorted; all, or those matching ``pattern`` (``"*95"``)."""
    return STYLES.list(pattern)


def style_class(name: str) -> type[MaskStyle]:
    """The class registered under ``name`` (or one of its aliases)."""
    return STYLES[name]


def create_style(name: str, **params: Any) -> MaskStyle:
    """A style by name, e.g. ``create_style("cloth", color="navy", pattern="dots")``."""
    cls = style_class(name)
    accepted = _parameters(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InvalidInputError(
            f"style {cls.name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(accepted)}"
        )
    return cls(**params)


def style_from_params(params: dict[str, Any]) -> MaskStyle:
    """Rebuild the style recorded in a texture's ``params`` (extra recorded keys are ignored)."""
    if "style" not in params:
        raise InvalidInputError("params do not name a style (no 'style' key)")
    cls = style_class(params["style"])
    return cls(**{k: params[k] for k in _parameters(cls) if k in params})


def random_style(name: str | None, rng: np.random.Generator) -> MaskStyle:
    """A plausible random look of style ``name``, or of a style picked by its weight if None."""
    if name is None:
        names = [n for n in list_styles() if STYLES[n].weight > 0]
        weights = np.array([STYLES[n].weight for n in names], dtype=np.float64)
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    cls = style_class(name)
    if cls.weight <= 0:
        raise InvalidInputError(
            f"style {cls.name!r} cannot be drawn at random (it needs user files)")
    return cls.sample(rng)
