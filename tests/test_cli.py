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
    # broken.jpg is unreadable: the run finishes, and exit code 3 tells scripts so.
    assert result.exit_code == 3, result.output
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
    assert again.exit_code == 3 and "4 already done" in again.output


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
    assert bad_style.exit_code == 2 and "unknown mask style" in bad_style.output
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


# --- one set of masking options, registry choices, exit codes, eval messages (issue 14) ----


def _option_names(command) -> set[str]:
    return {name for p in command.params for name in p.opts if name.startswith("--")}


def test_apply_and_datasets_mask_share_their_masking_options(tree, tmp_path):
    from maskface.cli_datasets import datasets

    apply_opts = _option_names(main.commands["apply"])
    mask_opts = _option_names(datasets.commands["mask"])
    assert mask_opts - apply_opts == {"--layout"} and apply_opts <= mask_opts
    assert {"--per-image", "--variants", "--color", "--pattern", "--format", "--min-face",
            "--force"} <= mask_opts

    # datasets mask takes --per-image, --color and --format; apply takes --variants.
    out = tmp_path / "masked"
    result = CliRunner().invoke(main, [
        "datasets", "mask", "folder", str(tree / "people"), str(out), "--per-image", "2",
        "--styles", "cloth,kn95", "--color", "navy", "--format", "png", "--workers", "1",
        "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "anna").glob("a1_*.png")) in (
        ["a1_0_cloth.png", "a1_1_kn95.png"], ["a1_0_kn95.png", "a1_1_cloth.png"])
    result = CliRunner().invoke(main, ["apply", str(tree / "people"), str(tmp_path / "o"),
                                       "--variants", "2", "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o" / "anna").glob("a1_*.jpg"))) == 2


def test_choices_come_from_the_registries_and_take_the_api_spellings(tree, tmp_path):
    from maskface.geometry.analysers import list_analysers
    from maskface.render.registry import list_renderers

    help_text = CliRunner().invoke(main, ["apply", "--help"]).output
    assert f"[{'|'.join(list_renderers())}]" in help_text
    assert f"[{'|'.join(list_analysers())}]" in help_text
    out = tmp_path / "out"
    # Aliases and spellings the API accepts: half-mask is the respirator.
    result = CliRunner().invoke(main, [
        "apply", str(tree / "people" / "anna"), str(out), "--styles", "Half-Mask,KN95",
        "--per-image", "2", "--wear", "Under-Nose", "--renderer", "2D",
        "--analyser", "MediaPipe", "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    info = json.loads(_manifest(out / "manifest.csv")["a1.jpg"]["info"])
    assert sorted(info["styles"]) == ["kn95", "respirator"]
    bad = CliRunner().invoke(main, ["sheet", str(tmp_path / "s.png"), "--wear", "sideways"])
    assert bad.exit_code == 2 and "choose from correct, under_nose, chin" in bad.output


def test_exit_codes_tell_scripts_how_a_run_went(tree, tmp_path):
    people = ["apply", str(tree / "people"), str(tmp_path / "ok"), "--workers", "1", "--quiet"]
    assert CliRunner().invoke(main, people).exit_code == 0
    everything = ["apply", str(tree), str(tmp_path / "all"), "--workers", "1", "--quiet"]
    result = CliRunner().invoke(main, everything)
    assert result.exit_code == 3 and "1 input(s) unreadable or failed" in result.output
    # Resuming with another seed mixes two runs: refused, unless --force.
    again = CliRunner().invoke(main, [*everything, "--seed", "5"])
    assert again.exit_code == 1 and "seed 0 -> 5" in again.output
    assert "--force" in again.output and "Traceback" not in again.output
    forced = CliRunner().invoke(main, [*everything, "--seed", "5", "--force"])
    assert forced.exit_code == 3 and "4 already done" in forced.output


def test_eval_on_a_one_fold_protocol_names_what_it_left_out(tmp_path):
    from maskface.cli_eval import eval_command
    from maskface.recognizers import Recognizer, list_recognizers, register_recognizer

    class MeanColour(Recognizer):
        name, dim = "cli-test-colour", 3

        def descriptors(self, chips):
            return chips.reshape(len(chips), -1, 3).mean(axis=1) - 100.0

    if "cli-test-colour" not in list_recognizers():
        register_recognizer("cli-test-colour", MeanColour)
    colours = {"ann": (200, 40, 40), "bob": (40, 200, 40), "cid": (40, 40, 200)}
    for who, colour in colours.items():
        for k in (1, 2):
            pixels = np.clip(np.array(colour) + 4 * k, 0, 255).astype(np.uint8)
            (tmp_path / "data" / who).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.tile(pixels, (120, 120, 1))).save(
                tmp_path / "data" / who / f"{k}.png")
    rows = [(1, f"{w}/1.png", f"{w}/2.png") for w in colours]
    rows += [(0, "ann/1.png", "bob/2.png"), (0, "bob/1.png", "cid/2.png"),
             (0, "cid/1.png", "ann/2.png"), (1, "ann/1.png", "ann/3.png")]  # ann/3: missing
    lines = ["# one fold", f"# root unmasked: {tmp_path / 'data'}",
             "pair,fold,same,a_side,a,b_side,b,identity_a,identity_b,source_line"]
    lines += [f"{i},1,{same},unmasked,{a},unmasked,{b},x,y,{i + 1}"
              for i, (same, a, b) in enumerate(rows)]
    protocol = tmp_path / "proto" / "own_unmasked-unmasked.csv"
    protocol.parent.mkdir()
    protocol.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(eval_command, [
        "--recognizer", "cli-test-colour", "--protocol", str(protocol), "--no-cache",
        "--bootstrap", "0", "--workers", "1", "--quiet", "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert "| unmasked-unmasked | all |" in result.output
    assert str(tmp_path / "data" / "ann" / "3.png") in result.output  # named on the console
    assert "1 pair(s) left out" in result.output
