"""The mask style catalogue: procedural masks drawn on the texture canvas.

Styles register by name (``list_styles()``) and are built with ``create_style(name, **params)``
or drawn at random with ``random_style(name, rng)``; ``style.draw(frame, rng)`` returns a
:class:`~maskface.styles.base.MaskTexture`. New styles subclass :class:`MaskStyle` (or
:class:`FabricStyle` for coloured, patterned textiles) and use the ``register_style``
decorator.
"""

from maskface.styles.cloth import ClothMask
from maskface.styles.colors import NAMED_COLORS, parse_color
from maskface.styles.custom import CustomMask
from maskface.styles.kn95 import KN95Mask
from maskface.styles.n95 import N95Mask
from maskface.styles.patterns import PATTERNS
from maskface.styles.registry import (
    create_style,
    list_styles,
    random_style,
    register_style,
    style_from_params,
)
from maskface.styles.respirator import Respirator
from maskface.styles.style import TEXTURE_VARIANTS, FabricStyle, MaskStyle, clear_cache
from maskface.styles.surgical import SurgicalMask

__all__ = [
    "NAMED_COLORS",
    "PATTERNS",
    "TEXTURE_VARIANTS",
    "ClothMask",
    "CustomMask",
    "FabricStyle",
    "KN95Mask",
    "MaskStyle",
    "N95Mask",
    "Respirator",
    "SurgicalMask",
    "clear_cache",
    "create_style",
    "list_styles",
    "parse_color",
    "random_style",
    "register_style",
    "style_from_params",
]
