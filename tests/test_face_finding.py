"""Finding every face: photos of any shape, small and masked faces, already-aligned crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import maskface
from maskface.errors import InvalidInputError, UnknownNameError
from maskface.geometry.aligned import TEMPLATES, aligned_face, template_mesh
from maskface.geometry.analysers import create_analyser, detect_faces
from maskface.geometry.blazeface import TILE_OVERLAP, BlazeFace
from maskface.geometry.detect import FaceFinder
from maskface.geometry.reference import NOSE_TIP
from maskface.recognizers import templates
from maskface.recognizers.alignment import chip_corners, landmarks68_from_mesh
from tests.conftest import read_rgb

GROUP = ("Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Al_Gore/Al_Gore_0002.jpg",
         "Angelina_Jolie/Angelina_Jolie_0001.jpg", "Colin_Powell/Colin_Powell_0001.jpg")
# An LFW photo whose tight ArcFace crop no face was found in before aligned crops were
# handled: the face fills the frame.
FILLS_THE_FRAME = "Naji_Sabri/Naji_Sabri_0006.jpg"
# LFW deep-funneled photos centre the face: this box (x0, y0, x1, y1) of a 250x250 photo
# holds the head, and the face spans about 0.7 of its height.
HEAD = (62, 45, 188, 205)
FACE_SHARE = 0.7


def _background(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, face-free colour field with some grain."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 15)
    noise = (noise - noise.mean()) / noise.std()
    return np.clip(120 + 35 * noise + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)


def _paste(canvas: np.ndarray, photo: np.ndarray, face: float, x: int, y: int) -> tuple:
    """Paste the head of an LFW photo so its face is ``face`` pixels tall, top-left at (x, y);
    returns the face's centre in the canvas."""
    x0, y0, x1, y1 = HEAD
    k = face / (FACE_SHARE * (y1 - y0))
    head = cv2.resize(photo[y0:y1, x0:x1], (round((x1 - x0) * k), round((y1 - y0) * k)),
                      interpolation=cv2.INTER_AREA)
    canvas[y : y + head.shape[0], x : x + head.shape[1]] = head
    return x + head.shape[1] / 2, y + head.shape[0] / 2


def _found_at(faces, centre, tolerance: float) -> bool:
    return any(np.hypot(*(f.mesh[NOSE_TIP, :2] - centre)) < tolerance for f in faces)


@pytest.mark.parametrize("shape", [(400, 1100), (733, 1100)])
def test_landscape_group_photo_finds_all_four_faces(lfw, shape):
    h, w = shape
    canvas = _background(h, w)
    size = 130  # before: two of the four found at 1100x400, three at 1100x733
    side = round((HEAD[2] - HEAD[0]) * size / (FACE_SHARE * (HEAD[3] - HEAD[1])))
    tall = round((HEAD[3] - HEAD[1]) * size / (FACE_SHARE * (HEAD[3] - HEAD[1])))
    gap = (w - 4 * side) // 5
    centres = [_paste(canvas, read_rgb(lfw / name), size, gap + (side + gap) * i, (h - tall) // 2)
               for i, name in enumerate(GROUP)]
    faces = detect_faces(canvas)
    for centre in centres:
        assert _found_at(faces, centre, 0.4 * size), centre
    result = maskface.mask_image(canvas, "surgical", faces="all")
    assert len(result.faces) == 4


def test_small_face_in_a_large_photo(lfw):
    canvas = _background(1200, 1600, seed=1)
    centre = _paste(canvas, read_rgb(lfw / GROUP[1]), 24, 736, 587)  # missed before
    faces = detect_faces(canvas)
    assert len(faces) == 1
    assert _found_at(faces, centre, 8)


def test_small_masked_faces_in_a_wide_strip(lfw):
    """A crowd of masked faces of 26-40 pixels along a 3:1 street-like strip."""
    canvas = _background(256, 768, seed=2)
    centres = []
    for i, name in enumerate(GROUP):
        photo = read_rgb(lfw / name)
        masked = maskface.mask_image(photo, "surgical", seed=i).image
        centres.append(_paste(canvas, masked, 26 + 5 * i, 40 + 180 * i, 60 + 30 * i))
    faces = detect_faces(canvas)
    for centre in centres:
        assert _found_at(faces, centre, 12), centre


def test_portrait_is_searched_once_and_all_searches_deeper(lfw, monkeypatch):
    canvas = cv2.resize(read_rgb(lfw / GROUP[0]), (400, 400), interpolation=cv2.INTER_CUBIC)
    small = _paste(canvas, read_rgb(lfw / GROUP[2]), 32, 8, 8)  # in the top-left corner
    calls = []
    original = BlazeFace.tiles
    monkeypatch.setattr(BlazeFace, "tiles", lambda self, *a: calls.append(1) or original(self, *a))
    auto = create_analyser("mediapipe")(canvas)
    assert len(auto) == 1 and not calls  # one large face: the whole-photo pass ends it
    every = create_analyser("mediapipe", search="all")(canvas)
    assert len(every) == 2 and calls
    assert _found_at(every, small, 10)


def test_searching_every_scale_adds_no_false_faces_to_a_real_photo(astronaut):
    """The badges and folds of the astronaut's suit draw BlazeFace detections that the
    landmark network's presence and the face check turn down."""
    every = create_analyser("mediapipe", search="all")
    assert len(every(astronaut)) == 1
    pair = np.ascontiguousarray(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1))
    assert len(every(pair)) == 2


