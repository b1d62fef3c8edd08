"""The folded KN95 / FFP2 mask: two panels welded along the midline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from maskface.styles.base import FaceFrame, MaskTexture
from maskface.styles.colors import mix, to_rgb
from maskface.styles.outline import (
    MaskSpace,
    bounding_box,
    edge_distance,
    fill_circles,
    fill_polygon,
    mask_space,
    offset_inward,
    resample,
)
from maskface.styles.profiles import ramp, ridge, step
from maskface.styles.registry import register_style
from maskface.styles.style import EarLoopStyle, strap
from maskface.styles.surface import Surface

HALF_WIDTH_CM = 7.4
TOP_DROP, BOTTOM_RISE = 0.2, 0.16  # how far the side corners sit below the nose / above the chin
TENT_CM = 1.1  # the fold stands out from the face along the midline, for shading
SEAL_CM = 0.35  # dotted heat-seal line, this far inside the edge
DOT_PITCH_CM, DOT_CM = 0.22, 0.07
WIRE_HALF_CM = 3.8
PAD_CM = 0.55  # round weld pads where the loops attach
LOOP_WIDTH_CM = 0.3


def _outline(space: MaskSpace) -> np.ndarray:
    """Pointed at the nose bridge and chin, with slightly rounded side edges."""
    across = np.linspace(-1.0, 1.0, 81)
    a = np.abs(across)
    top = TOP_DROP * a**1.15
    bottom = 1.0 - BOTTOM_RISE * a**1.15
    down = np.linspace(TOP_DROP, 1.0 - BOTTOM_RISE, 24)[1:-1]
    bulge = 1.0 + 0.05 * np.sin(np.pi * (down - TOP_DROP) / (1.0 - TOP_DROP - BOTTOM_RISE))
    return np.concatenate([
        space.to_canvas(across, top),
        space.to_canvas(bulge, down),
        space.to_canvas(across[::-1], bottom[::-1]),
        space.to_canvas(-bulge[::-1], down[::-1]),
    ])


@register_style
@dataclass(frozen=True, kw_only=True)
class KN95Mask(EarLoopStyle):
    """Two welded panels folded along a vertical centre seam, dotted heat-seal edges, a nose
    wire, round weld pads and ear loops (``loop_color`` None: white, or matched on dark masks).
    """

    name: ClassVar[str] = "kn95"
    gloss: ClassVar[float] = 0.05
    weight: ClassVar[float] = 0.2
    color: str = "white"

    def render(self, frame: FaceFrame) -> MaskTexture:
        ppc, size = frame.px_per_cm, frame.size
        space = mask_space(frame, HALF_WIDTH_CM)
        outline = _outline(space)
        alpha = fill_polygon(outline, size)
        g = space.grids(bounding_box(outline, size))
        s = Surface.over(g, self.albedo(frame))
        x0, y0, x1, y1 = g.box
        edge = edge_distance(alpha[y0:y1, x0:x1])
        from_mid = np.abs(g.xs - space.cx)  # (1, w)

        # The two panels meet at a sharp fold and slope back toward the cheeks, and both
        # curl back onto the face at the top and bottom edges.
        fold = 1.0 - np.minimum(from_mid / space.half_width, 1.0)
        s.height += (TENT_CM * ppc) * fold**1.3 * ramp(edge, 0.0, 1.5 * ppc)
        # the welded seam itself: a narrow flat bead with a pressed line in the middle
        seam = 0.09 * ppc
        s.height += (0.05 * ppc) * step(from_mid, seam) - (0.03 * ppc) * ridge(from_mid, 0, seam)
        s.shade -= 0.06 * step(from_mid, seam)

        # Dotted heat-seal lines along the border and down the centre seam, on a pressed flange.
        seal = offset_inward(outline, SEAL_CM * ppc)
        mid_ys = np.arange(y0, y1, DOT_PITCH_CM * ppc)
        on_mask = alpha[np.clip(mid_ys.astype(int), 0, size - 1), round(space.cx)] > 0.5
        dots = np.concatenate([
            resample(seal, DOT_PITCH_CM * ppc, closed=True),
            np.column_stack([np.full_like(mid_ys, space.cx), mid_ys])[on_mask],
        ])
        welds = fill_circles(dots, max(DOT_CM * ppc, 0.6), size)[y0:y1, x0:x1]
        welds *= ramp(edge, 0.5 * SEAL_CM * ppc, SEAL_CM * ppc)  # none cut by the edge
        s.height -= (0.03 * ppc) * welds
        s.shade -= 0.12 * welds + 0.04 * step(edge, 0.6 * SEAL_CM * ppc)

        # Nose wire sealed in a channel along the top edge, over the bridge.
        from_top = (g.v - TOP_DROP * np.abs(g.u) ** 1.15) * g.span
        taper = np.clip((1.0 - from_mid / (WIRE_HALF_CM * ppc)) * 5.0, 0.0, 1.0)
        s.height += (0.06 * ppc) * ridge(from_top, 0.65 * ppc, 0.15 * ppc) * taper
        s.shade -= 0.05 * ridge(from_top, 0.9 * ppc, 0.04 * ppc) * taper

        pads, straps = self._pads_and_straps(space)
        pad_rgb = mix(to_rgb(self.color), np.zeros(3), 0.08)
        for centre in pads:
            w = s.window(centre, PAD_CM * ppc + 1, PAD_CM * ppc + 1)
            pad = step(np.hypot(w.grids.xs - centre[0], w.grids.ys - centre[1]), PAD_CM * ppc)
            w.paint(pad_rgb, 0.5 * pad)
            w.height -= (0.03 * ppc) * pad
        return self.finish(frame, alpha, s, "nonwoven", straps)

    def _pads_and_straps(self, space: MaskSpace) -> tuple[np.ndarray, list[dict]]:
        """Loop attachment points, just inside the four corners of the side edges."""
        ppc = space.frame.px_per_cm
        inset = 0.8 * ppc
        pads, straps = [], []
        for sign, side in ((-1.0, "right"), (1.0, "left")):
            x = float(space.x(sign)) - sign * inset
            top, bottom = float(space.top(x)), float(space.bottom(x))
            for v in (TOP_DROP + 0.06, 1.0 - BOTTOM_RISE - 0.06):
                anchor = np.array([x, top + v * (bottom - top)])
                pads.append(anchor)
                straps.append(strap(anchor, side, self.loops, LOOP_WIDTH_CM, "ear_loop"))
        return np.array(pads), straps

    @classmethod
    def sample(cls, rng: np.random.Generator) -> KN95Mask:
        colors = ["white", "black", "light grey", "light blue", "pink", "beige", "navy",
                  "purple", "grey"]
        odds = np.array([45, 20, 6, 7, 7, 5, 4, 3, 3], dtype=np.float64)
        color = colors[int(rng.choice(len(colors), p=odds / odds.sum()))]
        pattern = "solid"
        if rng.random() < 0.08:
            pattern = ["camouflage", "floral", "stripes", "dots"][int(rng.integers(4))]
        return cls(color=color, pattern=pattern)
