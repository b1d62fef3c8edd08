"""Putting masks on the faces of one image: the plain-function API behind every command."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from maskface.geometry.analysers import FaceAnalyser, create_analyser
from maskface.geometry.face import Face
from maskface.render.registry import create_renderer
from maskface.styles import MaskStyle, create_style, random_style
from maskface.styles.base import WEAR_STYLES

FACE_CHOICES = ("largest", "all")


@dataclass
class MaskingResult:
    """A masked image, the mask's coverage, and a record of what was drawn on which face."""

    image: np.ndarray  # uint8 RGB
    alpha: np.ndarray  # uint8 (H, W): 255 where the mask (with straps) covers the image
    faces: list[dict] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``"ok"`` when at least one face was masked, else ``"no_face"``."""
        return "ok" if self.faces else "no_face"


def _as_style(style: str | MaskStyle, rng: np.random.Generator, vary: bool, params: dict):
    if not isinstance(style, str):
        return style
    if vary:
        return random_style(style, rng)
    return create_style(style, **params)


def mask_image(
    image: np.ndarray,
    style: str | MaskStyle = "surgical",
    *,
    wear: str = "correct",
    faces: str | Sequence[Face] = "largest",
    renderer: str = "2d",
    analyser: str | FaceAnalyser = "mediapipe",
    seed: int | np.random.Generator = 0,
    vary: bool = False,
    min_face: float = 12.0,
    **style_params,
) -> MaskingResult:
    """Draw a mask on the largest face (or every face) of an RGB uint8 image.

    ``style`` is a style name (see ``maskface.list_styles()``) with ``style_params`` such as
    ``color="navy"`` or ``pattern="dots"``, or a ready :class:`MaskStyle`; ``vary=True``
    draws a plausible random look of that style per face instead. ``faces`` is
    ``"largest"``, ``"all"`` or faces found earlier. The same ``seed`` gives the same bytes.
    """
    if wear not in WEAR_STYLES:
        raise ValueError(f"unknown wear {wear!r}; choose from {', '.join(WEAR_STYLES)}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if isinstance(faces, str):
        if faces not in FACE_CHOICES:
            raise ValueError(f"faces must be one of {FACE_CHOICES} or a list of faces")
        finder = create_analyser(analyser) if isinstance(analyser, str) else analyser
        found = [f for f in finder(image) if min(f.width, f.height) >= min_face]
        chosen = found[:1] if faces == "largest" else found
    else:
        chosen = list(faces)

    draw = create_renderer(renderer)
    out = np.ascontiguousarray(image).copy()
    alpha = np.zeros(image.shape[:2], np.uint8)
    records = []
    # Far (small) faces first, so nearer faces' masks overlap them as they would.
    for face in sorted(chosen, key=lambda f: f.area):
        face_rng = np.random.default_rng(rng.integers(2**63))
        mask_style = _as_style(style, face_rng, vary, style_params)
        layer = draw.render(image, face, mask_style, wear, face_rng)
        if layer is None:
            continue
        layer.composite(out, alpha)
        records.append(
            {"face": face.as_dict(), "wear": wear, "renderer": draw.name,
             "style": layer.info.pop("style"), **layer.info}
        )
    records.reverse()  # largest first, like the analysers
    return MaskingResult(out, alpha, records)
