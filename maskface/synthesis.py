"""Putting masks on the faces of one image: the plain-function API behind every command."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from maskface.errors import InvalidInputError
from maskface.geometry.analysers import FaceAnalyser, create_analyser
from maskface.geometry.face import Face
from maskface.imageio import check_image, to_rgb
from maskface.render.registry import create_renderer
from maskface.styles import MaskStyle, create_style, random_style
from maskface.styles.base import WEAR_STYLES

FACE_CHOICES = ("largest", "all")
# Faces whose box is smaller than this (pixels, shorter side) are left alone by default:
# a mask drawn on them would be a blot.
MIN_FACE = 12.0
# A pixel is a gap when both neighbours across it (left-right or up-down) are covered at least
# this much more than it is (coverage in [0, 1]).
_PINHOLE_STEP = 0.25
# The largest enclosed opening taken for a gap, in pixels per 100 x 100 pixels of layer: the
# slivers an ear loop encloses are a few pixels, the ear's own loop hundreds.
_HOLE_AREA = 12


@dataclass
class MaskingResult:
    """A masked image, the mask's coverage, and a record of what was drawn on which face."""

    image: np.ndarray  # uint8, in the input's layout: RGB, gray (H, W) or RGBA
    alpha: np.ndarray  # uint8 (H, W): 255 where the mask (with straps) covers the image
    faces: list[dict] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``"ok"`` when at least one face was masked, else ``"no_face"``."""
        return "ok" if self.faces else "no_face"


def wear_name(wear: str) -> str:
    """The canonical wear style for ``wear`` (case and ``-``/``_`` ignored)."""
    key = str(wear).strip().lower().replace("-", "_")
    if key not in WEAR_STYLES:
        raise InvalidInputError(f"unknown wear {wear!r}; choose from {', '.join(WEAR_STYLES)}")
    return key


def choose_faces(found: Sequence[Face], faces: str = "largest", *,
                 min_face: float = MIN_FACE) -> list[Face]:
    """The faces to mask among ``found`` (largest first, as analysers give them).

    Faces whose box's shorter side is under ``min_face`` pixels are dropped; ``"largest"``
    keeps the first that remains, ``"all"`` every one. ``mask_image``, the batch job and the
    contact sheets all choose with this function.
    """
    if faces not in FACE_CHOICES:
        raise InvalidInputError(f"faces must be one of {', '.join(FACE_CHOICES)} or a list of "
                                f"faces, not {faces!r}")
    if min_face < 0:
        raise InvalidInputError(f"min_face must be at least 0, got {min_face}")
    kept = [f for f in found if min(f.width, f.height) >= min_face]
    return kept[:1] if faces == "largest" else kept


def select_faces(image: np.ndarray, faces: str = "largest", *,
                 analyser: str | FaceAnalyser = "mediapipe",
                 min_face: float = MIN_FACE) -> list[Face]:
    """Find the faces of ``image`` with ``analyser`` and keep them as :func:`choose_faces` does."""
    finder = create_analyser(analyser) if isinstance(analyser, str) else analyser
    choose_faces((), faces, min_face=min_face)  # check the arguments before detecting
    return choose_faces(finder(to_rgb(image)), faces, min_face=min_face)


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
    min_face: float = MIN_FACE,
    **style_params,
) -> MaskingResult:
    """Draw a mask on the largest face (or every face) of a uint8 image.

    ``image`` is RGB (H, W, 3), gray (H, W) or RGBA (H, W, 4); the result has the same layout
    (an RGBA image keeps its transparency, made opaque where the mask covers it).
    ``style`` is a style name (see ``maskface.list_styles()``) with ``style_params`` such as
    ``color="navy"`` or ``pattern="dots"``, or a ready :class:`MaskStyle`; ``vary=True``
    draws a plausible random look of that style per face instead. ``faces`` is
    ``"largest"``, ``"all"`` or faces found earlier; faces under ``min_face`` pixels are not
    masked. The same ``seed`` gives the same bytes. Bad input raises
    :class:`~maskface.errors.InvalidInputError`.
    """
    wear = wear_name(wear)
    pixels = check_image(image)
    rgb = to_rgb(pixels)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if isinstance(faces, str):
        chosen = select_faces(rgb, faces, analyser=analyser, min_face=min_face)
    else:
        chosen = list(faces)
        if not all(isinstance(f, Face) for f in chosen):
            raise InvalidInputError("faces must be 'largest', 'all' or a list of Face objects")

    draw = create_renderer(renderer)
    out = rgb.copy()
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    records = []
    # Far (small) faces first, so nearer faces' masks overlap them as they would.
    for face in sorted(chosen, key=lambda f: f.area):
        face_rng = np.random.default_rng(rng.integers(2**63))
        mask_style = _as_style(style, face_rng, vary, style_params)
        layer = draw.render(rgb, face, mask_style, wear, face_rng)
        if layer is None:
            continue
        fill_holes(layer.rgb, layer.alpha)
        layer.composite(out, alpha)
        records.append(
            {"face": face.as_dict(), "wear": wear, "renderer": draw.name,
             "style": layer.info.pop("style"), **layer.info}
        )
    records.reverse()  # largest first, like the analysers
    return MaskingResult(_like(pixels, out, alpha), alpha, records)


def fill_holes(rgb: np.ndarray, alpha: np.ndarray) -> int:
    """Close the small gaps of a rendered layer in place; return how many pixels were filled.

    Rasterising the mesh triangle by triangle can leave a pixel between two triangles
    uncovered, and an ear loop leaving the mask can enclose a sliver of face; composited,
    the face shows through as a dark dot. Two kinds of gap are filled: a pixel whose two
    neighbours across it (left-right or up-down) are covered clearly more than it is, and a
    small patch that is less than half covered and entirely surrounded by mask (at most
    :data:`_HOLE_AREA` pixels per 100 x 100 of layer). They take the coverage and colour of
    the mask around them.
    """
    if alpha.shape[0] < 3 or alpha.shape[1] < 3:
        return 0
    filled = _fill_cracks(rgb, alpha)
    low = (alpha < 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(low, connectivity=4)
    height, width = alpha.shape
    largest = max(_HOLE_AREA, _HOLE_AREA * height * width / 100**2)
    for k in range(1, count):
        x, y, w, h, area = stats[k]
        if area > largest or x == 0 or y == 0 or x + w == width or y + h == height:
            continue  # the outside of the mask, or an opening too large to be a gap
        x0, y0, x1, y1 = x - 1, y - 1, x + w + 1, y + h + 1
        hole = labels[y0:y1, x0:x1] == k
        ring = cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~hole
        weights = alpha[y0:y1, x0:x1][ring]
        colour = (rgb[y0:y1, x0:x1][ring] * weights[:, None]).sum(0) / max(weights.sum(), 1e-6)
        rgb[y0:y1, x0:x1][hole] = colour
        alpha[y0:y1, x0:x1][hole] = np.maximum(alpha[y0:y1, x0:x1][hole], weights.mean())
        filled += int(area)
    return filled


def _fill_cracks(rgb: np.ndarray, alpha: np.ndarray) -> int:
    """Fill the pixels whose neighbours across them are covered clearly more (see
    :func:`fill_holes`); they take those neighbours' mean coverage and colour."""
    a = alpha[1:-1, 1:-1]
    left, right = alpha[1:-1, :-2], alpha[1:-1, 2:]
    up, down = alpha[:-2, 1:-1], alpha[2:, 1:-1]
    across_x = np.minimum(left, right) - a
    across_y = np.minimum(up, down) - a
    use_x = across_x >= across_y
    gap = np.maximum(across_x, across_y) > _PINHOLE_STEP
    if not gap.any():
        return 0
    ys, xs = np.nonzero(gap)
    ux = use_x[ys, xs]
    # Neighbour pairs across each gap: (y, x-1)/(y, x+1) or (y-1, x)/(y+1, x), in full-array
    # coordinates (the interior starts at 1, 1).
    y0, y1 = np.where(ux, ys + 1, ys), np.where(ux, ys + 1, ys + 2)
    x0, x1 = np.where(ux, xs, xs + 1), np.where(ux, xs + 2, xs + 1)
    w0, w1 = alpha[y0, x0], alpha[y1, x1]
    total = w0 + w1
    colour = (rgb[y0, x0] * w0[:, None] + rgb[y1, x1] * w1[:, None]) / total[:, None]
    rgb[ys + 1, xs + 1] = colour
    alpha[ys + 1, xs + 1] = total / 2
    return len(ys)


def _like(pixels: np.ndarray, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The masked RGB in the input's layout (gray, RGB or RGBA)."""
    if pixels.ndim == 2:
        # OpenCV's weights sum to exactly one in fixed point, so unmasked gray comes back equal.
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if pixels.shape[2] == 4:
        return np.dstack([rgb, np.maximum(pixels[..., 3], alpha)])
    return rgb
