"""The recognizer registry, dlib's .dat parser, the PyTorch port of dlib's ResNet and alignment."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from maskface.recognizers import (
    Recognizer,
    create_recognizer,
    l2_normalize,
    list_recognizers,
    register_recognizer,
)
from maskface.recognizers.dlib_format import DlibFormatError, _Reader, parse_dlib_net
from tests.conftest import read_rgb

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from maskface.recognizers import dlib_resnet as dr  # noqa: E402
from maskface.recognizers.alignment import (  # noqa: E402
    align_face,
    dlib_chip,
    landmarks68_from_mesh,
)

# Two images each of three people, and a face dlib's HOG detector finds in each.
PEOPLE = ("Colin_Powell", "Gloria_Macapagal_Arroyo", "Tony_Blair")


@cache
def _dat_bytes() -> bytes:
    return dr.default_weights_path().read_bytes()


@cache
def _dlib_models():
    import dlib

    from maskface.geometry.dlib_backend import dlib_model_path

    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(dlib_model_path("shape_predictor_68_face_landmarks.dat")),
        dlib.face_recognition_model_v1(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")),
    )


def _landmarks(image: np.ndarray) -> np.ndarray:
    detector, predictor, _ = _dlib_models()
    boxes = detector(image, 1)
    assert boxes, "dlib found no face in a test image"
    return np.array([(p.x, p.y) for p in predictor(image, boxes[0]).parts()], dtype=np.float64)


@pytest.fixture(scope="module")
def faces(lfw: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(person, image, 68 landmarks) for two images of each of PEOPLE."""
    out = []
    for person in PEOPLE:
        for i in (1, 2):
            image = read_rgb(lfw / person / f"{person}_{i:04d}.jpg")
            out.append((person, image, _landmarks(image)))
    return out


@pytest.fixture(scope="module")
def port() -> Recognizer:
    return create_recognizer("dlib-resnet", device="cpu")


# --- the .dat format -------------------------------------------------------------------------


def test_reader_decodes_dlib_integers_and_floats() -> None:
    # one control byte (size, 0x80 = negative) + little-endian bytes; floats are m * 2^e
    r = _Reader(b"\x02\x34\x12" + b"\x81\x05" + b"\x00" + b"\x01\x03\x81\x01" + b"1")
    assert r.int() == 0x1234
    assert r.int() == -5
    assert r.int() == 0
    assert r.float() == 1.5
    assert r.bool() is True


def test_parser_reads_dlib_resnet_exactly() -> None:
    net = parse_dlib_net(_dat_bytes())
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con_4") == 29 and kinds.count("affine_") == 29
    assert kinds.count("add_prev_") == 14 and kinds[-1] == "fc_2"
    assert net.layers[-1].arrays["weight"].shape == (256, 128)
    assert net.layers[0].arrays["weight"].shape == (32, 3, 7, 7)
    assert net.loss.settings["dist_thresh"] == pytest.approx(0.6)
    means = [net.input.settings[k] for k in ("avg_red", "avg_green", "avg_blue")]
    assert means == pytest.approx([122.782, 117.001, 104.298], abs=1e-3)


@pytest.mark.parametrize("damage", ["truncate", "extend", "rename"])
def test_parser_rejects_damaged_files(damage: str) -> None:
    data = _dat_bytes()
    if damage == "truncate":
        data = data[:-1]
    elif damage == "extend":
        data = data + b"\x00"
    else:
        data = data.replace(b"max_pool_2", b"max_pool_9", 1)
    with pytest.raises(DlibFormatError):
        parse_dlib_net(data)


# --- the PyTorch module --------------------------------------------------------------------


def test_dlib_add_pads_the_smaller_tensor_at_the_end() -> None:
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 1, 4, 4), 10.0)
    out = dr.dlib_add(a, b)
    assert out.shape == (1, 2, 4, 4)
    assert out[0, 0, :3, :3].eq(11).all() and out[0, 0, 3].eq(10).all()
    assert out[0, 1, :3, :3].eq(1).all() and out[0, 1, 3].eq(0).all()


def test_weights_are_cached_as_safetensors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MASKFACE_CACHE", str(tmp_path))
    first = dr.load_state_dict()
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and not list(tmp_path.glob(".*"))  # no temp file left behind

    def no_parse(*_):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(dr, "load_dlib_net", no_parse)
    second = dr.load_state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_module_trains() -> None:
    model = dr.dlib_resnet().train()
    x = torch.rand(2, 3, 150, 150) * 255
    before = model(x).detach()
    loss = model(x).pow(2).sum()
    loss.backward()
    assert model.blocks[0].affine1.weight.grad.abs().sum() > 0
    assert model.conv.weight.grad.abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    assert not torch.allclose(model(x), before)


