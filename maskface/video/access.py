"""Access control on video: find, follow and name faces; grant or deny each person once.

Every detection pass finds the faces of a frame (:func:`maskface.geometry.locate.locate_faces`,
with the gallery's own detector) and joins them to tracks. The faces of tracks still being
decided are searched in the gallery (one batched embedding per pass), so a face costs a
recognition only until its identity is settled (and on an occasional re-check after that),
not on every frame. A track found again after its face was lost for a moment is searched
again: if those frames name somebody else, another person took the place, and the track is
split in two visits. When a track ends (the person left), one event goes to the log: who,
from when to when, granted or denied, with the score and whether a mask was worn.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import cv2
import numpy as np

from maskface.video.io import VideoError, VideoSink, VideoSource, parse_source
from maskface.video.tracking import Track, Tracker
from maskface.video.voting import UNKNOWN, Ballot, Decision, Vote

if TYPE_CHECKING:
    from maskface.gallery import Gallery

GRANTED, DENIED = "granted", "denied"
# Annotation colours (RGB): decided and let in, decided and kept out, still voting.
_GREEN, _RED, _AMBER = (40, 200, 80), (225, 50, 50), (240, 180, 30)


@dataclass(frozen=True)
class AccessEvent:
    """One person's visit: a track from its first to its last detection, and the decision.

    Times are seconds from the start of the video (a file's frame index over its frame rate);
    ``decided_at`` is when the votes first settled on the identity (the door would open then),
    ``None`` when the person left before enough frames were seen. ``wall_time`` (cameras only)
    is the ISO-8601 UTC time of the first detection.
    """

    track: int
    identity: str
    decision: str  # "granted" or "denied"
    score: float
    masked: bool
    first_seen: float
    last_seen: float
    first_frame: int
    last_frame: int
    decided_at: float | None
    votes: int
    agreeing: int
    wall_time: str | None = None

    @property
    def granted(self) -> bool:
        return self.decision == GRANTED

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("score", "first_seen", "last_seen", "decided_at"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 4)
        if out["wall_time"] is None:
            del out["wall_time"]
        return out


@dataclass
class WatchReport:
    """What a :func:`watch` run saw."""

    source: str
    frames: int  # frames read
    detection_passes: int
    duration: float  # seconds of video covered
    elapsed: float  # wall-clock seconds the run took
    detect_every: int  # detection every this many frames (the last value, for adaptive runs)
    events: list[AccessEvent] = field(default_factory=list)
    interrupted: bool = False

    @property
    def fps(self) -> float:
        """Frames processed per wall-clock second."""
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        granted = sum(e.granted for e in self.events)
        return (f"{self.frames} frames ({self.duration:.1f} s of video) in {self.elapsed:.1f} s "
                f"= {self.fps:.1f} frames/s; {len(self.events)} people: {granted} granted, "
                f"{len(self.events) - granted} denied"
                + ("; interrupted" if self.interrupted else ""))


@dataclass
class _TrackState:
    ballot: Ballot
    last_vote_pass: int = -1
    decided_at: float | None = None  # when the votes first settled on the current identity
    decided: str = ""
    wall_time: str | None = None
    latest: Vote | None = None
    # Votes since the track was found again after a gap, and where the gap was.
    probation: Ballot | None = None
    gap: tuple[tuple[int, float], tuple[int, float]] | None = None


def _open_gallery(gallery: Gallery | str | os.PathLike[str]) -> Gallery:
    if isinstance(gallery, (str, os.PathLike)):
        from maskface.gallery import Gallery

        return Gallery.open(gallery, readonly=True)
    return gallery


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _clock(t: float) -> str:
    minutes, seconds = divmod(t, 60)
    return f"{int(minutes):02d}:{seconds:05.2f}"


def annotate(frame: np.ndarray, boxes: list[tuple[np.ndarray, str, tuple]], header: str) -> None:
    """Draw labelled boxes and a header line on an RGB frame in place."""
    scale = max(0.4, min(1.2, frame.shape[1] / 1280))
    thick = max(1, round(2 * scale))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for box, text, colour in boxes:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        cv2.rectangle(frame, (x0, y0), (x1, y1), colour, thick, cv2.LINE_AA)
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else y1 + th + 4
        cv2.rectangle(frame, (x0, ty - th - base), (x0 + tw + 4, ty + base - 2), colour, -1)
        cv2.putText(frame, text, (x0 + 2, ty - 2), font, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    (tw, th), base = cv2.getTextSize(header, font, scale, thick)
    cv2.rectangle(frame, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(frame, header, (4, th + 4), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


class _Session:
    """Tracks, their ballots, and the events of one run."""

    def __init__(self, gallery: Gallery, tracker: Tracker, *, votes: int, recheck: int,
                 min_hits: int, min_face: int, k: int, allowed: set[str] | None, live: bool,
                 emit: Callable[[AccessEvent], None]) -> None:
        from maskface.geometry.locate import locate_faces

        self._locate = locate_faces
        self.gallery = gallery
        self.tracker = tracker
        self.votes, self.recheck, self.min_hits = votes, recheck, min_hits
        self.min_face, self.k = min_face, k
        self.allowed = allowed
        self.live = live
        self.emit = emit
        self.states: dict[int, _TrackState] = {}
        self.passes = 0

    def _ballot(self) -> Ballot:
        return Ballot(needed=self.votes, window=3 * self.votes)

    def detect(self, frame: np.ndarray, index: int, t: float) -> list[Track]:
        """A detection pass: find faces, join them to tracks, vote where due."""
        # upsample=0: when BlazeFace sees nobody, locate_faces asks dlib's HOG, whose first
        # upsampling level would cost ~4x a whole pass on every empty frame of a video.
        faces = self._locate(frame, detector=self.gallery.detector, upsample=0,
                             min_size=self.min_face)
        boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4)
        live, ended = self.tracker.update(index, t, boxes, faces)
        self.finish(ended)
        due = []
        for track in live:
            state = self.states.get(track.id)
            if state is None:
                state = self.states[track.id] = _TrackState(self._ballot())
                if self.live:
                    state.wall_time = datetime.now(timezone.utc).isoformat(timespec="seconds")
            if not track.matched:
                continue
            if (track.resumed_after and state.probation is None
                    and state.ballot.decision().decided):
                # Found again after a gap: make sure it is still the same person.
                state.probation = self._ballot()
                state.gap = (track.before_gap, (track.last_frame, track.last_time))
            if (state.probation is not None or not state.ballot.complete
                    or self.passes - state.last_vote_pass >= self.recheck):
                due.append((track, state))
        if due:
            results = self.gallery.search_faces(frame, [tr.observation for tr, _ in due],
                                                k=self.k)
            for (track, state), r in zip(due, results, strict=True):
                best = str(r.matches[0].identity) if r.matches else ""
                self._add_vote(track, state, Vote(str(r.identity), float(r.score),
                                                  bool(r.masked), best), t)
        self.passes += 1
        return live

    def _add_vote(self, track: Track, state: _TrackState, vote: Vote, t: float) -> None:
        state.last_vote_pass = self.passes
        state.latest = vote
        if state.probation is None:
            state.ballot.add(vote)
            decision = state.ballot.decision()
            if decision.decided and decision.identity != state.decided:
                state.decided, state.decided_at = decision.identity, t
            return
        state.probation.add(vote)
        if not state.probation.complete:
            return
        before, now = state.ballot.decision(), state.probation.decision()
        # Two strangers are both "unknown": their closest enrolled names tell them apart.
        if (now.identity, now.candidate) == (before.identity, before.candidate):
            for v in state.probation.votes:
                state.ballot.add(v)
        else:
            # Another person: the first visit ended before the gap, the new one began after.
            end, start = state.gap
            old_id = track.id
            ended = self.tracker.split(track, end, start, len(state.probation.votes))
            wall = datetime.now(timezone.utc).isoformat(timespec="seconds") if self.live else None
            self.states[track.id] = _TrackState(state.probation, self.passes, decided_at=t,
                                                decided=now.identity, wall_time=wall,
                                                latest=vote)
            self.states[old_id] = state
            self.finish([ended])
        state.probation, state.gap = None, None

    def finish(self, tracks: list[Track]) -> None:
        """Log the visits of tracks that ended (too short ones are false alarms)."""
        for track in sorted(tracks, key=lambda tr: (tr.first_frame, tr.id)):
            state = self.states.pop(track.id, None)
            if state is None or track.hits < self.min_hits:
                continue
            self.emit(self._event(track, state))

    def _granted(self, decision: Decision) -> bool:
        return (decision.decided and decision.identity != UNKNOWN
                and (self.allowed is None or decision.identity in self.allowed))

    def _event(self, track: Track, state: _TrackState) -> AccessEvent:
        ballot = state.ballot
        decision = ballot.decision()
        if decision.decided:
            identity, granted = decision.identity, self._granted(decision)
        else:
            # Left before enough frames were seen: named from what was seen, never let in.
            decision = Ballot(needed=1, majority=ballot.majority, window=ballot.window,
                              votes=list(ballot.votes)).decision()
            identity, granted = decision.identity or UNKNOWN, False
        return AccessEvent(
            track=track.id, identity=identity, decision=GRANTED if granted else DENIED,
            score=decision.score, masked=decision.masked, first_seen=track.first_time,
            last_seen=track.last_time, first_frame=track.first_frame,
            last_frame=track.last_frame,
            decided_at=state.decided_at if ballot.complete else None, votes=decision.votes,
            agreeing=decision.agreeing, wall_time=state.wall_time,
        )

    def labels(self, live: list[Track]) -> list[tuple[np.ndarray, str, tuple]]:
        """(box, text, colour) of each track worth showing on this frame."""
        out = []
        for track in live:
            state = self.states.get(track.id)
            if state is None or track.hits < min(self.min_hits, 2):
                continue
            decision = state.ballot.decision()
            masked = state.latest.masked if state.latest is not None else decision.masked
            mask = "mask" if masked else "no mask"
            if not decision.decided:
                text, colour = f"checking {decision.votes}/{self.votes} | {mask}", _AMBER
            else:
                text = f"{decision.identity} {decision.score:.2f} | {mask}"
                colour = _GREEN if self._granted(decision) else _RED
            out.append((track.box, f"#{track.id} {text}", colour))
        return out


def watch(
    source: str | int | os.PathLike[str],
    gallery: Gallery | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    events: str | os.PathLike[str] | None = None,
    detect_every: int | None = None,
    votes: int = 5,
    recheck: int = 10,
    allow: Collection[str] | None = None,
    min_hits: int = 3,
    max_missed: float = 0.5,
    min_face: int = 40,
    k: int = 5,
    max_frames: int | None = None,
    max_seconds: float | None = None,
    progress: bool = False,
    on_event: Callable[[AccessEvent], None] | None = None,
    threads: int | None = 1,
) -> WatchReport:
    """Watch a video file or a camera and decide, for each person seen, granted or denied.

    ``source`` is a file path or a camera index; ``gallery`` a :class:`~maskface.gallery.Gallery`
    or its folder. Faces are detected every ``detect_every`` frames (default: every frame of a
    file; for a camera, as often as the machine keeps up with) and tracked in between. A track
    is named by ``votes`` frames' gallery searches (re-checked every ``recheck`` detection
    passes after that); it is granted when the name has a clear majority and is in ``allow``
    (default: anyone enrolled). Tracks seen on fewer than ``min_hits`` detection passes are
    dropped as false alarms; a track ends after ``max_missed`` seconds without its face.

    ``out`` writes the annotated video (.mp4, .avi, ...); ``events`` a JSON-lines log, one
    line per person, written as each leaves; ``on_event`` is called at the same moment.
    ``max_frames``/``max_seconds`` stop early (cameras run until Ctrl-C otherwise, which ends
    the run cleanly: open tracks are logged and the video is kept).

    ``threads`` is how many threads PyTorch uses during the run (restored afterwards; None
    leaves it alone). A frame has only a face or two to recognise, too few to share out: one
    thread is about as fast alone, and several times faster when other work shares the CPU.
    """
    if votes < 1 or min_hits < 1 or k < 1:
        raise ValueError("votes, min_hits and k must be at least 1")
    if detect_every is not None and detect_every < 1:
        raise ValueError(f"detect_every must be at least 1, got {detect_every}")
    target = parse_source(source)
    for path in (out, events):
        if path is not None and isinstance(target, str) and Path(path).exists() \
                and Path(path).resolve() == Path(target).resolve():
            raise VideoError(f"Refusing to overwrite the input video {target} with an output.")
    g = _open_gallery(gallery)

    with VideoSource(target) as video, _torch_threads(threads):
        info = video.info
        every = detect_every or 1
        adaptive = detect_every is None and info.live
        report = WatchReport(source=info.name, frames=0, detection_passes=0, duration=0.0,
                             elapsed=0.0, detect_every=every)
        sink = VideoSink(out, info.fps, (info.width, info.height)) if out is not None else None
        log: IO[str] | None = None
        bar = None
        started = time.perf_counter()
        try:
            if events is not None:
                Path(events).parent.mkdir(parents=True, exist_ok=True)
                # A log written line by line (not atomically at the end): a door camera runs
                # for days, and each visit must be on disk as soon as the person has left.
                log = open(events, "w", encoding="utf-8")  # noqa: SIM115
            if progress:
                from tqdm import tqdm

                total = info.frames if max_frames is None else min(max_frames,
                                                                    info.frames or max_frames)
                bar = tqdm(total=total, unit="frame", desc="watch", dynamic_ncols=True)

            def emit(event: AccessEvent) -> None:
                report.events.append(event)
                if log is not None:
                    log.write(json.dumps(event.as_dict(), ensure_ascii=False) + "\n")
                    log.flush()
                if on_event is not None:
                    on_event(event)

            tracker = Tracker(max_missed=max(1, round(max_missed * info.fps / every)))
            session = _Session(g, tracker, votes=votes, recheck=recheck, min_hits=min_hits,
                               min_face=min_face, k=k,
                               allowed=None if allow is None else set(allow),
                               live=info.live, emit=emit)
            pass_seconds = 0.0
            next_pass = 0
            try:
                for index, t, frame in video:
                    if (max_frames is not None and index >= max_frames) or (
                            max_seconds is not None and t > max_seconds):
                        break
                    report.frames, report.duration = index + 1, t
                    if index >= next_pass:
                        tick = time.perf_counter()
                        live = session.detect(frame, index, t)
                        if adaptive:
                            # Keep up with the camera: a pass may take up to the frames it covers.
                            pass_seconds = 0.8 * pass_seconds + 0.2 * (time.perf_counter() - tick)
                            every = max(1, min(10, math.ceil(pass_seconds * info.fps)))
                            report.detect_every = every
                        next_pass = index + every
                    else:
                        live = tracker.predict(index)
                    if sink is not None:
                        where = f"{info.name}  " if info.live else ""
                        annotate(frame, session.labels(live), f"{where}{_clock(t)}  frame {index}")
                        sink.write(frame)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(people=len(live), logged=len(report.events),
                                        refresh=False)
            except KeyboardInterrupt:
                report.interrupted = True
            session.finish(tracker.close())
            report.detection_passes = session.passes
            if sink is not None:
                sink.commit()
                sink = None
        finally:
            if sink is not None:
                sink.abort()
            if log is not None:
                log.close()
            if bar is not None:
                bar.close()
        report.elapsed = time.perf_counter() - started
    return report


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The events of a JSON-lines log written by :func:`watch`."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
