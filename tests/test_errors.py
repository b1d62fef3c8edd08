"""One error hierarchy, and one CLI handler: a user mistake is one line, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from maskface.cli import main


def test_deliberate_errors_are_maskface_errors_and_value_errors_where_natural(tmp_path):
    import maskface
    from maskface.errors import InvalidInputError, MaskfaceError, UnknownNameError
    from maskface.styles import create_style, parse_color

    picture = np.zeros((8, 8, 3), np.uint8)
    mistakes = [
        lambda: create_style("bandana"),
        lambda: create_style("surgical", color="blurple"),
        lambda: create_style("cloth", pattern="paisley"),
        lambda: create_style("surgical", pleats=0),
        lambda: parse_color("#12345"),
        lambda: maskface.create_renderer("4d"),
        lambda: maskface.create_analyser("opencv"),
        lambda: maskface.mask_image(picture, wear="sideways"),
        lambda: maskface.mask_image(picture, faces="biggest"),
        lambda: maskface.write_image(tmp_path / "x.gif", picture),
        lambda: maskface.AddMask(styles=["bandana"]),
    ]
    for mistake in mistakes:
        with pytest.raises(InvalidInputError) as caught:
            mistake()
        # Still a ValueError, so that existing `except ValueError` code keeps working.
        assert isinstance(caught.value, MaskfaceError) and isinstance(caught.value, ValueError)
    with pytest.raises(UnknownNameError, match="choose from dlib, mediapipe"):
        maskface.create_analyser("opencv")


def _unwritable(tmp_path: Path) -> Path:
    """A folder the test process cannot create: root may write anywhere but in sysfs."""
    if os.geteuid() == 0:
        return Path("/sys/maskface-test-output")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "out"


@pytest.fixture()
def inputs(tmp_path: Path, astronaut: np.ndarray) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(astronaut).save(root / "face.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not a whole jpeg")
    (root / "blank").mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(root / "blank" / "grey.png")
    return root


def _mistakes(root: Path, tmp: Path) -> list[list[str]]:
    a_file = tmp / "a-file.txt"
    a_file.write_text("in the way")
    return [
        ["apply", str(root), str(_unwritable(tmp))],                       # unwritable output
        ["apply", str(root), str(a_file / "out")],                         # a file in the way
        ["apply", str(root), str(root / "masked")],                        # output inside input
        ["apply", str(root), str(tmp / "o1"), "--color", "blurple"],       # bad colour
        ["apply", str(root), str(tmp / "o2"), "--renderer", "4d"],         # unknown renderer
        ["apply", str(root), str(tmp / "o3"), "--manifest", "m.xlsx"],     # bad manifest name
        ["detect", str(root / "broken.jpg")],                              # unreadable image
        ["sheet", str(tmp / "s.png"), "--root", str(root / "blank")],      # no face to show
        ["sheet", str(a_file / "s.png"), "--count", "1", "--styles", "kn95"],  # unwritable sheet
        ["datasets", "info", "imagenet", str(root)],                       # unknown dataset
        ["datasets", "info", "lfw", str(tmp / "nowhere")],                 # missing root
        ["datasets", "mask", "lfw", str(tmp / "nowhere"), str(tmp / "o4")],
    ]


def test_every_user_mistake_is_one_line_without_a_traceback(inputs, tmp_path):
    runner = CliRunner()
    for args in _mistakes(inputs, tmp_path):
        result = runner.invoke(main, [*args, "--quiet"] if args[0] == "apply" else args)
        # An uncaught exception would be kept in result.exception instead of an exit code.
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert result.exit_code in (1, 2), (args, result.output)
        assert "Error: " in result.output and "Traceback" not in result.output, args
    unwritable = runner.invoke(main, ["apply", str(inputs), str(_unwritable(tmp_path)),
                                      "--quiet"])
    assert "Cannot write to the output folder" in unwritable.output
    sheet = runner.invoke(main, ["sheet", str(tmp_path / "s.png"), "--root",
                                 str(inputs / "blank")])
    assert "no face found" in sheet.output


def test_unwritable_output_is_refused_before_anything_runs(inputs, tmp_path):
    from maskface.batch.runner import run_batch
    from maskface.errors import OutputError
    from maskface.mask_job import MaskJob

    with pytest.raises(OutputError, match="Cannot write to the output folder"):
        run_batch(inputs, _unwritable(tmp_path), MaskJob(), workers=1, progress=False)