# --- parity with dlib on real LFW faces ----------------------------------------------------


@pytest.mark.lfw
def test_descriptors_match_dlib(faces, port) -> None:
    _, _, dlib_net = _dlib_models()
    chips = np.stack([dlib_chip(image, points) for _, image, points in faces])
    expected = np.array([np.array(dlib_net.compute_face_descriptor(c)) for c in chips])
    plain = dr.dlib_resnet()
    with torch.inference_mode():
        exact = plain(torch.from_numpy(chips).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(exact - expected).max() <= 1e-5
    assert np.abs(port.descriptors(chips) - expected).max() <= 1e-5  # the fused fast path


@pytest.mark.lfw
def test_alignment_reproduces_dlib_chips(faces) -> None:
    for _, image, points in faces:
        ours = align_face(image, points, method="numpy").astype(int)
        assert np.abs(ours - dlib_chip(image, points)).max() <= 1


@pytest.mark.lfw
def test_embeddings_tell_people_apart(faces, port) -> None:
    emb = port.embed([image for _, image, _ in faces], [points for _, _, points in faces])
    assert emb.shape == (6, 128) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-6)
    names = np.array([person for person, _, _ in faces])
    sim = emb @ emb.T
    same = names[:, None] == names[None, :]
    off_diagonal = ~np.eye(len(names), dtype=bool)
    assert sim[same & off_diagonal].min() > sim[~same].max()


@pytest.mark.lfw
def test_flip_averaging_changes_little(faces, port) -> None:
    chips = np.stack([align_face(image, points) for _, image, points in faces])
    flipped = create_recognizer("dlib-resnet", device="cpu", flip=True).embed_chips(chips)
    plain = port.embed_chips(chips)
    cos = (plain * flipped).sum(axis=1)
    assert (cos > 0.95).all() and (cos < 1 - 1e-6).all()


@pytest.mark.lfw
def test_mediapipe_faces_align_like_dlib(faces, port) -> None:
    from maskface import detect_faces

    for _, image, points in faces[:2]:
        mp_face = detect_faces(image, backend="mediapipe")[0]
        interpolated = landmarks68_from_mesh(mp_face.mesh)
        assert np.median(np.linalg.norm(interpolated - points, axis=1)) < 4.0
        emb = port.embed([image, image], [mp_face, points])
        assert float(emb[0] @ emb[1]) > 0.9


def test_embed_detects_the_face_itself(astronaut, port) -> None:
    emb = port.embed([astronaut])
    assert emb.shape == (1, 128)
    assert np.linalg.norm(emb[0]) == pytest.approx(1, abs=1e-6)


# --- registry ------------------------------------------------------------------------------


def test_registry_lists_and_builds() -> None:
    assert {"dlib", "dlib-resnet"} <= set(list_recognizers())
    with pytest.raises(ValueError, match="unknown recognizer"):
        create_recognizer("no-such-net")
    with pytest.raises(ValueError, match="already registered"):
        register_recognizer("dlib", lambda: None)


def test_registry_accepts_new_recognizers(monkeypatch) -> None:
    from maskface import recognizers

    monkeypatch.setattr(recognizers, "_REGISTRY", dict(recognizers._REGISTRY))

    @register_recognizer("mean-colour")
    class MeanColour(Recognizer):
        name, chip_size, dim = "mean-colour", 4, 3

        def descriptors(self, chips: np.ndarray) -> np.ndarray:
            return chips.reshape(len(chips), -1, 3).mean(axis=1)

    rec = create_recognizer("mean-colour")
    chips = np.zeros((2, 4, 4, 3), np.uint8)
    chips[..., 0] = 200
    assert np.allclose(rec.embed_chips(chips), [[1, 0, 0]] * 2)
    with pytest.raises(ValueError, match="chips"):
        rec.embed_chips(np.zeros((2, 5, 5, 3), np.uint8))
    assert np.allclose(l2_normalize(np.array([[3.0, 4.0], [0, 0]])), [[0.6, 0.8], [0, 0]])


# --- ONNX ----------------------------------------------------------------------------------


@pytest.mark.lfw
def test_onnx_export_matches_torch(faces, tmp_path: Path) -> None:
    pytest.importorskip("onnx")  # torch's exporter needs it
    ort = pytest.importorskip("onnxruntime")
    model = dr.dlib_resnet()
    path = dr.export_onnx(tmp_path / "dlib_resnet.onnx", model)
    chips = np.stack([align_face(image, points) for _, image, points in faces[:3]])
    x = np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"chips": x})
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    assert got.shape == (3, 128)
    assert np.abs(got - expected).max() <= 1e-5
