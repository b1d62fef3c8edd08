"""The sewn fabric mask: two contoured panels, a centre seam, hems and ear-loop channels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from maskface.styles.base import FaceFrame, MaskTexture
from maskface.styles.colors import luminance, mix, to_rgb
from maskface.styles.outline import (
    MaskSpace,
    bounding_box,
    dashes,
    draw_lines,
    fill_polygon,
    mask_space,
    offset_inward,
)
from maskface.styles.patterns import PATTERNS
from maskface.styles.profiles import ramp, ridge, step
from maskface.styles.registry import register_style
from maskface.styles.style import EarLoopStyle, strap
from maskface.styles.surface import Surface

HALF_WIDTH_CM = 7.8
TOP_DROP, BOTTOM_RISE = 0.1, 0.12  # the outline dips toward the corners, hugging the face
CORNER_POWER = 6.0  # squircle exponent: straight sides with rounded corners
SHELL_CM = 1.0  # how far the middle stands off the face, for shading
HEM_CM, CHANNEL_CM = 0.35, 1.3  # topstitch inset; width of the side channels for the loops
STITCH_CM, GAP_CM, THREAD_CM = 0.3, 0.15, 0.06
LOOP_WIDTH_CM = 0.35
_SALT = 0xC107


def _edges(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom of the panel (in v) over mask coordinate u."""
    a2 = u * u
    return TOP_DROP * a2, 1.0 - BOTTOM_RISE * a2


def _outline(space: MaskSpace) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, 160, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    u = np.sign(c) * np.abs(c) ** (2.0 / CORNER_POWER)
    w = np.sign(s) * np.abs(s) ** (2.0 / CORNER_POWER)  # -1 top, +1 bottom
    top, bottom = _edges(u)
    v = top + (w + 1.0) * 0.5 * (bottom - top)
    return space.to_canvas(u, v)


