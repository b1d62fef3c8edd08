"""What every ``maskface`` command shares: the one error handler, choices read from the
registries, and the masking options of ``apply`` and ``datasets mask``.

Nothing heavy is imported here: registries are loaded when a choice is checked or listed.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from maskface.errors import MaskfaceError

# Exit codes of the commands that process many inputs (documented in the README).
EXIT_FAILED_INPUTS = 3  # the run finished, but some inputs are unreadable or failed
EXIT_INTERRUPTED = 130  # Ctrl-C: run the command again to resume


class MaskfaceGroup(click.Group):
    """A command group whose commands report maskface's deliberate errors (and the OS's,
    such as a missing or unwritable file) as one line, ``Error: ...``, exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MaskfaceError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise click.ClickException(os_error_message(exc)) from None


def os_error_message(exc: OSError) -> str:
    """``Permission denied: out/x.png``: the OS's reason and the file it concerns."""
    reason = exc.strerror or str(exc)
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return f"{reason}: {' -> '.join(map(str, names))}" if names else reason


class NameChoice(click.ParamType):
    """A name (or with ``many``, comma-separated names) checked against a list that is only
    loaded when needed: a registry's names, or any list with its own resolver.

    ``resolve`` turns what the user typed into the canonical name (aliases, case, ``-``/``_``)
    or raises :class:`~maskface.errors.InvalidInputError`; ``choices`` lists the names.
    """

    name = "choice"

    def __init__(self, choices: Callable[[], Sequence[str]], resolve: Callable[[str], str],
                 *, many: bool = False) -> None:
        self._choices = choices
        self._resolve = resolve
        self.many = many

    def choices(self) -> list[str]:
        return list(self._choices())

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        names = "|".join(self.choices())
        return f"[{names}][,...]" if self.many else f"[{names}]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        items = [v.strip() for v in value.split(",") if v.strip()] if self.many else [value]
        if not items:
            self.fail(f"give at least one of {', '.join(self.choices())}", param, ctx)
        try:
            names = tuple(dict.fromkeys(self._resolve(item) for item in items))
        except MaskfaceError as exc:
            self.fail(str(exc), param, ctx)
        return names if self.many else names[0]

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(n) for n in self.choices() if n.startswith(incomplete)]


def _registry(module: str, attribute: str) -> Callable[[], Any]:
    def load() -> Any:
        import importlib

        return getattr(importlib.import_module(module), attribute)

    return load


def registry_choice(module: str, attribute: str, *, many: bool = False) -> NameChoice:
    """Choices read from the registry ``module.attribute`` (imported on first use)."""
    load = _registry(module, attribute)
    return NameChoice(lambda: load().list(), lambda name: load().resolve(name), many=many)


def listed_choice(module: str, attribute: str, kind: str) -> NameChoice:
    """Choices from a plain tuple or dict ``module.attribute`` (imported on first use),
    matched ignoring case."""
    load = _registry(module, attribute)

    def resolve(name: str) -> str:
        from maskface.errors import UnknownNameError

        names = list(load())
        match = [n for n in names if n.lower() == name.strip().lower()]
        if not match:
            raise UnknownNameError(kind, name, names)
        return match[0]

    return NameChoice(lambda: list(load()), resolve)


def style_choice(many: bool = True) -> NameChoice:
    """Mask styles (aliases such as ``half-mask`` accepted, as by the API)."""
    return registry_choice("maskface.styles.registry", "STYLES", many=many)


def renderer_choice(many: bool = False) -> NameChoice:
    return registry_choice("maskface.render.registry", "RENDERERS", many=many)


def analyser_choice() -> NameChoice:
    return registry_choice("maskface.geometry.analysers", "ANALYSERS")


def dataset_choice() -> NameChoice:
    return registry_choice("maskface.datasets", "DATASETS")


def recognizer_choice() -> NameChoice:
    return registry_choice("maskface.recognizers", "RECOGNIZERS")


def wear_choice(many: bool = True) -> NameChoice:
    def names() -> Sequence[str]:
        from maskface.styles.base import WEAR_STYLES

        return WEAR_STYLES

    def resolve(name: str) -> str:
        from maskface.synthesis import wear_name

        return wear_name(name)

    return NameChoice(names, resolve, many=many)


# --- the masking options of `apply` and `datasets mask` ----------------------------------------


