"""``maskface datasets``: list, inspect, download and mask datasets; write pair protocols."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from maskface.errors import MaskfaceError

F = TypeVar("F", bound=Callable[..., Any])
_KINDS = ("lfw-view2", "lfw-view1", "reference-probe", "pairs")
_SHOWN_PROBLEMS = 10


def _clean_errors(command: F) -> F:
    """Turn maskface's deliberate errors into one-line CLI errors instead of tracebacks."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MaskfaceError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _name_choice() -> click.Choice:
    from maskface.datasets import list_datasets

    return click.Choice(list_datasets(), case_sensitive=False)


def _options(layout: str | None) -> dict[str, str]:
    return {"layout": layout} if layout else {}


_layout_option = click.option(
    "--layout", type=click.Choice(["original", "funneled", "deep-funneled"]), default=None,
    help="LFW only: which layout to read when ROOT holds several.")


@click.group("datasets")
def datasets() -> None:
    """Face datasets: adapters, downloads, masked copies and pair protocols.

    \b
    Examples:
      maskface datasets list
      maskface datasets info lfw ~/data/lfw
      maskface datasets mask lfw ~/data/lfw ~/data/lfw-masked --styles surgical,kn95 --vary
      maskface datasets protocols lfw ~/data/lfw protocols/ --masked-root ~/data/lfw-masked
    """


@datasets.command("list")
def list_command() -> None:
    """List the dataset names and whether they can be downloaded directly.

    \b
    Example:
      maskface datasets list
    """
    from maskface.datasets import DATASETS
    from maskface.datasets.download import CATALOGUE

    for name, cls in DATASETS.items():
        source = CATALOGUE.get(name)
        how = "download" if source and source.files else "manual"
        click.echo(f"{name:<14} {how:<9} {cls.description}")


@datasets.command()
@click.argument("name", type=_name_choice())
@click.argument("root", type=click.Path(path_type=Path))
@_layout_option
@click.option("--all-problems", is_flag=True, help="List every problem, not the first 10.")
@_clean_errors
def info(name: str, root: Path, layout: str | None, all_problems: bool) -> None:
    """Count the samples, identities, pairs and problems of dataset NAME at ROOT.

    \b
    Examples:
      maskface datasets info lfw ~/data/lfw
      maskface datasets info utkface ~/data/utkface --all-problems
    """
    from maskface.datasets import LfwDataset, load_dataset

    dataset = load_dataset(name, root, **_options(layout))
    facts = dataset.info()
    for key in ("name", "root", "image_root", "samples", "identities"):
        click.echo(f"{key}: {facts[key]}")
    click.echo(f"protocol files: {', '.join(facts['protocol_files']) or 'none'}")
    problems = list(dataset.problems)
    if isinstance(dataset, LfwDataset):
        for path in dataset.protocol_files:
            if path.name.startswith("pairs"):
                view = {"pairs.txt": "view2", "pairsDevTrain.txt": "view1-train",
                        "pairsDevTest.txt": "view1-test"}.get(path.name, "pairs")
                pairs = dataset.pairs(view)
                click.echo(f"{path.name}: {len(pairs.pairs)} pairs in {pairs.folds} fold(s), "
                           f"{len(pairs.problems)} problem line(s)")
                problems.extend(pairs.problems)
    click.echo(f"problems: {len(problems)}")
    for problem in problems if all_problems else problems[:_SHOWN_PROBLEMS]:
        click.echo(f"  {problem}")
    if len(problems) > _SHOWN_PROBLEMS and not all_problems:
        click.echo(f"  ... {len(problems) - _SHOWN_PROBLEMS} more (--all-problems)")


@datasets.command()
@click.argument("name")
@click.option("--root", type=click.Path(path_type=Path), required=True,
              help="Folder to download and unpack into.")
