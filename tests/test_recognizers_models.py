"""PyTorch and ONNX recognizers on model files, and the ArcFace / FaceNet alignments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from maskface.recognizers import ModelLoadError, create_recognizer, l2_normalize
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
from tests.conftest import read_rgb

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from maskface.recognizers.torch_model import TorchRecognizer  # noqa: E402

ARCH, DIM = "resnet10t", 64


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
def test_real_lfw_face_lands_on_the_template(lfw: Path) -> None:
    from maskface.evaluation.embeddings import locate

    image = read_rgb(lfw / "Colin_Powell" / "Colin_Powell_0001.jpg")
    landmarks = locate(image)
    assert landmarks is not None
    m = arcface_matrix(five_points(landmarks))
    placed = _apply(m, five_points(landmarks))
    err = np.linalg.norm(placed - ARCFACE_TEMPLATE, axis=1)
    assert err[:2].max() < 3.0 and err.max() < 6.0, err  # eyes within 3 px, all within 6
    chip = align_chip(image, landmarks, "arcface112")
    assert chip.shape == (112, 112, 3) and chip.mean() > 40  # a face, not a black border


def test_dlib_alignment_is_unchanged(astronaut: np.ndarray) -> None:
    from maskface.evaluation.embeddings import locate
    from maskface.recognizers import Recognizer
    from maskface.recognizers.alignment import dlib_chip

    class Plain(Recognizer):
        name, dim = "plain", 3

        def descriptors(self, chips: np.ndarray) -> np.ndarray:
            return chips.reshape(len(chips), -1, 3).mean(axis=1)

    landmarks = locate(astronaut)
    np.testing.assert_array_equal(Plain().align(astronaut, landmarks),
                                  dlib_chip(astronaut, landmarks, 150, 0.25))


# --- models --------------------------------------------------------------------------------


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(ARCH, pretrained=False, num_classes=DIM)
    # Fresh batch norms are identities and timm zeroes each block's last one; random
    # statistics make every layer matter, so the exports below are really compared.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return model.eval()


class _NHWC(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2))


def _export(model: torch.nn.Module, path: Path, shape: tuple[int, ...], dynamic: bool) -> Path:
    axes = {"chips": {0: "n"}, "emb": {0: "n"}} if dynamic else None
    torch.onnx.export(model, (torch.zeros(shape),), str(path), input_names=["chips"],
                      output_names=["emb"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return _tiny_model()


@pytest.fixture(scope="module")
def files(model: torch.nn.Module, tmp_path_factory) -> dict[str, Path]:
    """The tiny model saved every way a recognizer reads it."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("models")
    out = {"state": d / "tiny.pth", "nested": d / "nested.pt",
           "safetensors": d / "tiny.safetensors", "script": d / "tiny_script.pt",
           "pickled": d / "tiny_module.pt"}
    torch.save(model.state_dict(), out["state"])
    # A training checkpoint: weights nested under a key, with a DataParallel prefix.
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in
                                           model.state_dict().items()}}, out["nested"])
    save_file(model.state_dict(), out["safetensors"])
    torch.jit.trace(model, torch.zeros(1, 3, 112, 112)).save(str(out["script"]))
    torch.save(model, out["pickled"])
    pytest.importorskip("onnx")  # torch's exporter needs it
    out["onnx"] = _export(model, d / "tiny.onnx", (1, 3, 112, 112), dynamic=True)
    out["onnx_b1"] = _export(model, d / "tiny_b1.onnx", (1, 3, 112, 112), dynamic=False)
    out["onnx_b3"] = _export(model, d / "tiny_b3.onnx", (3, 3, 112, 112), dynamic=False)
    out["onnx_nhwc"] = _export(_NHWC(model), d / "tiny_nhwc.onnx", (1, 112, 112, 3), True)
    return out


@pytest.fixture(scope="module")
def chips(astronaut: np.ndarray) -> np.ndarray:
    """Seven 112x112 chips: the astronaut's ArcFace chip and smooth random images."""
    from maskface import detect_faces

    face = detect_faces(astronaut, backend="mediapipe")[0]
    rng = np.random.default_rng(1)
    noise = ndimage.gaussian_filter(rng.normal(128, 60, (6, 112, 112, 3)), (0, 3, 3, 0))
    return np.concatenate([align_arcface(astronaut, face)[None],
                           np.clip(noise, 0, 255).astype(np.uint8)])


