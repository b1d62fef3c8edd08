"""`maskface attributes train` and `eval`: the library pipeline behind them, end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

UTK = Path(__file__).resolve().parents[1].parent / "shared/data/utkface"


def _synthetic(n: int = 240, seed: int = 0):
    """Labels and embeddings that carry sex (less clearly in the masked copy)."""
    rng = np.random.default_rng(seed)
    attributes = [{"age": int(a), "gender": int(g), "race": int(r)} for a, g, r in
                  zip(rng.integers(1, 90, n), rng.integers(0, 2, n), rng.integers(0, 5, n),
                      strict=True)]
    sex = np.array([a["gender"] for a in attributes], np.float32)
    clean = rng.normal(size=(n, 8)).astype(np.float32)
    clean[:, 0] += 3 * sex
    masked = clean + 1.5 * rng.normal(size=clean.shape).astype(np.float32)
    return attributes, {"unmasked": clean, "masked": masked}


def test_fit_save_load_and_score_on_the_saved_split(tmp_path):
    from maskface.attributes.pipeline import load_model, save_model
    from maskface.attributes.splits import load_split
    from maskface.attributes.train_eval import fit_attribute_model, score_attribute_model
    from maskface.errors import InvalidInputError

    attributes, features = _synthetic()
    names = [f"img{i}.jpg" for i in range(len(attributes))]
    model, split = fit_attribute_model(features, attributes, names, "sex",
                                       tmp_path / "sex.split.csv", train_on="unmasked")
    meta = {"target": "sex", "train_on": "unmasked", "seed": 0, "limit": None}
    save_model(model, tmp_path / "sex.pkl", meta)
    loaded, meta = load_model(tmp_path / "sex.pkl")
    saved, saved_names = load_split(tmp_path / "sex.split.csv")
    assert saved_names == names and np.array_equal(saved.test, split.test)
    styles = ["kn95", "cloth"] * (len(attributes) // 2)
    result = score_attribute_model(loaded, meta, features, attributes, saved, styles)
    clean = result["summary"]["train_unmasked/test_unmasked"]["accuracy"]
    covered = result["summary"]["train_unmasked/test_masked"]["accuracy"]
    assert clean > 0.85 and covered < clean  # the noisier copy gives less away
    masked = result["results"]["sex"]["train_unmasked/test_masked"]
    assert set(masked["breakdown"]) == {"sex", "race", "style"}
    assert result["meta"]["samples"] == len(attributes)
    with pytest.raises(InvalidInputError, match="unknown target"):
        fit_attribute_model(features, attributes, names, "eye_colour", tmp_path / "x.csv")
    with pytest.raises(InvalidInputError, match="train_on"):
        fit_attribute_model(features, attributes, names, "sex", tmp_path / "x.csv",
                            train_on="both")


@pytest.fixture(scope="module")
def utk_pair(tmp_path_factory):
    """The real UTKFace sample and a masked copy of 16 of its images."""
    if not (UTK / "UTKFace").is_dir():
        pytest.skip(f"UTKFace sample not found at {UTK}")
    from maskface.batch.runner import run_batch
    from maskface.mask_job import MaskJob

    base = tmp_path_factory.mktemp("utk")
    chosen = base / "chosen"
    chosen.mkdir()
    for path in sorted((UTK / "UTKFace").glob("*.jpg"))[::480][:16]:
        shutil.copyfile(path, chosen / path.name)
    masked = base / "masked"
    run_batch(chosen, masked / "UTKFace", MaskJob(styles=("surgical", "kn95")), workers=1,
              progress=False)
    return masked


def test_cli_train_then_eval_on_real_faces(utk_pair, tmp_path):
    from maskface.cli_attributes import attributes

    model = tmp_path / "sex.pkl"
    runner = CliRunner()
    trained = runner.invoke(attributes, [
        "train", str(UTK), str(utk_pair), "--target", "sex", "--split", "random",
        "--out", str(model), "--cache", str(tmp_path / "cache")])
    assert trained.exit_code == 0, trained.output
    assert model.is_file() and model.with_suffix(".split.csv").is_file()
    assert "sex: picked" in trained.output

    report = tmp_path / "report"
    scored = runner.invoke(attributes, ["eval", str(model), str(UTK), str(utk_pair),
                                        "--out", str(report), "--cache",
                                        str(tmp_path / "cache")])
    assert scored.exit_code == 0, scored.output
    result = json.loads((report / "report.json").read_text())
    assert set(result["summary"]) == {"train_masked/test_unmasked", "train_masked/test_masked"}
    for scores in result["summary"].values():
        assert 0.0 <= scores["accuracy"] <= 1.0
    assert result["meta"]["images"] <= 16 and result["meta"]["target"] == "sex"
    assert (report / "report.html").is_file()

    # Data that are not the images the split lists: a clear error, not a traceback.
    split_csv = model.with_suffix(".split.csv")
    lines = split_csv.read_text().splitlines()
    lines[-1] = lines[-1].replace(".jpg", "-elsewhere.jpg", 1)
    split_csv.write_text("\n".join(lines) + "\n")
    mismatch = runner.invoke(attributes, ["eval", str(model), str(UTK), str(utk_pair),
                                          "--out", str(tmp_path / "r2"), "--cache",
                                          str(tmp_path / "cache")])
    assert mismatch.exit_code == 1 and "not those the model's split" in mismatch.output
