"""Frames in and out: any video file or camera OpenCV opens, and annotated video written safely."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskface.atomic import TEMP_SUFFIX
from maskface.errors import MaskfaceError

# Containers and the codec OpenCV's bundled FFmpeg writes into each without extra libraries.
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
DEFAULT_CAMERA_FPS = 30.0


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """Silence OpenCV's native log while a source is probed: a missing camera or an odd file
    makes every backend it tries print a warning, and our own message says what matters."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


class VideoError(MaskfaceError):
    """A video source cannot be opened or read, or an output video cannot be written."""


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a source before reading it."""

    name: str  # the file name or "camera <index>"
    width: int
    height: int
    fps: float
    frames: int | None  # None for cameras and streams that do not say
    live: bool  # a camera: no end, no seeking


def parse_source(source: str | int | os.PathLike[str]) -> str | int:
    """A camera index (``0``, ``"1"``) or a file path, as OpenCV wants it."""
    if isinstance(source, int):
        return source
    text = os.fspath(source)
    if text.isdigit() and not Path(text).exists():
        return int(text)
    return text


class VideoSource:
    """Frames of a video file or a camera as RGB ``uint8`` arrays with their time in seconds.

    ``frame.time`` of a file is its index over the file's frame rate (so results are the same
    on every machine); for a camera it is the wall-clock time since the first frame.
    """

    def __init__(self, source: str | int | os.PathLike[str]) -> None:
        target = parse_source(source)
        self.live = isinstance(target, int)
        if not self.live:
            path = Path(target)
            if not path.exists():
                raise VideoError(f"Cannot read {path}: the file does not exist.")
            if path.is_dir():
                raise VideoError(f"Cannot read {path}: it is a directory, not a video.")
            if path.stat().st_size == 0:
                raise VideoError(f"Cannot read {path}: the file is empty (0 bytes).")
        with _opencv_quiet():
            self._cap = cv2.VideoCapture(target)
        name = f"camera {target}" if self.live else str(target)
        if not self._cap.isOpened():
            self._cap.release()
            hint = ("no camera with that index, or it is in use" if self.live
                    else "OpenCV cannot decode it (not a video, or a codec it lacks)")
            raise VideoError(f"Cannot open {name}: {hint}.")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = DEFAULT_CAMERA_FPS
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.info = VideoInfo(
            name=name,
            width=int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=fps,
            frames=None if self.live or count <= 0 else count,
            live=self.live,
        )

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield ``(index, time_s, rgb)`` until the source ends (or a file stops decoding)."""
        import time

        start = None
        index = 0
        while True:
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                if index == 0:
                    raise VideoError(f"Cannot read {self.info.name}: it has no decodable frame.")
                return
            if self.live:
                now = time.monotonic()
                start = now if start is None else start
                t = now - start
            else:
                t = index / self.info.fps
            if bgr.ndim == 2:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
            else:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield index, t, rgb
            index += 1

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoSink:
    """Writes RGB frames to a video; the file appears at ``path`` only once closed cleanly.

    Frames go to a hidden temporary file beside ``path`` (same extension, so OpenCV picks the
    same container), renamed over ``path`` by :meth:`commit`. An interrupted run keeps what it
    has: :meth:`commit` is called on Ctrl-C too, since a partial annotated video is useful.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _FOURCC:
            raise VideoError(
                f"Cannot write {self.path}: unknown video extension {suffix or '(none)'}; "
                f"use one of {', '.join(sorted(_FOURCC))}."
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.parent / (
            f".{self.path.stem[:180]}.{secrets.token_hex(6)}{TEMP_SUFFIX}{suffix}"
        )
        self.size = size
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*_FOURCC[suffix]),
                                       float(fps), size)
        if not self._writer.isOpened():
            self._writer.release()
            self._discard()
            raise VideoError(f"Cannot write {self.path}: OpenCV could not open a video writer.")
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def commit(self) -> None:
        """Close the video and move it into place (nothing is written without a frame)."""
        self._writer.release()
        if self.frames == 0:
            self._discard()
            return
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.release()
        self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)
