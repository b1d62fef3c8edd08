"""Attribute prediction under masks: targets, splits, baseline, study, report, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from maskface.attributes import (
    AGE_GROUPS,
    age_group,
    fit_baseline,
    load_split,
    make_split,
    save_split,
    target_values,
)
from maskface.attributes.metrics import confusion, evaluate
from maskface.attributes.report import write_report
from maskface.attributes.study import run_study

UTK = Path(__file__).resolve().parents[1].parent / "shared/data/utkface"
needs_utk = pytest.mark.skipif(not (UTK / "UTKFace").is_dir(),
                               reason=f"UTKFace sample not found at {UTK}")


def _synthetic(n: int = 300, seed: int = 0):
    """Labels plus embeddings carrying sex and age signal (masked copy: noisier)."""
    rng = np.random.default_rng(seed)
    attrs = [{"age": int(a), "gender": int(g), "race": int(r)} for a, g, r in
             zip(rng.integers(1, 90, n), rng.integers(0, 2, n), rng.integers(0, 5, n),
                 strict=True)]
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += 3 * target_values(attrs, "sex")
    x[:, 1] += target_values(attrs, "age") / 15
    x[:, 2] += 2 * target_values(attrs, "race")
    return attrs, {"unmasked": x, "masked": x + rng.normal(size=x.shape).astype(np.float32)}


def test_age_group_boundaries():
    ages = [0, 3, 4, 12, 13, 19, 20, 30, 31, 45, 46, 60, 61, 116]
    assert age_group(ages).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    assert [g for g, _, _ in AGE_GROUPS][6] == "senior"


def test_target_values_and_unknown_target():
    attrs = [{"age": 25, "gender": 1, "race": 3}, {"age": 2, "gender": 0, "race": 0}]
    assert target_values(attrs, "sex").tolist() == [1, 0]
    assert target_values(attrs, "race").tolist() == [3, 0]
    assert target_values(attrs, "age").tolist() == [25.0, 2.0]
    assert target_values(attrs, "age_group").tolist() == [3, 0]
    with pytest.raises(ValueError, match="unknown target"):
        target_values(attrs, "eye_colour")


def test_uniform_split_keeps_class_proportions_and_is_seeded(tmp_path):
    labels = np.array([0] * 700 + [1] * 200 + [2] * 100)
    split = make_split(labels, "uniform", seed=3)
    assert split.sizes() == {"train": 700, "val": 100, "test": 200}
    for part, frac in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        counts = np.bincount(labels[split.part(part)], minlength=3)
        assert counts.tolist() == [round(700 * frac), round(200 * frac), round(100 * frac)]
    every = np.concatenate([split.train, split.val, split.test])
    assert sorted(every.tolist()) == list(range(1000))
    again = make_split(labels, "uniform", seed=3)
    assert np.array_equal(split.test, again.test)
    assert not np.array_equal(split.test, make_split(labels, "uniform", seed=4).test)
    path = save_split(split, tmp_path / "s.csv", [f"img{i}.jpg" for i in range(1000)])
    loaded, names = load_split(path)
    assert names[5] == "img5.jpg" and loaded.kind == "uniform" and loaded.seed == 3
    assert np.array_equal(loaded.val, split.val)


def test_random_split_ignores_labels_and_rejects_bad_fractions():
    split = make_split(np.zeros(50), "random", seed=0)
    assert split.sizes() == {"train": 35, "val": 5, "test": 10}
    with pytest.raises(ValueError, match="fractions"):
        make_split(np.zeros(5), fractions=(0.5, 0.6, 0.1))
    with pytest.raises(ValueError, match="split kind"):
        make_split(np.zeros(5), "balanced")


def test_baseline_learns_and_picks_on_validation():
    attrs, feats = _synthetic(400)
    x, y = feats["unmasked"], target_values(attrs, "sex")
    model = fit_baseline(x[:250], y[:250], "sex", x[250:300], y[250:300])
    assert set(model.val_scores) == {"logreg", "svm-rbf-c1", "svm-rbf-c10"}
    assert model.val_scores[model.name] == max(model.val_scores.values())
    assert np.mean(model.predict(x[300:]) == y[300:]) > 0.85
    age = target_values(attrs, "age")
    reg = fit_baseline(x[:250], age[:250], "age", x[250:300], age[250:300], models=["ridge"])
    assert np.mean(np.abs(reg.predict(x[300:]) - age[300:])) < 20  # predicting the mean: ~22
    with pytest.raises(ValueError, match="unknown model"):
        fit_baseline(x[:10], y[:10], "sex", x[:10], y[:10], models=["ridge"])


def test_metrics_confusion_and_breakdowns():
    y, p = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    assert confusion(y, p, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    out = evaluate("race", y, p, {"sex": (np.array([0, 0, 1, 1, 1]), ("male", "female"))})
    assert out["overall"]["accuracy"] == pytest.approx(0.6)
    assert out["breakdown"]["sex"]["male"]["accuracy"] == 0.5
    ages = evaluate("age", np.array([2.0, 70.0]), np.array([4.0, 60.0]))
    assert ages["overall"]["mae"] == 6.0
    assert ages["breakdown"]["age_group"] == {"baby": {"mae": 2.0, "rmse": 2.0, "n": 1},
                                              "senior": {"mae": 10.0, "rmse": 10.0, "n": 1}}


def test_study_four_combinations_and_report(tmp_path):
    attrs, feats = _synthetic(300)
    styles = ["surgical", "cloth", "n95"] * 100
    result = run_study(feats, attrs, split_kind="uniform", styles=styles,
                       split_dir=tmp_path / "splits", models=None)
    keys = {"train_unmasked/test_unmasked", "train_unmasked/test_masked",
            "train_masked/test_unmasked", "train_masked/test_masked"}
    assert set(result["summary"]) == keys
    summary = result["summary"]
    # The masked copy is noisier, so the clean model must do better on clean test faces.
    assert summary["train_unmasked/test_unmasked"]["sex"] > \
        summary["train_unmasked/test_masked"]["sex"]
    assert set(result["results"]["race"]["train_masked/test_masked"]["breakdown"]) == \
        {"sex", "race", "style"}
    assert len(list((tmp_path / "splits").glob("uniform-*-seed0.csv"))) == 4
    paths = write_report(result, tmp_path / "report")
    assert json.loads(paths["json"].read_text())["meta"]["samples"] == 300
    pngs = list((tmp_path / "report" / "confusion").glob("*.png"))
    assert len(pngs) == 12 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and "age MAE / RMSE" in page


@needs_utk
def test_embeddings_of_real_utkface_crops(tmp_path):
    from maskface.attributes.features import embed_images
    from maskface.datasets import load_dataset
    from maskface.evaluation.embeddings import EmbeddingCache

    dataset = load_dataset("utkface", UTK)
    assert len(dataset.problems) >= 1  # the sample's malformed names are reported
    paths = [s.path for s in dataset.samples[:4]]
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    feats = embed_images(paths, cache=cache, workers=1)
    assert feats.embeddings.shape == (4, 128) and feats.cached == 0
    assert np.allclose(np.linalg.norm(feats.embeddings, axis=1), 1, atol=1e-4)
    assert not np.allclose(feats.embeddings[0], feats.embeddings[1])
    # Aligned with itself is the image's own chip: the same cache entry, no new work.
    again = embed_images(paths, align_with=paths, cache=cache, workers=1)
    assert again.cached == 4 and np.array_equal(again.embeddings, feats.embeddings)
    # Aligned with another photo of the same size: that photo's face places the chip.
    swapped = embed_images(paths[:2], align_with=paths[1::-1], cache=cache, workers=1)
    assert swapped.cached == 0
    assert not np.allclose(swapped.embeddings[0], feats.embeddings[0], atol=1e-3)
    cache.close()


@pytest.mark.parametrize("command", [[], ["study"], ["train"], ["eval"], ["finetune"]])
def test_cli_help_has_examples(command):
    from maskface.cli_attributes import attributes

    result = CliRunner().invoke(attributes, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_cli_rejects_a_missing_root(tmp_path):
    from maskface.cli_attributes import attributes

    result = CliRunner().invoke(attributes, ["study", str(tmp_path / "nope"), str(tmp_path),
                                             "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "does not exist" in result.output


@pytest.fixture(scope="module")
def utk_chips():
    """Eight real UTKFace chips (four men, four women) and their attributes."""
    if not (UTK / "UTKFace").is_dir():
        pytest.skip(f"UTKFace sample not found at {UTK}")
    from maskface.attributes.features import cut_chips
    from maskface.datasets import load_dataset

    samples = load_dataset("utkface", UTK).samples[:60]
    picked = [s for s in samples if s.attributes["gender"] == 0][:4] + \
        [s for s in samples if s.attributes["gender"] == 1][:4]
    chips = cut_chips([s.path for s in picked], workers=1)
    return chips, [s.attributes for s in picked], [s.path for s in picked]


@pytest.fixture
def one_thread():
    """One torch thread, restored afterwards: the batches here are tiny, and on a shared
    machine two competing threads made a step up to 20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small_config(**kwargs):
    from maskface.attributes.finetune import FineTuneConfig

    settings = {"epochs": 1, "batch_size": 4, "patience": None, "shift": 4}
    return FineTuneConfig(**{**settings, **kwargs})


