"""What the desk did about what went wrong in a session: the actions read from `desk.actions`,
by session and subject (a point's code, or an incident's "province:PP" / "channel:C"). Pure.

An action is about the trouble at hand: a point's actions count from the start of its current
silence (its last heartbeat), an incident's from its opening, so a point that came back and
dropped again is nobody's until someone acts on the new drop.
"""

from dataclasses import dataclass
from datetime import datetime

from contracts.events import DeskAction, Response


def point_subject(point_code: str) -> str:
    return f"point:{point_code}"


def incident_subject(kind: str, group: str) -> str:
    return f"{kind}:{group}"


class DeskLog:
    """Every action of every session, each once (a rebuild, or a publish retried, reads an
    action again under its id)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._by_session: dict[str, dict[str, list[DeskAction]]] = {}

    def put(self, action: DeskAction) -> bool:
        """Keep `action`; False when it was already known."""
        if action.id in self._ids:
            return False
        self._ids.add(action.id)
        taken = self._by_session.setdefault(action.session_code, {}).setdefault(action.subject, [])
        taken.append(action)
        taken.sort(key=lambda a: (a.at, a.id))
        return True

    def of(
        self, session_code: str, subject: str, since: datetime | None = None
    ) -> list[DeskAction]:
        """The actions on `subject`, oldest first; only those from `since` on when given."""
        taken = self._by_session.get(session_code, {}).get(subject, [])
        return [a for a in taken if since is None or a.at >= since]

    def session(self, session_code: str) -> list[DeskAction]:
        """Every action of the session, oldest first."""
        return sorted(
            (a for taken in self._by_session.get(session_code, {}).values() for a in taken),
            key=lambda a: (a.at, a.id),
        )


@dataclass(frozen=True)
class Handling:
    """Where the desk stands on one trouble, from its actions: who acknowledged it, whose it is,
    what was noted, and who resolved it."""

    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    assignee: str | None = None
    notes: tuple[DeskAction, ...] = ()
    resolved_by: str | None = None
    resolved_at: datetime | None = None


def handling_of(actions: list[DeskAction]) -> Handling:
    """The latest of each kind wins; a note adds to the others; an action after a resolve
    reopens the handling (resolved no more)."""
    acknowledged: DeskAction | None = None
    resolved: DeskAction | None = None
    assignee: str | None = None
    notes: list[DeskAction] = []
    for action in actions:
        if action.response is Response.ACKNOWLEDGE:
            acknowledged = acknowledged or action
        elif action.response is Response.ASSIGN:
            assignee = action.assignee
        elif action.response is Response.ANNOTATE:
            notes.append(action)
        resolved = action if action.response is Response.RESOLVE else None
    return Handling(
        acknowledged_by=acknowledged.by if acknowledged else None,
        acknowledged_at=acknowledged.at if acknowledged else None,
        assignee=assignee,
        notes=tuple(notes),
        resolved_by=resolved.by if resolved else None,
        resolved_at=resolved.at if resolved else None,
    )
