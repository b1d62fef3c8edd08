"""Contact sheets: every mask style over faces of varied pose, to judge realism at a glance."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from maskface.errors import InvalidInputError, MaskfaceError
from maskface.geometry.analysers import FaceAnalyser, create_analyser
from maskface.geometry.face import Face
from maskface.imageio import iter_images, read_image
from maskface.styles.registry import list_styles, style_class
from maskface.synthesis import MIN_FACE, mask_image, select_faces

_LABEL_H = 22


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    tile = np.full((size, size, 3), 245, np.uint8)
    y, x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    tile[y : y + small.shape[0], x : x + small.shape[1]] = small
    return tile


def contact_sheet(
    rows: Sequence[Sequence[tuple[str, np.ndarray]]], tile: int = 200
) -> np.ndarray:
    """A grid image: one row per sequence of (label, RGB image) tiles."""
    columns = max(len(r) for r in rows)
    sheet = np.full(
        (len(rows) * (tile + _LABEL_H), columns * tile, 3), 255, dtype=np.uint8
    )
    for i, row in enumerate(rows):
        for j, (label, image) in enumerate(row):
            y, x = i * (tile + _LABEL_H), j * tile
            sheet[y : y + tile, x : x + tile] = _fit(image, tile)
            cv2.putText(sheet, label[:28], (x + 4, y + tile + 15), cv2.FONT_HERSHEY_SIMPLEX,
                        0.42, (30, 30, 30), 1, cv2.LINE_AA)
    return sheet


def _crop_to_face(image: np.ndarray, face: Face, margin: float = 0.9) -> np.ndarray:
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    half = max(face.width, face.height) * (0.5 + margin)
    h, w = image.shape[:2]
    x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x1, y1 = int(min(cx + half, w)), int(min(cy + half, h))
    return image[y0:y1, x0:x1]


def builtin_styles() -> list[str]:
    """The styles drawn by maskface itself (not those that need a user's files)."""
    return [name for name in list_styles() if style_class(name).weight > 0]


def style_rows(
    images: Iterable[tuple[str, np.ndarray]],
    styles: Sequence[str] | None = None,
    *,
    renderers: Sequence[str] = ("2d",),
    wear: str = "correct",
    seed: int = 0,
    analyser: FaceAnalyser | None = None,
    crop: bool = True,
    min_face: float = MIN_FACE,
) -> list[list[tuple[str, np.ndarray]]]:
    """One sheet row per image: the original, then the image masked in every style (by each
    renderer in turn, side by side, when several are given). Faces are chosen as
    :func:`~maskface.mask_image` chooses them (the largest of at least ``min_face`` px)."""
    styles = list(styles or builtin_styles())
    finder = analyser or create_analyser("mediapipe")
    rows = []
    for name, image in images:
        faces = select_faces(image, "largest", analyser=finder, min_face=min_face)
        if not faces:
            continue
        face = faces[0]
        pose = face.pose
        row = [(f"{name} y{pose.yaw:+.0f} p{pose.pitch:+.0f}", image)]
        for k, style in enumerate(styles):
            for renderer in renderers:
                result = mask_image(image, style, wear=wear, faces=faces, renderer=renderer,
                                    seed=seed + k)
                label = style if len(renderers) == 1 else f"{style} {renderer}"
                row.append((label, result.image))
        if crop:
            row = [(label, _crop_to_face(im, face)) for label, im in row]
        rows.append(row)
    return rows


def varied_pose_images(
    root: Path, count: int = 6, scan: int = 400, analyser: FaceAnalyser | None = None,
    min_face: float = MIN_FACE,
) -> list[tuple[str, np.ndarray]]:
    """Pick ``count`` images from a face tree spanning head poses (yaw from left to right).

    Scans an evenly spaced, deterministic sample of ``scan`` images; unreadable ones are
    passed over.
    """
    finder = analyser or create_analyser("mediapipe")
    paths = list(iter_images(root))
    if not paths:
        raise InvalidInputError(f"no images under {root}")
    step = max(1, len(paths) // scan)
    scored = []
    for path in paths[::step][:scan]:
        try:
            image = read_image(path)
        except MaskfaceError:
            continue
        faces = select_faces(image, "largest", analyser=finder, min_face=min_face)
        if faces:
            scored.append((faces[0].pose.yaw, faces[0].pose.pitch, path.stem, image))
    if not scored:
        raise InvalidInputError(f"no face found in the {len(paths[::step][:scan])} images "
                                f"scanned under {root}")
    scored.sort(key=lambda t: t[0])
    targets = np.linspace(scored[0][0], scored[-1][0], count)
    picked, used = [], set()
    for t in targets:
        best = min((i for i in range(len(scored)) if i not in used),
                   key=lambda i: abs(scored[i][0] - t))
        used.add(best)
        picked.append((scored[best][2], scored[best][3]))
    return picked


# The demo's looks beyond each style's default: (label, style, wear, style parameters).
DEMO_LOOKS: tuple[tuple[str, str, str, dict], ...] = (
    ("n95 with valve", "n95", "correct", {"valve": True}),
    ("kn95 black", "kn95", "correct", {"color": "black"}),
    ("cloth floral", "cloth", "correct", {"pattern": "floral"}),
    ("cloth checks", "cloth", "correct", {"pattern": "checks", "color": "navy"}),
    ("surgical under nose", "surgical", "under_nose", {}),
    ("kn95 on the chin", "kn95", "chin", {}),
)


def demo_tiles(image: np.ndarray, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The image, then masked in every built-in style and in the :data:`DEMO_LOOKS`."""
    faces = select_faces(image, "largest")
    if not faces:
        return []
    looks = [(name, name, "correct", {}) for name in builtin_styles()] + list(DEMO_LOOKS)
    tiles = [("original", image)]
    for label, style, wear, params in looks:
        result = mask_image(image, style, wear=wear, faces=faces, seed=seed, **params)
        tiles.append((label, result.image))
    return [(label, _crop_to_face(im, faces[0])) for label, im in tiles]
