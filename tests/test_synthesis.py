"""Masks drawn on real faces: placement, wear styles, occlusion, determinism, the transform."""

from __future__ import annotations

import numpy as np
import pytest

import maskface
from maskface.geometry.reference import CHIN, EYE_LEFT_OUTER, EYE_RIGHT_OUTER, NOSE_TIP, UPPER_LIP
from tests.conftest import read_rgb


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    return maskface.detect_faces(astronaut)[0]


def _alpha_at(result, face, index):
    x, y = np.round(face.mesh[index, :2]).astype(int)
    return int(result.alpha[y, x])


@pytest.mark.parametrize("renderer", ["2d", "3d"])
@pytest.mark.parametrize("style", ["surgical", "n95", "kn95", "cloth", "respirator"])
def test_every_style_covers_mouth_and_nose_not_eyes(astronaut, astronaut_face, style, renderer):
    result = maskface.mask_image(astronaut, style, faces=[astronaut_face], seed=3,
                                 renderer=renderer)
    assert result.status == "ok"
    assert _alpha_at(result, astronaut_face, UPPER_LIP) == 255
    assert _alpha_at(result, astronaut_face, NOSE_TIP) == 255
    assert _alpha_at(result, astronaut_face, CHIN) > 200
    assert _alpha_at(result, astronaut_face, EYE_RIGHT_OUTER) == 0
    assert _alpha_at(result, astronaut_face, EYE_LEFT_OUTER) == 0
    # Only pixels under the mask (and its straps) change.
    changed = np.any(result.image != astronaut, axis=2)
    assert not np.any(changed & (result.alpha == 0))
    assert changed[result.alpha > 128].mean() > 0.9


@pytest.mark.parametrize("renderer", ["2d", "3d"])
def test_wear_styles_move_the_mask(astronaut, astronaut_face, renderer):
    kw = {"faces": [astronaut_face], "renderer": renderer}
    under = maskface.mask_image(astronaut, "surgical", wear="under_nose", **kw)
    chin = maskface.mask_image(astronaut, "surgical", wear="chin", **kw)
    assert _alpha_at(under, astronaut_face, NOSE_TIP) == 0
    assert _alpha_at(under, astronaut_face, UPPER_LIP) == 255
    assert _alpha_at(chin, astronaut_face, UPPER_LIP) == 0
    assert _alpha_at(chin, astronaut_face, CHIN) > 200


def test_same_seed_same_bytes_and_vary_changes_the_look(astronaut):
    a = maskface.mask_image(astronaut, "cloth", seed=7, vary=True)
    b = maskface.mask_image(astronaut, "cloth", seed=7, vary=True)
    c = maskface.mask_image(astronaut, "cloth", seed=8, vary=True)
    assert np.array_equal(a.image, b.image) and a.faces == b.faces
    assert not np.array_equal(a.image, c.image)


def test_colour_by_name_and_hex(astronaut, astronaut_face):
    black = maskface.mask_image(astronaut, "surgical", color="black", faces=[astronaut_face])
    white = maskface.mask_image(astronaut, "surgical", color="#ffffff", faces=[astronaut_face])
    inside = (black.alpha == 255) & (white.alpha == 255)
    assert black.image[inside].mean() + 80 < white.image[inside].mean()
    with pytest.raises(ValueError):
        maskface.mask_image(astronaut, "surgical", color="not-a-colour")


def test_no_face_is_a_status_not_an_error():
    blank = np.full((200, 200, 3), 128, np.uint8)
    result = maskface.mask_image(blank)
    assert result.status == "no_face" and result.faces == []
    assert np.array_equal(result.image, blank) and not result.alpha.any()


def test_record_says_what_was_drawn(astronaut):
    result = maskface.mask_image(astronaut, "kn95", color="black", seed=1)
    (record,) = result.faces
    assert record["style"]["style"] == "kn95"
    assert record["wear"] == "correct" and record["renderer"] == "2d"
    assert set(record["face"]["pose"]) == {"yaw", "pitch", "roll"}
    assert "lighting" in record


