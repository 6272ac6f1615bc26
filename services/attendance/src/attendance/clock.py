"""The time silence is judged by in one heartbeat partition: pure, no I/O.

It is event time, driven by the ingest's watermarks (`contracts.events.IngestWatermark`), as
stream processors drive theirs: an instance's watermark says every heartbeat it received before
then is already in the partition, so the clock never runs ahead of heartbeats still on their
way, whatever the processor's own backlog, pauses or restarts. It stops while the ingest cannot
write to Kafka (an outage of Kafka, of every ingest, or a processor reading nothing) and the
desk sees "unknown" meanwhile.

Two rules make that work with several ingest instances and with outages:

- The clock reads the earliest watermark among the instances still writing. An instance
  whose watermarks fall `gone_after` behind the newest one, or that said it stops (`final`),
  is no longer waited for. Behind counts from the end of the last outage at the earliest:
  when Kafka comes back, the first instance through is ahead of the others by the whole
  outage, and their heartbeats held meanwhile are still to land.
- Every stamp (a heartbeat's receive time or a watermark) is evidence that the ingest was
  accepting at that moment. When the evidence stops for longer than `outage_after`, the
  monitor was not accepting meanwhile, and that stretch is not silence: it comes back as a
  `Gap`, and present points silent since before it are given that much more time.
"""

from dataclasses import dataclass, field
from typing import NamedTuple


class Gap(NamedTuple):
    """A stretch in which the monitor accepted nothing: `seconds` from `since` on are not
    silence of any point heard before it."""

    since: float
    seconds: float


@dataclass
class IngestClock:
    outage_after: float
    gone_after: float
    # Per ingest instance, the newest moment it proved it was accepting.
    marks: dict[str, float] = field(default_factory=dict)
    # Silence may be judged up to here (None until a watermark was read).
    now: float | None = None
    # The newest stamp seen, heartbeat or watermark.
    evidence: float | None = None
    # The first stamp after the last gap: no instance is behind from before it.
    resumed_at: float | None = None

    def stamp(self, at: float) -> Gap | None:
        """A moment the ingest was accepting; the gap since the previous one, if it is one."""
        previous = self.evidence
        if previous is not None and at <= previous:
            return None
        self.evidence = at
        if previous is None or at - previous <= self.outage_after:
            return None
        self.resumed_at = at
        return Gap(previous, at - previous - self.outage_after)

    def watermark(self, ingest: str, at: float, final: bool) -> tuple[Gap | None, bool]:
        """Take an instance's watermark: the gap it closes, and whether the clock moved."""
        gap = self.stamp(at)
        if final:
            self.marks.pop(ingest, None)
        elif at > self.marks.get(ingest, at - 1):
            self.marks[ingest] = at
        if not self.marks:
            return gap, False
        cutoff = max(self.marks.values()) - self.gone_after
        if self.resumed_at is None or self.resumed_at < cutoff:
            for stale in [i for i, mark in self.marks.items() if mark < cutoff]:
                del self.marks[stale]
        frontier = min(self.marks.values())
        if self.now is not None and frontier <= self.now:
            return gap, False
        self.now = frontier
        return gap, True

    def saved(self) -> dict[str, object]:
        """What a restart needs to carry on exactly (it goes with the committed offset)."""
        return {
            "now": self.now,
            "evidence": self.evidence,
            "resumed_at": self.resumed_at,
            "marks": dict(self.marks),
        }

    @classmethod
    def resumed(
        cls, saved: dict[str, object] | None, *, outage_after: float, gone_after: float
    ) -> "IngestClock":
        clock = cls(outage_after, gone_after)
        if not saved:
            return clock
        now, evidence, marks = saved.get("now"), saved.get("evidence"), saved.get("marks")
        clock.now, clock.evidence, clock.resumed_at = (
            _moment(now),
            _moment(evidence),
            _moment(saved.get("resumed_at")),
        )
        if isinstance(marks, dict):
            clock.marks = {str(k): float(v) for k, v in marks.items() if isinstance(v, int | float)}
        return clock


def _moment(saved: object) -> float | None:
    return float(saved) if isinstance(saved, int | float) else None
