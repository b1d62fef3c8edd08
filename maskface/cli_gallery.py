"""``maskface gallery``: create, enrol, search, list, remove, calibrate and evaluate galleries."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from maskface.cli_common import (
    RECOGNIZER_ALIGNMENTS,
    MaskfaceGroup,
    recognizer_choice,
    renderer_choice,
    style_choice,
)

INDEXES = ("flat", "hnsw", "ivf")
DETECTORS = ("dlib", "blazeface", "mediapipe")


def _open(path: Path, readonly: bool = False):
    from maskface.gallery import Gallery

    return Gallery.open(path, readonly=readonly)


def _split(value: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in value.split(",") if s.strip())


@click.group("gallery", cls=MaskfaceGroup)
def gallery() -> None:
    """Identification galleries: enrol people, then name the faces in photos.

    \b
    Examples:
      maskface gallery create staff/ --recognizer dlib-resnet
      maskface gallery enrol staff/ --tree photos/ --mask-aware
      maskface gallery enrol staff/ --name "Ada Lovelace" ada1.jpg ada2.jpg
      maskface gallery search staff/ door.jpg
      maskface gallery calibrate staff/ --nonmated strangers/ --fpir 0.01
      maskface gallery eval ../shared/data/lfw --out openset/
    """


@gallery.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--recognizer", type=recognizer_choice(), default="dlib-resnet",
              show_default=True, help="Recognizer (see maskface.recognizers.list_recognizers()).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="torch/onnx recognizers: the model file.")
@click.option("--alignment", type=click.Choice(RECOGNIZER_ALIGNMENTS),
              help="How faces are cut for the model (torch, onnx, dlib-resnet and its "
                   "fine-tunes; dlib150-upper: steadier under masks).")
@click.option("--timm-arch", help="torch recognizer: the timm architecture of a state dict.")
@click.option("--flip", is_flag=True, help="Average each face's embedding with its mirror's.")
@click.option("--detector", type=click.Choice(DETECTORS), default="blazeface",
              show_default=True, help="Face detector for enrolment and search.")
@click.option("--index", type=click.Choice(INDEXES), default="flat", show_default=True,
              help="flat: exact search; hnsw or ivf: approximate, for large galleries.")
@click.option("--threshold", type=float, default=None,
              help="Decision threshold (cosine similarity) [measured default of the "
                   "recognizer; set it from data with 'maskface gallery calibrate'].")
@click.option("--masked-threshold", type=float, default=None,
              help="The threshold for faces in masks [measured default; 'maskface gallery "
                   "calibrate --masked'].")
def create(path: Path, recognizer: str, model_path: str | None, alignment: str | None,
           timm_arch: str | None, flip: bool, detector: str, index: str,
           threshold: float | None, masked_threshold: float | None) -> None:
    """Create an empty gallery in folder PATH."""
    from maskface.cli_eval import model_options
    from maskface.gallery import Gallery

    kwargs: dict[str, Any] = dict(model_options(recognizer, model_path, alignment, timm_arch))
    if flip:
        kwargs["flip"] = True
    g = Gallery.create(path, recognizer, detector, index, kwargs, threshold=threshold,
                       masked_threshold=masked_threshold)
    click.echo(f"created gallery {path}: recognizer {recognizer}, detector {detector}, "
               f"{index} index, threshold {g.threshold:.4f} ({g.threshold_source}), "
               f"masked faces {g.masked_threshold:.4f}")
    g.close()


@gallery.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--name", "identity", help="The identity the IMAGES show.")
@click.option("--tree", type=click.Path(path_type=Path, file_okay=False),
              help="Enrol a folder of <identity>/<image> instead (resumable).")
@click.option("--mask-aware", is_flag=True,
              help="Also add synthetic masked variants of each photo as templates.")
@click.option("--styles", type=style_choice(), default="surgical,kn95,n95,cloth",
              show_default=True, help="Mask styles of the variants, comma-separated.")
@click.option("--renderers", type=renderer_choice(many=True), default="2d,3d",
              show_default=True, help="Renderers the variants alternate over.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the enrolment report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def enrol(path: Path, images: tuple[Path, ...], identity: str | None, tree: Path | None,
          mask_aware: bool, styles: tuple[str, ...], renderers: tuple[str, ...], seed: int,
          as_json: bool, quiet: bool) -> None:
    """Enrol IMAGES of one person (--name) or a --tree of people into gallery PATH.

    Each photo gives the template of its largest face; photos without a face, unreadable
    or already enrolled are skipped and listed. Each person is stored atomically.
    """
    if tree is not None and (images or identity):
        raise click.UsageError("give either --tree or --name with IMAGES, not both")
    if tree is None and (not images or not identity):
        raise click.UsageError("give --name NAME and one or more IMAGES, or --tree FOLDER")
    options = {"mask_aware": mask_aware, "styles": styles, "renderers": renderers,
               "seed": seed}
    with _open(path) as g:
        if tree is not None:
            report = g.enrol_tree(tree, progress=not quiet, **options)
        else:
            report = g.enrol(identity, list(images), **options)
        size = f"gallery now holds {len(g.identities())} identities, {len(g)} templates"
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for s in report.skipped:
            click.echo(f"skipped {s.source}: {s.reason}", err=True)
        for a in report.added:
            if a.note:
                click.echo(f"note {a.source}: {a.note}", err=True)
        click.echo(f"{report}; {size}")
    if not report.added:
        sys.exit(1)


@gallery.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-k", "k", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Candidates listed per face.")
@click.option("--threshold", type=float, default=None,
              help="Decide with this threshold instead of the gallery's (not saved).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
def search(path: Path, images: tuple[Path, ...], k: int, threshold: float | None,
           as_json: bool) -> None:
    """Name the faces in IMAGES against gallery PATH (largest face first)."""
    from maskface.errors import ImageReadError
    from maskface.gallery import UNKNOWN
    from maskface.imageio import read_image

    failed = False
    with _open(path, readonly=True) as g:
        for image_path in images:
            try:
                results = g.search(read_image(image_path), k=k)
            except ImageReadError as e:
                click.echo(f"{image_path}: {e}", err=True)
                failed = True
                continue
            # the gallery's threshold for bare or masked faces; one given here overrides the
            # decision only
            used = [g.threshold_for(r.masked) if threshold is None else threshold
                    for r in results]
            if threshold is not None:
                for r in results:
                    best = r.matches[0] if r.matches else None
                    r.identity = best.identity if best and best.score >= threshold else UNKNOWN
            if as_json:
                click.echo(json.dumps({"image": str(image_path), "threshold": (
                    g.threshold if threshold is None else threshold), "faces": [
                    {**r.as_dict(), "threshold": t} for r, t in zip(results, used,
                                                                     strict=True)]}))
                continue
            if not results:
                click.echo(f"{image_path}: no face found")
            for i, (r, t) in enumerate(zip(results, used, strict=True)):
                cands = ", ".join(f"{m.identity} {m.score:.3f}" for m in r.matches)
                mask = f"masked ({r.mask_probability:.2f})" if r.masked else (
                    f"unmasked ({r.mask_probability:.2f})")
                box = ",".join(str(round(v)) for v in r.box)
                click.echo(f"{image_path} face {i + 1} [{box}] {mask}: {r.identity} "
                           f"(score {r.score:.3f}, threshold {t:.3f}); candidates: "
                           f"{cands or 'none'}")
    if failed:
        sys.exit(1)


@gallery.command("list")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--templates", is_flag=True, help="List every template too.")
@click.option("--json", "as_json", is_flag=True)
def list_command(path: Path, templates: bool, as_json: bool) -> None:
    """Show gallery PATH: its pipeline, threshold and identities."""
    with _open(path, readonly=True) as g:
        info = g.info()
        people = g.identities()
        rows = g.templates() if templates else []
    if as_json:
        click.echo(json.dumps({**info, "identities": people,
                               "templates_list": [r.__dict__ for r in rows]}, indent=2))
        return
    click.echo(f"gallery {info['path']}: recognizer {info['recognizer']} "
               f"({info['signature']['alignment']}, {info['signature']['dim']}-d), detector "
               f"{info['detector']}, {info['index']} index")
    click.echo(f"threshold {info['threshold']:.4f} ({info['threshold_source']}); masked "
               f"faces {info['masked_threshold']:.4f} ({info['masked_threshold_source']})")
    click.echo(f"{info['identities']} identities, {info['templates']} templates")
    for name, n in people.items():
        click.echo(f"  {name}: {n}")
    for r in rows:
        click.echo(f"  #{r.id} {r.identity} {r.variant} masked={int(r.masked)} {r.source}")


@gallery.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("identities", nargs=-1, required=True)
def remove(path: Path, identities: tuple[str, ...]) -> None:
    """Remove IDENTITIES (all their templates) from gallery PATH."""
    missing = []
    with _open(path) as g:
        for name in identities:
            n = g.remove(name)
            if n:
                click.echo(f"removed {name} ({n} templates)")
            else:
                missing.append(name)
    if missing:
        raise click.ClickException(f"not in the gallery: {', '.join(missing)}")


@gallery.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--nonmated", required=True, type=click.Path(exists=True, path_type=Path),
              help="A photo or folder of people NOT enrolled.")
@click.option("--fpir", type=click.FloatRange(0, 1, max_open=True), default=0.01,
              show_default=True, help="Target false-positive identification rate.")
@click.option("--masked", is_flag=True,
              help="Set the threshold of masked faces: each photo gets a mask first.")
@click.option("--dry-run", is_flag=True, help="Measure only; leave the threshold as it is.")
def calibrate(path: Path, nonmated: Path, fpir: float, masked: bool, dry_run: bool) -> None:
    """Set gallery PATH's threshold for a target FPIR, measured on non-mated photos.

    Bare and masked faces have thresholds of their own: run it once plain and once with
    --masked where masks are expected."""
    with _open(path) as g:
        cal = g.calibrate(nonmated, fpir, apply=not dry_run, masked=masked)
    for source, reason in cal.skipped:
        click.echo(f"skipped {source}: {reason}", err=True)
    click.echo(("would set " if dry_run else "set ") + "masked " * masked + str(cal))


@gallery.command("index")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("kind", type=click.Choice(INDEXES))
@click.option("--option", "options", multiple=True,
              help="Index option KEY=INT (hnsw: m, ef_construction, ef_search; ivf: nlist, "
                   "nprobe). Repeatable.")
def index_command(path: Path, kind: str, options: tuple[str, ...]) -> None:
    """Rebuild gallery PATH's index as KIND (flat, hnsw or ivf)."""
    parsed = {}
    for item in options:
        key, _, value = item.partition("=")
        if not value.strip().isdigit():
            raise click.BadParameter(f"{item!r} is not KEY=INT", param_hint="--option")
        parsed[key.strip()] = int(value)
    with _open(path) as g:
        g.rebuild_index(kind, parsed or None)
        click.echo(f"rebuilt the index of {path} as {kind} ({len(g)} templates)")