@pytest.mark.parametrize(
    "name",
    ["Qazi_Hussain_Ahmed/Qazi_Hussain_Ahmed_0001.jpg", "Mercedes_Amor/Mercedes_Amor_0001.jpg"],
)
@pytest.mark.parametrize("renderer", ["2d", "3d"])
def test_far_side_hidden_at_large_yaw(lfw, name, renderer):
    # Faces turned about 55 degrees: the mask must not spill past the far cheek's outline.
    image = read_rgb(lfw / name)
    face = max(maskface.detect_faces(image), key=lambda f: abs(f.pose.yaw))
    assert abs(face.pose.yaw) > 45
    result = maskface.mask_image(image, "surgical", faces=[face], renderer=renderer)
    _, xs = np.nonzero(result.alpha > 128)
    outline_x = face.mesh[:, 0]
    if face.pose.yaw > 0:  # turned to the image's right: the far side is the left
        assert xs.min() >= outline_x.min() - 0.03 * face.width
    else:
        assert xs.max() <= outline_x.max() + 0.03 * face.width
    assert _alpha_at(result, face, UPPER_LIP) > 200


def test_all_faces_in_a_group(astronaut):
    group = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    result = maskface.mask_image(np.ascontiguousarray(group), faces="all")
    assert len(result.faces) == 2
    left, right = result.alpha[:, :512], result.alpha[:, 512:]
    assert left.any() and right.any()


def test_add_mask_transform_is_reproducible(astronaut):
    t1 = maskface.AddMask(styles=["surgical", "kn95"], seed=5)
    t2 = maskface.AddMask(styles=["surgical", "kn95"], seed=5)
    out1, out2 = t1(image=astronaut, label=3), t2(image=astronaut, label=3)
    assert out1["label"] == 3
    assert np.array_equal(out1["image"], out2["image"])
    assert out1["mask_params"]["style"] in ("surgical", "kn95")
    skip = maskface.AddMask(p=0.0)(image=astronaut)
    assert skip["mask_params"] is None and skip["image"] is astronaut


# --- input checks, face choice, status, gaps (issue 14) ---------------------------------------


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((64, 64, 3), np.uint16), "16-bit"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
        (np.zeros((64, 64, 2), np.uint8), "must be gray"),
        (np.zeros((4, 64, 64, 3), np.uint8), "must be gray"),
        ([[0, 1], [2, 3]], "numpy array"),
    ],
)
def test_mask_image_checks_its_input(image, words):
    from maskface.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=words):
        maskface.mask_image(image)


def test_gray_and_rgba_images_are_masked_in_their_own_layout(astronaut, astronaut_face):
    rgb = maskface.mask_image(astronaut, "kn95", faces=[astronaut_face], seed=2)
    gray = maskface.mask_image(astronaut.mean(axis=2).astype(np.uint8), "kn95", seed=2)
    assert gray.image.shape == astronaut.shape[:2] and gray.status == "ok"
    covered = gray.alpha == 255
    assert covered.mean() > 0.01
    assert np.array_equal(gray.image[~(gray.alpha > 0)],
                          astronaut.mean(axis=2).astype(np.uint8)[~(gray.alpha > 0)])

    transparency = np.full(astronaut.shape[:2], 100, np.uint8)
    transparency[:, :100] = 0
    rgba = maskface.mask_image(np.dstack([astronaut, transparency]), "kn95",
                               faces=[astronaut_face], seed=2)
    assert rgba.image.shape == (*astronaut.shape[:2], 4)
    assert np.array_equal(rgba.image[..., :3], rgb.image)
    # The transparency is kept where there is no mask; the mask itself is opaque.
    assert np.array_equal(rgba.image[..., 3][rgba.alpha == 0], transparency[rgba.alpha == 0])
    assert (rgba.image[..., 3][rgba.alpha == 255] == 255).all()


