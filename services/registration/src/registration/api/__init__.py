"""The registry's HTTP API: operator routes only."""

from fastapi import APIRouter, Depends

from registration.api import courses, imports, points, sessions
from registration.api.access import require_operator


def registry_router() -> APIRouter:
    router = APIRouter(
        dependencies=[Depends(require_operator)],
        responses={
            401: {"description": "no operator token"},
            403: {"description": "not an operator token"},
        },
    )
    for module in (courses, sessions, points, imports):
        router.include_router(module.router)
    return router
