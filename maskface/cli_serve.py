"""``maskface serve``: the web app (mask photos, enrol people, name faces) on this computer."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 127.0.0.1 keeps the app to this computer "
                   "(0.0.0.0 opens it to the network: photos are personal data).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--gallery", "gallery_path", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Gallery folder for enrolling and identifying people (created if missing). "
                   "Without it the page only masks photos.")
@click.option("--max-upload-mb", type=click.FloatRange(0.1, 500), default=15.0,
              show_default=True, help="Largest photo accepted.")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="PyTorch threads for recognition (a request's few faces gain little from "
                   "more, and lose much when other work shares the CPU).")
def serve_command(host: str, port: int, gallery_path: Path | None,
                  max_upload_mb: float, threads: int) -> None:
    """Run the maskface web page until Ctrl-C; open the address it prints in a browser.

    \b
    Examples:
      maskface serve
      maskface serve --gallery staff/ --port 8080
    """
    from maskface.errors import MaskfaceError
    from maskface.web import serve

    def ready(url: str) -> None:
        click.echo(f"maskface: open {url} in a browser (Ctrl-C stops the server)", err=True)

    try:
        serve(host=host, port=port, gallery=None if gallery_path is None else str(gallery_path),
              max_upload_mb=max_upload_mb, log_level="warning", on_ready=ready,
              threads=threads)
    except MaskfaceError as exc:
        raise click.ClickException(str(exc)) from None
