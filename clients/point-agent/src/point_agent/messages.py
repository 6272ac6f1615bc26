"""What the agent tells the room's operator: one plain line when something changes, never one
per heartbeat, and for a refusal what is wrong and what to do about it.

Pure: outcomes and times in, sentences out.
"""

from dataclasses import dataclass
from datetime import datetime

from point_agent.decisions import (
    Accepted,
    Decision,
    LinkDown,
    OffAir,
    Outcome,
    Refused,
    Rejected,
    Stop,
    Throttled,
    Unavailable,
    Wait,
)

# The server's own words (attendance.ingest, attendance.admission) for each refusal.
_TOKEN_REFUSED = "unknown or revoked token"
_NO_TOKEN = "bearer token required"
_ANOTHER_POINT = "a point may only speak for itself"
_NOT_ENROLLED = "point not enrolled in this session"
_UNKNOWN_SESSION = "unknown session"


def refusal_message(outcome: Refused | Rejected, point: str, session: str | None) -> str:
    """Why the server will not take this point's heartbeats, and what the operator can do."""
    match outcome:
        case Refused(status=401, detail=detail) if detail == _NO_TOKEN:
            return "no token was sent: give it with --token or POINT_AGENT_TOKEN"
        case Refused(status=401):
            return (
                "the token was refused: it is not a token the server knows, or it was revoked"
                " or replaced by a new one; ask the operations desk for this point's current"
                " token"
            )
        case Refused(status=403, detail=detail) if detail == _ANOTHER_POINT:
            return (
                f"the token belongs to another point, not {point}: check the point code"
                " (--point), or ask the operations desk for this point's own token"
            )
        case Refused(status=403, detail=detail) if detail == _NOT_ENROLLED:
            return (
                f"point {point} may not join session {session}: it is not enrolled in the"
                " session's course, or it was deactivated; check the session code (--session)"
                " or ask the operations desk to enrol it"
            )
        case Refused(status=404, detail=detail) if detail == _UNKNOWN_SESSION:
            return (
                f"session {session} is unknown to the server: check the session code"
                " (--session) with the operations desk"
            )
        case Refused(status=404):
            return (
                "the server has no heartbeat route at this address: check the server URL (--server)"
            )
        case Refused(status=status, detail=detail):
            return f"the server refuses this point ({status}): {detail}"
        case Rejected(status=status, detail=detail):
            return (
                f"the server does not accept this agent's heartbeats ({status}: {detail});"
                " the agent may be out of date, install the version the operations desk gives"
            )


def seconds_text(seconds: float) -> str:
    """'1.5 s', '42 s', '3 min 5 s': how long, for a person."""
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


@dataclass
class Narrator:
    """Turns each outcome into a line for the operator, only when the situation changed."""

    point: str
    session: str | None  # None: whichever of the point's sessions is on air
    _situation: type | None = None
    _heard_in: str | None = None  # the session the last accepted heartbeat was filed under
    _trouble_since: datetime | None = None
    _interval_s: float | None = None
    _learner_problem: str | None = None
    _learner_count: int | None = None

    def after(
        self, outcome: Outcome, decision: Decision, learners: int, at: datetime
    ) -> str | None:
        """The line to show after `outcome` (sent with `learners` at `at`), or None."""
        previous, self._situation = self._situation, type(outcome)
        if isinstance(outcome, Accepted):
            return self._accepted(previous, outcome, decision, learners, at)
        if self._trouble_since is None:
            self._trouble_since = at
        if isinstance(decision, Stop):
            assert isinstance(outcome, Refused | Rejected)  # the only outcomes that stop
            return f"stopped: {refusal_message(outcome, self.point, self.session)}"
        if previous is type(outcome):
            return None
        wait = seconds_text(decision.seconds)
        match outcome:
            case Throttled():
                return f"the server asks this point to slow down (429): waiting {wait}"
            case Unavailable(status=503):
                return f"the server cannot store heartbeats right now (503): retrying in {wait}"
            case Unavailable(status=status):
                return f"the server failed ({status}): retrying in {wait}"
            case LinkDown(reason=reason):
                return (
                    f"link down since {self._trouble_since:%H:%M:%S} ({reason}): retrying;"
                    " the latest learner count goes out as soon as it is back"
                )
            case OffAir():
                return (
                    f"no session of point {self.point} is on air now: waiting for the next,"
                    f" asking again every {seconds_text(decision.seconds)} or so"
                )
            case Refused() | Rejected():
                why = refusal_message(outcome, self.point, self.session)
                return f"refused: {why}; checking again in {wait}"
        return None

    def learners(self, count: int, problem: str | None) -> str | None:
        """A line when the learner count changes, or its source develops or loses a problem."""
        changed = self._learner_count is not None and count != self._learner_count
        self._learner_count = count
        if problem != self._learner_problem:
            self._learner_problem = problem
            if problem is not None:
                return f"{problem}; still sending the last good count, {count}"
            return f"learners: {count} (readable again)"
        return f"learners: {count}" if changed else None

    def _accepted(
        self,
        previous: type | None,
        outcome: Accepted,
        decision: Decision,
        learners: int,
        at: datetime,
    ) -> str | None:
        interval = decision.seconds if isinstance(decision, Wait) else None
        interval_changed = interval != self._interval_s
        self._interval_s = interval
        every = f"a heartbeat every {seconds_text(interval or 0)}"
        heard_in = outcome.session_code or self.session
        moved = heard_in != self._heard_in
        self._heard_in = heard_in
        if previous is None or moved:
            self._trouble_since = None
            return (
                f"connected: point {self.point} is heard in session {heard_in}"
                f" ({learners} learners), {every}"
            )
        if previous is not Accepted:
            since, self._trouble_since = self._trouble_since, None
            gap = seconds_text((at - since).total_seconds()) if since else "a while"
            return f"heard again after {gap}: sent the current count ({learners} learners)"
        if interval_changed:
            return f"the session's pace changed: {every}"
        return None
