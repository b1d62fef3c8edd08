"""The maskface web app (``maskface serve``): mask a photo, enrol people, name faces.

    from maskface.web import create_app, serve
    app = create_app(gallery="staff/")          # a FastAPI app (e.g. for TestClient)
    serve(gallery="staff/", port=8000)           # uvicorn on 127.0.0.1:8000 until Ctrl-C
"""

from __future__ import annotations

from collections.abc import Callable

from maskface.web.app import AppSettings, WebError, create_app, static_dir

__all__ = ["AppSettings", "WebError", "create_app", "serve", "static_dir"]


def serve(host: str = "127.0.0.1", port: int = 8000, gallery: str | None = None, *,
          max_upload_mb: float = AppSettings.max_upload_mb, log_level: str = "info",
          create_gallery: dict | None = None,
          on_ready: Callable[[str], None] | None = None, threads: int | None = 1) -> None:
    """Run the app with uvicorn on ``host``:``port`` (local only by default) until stopped.

    ``on_ready`` is called with the page's address once the app (and its gallery) is ready.
    ``threads`` sets PyTorch's threads for the server process (None: PyTorch's default): a
    request embeds a face or a few, too few to share out, and on a machine doing other work
    one thread is several times faster than two.
    """
    import uvicorn

    if threads is not None and gallery is not None:
        import torch

        torch.set_num_threads(threads)

    settings = AppSettings(gallery=gallery, max_upload_mb=max_upload_mb,
                           create_gallery=create_gallery)
    app = create_app(settings)
    if on_ready is not None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        on_ready(f"http://{shown}:{port}/")
    # One worker process: the gallery and the models live in it; the work runs in threads.
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)
