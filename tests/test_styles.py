"""Tests of the mask style catalogue (maskface.styles)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskface.render.layout import face_frame
from maskface.styles import (
    PATTERNS,
    MaskStyle,
    clear_cache,
    create_style,
    list_styles,
    random_style,
    register_style,
    style_from_params,
)
from maskface.styles.base import WEAR_STYLES, FaceFrame, MaskTexture
from maskface.styles.colors import NAMED_COLORS, parse_color, to_rgb
from maskface.styles.outline import curve_y
from maskface.styles.patterns import render_pattern

BUILT_IN = ["cloth", "kn95", "n95", "respirator", "surgical"]
SIZES = [128, 320, 512]


def draw(name: str, wear: str = "correct", size: int = 256, seed: int = 0, **params):
    frame = face_frame(wear, size)
    return frame, create_style(name, seed=seed, **params).draw(frame, np.random.default_rng(0))


def polygon_mask(points: np.ndarray, size: int, grow_px: int = 0) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    if grow_px:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1,) * 2)
        mask = cv2.dilate(mask, kernel)
    return mask.astype(bool)


def inside_median(tex: MaskTexture) -> np.ndarray:
    """Typical colour of the mask (the median ignores valves, cartridges and seams)."""
    return np.median(tex.rgba[..., :3][tex.rgba[..., 3] > 0.99], axis=0)


def column_profile(tex: MaskTexture, frame: FaceFrame, x: float) -> tuple[np.ndarray, int]:
    """Height down column x between the top and bottom curves, and the row it starts at."""
    col = round(x)
    top = int(np.ceil(curve_y(frame.top_curve, x)))
    bottom = int(curve_y(frame.bottom_curve, x))
    return tex.height[top:bottom, col], top


def test_registry_lists_every_style():
    assert list_styles() == sorted(["cloth", "custom", "kn95", "n95", "respirator", "surgical"])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("wear", WEAR_STYLES)
@pytest.mark.parametrize("name", BUILT_IN)
def test_every_style_draws_a_fitted_soft_texture(name, wear, size):
    frame, tex = draw(name, wear, size)
    rgba, height = tex.rgba, tex.height
    assert rgba.shape == (size, size, 4) and rgba.dtype == np.float32
    assert height.shape == (size, size) and height.dtype == np.float32
    assert np.isfinite(rgba).all() and np.isfinite(height).all()
    assert rgba.min() >= 0.0 and rgba.max() <= 1.0
    alpha = rgba[..., 3]
    fitted = polygon_mask(frame.mask_polygon(), size)
    assert alpha.sum() > 0.25 * fitted.sum()  # a real mask, not a speck
    # (almost) all coverage between the top and bottom curves, within 3 mm
    near = polygon_mask(frame.mask_polygon(), size, grow_px=max(round(0.3 * frame.px_per_cm), 1))
    assert alpha[~near].sum() < 0.005 * alpha.sum()
    # anti-aliased outline: fractional alpha all along the border
    hard = (alpha > 0.5).astype(np.uint8)
    border = hard - cv2.erode(hard, np.ones((3, 3), np.uint8))
    soft = ((alpha > 0.02) & (alpha < 0.98)).sum()
    assert soft >= 0.5 * border.sum()
    assert np.abs(height[alpha == 0]).max(initial=0.0) == 0.0  # no relief off the mask


@pytest.mark.parametrize("name", BUILT_IN)
def test_straps_are_anchored_on_the_mask_on_both_sides(name):
    frame, tex = draw(name, size=256)
    assert {s["side"] for s in tex.straps} == {"right", "left"}
    for s in tex.straps:
        x, y = s["anchor"]
        assert s["kind"] in ("ear_loop", "head_upper", "head_lower")
        assert 0 < s["width_cm"] < 3 and all(0 <= c <= 1 for c in s["color"])
        # on the mask, on the wearer's side it belongs to (right = canvas left)
        assert tex.rgba[round(y), round(x), 3] > 0.5
        assert (x < frame.center_x) == (s["side"] == "right")


def crease_count(profile: np.ndarray, drop: float) -> int:
    """Sharp downward steps going down a column (runs of steep pixels count once)."""
    steep = np.diff(profile) < -drop
    return int(np.sum(steep[1:] & ~steep[:-1]) + steep[0])


@pytest.mark.parametrize("pleats", [3, 2, 5])
def test_surgical_midline_has_one_crease_per_pleat(pleats):
    frame, tex = draw("surgical", size=512, pleats=pleats)
    profile, _ = column_profile(tex, frame, frame.center_x)
    hems = round(0.8 * frame.px_per_cm)  # the bound edges step down too: leave them out
    assert crease_count(profile[hems:-hems], drop=0.3 * 0.12 * frame.px_per_cm) == pleats


def test_surgical_has_bound_edges_and_a_nose_wire():
    frame, tex = draw("surgical", size=512)
    profile, _ = column_profile(tex, frame, frame.center_x)
    hem = round(0.5 * frame.px_per_cm)
    # the top hem (with the wire inside) stands above the panel just under it
    assert profile[2 : hem - 1].mean() > profile[hem + 2 : 2 * hem].mean() + 0.5
    frame_plain, plain = draw("surgical", size=512, nose_wire=False)
    flat, _ = column_profile(plain, frame_plain, frame.center_x)
    assert profile[: hem].max() > flat[: hem].max() + 0.5


def test_kn95_has_a_midline_ridge():
    frame, tex = draw("kn95", size=512)
    cx = round(frame.center_x)
    off = round(0.8 * frame.px_per_cm)
    top = int(curve_y(frame.top_curve, cx)) + round(2 * frame.px_per_cm)
    bottom = int(curve_y(frame.bottom_curve, cx)) - round(2 * frame.px_per_cm)
    h = tex.height[top:bottom]
    ridge = (h[:, cx] > h[:, cx - off] + 1.0) & (h[:, cx] > h[:, cx + off] + 1.0)
    assert ridge.mean() > 0.9
    # and the surgical mask, pleated across, has none
    _, surgical = draw("surgical", size=512)
    s = surgical.height[top:bottom]
    assert ((s[:, cx] > s[:, cx - off] + 1.0) & (s[:, cx] > s[:, cx + off] + 1.0)).mean() < 0.1


def test_n95_is_a_dome_and_its_valve_stands_out():
    frame, tex = draw("n95", size=256)
    h = tex.height
    peak_y, peak_x = np.unravel_index(np.argmax(h), h.shape)
    assert abs(peak_x - frame.center_x) < 0.1 * frame.size
    assert frame.nose_tip[1] - 10 < peak_y < frame.chin[1]
    assert h.max() > 0.8 * frame.px_per_cm
    _, valved = draw("n95", size=256, valve=True)
    _, valve_square = draw("n95", size=256, valve=True, valve_shape="square")
    region = (slice(round(frame.mouth_center[1]) - 5, round(frame.chin[1])),
              slice(round(frame.center_x) - 8, round(frame.center_x) + 9))
    assert valved.height[region].max() > tex.height[region].max() + 0.4 * frame.px_per_cm
    assert not np.array_equal(valved.rgba, valve_square.rgba)


def test_respirator_cartridges_stand_out_and_it_is_glossier():
    frame, tex = draw("respirator", size=256)
    cx, off = round(frame.center_x), round(3.5 * frame.px_per_cm)
    left, right = tex.height[:, : cx - off].max(), tex.height[:, cx + off :].max()
    # cylinders on both cheeks, standing out further than the face piece's dome
    assert min(left, right) > 1.5 * frame.px_per_cm
    nose = tex.height[round(frame.nose_tip[1]), cx]
    assert min(left, right) > nose > 0.5 * frame.px_per_cm
    _, surgical = draw("surgical", size=256)
    assert tex.params["gloss"] > 3 * surgical.params["gloss"]


@pytest.mark.parametrize("name", ["surgical", "n95", "kn95", "cloth", "respirator"])
@pytest.mark.parametrize("color", ["red", "navy", "#4080c0", "#c84"])
def test_colour_by_name_or_hex_sets_the_mask_colour(name, color):
    frame, tex = draw(name, size=256, color=color)
    if name == "respirator":  # cartridges and valve take much of it: look at the nose part
        rows = slice(round(frame.nose_tip[1]), round(frame.mouth_center[1]))
        cols = slice(round(frame.center_x - 2 * frame.px_per_cm), round(frame.center_x))
        typical = np.median(tex.rgba[rows, cols, :3].reshape(-1, 3), axis=0)
    else:
        typical = inside_median(tex)
    assert np.abs(typical - to_rgb(color)).max() < 0.05, (typical, to_rgb(color))
    assert tex.params["color"] == parse_color(color)


def test_colour_parsing():
    assert parse_color("Light Blue") == parse_color("light_blue") == NAMED_COLORS["light blue"]
    assert parse_color("#ABC") == "#aabbcc" and parse_color("#A0b1C2") == "#a0b1c2"
    assert parse_color("gray") == parse_color("grey")
    for bad in ["blurple", "#12345", "#ggg", "", "rgb(1,2,3)"]:
        with pytest.raises(ValueError, match="light blue"):
            parse_color(bad)


def test_invalid_names_raise_clear_errors():
    with pytest.raises(ValueError, match="surgical"):
        create_style("bandana")
    with pytest.raises(ValueError, match="light blue"):
        create_style("surgical", color="blurple")
    with pytest.raises(ValueError, match="camouflage"):
        create_style("cloth", pattern="paisley")
    with pytest.raises(ValueError, match="solid"):
        create_style("n95", pattern="floral")  # not made in prints
    with pytest.raises(ValueError, match="valve_shape"):
        create_style("n95", valve_shape="hexagon")
    with pytest.raises(ValueError, match="pleats"):
        create_style("surgical", pleats=0)
    with pytest.raises(ValueError, match="takes"):
        create_style("respirator", pattern="dots")
    with pytest.raises(ValueError, match="pattern_scale_cm"):
        create_style("cloth", pattern="dots", pattern_scale_cm=-1)
    with pytest.raises(ValueError, match="seed"):
        create_style("cloth", seed=-3)
    with pytest.raises(ValueError, match="valve must be True or False"):
        create_style("n95", valve="yes")


@pytest.mark.parametrize("name", BUILT_IN)
def test_drawing_is_deterministic_and_seeded(name):
    frame = face_frame("correct", 192)
    style = create_style(name)
    a = style.draw(frame, np.random.default_rng(42))
    for other in BUILT_IN * 2:  # redraw among other work: results must not depend on it
        create_style(other).draw(face_frame("chin", 160), np.random.default_rng(1))
        clear_cache()
        b = style.draw(frame, np.random.default_rng(42))
        assert a.rgba is not b.rgba
        assert np.array_equal(a.rgba, b.rgba) and np.array_equal(a.height, b.height)
        assert a.params == b.params and a.straps == b.straps
    c = create_style(name, seed=(a.params["seed"] + 1)).draw(frame, np.random.default_rng(42))
    assert not np.array_equal(a.height, c.height)


@pytest.mark.parametrize("name", BUILT_IN)
def test_params_are_json_and_redraw_the_same_mask(name):
    rng = np.random.default_rng(7)
    frame = face_frame("under_nose", 192)
    tex = random_style(name, rng).draw(frame, rng)
    text = json.dumps(tex.params)
    again = style_from_params(json.loads(text)).draw(frame, np.random.default_rng(99))
    assert np.array_equal(tex.rgba, again.rgba) and np.array_equal(tex.height, again.height)
    assert json.loads(json.dumps(tex.straps)) == tex.straps


def test_cached_draws_are_shared_read_only_and_fast():
    frame = face_frame("correct", 512)
    style = create_style("cloth", color="teal", pattern="floral", seed=3)
    first = style.draw(frame, np.random.default_rng(0))
    again = create_style("cloth", color="teal", pattern="floral", seed=3).draw(
        face_frame("correct", 512), np.random.default_rng(1)
    )
    assert again.rgba is first.rgba
    with pytest.raises(ValueError):
        again.rgba[0, 0, 0] = 1.0
    again.params["color"] = "changed"  # records are copies
    assert style.draw(frame, np.random.default_rng(0)).params["color"] != "changed"
    times = []
    for _ in range(30):
        start = time.perf_counter()
        style.draw(frame, np.random.default_rng(0))
        times.append(time.perf_counter() - start)
    assert np.median(times) < 1e-3


def test_random_styles_look_like_the_real_population():
    rng = np.random.default_rng(0)
    surgical = [random_style("surgical", rng) for _ in range(300)]
    light_blue = np.mean([s.color == parse_color("light blue") for s in surgical])
    assert 0.3 < light_blue < 0.6
    assert np.mean([s.pattern == "solid" for s in surgical]) > 0.8
    n95 = [random_style("n95", rng) for _ in range(200)]
    assert np.mean([s.color == parse_color("white") for s in n95]) > 0.65
    cloth = [random_style("cloth", rng) for _ in range(200)]
    assert {s.pattern for s in cloth} == set(PATTERNS)
    picked = {random_style(None, rng).name for _ in range(200)}
    assert picked == set(BUILT_IN)
    with pytest.raises(ValueError, match="custom"):
        random_style("custom", rng)


def test_patterns_differ_and_keep_their_scale():
    size, ppc = 256, 256 / 24
    primary, secondary = parse_color("navy"), parse_color("white")
    images = {
        p: render_pattern(p, primary, secondary, 1.5, ppc, size, 0) for p in PATTERNS
    }
    for img in images.values():
        assert img.shape == (size, size, 3) and np.isfinite(img).all()
        assert img.min() >= 0.0 and img.max() <= 1.0
    names = list(PATTERNS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(images[a] - images[b]).mean() > 0.02, (a, b)
    # a print twice as large has about half as many colour edges
    for p in ("stripes", "checks", "dots"):
        small = render_pattern(p, primary, secondary, 1.0, ppc, size, 1)
        large = render_pattern(p, primary, secondary, 2.0, ppc, size, 1)
        edges_small = np.abs(np.diff(small[..., 0], axis=0)).sum()
        edges_small += np.abs(np.diff(small[..., 0], axis=1)).sum()
        edges_large = np.abs(np.diff(large[..., 0], axis=0)).sum()
        edges_large += np.abs(np.diff(large[..., 0], axis=1)).sum()
        assert 1.5 < edges_small / edges_large < 2.7, p
    # seeds move the print
    a = render_pattern("camouflage", primary, secondary, 4.0, ppc, size, 0)
    b = render_pattern("camouflage", primary, secondary, 4.0, ppc, size, 1)
    assert np.abs(a - b).mean() > 0.02


def write_custom(folder: Path, mode: str = "RGBA", **config) -> Path:
    """A red mask with a blue band, 400 x 260, and its anchors."""
    img = np.zeros((260, 400, 4), np.uint8)
    body = np.array([[20, 40], [200, 10], [380, 40], [370, 220], [200, 250], [30, 220]])
    cv2.fillPoly(img, [body], (200, 30, 30, 255), cv2.LINE_AA)
    cv2.rectangle(img, (20, 120), (380, 140), (30, 30, 200, 255), -1)
    img[..., :3][img[..., 3] == 0] = 0
    path = folder / "mine.png"
    from PIL import Image

    pil = Image.fromarray(img, "RGBA")
    (pil if mode == "RGBA" else pil.convert(mode)).save(path)
    anchors = {"top_center": [200, 10], "bottom_center": [200, 250], "left": [25, 130],
               "right": [375, 130]}
    config = {"anchors": anchors, **config}
    path.with_suffix(".json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("wear", WEAR_STYLES)
def test_custom_png_is_warped_onto_the_frame(tmp_path, wear):
    path = write_custom(tmp_path)
    frame = face_frame(wear, 256)
    tex = create_style("custom", image=str(path)).draw(frame, np.random.default_rng(0))
    alpha = tex.rgba[..., 3]
    assert alpha.sum() > 1000
    assert np.abs(inside_median(tex) - np.array([200, 30, 30]) / 255).max() < 0.03  # red
    blue = (tex.rgba[..., 2] > 0.6) & (alpha > 0.99)
    assert blue.sum() > 50
    # the PNG's top and bottom edges land on the frame's curves at the midline
    cx = round(frame.center_x)
    rows = np.flatnonzero(alpha[:, cx] > 0.5)
    assert abs(rows[0] - curve_y(frame.top_curve, cx)) < 3
    assert abs(rows[-1] - curve_y(frame.bottom_curve, cx)) < 3
    near = polygon_mask(frame.mask_polygon(), 256, grow_px=round(0.3 * frame.px_per_cm))
    assert alpha[~near].sum() < 0.01 * alpha.sum()
    assert len(tex.straps) == 4
    json.dumps(tex.params)
    again = style_from_params(tex.params).draw(frame, np.random.default_rng(1))
    assert np.array_equal(again.rgba, tex.rgba)


def test_custom_face_point_anchors(tmp_path):
    path = write_custom(tmp_path)
    png = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    cv2.circle(png, (200, 170), 8, (0, 255, 0, 255), -1)  # a green mark over the mouth
    cv2.imwrite(str(path), cv2.cvtColor(png, cv2.COLOR_RGBA2BGRA))
    config = json.loads(path.with_suffix(".json").read_text())
    config["anchors"].update(mouth_center=[200, 170], nose_tip=[200, 60], top_left=[20, 40],
                             bottom_right=[370, 220])
    path.with_suffix(".json").write_text(json.dumps(config))
    for wear in WEAR_STYLES:
        frame = face_frame(wear, 256)
        tex = create_style("custom", image=str(path)).draw(frame, np.random.default_rng(0))
        green = (tex.rgba[..., 1] > 0.7) & (tex.rgba[..., 0] < 0.3) & (tex.rgba[..., 3] > 0.5)
        if wear == "correct":
            ys, xs = np.nonzero(green)
            mark = np.array([xs.mean(), ys.mean()])
            assert np.linalg.norm(mark - frame.mouth_center) < 3
        else:  # the face points are not under the mask: the outline still fits the frame
            cx = round(frame.center_x)
            rows = np.flatnonzero(tex.rgba[:, cx, 3] > 0.5)
            assert abs(rows[0] - curve_y(frame.top_curve, cx)) < 3


def test_custom_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="image not found"):
        create_style("custom", image=str(tmp_path / "nope.png"))
    path = write_custom(tmp_path)
    with pytest.raises(FileNotFoundError, match="config not found"):
        create_style("custom", image=str(path), config=str(tmp_path / "none.json"))
    cfg = path.with_suffix(".json")
    cfg.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        create_style("custom", image=str(path))
    cfg.write_text(json.dumps({"anchors": {"top_center": [1, 1], "left": [0, 5]}}))
    with pytest.raises(ValueError, match="bottom_center"):
        create_style("custom", image=str(path))
    anchors = {"top_center": [200, 10], "bottom_center": [200, 250], "left": [25, 130],
               "right": [375, 130]}
    cfg.write_text(json.dumps({"anchors": {**anchors, "forehead": [1, 1]}}))
    with pytest.raises(ValueError, match="unknown anchors"):
        create_style("custom", image=str(path))
    cfg.write_text(json.dumps({"anchors": {**anchors, "left": [900, 130]}}))
    with pytest.raises(ValueError, match="between"):
        create_style("custom", image=str(path))
    cfg.write_text(json.dumps({"anchors": anchors, "straps": "braces"}))
    with pytest.raises(ValueError, match="ear_loops"):
        create_style("custom", image=str(path))
    rgb = write_custom(tmp_path, mode="RGB")
    with pytest.raises(ValueError, match="alpha"):
        create_style("custom", image=str(rgb)).draw(face_frame(), np.random.default_rng(0))


def test_custom_options(tmp_path):
    path = write_custom(tmp_path, straps="head", strap_color="navy", relief_cm=0.0, gloss=0.4)
    tex = create_style("custom", image=str(path)).draw(face_frame(), np.random.default_rng(0))
    assert {s["kind"] for s in tex.straps} == {"head_upper", "head_lower"}
    assert tex.straps[0]["color"] == [round(float(c), 4) for c in to_rgb("navy")]
    assert not tex.height.any() and tex.params["gloss"] == 0.4


def test_register_style_rejects_a_second_class_under_a_taken_name():
    class Impostor(MaskStyle):
        name = "surgical"

        def render(self, frame):
            raise NotImplementedError

        @classmethod
        def sample(cls, rng):
            return cls()

    with pytest.raises(ValueError, match="already registered"):
        register_style(Impostor)
