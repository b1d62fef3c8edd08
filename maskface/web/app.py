"""The maskface web app: mask a photo, enrol people, name the faces in a photo.

One page (``static/``, plain HTML/JS/CSS served by the app: nothing is fetched from elsewhere)
over a small JSON API. Uploads are checked for size before they are read in full and for
type by decoding them (:func:`maskface.imageio.read_image`); every failure is a JSON
``{"error": message}`` with a 4xx status the page shows as it is. Recognition and masking run
in worker threads, one at a time per shared model, so the event loop keeps answering.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from maskface.errors import ImageReadError, MaskfaceError

log = logging.getLogger("maskface.web")

DEFAULT_MAX_UPLOAD_MB = 15.0
DEFAULT_MAX_PIXELS = 40_000_000
MAX_PHOTOS_PER_ENROL = 50
_CHUNK = 1 << 20
_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,100}$")


class WebError(MaskfaceError):
    """A request the app refuses, with the HTTP status and the message the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class AppSettings:
    """What ``maskface serve`` configures."""

    gallery: str | None = None  # folder of the gallery; created on start when missing
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_pixels: int = DEFAULT_MAX_PIXELS
    create_gallery: dict[str, Any] | None = None  # Gallery.create options for a new gallery


def static_dir() -> Path:
    """The folder of the page's HTML, JS and CSS (package data)."""
    return Path(str(resources.files("maskface.web") / "static"))


def _style_options() -> list[dict[str, Any]]:
    """Every style a person can pick without files of their own, with what it accepts."""
    from maskface.styles import create_style, list_styles

    out = []
    for name in list_styles():
        try:
            style = create_style(name)
        except (TypeError, ValueError):  # styles that need user files (custom)
            continue
        params = {f.name for f in fields(style) if f.init}
        out.append({
            "name": name,
            "color": getattr(style, "color", None),
            "colors": "color" in params,
            "patterns": list(getattr(type(style), "patterns", ())) if "pattern" in params else [],
        })
    return out


def _clean_name(filename: str | None) -> str:
    """A file name safe to show and to offer for download."""
    base = os.path.basename((filename or "").replace("\\", "/")).strip()
    base = re.sub(r"[\x00-\x1f\x7f\"]", "", base)
    return base[:120] or "photo"


