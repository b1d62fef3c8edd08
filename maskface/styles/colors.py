"""Mask colours: named colours and hex codes, normalised to ``#rrggbb``, and small colour maths.

The named values are typical of real masks (surgical light blue is greener and paler than the
web colour of that name), so a style drawn "light blue" looks like the object people know.
"""

from __future__ import annotations

import re

import numpy as np

from maskface.errors import InvalidInputError

NAMED_COLORS: dict[str, str] = {
    "white": "#f2f3f1",
    "black": "#1c1d20",
    "light blue": "#9cc9dd",
    "blue": "#2f6db3",
    "navy": "#1f2a48",
    "green": "#5aa37c",
    "surgical green": "#7cb9a8",
    "olive": "#5e6437",
    "teal": "#2a8c8c",
    "pink": "#f0a8bf",
    "magenta": "#c2417d",
    "red": "#c0302e",
    "orange": "#e37b2a",
    "yellow": "#edc94a",
    "purple": "#6c4a9a",
    "lavender": "#b9a8d8",
    "grey": "#8c8f93",
    "light grey": "#c9cbcd",
    "dark grey": "#46494d",
    "beige": "#d8c6a6",
    "brown": "#7a5236",
    "khaki": "#a79b6e",
}
_ALIASES = {"gray": "grey", "light gray": "light grey", "dark gray": "dark grey"}
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def parse_color(value: str) -> str:
    """Normalise a colour name or ``#RGB``/``#RRGGBB`` code to lower-case ``#rrggbb``."""
    if not isinstance(value, str):
        raise InvalidInputError(f"colour must be a name or a hex string, got {value!r}")
    key = " ".join(value.strip().lower().replace("_", " ").replace("-", " ").split())
    key = _ALIASES.get(key, key)
    if key in NAMED_COLORS:
        return NAMED_COLORS[key]
    if _HEX.fullmatch(key):
        digits = key[1:] if len(key) == 7 else "".join(c * 2 for c in key[1:])
        return "#" + digits
    raise InvalidInputError(
        f"unknown colour {value!r}: use #RRGGBB, #RGB or one of {', '.join(NAMED_COLORS)}"
    )


def to_rgb(value: str) -> np.ndarray:
    """A colour (name or hex) as float32 sRGB in [0, 1], shape (3,)."""
    code = parse_color(value)
    return np.array([int(code[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float32) / 255.0


def to_hex(rgb: np.ndarray) -> str:
    """Float sRGB in [0, 1] to ``#rrggbb``."""
    values = np.clip(np.round(np.asarray(rgb, dtype=np.float64) * 255.0), 0, 255).astype(int)
    return "#" + "".join(f"{v:02x}" for v in values)


def luminance(rgb: np.ndarray) -> float:
    """Rough perceived lightness of an sRGB colour (0 black, 1 white)."""
    return float(np.asarray(rgb, dtype=np.float32) @ _LUMA)


def mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Linear blend from ``a`` (t = 0) to ``b`` (t = 1)."""
    return (np.asarray(a, np.float32) * (1.0 - t) + np.asarray(b, np.float32) * t).astype(
        np.float32
    )


def contrast_color(rgb: np.ndarray) -> np.ndarray:
    """A second colour that reads against ``rgb``: near-white on dark, a deep shade on light."""
    if luminance(rgb) < 0.45:
        return to_rgb("white")
    return mix(rgb, np.zeros(3), 0.55)
