"""PyTorch and ONNX recognizers on model files, and the ArcFace / FaceNet alignments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from maskface.recognizers import ModelLoadError, Recognizer, create_recognizer, l2_normalize
from maskface.recognizers.templates import (
    ARCFACE_TEMPLATE,
    align_arcface,
    align_chip,
    align_facenet,
    arcface_matrix,
    face_box,
    five_points,
    points5_from_68,
    similarity_transform,
)
from tests.conftest import modules_loaded_by, read_rgb

torch = pytest.importorskip("torch")

from maskface.recognizers.torch_model import TorchRecognizer  # noqa: E402

ARCH, DIM = "resnet10t", 64  # the timm architecture of the timm tests


# --- alignment -----------------------------------------------------------------------------


def _similarity(scale: float, degrees: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(degrees)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.column_stack([rot, shift])


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def _dots(shape: tuple[int, int], centres: np.ndarray, sigma: float) -> np.ndarray:
    """A black RGB image with a white Gaussian dot at each (sub-pixel) centre."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    value = np.zeros(shape)
    for x, y in centres:
        value = np.maximum(value, np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    return np.repeat((value * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _dot_centres(chip: np.ndarray) -> np.ndarray:
    """Intensity-weighted centres of the bright blobs of a chip."""
    gray = chip.astype(np.float64).mean(axis=2)
    labels, n = ndimage.label(gray > 40)
    return np.array(ndimage.center_of_mass(gray, labels, range(1, n + 1)))[:, ::-1]


@pytest.mark.parametrize(("scale", "degrees", "shift", "shape"), [
    (2.7, 17.0, (140.0, 30.0), (480, 400)),
    (0.8, -25.0, (20.0, 60.0), (160, 160)),
    (9.3, 8.0, (150.0, 40.0), (1100, 1000)),  # big face: the chip comes from a pyramid level
])
def test_arcface_alignment_puts_the_points_on_the_template(scale, degrees, shift, shape) -> None:
    m = _similarity(scale, degrees, shift)
    points = _apply(m, ARCFACE_TEMPLATE)
    assert (points > 5).all() and (points < np.array(shape[::-1]) - 5).all()
    image = _dots(shape, points, sigma=max(1.2, 0.9 * scale))
    chip = align_arcface(image, points)
    assert chip.shape == (112, 112, 3) and chip.dtype == np.uint8
    found = _dot_centres(chip)
    assert len(found) == 5
    dist = np.linalg.norm(found[:, None] - ARCFACE_TEMPLATE[None], axis=2)
    assert dist.min(axis=0).max() < 1.0, dist.min(axis=0)


def test_similarity_fit_recovers_a_known_transform() -> None:
    m = _similarity(1.7, 33.0, (12.0, -4.0))
    src = np.random.default_rng(0).uniform(0, 100, (6, 2))
    np.testing.assert_allclose(similarity_transform(src, _apply(m, src)), m, atol=1e-9)
    # The inverse direction is what alignment uses: image points onto the template.
    np.testing.assert_allclose(_apply(arcface_matrix(_apply(m, ARCFACE_TEMPLATE)),
                                      _apply(m, ARCFACE_TEMPLATE)), ARCFACE_TEMPLATE, atol=1e-9)
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE)


def test_five_points_from_68_landmarks() -> None:
    pts = np.arange(136, dtype=np.float64).reshape(68, 2)
    five = points5_from_68(pts)
    np.testing.assert_allclose(five[0], pts[36:42].mean(0))
    np.testing.assert_allclose(five[1], pts[42:48].mean(0))
    np.testing.assert_allclose(five[2:], pts[[30, 48, 54]])
    np.testing.assert_allclose(five_points(pts), five)
    np.testing.assert_allclose(five_points(five), five)  # five points pass through
    with pytest.raises(ValueError, match="68 landmarks or 5 points"):
        five_points(np.zeros((7, 2)))
    with pytest.raises(ValueError, match="unknown alignment"):
        align_chip(np.zeros((10, 10, 3), np.uint8), pts, "arcface128")


def _reference68(m: np.ndarray) -> np.ndarray:
    from maskface.geometry.reference import reference

    return _apply(m, reference().dlib68[:, :2].astype(np.float64))


def test_facenet_crop_is_square_and_centred() -> None:
    pts = _reference68(_similarity(14.0, 0.0, (150.0, 170.0)))
    x0, y0, x1, y1 = face_box(pts)
    assert y1 - y0 > x1 - x0  # a face is taller than wide: the square follows the height
    image = np.full((400, 360, 3), 90, np.uint8)
    image[round(y0) : round(y1) + 1, round(x0) : round(x1) + 1] = 255
    chip = align_facenet(image, pts)
    assert chip.shape == (160, 160, 3)
    ys, xs = np.nonzero(chip[..., 0] > 170)
    # The box fills 128 of the 160 pixels (a 32-pixel margin), centred on the chip.
    assert abs((ys.max() - ys.min() + 1) - 128) <= 2
    assert abs((xs.max() + xs.min()) / 2 - 79.5) <= 1 and abs((ys.max() + ys.min()) / 2 - 79.5) <= 1
    # A face at the image's corner stays centred; what lies outside the image is black.
    corner = _reference68(_similarity(14.0, 0.0, (20.0, 40.0)))
    chip = align_facenet(image, corner)
    assert (chip[:8, :8] == 0).all() and (chip[79:81, 79:81] == 90).all()


def test_face_box_from_five_points_matches_68() -> None:
    pts = _reference68(_similarity(11.0, 12.0, (200.0, 180.0)))
    np.testing.assert_allclose(face_box(points5_from_68(pts)), face_box(pts), atol=1e-6)


def test_mediapipe_face_aligns_like_its_landmarks(astronaut: np.ndarray) -> None:
    from maskface import detect_faces
    from maskface.recognizers.alignment import landmarks68_from_mesh

    face = detect_faces(astronaut, backend="mediapipe")[0]
    five = points5_from_68(landmarks68_from_mesh(face.mesh))
    np.testing.assert_array_equal(align_arcface(astronaut, face), align_arcface(astronaut, five))
    # The mesh's own eye corners land where ArcFace's eyes belong.
    m = arcface_matrix(five)
    eyes = _apply(m, face.mesh[[33, 133, 362, 263], :2])  # outer/inner corners, both eyes
    np.testing.assert_allclose(eyes[:2].mean(0), ARCFACE_TEMPLATE[0], atol=4)
    np.testing.assert_allclose(eyes[2:].mean(0), ARCFACE_TEMPLATE[1], atol=4)


@pytest.mark.lfw
def test_real_lfw_faces_land_on_the_template(lfw: Path) -> None:
    """dlib's landmarks, turned into five points, agree with ArcFace's template: faces
    differ and turn, but on average every point lands within 2.5 px of its template spot."""
    from maskface.evaluation.embeddings import locate

    offsets = []
    for person in ("Colin_Powell", "Tony_Blair", "George_W_Bush", "Serena_Williams",
                   "Hugo_Chavez", "Ariel_Sharon"):
        for k in (1, 2):
            image = read_rgb(lfw / person / f"{person}_{k:04d}.jpg")
            five = five_points(locate(image))
            offsets.append(_apply(arcface_matrix(five), five) - ARCFACE_TEMPLATE)
    offsets = np.array(offsets)
    assert np.linalg.norm(offsets.mean(axis=0), axis=1).max() < 2.5, offsets.mean(axis=0)
    assert np.median(np.linalg.norm(offsets[:, :2], axis=2)) < 3.0  # the eyes
    chip = align_chip(image, locate(image), "arcface112")
    assert chip.shape == (112, 112, 3) and chip.mean() > 40  # a face, not a black border


class _Plain(Recognizer):
    """A model-free recognizer with dlib's default alignment: mean colour of the chip."""

    name, dim = "plain", 3

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        return chips.reshape(len(chips), -1, 3).mean(axis=1)


def test_dlib_alignment_is_unchanged(astronaut: np.ndarray) -> None:
    from maskface.evaluation.embeddings import locate
    from maskface.recognizers.alignment import dlib_chip

    landmarks = locate(astronaut)
    np.testing.assert_array_equal(_Plain().align(astronaut, landmarks),
                                  dlib_chip(astronaut, landmarks, 150, 0.25))


def test_upper_alignment_ignores_the_lower_face(astronaut: np.ndarray) -> None:
    from maskface.evaluation.embeddings import locate
    from maskface.recognizers.alignment import chip_corners
    from maskface.recognizers.templates import align_chip, upper_matrix

    landmarks = locate(astronaut)
    # Bare, the upper-face fit frames the face nearly as dlib does (LFW: 5 chip pixels at the
    # corners on average; this smiling face 11).
    corners = np.c_[chip_corners(landmarks), np.ones(3)] @ upper_matrix(landmarks).T
    assert np.abs(corners - [[0, 0], [149, 0], [149, 149]]).max() < 12
    # A guessed mouth and jaw (as under a mask) move dlib's chip, not this one.
    moved = landmarks.copy()
    lower = np.r_[0:17, 31:36, 48:68]
    moved[lower] += [8.0, 25.0]
    moved[lower, 1] *= 1.05
    np.testing.assert_array_equal(align_chip(astronaut, moved, "dlib150-upper"),
                                  align_chip(astronaut, landmarks, "dlib150-upper"))
    assert np.abs(align_chip(astronaut, moved, "dlib150").astype(float)
                  - align_chip(astronaut, landmarks, "dlib150")).mean() > 10


# --- models --------------------------------------------------------------------------------


class TinyNet(torch.nn.Module):
    """A small CNN embedding any chip size: enough to test every path without timm."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for cin, cout, k in [(3, 16, 5), (16, 32, 3), (32, 32, 3)]:
            layers += [torch.nn.Conv2d(cin, cout, k, 2, k // 2), torch.nn.BatchNorm2d(cout),
                       torch.nn.ReLU()]
        self.features = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(7))
        self.fc = torch.nn.Linear(32 * 49, dim)  # position-dependent: mirror images differ

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def _randomise_norms(model: torch.nn.Module) -> torch.nn.Module:
    # Fresh batch norms are identities (and timm zeroes each block's last one); random
    # statistics make every layer matter, so the copies below are really compared.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _timm():
    """timm, or a skip saying why it cannot be imported (it imports torchvision)."""
    try:
        import timm
    except Exception as e:  # a torchvision build not matching torch fails with RuntimeError
        pytest.skip(f"timm cannot be imported: {type(e).__name__}: {str(e)[:120]}")
    return timm


class _NHWC(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2))


def _export(model: torch.nn.Module, path: Path, shape: tuple[int, ...], dynamic: bool) -> Path:
    pytest.importorskip("onnx")  # torch's TorchScript-based exporter needs it
    axes = {"chips": {0: "n"}, "emb": {0: "n"}} if dynamic else None
    torch.onnx.export(model, (torch.zeros(shape),), str(path), input_names=["chips"],
                      output_names=["emb"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return _randomise_norms(TinyNet())


@pytest.fixture(scope="module")
def files(model: torch.nn.Module, tmp_path_factory) -> dict[str, Path]:
    """The tiny model saved every way a recognizer reads it."""
    d = tmp_path_factory.mktemp("models")
    out = {"script": d / "tiny_script.pt", "pickled": d / "tiny_module.pt",
           "state": d / "tiny.pth"}
    torch.jit.trace(model, torch.zeros(1, 3, 112, 112)).save(str(out["script"]))
    torch.save(model, out["pickled"])
    torch.save(model.state_dict(), out["state"])
    return out


@pytest.fixture(scope="module")
def onnx_files(model: torch.nn.Module, tmp_path_factory) -> dict[str, Path]:
    """ONNX exports: dynamic batch, fixed batches of 1 and 3, and an NHWC input."""
    pytest.importorskip("onnxruntime")
    d = tmp_path_factory.mktemp("onnx")
    return {
        "onnx": _export(model, d / "tiny.onnx", (1, 3, 112, 112), dynamic=True),
        "onnx_b1": _export(model, d / "tiny_b1.onnx", (1, 3, 112, 112), dynamic=False),
        "onnx_b3": _export(model, d / "tiny_b3.onnx", (3, 3, 112, 112), dynamic=False),
        "onnx_nhwc": _export(_NHWC(model), d / "tiny_nhwc.onnx", (1, 112, 112, 3), True),
    }


@pytest.fixture(scope="module")
def chips(astronaut: np.ndarray) -> np.ndarray:
    """Seven 112x112 chips: the astronaut's ArcFace chip and smooth random images."""
    from maskface import detect_faces

    face = detect_faces(astronaut, backend="mediapipe")[0]
    rng = np.random.default_rng(1)
    noise = ndimage.gaussian_filter(rng.normal(128, 60, (6, 112, 112, 3)), (0, 3, 3, 0))
    return np.concatenate([align_arcface(astronaut, face)[None],
                           np.clip(noise, 0, 255).astype(np.uint8)])


def test_torch_recognizer_runs_the_model(model, files, chips) -> None:
    ref = TorchRecognizer(model, device="cpu")
    assert (ref.dim, ref.chip_size, ref.alignment) == (DIM, 112, "arcface112")
    expected = ref.embed_chips(chips)
    assert expected.shape == (7, DIM) and expected.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1, atol=1e-5)
    # ArcFace's input scaling, NCHW RGB.
    with torch.inference_mode():
        raw = model((torch.from_numpy(chips).permute(0, 3, 1, 2).float() - 127.5) / 128)
    np.testing.assert_allclose(expected, l2_normalize(raw.numpy()), atol=1e-5)
    for kind in ("script", "pickled"):
        rec = TorchRecognizer(files[kind], device="cpu")
        assert rec.dim == DIM and rec.name == f"torch:{files[kind].stem}"
        np.testing.assert_allclose(rec.embed_chips(chips), expected, atol=1e-5, err_msg=kind)
    # Scaling and channel order are the caller's to set.
    bgr = TorchRecognizer(model, device="cpu", mean=(120, 110, 100), std=60, bgr=True)
    with torch.inference_mode():
        x = torch.from_numpy(chips[..., ::-1].copy()).permute(0, 3, 1, 2).float()
        raw = model((x - torch.tensor([120.0, 110, 100]).view(1, 3, 1, 1)) / 60)
    np.testing.assert_allclose(bgr.embed_chips(chips), l2_normalize(raw.numpy()), atol=1e-5)


def test_state_dicts_of_our_dlib_resnet(tmp_path: Path, astronaut: np.ndarray) -> None:
    """A (fine-tuned, here random) DlibResNet checkpoint: dlib's alignment and scaling."""
    from safetensors.torch import save_file

    from maskface.evaluation.embeddings import locate
    from maskface.recognizers.alignment import align_face
    from maskface.recognizers.dlib_resnet import DlibResNet

    torch.manual_seed(0)
    net = DlibResNet().eval()
    with torch.no_grad():
        net.normalize.mean.fill_(120.0)
    state = net.state_dict()
    torch.save(state, tmp_path / "dlib.pth")
    # A training checkpoint: weights nested under a key, with DataParallel's prefix.
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}},
               tmp_path / "dlib_ckpt.pt")
    save_file(state, tmp_path / "dlib.safetensors")
    landmarks = locate(astronaut)
    chip = align_face(astronaut, landmarks)[None]
    with torch.inference_mode():
        expected = l2_normalize(net(torch.from_numpy(chip).permute(0, 3, 1, 2).float()).numpy())
    for name in ("dlib.pth", "dlib_ckpt.pt", "dlib.safetensors"):
        rec = TorchRecognizer(tmp_path / name, arch="dlib-resnet", device="cpu")
        assert (rec.alignment, rec.chip_size, rec.dim) == ("dlib150", 150, 128)
        np.testing.assert_allclose(rec.embed_chips(chip), expected, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(rec.embed([astronaut], [landmarks]), expected, atol=1e-5,
                                   err_msg=name)
    with pytest.raises(ModelLoadError, match="pass arch="):
        TorchRecognizer(tmp_path / "dlib.pth")


@pytest.fixture(scope="module")
def timm_model():
    timm = _timm()
    torch.manual_seed(0)
    return _randomise_norms(timm.create_model(ARCH, pretrained=False, num_classes=DIM))


def test_timm_state_dict_matches_the_module(timm_model, chips, tmp_path: Path) -> None:
    torch.save(timm_model.state_dict(), tmp_path / "r10.pth")
    expected = TorchRecognizer(timm_model, device="cpu").embed_chips(chips)
    # No embedding_dim given: the head's 64 outputs are read from the weights.
    rec = TorchRecognizer(tmp_path / "r10.pth", arch=ARCH, device="cpu")
    assert rec.dim == DIM and rec.alignment == "arcface112"
    np.testing.assert_allclose(rec.embed_chips(chips), expected, atol=1e-5)
    # A backbone saved without its head embeds with its pooled features.
    headless = _timm().create_model(ARCH, pretrained=False, num_classes=0)
    torch.save(headless.state_dict(), tmp_path / "headless.pth")
    assert TorchRecognizer(tmp_path / "headless.pth", arch=ARCH).dim == headless.num_features
    with pytest.raises(ModelLoadError, match="do not fit 'resnet18'"):
        TorchRecognizer(tmp_path / "r10.pth", arch="resnet18")
    with pytest.raises(ModelLoadError, match="timm has no model"):
        TorchRecognizer(tmp_path / "r10.pth", arch="no-such-net")
    # ...and its ONNX export gives the same embeddings.
    pytest.importorskip("onnxruntime")
    from maskface.recognizers.onnx_model import OnnxRecognizer

    path = _export(timm_model, tmp_path / "r10.onnx", (1, 3, 112, 112), dynamic=True)
    np.testing.assert_allclose(OnnxRecognizer(path).embed_chips(chips), expected, atol=1e-4)


def test_onnx_matches_torch(model, onnx_files, chips) -> None:
    from maskface.recognizers.onnx_model import OnnxRecognizer

    expected = TorchRecognizer(model, device="cpu").embed_chips(chips)
    for kind, layout, fixed in [("onnx", "nchw", None), ("onnx_b1", "nchw", 1),
                                ("onnx_b3", "nchw", 3), ("onnx_nhwc", "nhwc", None)]:
        rec = OnnxRecognizer(onnx_files[kind], batch_size=4)
        assert (rec.layout, rec.fixed_batch, rec.alignment, rec.dim) == (
            layout, fixed, "arcface112", DIM)
        got = rec.embed_chips(chips)
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=kind)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_batching_matches_one_by_one(model, onnx_files, chips) -> None:
    from maskface.recognizers.onnx_model import OnnxRecognizer

    for make in (lambda b: TorchRecognizer(model, device="cpu", batch_size=b),
                 lambda b: OnnxRecognizer(onnx_files["onnx"], batch_size=b)):
        batched = make(3).embed_chips(chips)
        single = np.concatenate([make(1).embed_chips(c[None]) for c in chips])
        np.testing.assert_allclose(batched, single, atol=1e-5)


