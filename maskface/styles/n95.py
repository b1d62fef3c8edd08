"""The moulded cup respirator (N95, FFP2 cup), optionally with an exhalation valve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from maskface.errors import InvalidInputError
from maskface.styles.base import FaceFrame, MaskTexture
from maskface.styles.colors import luminance, parse_color, to_rgb
from maskface.styles.outline import (
    MaskSpace,
    bounding_box,
    edge_distance,
    fill_polygon,
    mask_space,
)
from maskface.styles.profiles import box_distance, disc_distance, ramp, ridge, step
from maskface.styles.registry import register_style
from maskface.styles.style import FabricStyle, strap
from maskface.styles.surface import Surface

HALF_WIDTH_CM = 6.4
DOME_CM = 1.4  # how far the cup's apex stands off the face, for shading
RIM_CM = 0.45  # pressed flange round the edge
POWER_TOP, POWER_BOTTOM = 2.2, 2.7  # superellipse exponents: rounder over the nose
APEX_V = (0.36, 0.55)  # the cup's widest point, as a fraction of its height, is kept here
VALVE_RADIUS_CM = 1.7
VALVE_CM = 0.8  # valve height above the cup
CLIP_HALF_CM, CLIP_CM = 3.0, 0.55  # nose clip half-length and height
STRAP_WIDTH_CM = 0.5
VALVE_SHAPES = ("round", "square")
_METAL = np.array([0.74, 0.76, 0.78], dtype=np.float32)


def _cup_edges(u: np.ndarray, apex: float) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom of the cup outline (in v) over mask coordinate u."""
    a = np.abs(np.clip(u, -1.0, 1.0))
    top = apex * (1.0 - (1.0 - a**POWER_TOP) ** (1.0 / POWER_TOP))
    bottom = apex + (1.0 - apex) * (1.0 - a**POWER_BOTTOM) ** (1.0 / POWER_BOTTOM)
    return top, bottom


