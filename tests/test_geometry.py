"""Face analysers on real faces and on images the tests compose from them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskface.geometry.analysers import create_analyser, detect_faces, list_analysers
from maskface.geometry.face import Pose
from maskface.geometry.fit import pose_from_rotation, rotation_from_pose, similarity_fit
from maskface.geometry.reference import NOSE_TIP, reference
from tests.conftest import read_rgb


def test_reference_face_is_symmetric_and_frontal():
    ref = reference()
    mirrored = ref.mesh * np.array([-1.0, 1.0, 1.0])
    assert np.array_equal(ref.mirror[ref.mirror], np.arange(468))
    assert np.abs(mirrored[ref.mirror] - ref.mesh).max() < 1e-4
    assert ref.normals[NOSE_TIP, 2] < -0.8  # the nose faces the camera
    assert ref.dlib68.shape == (68, 3)


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    rot = rotation_from_pose(Pose(yaw=30, pitch=-10, roll=5))
    dst = 2.5 * src @ rot.T + np.array([10.0, -3.0, 2.0])
    r, s, _ = similarity_fit(src, dst)
    assert np.allclose(r, rot, atol=1e-9) and abs(s - 2.5) < 1e-9
    pose = pose_from_rotation(r)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((30, -10, 5), abs=1e-6)


def test_registry_lists_backends():
    assert list_analysers() == ["dlib", "mediapipe"]
    with pytest.raises(ValueError, match="unknown face analyser"):
        create_analyser("nope")


@pytest.mark.parametrize("backend", ["mediapipe", "dlib"])
def test_one_frontal_face(astronaut, backend):
    faces = detect_faces(astronaut, backend)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert 150 < x0 < 210 and 240 < x1 < 300 and 50 < y0 < 110 and 160 < y1 < 215
    assert face.mesh.shape == (468, 3)
    assert abs(face.pose.yaw) < 12 and abs(face.pose.roll) < 10
    assert face.visibility > 0.9
    nose = face.mesh[NOSE_TIP]
    assert x0 < nose[0] < x1 and y0 < nose[1] < y1


def test_backends_agree_on_landmarks(astronaut):
    mp = detect_faces(astronaut, "mediapipe")[0]
    dl = detect_faces(astronaut, "dlib")[0]
    err = np.linalg.norm(mp.mesh[:, :2] - dl.mesh[:, :2], axis=1)
    assert np.median(err) < 0.06 * mp.width


def test_no_face_gives_empty_list():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    assert detect_faces(noise) == []
    assert detect_faces(np.full((120, 90, 3), 200, np.uint8)) == []


def test_mirror_image_mirrors_the_pose(lfw):
    image = read_rgb(lfw / "Al_Gore" / "Al_Gore_0002.jpg")
    a = detect_faces(image)[0].pose
    b = detect_faces(np.ascontiguousarray(image[:, ::-1]))[0].pose
    assert a.yaw < -8
    assert b.yaw == pytest.approx(-a.yaw, abs=4)
    assert b.roll == pytest.approx(-a.roll, abs=4)
    assert b.pitch == pytest.approx(a.pitch, abs=4)


@pytest.mark.parametrize(
    ("name", "sign"),
    [
        ("Qazi_Hussain_Ahmed/Qazi_Hussain_Ahmed_0001.jpg", -1),
        ("Mercedes_Amor/Mercedes_Amor_0001.jpg", 1),
    ],
)
def test_profile_views(lfw, name, sign):
    # Qazi_Hussain_Ahmed_0001 has a man in profile behind the (frontal) subject.
    face = max(detect_faces(read_rgb(lfw / name)), key=lambda f: sign * f.pose.yaw)
    assert 45 < sign * face.pose.yaw < 75
    # The nose tip sits off the face's centre toward the side it turns to.
    centre = face.mesh[:, 0].mean()
    assert sign * (face.mesh[NOSE_TIP, 0] - centre) > 0.1 * face.width


def test_in_plane_rotation_shows_as_roll(astronaut):
    h, w = astronaut.shape[:2]
    base = detect_faces(astronaut)[0]
    cx, cy = base.mesh[NOSE_TIP, :2]
    turn = cv2.getRotationMatrix2D((float(cx), float(cy)), -30, 1.0)  # clockwise on screen
    rotated = cv2.warpAffine(astronaut, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    face = detect_faces(rotated)[0]
    assert face.pose.roll - base.pose.roll == pytest.approx(30, abs=5)


def test_small_face_in_a_large_photo(astronaut):
    face_crop = astronaut[40:240, 130:330]
    canvas = np.full((1600, 1600, 3), 90, np.uint8)
    small = cv2.resize(face_crop, (60, 60), interpolation=cv2.INTER_AREA)
    canvas[1200:1260, 300:360] = small
    faces = detect_faces(canvas)
    assert len(faces) == 1
    assert 290 < faces[0].mesh[NOSE_TIP, 0] < 370 and 1190 < faces[0].mesh[NOSE_TIP, 1] < 1270


def test_face_touching_the_border(astronaut):
    cut = np.ascontiguousarray(astronaut[60:160, 170:])  # chin and forehead cut off
    faces = detect_faces(cut)
    assert len(faces) == 1
    assert faces[0].mesh[:, 1].max() > cut.shape[0]  # the chin lies beyond the border
    assert faces[0].visibility < 0.99


def test_many_faces(astronaut, lfw):
    tiles = [astronaut[30:280, 100:350]]
    for name in ("Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Al_Gore/Al_Gore_0002.jpg",
                 "Abdullah_Gul/Abdullah_Gul_0010.jpg"):
        tiles.append(cv2.resize(read_rgb(lfw / name), (250, 250)))
    # Abdullah_Gul_0010 also shows people in the background; the tiles' central faces matter.
    group = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)
    faces = detect_faces(group)
    centres = [(x, y) for x in (125, 375) for y in (125, 375)]
    for cx, cy in centres:
        assert any(abs(f.mesh[NOSE_TIP, 0] - cx) < 50 and abs(f.mesh[NOSE_TIP, 1] - cy) < 60
                   for f in faces), (cx, cy)
