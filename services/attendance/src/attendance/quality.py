"""Implausible learner counts, flagged (never rejected) so operators can check with the point."""

from dataclasses import dataclass

from attendance.domain import Track

OVER_CAPACITY = "over_capacity"  # more learners than 150 % of the room's expected count
JUMP = "jump"  # the count moved by more than half the room in one heartbeat
FROZEN = "frozen"  # the same count for a whole stretch of presence: nobody is updating it
FLAGS = (OVER_CAPACITY, JUMP, FROZEN)


@dataclass(frozen=True)
class QualityRules:
    over_capacity_ratio: float = 1.5
    jump_ratio: float = 0.5
    # How long an unchanged count must last to look frozen: a lecture's length.
    frozen_after_seconds: float = 45 * 60


def flagged(before: Track, after: Track, expected: int, rules: QualityRules) -> Track:
    """`after` with the flags its latest heartbeat earns; a track without a heartbeat has none."""
    if after.first_seen is None or after is before:
        return after
    over = expected > 0 and after.learners > rules.over_capacity_ratio * expected
    jump = (
        expected > 0
        and before.first_seen is not None
        and abs(after.learners - before.learners) > rules.jump_ratio * expected
    )
    frozen = (
        not after.count_varied
        and after.last_seen is not None
        and after.last_seen - after.first_seen >= rules.frozen_after_seconds
    )
    if not (over or jump or frozen or after.flags):
        return after  # the usual case, once per heartbeat: no set made
    flags = {
        flag for flag, holds in ((OVER_CAPACITY, over), (JUMP, jump), (FROZEN, frozen)) if holds
    }
    if flags == after.flags:
        return after  # no new object for flags that did not change
    return after._replace(flags=frozenset(flags))
