"""The face record every analyser backend returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees.

    ``yaw`` > 0 when the face turns toward the image's right, ``pitch`` > 0 when it looks up,
    ``roll`` > 0 when it tilts clockwise in the image.
    """

    yaw: float
    pitch: float
    roll: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 2) for k in ("yaw", "pitch", "roll")}


@dataclass
class Face:
    """One face found in an image.

    Coordinates are image pixels. ``landmarks`` are the backend's own points (468 or 478 for
    MediaPipe, 68 for dlib) as (x, y, z) with z growing away from the camera, in pixels.
    ``mesh`` is the dense 468-point mesh every renderer works on: the landmarks themselves for
    MediaPipe, the reference mesh fitted to the 68 points for dlib. ``rotation``, ``scale`` and
    ``translation`` map reference-mesh coordinates onto ``mesh`` (``mesh ~ s * ref @ R.T + t``).
    ``visibility`` is the share of the face's landmarks that lie inside the image and face the
    camera, in [0, 1].
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    mesh: np.ndarray
    pose: Pose
    visibility: float
    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    backend: str

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return self.width * self.height

    def as_dict(self) -> dict:
        """JSON-friendly summary (no landmark arrays)."""
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "pose": self.pose.as_dict(),
            "visibility": round(float(self.visibility), 3),
            "backend": self.backend,
        }
