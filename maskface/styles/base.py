"""What a mask style draws on, and what it hands back to the renderers.

Every style draws in one *texture space*: a square canvas on which the frontal reference face is
laid out (the wearer's right ear on the left, as in a photo). The renderers know, for every point
of the face mesh, where it sits on that canvas, so anything drawn there lands on the same part of
every face. Styles must place their shapes only through the anchors of :class:`FaceFrame`, never
through hard-coded pixel positions: the anchors move with the wear style and the canvas size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WEAR_STYLES: tuple[str, ...] = ("correct", "under_nose", "chin")


@dataclass(frozen=True)
class FaceFrame:
    """Anchors of the reference face on the texture canvas, in canvas pixels (x right, y down).

    ``top_curve`` and ``bottom_curve`` both run from ``ear_right`` (canvas left) to ``ear_left``
    (canvas right): the upper edge of a well-fitted mask for the chosen wear style, and the
    lower edge under the chin. A style's outline should follow them (it may bulge, round or cut
    corners, but a mask that leaves them far behind no longer fits the face).
    """

    size: int
    wear: str
    ear_right: np.ndarray
    ear_left: np.ndarray
    nose_bridge: np.ndarray
    nose_tip: np.ndarray
    subnasal: np.ndarray
    mouth_right: np.ndarray
    mouth_left: np.ndarray
    mouth_center: np.ndarray
    chin: np.ndarray
    chin_under: np.ndarray
    top_curve: np.ndarray
    bottom_curve: np.ndarray
    px_per_cm: float

    @property
    def center_x(self) -> float:
        """Canvas x of the face's vertical midline."""
        return float(self.nose_tip[0])

    def mask_polygon(self) -> np.ndarray:
        """Closed outline of a mask that fits exactly between the top and bottom curves."""
        return np.concatenate([self.top_curve, self.bottom_curve[::-1][1:-1]], axis=0)


@dataclass
class MaskTexture:
    """A drawn mask.

    ``rgba`` is float32 (size, size, 4) in [0, 1], straight (not premultiplied) alpha, in sRGB.
    ``height`` is float32 (size, size), relief in canvas pixels (pleats, seams, valve): the
    renderers turn its gradient into shading. ``straps`` are the ear loops or head straps the
    renderer draws around the head: each a dict with ``anchor`` (canvas point on the mask
    edge), ``side`` ("right" or "left", the wearer's), ``color`` (RGB floats) and ``width_cm``.
    ``params`` records what was drawn (style, colour, pattern, ...), JSON-serialisable.
    """

    rgba: np.ndarray
    height: np.ndarray
    straps: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    # What renderers derive from the texture once (textures are cached and reused).
    derived: dict = field(default_factory=dict, repr=False, compare=False)
