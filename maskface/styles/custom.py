"""A user's own mask: an RGBA PNG warped onto the frame through anchor points.

The PNG shows the mask from the front, transparent outside it. A JSON file (by default the
PNG's name with ``.json``) says where known points of the mask lie in the PNG, in pixels::

    {
      "anchors": {
        "top_center": [256, 40],      # middle of the upper edge (over the nose bridge)
        "bottom_center": [256, 330],  # middle of the lower edge (under the chin)
        "left": [20, 180],            # the side edges, at mid-height, as seen in the PNG
        "right": [492, 180]
      },
      "width_cm": 16,                 # optional: the mask's width on the face, side to side
      "straps": "ear_loops",          # optional: "ear_loops", "head" or "none"
      "strap_color": "white",         # optional
      "relief_cm": 0.8                # optional: how much the middle bulges (0 = flat)
    }

(JSON has no comments; they only explain the fields here.) Further optional keys:
``strap_width_cm`` (0.3), ``gloss`` (0.05, a specular hint for renderers) and ``fit_outline``.
``left`` is the left of the picture, which lands on the wearer's right cheek. Optional extra
anchors: ``top_left``, ``top_right``, ``bottom_left``, ``bottom_right`` (the corners of the
side edges) and points of the face frame (``nose_bridge``, ``nose_tip``, ``subnasal``,
``mouth_center``, ``mouth_left``, ``mouth_right``, ``chin``, ``chin_under``), used when the
wear style puts the mask over that point. With ``"fit_outline": true`` (the default) the PNG's
own upper and lower edges, found from its alpha, are also pulled onto the frame's top and
bottom curves. A thin-plate spline through all these pairs maps the canvas into the PNG.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image
from scipy.interpolate import RBFInterpolator

from maskface.errors import InvalidInputError
from maskface.styles.base import FaceFrame, MaskTexture
from maskface.styles.colors import parse_color
from maskface.styles.outline import MaskSpace, edge_distance, mask_space
from maskface.styles.paint import flat
from maskface.styles.profiles import ramp
from maskface.styles.registry import register_style
from maskface.styles.style import MaskStyle, strap
from maskface.styles.surface import compose

REQUIRED_ANCHORS = ("top_center", "bottom_center", "left", "right")
CORNER_ANCHORS = ("top_left", "top_right", "bottom_left", "bottom_right")
FRAME_ANCHORS = (
    "nose_bridge", "nose_tip", "subnasal", "mouth_right", "mouth_left", "mouth_center", "chin",
    "chin_under",
)
STRAP_KINDS = ("ear_loops", "head", "none")
_KEYS = ("anchors", "width_cm", "straps", "strap_color", "strap_width_cm", "relief_cm",
         "fit_outline", "gloss")
_GRID_STEP = 8  # px between evaluations of the spline; the map in between is bilinear
_EDGE_SAMPLES = (0.2, 0.4, 0.6, 0.8)  # where along each half of the edges the outline is fitted


@dataclass(frozen=True)
class CustomConfig:
    """A validated custom-mask config (see the module docstring)."""

    anchors: dict[str, tuple[float, float]]
    width_cm: float = 16.0
    straps: str = "ear_loops"
    strap_color: str = "#f2f3f1"
    strap_width_cm: float = 0.3
    relief_cm: float = 0.8
    fit_outline: bool = True
    gloss: float = 0.05


def _number(value: Any, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{what} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidInputError(f"{what} must be between {lo} and {hi}, got {value!r}")
    return float(value)


def load_config(path: str | Path, image_size: tuple[int, int]) -> CustomConfig:
    """Read and check a custom-mask config against its PNG's (width, height)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"custom mask config not found: {path} (a JSON file giving the PNG's anchors)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("anchors"), dict):
        raise InvalidInputError(f"{path}: expected an object with an 'anchors' object")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise InvalidInputError(f"{path}: unknown keys {unknown}; allowed: {', '.join(_KEYS)}")

    valid = REQUIRED_ANCHORS + CORNER_ANCHORS + FRAME_ANCHORS
    anchors = raw["anchors"]
    missing = [k for k in REQUIRED_ANCHORS if k not in anchors]
    if missing:
        raise InvalidInputError(
            f"{path}: missing anchors {missing}; {', '.join(REQUIRED_ANCHORS)} are required")
    bad = sorted(set(anchors) - set(valid))
    if bad:
        raise InvalidInputError(f"{path}: unknown anchors {bad}; valid anchors: {', '.join(valid)}")
    width, height = image_size
    points: dict[str, tuple[float, float]] = {}
    for name, value in anchors.items():
        if not (isinstance(value, list | tuple) and len(value) == 2):
            raise InvalidInputError(f"{path}: anchor {name!r} must be [x, y], got {value!r}")
        x = _number(value[0], f"{path}: anchor {name!r} x", 0, width)
        y = _number(value[1], f"{path}: anchor {name!r} y", 0, height)
        points[name] = (x, y)
    if points["left"][0] >= points["right"][0]:
        raise InvalidInputError(f"{path}: anchor 'left' must be left of 'right' in the PNG")
    if points["top_center"][1] >= points["bottom_center"][1]:
        raise InvalidInputError(f"{path}: anchor 'top_center' must be above 'bottom_center'")

    out: dict[str, Any] = {"anchors": points}
    if "width_cm" in raw:
        out["width_cm"] = _number(raw["width_cm"], f"{path}: width_cm", 4.0, 22.0)
    if "straps" in raw:
        if raw["straps"] not in STRAP_KINDS:
            raise InvalidInputError(f"{path}: straps must be one of {', '.join(STRAP_KINDS)}")
        out["straps"] = raw["straps"]
    if "strap_color" in raw:
        out["strap_color"] = parse_color(raw["strap_color"])
    if "strap_width_cm" in raw:
        out["strap_width_cm"] = _number(raw["strap_width_cm"], f"{path}: strap_width_cm", 0.05, 3)
    if "relief_cm" in raw:
        out["relief_cm"] = _number(raw["relief_cm"], f"{path}: relief_cm", 0.0, 3.0)
    if "fit_outline" in raw:
        if not isinstance(raw["fit_outline"], bool):
            raise InvalidInputError(f"{path}: fit_outline must be true or false")
        out["fit_outline"] = raw["fit_outline"]
    if "gloss" in raw:
        out["gloss"] = _number(raw["gloss"], f"{path}: gloss", 0.0, 1.0)
    return CustomConfig(**out)


