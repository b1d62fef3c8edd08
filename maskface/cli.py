"""The ``maskface`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from maskface import __version__

_STYLE_HELP = "Comma-separated mask styles (see 'maskface styles')."


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _check_styles(styles: tuple[str, ...]) -> tuple[str, ...]:
    from maskface.styles import list_styles

    unknown = [s for s in styles if s not in list_styles()]
    if unknown or not styles:
        raise click.BadParameter(
            f"unknown style(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(list_styles())}", param_hint="--styles",
        )
    return styles


def _check_wear(wear: tuple[str, ...]) -> tuple[str, ...]:
    from maskface.styles.base import WEAR_STYLES

    unknown = [w for w in wear if w not in WEAR_STYLES]
    if unknown or not wear:
        raise click.BadParameter(
            f"unknown wear {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(WEAR_STYLES)}", param_hint="--wear",
        )
    return wear


def _write_png(path: Path, image) -> None:
    from maskface.imageio import write_image

    write_image(path, image)
    click.echo(f"wrote {path}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maskface")
def main() -> None:
    """Realistic masks on faces, and face recognition under masks.

    \b
    Examples:
      maskface demo
      maskface apply photos/ masked/ --styles surgical,kn95 --per-image 2
      maskface styles
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
@click.option("--styles", default="surgical", show_default=True, help=_STYLE_HELP)
@click.option("--per-image", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Masked copies per input; each takes a different style while any is left.")
@click.option("--wear", default="correct", show_default=True,
              help="Comma-separated wear styles to draw from: correct, under_nose, chin.")
@click.option("--color", default=None, help="Mask colour: a name or #RRGGBB.")
@click.option("--pattern", default=None, help="Pattern (cloth masks mainly), e.g. dots.")
@click.option("--vary", is_flag=True, help="Random plausible colours/patterns per face.")
@click.option("--faces", type=click.Choice(["largest", "all"]), default="largest",
              show_default=True, help="Mask only the largest face or every face.")
@click.option("--renderer", type=click.Choice(["2d", "3d"]), default="2d", show_default=True,
              help="2d: texture laid on the skin; 3d: a mask surface of its own.")
@click.option("--analyser", type=click.Choice(["mediapipe", "dlib"]), default="mediapipe",
              show_default=True, help="Face landmark backend.")
@click.option("--workers", type=int, default=None, help="Worker processes [all cores].")
@click.option("--scheduler", default=None,
              help="Run on Dask: 'local' for a local cluster, or a scheduler address "
                   "(tcp://host:8786; OUTPUT must be on storage all workers reach).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-alpha", is_flag=True, help="Also write <name>.mask.png (mask coverage).")
@click.option("--save-json", is_flag=True, help="Also write <name>.json (what was drawn).")
@click.option("--format", "image_format", type=click.Choice(["same", "jpg", "png", "webp"]),
              default="same", show_default=True, help="Output image format.")
@click.option("--keep-unmasked", is_flag=True,
              help="Copy images without a face to the output as they are.")
@click.option("--manifest", default="manifest.csv", show_default=True,
              help="Manifest file under OUTPUT (.csv or .parquet).")
@click.option("--no-resume", is_flag=True, help="Start afresh instead of resuming.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def apply(input_path: Path, output: Path, styles: str, per_image: int, wear: str,
          color: str | None, pattern: str | None, vary: bool, faces: str, renderer: str,
          analyser: str, workers: int | None, scheduler: str | None, seed: int,
          save_alpha: bool, save_json: bool,
          image_format: str, keep_unmasked: bool, manifest: str, no_resume: bool,
          quiet: bool) -> None:
    """Mask the faces in INPUT (an image or a folder tree) and write them under OUTPUT.

    The folder tree is kept; every input gets a row in the manifest (ok, no_face,
    unreadable, error + reason). Re-running the same command resumes a killed run.

    \b
    Examples:
      maskface apply photo.jpg out/
      maskface apply lfw/ lfw-masked/ --styles surgical,n95,kn95,cloth --vary
      maskface apply faces/ masked/ --styles surgical,kn95 --per-image 2 --save-alpha
      maskface apply vggface2/ masked/ --scheduler tcp://10.0.0.5:8786
    """
    from maskface.batch.runner import run_batch
    from maskface.errors import MaskfaceError
    from maskface.mask_job import MaskJob

    params = {k: v for k, v in (("color", color), ("pattern", pattern)) if v}
    job = MaskJob(
        styles=_check_styles(_split(styles)), per_image=per_image, wear=_check_wear(_split(wear)),
        faces=faces, renderer=renderer, analyser=analyser, vary=vary, style_params=params,
        save_alpha=save_alpha, save_json=save_json, keep_unmasked=keep_unmasked,
        image_format=None if image_format == "same" else "." + image_format,
    )
    _check_style_params(job)
    try:
        summary = run_batch(input_path, output, job, workers=workers, seed=seed,
                            manifest=manifest, resume=not no_resume, progress=not quiet,
                            scheduler=scheduler)
    except MaskfaceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(summary))
    if summary.interrupted:
        sys.exit(130)


