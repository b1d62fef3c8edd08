"""Training mask-robust recognizers: chip store, losses, the training loop, whitening."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from maskface.training.data import ChipSettings, prepare_store
from tests.conftest import read_weights, train_config


def test_store_chips_are_cut_as_eval_cuts_them(chip_store, lfw):
    from maskface.geometry.locate import locate
    from maskface.imageio import read_image
    from maskface.recognizers.templates import align_chip

    assert chip_store.chips.shape == (18, 3, 150, 150, 3)
    assert chip_store.ok[:, 0].all() and chip_store.ok[:, 1:].mean() > 0.8
    image = read_image(chip_store.sources[0].path)
    chip = align_chip(image, locate(image, "blazeface"), "dlib150", 150, 0.25)
    np.testing.assert_array_equal(chip_store.chips[0, 0], chip)
    # A masked slot differs from the bare face most in its lower half (the upper half moves
    # a little too: the detector ran on the masked image).
    row = int(np.flatnonzero(chip_store.ok[:, 1])[0])
    bare, masked = chip_store.chips[row, 0].astype(float), chip_store.chips[row, 1].astype(float)
    assert np.abs(bare[90:] - masked[90:]).mean() > 1.5 * np.abs(bare[:60] - masked[:60]).mean()


def test_store_resumes_and_refuses_other_settings(chip_store, lfw, tmp_path):
    from maskface.training.data import TrainingDataError, open_store

    root = tmp_path / "s"
    shutil.copytree(chip_store.root, root)
    (root / "done" / "0").unlink()  # as if killed before the only shard was marked done
    with pytest.raises(TrainingDataError, match="unfinished"):
        open_store(root)
    again = prepare_store(chip_store.sources, root, chip_store.settings, workers=1)
    np.testing.assert_array_equal(np.asarray(again.chips), np.asarray(chip_store.chips))
    with pytest.raises(TrainingDataError, match="other settings"):
        prepare_store(chip_store.sources, root, ChipSettings(variants=2, seed=9), workers=1)


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


def test_consistency_draws_twins_and_pulls_them_together(chip_store):
    import torch

    from maskface.training.losses import build_losses
    from maskface.training.trainer import Batches

    plan = Batches(chip_store, train_config(losses={"distill": 1.0, "consistency": 1.0}))
    assert Batches(chip_store, train_config()).n_twins == 0  # only with the term
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


def test_training_moves_masked_faces_towards_the_teacher(chip_store, tmp_path):
    import torch

    from maskface.training import train
    from maskface.training.data import teacher_embeddings
    from maskface.training.trainer import embed_store, student_model

    rows = chip_store.indices("train")
    masked_rows = rows[chip_store.ok[rows, 1]]
    slots = np.ones(len(masked_rows), np.int64)
    teacher = teacher_embeddings(chip_store)[masked_rows, 0]
    before = embed_store(student_model(), chip_store, masked_rows, slots, torch.device("cpu"))
    config = train_config(losses={"distill": 1.0}, epochs=2, lr=5e-3, augment=0.0,
                          steps_per_epoch=3, whiten=False)
    result = train(chip_store, tmp_path, config, log=lambda m: None)
    after = embed_store(result.model, chip_store, masked_rows, slots, torch.device("cpu"))
    gain = (after * teacher).sum(1).mean() - (before * teacher).sum(1).mean()
    assert gain > 0.005
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    assert len(history) == 2 and "val_masked-masked" in history[0]


def test_nan_loss_stops_with_a_clear_error(chip_store, tmp_path):
    from maskface.training import TrainingError, train

    with pytest.raises(TrainingError, match="loss became nan at epoch 1, step 1"):
        train(chip_store, tmp_path, train_config(losses={"distill": float("nan")}),
              log=lambda m: None)


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


def test_training_whitens_only_when_validation_gains(chip_store, tmp_path):
    from maskface.training import train

    result = train(chip_store, tmp_path, train_config(losses={"distill": 1.0}, epochs=1),
                   log=lambda m: None)
    w = json.loads((tmp_path / "history.json").read_text())["whitening"]
    assert w == result.whitening and w["score_before"] == result.best_score
    assert w["kept"] == (w["score_after"] > w["score_before"])
    trained = read_weights(tmp_path / "best-epoch.safetensors")
    kept = read_weights(tmp_path / "model.safetensors")
    assert all(np.array_equal(trained[k], kept[k]) for k in trained if k != "fc.weight")
    assert np.array_equal(trained["fc.weight"], kept["fc.weight"]) != w["kept"]
