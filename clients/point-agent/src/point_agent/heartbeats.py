"""The HTTP side: a heartbeat's body, one POST, and its answer read as an outcome."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from point_agent.decisions import (
    Accepted,
    LinkDown,
    OffAir,
    Outcome,
    Refused,
    Rejected,
    Throttled,
    Unavailable,
)

HEARTBEAT_PATH = "v1/heartbeats"  # relative: a server URL may carry a path prefix
REFUSALS = frozenset({401, 403, 404})
PASSING = frozenset({408, 425})  # 4xx that say "later", not "never"


class SequenceNumbers:
    """Each heartbeat's `seq`, always above the last one sent.

    Started from the clock in milliseconds, so an agent restarted on the same point continues
    above the numbers it sent before: the server ignores a heartbeat whose `seq` is not newer.
    """

    def __init__(self, clock_ms: int | None = None) -> None:
        self._last = (clock_ms if clock_ms is not None else _epoch_ms()) - 1

    def next(self, clock_ms: int | None = None) -> int:
        now = clock_ms if clock_ms is not None else _epoch_ms()
        self._last = max(self._last + 1, now)
        return self._last


@dataclass(frozen=True)
class Beat:
    point_code: str
    session_code: str | None  # None: the server files it under the point's session on air
    seq: int
    learners: int
    leaving: bool = False
    rtt_ms: float | None = None  # the previous heartbeat's round trip, as a link measure

    def body(self, sent_at: datetime) -> dict[str, Any]:
        body: dict[str, Any] = {
            "point_code": self.point_code,
            "seq": self.seq,
            "sent_at": sent_at.isoformat(),
            "learners": self.learners,
        }
        if self.session_code is not None:
            body["session_code"] = self.session_code
        if self.leaving:
            body["leaving"] = True
        if self.rtt_ms is not None:
            body["link"] = {"rtt_ms": round(self.rtt_ms, 1)}
        return body


async def send(client: httpx.AsyncClient, beat: Beat) -> tuple[Outcome, float | None]:
    """POST `beat`; its outcome, and the round trip in ms when an answer came."""
    started = time.monotonic()
    try:
        response = await client.post(HEARTBEAT_PATH, json=beat.body(datetime.now(UTC)))
    except httpx.TransportError as error:
        return LinkDown(link_failure(error)), None
    return outcome_of(response), (time.monotonic() - started) * 1000


def outcome_of(response: httpx.Response, now: datetime | None = None) -> Outcome:
    status = response.status_code
    if status == 202:
        filed = _json_field(response, "session_code")
        return Accepted(
            _number(_json_field(response, "heartbeat_interval_s")),
            filed if isinstance(filed, str) else None,
        )
    wait = retry_after_s(response.headers.get("Retry-After"), now or datetime.now(UTC))
    if status == 429:
        return Throttled(wait)
    if status >= 500 or status in PASSING:
        return Unavailable(status, wait)
    detail = _json_field(response, "detail")
    text = detail if isinstance(detail, str) else response.reason_phrase
    if status in REFUSALS:
        return Refused(status, text)
    if status == 409:
        return OffAir(text)
    return Rejected(status, text)


def retry_after_s(header: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), None if absent or
    unreadable."""
    if header is None:
        return None
    value = header.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def link_failure(error: httpx.TransportError) -> str:
    """A few words on why no answer came, for the operator."""
    if isinstance(error, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect: {_innermost(error)}"
    if isinstance(error, httpx.RemoteProtocolError):
        return "the connection was cut"
    return f"{type(error).__name__}: {_innermost(error)}"


def _innermost(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return str(error) or type(error).__name__


def _json_field(response: httpx.Response, name: str) -> object:
    try:
        document = response.json()
    except ValueError:
        return None
    return document.get(name) if isinstance(document, dict) else None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000