def test_chips_are_what_the_baseline_embeds(utk_chips, one_thread):
    from maskface.attributes.features import embed_images
    from maskface.recognizers import create_recognizer

    chips, _, paths = utk_chips
    assert chips.chips.shape == (8, 150, 150, 3) and chips.chips.dtype == np.uint8
    feats = embed_images(paths[:3], workers=1)
    again = create_recognizer("dlib-resnet").embed_chips(chips.chips[:3])
    assert np.allclose(feats.embeddings, again, atol=1e-6)


def test_dlib_trunk_rescaling_is_exact_and_gradients_reach_the_stem(utk_chips, one_thread):
    import torch

    from maskface.attributes.finetune import DlibTrunk, dlib_backbone, to_input
    from maskface.recognizers.dlib_resnet import dlib_resnet

    x = to_input(utk_chips[0].chips[:2], torch.device("cpu"))
    raw, balanced = DlibTrunk(dlib_resnet(), balance=False), DlibTrunk(dlib_resnet())
    with torch.no_grad():
        assert torch.allclose(raw(x), balanced(x), rtol=1e-4, atol=1e-4)
    # After rescaling, convolution weights are of He scale, not dlib's ~1e-3.
    assert 0.01 < float(balanced.blocks[-1].conv1.weight.detach().std()) < 0.1
    model = dlib_backbone()(5)
    assert all(p.requires_grad for p in model.parameters())  # affines included
    out = model(x)
    assert out.shape == (2, 5)
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 3])).backward()
    for param in (model.trunk.conv.weight, model.trunk.affine.weight,
                  model.trunk.blocks[-1].conv2.weight, model.head.weight):
        assert param.grad is not None and float(param.grad.abs().sum()) > 0