@register_style
@dataclass(frozen=True, kw_only=True)
class N95Mask(FabricStyle):
    """A dome-shaped cup with a pressed rim, a metal nose clip and two head straps.

    ``valve`` adds an exhalation valve in front of the mouth (``valve_shape`` "round" or
    "square"); ``valve_color`` None picks off-white on light masks and dark grey otherwise.
    """

    name: ClassVar[str] = "n95"
    gloss: ClassVar[float] = 0.05
    weight: ClassVar[float] = 0.15
    patterns: ClassVar[tuple[str, ...]] = ("solid", "noise", "camouflage")
    color: str = "white"
    valve: bool = False
    valve_shape: str = "round"
    valve_color: str | None = None
    strap_color: str = "white"
    nose_clip: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.valve_shape not in VALVE_SHAPES:
            raise InvalidInputError(
                f"unknown valve_shape {self.valve_shape!r}; choose from {', '.join(VALVE_SHAPES)}"
            )
        if self.valve_color is not None:
            object.__setattr__(self, "valve_color", parse_color(self.valve_color))
        object.__setattr__(self, "strap_color", parse_color(self.strap_color))

    @property
    def valve_hex(self) -> str:
        if self.valve_color is not None:
            return self.valve_color
        light = luminance(to_rgb(self.color)) > 0.6
        return parse_color("#e4e6e8" if light else "dark grey")

    def params(self) -> dict:
        return {**super().params(), "valve_color": self.valve_hex}

    def render(self, frame: FaceFrame) -> MaskTexture:
        ppc, size = frame.px_per_cm, frame.size
        space = mask_space(frame, HALF_WIDTH_CM)
        apex = self._apex(space)
        t = np.linspace(0.0, np.pi, 64)
        across = -np.cos(t)  # denser toward the sides, where the outline turns
        top, bottom = _cup_edges(across, apex)
        outline = np.concatenate([
            space.to_canvas(across, top), space.to_canvas(across[::-1], bottom[::-1])
        ])
        alpha = fill_polygon(outline, size)
        g = space.grids(bounding_box(outline, size))
        s = Surface.over(g, self.albedo(frame))

        # Dome: a superellipsoid over the outline, highest at the apex.
        above = g.v < apex
        vv = np.where(above, (apex - g.v) / apex, (g.v - apex) / (1.0 - apex))
        au = np.abs(g.u)
        r = np.where(
            above,
            (au**POWER_TOP + vv**POWER_TOP) ** (1.0 / POWER_TOP),
            (au**POWER_BOTTOM + vv**POWER_BOTTOM) ** (1.0 / POWER_BOTTOM),
        )
        inside = np.clip(1.0 - r * r, 0.0, 1.0)
        s.height += (DOME_CM * ppc) * inside ** np.float32(0.6)

        # Rim: a flat pressed flange, ending in a weld line with a slight bead.
        x0, y0, x1, y1 = g.box
        edge = edge_distance(alpha[y0:y1, x0:x1])
        rim = RIM_CM * ppc
        s.height *= ramp(edge, 0.6 * rim, 1.6 * rim)
        s.height += (0.05 * ppc) * ridge(edge, rim, 0.1 * ppc)
        s.shade -= 0.05 * step(edge, rim) + 0.1 * ridge(edge, rim, 0.05 * ppc)

        if self.nose_clip:
            self._nose_clip(space, s, apex)
        if self.valve:
            self._valve(space, s, apex)
        return self.finish(frame, alpha, s, "nonwoven", self._straps(space, s, apex))

    def _apex(self, space: MaskSpace) -> float:
        """The cup's widest point: between the nose tip and the mouth, within APEX_V."""
        frame = space.frame
        cx = space.cx
        top, bottom = float(space.top(cx)), float(space.bottom(cx))
        mid = 0.5 * (frame.subnasal[1] + frame.mouth_center[1])
        return float(np.clip((mid - top) / max(bottom - top, 1.0), *APEX_V))

    def _nose_clip(self, space: MaskSpace, surface: Surface, apex: float) -> None:
        """An aluminium strip following the cup's upper edge over the bridge."""
        ppc = space.frame.px_per_cm
        half = min(CLIP_HALF_CM * ppc, 0.45 * space.half_width)
        top = float(space.top(space.cx))
        s = surface.window(np.array([space.cx, top + 1.5 * ppc]), half, 2.0 * ppc)
        g = s.grids
        below_top = (g.v - _cup_edges(g.u, apex)[0]) * g.span  # px under the outline's top
        band = step(np.abs(below_top - 0.6 * ppc), 0.5 * CLIP_CM * ppc)
        strip = band * step(np.abs(g.xs - space.cx), half)
        s.paint(_METAL, strip)
        s.shade += 0.08 * strip * ramp(below_top, 0.9 * ppc, 0.3 * ppc)  # brushed-metal sheen
        s.height += (0.05 * ppc) * strip

    def _valve(self, space: MaskSpace, surface: Surface, apex: float) -> None:
        """An exhalation valve in front of the mouth: raised body, ring and grille."""
        ppc = space.frame.px_per_cm
        cx = space.cx
        top, bottom = float(space.top(cx)), float(space.bottom(cx))
        centre = np.array([cx, top + min(apex + 0.18, 0.7) * (bottom - top)])
        radius = min(VALVE_RADIUS_CM * ppc, 0.2 * (bottom - top))
        s = surface.window(centre, radius + 2, radius + 2)
        dx, dy = s.grids.xs - centre[0], s.grids.ys - centre[1]
        if self.valve_shape == "round":
            d = disc_distance(dx, dy, radius)
        else:
            d = box_distance(dx, dy, radius, 0.85 * radius, 0.3 * radius)
        raised = np.clip(-d / (0.2 * radius), 0.0, 1.0)
        s.height += (VALVE_CM * ppc) * np.sqrt(raised)
        s.height += (0.12 * ppc) * ridge(d, -0.1 * radius, 0.1 * radius)
        s.paint(to_rgb(self.valve_hex), step(d, 0.0))
        if self.valve_shape == "round":
            radial = np.sqrt(dx * dx + dy * dy)
            slots = np.cos(np.arctan2(dy, dx) * 10.0) > 0.2
            grille = slots * step(np.abs(radial - 0.47 * radius), 0.22 * radius)
        else:
            slots = np.cos(dy * (2 * np.pi / (0.22 * radius))) > 0.1
            grille = slots * step(np.abs(dx), 0.62 * radius) * step(np.abs(dy), 0.55 * radius)
        s.height -= (0.15 * ppc) * grille
        s.shade -= 0.55 * grille + 0.1 * ridge(d, 0.0, 0.06 * radius)

    def _straps(self, space: MaskSpace, surface: Surface, apex: float) -> list[dict]:
        """Two head straps each side, stapled to the cup above and below its widest point."""
        ppc = space.frame.px_per_cm
        inset = RIM_CM * ppc
        straps = []
        for kind, v in (("head_upper", 0.5 * apex), ("head_lower", apex + 0.2)):
            vv = (apex - v) / apex if v < apex else (v - apex) / (1.0 - apex)
            power = POWER_TOP if v < apex else POWER_BOTTOM
            reach = (1.0 - vv**power) ** (1.0 / power)
            for sign, side in ((-1.0, "right"), (1.0, "left")):
                x = float(space.x(sign * reach)) - sign * inset
                y = float(space.top(x) + v * (space.bottom(x) - space.top(x)))
                s = surface.window(np.array([x, y]), 0.2 * ppc, 0.4 * ppc)
                staple = step(np.abs(s.grids.xs - x), 0.12 * ppc)
                staple = staple * step(np.abs(s.grids.ys - y), 0.3 * ppc)
                s.paint(_METAL, staple)
                s.height += (0.03 * ppc) * staple
                straps.append(strap(np.array([x, y]), side, self.strap_color, STRAP_WIDTH_CM,
                                    kind))
        return straps

    @classmethod
    def sample(cls, rng: np.random.Generator) -> N95Mask:
        colors = ["white", "light grey", "light blue", "black", "beige"]
        odds = np.array([80, 6, 5, 6, 3], dtype=np.float64)
        color = colors[int(rng.choice(len(colors), p=odds / odds.sum()))]
        pattern = "solid" if rng.random() < 0.95 else "camouflage"
        valve = bool(rng.random() < 0.35)
        shape = VALVE_SHAPES[int(rng.integers(2))]
        straps = ["white", "yellow", "orange", "light blue", "green"]
        strap_color = straps[int(rng.integers(len(straps)))]
        return cls(color=color, pattern=pattern, valve=valve, valve_shape=shape,
                   strap_color=strap_color)
