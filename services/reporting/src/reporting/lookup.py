"""What every route of a session looks up first: the session, or a 404."""

from fastapi import HTTPException, status

from contracts.events import SessionSchedule
from reporting.live import LiveTotals, SessionView


def session_view(live: LiveTotals, session_code: str) -> tuple[SessionSchedule, SessionView]:
    session = live.registry.sessions.get(session_code)
    view = live.view(session_code)
    if session is None or view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown session")
    return session, view