def test_every_torch_format_gives_the_same_embeddings(model, files, chips) -> None:
    ref = TorchRecognizer(model, device="cpu")
    assert (ref.dim, ref.chip_size, ref.alignment) == (DIM, 112, "arcface112")
    expected = ref.embed_chips(chips)
    assert expected.shape == (7, DIM) and expected.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1, atol=1e-5)
    with torch.inference_mode():
        raw = model((torch.from_numpy(chips).permute(0, 3, 1, 2).float() - 127.5) / 128)
    np.testing.assert_allclose(expected, l2_normalize(raw.numpy()), atol=1e-5)
    for kind, kwargs in [("state", {"arch": ARCH}), ("nested", {"arch": ARCH}),
                         ("safetensors", {"arch": ARCH}), ("script", {}), ("pickled", {})]:
        rec = TorchRecognizer(files[kind], device="cpu", **kwargs)
        assert rec.dim == DIM and rec.name == f"torch:{files[kind].stem}"
        np.testing.assert_allclose(rec.embed_chips(chips), expected, atol=1e-5, err_msg=kind)


def test_timm_head_size_comes_from_the_checkpoint(files) -> None:
    # No embedding_dim given: the head's 64 outputs are read from the weights.
    assert TorchRecognizer(files["state"], arch=ARCH, device="cpu").dim == DIM
    # A backbone saved without its head embeds with its pooled features.
    headless = timm.create_model(ARCH, pretrained=False, num_classes=0)
    path = files["state"].parent / "headless.pth"
    torch.save(headless.state_dict(), path)
    assert TorchRecognizer(path, arch=ARCH, device="cpu").dim == headless.num_features


def test_onnx_matches_torch(model, files, chips) -> None:
    pytest.importorskip("onnxruntime")
    from maskface.recognizers.onnx_model import OnnxRecognizer

    expected = TorchRecognizer(model, device="cpu").embed_chips(chips)
    for kind, layout, fixed in [("onnx", "nchw", None), ("onnx_b1", "nchw", 1),
                                ("onnx_b3", "nchw", 3), ("onnx_nhwc", "nhwc", None)]:
        rec = OnnxRecognizer(files[kind], batch_size=4)
        assert (rec.layout, rec.fixed_batch, rec.alignment, rec.dim) == (
            layout, fixed, "arcface112", DIM)
        got = rec.embed_chips(chips)
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=kind)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_batching_matches_one_by_one(model, files, chips) -> None:
    pytest.importorskip("onnxruntime")
    from maskface.recognizers.onnx_model import OnnxRecognizer

    for make in (lambda b: TorchRecognizer(model, device="cpu", batch_size=b),
                 lambda b: OnnxRecognizer(files["onnx"], batch_size=b)):
        batched = make(3).embed_chips(chips)
        single = np.concatenate([make(1).embed_chips(c[None]) for c in chips])
        np.testing.assert_allclose(batched, single, atol=1e-5)


def test_flip_averages_a_chip_with_its_mirror(model, chips) -> None:
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


def test_registry_builds_model_recognizers(files, chips) -> None:
    pytest.importorskip("onnxruntime")
    onnx = create_recognizer("onnx", path=files["onnx"], alignment="arcface112")
    torch_rec = create_recognizer("torch", model=files["state"], arch=ARCH, device="cpu")
    assert onnx.name == "onnx:tiny" and torch_rec.name == "torch:tiny"
    np.testing.assert_allclose(onnx.embed_chips(chips), torch_rec.embed_chips(chips), atol=1e-4)
    with pytest.raises(ValueError, match="needs path="):
        create_recognizer("onnx")


def test_importing_recognizers_imports_no_model_runtime() -> None:
    code = ("import sys, maskface.recognizers as r; r.list_recognizers(); "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


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
    with pytest.raises(ModelLoadError, match="do not fit 'resnet18'"):
        TorchRecognizer(files["state"], arch="resnet18")
    with pytest.raises(ModelLoadError, match="timm has no model"):
        TorchRecognizer(files["state"], arch="no-such-net")
    fixed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 112 * 112, 8))
    with pytest.raises(ModelLoadError, match="does not run on 160x160"):
        TorchRecognizer(fixed, alignment="facenet160", device="cpu")


