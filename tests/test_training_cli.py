"""`maskface train` end to end, and the shipped mask-robust model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import repo_path


def test_cli_trains_exports_and_installs_a_model(lfw, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from maskface.cli import main

    monkeypatch.setenv("MASKFACE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["train", "--data", f"lfw={lfw.parent}", "--exclude-folds", "2-10", "--limit", "24",
            "--variants", "1", "--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2",
            "--workers", "1", "--val-fraction", "0.3", "--out", str(out), "--name", "tiny",
            "--alignment", "dlib150-upper"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for name in ("model.safetensors", "model.onnx", "report.html", "report.json"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["excluded_by"] == "people of LFW View 2 folds 2-10"
    # Nobody of folds 2-10 was trained on.
    from maskface.datasets.lfw import fold_people
    from maskface.training.data import open_store

    store = open_store(out / "chips")
    assert not {Path(s.path).parent.name for s in store.sources} & fold_people(lfw.parent,
                                                                               "2-10")
    # Chips cut on the upper face; the teacher still sees the bare face as dlib cuts it.
    from maskface.geometry.locate import locate
    from maskface.imageio import read_image
    from maskface.recognizers.templates import align_chip

    image = read_image(store.sources[0].path)
    for alignment, chip in [("dlib150-upper", store.chips[0, 0]),
                            ("dlib150", store.teacher_chips[0])]:
        np.testing.assert_array_equal(chip, align_chip(image, locate(image), alignment))
    # The exported model loads by name (in a fresh process, as a user would), as ONNX and
    # as torch weights, and all three agree.
    from maskface.recognizers import create_recognizer
    from maskface.training.trainer import student_model

    chips = np.array(store.chips[:3, 0])
    np.save(tmp_path / "c.npy", chips)
    code = ("import numpy as np, sys; from maskface.recognizers import create_recognizer; "
            "r = create_recognizer('tiny'); assert r.alignment == 'dlib150-upper', r.alignment; "
            "np.save(sys.argv[1], r.embed_chips(np.load(sys.argv[2])))")
    named = subprocess.run([sys.executable, "-c", code, str(tmp_path / "e.npy"),
                            str(tmp_path / "c.npy")], capture_output=True, text=True,
                           check=False, cwd=tmp_path,
                           env={**os.environ, "MASKFACE_CACHE": str(tmp_path / "cache"),
                                "PYTHONPATH": repo_path()})
    assert named.returncode == 0, named.stderr
    onnx = create_recognizer("onnx", path=out / "model.onnx")  # settings from the file
    torch_rec = create_recognizer("torch", model=out / "model.safetensors", arch="dlib-resnet")
    # Every way of loading the model cuts its chips as it was trained.
    assert onnx.alignment == torch_rec.alignment == "dlib150-upper"
    import torch

    with torch.inference_mode():
        ref = torch.nn.functional.normalize(student_model(out / "model.safetensors")(
            torch.from_numpy(chips).float().permute(0, 3, 1, 2)), dim=1).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), ref, atol=1e-4)
    np.testing.assert_allclose(onnx.embed_chips(chips), ref, atol=1e-4)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "--resume" in again.output


def test_shipped_model_loads_by_name_and_keeps_a_masked_face_near_its_bare_face(astronaut):
    import maskface
    from maskface.geometry.locate import face_chip
    from maskface.recognizers import create_recognizer, list_recognizers, shipped_weights

    path = shipped_weights("dlib-resnet-masked")
    assert path.is_file() and path.stat().st_size < 25 * 2**20
    assert "dlib-resnet-masked" in list_recognizers()
    masked = [maskface.mask_image(astronaut, style, seed=i, vary=True).image
              for i, style in enumerate(("surgical", "n95", "cloth", "kn95"))]
    distance = {}
    for name in ("dlib-resnet", "dlib-resnet-masked"):
        rec = create_recognizer(name)
        emb = rec.embed_chips(np.stack([face_chip(im, rec.alignment)[0]
                                        for im in [astronaut, *masked]]))
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
        distance[name] = float(np.linalg.norm(emb[1:] - emb[0], axis=1).mean())
    assert create_recognizer("dlib-resnet-masked").cache_id != create_recognizer(
        "dlib-resnet").cache_id
    # the point of the model: a mask moves the embedding much less than it moves dlib's
    assert distance["dlib-resnet-masked"] < 0.8 * distance["dlib-resnet"], distance