def test_sides_of_32767_pixels_are_refused_before_native_code():
    # OpenCV inside MediaPipe aborts the whole process on such images: run it apart.
    import subprocess
    import sys

    code = (
        "import numpy as np, maskface\n"
        "for call in (maskface.detect_faces, maskface.mask_image):\n"
        "    try:\n"
        "        call(np.zeros((40, 32767, 3), np.uint8))\n"
        "    except maskface.InvalidInputError as e:\n"
        "        print('refused:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("refused: the image is 32767x40 pixels") == 2


def test_min_face_applies_to_the_api_the_batch_job_and_the_sheets(astronaut):
    from maskface.mask_job import MaskJob
    from maskface.sheet import style_rows

    assert maskface.mask_image(astronaut, min_face=90).status == "ok"  # the face is ~95 px
    assert maskface.mask_image(astronaut, min_face=120).status == "no_face"
    assert maskface.select_faces(astronaut, "all", min_face=120) == []
    job = MaskJob(min_face=120)
    result = job(astronaut, relpath="a.png", seed=0)
    assert result.status == "no_face" and result.outputs == []
    assert "none at least 120 px" in result.reason
    assert MaskJob(min_face=90)(astronaut, relpath="a.png", seed=0).status == "ok"
    assert style_rows([("a", astronaut)], ["kn95"], min_face=120) == []
    assert len(style_rows([("a", astronaut)], ["kn95"], min_face=90)) == 1


def test_status_comes_from_what_was_drawn(astronaut):
    from maskface.mask_job import MaskJob

    # The face is found, but a mask worn on the chin falls below this crop: nothing is drawn.
    crop = np.ascontiguousarray(astronaut[:120])
    assert len(maskface.detect_faces(crop)) == 1
    result = MaskJob(wear=("chin",))(crop, relpath="top.png", seed=0)
    assert result.status == "no_face" and result.outputs == []
    assert "no mask could be drawn" in result.reason
    kept = MaskJob(wear=("chin",), keep_unmasked=True)(crop, relpath="top.png", seed=0)
    assert kept.status == "no_face" and np.array_equal(kept.outputs[0].data, crop)
    assert MaskJob(wear=("under_nose",))(astronaut, relpath="a.png", seed=0).status == "ok"


# Faces whose masks had a few pixels of face showing through inside the mask (dark dots),
# where an ear loop leaves the mask or between two triangles: (image, style, seed).
_GAPPY = [
    ("Adriana_Lima/Adriana_Lima_0001.jpg", "kn95", 1),
    ("Allison_Janney/Allison_Janney_0001.jpg", "respirator", 4),
    ("Art_Howe/Art_Howe_0002.jpg", "surgical", 10),
    ("Colin_Powell/Colin_Powell_0038.jpg", "cloth", 23),
    ("Hal_Gehman/Hal_Gehman_0005.jpg", "kn95", 51),
    ("Kenneth_Branagh/Kenneth_Branagh_0001.jpg", "n95", 77),
]


def _enclosed_gaps(alpha: np.ndarray, largest: int = 8) -> list[int]:
    """Sizes of the small patches under half covered that the mask surrounds entirely."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats((alpha < 128).astype(np.uint8),
                                                          connectivity=4)
    h, w = alpha.shape
    return [int(area) for x, y, bw, bh, area in stats[1:count]
            if area <= largest and x > 0 and y > 0 and x + bw < w and y + bh < h]


def test_no_pinholes_inside_the_mask(lfw):
    for name, style, seed in _GAPPY:
        result = maskface.mask_image(read_rgb(lfw / name), style, seed=seed)
        assert result.status == "ok"
        assert _enclosed_gaps(result.alpha) == [], name

    from maskface.synthesis import fill_holes
    # A one-pixel gap and a 2x2 hole take the colour and coverage around them; an opening
    # wider than a pixel that reaches the outside is left alone.
    rgb = np.full((20, 20, 3), 0.8, np.float32)
    alpha = np.zeros((20, 20), np.float32)
    alpha[2:18, 2:18] = 1.0
    alpha[5, 5] = 0.0
    alpha[10:12, 10:12] = 0.1
    alpha[2:18, 14:17] = 0.0  # a cut through the mask, open at both ends
    rgb[5, 5] = rgb[10:12, 10:12] = 0.0
    before = alpha.copy()
    assert fill_holes(rgb, alpha) == 5
    assert alpha[5, 5] == 1.0 and (alpha[10:12, 10:12] == 1.0).all()
    assert np.allclose(rgb[5, 5], 0.8) and np.allclose(rgb[10:12, 10:12], 0.8)
    assert (alpha[2:18, 14:17] == 0).all() and (alpha >= before).all()