def _check_style_params(job) -> None:
    """Fail before the run starts when a colour or pattern is not valid for a style."""
    from maskface.styles import create_style

    for style in job.styles:
        try:
            create_style(style, **job.style_params)
        except (ValueError, TypeError) as exc:
            raise click.BadParameter(str(exc)) from None


@main.command()
def styles() -> None:
    """List mask styles, colours, patterns and wear styles."""
    from maskface.styles import NAMED_COLORS, PATTERNS, list_styles
    from maskface.styles.base import WEAR_STYLES

    click.echo("styles:   " + ", ".join(list_styles()))
    click.echo("wear:     " + ", ".join(WEAR_STYLES))
    click.echo("colours:  " + ", ".join(NAMED_COLORS) + " (or #RRGGBB)")
    click.echo("patterns: " + ", ".join(PATTERNS))


@main.command()
@click.argument("image_path", metavar="IMAGE", type=click.Path(exists=True, path_type=Path))
@click.option("--analyser", type=click.Choice(["mediapipe", "dlib"]), default="mediapipe",
              show_default=True)
def detect(image_path: Path, analyser: str) -> None:
    """Print the faces found in IMAGE as JSON (box, score, pose, visibility).

    \b
    Example:
      maskface detect photo.jpg
    """
    from maskface.errors import MaskfaceError
    from maskface.geometry.analysers import create_analyser
    from maskface.imageio import read_image

    try:
        image = read_image(image_path)
    except MaskfaceError as exc:
        raise click.ClickException(str(exc)) from None
    faces = create_analyser(analyser)(image)
    click.echo(json.dumps({"image": str(image_path), "faces": [f.as_dict() for f in faces]},
                          indent=2))


@main.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="A face tree to pick varied poses from (e.g. LFW).")
@click.option("--count", type=click.IntRange(1, 40), default=6, show_default=True,
              help="Faces (rows) on the sheet.")
@click.option("--styles", default=None, help=_STYLE_HELP + " [all]")
@click.option("--wear", type=click.Choice(["correct", "under_nose", "chin"]), default="correct",
              show_default=True)
@click.option("--renderers", default="2d", show_default=True,
              help="Comma-separated renderers; several put them side by side per style.")
@click.option("--seed", type=int, default=0, show_default=True)
def sheet(output: Path, root: Path | None, count: int, styles: str | None, wear: str,
          renderers: str, seed: int) -> None:
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

    chosen = _check_styles(_split(styles)) if styles else None
    if root is not None:
        images = varied_pose_images(root, count)
    else:
        base = data.astronaut()
        h, w = base.shape[:2]
        images = [("astronaut", base), ("mirrored", np.ascontiguousarray(base[:, ::-1]))]
        for angle in (-25, 25):
            turn = cv2.getRotationMatrix2D((w / 2, h / 3), angle, 1.0)
            images.append((f"roll{angle:+d}", cv2.warpAffine(base, turn, (w, h),
                                                              borderMode=cv2.BORDER_REFLECT)))
        images = images[:count]
    chosen_renderers = _split(renderers)
    if not chosen_renderers or set(chosen_renderers) - {"2d", "3d"}:
        raise click.BadParameter("choose from 2d, 3d", param_hint="--renderers")
    rows = style_rows(images, chosen, wear=wear, seed=seed, renderers=chosen_renderers)
    if not rows:
        raise click.ClickException("no face found in the chosen images")
    _write_png(output, contact_sheet(rows, tile=160))


def _register_groups() -> None:
    from maskface.cli_attributes import attributes
    from maskface.cli_datasets import datasets
    from maskface.cli_eval import compare_command, eval_command

    main.add_command(datasets)
    main.add_command(eval_command)
    main.add_command(compare_command)
    main.add_command(attributes)


_register_groups()

if __name__ == "__main__":
    main()
