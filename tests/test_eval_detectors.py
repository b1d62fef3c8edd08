"""The detectors that place dlib's 68 landmarks for recognizer alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskface.geometry.locate import DETECTORS, locate
from tests.conftest import read_rgb


def _iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))


def _error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean landmark distance in units of the interocular distance."""
    return float(np.linalg.norm(a - b, axis=1).mean() / _iod(a))


@pytest.fixture(scope="module")
def lfw_images(lfw: Path) -> list[np.ndarray]:
    paths = sorted(lfw.glob("*/*.jpg"))[::661][:20]
    return [read_rgb(p) for p in paths]


def test_blazeface_landmarks_agree_with_hog(lfw_images: list[np.ndarray]):
    errors = []
    for image in lfw_images:
        hog = locate(image, "dlib", upsample=0)
        fast = locate(image, "blazeface", upsample=0)
        assert fast is not None and fast.shape == (68, 2)
        if hog is not None:
            errors.append(_error(hog, fast))
    assert len(errors) >= 15
    # the same face, the same kind of box: the predictor lands within a few % of the eyes' span
    assert np.median(errors) < 0.03 and max(errors) < 0.15


def test_hog_box_map_is_exact_least_squares_and_equivariant():
    from maskface.geometry import hog_box

    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 50, (200, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(80, 120, (200, 2))], 1)
    keypoints = boxes[:, None, :2] + rng.uniform(0, 80, (200, 6, 2))
    true = rng.normal(0, 0.3, (hog_box.N_FEATURES, 4))
    targets = hog_box.predict(boxes, keypoints, true)
    np.testing.assert_allclose(hog_box.fit(boxes, keypoints, targets, ridge=0), true, atol=1e-8)
    # moving and scaling the detection moves and scales the predicted box the same way
    shipped = hog_box.predict(boxes, keypoints)
    moved = hog_box.predict(boxes * 3 + 40, keypoints * 3 + 40)
    np.testing.assert_allclose(moved, shipped * 3 + 40, atol=1e-9)
    assert len(hog_box.weights_digest()) == 8


def test_hog_box_predicted_from_blazeface_matches_hog(lfw_images: list[np.ndarray]):
    from maskface.geometry import hog_box
    from maskface.geometry.locate import _blazeface, _dlib_models

    ious = []
    for image in lfw_images:
        rects, found = _dlib_models()[0](image, 0), _blazeface()(image)
        if not len(rects) or not found:
            continue
        r = rects[0]
        hog = np.array([r.left(), r.top(), r.right(), r.bottom()], float)
        box = hog_box.predict(found[0][0], found[0][2])[0]
        lo, hi = np.maximum(box[:2], hog[:2]), np.minimum(box[2:], hog[2:])
        inter = np.prod(np.clip(hi - lo, 0, None))
        ious.append(inter / (np.prod(box[2:] - box[:2]) + np.prod(hog[2:] - hog[:2]) - inter))
    assert len(ious) >= 15
    # BlazeFace's own box, unmapped, overlaps HOG's by about 0.75
    assert np.median(ious) > 0.8 and min(ious) > 0.6


def test_blazeface_finds_masked_faces(lfw_images: list[np.ndarray]):
    from maskface.synthesis import mask_image

    errors = []
    for image in lfw_images[:8]:
        bare = locate(image, "blazeface", upsample=0)
        masked = mask_image(image, "n95", seed=0).image
        found = locate(masked, "blazeface", upsample=0)
        assert found is not None, "a masked face must still be found"
        errors.append(_error(bare, found))
    # the eyes and brows are visible, so the alignment barely moves
    assert np.median(errors) < 0.12


def test_blazeface_small_face_in_a_large_photo(lfw_images: list[np.ndarray]):
    import cv2

    errors = []
    for k, image in enumerate(lfw_images[:10]):
        small = cv2.resize(image, (160, 160), interpolation=cv2.INTER_AREA)
        canvas = np.full((900, 900, 3), 40 + 15 * k, np.uint8)
        y, x = 100 + 50 * k, 600 - 40 * k
        canvas[y : y + 160, x : x + 160] = small
        hog = locate(canvas, "dlib", upsample=1)
        fast = locate(canvas, "blazeface", upsample=1)
        if hog is not None and fast is not None:
            errors.append(_error(hog, fast))
    assert len(errors) >= 7
    # BlazeFace sees such a face at ~10 px of its 128: it is detected again, framed, first
    assert np.median(errors) < 0.05 and max(errors) < 0.2


def test_blazeface_falls_back_to_hog_for_small_faces(astronaut: np.ndarray):
    import cv2

    face = astronaut[0:260, 100:340]
    canvas = np.full((1400, 1400, 3), 128, np.uint8)
    canvas[600:860, 900:1140] = face
    small = cv2.resize(canvas, (1000, 1000), interpolation=cv2.INTER_AREA)
    found = locate(small, "blazeface", upsample=1)
    assert found is not None
    centre = found.mean(axis=0)
    assert 640 < centre[0] < 820 and 420 < centre[1] < 620


def test_no_face_and_unknown_detector():
    flat = np.full((200, 200, 3), 90, np.uint8)
    for detector in DETECTORS:
        assert locate(flat, detector, upsample=0) is None
    with pytest.raises(ValueError, match="unknown detector"):
        locate(flat, "nope")
