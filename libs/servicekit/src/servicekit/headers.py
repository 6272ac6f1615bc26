"""Headers that tell a browser to run nothing but the service's own files, never sniff a type,
never show a page inside another site's frame, and never leak an address (OWASP secure headers)."""

from collections.abc import Collection

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The dashboard and the HTML report use only their own scripts, styles and the live stream.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def security_headers(path: str, exempt_from_csp: Collection[str] = ()) -> dict[str, str]:
    """The headers every answer on `path` carries (also for an app answering some requests
    ahead of this middleware)."""
    added = dict(ALWAYS)
    if path not in exempt_from_csp:
        added["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return added


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers to every HTTP answer, the content security policy
    to all but `exempt_from_csp` (pages that need inline scripts, such as the API docs)."""

    def __init__(self, app: ASGIApp, *, exempt_from_csp: Collection[str] = ()) -> None:
        self._app = app
        self._exempt = frozenset(exempt_from_csp)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        added = security_headers(scope["path"], self._exempt)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in added.items():
                    headers.setdefault(name, value)
            await send(message)

        await self._app(scope, receive, with_headers)