def test_a_face_on_a_tile_boundary_is_found_once(lfw):
    net = BlazeFace()
    canvas = _background(256, 700, seed=4)
    # Tiles of 256 start every 144 pixels: this face straddles the first overlap.
    centre = _paste(canvas, read_rgb(lfw / GROUP[3]), 60, 256 - TILE_OVERLAP // 2 - 40, 80)
    found = net.tiles(canvas, 256)
    assert len(found) == 1
    box = found[0][0]
    assert box[0] < centre[0] < box[2] and box[1] < centre[1] < box[3]


def test_pyramid_levels_reach_the_smallest_face_and_stay_bounded():
    finder = FaceFinder(min_face=20)
    levels = finder.levels(400, 1100)
    assert levels[-1] == pytest.approx(1.5)  # a 20-pixel face becomes 30 pixels
    steps = np.diff(np.log([128 / 1100, *levels]))
    assert np.all(steps <= np.log(3) + 1e-9)
    assert finder.levels(80, 80) == []  # the letterboxed photo already shows 20-px faces
    huge = finder.levels(6000, 8000)
    assert 6000 * 8000 * huge[-1] ** 2 <= finder.max_pixels * 1.0001
    with pytest.raises(UnknownNameError, match="choose from auto, all"):
        FaceFinder(search="everything")
    with pytest.raises(InvalidInputError, match="min_face"):
        FaceFinder(min_face=0)


def _arcface_crop(lfw, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The ArcFace crop of an LFW photo's face and its five points carried into the crop."""
    photo = read_rgb(lfw / name)
    face = min(detect_faces(photo), key=lambda f: np.hypot(*((f.box[:2] + f.box[2:]) / 2 - 125)))
    five = templates.five_points(face)
    m = templates.arcface_matrix(five)
    return templates.align_chip(photo, face, "arcface112"), five @ m[:, :2].T + m[:, 2]


def test_arcface_crop_filling_the_frame_gets_a_face_and_a_mask(lfw):
    crop, truth = _arcface_crop(lfw, FILLS_THE_FRAME)
    # Detection copes on its own ...
    faces = detect_faces(crop)
    assert len(faces) == 1
    result = maskface.mask_image(crop, "surgical")
    assert result.status == "ok"
    # ... and saying the crop is aligned gives the face without detection.
    analyser = create_analyser("mediapipe", aligned="arcface112")
    face = analyser(crop)[0]
    eyes = np.linalg.norm(truth[1] - truth[0])
    assert np.linalg.norm(templates.five_points(face) - truth, axis=1).mean() < 0.1 * eyes
    masked = maskface.mask_image(crop, "surgical", analyser=analyser)
    assert masked.status == "ok"
    # The mask covers the mouth, not the eyes.
    assert masked.alpha[92, 56] == 255 and masked.alpha[51, 38] == 0


def test_cli_masks_aligned_crops_no_detector_can_find(lfw, tmp_path):
    from click.testing import CliRunner

    from maskface.cli import main
    from maskface.cli_common import ALIGNED_TEMPLATES

    assert set(ALIGNED_TEMPLATES) == set(TEMPLATES)
    crop, _ = _arcface_crop(lfw, FILLS_THE_FRAME)
    # A soft crop (as low-resolution training sets hold): the detector finds nothing in it.
    soft = cv2.GaussianBlur(crop, (0, 0), 6)
    assert detect_faces(soft) == []
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "crop.png"), soft[..., ::-1])
    base = ["apply", str(tmp_path / "in"), "--workers", "1", "--quiet", "--save-alpha"]
    found = CliRunner().invoke(main, [*base[:2], str(tmp_path / "detect"), *base[2:]])
    assert found.exit_code == 0, found.output
    assert "no face" in (tmp_path / "detect" / "manifest.csv").read_text()
    told = CliRunner().invoke(main, [*base[:2], str(tmp_path / "aligned"), *base[2:],
                                     "--aligned", "arcface112"])
    assert told.exit_code == 0, told.output
    alpha = cv2.imread(str(tmp_path / "aligned" / "crop.mask.png"), cv2.IMREAD_UNCHANGED)
    assert alpha[92, 56] == 255 and alpha[51, 38] == 0  # over the mouth, not the eyes
    wrong = CliRunner().invoke(main, [*base[:2], str(tmp_path / "x"), *base[2:],
                                      "--aligned", "arcface112", "--analyser", "dlib"])
    assert wrong.exit_code == 2 and "mediapipe" in wrong.output


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_template_mesh_sits_where_the_alignment_puts_a_face(template):
    size = TEMPLATES[template]
    mesh = template_mesh(template)
    five = templates.points5_from_68(landmarks68_from_mesh(mesh))
    if template == "arcface112":
        assert np.abs(five - templates.ARCFACE_TEMPLATE).max() < 3
    # Upright and centred in the chip, eyes above the mouth.
    assert abs(five[0, 1] - five[1, 1]) < 1
    assert five[0, 1] < five[3, 1]
    assert abs((five[0, 0] + five[1, 0]) / 2 - (size - 1) / 2) < 0.05 * size
    doubled = template_mesh(template, 2 * size)
    assert np.allclose(doubled[:, :2], mesh[:, :2] * 2, atol=1e-6)