class Photos:
    """Reads uploads into RGB arrays, refusing what is too big or not an image."""

    def __init__(self, max_bytes: int, max_pixels: int) -> None:
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    async def read(self, upload: UploadFile) -> tuple[str, bytes]:
        name = _clean_name(upload.filename)
        chunks, size = [], 0
        while chunk := await upload.read(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise WebError(413, f"{name} is too large: the limit is "
                                    f"{self.max_bytes / 1e6:g} MB per photo.")
            chunks.append(chunk)
        if size == 0:
            raise WebError(422, f"{name} is empty (0 bytes).")
        return name, b"".join(chunks)

    def decode(self, name: str, data: bytes) -> np.ndarray:
        """The photo as RGB uint8, upright; a :class:`WebError` saying what is wrong if not."""
        from maskface.imageio import read_image

        suffix = Path(name).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".img"
        with tempfile.TemporaryDirectory(prefix="maskface-web-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                image = read_image(path, max_pixels=self.max_pixels)
            except ImageReadError as exc:
                message = exc.message.replace(str(path), name)
                status = 413 if exc.reason == "too_large" else 415 \
                    if exc.reason in ("not_image", "unsupported") else 422
                if exc.reason == "not_image":
                    message = (f"{name} is not an image maskface can read: use a JPEG, PNG, "
                               "BMP, WebP or TIFF photo.")
                raise WebError(status, message) from None
        if min(image.shape[:2]) < 16:
            raise WebError(422, f"{name} is too small ({image.shape[1]}x{image.shape[0]} "
                                "pixels) to hold a face.")
        return image


def _encode(image: np.ndarray, jpeg: bool) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if jpeg:
        Image.fromarray(image).save(buf, format="JPEG", quality=92)
    else:
        Image.fromarray(image).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def _result_dict(result) -> dict[str, Any]:
    return {
        "box": [round(float(v), 1) for v in result.box],
        "identity": str(result.identity),
        "score": round(float(result.score), 4),
        "masked": bool(result.masked),
        "mask_probability": round(float(result.mask_probability), 4),
        "matches": [{"identity": str(m.identity), "score": round(float(m.score), 4)}
                    for m in result.matches],
    }


class _Service:
    """The app's state: the gallery, the masking analyser, and the locks around each."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.photos = Photos(int(settings.max_upload_mb * 1e6), settings.max_pixels)
        self.gallery = None
        self.gallery_lock = threading.Lock()
        self.mask_lock = threading.Lock()
        self._analyser = None
        if settings.gallery is not None:
            from maskface.gallery import Gallery

            path = Path(settings.gallery)
            if path.exists() and any(path.iterdir()):
                self.gallery = Gallery.open(path)
            else:
                self.gallery = Gallery.create(path, **(settings.create_gallery or {}))

    def analyser(self):
        if self._analyser is None:
            from maskface.geometry.analysers import create_analyser

            self._analyser = create_analyser("mediapipe")
        return self._analyser

    def need_gallery(self):
        if self.gallery is None:
            raise WebError(503, "No gallery is open: start the app with "
                                "'maskface serve --gallery FOLDER' to enrol and identify people.")
        return self.gallery

    def gallery_info(self) -> dict[str, Any] | None:
        g = self.gallery
        if g is None:
            return None
        with self.gallery_lock:
            identities = dict(sorted(g.identities().items(), key=lambda kv: kv[0].lower()))
            return {
                "path": str(self.settings.gallery),
                "identities": identities,
                "people": len(identities),
                "templates": len(g),
                "threshold": round(float(g.threshold), 4),
                "masked_threshold": round(float(g.masked_threshold), 4),
                "recognizer": str(g.recognizer_name),
            }


def create_app(settings: AppSettings | None = None, **kwargs: Any) -> FastAPI:
    """The FastAPI app; ``create_app(gallery="staff/")`` or with an :class:`AppSettings`."""
    settings = settings or AppSettings(**kwargs)
    service = _Service(settings)
    app = FastAPI(title="maskface", version=_version(), docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.service = service
    static = static_dir()
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(MaskfaceError)
    async def _maskface_error(request: Request, exc: MaskfaceError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The trace goes to the server's log, never to the page.
        log.exception("request %s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "Something went wrong on the server while handling "
                                      "this request; the server log has the details."},
                            status_code=500)

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse({"error": "Invalid request: " + "; ".join(parts)}, status_code=422)

    limit = int(settings.max_upload_mb * 1e6)

    @app.middleware("http")
    async def _size_limit(request: Request, call_next: Callable):
        # Refuse a too-large upload from its header, before its body is read at all.
        length = request.headers.get("content-length")
        allowance = limit * MAX_PHOTOS_PER_ENROL if request.url.path == "/api/enrol" else limit
        if length is not None and length.isdigit() and int(length) > allowance + (1 << 16):
            return JSONResponse({"error": f"The upload is too large: the limit is "
                                          f"{settings.max_upload_mb:g} MB per photo."},
                                status_code=413)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(static / "index.html", media_type="text/html")

    @app.get("/api/options")
    async def options() -> dict[str, Any]:
        """The choices the page offers, read from the registries."""
        from maskface.render.registry import list_renderers
        from maskface.styles import NAMED_COLORS
        from maskface.styles.base import WEAR_STYLES

        info = await run_in_threadpool(service.gallery_info)
        return {
            "styles": _style_options(),
            "colors": dict(NAMED_COLORS),
            "wear": list(WEAR_STYLES),
            "renderers": list_renderers(),
            "faces": ["largest", "all"],
            "max_upload_mb": settings.max_upload_mb,
            "gallery": info,
        }

    @app.get("/api/gallery")
    async def gallery() -> dict[str, Any]:
        service.need_gallery()
        return await run_in_threadpool(service.gallery_info)

    @app.post("/api/mask")
    async def mask(
        file: Annotated[UploadFile, File()],
        style: Annotated[str, Form()] = "surgical",
        color: Annotated[str | None, Form()] = None,
        pattern: Annotated[str | None, Form()] = None,
        wear: Annotated[str, Form()] = "correct",
        renderer: Annotated[str, Form()] = "2d",
        faces: Annotated[str, Form()] = "largest",
        seed: Annotated[int, Form()] = 0,
    ) -> Response:
        """The photo with masks drawn on, as an image to show and download."""
        name, data = await service.photos.read(file)
        params = {k: v for k, v in (("color", color), ("pattern", pattern)) if v}
        _check_mask_options(style, params, wear, renderer, faces)

        def work() -> tuple[bytes, int, bool]:
            image = service.photos.decode(name, data)
            from maskface.synthesis import mask_image

            with service.mask_lock:
                result = mask_image(image, style, wear=wear, faces=faces, renderer=renderer,
                                    analyser=service.analyser(), seed=seed, **params)
            if not result.faces:
                raise WebError(422, f"No face found in {name}: use a photo where a face is "
                                    "clearly visible (frontal, at least ~40 pixels wide).")
            jpeg = Path(name).suffix.lower() in (".jpg", ".jpeg")
            return _encode(result.image, jpeg), len(result.faces), jpeg

        body, count, jpeg = await run_in_threadpool(work)
        ext = ".jpg" if jpeg else ".png"
        download = f"{Path(name).stem}_{style}_{wear}{ext}"
        return Response(body, media_type="image/jpeg" if jpeg else "image/png", headers={
            "X-Faces-Masked": str(count),
            "Content-Disposition": f"inline; filename=\"{_ascii(download)}\"",
        })

    @app.post("/api/enrol")
    async def enrol(
        name: Annotated[str, Form()],
        files: Annotated[list[UploadFile], File()],
        mask_aware: Annotated[bool, Form()] = False,
    ) -> dict[str, Any]:
        """Add a person from one or more photos (the largest face of each)."""
        g = service.need_gallery()
        identity = " ".join(name.split())
        if not _NAME.fullmatch(identity) or identity.lower() == "unknown":
            raise WebError(400, "Give the person a name of 1 to 100 characters, without "
                                "slashes or control characters (and not 'unknown').")
        if len(files) > MAX_PHOTOS_PER_ENROL:
            raise WebError(400, f"At most {MAX_PHOTOS_PER_ENROL} photos per enrolment.")
        uploads = [await service.photos.read(f) for f in files]

        def work() -> dict[str, Any]:
            images, names, refused = [], [], []
            for upload_name, data in uploads:
                try:
                    images.append(service.photos.decode(upload_name, data))
                    names.append(upload_name)
                except WebError as exc:
                    refused.append({"photo": upload_name, "reason": exc.message})
            if not images:
                raise WebError(415 if len(refused) == 1 else 400,
                               "; ".join(r["reason"] for r in refused))
            with service.gallery_lock:
                report = g.enrol(identity, images, mask_aware=mask_aware)
            used, skipped = _enrol_outcome(report, names)
            skipped = refused + skipped
            if not used:
                reasons = "; ".join(f"{s['photo']}: {s['reason']}" for s in skipped)
                raise WebError(422, f"Nobody was enrolled: {reasons}")
            info = service.gallery_info()
            return {"identity": identity, "used": used, "skipped": skipped,
                    "templates": info["identities"].get(identity, 0), "gallery": info}

        return await run_in_threadpool(work)

    @app.delete("/api/identities/{identity}")
    async def remove(identity: str) -> dict[str, Any]:
        g = service.need_gallery()

        def work() -> dict[str, Any]:
            with service.gallery_lock:
                if identity not in g.identities():
                    raise WebError(404, f"{identity!r} is not enrolled.")
                removed = g.remove(identity)
            return {"identity": identity, "removed": removed, "gallery": service.gallery_info()}

        return await run_in_threadpool(work)

    @app.post("/api/identify")
    async def identify(file: Annotated[UploadFile, File()],
                       k: Annotated[int, Form()] = 3) -> dict[str, Any]:
        """Each face of the photo, boxed, with the best matches and the decision."""
        g = service.need_gallery()
        name, data = await service.photos.read(file)
        if not 1 <= k <= 20:
            raise WebError(400, "k must be between 1 and 20.")

        def work() -> dict[str, Any]:
            image = service.photos.decode(name, data)
            with service.gallery_lock:
                if len(g) == 0:
                    raise WebError(409, "The gallery is empty: enrol someone first.")
                results = g.search(image, k=k)
                thresholds = float(g.threshold), float(g.masked_threshold)
            if not results:
                raise WebError(422, f"No face found in {name}: use a photo where a face is "
                                    "clearly visible.")
            return {"photo": name, "width": int(image.shape[1]), "height": int(image.shape[0]),
                    "threshold": round(thresholds[0], 4),
                    "masked_threshold": round(thresholds[1], 4),
                    "faces": [_result_dict(r) for r in results]}

        return await run_in_threadpool(work)

    return app


def _ascii(name: str) -> str:
    return name.encode("ascii", "replace").decode("ascii").replace("?", "_")


def _check_mask_options(style: str, params: dict[str, str], wear: str, renderer: str,
                        faces: str) -> None:
    from maskface.render.registry import list_renderers
    from maskface.styles import create_style
    from maskface.styles.base import WEAR_STYLES

    if wear not in WEAR_STYLES:
        raise WebError(400, f"Unknown wear {wear!r}: choose from {', '.join(WEAR_STYLES)}.")
    if renderer not in list_renderers():
        raise WebError(400, f"Unknown renderer {renderer!r}: choose from "
                            f"{', '.join(list_renderers())}.")
    if faces not in ("largest", "all"):
        raise WebError(400, "faces must be 'largest' or 'all'.")
    try:
        create_style(style, **params)
    except (TypeError, ValueError, KeyError) as exc:
        raise WebError(400, str(exc).strip("'\"")) from None


def _enrol_outcome(report, names: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Which photos the gallery used and which it skipped (with why), by upload name.

    The gallery names array inputs ``array[i]``; ``i`` is the photo's place in ``names``."""
    def photo(source: str) -> str:
        found = re.fullmatch(r"array\[(\d+)\]", source)
        i = int(found.group(1)) if found else -1
        return names[i] if 0 <= i < len(names) else source

    used = [photo(a.source) for a in report.added]
    skipped = [{"photo": photo(s.source), "reason": s.reason} for s in report.skipped]
    return used, skipped


def _version() -> str:
    from maskface import __version__

    return __version__
