"""``maskface attributes``: how much of sex, race and age a mask gives away (UTKFace)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from maskface.attributes.splits import SPLIT_KINDS
from maskface.attributes.targets import TARGETS

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_COMMON = [
    click.argument("data", type=_DIR),
    click.argument("masked", type=_DIR),
    click.option("--split", "split_kind", type=click.Choice(SPLIT_KINDS), default="uniform",
                 show_default=True, help="uniform: stratified on the target; or random."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--limit", type=int, default=None, help="Use a seeded random subset."),
    click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Folder for cached embeddings [OUT/cache]."),
]


def _common(func):
    for option in reversed(_COMMON):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def attributes() -> None:
    """Predict sex, race and age from masked and unmasked faces (UTKFace).

    DATA is a UTKFace root, MASKED its masked copy made by
    'maskface datasets mask utkface DATA MASKED --styles surgical,n95,kn95,cloth --vary'.

    \b
    Examples:
      maskface attributes study utk/ utk-masked/ --out study/
      maskface attributes train utk/ utk-masked/ --target race --train-on masked --out race.pkl
      maskface attributes eval race.pkl utk/ utk-masked/ --out race-report/
    """


@attributes.command()
@_common
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.json, report.html, confusion/*.png and splits/.")
def study(data: Path, masked: Path, split_kind: str, seed: int, limit: int | None,
          cache: Path | None, out: Path) -> None:
    """All targets, train unmasked/masked x test unmasked/masked, with a report.

    \b
    Example:
      maskface attributes study ../shared/data/utkface /tmp/utk-masked --out study/ --split random
    """
    from maskface.attributes.pipeline import pair_features
    from maskface.attributes.report import write_report
    from maskface.attributes.study import run_study

    pairs, features, info = pair_features(data, masked, cache or out / "cache", limit=limit,
                                          seed=seed)
    result = run_study(features, pairs.attributes, split_kind=split_kind, seed=seed,
                       styles=pairs.styles, names=[p.name for p in pairs.unmasked],
                       split_dir=out / "splits")
    result["meta"].update(info)
    paths = write_report(result, out)
    click.echo(json.dumps(result["summary"], indent=1))
    click.echo(f"wrote {paths['json']} and {paths['html']}")


@attributes.command()
@_common
@click.option("--target", type=click.Choice(list(TARGETS)), required=True)
@click.option("--train-on", type=click.Choice(["unmasked", "masked"]), default="masked",
              show_default=True, help="Which copy the model learns from.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Model file (pickle) to write; the split CSV goes beside it.")
def train(data: Path, masked: Path, split_kind: str, seed: int, limit: int | None,
          cache: Path | None, target: str, train_on: str, out: Path) -> None:
    """Fit the embedding baseline for one target (model picked on validation).

    \b
    Example:
      maskface attributes train utk/ utk-masked/ --target age --train-on masked --out age.pkl
    """
    from maskface.attributes.baseline import fit_baseline
    from maskface.attributes.pipeline import pair_features, save_model
    from maskface.attributes.splits import make_split, save_split
    from maskface.attributes.study import strata
    from maskface.attributes.targets import target_values

    pairs, features, info = pair_features(data, masked, cache or out.parent / "cache",
                                          limit=limit, seed=seed)
    split = make_split(strata(pairs.attributes, target), split_kind, seed=seed)
    names = [p.name for p in pairs.unmasked]
    split_path = save_split(split, out.with_suffix(".split.csv"), names)
    y, x = target_values(pairs.attributes, target), features[train_on]
    model = fit_baseline(x[split.train], y[split.train], target, x[split.val], y[split.val])
    meta = {"target": target, "train_on": train_on, "split": split_kind, "seed": seed,
            "limit": limit, "split_csv": str(split_path), **info}
    save_model(model, out, meta)
    click.echo(f"{target}: picked {model.name} on validation {model.val_scores} "
               f"in {model.fit_seconds:.1f} s; wrote {out} and {split_path}")


@attributes.command(name="eval")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, path_type=Path))
@click.argument("data", type=_DIR)
@click.argument("masked", type=_DIR)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for cached embeddings [beside MODEL].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.json, report.html and confusion/*.png.")
def evaluate_cmd(model_path: Path, data: Path, masked: Path, cache: Path | None,
                 out: Path) -> None:
    """Score a trained MODEL on the test part of its split, unmasked and masked.

    \b
    Example:
      maskface attributes eval race.pkl utk/ utk-masked/ --out race-report/
    """
    from maskface.attributes.metrics import evaluate
    from maskface.attributes.pipeline import load_model, pair_features
    from maskface.attributes.report import write_report
    from maskface.attributes.splits import load_split
    from maskface.attributes.targets import target_values
    from maskface.datasets.utkface import GENDERS, RACES

    model, meta = load_model(model_path)
    pairs, features, info = pair_features(data, masked, cache or model_path.parent / "cache",
                                          limit=meta["limit"], seed=meta["seed"])
    split, names = load_split(meta["split_csv"])
    if names != [p.name for p in pairs.unmasked]:
        raise click.ClickException("the data does not match the images the model's split lists")
    test, target = split.test, meta["target"]
    y = target_values(pairs.attributes, target)[test]
    groups = {"sex": (target_values(pairs.attributes, "sex")[test], GENDERS),
              "race": (target_values(pairs.attributes, "race")[test], RACES)}
    results = {}
    for cond in ("unmasked", "masked"):
        scores = evaluate(target, y, model.predict(features[cond][test]), groups)
        results[f"train_{meta['train_on']}/test_{cond}"] = {"model": model.name, **scores}
    result = {"meta": {**meta, **info, "targets": [target], "samples": len(pairs.attributes),
                       "fractions": [0.7, 0.1, 0.2]},
              "summary": {k: v["overall"] for k, v in results.items()},
              "results": {target: results}}
    paths = write_report(result, out)
    click.echo(json.dumps(result["summary"], indent=1))
    click.echo(f"wrote {paths['json']} and {paths['html']}")
