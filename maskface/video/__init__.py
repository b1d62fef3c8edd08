"""Access control on video: faces detected, tracked, named by vote, granted or denied.

    from maskface.video import watch
    report = watch("door.mp4", "staff-gallery/", out="annotated.mp4", events="events.jsonl")
    for event in report.events:
        print(event.identity, event.decision, event.first_seen, event.last_seen)

:func:`compose_video` writes scripted test videos from photos.
"""

from maskface.video.access import AccessEvent, WatchReport, annotate, read_events, watch
from maskface.video.compose import Appearance, compose_video
from maskface.video.io import VideoError, VideoInfo, VideoSink, VideoSource
from maskface.video.tracking import Track, Tracker, iou
from maskface.video.voting import Ballot, Decision, Vote

__all__ = [
    "AccessEvent",
    "Appearance",
    "Ballot",
    "Decision",
    "Track",
    "Tracker",
    "VideoError",
    "VideoInfo",
    "VideoSink",
    "VideoSource",
    "Vote",
    "WatchReport",
    "annotate",
    "compose_video",
    "iou",
    "read_events",
    "watch",
]
