"""The :class:`MaskStyle` base classes: typed parameters, seeding and texture caching.

A style is a frozen dataclass, so it is hashable and its parameters are its cache key: drawing
the same style on the same frame again returns the cached texture (arrays shared and
read-only, copy them to modify). When ``seed`` is None, ``draw`` takes one from the generator,
out of only :data:`TEXTURE_VARIANTS` values: random draws for a dataset then keep hitting the
cache, and the variety comes from colours, patterns and styles instead.
"""

from __future__ import annotations

import copy
import math
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from maskface.errors import InvalidInputError
from maskface.styles.base import FaceFrame, MaskTexture
from maskface.styles.colors import luminance, parse_color, to_rgb
from maskface.styles.materials import material
from maskface.styles.paint import flat, scale
from maskface.styles.patterns import (
    DEFAULT_SCALE_CM,
    PATTERNS,
    check_pattern,
    default_secondary,
    render_pattern,
)
from maskface.styles.surface import Surface, compose

TEXTURE_VARIANTS = 8
CACHE_BYTES = 192 << 20  # drawn textures kept: 5 MB each at 512 px, 1.3 MB at 256


class _FrameKey:
    """A hashable stand-in for a frame: equal when every anchor is equal."""

    __slots__ = ("_hash", "_key", "frame")

    def __init__(self, frame: FaceFrame) -> None:
        anchors = [
            np.asarray(getattr(frame, f.name), dtype=np.float64).ravel()
            for f in fields(frame)
            if f.name not in ("size", "wear")
        ]
        self.frame = frame
        self._key = (frame.size, frame.wear, np.concatenate(anchors).tobytes())
        self._hash = hash(self._key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _FrameKey) and self._key == other._key


class _TextureCache:
    """Least-recently-used drawn textures, bounded by their total size in bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[tuple, MaskTexture] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(texture: MaskTexture) -> int:
        return texture.rgba.nbytes + texture.height.nbytes

    def get(self, style: MaskStyle, key: _FrameKey) -> MaskTexture:
        """The texture of ``style`` on the keyed frame, drawn on a miss."""
        with self._lock:
            texture = self._items.get((style, key))
            if texture is not None:
                self._items.move_to_end((style, key))
                return texture
        texture = style.render(key.frame)  # outside the lock: other threads keep going
        for arr in (texture.rgba, texture.height):
            arr.flags.writeable = False
        with self._lock:
            if (style, key) not in self._items:
                self._items[(style, key)] = texture
                self._bytes += self._size(texture)
                while self._bytes > self.budget and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= self._size(old)
            return self._items[(style, key)]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


_CACHE = _TextureCache(CACHE_BYTES)


def clear_cache() -> None:
    """Forget every cached texture."""
    _CACHE.clear()


def strap(anchor: np.ndarray, side: str, color: str, width_cm: float, kind: str) -> dict:
    """A strap record for the renderer; ``kind`` is "ear_loop", "head_upper" or "head_lower"."""
    return {
        "anchor": [round(float(anchor[0]), 3), round(float(anchor[1]), 3)],
        "side": side,
        "color": [round(float(c), 4) for c in to_rgb(color)],
        "width_cm": width_cm,
        "kind": kind,
    }


@dataclass(frozen=True, kw_only=True)
class MaskStyle(ABC):
    """A kind of mask and its parameters; ``draw`` puts it on a frame's canvas.

    ``seed`` fixes the texture's random detail (fibre noise, pattern phase); None lets ``draw``
    take it from its generator. Subclasses set ``name``, ``gloss`` (a specular strength hint
    for renderers, 0 matte to 1 glossy) and ``weight`` (how often :func:`random_style` picks
    them, 0 for never).
    """

    name: ClassVar[str]
    gloss: ClassVar[float] = 0.05
    weight: ClassVar[float] = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type != "bool":  # annotations are strings here (postponed evaluation)
                continue
            value = getattr(self, f.name)
            if not isinstance(value, bool | np.bool_):
                raise InvalidInputError(f"{f.name} must be True or False, got {value!r}")
            object.__setattr__(self, f.name, bool(value))
        if self.seed is not None:
            if not isinstance(self.seed, int | np.integer) or self.seed < 0:
                raise InvalidInputError(
                    f"seed must be a non-negative integer or None, got {self.seed!r}")
            object.__setattr__(self, "seed", int(self.seed))

    def draw(self, frame: FaceFrame, rng: np.random.Generator) -> MaskTexture:
        """The mask's texture on ``frame``; cached, so its arrays are read-only."""
        style = self
        if self.seed is None:
            style = replace(self, seed=int(rng.integers(TEXTURE_VARIANTS)))
        texture = _CACHE.get(style, _FrameKey(frame))
        return MaskTexture(
            texture.rgba, texture.height, copy.deepcopy(texture.straps), dict(texture.params)
        )

    def params(self) -> dict[str, Any]:
        """Everything needed to redraw this mask, JSON-serialisable, defaults resolved."""
        return {"style": self.name, **asdict(self), "gloss": self.gloss}

    def finish(
        self, frame: FaceFrame, alpha: np.ndarray, surface: Surface, material_name: str,
        straps: list[dict],
    ) -> MaskTexture:
        """Add a material's micro detail to a drawn surface and assemble the texture."""
        x0, y0, x1, y1 = surface.grids.box
        albedo, relief = material(material_name, frame.size, frame.px_per_cm, self.seed or 0)
        surface.height += relief[y0:y1, x0:x1]
        surface.height *= alpha[y0:y1, x0:x1]
        surface.shade *= albedo[y0:y1, x0:x1]
        scale(surface.box_rgb, surface.shade)
        height = surface.grids.paste(surface.height, frame.size)
        return MaskTexture(compose(surface.rgb, alpha), height, straps, self.params())

    @abstractmethod
    def render(self, frame: FaceFrame) -> MaskTexture:
        """Draw the mask (uncached; ``self.seed`` is set)."""

    @classmethod
    @abstractmethod
    def sample(cls, rng: np.random.Generator) -> MaskStyle:
        """A plausible random instance, as found in the real world, for dataset generation."""