def test_finetune_default_backbone_learns_real_chips(utk_chips, one_thread, tmp_path):
    import torch

    from maskface.attributes.finetune import finetune, load_finetuned, save_finetuned

    chips, attrs, _ = utk_chips
    y = target_values(attrs, "sex")
    config = _small_config(epochs=3, batch_size=8, shift=0, mirror=False)
    run = finetune(chips.chips, y, "sex", chips.chips[::2], y[::2], config,
                   torch.device("cpu"))
    assert len(run.history) == 3 and run.losses[-1] < run.losses[0]
    assert run.best_epoch == max(range(1, 4), key=lambda e: run.history[e - 1]["val_score"])
    pred = run.predict(chips.chips)
    assert pred.shape == (8,) and pred.dtype == np.int64
    path = save_finetuned(run, tmp_path / "sex.pt")
    loaded, meta = load_finetuned(path, torch.device("cpu"))
    assert meta["config"]["backbone"] == "dlib-resnet"
    assert np.array_equal(loaded.predict(chips.chips), pred)


def test_finetune_age_and_freeze(utk_chips, one_thread):
    import torch

    from maskface.attributes.finetune import dlib_backbone, finetune

    chips, attrs, _ = utk_chips
    ages = target_values(attrs, "age")
    run = finetune(chips.chips[:4], ages[:4], "age", config=_small_config(freeze=2),
                   device=torch.device("cpu"))
    fresh = dlib_backbone()(1)
    trunk, start = run.model.trunk, fresh.trunk
    # Stem and first stage frozen (exactly their pretrained values); the rest moved.
    assert torch.equal(trunk.conv.weight, start.conv.weight)
    assert torch.equal(trunk.blocks[2].conv2.weight, start.blocks[2].conv2.weight)
    assert not torch.equal(trunk.blocks[3].conv1.weight, start.blocks[3].conv1.weight)
    assert run.age_mean == pytest.approx(ages[:4].mean())
    pred = run.predict(chips.chips)
    assert pred.shape == (8,) and pred.dtype == np.float64 and (pred >= 0).all()


