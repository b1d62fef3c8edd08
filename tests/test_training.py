"""Training mask-robust recognizers: chip store, losses, loop, resume, DDP, CLI, shipped model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskface.training.data import ChipSettings, Source, prepare_store

# Four people with several images each (LFW View 2 folds 1-5), plus two more as validation.
PEOPLE = ["Abdullah_Gul", "Abel_Pacheco", "Adrien_Brody", "Al_Sharpton", "Alan_Greenspan",
          "Ai_Sugiyama"]


def _sources(lfw: Path, per_person: int = 3) -> list[Source]:
    out = []
    for k, person in enumerate(PEOPLE):
        files = sorted((lfw / person).glob("*.jpg"))[:per_person]
        out += [Source(str(f), person, "val" if k >= 4 else "train") for f in files]
    return out


@pytest.fixture(scope="session")
def store(lfw, tmp_path_factory):
    root = tmp_path_factory.mktemp("chips")
    return prepare_store(_sources(lfw), root, ChipSettings(variants=2), workers=1)


def _config(**kw):
    from maskface.training import TrainConfig

    base = dict(losses={"distill": 1.0, "arcface": 0.1}, epochs=2, batch_size=8,
                steps_per_epoch=2, val_pairs=20, seed=3)
    return TrainConfig(**{**base, **kw})


def _repo_path() -> str:
    """PYTHONPATH for a subprocess that must run the code under test, not an installed copy."""
    return os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])


def _weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_store_chips_are_cut_as_eval_cuts_them(store, lfw):
    from maskface.geometry.locate import locate
    from maskface.imageio import read_image
    from maskface.recognizers.templates import align_chip

    assert store.chips.shape == (18, 3, 150, 150, 3)
    assert store.ok[:, 0].all() and store.ok[:, 1:].mean() > 0.8
    image = read_image(store.sources[0].path)
    chip = align_chip(image, locate(image, "blazeface"), "dlib150", 150, 0.25)
    np.testing.assert_array_equal(store.chips[0, 0], chip)
    # A masked slot differs from the bare face most in its lower half (the upper half moves
    # a little too: the detector ran on the masked image).
    row = int(np.flatnonzero(store.ok[:, 1])[0])
    bare, masked = store.chips[row, 0].astype(float), store.chips[row, 1].astype(float)
    assert np.abs(bare[90:] - masked[90:]).mean() > 1.5 * np.abs(bare[:60] - masked[:60]).mean()


def test_store_resumes_and_refuses_other_settings(store, lfw, tmp_path):
    from maskface.training.data import TrainingDataError, open_store

    root = tmp_path / "s"
    shutil.copytree(store.root, root)
    (root / "done" / "0").unlink()  # as if killed before the only shard was marked done
    with pytest.raises(TrainingDataError, match="unfinished"):
        open_store(root)
    again = prepare_store(store.sources, root, store.settings, workers=1)
    np.testing.assert_array_equal(np.asarray(again.chips), np.asarray(store.chips))
    with pytest.raises(TrainingDataError, match="other settings"):
        prepare_store(store.sources, root, ChipSettings(variants=2, seed=9), workers=1)


def test_losses_parse_and_reject_unknown():
    from maskface.training import parse_losses
    from maskface.training.data import TrainingDataError

    assert parse_losses("distill, arcface=0.1") == {"distill": 1.0, "arcface": 0.1}
    with pytest.raises(TrainingDataError, match=r"unknown loss 'magface'.*triplet"):
        parse_losses("magface")
    with pytest.raises(TrainingDataError, match="positive weight"):
        parse_losses("distill=0")


@pytest.mark.parametrize("name", ["arcface", "cosface", "sphereface", "triplet", "contrastive"])
def test_identity_losses_prefer_the_right_labels(name):
    import torch

    from maskface.training.losses import build_losses

    torch.manual_seed(0)
    term = build_losses({name: 1.0}, 4, 16)[name]
    centres = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    if hasattr(term.loss, "W"):  # margin softmax: class centres where the embeddings are
        term.loss.W.data = centres.T.clone()
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    emb = (centres[labels] + 0.05 * torch.randn(8, 16)).requires_grad_()
    teacher = torch.zeros(8, 16)
    right = term(emb, teacher, labels)
    wrong = term(emb, teacher, labels[torch.tensor([2, 4, 6, 0, 3, 5, 7, 1])])
    assert right.item() < wrong.item()
    unlabelled = term(emb, teacher, torch.full((8,), -1))
    assert unlabelled.item() == 0.0 and unlabelled.requires_grad


def test_consistency_draws_twins_and_pulls_them_together(store):
    import torch

    from maskface.training.losses import build_losses
    from maskface.training.trainer import Batches

    plan = Batches(store, _config(losses={"distill": 1.0, "consistency": 1.0}))
    assert Batches(store, _config()).n_twins == 0  # only with the term
    rows, slots, mirror = plan.batch(1, 0)
    assert len(rows) == 8 and plan.n_twins == 1
    k = 2 * plan.n_pairs  # the twins follow the pairs of one person
    assert rows[k] == rows[k + 1] and mirror[k] == mirror[k + 1]
    assert slots[k] != slots[k + 1] and slots[k] > 0  # two different masks
    # The term: twins (equal teacher targets) only, zero when they agree.
    term = build_losses({"consistency": 1.0}, 0, 4)["consistency"]
    teacher = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    emb = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]],
                       requires_grad=True)
    labels = torch.full((4,), -1)
    assert term(emb, teacher, labels).item() == pytest.approx(1.0)  # twins at 90 degrees
    agree = emb.detach().clone()
    agree[1] = agree[0]
    assert term(agree, teacher, labels).item() == pytest.approx(0.0, abs=1e-6)
    alone = term(emb, torch.eye(4), labels)  # no twins: zero, still attached to the graph
    assert alone.item() == 0.0 and alone.requires_grad


def test_training_moves_masked_faces_towards_the_teacher(store, tmp_path):
    import torch

    from maskface.training import train
    from maskface.training.data import teacher_embeddings
    from maskface.training.trainer import embed_store, student_model

    rows = store.indices("train")
    masked_rows = rows[store.ok[rows, 1]]
    slots = np.ones(len(masked_rows), np.int64)
    teacher = teacher_embeddings(store)[masked_rows, 0]
    before = embed_store(student_model(), store, masked_rows, slots, torch.device("cpu"))
    result = train(store, tmp_path, _config(losses={"distill": 1.0}, epochs=2, lr=5e-3,
                                           augment=0.0, steps_per_epoch=3, whiten=False),
                   log=lambda m: None)
    after = embed_store(result.model, store, masked_rows, slots, torch.device("cpu"))
    gain = (after * teacher).sum(1).mean() - (before * teacher).sum(1).mean()
    assert gain > 0.005
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    assert len(history) == 2 and "val_masked-masked" in history[0]


# With a moving average the resume also restores it: slow, since the plain case runs in CI.
@pytest.mark.parametrize("ema", [0.0, pytest.param(0.9, marks=pytest.mark.slow)])
def test_resume_after_a_kill_gives_the_same_weights(store, tmp_path, ema):
    from maskface.training import TrainingError, train

    whole = train(store, tmp_path / "a", _config(ema=ema), log=lambda m: None)

    def killed(message: str) -> None:
        if message.startswith("epoch 1:"):  # printed after the epoch's checkpoint is written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(store, tmp_path / "b", _config(ema=ema), log=killed)
    with pytest.raises(TrainingError, match="--resume"):
        train(store, tmp_path / "b", _config(ema=ema), log=lambda m: None)
    with pytest.raises(TrainingError, match="other settings"):
        train(store, tmp_path / "b", _config(ema=ema, lr=1e-2), resume=True,
              log=lambda m: None)
    train(store, tmp_path / "b", _config(ema=ema), resume=True, log=lambda m: None)
    a, b = _weights(tmp_path / "a" / "model.safetensors"), _weights(
        tmp_path / "b" / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert whole.best_epoch in (1, 2)


def test_ema_keeps_the_moving_average_of_the_weights(store, tmp_path):
    from maskface.training import train

    def run(name: str, steps: int, ema: float = 0.0) -> dict:
        cfg = _config(losses={"distill": 1.0}, epochs=1, lr=5e-3, augment=0.0,
                      steps_per_epoch=steps, ema=ema, whiten=False)
        return train(store, tmp_path / name, cfg, log=lambda m: None).model.state_dict()

    def dist(a: dict, b: dict) -> float:
        return sum(float((a[k] - b[k]).abs().sum()) for k in a)

    # The first step is the same in every run; a decay of 0.99 over 4 steps leaves the
    # average within a few percent of the weights after it, while the plain run moves on.
    one, four, averaged = run("one", 1), run("four", 4), run("ema", 4, ema=0.99)
    assert dist(averaged, one) < 0.1 * dist(four, one)


def test_nan_loss_stops_with_a_clear_error(store, tmp_path):
    from maskface.training import TrainingError, train

    with pytest.raises(TrainingError, match="loss became nan at epoch 1, step 1"):
        train(store, tmp_path, _config(losses={"distill": float("nan")}), log=lambda m: None)


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
                                "PYTHONPATH": _repo_path()})
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


@pytest.mark.slow
def test_ddp_under_torchrun_matches_one_process(store, tmp_path):
    """Two gloo processes with half a batch each end where one process with the whole
    batch ends (distillation is a mean over the batch; augmentation is per face)."""
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys\nfrom maskface.training import open_store, train, TrainConfig\n"
        "cfg = TrainConfig(losses={'distill': 1.0}, epochs=1, batch_size=8, "
        "steps_per_epoch=2, val_pairs=20, seed=3)\n"
        "train(open_store(sys.argv[1]), sys.argv[2], cfg, log=lambda m: None)\n")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", str(script), str(store.root), str(tmp_path / "ddp")],
        capture_output=True, text=True, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": _repo_path()})
    assert run.returncode == 0, run.stderr[-3000:]
    from maskface.training import TrainConfig, train

    train(store, tmp_path / "one", TrainConfig(losses={"distill": 1.0}, epochs=1,
                                               batch_size=8, steps_per_epoch=2,
                                               val_pairs=20, seed=3), log=lambda m: None)
    a, b = _weights(tmp_path / "ddp" / "model.safetensors"), _weights(
        tmp_path / "one" / "model.safetensors")
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4


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


def test_whitening_shrinks_what_varies_within_a_face_and_folds_into_the_model():
    import torch

    from maskface.recognizers.dlib_resnet import DlibResNet
    from maskface.training.whiten import fold_whitening, whitening_map, within_face_scatter

    # 300 faces, 5 views each: an identity vector plus a strong "mask" wobble along the
    # first 4 of 16 dimensions and a little noise everywhere.
    rng = np.random.default_rng(0)
    ident = rng.normal(size=(300, 16))
    views = np.repeat(ident, 5, axis=0) + 0.1 * rng.normal(size=(1500, 16))
    views[:, :4] += 2.0 * rng.normal(size=(1500, 4))
    groups = np.repeat(np.arange(300), 5)
    m = whitening_map(within_face_scatter(views, groups), reg=0.1)
    gains = np.linalg.norm(m, axis=0)
    assert gains[:4].max() < 0.3 * gains[4:].min()

    def separation(x: np.ndarray) -> float:  # same-face minus other-face cosine
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        same = (x[0::5] * x[1::5]).sum(1).mean()
        other = (x[0::5] * np.roll(x[1::5], 1, axis=0)).sum(1).mean()
        return float(same - other)

    assert separation(views @ m.T) > separation(views) + 0.3
    model = DlibResNet().eval()
    m_full = np.eye(128) + 0.1 * rng.normal(size=(128, 128))
    folded = fold_whitening(model, m_full)
    x = torch.rand(2, 3, 150, 150) * 255
    with torch.no_grad():
        expect = model(x) @ torch.as_tensor(m_full, dtype=torch.float32).T
        torch.testing.assert_close(folded(x), expect, rtol=1e-4, atol=1e-4)
    assert not torch.equal(model.fc.weight, folded.fc.weight)  # the original is untouched


def test_training_whitens_only_when_validation_gains(store, tmp_path):
    from maskface.training import train

    result = train(store, tmp_path, _config(losses={"distill": 1.0}, epochs=1),
                   log=lambda m: None)
    w = json.loads((tmp_path / "history.json").read_text())["whitening"]
    assert w == result.whitening and w["score_before"] == result.best_score
    assert w["kept"] == (w["score_after"] > w["score_before"])
    trained = _weights(tmp_path / "best-epoch.safetensors")
    kept = _weights(tmp_path / "model.safetensors")
    assert all(np.array_equal(trained[k], kept[k]) for k in trained if k != "fc.weight")
    assert np.array_equal(trained["fc.weight"], kept["fc.weight"]) != w["kept"]