def test_flip_averages_a_chip_with_its_mirror(model, onnx_files, chips) -> None:
    from maskface.recognizers.onnx_model import OnnxRecognizer

    plain = TorchRecognizer(model, device="cpu")
    flipped = TorchRecognizer(model, device="cpu", flip=True)
    mirror = np.ascontiguousarray(chips[:, :, ::-1])
    both = flipped.embed_chips(chips)
    # Averaging over the mirror pair makes the embedding mirror-invariant...
    np.testing.assert_allclose(both, flipped.embed_chips(mirror), atol=1e-5)
    expected = l2_normalize(plain.descriptors(chips) + plain.descriptors(mirror))
    np.testing.assert_allclose(both, expected, atol=1e-5)
    # ...which the plain embedding is not.
    assert np.abs(plain.embed_chips(chips) - plain.embed_chips(mirror)).max() > 1e-3
    onnx = OnnxRecognizer(onnx_files["onnx"], flip=True)
    np.testing.assert_allclose(onnx.embed_chips(chips), both, atol=1e-4)


def test_alignments_set_the_chip_size(model) -> None:
    rec = TorchRecognizer(model, device="cpu", alignment="facenet160")
    assert rec.chip_size == 160 and rec.dim == DIM
    with pytest.raises(ValueError, match="chips"):
        rec.embed_chips(np.zeros((1, 112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown alignment"):
        TorchRecognizer(model, device="cpu", alignment="arcface")


def test_align_dispatches_on_the_recognizer(model, astronaut) -> None:
    from maskface import detect_faces

    face = detect_faces(astronaut, backend="mediapipe")[0]
    arc = TorchRecognizer(model, device="cpu")
    net = TorchRecognizer(model, device="cpu", alignment="facenet160")
    np.testing.assert_array_equal(arc.align(astronaut, face), align_arcface(astronaut, face))
    np.testing.assert_array_equal(net.align(astronaut, face), align_facenet(astronaut, face))
    emb = arc.embed([astronaut], [face])
    np.testing.assert_allclose(emb, arc.embed_chips(align_arcface(astronaut, face)[None]))


def test_registry_builds_model_recognizers(files, onnx_files, chips) -> None:
    onnx = create_recognizer("onnx", path=onnx_files["onnx"], alignment="arcface112")
    torch_rec = create_recognizer("torch", model=files["script"], device="cpu")
    assert onnx.name == "onnx:tiny" and torch_rec.name == "torch:tiny_script"
    np.testing.assert_allclose(onnx.embed_chips(chips), torch_rec.embed_chips(chips), atol=1e-4)
    with pytest.raises(ValueError, match="needs path="):
        create_recognizer("onnx")
    with pytest.raises(ValueError, match="needs model="):
        create_recognizer("torch")


def test_importing_recognizers_imports_no_model_runtime() -> None:
    loaded = modules_loaded_by("import maskface.recognizers as r; r.list_recognizers()",
                               ("torch", "onnxruntime", "timm"))
    assert loaded == []


# --- errors --------------------------------------------------------------------------------


def test_bad_torch_files_are_reported(files, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        TorchRecognizer(tmp_path / "missing.pt")
    text = tmp_path / "notes.pt"
    text.write_text("not a model\n")
    with pytest.raises(ModelLoadError, match="not a PyTorch model"):
        TorchRecognizer(text)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        TorchRecognizer(tmp_path / "empty.pt")
    other = tmp_path / "other.pt"
    torch.save({"epoch": 3, "lr": 0.1}, other)
    with pytest.raises(ModelLoadError, match="neither a model nor a state dict"):
        TorchRecognizer(other)
    with pytest.raises(ModelLoadError, match="pass arch="):
        TorchRecognizer(files["state"])
    with pytest.raises(ModelLoadError, match="do not fit 'dlib-resnet'"):
        TorchRecognizer(files["state"], arch="dlib-resnet")
    fixed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 112 * 112, 8))
    with pytest.raises(ModelLoadError, match="does not run on 160x160"):
        TorchRecognizer(fixed, alignment="facenet160", device="cpu")
    with pytest.raises(ValueError, match="unknown alignment"):
        TorchRecognizer(tmp_path / "missing.pt", alignment="arc")  # before any loading
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        TorchRecognizer(broken, arch="dlib-resnet")


def test_files_of_the_other_kind_are_rejected(files, onnx_files) -> None:
    from maskface.recognizers.onnx_model import OnnxRecognizer

    with pytest.raises(ModelLoadError, match="not a PyTorch model"):
        TorchRecognizer(onnx_files["onnx"])
    with pytest.raises(ModelLoadError, match="not a usable ONNX model"):
        OnnxRecognizer(files["script"])


def test_bad_onnx_files_are_reported(onnx_files, tmp_path: Path) -> None:
    from maskface.recognizers.onnx_model import OnnxRecognizer

    with pytest.raises(ModelLoadError, match="not found"):
        OnnxRecognizer(tmp_path / "missing.onnx")
    text = tmp_path / "model.onnx"
    text.write_text("not a model\n")
    with pytest.raises(ModelLoadError, match="not a usable ONNX model"):
        OnnxRecognizer(text)
    with pytest.raises(ModelLoadError, match=r"takes 112x112 input but alignment 'facenet160'"):
        OnnxRecognizer(onnx_files["onnx"], alignment="facenet160")


# --- evaluation pipeline and CLI -------------------------------------------------------------


def test_pipeline_cuts_the_recognizers_own_chips(model, files, astronaut, tmp_path) -> None:
    from PIL import Image

    from maskface.evaluation.embeddings import EmbeddingCache, embed_paths, locate, pipeline_key

    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    landmarks = locate(astronaut)
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    for alignment in ("arcface112", "facenet160", "dlib150-upper"):
        rec = TorchRecognizer(model, device="cpu", alignment=alignment)
        res = embed_paths([str(path)], rec, cache=cache, workers=1)
        assert res.methods == ["detected"]
        np.testing.assert_allclose(res.embeddings, rec.embed([astronaut], [landmarks]),
                                   atol=1e-6)
        assert f"|{alignment}-chip{rec.chip_size}" in pipeline_key(rec, "dlib", 1)
    assert len(cache) == 3  # one entry per alignment: none reused another's
    cache.close()
    # The key names the weights: the same file under another name shares it, other
    # weights under the same name do not.
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / files["script"].name).write_bytes(files["script"].read_bytes())
    key = pipeline_key(TorchRecognizer(files["script"], device="cpu"), "dlib", 1)
    assert key == pipeline_key(TorchRecognizer(twin / files["script"].name), "dlib", 1)
    torch.manual_seed(1)
    torch.jit.trace(TinyNet().eval(), torch.zeros(1, 3, 112, 112)).save(
        str(twin / files["script"].name))
    assert key != pipeline_key(TorchRecognizer(twin / files["script"].name), "dlib", 1)


def test_dlib_pipeline_key_is_unchanged() -> None:
    from maskface.evaluation.embeddings import pipeline_key

    assert pipeline_key(_Plain(flip=True), "dlib", 1) == (
        "plain|dim3|flip1|dlib-up1|chip150-pad0.25|v1")


def test_blazeface_pipeline_key_names_the_box_map() -> None:
    from maskface.evaluation.embeddings import pipeline_key
    from maskface.geometry.hog_box import weights_digest

    # refitting maskface/data/hog_box.npz moves every landmark, so old entries must miss
    assert f"|blazeface-{weights_digest()}-up1|" in pipeline_key(_Plain(), "blazeface", 1)


def test_cli_eval_with_an_onnx_model(onnx_files, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from maskface.cli_eval import eval_command
    from tests.test_evaluation import COLOURS, _protocol, _write

    root = tmp_path / "data"
    for ident, colours in COLOURS.items():
        for k, c in enumerate(colours[:2]):
            _write(root / ident / f"{ident}_{k + 1:04d}.jpg", c)
    ids = list(COLOURS)
    u = "unmasked"
    pairs = [(a, a, True) for a in ids]
    pairs += [(a, b, False) for a, b in zip(ids, ids[1:] + ids[:1], strict=True)]
    # Two folds, each with two genuine and two impostor pairs.
    rows = [(k % 2, same, u, f"{a}/{a}_0001.jpg", u, f"{b}/{b}_0002.jpg")
            for k, (a, b, same) in enumerate(pairs)]
    proto = _protocol(tmp_path / "p" / "t_unmasked-unmasked.csv", {u: root}, rows)
    runner = CliRunner()
    base = ["--protocol", str(proto), "--no-cache", "--bootstrap", "0", "--workers", "1",
            "--quiet", "--out", str(tmp_path / "rep")]
    model = str(onnx_files["onnx"])
    result = runner.invoke(eval_command, ["--recognizer", "onnx", "--model", model,
                                          "--alignment", "arcface112", *base])
    assert result.exit_code == 0, result.output
    from maskface.recognizers.templates import ALIGNMENTS

    option = next(p for p in eval_command.params if p.name == "alignment")
    assert sorted(option.type.choices) == sorted(ALIGNMENTS)
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert "onnx:tiny" in json.dumps(report)
    # dlib's network takes either dlib chip; the report says which.
    result = runner.invoke(eval_command, ["--recognizer", "dlib-resnet", "--alignment",
                                          "dlib150-upper", *base])
    assert result.exit_code == 0, result.output
    assert "dlib150-upper" in (tmp_path / "rep" / "report.json").read_text()
    for args, message in [
        (["--recognizer", "onnx"], "needs --model"),
        (["--recognizer", "dlib-resnet", "--model", "x.onnx"], "are for --recognizer"),
        (["--recognizer", "dlib", "--alignment", "dlib150-upper"], "not for --recognizer dlib"),
        (["--recognizer", "dlib-resnet", "--alignment", "arcface112"], "dlib150 or dlib150-up"),
        (["--recognizer", "onnx", "--model", model, "--timm-arch", ARCH],
         "--timm-arch is for"),
        (["--recognizer", "onnx", "--model", str(tmp_path / "nope.onnx")], "not found"),
        (["--recognizer", "onnx", "--model", model, "--alignment", "facenet160"],
         "takes 112x112"),
    ]:
        bad = runner.invoke(eval_command, [*args, *base])
        assert bad.exit_code != 0 and message in bad.output, bad.output
