"""``maskface watch``: access control on a video file or a camera, over a gallery."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@click.command("watch")
@click.argument("source", metavar="VIDEO|CAMERA_INDEX")
@click.option("--gallery", "gallery_path", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Gallery folder of the people who may enter ('maskface gallery').")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the annotated video here (.mp4, .avi, .mkv, .mov).")
@click.option("--events", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write one JSON line per person seen (who, when, granted/denied).")
@click.option("--allow", default=None,
              help="Comma-separated names let in [everyone enrolled in the gallery].")
@click.option("--detect-every", type=click.IntRange(1, 100), default=None,
              help="Detect faces every N frames and track in between "
                   "[every frame of a file; as often as it keeps up for a camera].")
@click.option("--votes", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Frames searched before a person's identity is decided.")
@click.option("--min-face", type=click.IntRange(8, 2000), default=40, show_default=True,
              help="Smallest face side in pixels worth recognising.")
@click.option("--max-seconds", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop after this many seconds of video (cameras run until Ctrl-C).")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="PyTorch threads for recognition (a frame's few faces gain little from "
                   "more, and lose much when other work shares the CPU).")
@click.option("--quiet", is_flag=True, help="No progress bar and no per-person lines.")
def watch_command(source: str, gallery_path: Path, out: Path | None, events: Path | None,
                  allow: str | None, detect_every: int | None, votes: int, min_face: int,
                  max_seconds: float | None, threads: int, quiet: bool) -> None:
    """Grant or deny each person seen in VIDEO (or camera CAMERA_INDEX) against a gallery.

    Faces are tracked across frames and each person is named by a vote over several frames.
    The annotated video shows each face's box, name (or "unknown"), score and whether a mask
    is worn; the event log has one line per person, written as they leave.

    \b
    Examples:
      maskface watch door.mp4 --gallery staff/ --out door-annotated.mp4 --events door.jsonl
      maskface watch 0 --gallery staff/ --events today.jsonl --allow "Ada,Grace"
    """
    from maskface.errors import MaskfaceError
    from maskface.video import watch

    def say(event) -> None:
        if not quiet:
            from tqdm import tqdm

            # tqdm.write keeps the line clear of the progress bar.
            tqdm.write(f"{event.first_seen:8.2f}-{event.last_seen:8.2f}s  track "
                       f"{event.track:<4d} {event.decision:7s}  {event.identity} "
                       f"({event.score:.2f}{', mask' if event.masked else ''})", file=sys.stderr)

    try:
        report = watch(source, gallery_path, out=out, events=events, allow=_split(allow),
                       detect_every=detect_every, votes=votes, min_face=min_face,
                       max_seconds=max_seconds, threads=threads, progress=not quiet,
                       on_event=say)
    except MaskfaceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(report))
    for path, what in ((out, "annotated video"), (events, "events")):
        if path is not None and (what == "events" or report.frames):
            click.echo(f"wrote {what} to {path}")
    if report.interrupted:
        sys.exit(130)
