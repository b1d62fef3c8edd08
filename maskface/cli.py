"""The ``maskface`` command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from maskface import __version__
from maskface.cli_common import (
    MaskfaceGroup,
    analyser_choice,
    finish_run,
    masking_options,
    renderer_choice,
    style_choice,
    wear_choice,
)

_STYLE_HELP = "Comma-separated mask styles (see 'maskface styles')."


def _write_png(path: Path, image) -> None:
    from maskface.imageio import write_image

    write_image(path, image)
    click.echo(f"wrote {path}")


@click.group(cls=MaskfaceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maskface")
def main() -> None:
    """Realistic masks on faces, and face recognition under masks.

    \b
    Examples:
      maskface demo
      maskface apply photos/ masked/ --styles surgical,kn95 --per-image 2
      maskface styles

    \b
    Exit codes: 0 done; 1 error (message on one line); 2 bad usage;
    3 a batch finished but some inputs are unreadable or failed (see its manifest);
    130 interrupted (run the same command again to resume).
    """


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("maskface-demo"),
              show_default=True, help="Folder for the contact sheet and the masked images.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out_dir: Path, seed: int) -> None:
    """Mask the embedded sample face in every style and write a contact sheet PNG.

    \b
    Example:
      maskface demo --out demo/
    """
    from skimage import data

    from maskface.sheet import contact_sheet, demo_tiles

    tiles = demo_tiles(data.astronaut(), seed=seed)
    if not tiles:
        raise click.ClickException("no face found in the sample image")
    out_dir.mkdir(parents=True, exist_ok=True)
    for label, masked in tiles[1:]:
        _write_png(out_dir / f"astronaut_{label.replace(' ', '_')}.png", masked)
    per_row = 6
    grid = [tiles[i : i + per_row] for i in range(0, len(tiles), per_row)]
    _write_png(out_dir / "contact_sheet.png", contact_sheet(grid, tile=200))


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@masking_options
def apply(input_path: Path, output: Path, masking) -> None:
    """Mask the faces in INPUT (an image or a folder tree) and write them under OUTPUT.

    The folder tree is kept; every input gets a row in the manifest (ok, no_face,
    unreadable, error + reason). Re-running the same command resumes a killed run; a run
    with other settings on the same OUTPUT is refused unless --force. Exit code 3 when
    some inputs are unreadable or failed, 130 when interrupted.

    \b
    Examples:
      maskface apply photo.jpg out/
      maskface apply lfw/ lfw-masked/ --styles surgical,n95,kn95,cloth --vary
      maskface apply faces/ masked/ --styles surgical,kn95 --per-image 2 --save-alpha
      maskface apply vggface2/ masked/ --scheduler tcp://10.0.0.5:8786
    """
    from maskface.batch.runner import run_batch

    job = masking.job()
    finish_run(run_batch(input_path, output, job, **masking.run_options()))


@main.command()
def styles() -> None:
    """List mask styles, colours, patterns and wear styles."""
    from maskface.styles import NAMED_COLORS, PATTERNS, list_styles
    from maskface.styles.base import WEAR_STYLES
    from maskface.styles.registry import STYLES

    aliases = ", ".join(f"{a} = {name}" for a, name in sorted(STYLES.aliases().items()))
    click.echo("styles:   " + ", ".join(list_styles()) + (f" (also {aliases})" if aliases else ""))
    click.echo("wear:     " + ", ".join(WEAR_STYLES))
    click.echo("colours:  " + ", ".join(NAMED_COLORS) + " (or #RRGGBB)")
    click.echo("patterns: " + ", ".join(PATTERNS))


@main.command()
@click.argument("image_path", metavar="IMAGE", type=click.Path(exists=True, path_type=Path))
@click.option("--analyser", type=analyser_choice(), default="mediapipe", show_default=True)
def detect(image_path: Path, analyser: str) -> None:
    """Print the faces found in IMAGE as JSON (box, score, pose, visibility).

    \b
    Example:
      maskface detect photo.jpg
    """
    from maskface.geometry.analysers import detect_faces
    from maskface.imageio import read_image

    faces = detect_faces(read_image(image_path), analyser)
    click.echo(json.dumps({"image": str(image_path), "faces": [f.as_dict() for f in faces]},
                          indent=2))


@main.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="A face tree to pick varied poses from (e.g. LFW).")
@click.option("--count", type=click.IntRange(1, 40), default=6, show_default=True,
              help="Faces (rows) on the sheet.")
@click.option("--styles", type=style_choice(), default=None, help=_STYLE_HELP + " [all]")
@click.option("--wear", type=wear_choice(many=False), default="correct", show_default=True)
@click.option("--renderers", type=renderer_choice(many=True), default="2d", show_default=True,
              help="Comma-separated renderers; several put them side by side per style.")
@click.option("--min-face", type=click.FloatRange(0), default=12.0, show_default=True,
              help="Leave faces smaller than this (pixels, shorter side of the box).")
@click.option("--seed", type=int, default=0, show_default=True)
def sheet(output: Path, root: Path | None, count: int, styles: tuple[str, ...] | None,
          wear: str, renderers: tuple[str, ...], min_face: float, seed: int) -> None:
    """Write a contact sheet OUTPUT.png: every style over faces of varied pose.

    Without --root the embedded sample face is used, mirrored and turned in the image plane.

    \b
    Examples:
      maskface sheet sheet.png --root ../shared/data/lfw/lfw-deepfunneled
      maskface sheet sheet.png --styles surgical,kn95 --wear under_nose
      maskface sheet compare.png --root lfw/ --styles kn95,cloth --renderers 2d,3d
    """
    import cv2
    import numpy as np
    from skimage import data

    from maskface.sheet import contact_sheet, style_rows, varied_pose_images

    if root is not None:
        images = varied_pose_images(root, count, min_face=min_face)
    else:
        base = data.astronaut()
        h, w = base.shape[:2]
        images = [("astronaut", base), ("mirrored", np.ascontiguousarray(base[:, ::-1]))]
        for angle in (-25, 25):
            turn = cv2.getRotationMatrix2D((w / 2, h / 3), angle, 1.0)
            images.append((f"roll{angle:+d}", cv2.warpAffine(base, turn, (w, h),
                                                              borderMode=cv2.BORDER_REFLECT)))
        images = images[:count]
    rows = style_rows(images, styles, wear=wear, seed=seed, renderers=renderers,
                      min_face=min_face)
    if not rows:
        raise click.ClickException("no face found in the chosen images")
    _write_png(output, contact_sheet(rows, tile=160))


def _register_groups() -> None:
    from maskface.cli_attributes import attributes
    from maskface.cli_datasets import datasets
    from maskface.cli_eval import compare_command, eval_command
    from maskface.cli_gallery import gallery
    from maskface.cli_serve import serve_command
    from maskface.cli_train import train_command
    from maskface.cli_watch import watch_command

    main.add_command(datasets)
    main.add_command(eval_command)
    main.add_command(compare_command)
    main.add_command(attributes)
    main.add_command(gallery)
    main.add_command(watch_command)
    main.add_command(serve_command)
    main.add_command(train_command)


_register_groups()

if __name__ == "__main__":
    main()