@click.option("--keep-archives", is_flag=True, help="Keep the archives after unpacking.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_clean_errors
def download(name: str, root: Path, keep_archives: bool, quiet: bool) -> None:
    """Download dataset NAME into --root (resumable, checksummed, unpacked).

    Datasets without a public direct URL print where and how to obtain them.

    \b
    Examples:
      maskface datasets download lfw --root ~/data/lfw
      maskface datasets download celeba --root ~/data/celeba   # prints instructions
    """
    from maskface.datasets.download import download_dataset

    for line in download_dataset(name, root, keep_archives=keep_archives, progress=not quiet):
        click.echo(line)


@datasets.command()
@click.argument("name", type=_name_choice())
@click.argument("root", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@_layout_option
@click.option("--variants", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Masked variants per image; 1 keeps file names, K names them "
                   "<stem>_<k>_<style>.")
@click.option("--styles", default="surgical", show_default=True,
              help="Comma-separated mask styles (see 'maskface styles').")
@click.option("--wear", default="correct", show_default=True,
              help="Comma-separated wear styles: correct, under_nose, chin.")
@click.option("--renderer", type=click.Choice(["2d", "3d"]), default="2d", show_default=True,
              help="2d: texture laid on the skin; 3d: a mask surface of its own.")
@click.option("--analyser", type=click.Choice(["mediapipe", "dlib"]), default="mediapipe",
              show_default=True, help="Face landmark backend.")
@click.option("--faces", type=click.Choice(["largest", "all"]), default="largest",
              show_default=True, help="Mask only the largest face or every face.")
@click.option("--vary", is_flag=True, help="Random plausible colours/patterns per face.")
@click.option("--workers", type=int, default=None, help="Worker processes [all cores].")
@click.option("--scheduler", default=None,
              help="Run on Dask: 'local' for a local cluster, or a scheduler address "
                   "(tcp://host:8786; OUT must be on storage all workers reach).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-alpha", is_flag=True, help="Also write <name>.mask.png (mask coverage).")
@click.option("--save-json", is_flag=True, help="Also write <name>.json (what was drawn).")
@click.option("--keep-unmasked", is_flag=True,
              help="Copy images without a face unchanged (the manifest still says no_face).")
@click.option("--manifest", default="manifest.csv", show_default=True,
              help="Manifest name (.csv or .parquet), written in the masked image folder.")
@click.option("--no-resume", is_flag=True, help="Start afresh instead of resuming.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_clean_errors
def mask(name: str, root: Path, out: Path, layout: str | None, variants: int, styles: str,
         wear: str, renderer: str, analyser: str, faces: str, vary: bool, workers: int | None,
         scheduler: str | None, seed: int, save_alpha: bool, save_json: bool,
         keep_unmasked: bool, manifest: str, no_resume: bool, quiet: bool) -> None:
    """Write a masked copy of dataset NAME at ROOT into OUT, in the same layout.

    Protocol files (pairs, identity lists) are copied, so the same loader reads OUT; the
    manifest (one row per image: ok, no_face, unreadable, error) lands in the masked image
    folder. Re-running the command resumes a killed run.

    \b
    Examples:
      maskface datasets mask lfw ~/data/lfw ~/data/lfw-masked
      maskface datasets mask lfw ~/data/lfw lfw-k2 --variants 2 --styles surgical,kn95 --vary
      maskface datasets mask celeba ~/data/celeba celeba-masked --workers 8 --seed 1
      maskface datasets mask vggface2 /shared/vggface2 /shared/vgg-masked \\
          --scheduler tcp://10.0.0.5:8786
    """
    from maskface.datasets import load_dataset
    from maskface.datasets.masking import mask_dataset
    from maskface.mask_job import MaskJob
    from maskface.styles import list_styles
    from maskface.styles.base import WEAR_STYLES

    style_list = _split(styles, list_styles(), "--styles")
    wear_list = _split(wear, WEAR_STYLES, "--wear")
    dataset = load_dataset(name, root, **_options(layout))
    job = MaskJob(styles=style_list, per_image=variants, wear=wear_list, faces=faces,
                  renderer=renderer, analyser=analyser, vary=vary, save_alpha=save_alpha,
                  save_json=save_json, keep_unmasked=keep_unmasked)
    summary, copies = mask_dataset(dataset, out, job, workers=workers, seed=seed,
                                   manifest=manifest, resume=not no_resume, progress=not quiet,
                                   scheduler=scheduler)
    for path in copies:
        click.echo(f"copied {path}")
    click.echo(str(summary))
    if summary.interrupted:
        sys.exit(130)


def _split(value: str, allowed: Any, hint: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise click.BadParameter(f"unknown {', '.join(unknown) or '(none given)'}; choose from "
                                 f"{', '.join(allowed)}", param_hint=hint)
    return items


@datasets.command()
@click.argument("name", type=_name_choice())
@click.argument("root", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@_layout_option
@click.option("--kind", type=click.Choice(_KINDS), default=None,
              help="Protocol [lfw-view2 for lfw, else pairs].")
@click.option("--masked-root", type=click.Path(path_type=Path), default=None,
              help="The masked copy ('datasets mask' OUT): adds the three masked "
                   "configurations.")
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="The masked copy's manifest [manifest.csv/.parquet in its image folder].")
@click.option("--pairs", "pair_count", default="1000", show_default=True,
              help="reference-probe: pairs to sample (even), or 'all' (every identity).")
@click.option("--same", type=int, default=3000, show_default=True, help="pairs: same pairs.")
@click.option("--different", type=int, default=3000, show_default=True,
              help="pairs: different pairs.")
@click.option("--folds", type=int, default=10, show_default=True, help="pairs: folds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--strict", is_flag=True, help="Fail on any pairs-file line naming a missing image.")
@_clean_errors
def protocols(name: str, root: Path, out: Path, layout: str | None, kind: str | None,
              masked_root: Path | None, manifest: Path | None, pair_count: str, same: int,
              different: int, folds: int, seed: int, strict: bool) -> None:
    """Write the pair protocol CSVs of dataset NAME at ROOT into OUT.

    One CSV per configuration (unmasked-unmasked, and with --masked-root also masked-unmasked,
    unmasked-masked, masked-masked) plus <kind>_problems.csv listing every pair left out.

    \b
    Examples:
      maskface datasets protocols lfw ~/data/lfw proto/ --masked-root ~/data/lfw-masked
      maskface datasets protocols lfw ~/data/lfw proto/ --kind lfw-view1
      maskface datasets protocols mfr2 ~/data/mfr2 proto/ --kind reference-probe --pairs all
      maskface datasets protocols celeba ~/data/celeba proto/ --kind pairs --same 3000
    """
    from maskface.datasets import LfwDataset, load_dataset
    from maskface.datasets.masking import masked_image_root
    from maskface.protocols import (
        MaskedCopy,
        identity_pairs,
        lfw_protocols,
        reference_probe,
        write_protocols,
    )

    dataset = load_dataset(name, root, **_options(layout))
    kind = kind or ("lfw-view2" if type(dataset) is LfwDataset else "pairs")
    masked = None
    if masked_root is not None:
        masked = MaskedCopy.open(masked_image_root(dataset, masked_root), manifest)
    if kind.startswith("lfw-"):
        if not isinstance(dataset, LfwDataset) or dataset.name != "lfw":
            raise click.BadParameter(f"{kind} needs the lfw dataset", param_hint="--kind")
        made = lfw_protocols(dataset, kind, masked=masked, seed=seed, strict=strict)
        description = "Pairs, folds and order of the official LFW pairs files."
    elif kind == "reference-probe":
        count = None if pair_count == "all" else _positive(pair_count)
        made = reference_probe(dataset, pairs=count, masked=masked, seed=seed)
        description = "Per identity: reference vs genuine probe (same=1) and impostor (same=0)."
    else:
        made = identity_pairs(dataset, same=same, different=different, folds=folds,
                              masked=masked, seed=seed)
        description = f"Seeded same/different pairs dealt into {folds} folds."
    roots = {"unmasked": dataset.image_root.resolve()}
    if masked is not None:
        roots["masked"] = masked.root.resolve()
    for path in write_protocols(out, made, roots=roots, seed=seed, description=description):
        click.echo(f"wrote {path}")
    for protocol in made:
        click.echo(f"{protocol.configuration}: {len(protocol.rows)} pairs, "
                   f"{len(protocol.problems)} left out or unusable")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise click.BadParameter("an even number of pairs, or 'all'", param_hint="--pairs")
    return int(text)