def test_finetune_is_deterministic_for_a_seed(utk_chips, one_thread):
    import torch

    from maskface.attributes.finetune import finetune

    chips, attrs, _ = utk_chips
    y = target_values(attrs, "race")[:2]

    def weights(seed: int) -> dict:
        # One step on two chips (shift and mirror draws included).
        run = finetune(chips.chips[:2], y, "race", config=_small_config(seed=seed),
                       device=torch.device("cpu"))
        return run.model.state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["head.weight"], other["head.weight"])


def test_augment_shifts_and_mirrors_reproducibly():
    from maskface.attributes.finetune import augment

    chips = np.random.default_rng(0).integers(0, 255, (6, 20, 20, 3), dtype=np.uint8)
    out = augment(chips, np.random.default_rng(1), shift=3)
    assert out.shape == chips.shape
    assert np.array_equal(out, augment(chips, np.random.default_rng(1), shift=3))
    assert np.array_equal(augment(chips, np.random.default_rng(1), shift=0, mirror=False),
                          chips)
    flipped = augment(chips, np.random.default_rng(2), shift=0)
    assert all(np.array_equal(f, c) or np.array_equal(f, c[:, ::-1])
               for f, c in zip(flipped, chips, strict=True))


def test_timm_backbone_never_downloads():
    from maskface.attributes.finetune import backbone_from_name, timm_backbone

    with pytest.raises(ValueError, match="local file"):
        timm_backbone("resnet18", pretrained=True)
    with pytest.raises(ValueError, match="unknown backbone"):
        backbone_from_name("resnet18")
    try:
        import timm  # noqa: F401
    except Exception:
        with pytest.raises(ValueError, match="timm cannot be imported"):
            backbone_from_name("timm:resnet18")
    else:
        assert backbone_from_name("timm:resnet18").name == "timm:resnet18"


def test_finetune_timm_backbone_builds():
    pytest.importorskip("timm", reason="timm (and a torchvision matching torch) not installed")
    import torch

    from maskface.attributes.finetune import timm_backbone

    model = timm_backbone("resnet18", pretrained=False)(7)
    assert model(torch.zeros(1, 3, 150, 150)).shape == (1, 7)


