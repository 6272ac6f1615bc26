"""What the agent does after each heartbeat's outcome: how long to wait, or why to stop.

Pure: an outcome and the agent's standing in, a decision and the new standing out. The jitter
is passed in as a number in [0, 1), so every rule can be tested without waiting or chance.
"""

from dataclasses import dataclass, replace
from enum import IntEnum

DEFAULT_INTERVAL_S = 5.0
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.01, 3600.0  # bounds of --interval
# Backoff after failures: doubling from the base, never past the session's interval (so a
# returning link is noticed within one interval) yet never hammering a dead link either.
BACKOFF_BASE_S = 0.5
BACKOFF_FLOOR_CAP_S = 1.0
BACKOFF_CEILING_CAP_S = 30.0
# A refusal is believed only once repeated: an attendance instance that just restarted may
# answer for a moment before it has read back every token and session.
REFUSALS_BELIEVED = 3
REFUSAL_RECHECK_S = 1.0
# Retry-After is a floor; a little spread keeps thousands of points told "2 s" at once from
# all coming back in the same instant.
RETRY_AFTER_SPREAD = 0.2
# Between sessions (no session code given, none on air): ask again this often, spread.
OFF_AIR_RECHECK_S = 30.0


class ExitCode(IntEnum):
    STOPPED = 0  # asked to stop (Ctrl-C, --leaving)
    FAILED = 1  # the final heartbeat of --leaving could not be delivered
    USAGE = 2  # options or learner count unusable
    REFUSED = 3  # the server refuses this token, point or session
    INCOMPATIBLE = 4  # the server refuses the heartbeat itself: this agent is out of date


@dataclass(frozen=True)
class Accepted:
    """202: stored. The session's interval and the session it was filed under, when the
    server says them."""

    interval_s: float | None = None
    session_code: str | None = None


@dataclass(frozen=True)
class Throttled:
    """429: too frequent for this point."""

    retry_after_s: float | None


@dataclass(frozen=True)
class Unavailable:
    """503 (Kafka unavailable), other 5xx or 408: the server could not store it now."""

    status: int
    retry_after_s: float | None


@dataclass(frozen=True)
class LinkDown:
    """No answer at all: refused connection, DNS, timeout, a reset mid-request."""

    reason: str


@dataclass(frozen=True)
class Refused:
    """401, 403, 404: the token, the point or the session is not accepted."""

    status: int
    detail: str


@dataclass(frozen=True)
class OffAir:
    """409: the heartbeat named no session, and none of the point's is on air now."""

    detail: str


@dataclass(frozen=True)
class Rejected:
    """Any other 4xx (422, 413...): the heartbeat itself is not understood."""

    status: int
    detail: str


Outcome = Accepted | Throttled | Unavailable | LinkDown | Refused | OffAir | Rejected


@dataclass(frozen=True)
class Wait:
    """Send the next heartbeat after `seconds`; `paced` counts them from the last attempt's
    start (a steady cadence), otherwise from its answer (a server's wait is a floor)."""

    seconds: float
    paced: bool = False


@dataclass(frozen=True)
class Stop:
    code: ExitCode


Decision = Wait | Stop


@dataclass(frozen=True)
class Standing:
    """What the agent has learnt from earlier outcomes."""

    interval_s: float = DEFAULT_INTERVAL_S
    failures: int = 0  # attempts in a row that got no 202 and no refusal
    refusals: int = 0  # refusals since the last 202


def decide(
    outcome: Outcome, standing: Standing, jitter: float, fixed_interval_s: float | None = None
) -> tuple[Decision, Standing]:
    """The decision after `outcome`, and the standing it leaves."""
    match outcome:
        case Accepted(interval_s=told):
            interval = fixed_interval_s or told or standing.interval_s
            return Wait(interval, paced=True), Standing(interval_s=interval)
        case Throttled(retry_after_s=wait) | Unavailable(retry_after_s=wait):
            return _failed(standing, jitter, told_wait=wait)
        case LinkDown():
            return _failed(standing, jitter, told_wait=None)
        case Refused():
            refusals = standing.refusals + 1
            settled = replace(standing, refusals=refusals)
            if refusals >= REFUSALS_BELIEVED:
                return Stop(ExitCode.REFUSED), settled
            return Wait(REFUSAL_RECHECK_S * refusals), settled
        case OffAir():
            # Not a failure: the room waits for its next session, and is heard once it airs.
            wait = OFF_AIR_RECHECK_S * (1 - RETRY_AFTER_SPREAD * jitter)
            return Wait(wait), replace(standing, failures=0, refusals=0)
        case Rejected():
            return Stop(ExitCode.INCOMPATIBLE), standing


def backoff_s(failures: int, interval_s: float, jitter: float) -> float:
    """The wait after the `failures`-th failure in a row: exponential, capped, half-jittered
    (between half and all of the step, so it never collapses to zero)."""
    cap = min(max(interval_s, BACKOFF_FLOOR_CAP_S), BACKOFF_CEILING_CAP_S)
    step = min(cap, BACKOFF_BASE_S * 2.0 ** min(failures - 1, 32))
    return step * (0.5 + jitter / 2)


def _failed(
    standing: Standing, jitter: float, told_wait: float | None
) -> tuple[Decision, Standing]:
    failures = standing.failures + 1
    settled = replace(standing, failures=failures)
    if told_wait is not None:
        # Never straight back, even when told "0".
        floor = max(told_wait, BACKOFF_BASE_S)
        return Wait(floor * (1 + RETRY_AFTER_SPREAD * jitter)), settled
    return Wait(backoff_s(failures, standing.interval_s, jitter)), settled
