"""Scripted door-camera videos made from photos: who appears where, from when to when.

A test needs a video whose every event is known in advance; a benchmark needs one of a given
size and length. :func:`compose_video` pastes face photos (masked or not) onto a drawn
corridor scene along straight paths, with camera noise, and reports on which frames each
person is visible, so the expected event list follows from the script.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from maskface.video.io import VideoSink


@dataclass(frozen=True)
class Appearance:
    """One person on screen from ``start`` to ``end`` seconds (end excluded).

    ``at`` is the photo's centre in pixels at ``start``; ``velocity`` moves it (pixels per
    second); ``height`` scales the photo to that many pixels tall.
    """

    image: np.ndarray  # RGB uint8
    start: float
    end: float
    at: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    height: int | None = None
    label: str = ""

    def frames(self, fps: float) -> range:
        """The frame indices on which the person is visible."""
        return range(math.ceil(self.start * fps - 1e-9), math.ceil(self.end * fps - 1e-9))


def _scene(width: int, height: int) -> np.ndarray:
    """A plain corridor: a lit wall, a floor, a door frame. Drawn, so nothing to ship."""
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    light = 0.85 - 0.25 * (x - 0.5) ** 2 - 0.1 * y
    wall = np.stack([light * 196, light * 188, light * 172], axis=-1)
    floor_y = int(height * 0.82)
    wall[floor_y:] = np.array([92, 84, 76], np.float32) * (0.9 + 0.1 * x[0, :, None])
    img = np.clip(wall, 0, 255).astype(np.uint8)
    cv2.rectangle(img, (int(width * 0.06), int(height * 0.05)),
                  (int(width * 0.94), floor_y), (120, 96, 70), max(2, width // 90))
    return img


def _feather(h: int, w: int) -> np.ndarray:
    """An elliptical matte with a soft edge: the photo reads as a head, not a pasted square."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt(((xx - w / 2) / (0.5 * w)) ** 2 + ((yy - h / 2) / (0.5 * h)) ** 2)
    return np.clip((1.0 - d) / 0.12, 0.0, 1.0)[..., None]


def render_frame(background: np.ndarray, appearances: Sequence[Appearance], t: float,
                 fps: float, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    """The frame at time ``t``: every visible person pasted over ``background``, then noise."""
    frame = background.astype(np.float32)
    H, W = frame.shape[:2]
    index = round(t * fps)
    for a in appearances:
        if index not in a.frames(fps):
            continue
        photo = a.image
        if a.height is not None and a.height != photo.shape[0]:
            s = a.height / photo.shape[0]
            photo = cv2.resize(photo, (max(1, round(photo.shape[1] * s)), a.height),
                               interpolation=cv2.INTER_AREA)
        h, w = photo.shape[:2]
        dt = t - a.start
        cx, cy = a.at[0] + a.velocity[0] * dt, a.at[1] + a.velocity[1] * dt
        x0, y0 = round(cx - w / 2), round(cy - h / 2)
        sx0, sy0 = max(0, -x0), max(0, -y0)
        dx0, dy0 = max(0, x0), max(0, y0)
        dx1, dy1 = min(W, x0 + w), min(H, y0 + h)
        if dx1 <= dx0 or dy1 <= dy0:
            continue
        patch = photo[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0].astype(np.float32)
        alpha = _feather(h, w)[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
        region = frame[dy0:dy1, dx0:dx1]
        frame[dy0:dy1, dx0:dx1] = region * (1 - alpha) + patch * alpha
    if noise > 0:
        frame += rng.normal(0.0, noise, frame.shape).astype(np.float32)
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)


def compose_video(
    path: str | os.PathLike[str],
    appearances: Sequence[Appearance],
    *,
    duration: float | None = None,
    size: tuple[int, int] = (640, 480),
    fps: float = 10.0,
    noise: float = 2.0,
    seed: int = 0,
) -> int:
    """Write the scripted video to ``path`` and return its number of frames.

    ``duration`` defaults to the last appearance's end plus one second of empty scene.
    The same script and ``seed`` give the same frames.
    """
    if duration is None:
        duration = max((a.end for a in appearances), default=0.0) + 1.0
    count = max(1, math.ceil(duration * fps - 1e-9))
    background = _scene(*size)
    rng = np.random.default_rng(seed)
    sink = VideoSink(path, fps, size)
    try:
        for i in range(count):
            sink.write(render_frame(background, appearances, i / fps, fps, rng, noise))
    except BaseException:
        sink.abort()
        raise
    sink.commit()
    return count