def _carried(face, template: str) -> np.ndarray:
    """The photo's five points carried into the template's crop by the alignment itself."""
    size = TEMPLATES[template]
    if template == "facenet160":
        m = templates.facenet_matrix(face, size)
    else:
        corners = chip_corners(landmarks68_from_mesh(face.mesh), size, 0.25)
        square = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], np.float32)
        m = cv2.getAffineTransform(corners.astype(np.float32), square).astype(np.float64)
    five = templates.five_points(face)
    return five @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("template", ["facenet160", "dlib150"])
def test_aligned_faces_of_other_templates(lfw, template):
    photo = read_rgb(lfw / GROUP[1])
    face = detect_faces(photo)[0]
    crop = templates.align_chip(photo, face, template)
    got = templates.five_points(aligned_face(crop, template))
    truth = _carried(face, template)
    eyes = np.linalg.norm(truth[1] - truth[0])
    assert np.linalg.norm(got - truth, axis=1).mean() < 0.1 * eyes


def test_aligned_crop_of_another_size(lfw):
    photo = read_rgb(lfw / GROUP[1])
    crop = templates.align_chip(photo, detect_faces(photo)[0], "arcface112")
    small = aligned_face(crop, "arcface112")
    big = aligned_face(cv2.resize(crop, (224, 224), interpolation=cv2.INTER_CUBIC), "arcface112")
    # Pixel centres: x_224 + 0.5 = 2 (x_112 + 0.5).
    assert np.abs((big.mesh[:, :2] + 0.5) / 2 - 0.5 - small.mesh[:, :2]).mean() < 1.0


def test_aligned_option_rejects_what_it_cannot_use():
    with pytest.raises(UnknownNameError, match="arcface112"):
        create_analyser("mediapipe", aligned="arcface")
    with pytest.raises(InvalidInputError, match="square"):
        aligned_face(np.zeros((112, 100, 3), np.uint8), "ArcFace-112")
