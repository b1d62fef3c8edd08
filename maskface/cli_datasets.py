"""``maskface datasets``: list, inspect, download and mask datasets; write pair protocols."""

from __future__ import annotations

from pathlib import Path

import click

from maskface.cli_common import MaskfaceGroup, dataset_choice, finish_run, masking_options

_KINDS = ("lfw-view2", "lfw-view1", "pairs-file", "reference-probe", "pairs")
_SHOWN_PROBLEMS = 10


def _options(layout: str | None) -> dict[str, str]:
    return {"layout": layout} if layout else {}


_layout_option = click.option(
    "--layout", type=click.Choice(["original", "funneled", "deep-funneled"]), default=None,
    help="LFW only: which layout to read when ROOT holds several.")


@click.group("datasets", cls=MaskfaceGroup)
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
@click.argument("name", type=dataset_choice())
@click.argument("root", type=click.Path(path_type=Path))
@_layout_option
@click.option("--all-problems", is_flag=True, help="List every problem, not the first 10.")
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
@click.argument("name", type=dataset_choice())
@click.argument("root", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@_layout_option
@masking_options
def mask(name: str, root: Path, out: Path, layout: str | None, masking) -> None:
    """Write a masked copy of dataset NAME at ROOT into OUT, in the same layout.

    Protocol files (pairs, identity lists) are copied, so the same loader reads OUT; the
    manifest (one row per image: ok, no_face, unreadable, error) lands in the masked image
    folder. Re-running the command resumes a killed run. The masking options are those of
    'maskface apply' (--variants is --per-image); so are the exit codes.

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

    job = masking.job()
    dataset = load_dataset(name, root, **_options(layout))
    summary, copies = mask_dataset(dataset, out, job, **masking.run_options())
    for path in copies:
        click.echo(f"copied {path}")
    finish_run(summary)


@datasets.command()
@click.argument("name", type=dataset_choice())
@click.argument("root", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@_layout_option
@click.option("--kind", type=click.Choice(_KINDS), default=None,
              help="Protocol: lfw-view2/lfw-view1 (LFW's official pairs), pairs-file (the "
                   "dataset's own pairs file; split into real-mask configurations by the "
                   "images' mask labels, as MFR2's), reference-probe or pairs (drawn from the "
                   "identities) [lfw-view2 for lfw, pairs-file for datasets with a pairs "
                   "file, else pairs].")
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
@click.option("--folds", default=None,
              help="lfw-view2/lfw-view1/pairs-file: the folds to keep, numbered from 1 as in "
                   "the pairs file ('6-10', '1,3,5-7') [all]; pairs: how many folds to deal "
                   "the pairs into [10].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--strict", is_flag=True, help="Fail on any pairs-file line naming a missing image.")
def protocols(name: str, root: Path, out: Path, layout: str | None, kind: str | None,
              masked_root: Path | None, manifest: Path | None, pair_count: str, same: int,
              different: int, folds: str | None, seed: int, strict: bool) -> None:
    """Write the pair protocol CSVs of dataset NAME at ROOT into OUT.

    One CSV per configuration (unmasked-unmasked, and with --masked-root also masked-unmasked,
    unmasked-masked, masked-masked) plus <kind>_problems.csv listing every pair left out.
    Datasets whose images carry mask labels (MFR2) get real-mask configurations from their
    own pairs file: unmasked-unmasked, masked-unmasked and masked-masked. Sampling kinds draw
    at most what the dataset holds and say what they drew.

    \b
    Examples:
      maskface datasets protocols lfw ~/data/lfw proto/ --masked-root ~/data/lfw-masked
      maskface datasets protocols lfw ~/data/lfw proto/ --kind lfw-view1
      maskface datasets protocols lfw ~/data/lfw test-folds/ --folds 6-10
      maskface datasets protocols mfr2 ~/data/mfr2 proto/        # real masks, own pairs
      maskface datasets protocols mfr2 ~/data/mfr2 proto/ --kind reference-probe --pairs all
      maskface datasets protocols celeba ~/data/celeba proto/ --kind pairs --same 3000
    """
    from maskface.datasets import LfwDataset, load_dataset
    from maskface.datasets.masking import masked_image_root
    from maskface.protocols import (
        MaskedCopy,
        dataset_pairs,
        identity_pairs,
        lfw_protocols,
        reference_probe,
        write_protocols,
    )
    from maskface.protocols.dataset_pairs import has_pairs_file

    dataset = load_dataset(name, root, **_options(layout))
    if kind is None:
        kind = ("lfw-view2" if type(dataset) is LfwDataset
                else "pairs-file" if has_pairs_file(dataset) else "pairs")
    masked = None
    if masked_root is not None:
        masked = MaskedCopy.open(masked_image_root(dataset, masked_root), manifest)
    if kind.startswith("lfw-"):
        if not isinstance(dataset, LfwDataset) or dataset.name != "lfw":
            raise click.BadParameter(f"{kind} needs the lfw dataset", param_hint="--kind")
        made = lfw_protocols(dataset, kind, masked=masked, seed=seed, strict=strict,
                             folds=folds)
        description = "Pairs, folds and order of the official LFW pairs files."
        if folds is not None:
            description += f" Folds kept (1-based, as in the pairs file): {folds}."
    elif kind == "pairs-file":
        made = dataset_pairs(dataset, masked=masked, seed=seed, strict=strict, folds=folds)
        description = f"The pairs of {dataset.name}'s own pairs file, in its order."
    elif kind == "reference-probe":
        if folds is not None:
            raise click.BadParameter("reference-probe puts every pair in one fold",
                                     param_hint="--folds")
        count = None if pair_count == "all" else _positive(pair_count)
        made = reference_probe(dataset, pairs=count, masked=masked, seed=seed)
        description = "Per identity: reference vs genuine probe (same=1) and impostor (same=0)."
    else:
        fold_count = 10 if folds is None else _fold_count(folds)
        made = identity_pairs(dataset, same=same, different=different, folds=fold_count,
                              masked=masked, seed=seed)
        description = f"Seeded same/different pairs dealt into {fold_count} folds."
    roots = {"unmasked": dataset.image_root.resolve()}
    if masked is not None:
        roots["masked"] = masked.root.resolve()
    elif any(r.a_side == "masked" for p in made for r in p.rows):
        roots["masked"] = roots["unmasked"]  # real masks: the masked images are the dataset's
    for path in write_protocols(out, made, roots=roots, seed=seed, description=description):
        click.echo(f"wrote {path}")
    for note in dict.fromkeys(n for p in made for n in p.notes):
        click.echo(f"note: {note}")
    for protocol in made:
        same = sum(r.same for r in protocol.rows)
        folds_used = len({r.fold for r in protocol.rows})
        click.echo(f"{protocol.configuration}: {len(protocol.rows)} pairs ({same} same, "
                   f"{len(protocol.rows) - same} different, {folds_used} fold(s)), "
                   f"{len(protocol.problems)} left out or unusable")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise click.BadParameter("an even number of pairs, or 'all'", param_hint="--pairs")
    return int(text)


def _fold_count(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise click.BadParameter("pairs: a number of folds (1 or more)", param_hint="--folds")
    return int(text)
