"""The elastomeric half-mask respirator: a rubber face piece, two filter cartridges and a
central exhalation valve, held by a head harness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from maskface.styles.base import FaceFrame, MaskTexture
from maskface.styles.colors import luminance, mix, parse_color, to_hex, to_rgb
from maskface.styles.outline import (
    MaskSpace,
    bounding_box,
    edge_distance,
    fill_circles,
    fill_polygon,
    mask_space,
)
from maskface.styles.paint import flat
from maskface.styles.profiles import box_distance, disc_distance, ramp, ridge, step
from maskface.styles.registry import register_style
from maskface.styles.style import MaskStyle, strap
from maskface.styles.surface import Surface

HALF_WIDTH_CM = 6.2
NOSE_WIDTH = 0.3  # face piece half-width at the nose bridge, as a fraction of the widest
WIDEST_V = 0.6
TOP_V = 0.1  # the rounded cap over the bridge takes this much of the height
DOME_CM = 1.4
SEAL_CM = 0.75  # soft sealing flange round the edge
CARTRIDGE_U, CARTRIDGE_V = 0.86, 0.57
CARTRIDGE_RADIUS_CM, CARTRIDGE_CM = 2.6, 2.0  # radius; how far they stand out
VALVE_V, VALVE_HALF_CM = 0.76, (1.5, 1.25)
VALVE_CM = 1.0
STRAP_WIDTH_CM = 1.2
_BLACK = np.zeros(3, dtype=np.float32)


def _half_width(v: np.ndarray) -> np.ndarray:
    """Face piece half-width (in u) at height v: narrow over the nose, round under the chin."""
    v = np.clip(v, 0.0, 1.0)
    upper = NOSE_WIDTH + (1.0 - NOSE_WIDTH) * np.sin(0.5 * np.pi * np.minimum(v / WIDEST_V, 1.0))
    lower = np.sqrt(np.clip(1.0 - ((v - WIDEST_V) / (1.0 - WIDEST_V)) ** 2, 0.0, 1.0))
    return np.where(v < WIDEST_V, upper, lower)


def _outline(space: MaskSpace) -> np.ndarray:
    """Rounded over the bridge, widest at the cheeks, round under the chin."""
    down = TOP_V + (1.0 - TOP_V) * (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, 60)))
    side = _half_width(down)
    phi = np.linspace(-0.5 * np.pi, 0.5 * np.pi, 17)[1:-1]
    cap_u = float(_half_width(np.array(TOP_V))) * np.sin(phi)
    cap_v = TOP_V * (1.0 - np.cos(phi))  # an elliptical cap joining both sides smoothly
    return np.concatenate([
        space.to_canvas(cap_u, cap_v),
        space.to_canvas(side, down),
        space.to_canvas(-side[::-1], down[::-1]),
    ])


@register_style
@dataclass(frozen=True, kw_only=True)
class Respirator(MaskStyle):
    """Reusable half mask: ``color`` is the rubber, ``cartridge_color`` the filters (magenta
    P100 pads, black or olive gas cartridges, ...), ``valve_color`` None follows the rubber.
    """

    name: ClassVar[str] = "respirator"
    gloss: ClassVar[float] = 0.35  # moulded rubber and plastic shine
    weight: ClassVar[float] = 0.05
    color: str = "dark grey"
    cartridge_color: str = "magenta"
    valve_color: str | None = None
    strap_color: str = "dark grey"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("color", "cartridge_color", "strap_color"):
            object.__setattr__(self, name, parse_color(getattr(self, name)))
        if self.valve_color is not None:
            object.__setattr__(self, "valve_color", parse_color(self.valve_color))

    @property
    def valve_hex(self) -> str:
        """The valve cover's colour: given, or a shade of the rubber."""
        if self.valve_color is not None:
            return self.valve_color
        rubber = to_rgb(self.color)
        toward = np.ones(3) if luminance(rubber) < 0.25 else _BLACK
        return to_hex(mix(rubber, toward, 0.2))

    def params(self) -> dict:
        return {**super().params(), "valve_color": self.valve_hex}

    def render(self, frame: FaceFrame) -> MaskTexture:
        ppc, size = frame.px_per_cm, frame.size
        space = mask_space(frame, HALF_WIDTH_CM)
        outline = _outline(space)
        piece = fill_polygon(outline, size)
        centres, radius = self._cartridges(space)
        alpha = np.maximum(piece, fill_circles(centres, radius, size))
        g = space.grids(bounding_box(np.concatenate([outline, centres - radius,
                                                     centres + radius]), size))
        rubber = to_rgb(self.color)
        s = Surface.over(g, flat(rubber, (size, size)))
        x0, y0, x1, y1 = g.box

        # Face piece: a moulded dome, a soft sealing flange and the rigid frame's rim.
        r2 = (g.u / _half_width(g.v)) ** 2 + ((g.v - 0.5) / 0.5) ** 2
        edge = edge_distance(piece[y0:y1, x0:x1])
        seal = SEAL_CM * ppc
        dome = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)) * ramp(edge, 0, 2 * seal)
        s.height += (DOME_CM * ppc) * dome + (0.15 * ppc) * ridge(edge, seal, 0.25 * ppc)
        toward = np.ones(3) if luminance(rubber) < 0.4 else _BLACK
        s.paint(mix(rubber, toward, 0.15), step(edge, seal) * piece[y0:y1, x0:x1])
        s.shade -= 0.15 * ridge(edge, seal - 0.1 * ppc, 0.06 * ppc)
        # moulded ridge over the nose
        from_mid = np.abs(g.xs - space.cx)
        s.height += (0.2 * ppc) * ridge(from_mid, 0.0, 0.5 * ppc) * ramp(g.v, 0.45, 0.15)

        self._valve(space, s)
        for centre in centres:
            self._cartridge(space, s.window(centre, radius + 2, radius + 2), centre, radius)
        return self.finish(frame, alpha, s, "rubber", self._harness(space, s))

    def _cartridges(self, space: MaskSpace) -> tuple[np.ndarray, float]:
        """Centres (2, 2) and radius (px) of the filters on the cheeks, sized to fit the band."""
        ppc = space.frame.px_per_cm
        centres = space.to_canvas(np.array([-CARTRIDGE_U, CARTRIDGE_U]), np.full(2, CARTRIDGE_V))
        x = centres[:, 0]
        span = float(np.min(space.bottom(x) - space.top(x)))
        return centres, min(CARTRIDGE_RADIUS_CM * ppc, 0.36 * span)

    def _cartridge(self, space: MaskSpace, s: Surface, centre: np.ndarray, radius: float) -> None:
        """A cylinder standing out of the face piece: knurled rim, perforated filter cover."""
        ppc = space.frame.px_per_cm
        g = s.grids
        dx, dy = g.xs - centre[0], g.ys - centre[1]
        d = disc_distance(dx, dy, radius)
        body = step(d, 0.0)
        s.height *= 1.0 - body  # it replaces the rubber under it
        s.height += (CARTRIDGE_CM * ppc) * np.sqrt(np.clip(-d / (0.12 * radius), 0.0, 1.0))
        rim = step(np.abs(d + 0.1 * radius), 0.1 * radius)
        ribs = np.cos(np.arctan2(dy, dx) * 36.0)
        s.height += (0.15 * ppc) * rim * (1.0 + 0.3 * ribs)
        filt = to_rgb(self.cartridge_color)
        s.paint(mix(filt, _BLACK, 0.45), body)
        pad = step(d, -0.2 * radius)
        s.paint(filt, pad)
        # perforated cover over the filter pad, with a plain label in the middle
        pitch = 0.32 * ppc
        holes = (np.cos(g.xs * (2 * np.pi / pitch)) * np.cos(g.ys * (2 * np.pi / pitch))) > 0.75
        holes = holes * pad * (1.0 - step(d, -0.62 * radius))
        s.shade -= 0.35 * holes + 0.25 * ridge(d, 0.0, 0.08 * radius)
        s.height -= (0.05 * ppc) * holes

    def _valve(self, space: MaskSpace, surface: Surface) -> None:
        """Exhalation valve cover in front of the mouth: a raised box with outlet slots."""
        ppc = space.frame.px_per_cm
        cx = space.cx
        top, bottom = float(space.top(cx)), float(space.bottom(cx))
        centre = np.array([cx, top + VALVE_V * (bottom - top)])
        half_w = min(VALVE_HALF_CM[0] * ppc, 0.25 * space.half_width)
        half_h = min(VALVE_HALF_CM[1] * ppc, 0.16 * (bottom - top))
        s = surface.window(centre, half_w + 2, half_h + 2)
        dx, dy = s.grids.xs - centre[0], s.grids.ys - centre[1]
        d = box_distance(dx, dy, half_w, half_h, 0.45 * min(half_w, half_h))
        s.height += (VALVE_CM * ppc) * np.sqrt(np.clip(-d / (0.3 * half_h), 0.0, 1.0))
        s.paint(to_rgb(self.valve_hex), step(d, 0.0))
        slots = (np.cos(dy * (2 * np.pi / (0.3 * half_h))) > 0.2) * step(np.abs(dx), 0.7 * half_w)
        slots = slots * step(np.abs(dy - 0.2 * half_h), 0.5 * half_h)
        s.shade -= 0.5 * slots + 0.2 * ridge(d, 0.0, 0.1 * half_h)
        s.height -= (0.1 * ppc) * slots

    def _harness(self, space: MaskSpace, surface: Surface) -> list[dict]:
        """Upper straps over the crown, lower ones round the neck, on small buckles."""
        ppc = space.frame.px_per_cm
        buckle_rgb = mix(to_rgb(self.color), _BLACK, 0.5)
        straps = []
        for kind, v in (("head_upper", 0.18), ("head_lower", 0.88)):
            reach = float(_half_width(np.array(v))) - 0.5 * SEAL_CM * ppc / space.half_width
            for sign, side in ((-1.0, "right"), (1.0, "left")):
                anchor = space.to_canvas(np.array([sign * reach]), np.array([v]))[0]
                s = surface.window(anchor, 0.5 * ppc, 0.35 * ppc)
                d = box_distance(s.grids.xs - anchor[0], s.grids.ys - anchor[1], 0.45 * ppc,
                                 0.3 * ppc, 0.1 * ppc)
                buckle = step(d, 0.0)
                s.paint(buckle_rgb, buckle)
                s.height += (0.12 * ppc) * buckle
                straps.append(strap(anchor, side, self.strap_color, STRAP_WIDTH_CM, kind))
        return straps

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Respirator:
        def pick(options: list[str], odds: list[float]) -> str:
            p = np.array(odds, dtype=np.float64)
            return options[int(rng.choice(len(options), p=p / p.sum()))]

        color = pick(["dark grey", "black", "grey", "blue", "purple", "olive"],
                     [35, 25, 15, 10, 8, 7])
        cartridge = pick(["magenta", "black", "olive", "yellow", "light grey"],
                         [45, 20, 10, 10, 15])
        straps = pick(["dark grey", "black", "blue"], [50, 35, 15])
        return cls(color=color, cartridge_color=cartridge, strap_color=straps)