@register_style
@dataclass(frozen=True, kw_only=True)
class ClothMask(EarLoopStyle):
    """A two-panel fabric mask in any colour and pattern.

    The print is discontinuous at the centre seam, as on panels cut separately; topstitching
    runs along the edges and the side channels. ``loop_color`` None: white elastic, or matched
    on dark fabric.
    """

    name: ClassVar[str] = "cloth"
    gloss: ClassVar[float] = 0.0
    weight: ClassVar[float] = 0.25
    color: str = "navy"

    def render(self, frame: FaceFrame) -> MaskTexture:
        ppc, size = frame.px_per_cm, frame.size
        space = mask_space(frame, HALF_WIDTH_CM)
        hw, cx = space.half_width, space.cx
        outline = _outline(space)
        alpha = fill_polygon(outline, size)
        g = space.grids(bounding_box(outline, size))
        s = Surface.over(g, self.albedo(frame))
        x0, y0, x1, y1 = g.box
        rng = np.random.default_rng([self.seed or 0, _SALT])

        top, bottom = _edges(g.u)
        inner = np.clip((g.v - top) / (bottom - top), 0.0, 1.0)
        from_top, from_bottom = (g.v - top) * g.span, (bottom - g.v) * g.span
        from_side = (1.0 - np.abs(g.u)) * hw
        from_mid = np.abs(g.xs - cx)

        # A soft shell, pulled back at the edges by the loops; fabric folds across it.
        across = np.clip(1.0 - g.u * g.u, 0.0, 1.0)
        s.height += (SHELL_CM * ppc) * np.sqrt(across * np.maximum(np.sin(np.pi * inner), 0.0))
        h, w = g.shape
        folds = rng.random((max(h // int(0.8 * ppc + 1), 2), max(w // int(2.5 * ppc + 1), 2)))
        folds = cv2.resize(folds.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        s.height += (0.12 * ppc) * (folds - 0.5)

        # Centre seam: the seam allowance inside pushes a ridge out, the stitching pulls the
        # line itself in.
        s.height += (0.1 * ppc) * ridge(from_mid, 0.0, 0.45 * ppc)
        s.height -= (0.06 * ppc) * ridge(from_mid, 0.0, 0.07 * ppc)
        s.shade -= 0.15 * ridge(from_mid, 0.0, 0.05 * ppc)

        # Hems and side channels: doubled fabric, the channels gathered by the elastic.
        channel = step(from_side, CHANNEL_CM * ppc)
        gathers = np.sin(g.ys * (2.0 * np.pi / (0.6 * ppc)))
        s.height += (0.06 * ppc) * channel * (1.0 + 0.5 * gathers)
        s.height += (0.04 * ppc) * step(np.minimum(from_top, from_bottom), 2.0 * HEM_CM * ppc)
        s.height -= (0.04 * ppc) * ridge(from_side, CHANNEL_CM * ppc, 0.08 * ppc)
        s.shade -= 0.05 * ridge(from_side, CHANNEL_CM * ppc, 0.06 * ppc)

        # the panels are cut separately, so the print jumps at the seam
        cols, rows = np.arange(x0, x1), np.arange(y0, y1)
        dx, dy = (int(k) for k in rng.integers(size // 5, size // 2, 2))
        right = cols > cx
        shifted = s.rgb[((rows + dy) % size)[:, None], ((cols[right] + dx) % size)[None, :]]
        s.box_rgb[:, right] = shifted

        thread = self._stitches(space, outline)[y0:y1, x0:x1]
        base = to_rgb(self.color)
        toward = np.ones(3) if luminance(base) < 0.5 else np.zeros(3)
        s.paint(mix(base, toward, 0.3), thread)
        s.height += (0.015 * ppc) * thread
        s.height *= ramp(np.minimum(from_top, from_bottom), -1.0, 0.3 * ppc)
        return self.finish(frame, alpha, s, "weave", self._straps(space))

    def _stitches(self, space: MaskSpace, outline: np.ndarray) -> np.ndarray:
        """Coverage of the dashed topstitching: round the edge and along both channels."""
        ppc, size = space.frame.px_per_cm, space.frame.size
        dash, gap = STITCH_CM * ppc, GAP_CM * ppc
        edge = offset_inward(outline, HEM_CM * ppc)
        lines = dashes(np.concatenate([edge, edge[:1]]), dash, gap)
        for sign in (-1.0, 1.0):
            u = sign * (1.0 - CHANNEL_CM * ppc / space.half_width)
            top, bottom = _edges(np.array([u]))
            down = np.linspace(float(top[0]) + 0.04, float(bottom[0]) - 0.04, 24)
            lines += dashes(space.to_canvas(np.full_like(down, u), down), dash, gap)
        return draw_lines(lines, max(THREAD_CM * ppc, 0.7), size)

    def _straps(self, space: MaskSpace) -> list[dict]:
        ppc = space.frame.px_per_cm
        straps = []
        for sign, side in ((-1.0, "right"), (1.0, "left")):
            u = sign * (1.0 - 0.5 * CHANNEL_CM * ppc / space.half_width)
            top, bottom = _edges(np.array([u]))
            for v in (float(top[0]) + 0.06, float(bottom[0]) - 0.06):
                anchor = space.to_canvas(np.array([u]), np.array([v]))[0]
                straps.append(strap(anchor, side, self.loops, LOOP_WIDTH_CM, "ear_loop"))
        return straps

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ClothMask:
        colors = ["black", "navy", "blue", "light blue", "grey", "white", "red", "pink",
                  "green", "teal", "olive", "beige", "khaki", "purple", "yellow", "brown",
                  "orange", "lavender"]
        color = colors[int(rng.integers(len(colors)))]
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))] if rng.random() < 0.7 else "solid"
        second = None
        if pattern != "solid" and rng.random() < 0.5:
            second = colors[int(rng.integers(len(colors)))]
            if second == color:
                second = None
        return cls(color=color, pattern=pattern, pattern_color=second)
