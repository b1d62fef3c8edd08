"""The pleated surgical (procedure) mask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from maskface.errors import InvalidInputError
from maskface.styles.base import FaceFrame, MaskTexture
from maskface.styles.outline import MaskSpace, bounding_box, fill_polygon, mask_space
from maskface.styles.profiles import ridge, step
from maskface.styles.registry import register_style
from maskface.styles.style import EarLoopStyle, strap
from maskface.styles.surface import Surface

HALF_WIDTH_CM = 8.0  # 17.5 cm wide flat; worn, the sides sit on the cheeks
HEM_CM = 0.5  # bound top and bottom edges
BINDING_CM = 0.8  # side binding tape
PLEAT_STEP_CM = 0.2  # relief lost at a crease, where a fold overlaps the panel under it
CREASES = (0.26, 0.74)  # first and last crease, as fractions of the mask's height
WIRE_HALF_CM = 5.0
WIRE_CM = 0.07  # how far the nose wire stands out
WELD_PITCH_CM = 0.18  # embossed weld dots along the bound edges
LOOP_WIDTH_CM = 0.3


@register_style
@dataclass(frozen=True, kw_only=True)
class SurgicalMask(EarLoopStyle):
    """Three-ply pleated mask: bound edges, side binding, nose wire and ear loops.

    ``pleats`` folds cross it; ``loop_color`` None means white loops (colour-matched on dark
    masks).
    """

    name: ClassVar[str] = "surgical"
    gloss: ClassVar[float] = 0.04
    weight: ClassVar[float] = 0.4
    color: str = "light blue"
    pleats: int = 3
    nose_wire: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.pleats, int | np.integer) or not 1 <= self.pleats <= 6:
            raise InvalidInputError(f"pleats must be an integer from 1 to 6, got {self.pleats!r}")
        object.__setattr__(self, "pleats", int(self.pleats))

    def render(self, frame: FaceFrame) -> MaskTexture:
        ppc, size = frame.px_per_cm, frame.size
        space = mask_space(frame, HALF_WIDTH_CM)
        hw = space.half_width
        across = np.linspace(-1.0, 1.0, 64)
        down = np.linspace(0.0, 1.0, 24)
        outline = np.concatenate([
            space.to_canvas(across, np.zeros_like(across)),
            space.to_canvas(np.ones_like(down), down),
            space.to_canvas(across[::-1], np.ones_like(across)),
            space.to_canvas(-np.ones_like(down), down[::-1]),
        ])
        alpha = fill_polygon(outline, size)
        g = space.grids(bounding_box(outline, size))
        s = Surface.over(g, self.albedo(frame))
        u, v, span = g.u, g.v, g.span

        from_top = v * span
        from_bottom = span - from_top
        from_side = (1.0 - np.abs(u)) * hw  # (1, w)
        hem, binding = HEM_CM * ppc, BINDING_CM * ppc
        side = step(from_side, binding)
        body = 1.0 - side

        # Pleats: the panel rises toward each crease, where the rounded edge of the fold drops
        # onto the panel below. They open up in front and bunch up toward the sides.
        depth = PLEAT_STEP_CM * ppc * (0.55 + 0.45 * u * u) * body
        creases = np.linspace(*CREASES, self.pleats).tolist() if self.pleats > 1 else [0.5]
        pitch = (CREASES[1] - CREASES[0]) / max(self.pleats - 1, 1)
        lip = 0.08 * ppc
        for c in creases:
            above = (c - v) * span  # px above the crease (negative below)
            rise = np.clip(1.0 - above / (0.85 * pitch * span), 0.0, 1.0)
            fold = rise * rise + 0.35 * ridge(above, lip, lip)
            s.height += depth * fold * step(-above, 0.0)
            s.shade -= 0.1 * body * ridge(above, -0.05 * ppc, 0.08 * ppc)

        # Bound edges: a folded strip, a little thicker, held by a line of weld dots.
        top, bottom = step(from_top, hem), step(from_bottom, hem)
        s.height += (0.04 * ppc) * np.maximum(np.maximum(top, bottom), side)
        weld_x = np.cos(g.xs * (2 * np.pi / (WELD_PITCH_CM * ppc))) ** 8
        weld_y = np.cos(g.ys * (2 * np.pi / (WELD_PITCH_CM * ppc))) ** 8
        thin = 0.06 * ppc
        weld = (ridge(from_top, 0.5 * hem, thin) + ridge(from_bottom, 0.5 * hem, thin)) * (
            weld_x * body
        ) + ridge(from_side, 0.5 * binding, thin) * weld_y
        # seam lines where the bindings meet the body
        seam = (ridge(from_top, hem, thin) + ridge(from_bottom, hem, thin)) * body
        seam += ridge(from_side, binding, thin)
        s.height -= (0.02 * ppc) * weld + (0.015 * ppc) * seam
        s.shade -= 0.06 * weld + 0.07 * seam

        if self.nose_wire:
            reach = np.abs(g.xs - space.cx) / min(WIRE_HALF_CM * ppc, 0.7 * hw)
            taper = np.clip((1.0 - reach) * 6.0, 0.0, 1.0)
            s.height += (WIRE_CM * ppc) * ridge(from_top, 0.5 * hem, 0.14 * ppc) * taper

        return self.finish(frame, alpha, s, "nonwoven", self._straps(space))

    def _straps(self, space: MaskSpace) -> list[dict]:
        ppc = space.frame.px_per_cm
        hem, binding = HEM_CM * ppc, BINDING_CM * ppc
        straps = []
        for sign, side_name in ((-1.0, "right"), (1.0, "left")):
            x = float(space.x(sign * (1.0 - 0.5 * binding / space.half_width)))
            for y in (space.top(x) + 0.5 * hem, space.bottom(x) - 0.5 * hem):
                anchor = np.array([x, float(y)])
                straps.append(strap(anchor, side_name, self.loops, LOOP_WIDTH_CM, "ear_loop"))
        return straps

    @classmethod
    def sample(cls, rng: np.random.Generator) -> SurgicalMask:
        colors = ["light blue", "white", "surgical green", "pink", "black", "blue",
                  "lavender", "yellow", "light grey"]
        odds = np.array([45, 17, 8, 7, 12, 4, 3, 2, 2], dtype=np.float64)
        color = colors[int(rng.choice(len(colors), p=odds / odds.sum()))]
        pattern = "solid"
        if rng.random() < 0.1:  # printed (children's and fashion) masks
            pattern = ["floral", "dots", "stripes", "checks", "camouflage"][int(rng.integers(5))]
        loop = "white" if rng.random() < 0.15 else None
        return cls(color=color, pattern=pattern, loop_color=loop)