def _read_rgba(path: Path) -> np.ndarray:
    """The PNG as float32 straight-alpha RGBA in [0, 1]; it must carry transparency."""
    with Image.open(path) as img:
        has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
        if not has_alpha:
            raise InvalidInputError(
                f"{path} has no alpha channel (mode {img.mode}): save the mask as an RGBA PNG, "
                "transparent outside the mask, so its outline is known"
            )
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    if not (rgba[..., 3] > 0.5).any():
        raise InvalidInputError(f"{path} is fully transparent: nothing to draw")
    return rgba


def _image_size(path: Path) -> tuple[int, int]:
    if not path.is_file():
        raise FileNotFoundError(f"custom mask image not found: {path}")
    with Image.open(path) as img:
        return img.size


@register_style
@dataclass(frozen=True, kw_only=True)
class CustomMask(MaskStyle):
    """Your own mask from an RGBA PNG and an anchor config (``config`` defaults to the PNG's
    path with ``.json``). The files are read when the style is made; after editing them make
    the style again (textures are cached by file time too) or call ``clear_cache``.
    """

    name: ClassVar[str] = "custom"
    image: str
    config: str | None = None
    stamp: tuple[int, ...] = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seed is None:  # nothing random in a custom mask: one cache entry, not one a seed
            object.__setattr__(self, "seed", 0)
        image = Path(self.image)
        config = Path(self.config) if self.config is not None else image.with_suffix(".json")
        object.__setattr__(self, "image", str(image))
        object.__setattr__(self, "config", str(config))
        load_config(config, _image_size(image))  # fail early, with the reason
        stat_i, stat_c = image.stat(), config.stat()
        stamp = (stat_i.st_mtime_ns, stat_i.st_size, stat_c.st_mtime_ns, stat_c.st_size)
        object.__setattr__(self, "stamp", stamp)

    def params(self) -> dict:
        out = super().params()
        del out["stamp"]
        return out

    @property
    def settings(self) -> CustomConfig:
        return load_config(self.config, _image_size(Path(self.image)))

    def render(self, frame: FaceFrame) -> MaskTexture:
        cfg = self.settings
        src = _read_rgba(Path(self.image))
        space = mask_space(frame, 0.5 * cfg.width_cm)
        png_pts, canvas_pts = self._pairs(cfg, src[..., 3], space)
        size = frame.size
        lo = np.maximum(np.floor(canvas_pts.min(axis=0) - 0.25 * space.half_width), 0)
        hi = np.minimum(np.ceil(canvas_pts.max(axis=0) + 0.25 * space.half_width), size)
        x0, y0, x1, y1 = (int(v) for v in (*lo, *hi))

        # canvas -> PNG, on a coarse grid, then bilinear in between
        spline = RBFInterpolator(canvas_pts, png_pts, kernel="thin_plate_spline")
        gx = np.arange(x0, x1 + _GRID_STEP, _GRID_STEP, dtype=np.float64)
        gy = np.arange(y0, y1 + _GRID_STEP, _GRID_STEP, dtype=np.float64)
        mesh = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
        coarse = spline(mesh).reshape(len(gy), len(gx), 2).astype(np.float32)
        span_x, span_y = (len(gx) - 1) * _GRID_STEP, (len(gy) - 1) * _GRID_STEP
        fine = cv2.resize(coarse, (span_x + 1, span_y + 1), interpolation=cv2.INTER_LINEAR)
        fine = fine[: y1 - y0, : x1 - x0]

        premult = src.copy()
        premult[..., :3] *= premult[..., 3:]  # warp premultiplied: no dark fringes
        warped = cv2.remap(premult, fine[..., 0], fine[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        alpha = np.zeros((size, size), dtype=np.float32)
        alpha[y0:y1, x0:x1] = warped[..., 3]
        opaque = src[..., 3] > 0.5
        mean = src[opaque][:, :3].mean(axis=0)
        rgb = flat(mean, (size, size))  # outside the mask: its mean colour, for clean filtering
        cover = warped[..., 3:]
        rgb[y0:y1, x0:x1] = np.where(cover > 1e-3, warped[..., :3] / np.maximum(cover, 1e-3),
                                     mean)

        height = np.zeros((size, size), dtype=np.float32)
        if cfg.relief_cm > 0:
            edge = edge_distance(alpha[y0:y1, x0:x1])
            bulge = np.sqrt(ramp(edge, 0.0, 2.5 * frame.px_per_cm))
            height[y0:y1, x0:x1] = (cfg.relief_cm * frame.px_per_cm) * bulge * cover[..., 0]
        params = {**self.params(), "gloss": cfg.gloss}
        return MaskTexture(compose(rgb, alpha), height, self._straps(cfg, space), params)

    def _pairs(
        self, cfg: CustomConfig, alpha: np.ndarray, space: MaskSpace
    ) -> tuple[np.ndarray, np.ndarray]:
        """Matching (PNG, canvas) points: the anchors, plus the fitted outline."""
        frame, cx, hw = space.frame, space.cx, space.half_width

        def side(u: float, v: float) -> tuple[float, float]:
            x = cx + u * hw
            top, bottom = float(space.top(x)), float(space.bottom(x))
            return x, top + v * (bottom - top)

        targets = {
            "top_center": (cx, float(space.top(cx))),
            "bottom_center": (cx, float(space.bottom(cx))),
            "left": side(-1.0, 0.5), "right": side(1.0, 0.5),
            "top_left": side(-1.0, 0.0), "top_right": side(1.0, 0.0),
            "bottom_left": side(-1.0, 1.0), "bottom_right": side(1.0, 1.0),
        }
        for k in FRAME_ANCHORS:
            x, y = (float(c) for c in getattr(frame, k))
            # a face point pulls the mask only where this wear style puts the mask over it
            if float(space.top(x)) <= y <= float(space.bottom(x)):
                targets[k] = (x, y)
        png = [cfg.anchors[k] for k in cfg.anchors if k in targets]
        canvas = [targets[k] for k in cfg.anchors if k in targets]
        if cfg.fit_outline:
            left, right = cfg.anchors["left"][0], cfg.anchors["right"][0]
            for key, v, pick in (("top_center", 0.0, 0), ("bottom_center", 1.0, -1)):
                mid = cfg.anchors[key][0]
                for t in _EDGE_SAMPLES:
                    for u, x_png in ((-1 + t, left + t * (mid - left)),
                                     (1 - t, right - t * (right - mid))):
                        rows = np.flatnonzero(alpha[:, round(x_png)] > 0.5)
                        target = side(u, v)
                        # two pairs at one canvas point would make the spline singular
                        taken = min(np.hypot(target[0] - c[0], target[1] - c[1]) for c in canvas)
                        if len(rows) and taken > 2.0:
                            png.append((x_png, float(rows[pick])))
                            canvas.append(target)
        return np.array(png, dtype=np.float64), np.array(canvas, dtype=np.float64)

    def _straps(self, cfg: CustomConfig, space: MaskSpace) -> list[dict]:
        if cfg.straps == "none":
            return []
        ppc = space.frame.px_per_cm
        kinds = ("ear_loop", "ear_loop") if cfg.straps == "ear_loops" else ("head_upper",
                                                                             "head_lower")
        out = []
        for sign, side in ((-1.0, "right"), (1.0, "left")):
            x = space.cx + sign * (space.half_width - 0.5 * ppc)
            top, bottom = float(space.top(x)), float(space.bottom(x))
            for kind, v in zip(kinds, (0.2, 0.8), strict=True):
                anchor = np.array([x, top + v * (bottom - top)])
                out.append(strap(anchor, side, cfg.strap_color, cfg.strap_width_cm, kind))
        return out

    @classmethod
    def sample(cls, rng: np.random.Generator) -> CustomMask:
        raise InvalidInputError("custom masks need a PNG and a config; they cannot be sampled")