def test_bad_onnx_files_are_reported(files, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from maskface.recognizers.onnx_model import OnnxRecognizer

    with pytest.raises(ModelLoadError, match="not found"):
        OnnxRecognizer(tmp_path / "missing.onnx")
    text = tmp_path / "model.onnx"
    text.write_text("not a model\n")
    with pytest.raises(ModelLoadError, match="not a usable ONNX model"):
        OnnxRecognizer(text)
    with pytest.raises(ModelLoadError, match=r"takes 112x112 input but alignment 'facenet160'"):
        OnnxRecognizer(files["onnx"], alignment="facenet160")


# --- evaluation pipeline and CLI -------------------------------------------------------------


def test_pipeline_cuts_the_recognizers_own_chips(model, files, astronaut, tmp_path) -> None:
    from PIL import Image

    from maskface.evaluation.embeddings import EmbeddingCache, embed_paths, locate, pipeline_key

    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    landmarks = locate(astronaut)
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    for alignment in ("arcface112", "facenet160"):
        rec = TorchRecognizer(model, device="cpu", alignment=alignment)
        res = embed_paths([str(path)], rec, cache=cache, workers=1)
        assert res.methods == ["detected"]
        np.testing.assert_allclose(res.embeddings, rec.embed([astronaut], [landmarks]),
                                   atol=1e-6)
        assert f"|{alignment}-chip{rec.chip_size}|" in pipeline_key(rec, "dlib", 1)
    assert len(cache) == 2  # one entry per alignment: neither reused the other's
    # The key names the weights: another model file of the same name does not share it.
    a = TorchRecognizer(files["state"], arch=ARCH, device="cpu")
    b = TorchRecognizer(files["script"], device="cpu")
    assert pipeline_key(a, "dlib", 1) != pipeline_key(b, "dlib", 1)
    assert pipeline_key(a, "dlib", 1) == pipeline_key(
        TorchRecognizer(files["state"], arch=ARCH, device="cpu"), "dlib", 1)
    cache.close()


def test_dlib_pipeline_key_is_unchanged() -> None:
    from maskface.evaluation.embeddings import pipeline_key
    from maskface.recognizers import Recognizer

    class Plain(Recognizer):
        name, dim = "plain", 3

        def descriptors(self, chips: np.ndarray) -> np.ndarray:
            return chips.reshape(len(chips), -1, 3).mean(axis=1)

    assert pipeline_key(Plain(flip=True), "dlib", 1) == (
        "plain|dim3|flip1|dlib-up1|chip150-pad0.25|v1")


def test_cli_eval_with_an_onnx_model(files, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from click.testing import CliRunner

    from maskface.cli_eval import eval_command
    from tests.test_evaluation import COLOURS, _protocol, _write

    root = tmp_path / "data"
    for ident, colours in COLOURS.items():
        for k, c in enumerate(colours[:2]):
            _write(root / ident / f"{ident}_{k + 1:04d}.jpg", c)
    ids = list(COLOURS)
    u = "unmasked"
    rows = [(0, True, u, f"{i}/{i}_0001.jpg", u, f"{i}/{i}_0002.jpg") for i in ids]
    rows += [(0, False, u, f"{i}/{i}_0001.jpg", u, f"{j}/{j}_0002.jpg")
             for i, j in zip(ids, ids[1:] + ids[:1], strict=True)]
    proto = _protocol(tmp_path / "p" / "t_unmasked-unmasked.csv", {u: root}, rows)
    runner = CliRunner()
    base = ["--protocol", str(proto), "--no-cache", "--bootstrap", "0", "--workers", "1",
            "--quiet", "--out", str(tmp_path / "rep")]
    result = runner.invoke(eval_command, ["--recognizer", "onnx", "--model", str(files["onnx"]),
                                          "--alignment", "arcface112", *base])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert "onnx:tiny" in json.dumps(report)
    for args, message in [
        (["--recognizer", "onnx"], "needs --model"),
        (["--recognizer", "dlib-resnet", "--model", "x.onnx"], "are for --recognizer"),
        (["--recognizer", "onnx", "--model", str(files["onnx"]), "--timm-arch", ARCH],
         "--timm-arch is for"),
        (["--recognizer", "onnx", "--model", str(tmp_path / "nope.onnx")], "not found"),
        (["--recognizer", "onnx", "--model", str(files["onnx"]), "--alignment", "facenet160"],
         "takes 112x112"),
    ]:
        bad = runner.invoke(eval_command, [*args, *base])
        assert bad.exit_code != 0 and message in bad.output, bad.output
