"""A contact sheet of the style catalogue, for looking at the masks without a face.

Each cell shows a texture flat on a grey canvas, lit from the upper left through its ``height``
(so pleats, seams and valves read as relief), with its straps drawn toward the ears and the
frame's outline faintly behind it. Run ``python -m maskface.styles.preview out.png``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from maskface.render.layout import face_frame
from maskface.styles.base import MaskTexture
from maskface.styles.registry import create_style, list_styles
from maskface.styles.style import MaskStyle

# What each row shows: a few colours and patterns per style, as (label, parameters).
VARIANTS: dict[str, list[tuple[str, dict]]] = {
    "surgical": [
        ("light blue", {"color": "light blue"}),
        ("white", {"color": "white"}),
        ("black", {"color": "black"}),
        ("pink floral", {"color": "pink", "pattern": "floral"}),
        ("green, 2 pleats", {"color": "surgical green", "pleats": 2}),
    ],
    "n95": [
        ("white", {}),
        ("round valve", {"valve": True}),
        ("square valve", {"valve": True, "valve_shape": "square", "strap_color": "yellow"}),
        ("grey camo", {"color": "light grey", "pattern": "camouflage"}),
        ("black", {"color": "black", "valve": True}),
    ],
    "kn95": [
        ("white", {}),
        ("black", {"color": "black"}),
        ("pink", {"color": "pink"}),
        ("beige", {"color": "beige"}),
        ("navy stripes", {"color": "navy", "pattern": "stripes"}),
    ],
    "cloth": [
        ("navy dots", {"color": "navy", "pattern": "dots"}),
        ("red checks", {"color": "red", "pattern": "checks"}),
        ("olive camo", {"color": "olive", "pattern": "camouflage", "pattern_color": "khaki"}),
        ("beige floral", {"color": "beige", "pattern": "floral", "pattern_color": "red"}),
        ("grey heather", {"color": "grey", "pattern": "noise"}),
    ],
    "respirator": [
        ("grey", {}),
        ("black, olive", {"color": "black", "cartridge_color": "olive"}),
        ("blue", {"color": "blue", "cartridge_color": "magenta"}),
    ],
}
WEAR_ROW = ["surgical", "kn95", "n95", "cloth", "respirator"]
_BACKGROUND = 0.55
_LIGHT = np.array([-0.45, -0.55, 0.70])


def _shade(texture: MaskTexture) -> np.ndarray:
    """Texture over the grey background, lit through its relief, as float RGB."""
    rgb, alpha = texture.rgba[..., :3], texture.rgba[..., 3:]
    gy, gx = np.gradient(texture.height.astype(np.float32))
    normal = np.dstack([-gx, -gy, np.ones_like(gx)])
    normal /= np.linalg.norm(normal, axis=2, keepdims=True)
    light = _LIGHT / np.linalg.norm(_LIGHT)
    lambert = np.clip(normal @ light, 0.0, 1.0)
    half = (light + np.array([0.0, 0.0, 1.0])) / np.linalg.norm(light + np.array([0, 0, 1.0]))
    spec = float(texture.params.get("gloss", 0.0)) * np.clip(normal @ half, 0, 1) ** 40
    lit = rgb * (0.35 + 0.75 * lambert[..., None]) + spec[..., None]
    return np.clip(lit, 0, 1) * alpha + _BACKGROUND * (1.0 - alpha)


def _cell(style: MaskStyle, wear: str, size: int, label: str) -> np.ndarray:
    frame = face_frame(wear, size)
    texture = style.draw(frame, np.random.default_rng(0))
    img = _shade(texture)
    outline = np.round(frame.mask_polygon() * 16).astype(np.int32)
    guide = np.full_like(img, _BACKGROUND)
    cv2.polylines(guide, [outline], True, (0.68, 0.68, 0.68), 1, cv2.LINE_AA, 4)
    alpha = texture.rgba[..., 3:]
    img = img * alpha + guide * (1.0 - alpha)
    for s in texture.straps:
        ear = frame.ear_right if s["side"] == "right" else frame.ear_left
        start = np.asarray(s["anchor"])
        mid = (start + ear) / 2 + np.array([0.0, -0.04 * size if "upper" in s["kind"] else 0.0])
        t = np.linspace(0, 1, 20)[:, None]
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * mid + t**2 * ear
        width = max(round(s["width_cm"] * frame.px_per_cm), 1)
        cv2.polylines(img, [np.round(curve * 16).astype(np.int32)], False, s["color"], width,
                      cv2.LINE_AA, 4)
    top = frame.mask_polygon()[:, 1].min()
    bottom = frame.mask_polygon()[:, 1].max()
    y0 = max(int(top - 0.06 * size), 0)
    y1 = min(int(bottom + 0.1 * size), size)
    crop = np.round(np.clip(img[y0:y1], 0, 1) * 255).astype(np.uint8)
    cv2.putText(crop, label, (6, crop.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, size / 700,
                (255, 255, 255), 1, cv2.LINE_AA)
    return crop


def demo_custom_files(folder: str | Path) -> tuple[Path, Path]:
    """Draw a sample custom mask (an RGBA PNG and its JSON config) into ``folder``."""
    folder = Path(folder)
    w, h = 480, 300
    png = np.zeros((h, w, 4), dtype=np.uint8)
    body = np.array([[20, 90], [240, 20], [460, 90], [440, 230], [240, 285], [40, 230]])
    cv2.fillPoly(png, [body * 16], (40, 40, 150, 255), cv2.LINE_AA, 4)
    for k in range(9):  # a printed wave band
        centre = (60 + 45 * k, 150 + int(18 * np.sin(k)))
        cv2.circle(png, centre, 16, (240, 200, 60, 255), -1, cv2.LINE_AA)
    cv2.putText(png, "maskface", (150, 215), cv2.FONT_HERSHEY_SIMPLEX, 1.2,
                (250, 250, 250, 255), 2, cv2.LINE_AA)
    image = folder / "demo_custom.png"
    cv2.imwrite(str(image), cv2.cvtColor(png, cv2.COLOR_RGBA2BGRA))
    config = image.with_suffix(".json")
    anchors = {"top_center": [240, 20], "bottom_center": [240, 285], "left": [30, 160],
               "right": [450, 160]}
    config.write_text(json.dumps({"anchors": anchors, "width_cm": 15}), encoding="utf-8")
    return image, config


def style_sheet(path: str | Path, size: int = 256) -> Path:
    """Draw every style in a few colours and patterns (and every wear) into a PNG at ``path``."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cells_by_style = {}
        for name in list_styles():
            if name == "custom":
                image, _ = demo_custom_files(tmp)
                style = create_style("custom", image=str(image))
                cells_by_style[name] = [_cell(style, "correct", size, "custom (demo PNG)")]
                continue
            cells_by_style[name] = [
                _cell(create_style(name, **params), "correct", size, f"{name}: {label}")
                for label, params in VARIANTS.get(name, [("default", {})])
            ]
        for wear in ("under_nose", "chin"):
            cells_by_style[f"wear {wear}"] = [
                _cell(create_style(name), wear, size, f"{name} {wear}")
                for name in WEAR_ROW if name in list_styles()
            ]
    width = max(len(cells) for cells in cells_by_style.values())
    for cells in cells_by_style.values():
        height = max(c.shape[0] for c in cells)
        row = np.full((height, width * size, 3), 70, dtype=np.uint8)
        for i, c in enumerate(cells):
            row[: c.shape[0], i * size : (i + 1) * size] = c
        rows.append(row)
    sheet = np.concatenate(rows, axis=0)
    out = Path(path)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return out


if __name__ == "__main__":
    print(style_sheet(sys.argv[1] if len(sys.argv) > 1 else "styles.png"))
