"""The maskface command line, run in-process on trees the tests build."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from maskface.cli import main


@pytest.fixture()
def tree(tmp_path, astronaut):
    """A small input tree: two faces, a face-less image, a broken file, a nested folder."""
    root = tmp_path / "in"
    (root / "people" / "anna").mkdir(parents=True)
    Image.fromarray(astronaut).save(root / "people" / "anna" / "a1.jpg", quality=92)
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(root / "people" / "b.png")
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(root / "blank.jpg")
    (root / "broken.jpg").write_bytes(b"not really a jpeg")
    return root


def _manifest(path):
    with open(path, newline="") as fh:
        return {row["input"]: row for row in csv.DictReader(fh)}


def test_help_on_every_command():
    runner = CliRunner()
    for args in ([], ["apply"], ["demo"], ["detect"], ["sheet"], ["styles"]):
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output
    assert "Example" in runner.invoke(main, ["apply", "--help"]).output


def test_apply_tree_with_manifest_and_sidecars(tree, tmp_path):
    out = tmp_path / "out"
    args = ["apply", str(tree), str(out), "--styles", "surgical,kn95", "--per-image", "2",
            "--save-alpha", "--save-json", "--workers", "1", "--quiet", "--seed", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = _manifest(out / "manifest.csv")
    assert set(rows) == {"people/anna/a1.jpg", "people/b.png", "blank.jpg", "broken.jpg"}
    assert rows["people/anna/a1.jpg"]["status"] == "ok"
    assert rows["blank.jpg"]["status"] == "no_face"
    assert rows["broken.jpg"]["status"] == "unreadable"
    made = sorted(p.name for p in (out / "people" / "anna").iterdir())
    assert made == sorted([
        "a1_0_kn95.jpg", "a1_0_kn95.json", "a1_0_kn95.mask.png",
        "a1_1_surgical.jpg", "a1_1_surgical.json", "a1_1_surgical.mask.png",
    ]) or made == sorted([
        "a1_0_surgical.jpg", "a1_0_surgical.json", "a1_0_surgical.mask.png",
        "a1_1_kn95.jpg", "a1_1_kn95.json", "a1_1_kn95.mask.png",
    ])
    record = json.loads(next((out / "people" / "anna").glob("*.json")).read_text())
    assert record["input"] == "people/anna/a1.jpg" and len(record["faces"]) == 1
    alpha = np.asarray(Image.open(next((out / "people" / "anna").glob("*.mask.png"))))
    assert alpha.dtype == np.uint8 and alpha.max() == 255 and 0.01 < (alpha > 0).mean() < 0.2

    # Same command again: everything is already done, nothing is redone.
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "4 already done" in again.output


def test_apply_is_deterministic(tree, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        args = ["apply", str(tree / "people"), str(out), "--styles", "cloth", "--vary", "--workers",
                "1", "--quiet", "--seed", "11"]
        assert CliRunner().invoke(main, args).exit_code == 0
        outs.append((out / "anna" / "a1.jpg").read_bytes())
    assert outs[0] == outs[1]


def test_apply_rejects_bad_options(tree, tmp_path):
    runner = CliRunner()
    bad_style = runner.invoke(main, ["apply", str(tree), str(tmp_path / "o"), "--styles", "x"])
    assert bad_style.exit_code == 2 and "unknown style" in bad_style.output
    bad_colour = runner.invoke(main, ["apply", str(tree), str(tmp_path / "o"), "--color", "zz"])
    assert bad_colour.exit_code == 2 and "zz" in bad_colour.output
    inside = runner.invoke(main, ["apply", str(tree), str(tree / "masked"), "--quiet"])
    assert inside.exit_code == 1 and "Traceback" not in inside.output


def test_detect_prints_json(tree):
    result = CliRunner().invoke(main, ["detect", str(tree / "people" / "anna" / "a1.jpg")])
    assert result.exit_code == 0
    faces = json.loads(result.output)["faces"]
    assert len(faces) == 1 and set(faces[0]["pose"]) == {"yaw", "pitch", "roll"}
    broken = CliRunner().invoke(main, ["detect", str(tree / "broken.jpg")])
    assert broken.exit_code == 1 and "broken.jpg" in broken.output
    assert "Traceback" not in broken.output


def test_demo_writes_a_contact_sheet(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png"))
    assert sheet.shape[0] >= 2 * 200 and sheet.shape[1] >= 6 * 200
    made = {p.stem.split("_", 1)[1] for p in tmp_path.glob("astronaut_*.png")}
    assert {"surgical", "n95", "kn95", "cloth", "respirator", "surgical_under_nose"} <= made


def test_styles_lists_the_catalogue():
    result = CliRunner().invoke(main, ["styles"])
    assert result.exit_code == 0
    for word in ("surgical", "n95", "kn95", "cloth", "respirator", "under_nose", "dots"):
        assert word in result.output


def test_sheet_compares_renderers_on_the_sample(tmp_path):
    out = tmp_path / "sheet.png"
    args = ["sheet", str(out), "--count", "1", "--styles", "kn95,surgical", "--renderers", "2d,3d"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[1] == 5 * 160  # original + 2 styles x 2 renderers
    bad = CliRunner().invoke(main, ["sheet", str(out), "--renderers", "4d"])
    assert bad.exit_code == 2