@dataclass(frozen=True, kw_only=True)
class FabricStyle(MaskStyle):
    """A textile mask with a colour and a printed pattern (see :mod:`.patterns`).

    ``pattern_color`` (the pattern's second colour) and ``pattern_scale_cm`` (its repeat)
    default to values that suit the pattern and colour.
    """

    patterns: ClassVar[tuple[str, ...]] = PATTERNS
    color: str = "white"
    pattern: str = "solid"
    pattern_color: str | None = None
    pattern_scale_cm: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "color", parse_color(self.color))
        object.__setattr__(self, "pattern", check_pattern(self.pattern, self.patterns))
        if self.pattern_color is not None:
            object.__setattr__(self, "pattern_color", parse_color(self.pattern_color))
        if self.pattern_scale_cm is not None:
            scale = float(self.pattern_scale_cm)
            if not (math.isfinite(scale) and 0.05 <= scale <= 50.0):
                raise InvalidInputError(f"pattern_scale_cm must be in [0.05, 50], got {scale!r}")
            object.__setattr__(self, "pattern_scale_cm", scale)

    @property
    def secondary(self) -> str:
        if self.pattern_color is not None:
            return self.pattern_color
        return default_secondary(self.pattern, self.color)

    @property
    def scale_cm(self) -> float:
        if self.pattern_scale_cm is not None:
            return self.pattern_scale_cm
        return DEFAULT_SCALE_CM[self.pattern]

    def params(self) -> dict[str, Any]:
        out = super().params()
        out.update(pattern_color=self.secondary, pattern_scale_cm=self.scale_cm)
        return out

    def albedo(self, frame: FaceFrame) -> np.ndarray:
        """The printed fabric over the whole canvas: a writable float32 (size, size, 3) array."""
        if self.pattern == "solid":  # cheaper to fill than to cache
            return flat(to_rgb(self.color), (frame.size, frame.size))
        return render_pattern(
            self.pattern, self.color, self.secondary, self.scale_cm, frame.px_per_cm,
            frame.size, self.seed or 0,
        ).copy()


@dataclass(frozen=True, kw_only=True)
class EarLoopStyle(FabricStyle):
    """A textile mask held by elastic ear loops; ``loop_color`` None means white loops, or
    loops matching the mask when it is dark (as sold)."""

    loop_color: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loop_color is not None:
            object.__setattr__(self, "loop_color", parse_color(self.loop_color))

    @property
    def loops(self) -> str:
        if self.loop_color is not None:
            return self.loop_color
        return self.color if luminance(to_rgb(self.color)) < 0.3 else parse_color("white")

    def params(self) -> dict[str, Any]:
        return {**super().params(), "loop_color": self.loops}