@gallery.command("eval")
@click.argument("lfw_root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("gallery-eval"), show_default=True,
              help="Folder for report.json/.html/.md and figures.")
@click.option("--recognizer", type=recognizer_choice(), default="dlib-resnet",
              show_default=True)
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="torch/onnx recognizers: the model file.")
@click.option("--alignment", type=click.Choice(RECOGNIZER_ALIGNMENTS))
@click.option("--timm-arch")
@click.option("--settings", default="unmasked,masked-probe,masked-both", show_default=True,
              help="Comma-separated: unmasked, masked-probe, masked-both.")
@click.option("--mask-aware", "mask_aware", type=click.Choice(["both", "on", "off"]),
              default="both", show_default=True,
              help="Galleries with and/or without mask-aware enrolment.")
@click.option("--masked-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A masked copy of LFW ('maskface datasets mask lfw'); default: masks "
                   "rendered on the fly.")
@click.option("--probe-styles", type=style_choice(), default="surgical,n95,kn95,cloth",
              show_default=True, help="Styles of the masks rendered on probes.")
@click.option("--styles", type=style_choice(), default="surgical,kn95,n95,cloth",
              show_default=True, help="Styles of the mask-aware variants.")
@click.option("--renderers", type=renderer_choice(many=True), default="2d,3d",
              show_default=True)