@dataclass(frozen=True)
class MaskingOptions:
    """The values of the shared masking options (see :func:`masking_options`)."""

    styles: tuple[str, ...]
    per_image: int
    wear: tuple[str, ...]
    color: str | None
    pattern: str | None
    vary: bool
    faces: str
    min_face: float
    renderer: str
    analyser: str
    aligned: str | None
    workers: int | None
    scheduler: str | None
    seed: int
    save_alpha: bool
    save_json: bool
    image_format: str
    keep_unmasked: bool
    manifest: str
    no_resume: bool
    force: bool
    quiet: bool

    def job(self) -> Any:
        """The :class:`~maskface.mask_job.MaskJob` these options describe, its style
        parameters checked against every chosen style before anything runs."""
        from maskface.mask_job import MaskJob
        from maskface.styles import create_style

        params = {k: v for k, v in (("color", self.color), ("pattern", self.pattern)) if v}
        for style in self.styles:
            try:
                create_style(style, **params)
            except MaskfaceError as exc:
                hint = "--color" if "colo" in str(exc) else "--pattern"
                raise click.BadParameter(str(exc), param_hint=hint) from None
        if self.aligned and self.analyser != "mediapipe":
            raise click.BadParameter(f"aligned crops are placed by the mediapipe analyser, "
                                     f"not {self.analyser}", param_hint="--aligned")
        return MaskJob(
            styles=self.styles, per_image=self.per_image, wear=self.wear, faces=self.faces,
            renderer=self.renderer, analyser=self.analyser, aligned=self.aligned,
            vary=self.vary,
            style_params=params, save_alpha=self.save_alpha, save_json=self.save_json,
            keep_unmasked=self.keep_unmasked, min_face=self.min_face,
            image_format=None if self.image_format == "same" else "." + self.image_format,
        )

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~maskface.batch.runner.run_batch`."""
        return {"workers": self.workers, "seed": self.seed, "manifest": self.manifest,
                "resume": not self.no_resume, "progress": not self.quiet,
                "scheduler": self.scheduler, "force": self.force}


ALIGNED_TEMPLATES = ("arcface112", "facenet160", "dlib150")
# How a recognizer's chips are cut: maskface.recognizers.templates.ALIGNMENTS, spelled out so
# the command line starts without importing OpenCV (a test keeps the two equal).
RECOGNIZER_ALIGNMENTS = ("arcface112", "facenet160", "dlib150", "dlib150-upper")
_MASKING_OPTIONS = (
    click.option("--styles", type=style_choice(), default="surgical", show_default=True,
                 help="Comma-separated mask styles (see 'maskface styles')."),
    click.option("--per-image", "--variants", "per_image", type=click.IntRange(1, 100),
                 default=1, show_default=True,
                 help="Masked copies per input (--variants is the same option): 1 keeps "
                      "file names, K names them <stem>_<k>_<style>, each taking a different "
                      "style while any is left."),
    click.option("--wear", type=wear_choice(), default="correct", show_default=True,
                 help="Comma-separated wear styles to draw from."),
    click.option("--color", default=None, help="Mask colour: a name or #RRGGBB."),
    click.option("--pattern", default=None, help="Pattern (cloth masks mainly), e.g. dots."),
    click.option("--vary", is_flag=True, help="Random plausible colours/patterns per face."),
    click.option("--faces", type=click.Choice(["largest", "all"]), default="largest",
                 show_default=True, help="Mask only the largest face or every face."),
    click.option("--min-face", type=click.FloatRange(0), default=12.0, show_default=True,
                 help="Leave faces smaller than this (pixels, shorter side of the box)."),
    click.option("--renderer", type=renderer_choice(), default="2d", show_default=True,
                 help="2d: texture laid on the skin; 3d: a mask surface of its own."),
    click.option("--analyser", type=analyser_choice(), default="mediapipe",
                 show_default=True, help="Face landmark backend."),
    # the names of maskface.geometry.aligned.TEMPLATES (not imported: --help stays fast)
    click.option("--aligned", type=click.Choice(ALIGNED_TEMPLATES),
                 default=None,
                 help="The inputs are face crops aligned to this template (recognizer "
                      "training sets): each gets one face, placed by the template and refined "
                      "by the mesh network, with no detection (mediapipe analyser only)."),
    click.option("--workers", type=click.IntRange(1), default=None,
                 help="Worker processes [all cores]."),
    click.option("--scheduler", default=None,
                 help="Run on Dask: 'local' for a local cluster, or a scheduler address "
                      "(tcp://host:8786; the output must be on storage all workers reach)."),
    click.option("--seed", type=click.IntRange(0), default=0, show_default=True),
    click.option("--save-alpha", is_flag=True,
                 help="Also write <name>.mask.png (mask coverage)."),
    click.option("--save-json", is_flag=True, help="Also write <name>.json (what was drawn)."),
    click.option("--format", "image_format",
                 type=click.Choice(["same", "jpg", "png", "webp"]), default="same",
                 show_default=True,
                 help="Output image format (png and webp keep an input's transparency)."),
    click.option("--keep-unmasked", is_flag=True,
                 help="Copy images without a face as they are (the manifest still says "
                      "no_face)."),
    click.option("--manifest", default="manifest.csv", show_default=True,
                 help="Manifest name (.csv or .parquet), written at the root of the masked "
                      "images, beside <name>.run.json (the run's settings)."),
    click.option("--no-resume", is_flag=True, help="Start afresh instead of resuming."),
    click.option("--force", is_flag=True,
                 help="Resume even though the earlier run used other settings (its outputs "
                      "and this run's are then mixed)."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
)
_MASKING_NAMES = tuple(MaskingOptions.__dataclass_fields__)


def masking_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared masking options to a command, which receives them as ``masking``
    (a :class:`MaskingOptions`)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _MASKING_NAMES}
        return command(*args, masking=MaskingOptions(**values), **kwargs)

    for option in reversed(_MASKING_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def finish_run(summary: Any) -> None:
    """Print a batch summary and exit with the code that tells scripts how it went."""
    click.echo(str(summary))
    if summary.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if summary.failed:
        click.echo(f"{summary.failed} input(s) unreadable or failed: see the manifest "
                   f"{summary.manifest} (exit code {EXIT_FAILED_INPUTS}).", err=True)
        sys.exit(EXIT_FAILED_INPUTS)
