"""Face tracks across frames: detections joined by box overlap and centre distance.

Each track keeps a constant-velocity estimate of its box, so it can be carried over frames
without a detection (when detection runs every Nth frame, or misses a face for a moment) and
so a face moving fast still lands on its own track. Detections are assigned to tracks by the
Hungarian method on a cost mixing IoU and centre distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) against every box in ``b`` (M, 4): (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _centre_size(box: np.ndarray) -> tuple[np.ndarray, float]:
    box = np.asarray(box, np.float64)
    side = np.sqrt(max(box[2] - box[0], 1.0) * max(box[3] - box[1], 1.0))
    return (box[:2] + box[2:]) / 2, float(side)


@dataclass
class Track:
    """One face followed over time. ``box`` is the latest estimate (detected or predicted)."""

    id: int
    box: np.ndarray
    anchor: np.ndarray  # the last detected box, which motion is measured from
    first_frame: int
    first_time: float
    last_frame: int  # last frame with a detection
    last_time: float
    hits: int = 1  # detections joined to the track
    misses: int = 0  # detection passes in a row without one
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    observation: Any = None  # the latest detection's payload (e.g. a located face)
    matched: bool = True  # whether this frame's box comes from a detection
    resumed_after: int = 0  # detection passes missed just before this detection
    before_gap: tuple[int, float] | None = None  # (frame, time) of the detection before them

    def predict(self, frame: int) -> np.ndarray:
        """The box expected at ``frame`` from the last detection and the velocity."""
        return self.anchor + self.velocity * (frame - self.last_frame)


class Tracker:
    """Joins per-frame face boxes into tracks.

    ``max_missed`` is how many detection passes a track survives without a detection before
    it ends (a face hidden for a moment keeps its track); ``min_iou`` and ``max_centre``
    (centre distance over face size) bound what may be joined.
    """

    def __init__(self, max_missed: int = 5, min_iou: float = 0.2, max_centre: float = 0.6,
                 smoothing: float = 0.6) -> None:
        self.max_missed = max_missed
        self.min_iou = min_iou
        self.max_centre = max_centre
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next_id = 1

    def predict(self, frame: int) -> list[Track]:
        """Carry every live track to ``frame`` without a detection (between detection passes)."""
        for track in self.tracks:
            track.box = track.predict(frame)
            track.matched = False
        return list(self.tracks)

    def update(self, frame: int, time: float, boxes: np.ndarray,
               payloads: list[Any] | None = None) -> tuple[list[Track], list[Track]]:
        """Join this frame's detections to tracks; return (live tracks, tracks that ended).

        New detections start tracks; tracks unmatched for more than ``max_missed`` passes end.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        payloads = payloads if payloads is not None else [None] * len(boxes)
        predicted = np.array([t.predict(frame) for t in self.tracks]).reshape(-1, 4)
        pairs = self._assign(predicted, boxes)
        matched_tracks, matched_dets = set(), set()
        for ti, di in pairs:
            track = self.tracks[ti]
            new = boxes[di]
            if frame > track.last_frame:
                motion = (new - track.anchor) / (frame - track.last_frame)
                track.velocity = self.smoothing * track.velocity + (1 - self.smoothing) * motion
            track.box, track.anchor = new.copy(), new.copy()
            track.resumed_after = track.misses
            track.before_gap = (track.last_frame, track.last_time) if track.misses else None
            track.last_frame, track.last_time = frame, time
            track.hits += 1
            track.misses = 0
            track.observation = payloads[di]
            track.matched = True
            matched_tracks.add(ti)
            matched_dets.add(di)
        ended = []
        kept = []
        for ti, track in enumerate(self.tracks):
            if ti in matched_tracks:
                kept.append(track)
                continue
            track.misses += 1
            track.matched = False
            track.box = predicted[ti]
            if track.misses > self.max_missed:
                ended.append(track)
            else:
                kept.append(track)
        for di in range(len(boxes)):
            if di in matched_dets:
                continue
            kept.append(Track(id=self._next_id, box=boxes[di].copy(), anchor=boxes[di].copy(),
                              first_frame=frame,
                              first_time=time, last_frame=frame, last_time=time,
                              observation=payloads[di]))
            self._next_id += 1
        self.tracks = kept
        return list(self.tracks), ended

    def split(self, track: Track, end: tuple[int, float], start: tuple[int, float],
              hits_after: int) -> Track:
        """Another person took ``track``'s place: end it at ``end`` (frame, time) and go on
        with a new id from ``start``. Returns the ended part (``track`` becomes the new one)."""
        ended = replace(track, last_frame=end[0], last_time=end[1],
                        hits=max(1, track.hits - hits_after))
        track.id = self._next_id
        self._next_id += 1
        track.first_frame, track.first_time = start
        track.hits = hits_after
        return ended

    def close(self) -> list[Track]:
        """End every live track (the video is over)."""
        ended, self.tracks = self.tracks, []
        return ended

    def _assign(self, tracks: np.ndarray, boxes: np.ndarray) -> list[tuple[int, int]]:
        if len(tracks) == 0 or len(boxes) == 0:
            return []
        overlap = iou(tracks, boxes)
        centre_cost = np.zeros_like(overlap)
        for i, t in enumerate(tracks):
            tc, ts = _centre_size(t)
            for j, b in enumerate(boxes):
                bc, bs = _centre_size(b)
                centre_cost[i, j] = np.linalg.norm(tc - bc) / max(ts, bs)
        allowed = (overlap >= self.min_iou) | (centre_cost <= self.max_centre)
        cost = (1.0 - overlap) + centre_cost
        cost = np.where(allowed, cost, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]