@click.option("--mated-people", type=click.IntRange(1), help="Seeded subset of enrolled people.")
@click.option("--nonmated", type=click.IntRange(1), help="Seeded subset of non-mated probes.")
@click.option("--index", type=click.Choice(INDEXES), default="flat", show_default=True)
@click.option("--detector", type=click.Choice(DETECTORS), default="blazeface",
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals.")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False),
              help="Embedding cache [$MASKFACE_CACHE or ~/.cache/maskface/embeddings.sqlite].")
@click.option("--no-cache", is_flag=True)
@click.option("--workers", type=click.IntRange(1), help="Worker processes [all cores].")
@click.option("--quiet", is_flag=True)
def eval_command(lfw_root: Path, out: Path, recognizer: str, model_path: str | None,
                 alignment: str | None, timm_arch: str | None, settings: str, mask_aware: str,
                 masked_root: Path | None, probe_styles: tuple[str, ...],
                 styles: tuple[str, ...], renderers: tuple[str, ...],
                 mated_people: int | None, nonmated: int | None, index: str, detector: str,
                 seed: int, bootstrap: int, cache_path: str | None, no_cache: bool,
                 workers: int | None, quiet: bool) -> None:
    """Open-set identification benchmark on LFW: rank-1/5, FNIR at FPIR 1%, 0.3%, 0.1%, DET.

    People with 2+ images are enrolled from one and searched with the others; people with
    one image are non-mated searches. Settings unmasked, masked-probe and masked-both, each
    with and without mask-aware enrolment.

    \b
    Examples:
      maskface gallery eval ../shared/data/lfw --out openset/
      maskface gallery eval lfw/ --masked-root lfw-masked/ --settings masked-probe
      maskface gallery eval lfw/ --mated-people 300 --nonmated 1000 --bootstrap 200
    """
    from maskface.cli_eval import default_cache_path, model_options
    from maskface.evaluation.embeddings import EmbeddingCache
    from maskface.gallery.benchmark import evaluate_open_set
    from maskface.gallery.report import markdown_table, write_report

    kwargs = model_options(recognizer, model_path, alignment, timm_arch)
    aware = {"both": (False, True), "on": (True,), "off": (False,)}[mask_aware]
    cache = None if no_cache else EmbeddingCache(cache_path or default_cache_path())
    command = shlex.join(["maskface", *sys.argv[1:]]) if sys.argv else ""
    try:
        run = evaluate_open_set(
            lfw_root, recognizer, kwargs, settings=_split(settings), mask_aware=aware,
            masked_root=masked_root, probe_styles=probe_styles, styles=styles,
            renderers=renderers, seed=seed,
            cache=cache, detector=detector, index=index, n_bootstrap=bootstrap,
            mated_people=mated_people, nonmated=nonmated, workers=workers,
            progress=not quiet, command=command)
    finally:
        if cache is not None:
            cache.close()
    paths = write_report(out, run)
    click.echo(markdown_table(run.report))
    click.echo(f"{run.report['timings']['total_s']:.1f} s")
    for kind, p in paths.items():
        click.echo(f"wrote {p} ({kind})")
