"""Naming a track from several frames: each search result is a vote, the track takes the winner.

One frame alone is fragile (motion blur, a turned head, a hand over the mask); a person at a
door is seen for dozens of frames. The track's identity is the name most of its observed
frames agree on, once enough frames were seen, weighted by how sure each frame was.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Vote:
    """One frame's answer for a track."""

    identity: str  # "unknown" when the frame's best match is below the gallery's threshold
    score: float  # similarity of the frame's best match (whatever its identity)
    masked: bool
    candidate: str = ""  # the best match's name, even below the threshold


@dataclass(frozen=True)
class Decision:
    """A track's identity as the votes so far decide it."""

    identity: str  # a name, "unknown", or "" while too few frames were seen
    score: float  # mean score of the votes for ``identity``
    votes: int  # frames seen
    agreeing: int  # frames that voted for ``identity``
    masked: bool  # most frames showed a mask
    candidate: str = ""  # the best-match name most frames gave, even below the threshold

    @property
    def decided(self) -> bool:
        return bool(self.identity)


@dataclass
class Ballot:
    """The votes of one track.

    ``needed`` frames decide; a name wins only with more than ``majority`` of the votes cast
    (so a face that flips between two names stays unknown rather than let the wrong one in).
    Only the latest ``window`` votes count, so a decision can follow a person who pulls a
    mask down, but one stray frame cannot overturn it.
    """

    needed: int = 5
    majority: float = 0.5
    window: int = 15
    votes: list[Vote] = field(default_factory=list)

    def add(self, vote: Vote) -> None:
        self.votes.append(vote)
        if len(self.votes) > self.window:
            del self.votes[0]

    @property
    def complete(self) -> bool:
        """Whether enough frames were seen to decide."""
        return len(self.votes) >= self.needed

    def decision(self) -> Decision:
        votes = self.votes
        if not votes:
            return Decision("", 0.0, 0, 0, False, "")
        masked = sum(v.masked for v in votes) * 2 > len(votes)
        candidate = Counter(v.candidate for v in votes).most_common(1)[0][0]
        if not self.complete:
            return Decision("", 0.0, len(votes), 0, masked, candidate)
        counts = Counter(v.identity for v in votes)
        # The most frequent name; among equals, the one with the higher total score.
        best = max(counts, key=lambda name: (counts[name],
                                             sum(v.score for v in votes if v.identity == name)))
        if best != UNKNOWN and counts[best] <= self.majority * len(votes):
            best = UNKNOWN
        chosen = [v.score for v in votes if v.identity == best] or [v.score for v in votes]
        return Decision(best, sum(chosen) / len(chosen), len(votes), counts.get(best, 0), masked,
                        candidate)
