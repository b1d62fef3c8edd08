"""The one face locator: every face in a photo, the central one, and the chips recognizers see."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskface.geometry.locate import (
    CENTER_BOX,
    DETECTORS,
    LocatedFace,
    center_face,
    center_landmarks,
    cut_chip,
    face_chip,
    locate,
    locate_faces,
)
from tests.conftest import read_rgb

# Three LFW deep-funneled images: one face each, centred, as LFW crops them.
_SINGLE = ("Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Gloria_Macapagal_Arroyo/"
           "Gloria_Macapagal_Arroyo_0001.jpg", "Tony_Blair/Tony_Blair_0001.jpg")
# blake2b (8 bytes) of the int16 landmarks `locate` gave on them before it moved here from
# maskface.evaluation.embeddings, per detector (blazeface with the hog_box weights 'HOG_DIGEST').
_BEFORE: dict[str, tuple[str, ...]] = {
    "blazeface": ("6545f2cb44a88d4e", "dc7d5eb7f446251d", "df04774de8ff0e68"),
    "dlib": ("b89ab63ccd877316", "5dfbc6a217be192a", "40e461dd637bf896"),
}
HOG_DIGEST = "89584aa9"


def _digest(points: np.ndarray) -> str:
    return hashlib.blake2b(np.asarray(points).astype(np.int16).tobytes(), digest_size=8).hexdigest()


@pytest.fixture(scope="module")
def singles(lfw: Path) -> list[np.ndarray]:
    return [read_rgb(lfw / name) for name in _SINGLE]


def test_locate_gives_the_landmarks_it_gave_before_the_move(singles: list[np.ndarray]) -> None:
    from maskface.geometry import hog_box

    for detector, digests in _BEFORE.items():
        if detector == "blazeface" and hog_box.weights_digest() != HOG_DIGEST:
            continue  # refitted box map: other landmarks on purpose
        got = tuple(_digest(locate(image, detector, upsample=1)) for image in singles)
        assert got == digests, detector


@pytest.mark.parametrize("detector", ["blazeface", "dlib"])
def test_one_face_photo_locate_faces_equals_locate(singles: list[np.ndarray],
                                                   detector: str) -> None:
    for image in singles:
        faces = locate_faces(image, detector)
        assert len(faces) == 1
        face = faces[0]
        assert isinstance(face, LocatedFace) and face.method == "detected"
        assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float64
        np.testing.assert_allclose(face.landmarks, locate(image, detector), atol=1e-9, rtol=0)
        x0, y0, x1, y1 = face.box
        centre = face.landmarks.mean(0)
        assert x0 < centre[0] < x1 and y0 < centre[1] < y1
        assert 0 < face.score <= 1


def _two_faces(singles: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Two LFW faces side by side on a wide canvas: (x, y, side) of each pasted crop."""
    canvas = np.full((420, 900, 3), 96, np.uint8)
    placed = [(40, 60, 300), (520, 120, 200)]  # the larger on the left
    for image, (x, y, side) in zip(singles[:2], placed, strict=True):
        canvas[y : y + side, x : x + side] = cv2.resize(image, (side, side),
                                                        interpolation=cv2.INTER_AREA)
    return canvas, placed


@pytest.mark.parametrize("detector", ["blazeface", "dlib", pytest.param(
    "mediapipe", marks=pytest.mark.slow)])  # starting MediaPipe's graphs takes seconds
def test_two_faces_side_by_side_largest_first(singles: list[np.ndarray], detector: str) -> None:
    canvas, placed = _two_faces(singles)
    faces = locate_faces(canvas, detector)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    for face, (x, y, side) in zip(faces, placed, strict=True):
        cx, cy = (face.box[:2] + face.box[2:]) / 2
        # the face's box sits inside the crop it was pasted in, around its middle
        assert x < cx < x + side and y < cy < y + side
        assert 0.25 * side < face.box[2] - face.box[0] < side
        lm = face.landmarks
        assert (lm[:, 0] > x).all() and (lm[:, 0] < x + side).all()
        assert (lm[:, 1] > y).all() and (lm[:, 1] < y + side).all()
    # locate keeps one face: the nearer the centre (the smaller, right one here)
    central = locate(canvas, detector)
    assert central is not None
    np.testing.assert_allclose(central, faces[1].landmarks, atol=1e-9, rtol=0)


