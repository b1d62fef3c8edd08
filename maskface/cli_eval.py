"""``maskface eval`` and ``maskface compare``: verification benchmarks and their comparison."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from maskface.cache import cache_dir
from maskface.cli_common import RECOGNIZER_ALIGNMENTS
from maskface.errors import MaskfaceError
from maskface.evaluation.embeddings import DETECTORS

CONFIG_NAMES = ("unmasked-unmasked", "masked-unmasked", "unmasked-masked", "masked-masked")
# Recognizers built from a model file, which take --model and --timm-arch.
MODEL_RECOGNIZERS = ("torch", "onnx")


def default_cache_path() -> Path:
    """The embedding cache file in :func:`maskface.cache.cache_dir`."""
    return cache_dir() / "embeddings.sqlite"


def protocol_files(protocols: tuple[str, ...], configs: str) -> list[Path]:
    """The protocol CSVs named or found in directories, kept to the chosen configurations."""
    wanted = CONFIG_NAMES if configs == "all" else tuple(c.strip() for c in configs.split(","))
    unknown = set(wanted) - set(CONFIG_NAMES)
    if unknown:
        raise click.BadParameter(f"unknown configuration(s) {sorted(unknown)}; choose from "
                                 f"{', '.join(CONFIG_NAMES)} or all", param_hint="--configs")
    found: list[Path] = []
    for p in map(Path, protocols):
        found += sorted(p.glob("*.csv")) if p.is_dir() else [p]
    by_config = {c: [f for f in found if f.stem.endswith(f"_{c}")] for c in wanted}
    files = [f for c in wanted for f in by_config[c]]
    if not files:
        raise click.UsageError(f"no protocol CSV for {', '.join(wanted)} in {list(protocols)}; "
                               "write them with 'maskface datasets protocols'")
    return files


def model_options(recognizer: str, model: str | None, alignment: str | None,
                  timm_arch: str | None) -> dict[str, str]:
    """The keyword arguments --model, --alignment and --timm-arch give the recognizer."""
    given = {"model": model, "alignment": alignment, "arch": timm_arch}
    kwargs = {k: v for k, v in given.items() if v is not None}
    if recognizer not in MODEL_RECOGNIZERS:
        if model is not None or timm_arch is not None:
            raise click.UsageError("--model and --timm-arch are for "
                                   f"--recognizer {' or '.join(MODEL_RECOGNIZERS)}")
        if alignment is not None and recognizer.lower() == "dlib":
            raise click.UsageError("--alignment is not for --recognizer dlib (dlib's own "
                                   "pipeline cuts its chips); use dlib-resnet, the same network")
        return kwargs
    if model is None:
        raise click.UsageError(f"--recognizer {recognizer} needs --model PATH")
    if recognizer == "onnx" and timm_arch is not None:
        raise click.UsageError("--timm-arch is for --recognizer torch (state-dict checkpoints)")
    return kwargs


@click.command("eval")
@click.option("--recognizer", "recognizer_name", default="dlib-resnet", show_default=True,
              help="Recognizer name (see maskface.recognizers.list_recognizers()).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="torch/onnx recognizers: the model file (TorchScript, pickled module, "
                   "state dict or .onnx).")
@click.option("--alignment", type=click.Choice(RECOGNIZER_ALIGNMENTS),
              help="How faces are cut for the model [the one the model file records, else "
                   "the one matching its input size (torch/onnx), else arcface112 "
                   "(torch/onnx) or dlib150]. dlib150-upper fits the eyes, brows and nose "
                   "bridge only: steadier under masks.")
@click.option("--timm-arch", "timm_arch",
              help="torch recognizer: the timm architecture (or dlib-resnet) a state-dict "
                   "checkpoint belongs to.")
@click.option("--protocol", "protocols", multiple=True, required=True,
              help="Protocol CSV, or a folder of them ('maskface datasets protocols' OUT). "
                   "Repeatable.")
@click.option("--configs", default="all", show_default=True,
              help="Comma-separated configurations, or all.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="eval-report",
              show_default=True, help="Folder for report.json/.html/.md and figures.")
@click.option("--fallback", type=click.Choice(["center", "exclude"]), default="center",
              show_default=True,
              help="No face detected: embed a centre box (pre-cropped data), or exclude the "
                   "pairs and report them.")
@click.option("--detector", type=click.Choice(DETECTORS), default="blazeface",
              show_default=True,
              help="Face detector for alignment: blazeface (MediaPipe's detector, the box "
                   "HOG would give predicted from it, then dlib's 68 points: 10x faster than "
                   "HOG, finds masked faces); dlib (HOG on the whole image); mediapipe (68 "
                   "points read off the face mesh).")
@click.option("--upsample", type=click.IntRange(0, 3), default=1, show_default=True,
              help="dlib only: most upsampling levels tried before falling back.")
@click.option("--flip", is_flag=True, help="Average each face's embedding with its mirror's.")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False),
              help="Embedding cache file [$MASKFACE_CACHE or ~/.cache/maskface/"
                   "embeddings.sqlite].")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option("--bootstrap", type=click.IntRange(0), default=200, show_default=True,
              help="Bootstrap resamples for the 95% intervals (0: none; each costs about "
                   "as much as the metrics themselves).")
@click.option("--workers", type=click.IntRange(1), help="Detection processes [all cores].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def eval_command(
    recognizer_name: str, model_path: str | None, alignment: str | None,
    timm_arch: str | None, protocols: tuple[str, ...], configs: str, out: str, fallback: str,
    detector: str, upsample: int, flip: bool, cache_path: str | None, no_cache: bool,
    bootstrap: int, workers: int | None, quiet: bool,
) -> None:
    """Measure a recognizer on pair protocols; write JSON, HTML and Markdown reports.

    Prints the table of 10-fold accuracy, VAL@FAR=1e-3, AUC, EER and FNMR at FMR 1%, 0.1%
    and 0 per configuration (and mask style when the masked copy records it).

    \b
    Examples:
      maskface datasets protocols lfw ~/data/lfw proto/ --masked-root ~/data/lfw-masked
      maskface eval --recognizer dlib-resnet --protocol proto/ --configs all --out rep/
      maskface eval --protocol proto/lfw-view2_unmasked-unmasked.csv --fallback exclude
      maskface eval --protocol proto/ --configs unmasked-unmasked,masked-masked --no-cache
      maskface eval --recognizer onnx --model arcface.onnx --alignment arcface112 --protocol proto/
      maskface eval --recognizer torch --model w.pth --timm-arch resnet50 --protocol proto/
    """
    from maskface.evaluation.embeddings import EmbeddingCache
    from maskface.evaluation.report import build_report, markdown_table, write_report
    from maskface.evaluation.verification import evaluate_protocols
    from maskface.recognizers import ModelLoadError, create_recognizer

    files = protocol_files(protocols, configs)
    kwargs = model_options(recognizer_name, model_path, alignment, timm_arch)
    try:
        recognizer = create_recognizer(recognizer_name, flip=flip, **kwargs)
    except ModelLoadError as e:
        raise click.BadParameter(str(e), param_hint="--model") from None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--recognizer") from None
    cache = None if no_cache else EmbeddingCache(cache_path or default_cache_path())
    try:
        results, emb, timings = evaluate_protocols(
            files, recognizer, cache=cache, fallback=fallback, detector=detector,
            upsample=upsample, n_bootstrap=bootstrap, workers=workers, progress=not quiet,
        )
    except (MaskfaceError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        if cache is not None:
            cache.close()
    command = shlex.join(["maskface", *sys.argv[1:]]) if sys.argv else ""
    report = build_report(results, emb, recognizer=recognizer.name, detector=detector,
                          fallback=fallback, protocol_files=[str(f) for f in files],
                          timings=timings, command=command, alignment=recognizer.alignment)
    paths = write_report(out, report, results)
    click.echo(markdown_table(report))
    click.echo(f"{len(emb.paths)} images ({emb.cached} cached), {len(emb.fallback_used)} "
               f"centre-box fallbacks, {len(emb.failures)} failures to enrol; "
               f"{timings['total_s']:.1f} s")
    _echo_left_out(emb.failures, results)
    for kind, p in paths.items():
        click.echo(f"wrote {p} ({kind})")


_SHOWN_FAILURES = 10


def _echo_left_out(failures: list[tuple[str, str]], results: list) -> None:
    """Name the images that could not be used and count the pairs left out, on the console
    (report.json lists them all)."""
    for path, reason in failures[:_SHOWN_FAILURES]:
        click.echo(f"  not used: {path}: {reason}")
    if len(failures) > _SHOWN_FAILURES:
        click.echo(f"  ... {len(failures) - _SHOWN_FAILURES} more in report.json")
    for res in results:
        if res.excluded:
            click.echo(f"{res.protocol}: {len(res.excluded)} pair(s) left out "
                       "(images above; listed in report.json)")


@click.command("compare")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--styles", is_flag=True, help="Also list the per-mask-style rows.")
def compare_command(reports: tuple[str, ...], styles: bool) -> None:
    """Put 'maskface eval' runs side by side (REPORTS: report.json files or their folders).

    \b
    Examples:
      maskface compare rep-dlib/report.json rep-dlib-resnet/report.json
      maskface compare rep-a rep-b --styles
    """
    from maskface.evaluation.compare import compare_table, load_reports

    try:
        loaded = load_reports(reports)
    except (ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(compare_table(loaded, styles=styles))