@needs_utk
def test_cli_finetune_writes_report_and_model(tmp_path, one_thread):
    """End to end on 10 real images; their 'masked copy' is the images themselves."""
    import shutil

    from maskface.cli_attributes import attributes
    from maskface.datasets import load_dataset

    samples = load_dataset("utkface", UTK).samples[:10]
    (tmp_path / "utk/UTKFace").mkdir(parents=True)
    (tmp_path / "masked/UTKFace").mkdir(parents=True)
    rows = ["input,status,reason,outputs,seconds,info"]
    for s in samples:
        shutil.copy(s.path, tmp_path / "utk/UTKFace" / s.path.name)
        shutil.copy(s.path, tmp_path / "masked/UTKFace" / s.path.name)
        rows.append(f'{s.path.name},ok,,{s.path.name},0.1,"{{""styles"":[""cloth""]}}"')
    (tmp_path / "masked/UTKFace/manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(attributes, [
        "finetune", str(tmp_path / "utk"), str(tmp_path / "masked"), "--target", "age",
        "--split", "random", "--epochs", "1", "--batch-size", "4", "--out", str(out),
        "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["summary"]) == {"train_masked/test_unmasked", "train_masked/test_masked"}
    assert report["meta"]["split_sizes"]["age"] == {"train": 7, "val": 1, "test": 2}
    assert report["meta"]["config"]["backbone"] == "dlib-resnet"
    assert (out / "model.pt").is_file() and (out / "report.html").is_file()
    assert (out / "cache/chips-masked.npz").is_file()


def test_attribute_chips_are_the_chips_eval_cuts(lfw, tmp_path, one_thread):
    """One locator for every command: the attribute study cuts, from an LFW photo, the chip
    'maskface eval' cuts, embeds it to the same vector, and shares eval's SQLite cache."""
    import cv2

    from maskface.attributes.features import cached_chips, cut_chips, embed_images
    from maskface.evaluation.embeddings import EmbeddingCache, _chip, embed_paths
    from maskface.geometry.locate import cut_chip, locate
    from maskface.recognizers import create_recognizer
    from tests.conftest import read_rgb

    paths = [lfw / "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
             lfw / "Tony_Blair/Tony_Blair_0001.jpg", lfw / "Colin_Powell/Colin_Powell_0001.jpg"]
    rec = create_recognizer("dlib-resnet")
    eval_chips = [_chip((str(p), "blazeface", 1, rec.alignment, rec.chip_size, rec.padding))
                  for p in paths]
    chips = cut_chips(paths, workers=1)
    for (expected, how), got in zip(eval_chips, chips.chips, strict=True):
        assert how == "detected"
        np.testing.assert_array_equal(got, expected)
    assert not chips.fallback.any()

    # the same embeddings, read back from the cache eval writes
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    evaluated = embed_paths(paths, rec, cache=cache, workers=1)
    studied = embed_images(paths, rec, cache=cache, workers=1)
    assert studied.cached == 3
    np.testing.assert_array_equal(studied.embeddings, evaluated.embeddings)

    # a masked copy is cut where its original's face is: only the covered pixels differ
    covered = tmp_path / "covered.png"
    image = read_rgb(paths[0])
    masked = image.copy()
    masked[150:215, 80:170] = (60, 90, 150)
    cv2.imwrite(str(covered), masked[:, :, ::-1])
    [copy] = cut_chips([covered], align_with=[paths[0]], workers=1).chips
    np.testing.assert_array_equal(copy, cut_chip(masked, locate(image), rec.alignment,
                                                 rec.chip_size, rec.padding))
    different = copy != chips.chips[0]
    assert different.any() and different.any(axis=2)[:40].sum() == 0  # the eyes are untouched
    # the chip cache holds these files' chips, and is redone when a file changes
    first = cached_chips(tmp_path / "c.npz", [covered], align_with=[paths[0]])
    assert cached_chips(tmp_path / "c.npz", [covered], align_with=[paths[0]]).seconds == \
        first.seconds
    cv2.imwrite(str(covered), image[:, :, ::-1])
    redone = cached_chips(tmp_path / "c.npz", [covered], align_with=[paths[0]])
    np.testing.assert_array_equal(redone.chips[0], chips.chips[0])
    cache.close()