def test_no_face_gives_an_empty_list() -> None:
    flat = np.full((240, 320, 3), 90, np.uint8)
    for detector in DETECTORS:
        assert locate_faces(flat, detector, upsample=0) == []
    with pytest.raises(ValueError, match="unknown detector"):
        locate_faces(flat, "nope")


def test_min_size_drops_small_faces(singles: list[np.ndarray]) -> None:
    canvas, _ = _two_faces(singles)
    faces = locate_faces(canvas, "blazeface")
    smaller = (faces[1].box[2] - faces[1].box[0] + faces[1].box[3] - faces[1].box[1]) / 2
    kept = locate_faces(canvas, "blazeface", min_size=int(smaller) + 5)
    assert len(kept) == 1
    np.testing.assert_array_equal(kept[0].landmarks, faces[0].landmarks)


def test_grey_and_alpha_images_work_bad_arrays_are_clear(singles: list[np.ndarray]) -> None:
    image = singles[0]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    assert len(locate_faces(grey)) == 1
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(locate_faces(rgba)[0].landmarks,
                                  locate_faces(image)[0].landmarks)
    with pytest.raises(ValueError, match="expected a uint8 image"):
        locate_faces(image.astype(np.float32))
    with pytest.raises(ValueError, match="the image is empty"):
        locate_faces(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"expected an RGB image \(H, W, 3\)"):
        locate(np.zeros((10, 10, 5), np.uint8))


def test_cut_chip_is_the_recognizer_alignment(singles: list[np.ndarray]) -> None:
    from maskface.recognizers.templates import align_chip

    image = singles[0]
    points = locate(image)
    chip = cut_chip(image, points)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    np.testing.assert_array_equal(chip, align_chip(image, points, "dlib150", 150, 0.25))
    assert cut_chip(image, points, "arcface112").shape == (112, 112, 3)
    assert cut_chip(image, points, "facenet160", 96).shape == (96, 96, 3)
    chip2, found, how = face_chip(image)
    assert how == "detected"
    np.testing.assert_array_equal(chip2, chip)
    np.testing.assert_array_equal(found, points)
    # given landmarks place the chip: a copy with its mouth covered is cut at the same spot
    covered = image.copy()
    covered[150:220, 70:180] = (40, 90, 160)
    chip3, _, how = face_chip(covered, landmarks=points)
    assert how == "given"
    np.testing.assert_array_equal(chip3, cut_chip(covered, points))
    assert not np.array_equal(chip3, chip)


def test_centre_fallback(singles: list[np.ndarray]) -> None:
    flat = np.full((250, 250, 3), 90, np.uint8)
    chip, points, how = face_chip(flat)
    assert how == "center" and chip.shape == (150, 150, 3)
    np.testing.assert_array_equal(points, center_landmarks(flat))
    face = center_face(singles[0])
    assert face.method == "center" and face.score == 0.0
    np.testing.assert_allclose(face.box, np.array(CENTER_BOX) * 250)
    np.testing.assert_array_equal(face.landmarks, center_landmarks(singles[0]))


def test_old_import_paths_and_one_dlib_loader() -> None:
    from maskface.evaluation import embeddings
    from maskface.geometry import dlib_backend
    from maskface.geometry import locate as module

    assert embeddings.locate is locate and embeddings.center_landmarks is center_landmarks
    assert embeddings.DETECTORS == DETECTORS and embeddings.CENTER_BOX == CENTER_BOX
    detector, predictor = module._dlib_models()
    assert dlib_backend._models() == (detector, predictor)
