"""REST views of the live totals."""

from collections.abc import Mapping

from fastapi import APIRouter, HTTPException, status

from contracts.events import PointStatus, Totals
from contracts.registry import RegistryTable
from reporting.totals import StatusKey, session_totals


def totals_router(registry: RegistryTable, statuses: Mapping[StatusKey, PointStatus]) -> APIRouter:
    router = APIRouter(tags=["totals"])

    @router.get("/v1/sessions/{session_code}/totals", summary="Live totals of one session")
    def get_totals(session_code: str) -> Totals:
        session = registry.sessions.get(session_code)
        if session is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown session")
        return session_totals(session, registry, statuses)

    return router
