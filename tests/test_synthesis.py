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
