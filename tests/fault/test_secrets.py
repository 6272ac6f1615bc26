"""Tokens kept only as hashes, no secret in a log, a size limit on every
route with a body, security headers on the dashboard, and production refusing default secrets.

Constant-time comparison is a property of the code, not of a run: every presented secret is
compared with `hmac.compare_digest` (registration's operator token in `api/access.py`, a point's
token hash in attendance's `ingest.py`, reporting's viewer token in `api.py`); attendance finds
the point by the SHA-256 of the presented token, which tells a caller nothing of any token.
"""

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from attendance.config import Settings as AttendanceSettings
from contracts.topics import ALL_TOPICS
from devstack.kafka import Broker
from devstack.services import ServiceProcess, start_in
from devstack.simulate import DEV_OPERATOR_TOKEN, send_heartbeat
from registration.config import Settings as RegistrationSettings
from reporting.config import Settings as ReportingSettings
from servicekit.http import DEFAULT_MAX_BODY
from tests.conftest import Figures
from tests.e2e.test_thin_path import fresh_plan, registered_points
from tests.fault.state import every_record, outbox_drained, registration_db

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
OPERATOR = {"Authorization": f"Bearer {DEV_OPERATOR_TOKEN}"}
GOOD_TOKEN = "op-" + "7" * 40
GOOD_DATABASE = "postgresql+psycopg://monitor:S3cret-pw@127.0.0.1:1/registration"
SECRET_SETTINGS = (
    "REGISTRATION_OPERATOR_TOKEN",
    "REGISTRATION_DATABASE_URL",
    "ATTENDANCE_DATABASE_URL",
    "REPORTING_DATABASE_URL",
)


def in_production(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly `environment`, whatever the shell running the tests has set."""
    for name in SECRET_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


async def test_tokens_are_kept_and_published_only_as_hashes(
    stack: dict[str, ServiceProcess],
    kafka: Broker,
    clients: dict[str, httpx.AsyncClient],
    figures: Figures,
) -> None:
    plan = fresh_plan(points=3)
    points = await registered_points(clients, plan)
    rotated = await clients["registration"].post(
        f"/v1/points/{points[0].code}/token", headers=OPERATOR
    )
    tokens = [p.token for p in points] + [rotated.json()["token"]]
    # Heartbeats carry tokens in their headers: none may end up in a record.
    for point in points[1:]:
        assert (
            await send_heartbeat(clients["attendance"], point, plan.session_code)
        ).status_code == 202
    db = registration_db(stack["registration"])
    await outbox_drained(db)

    stored = b"".join(path.read_bytes() for path in db.parent.glob(f"{db.name}*"))
    records = await every_record(kafka.bootstrap, ALL_TOPICS)
    secrets = [token.encode() for token in tokens] + [DEV_OPERATOR_TOKEN.encode()]
    assert [s for s in secrets if s in stored] == []
    assert [s for s in secrets if any(s in record for record in records)] == []
    figures(
        tokens_searched=len(tokens),
        database_bytes_searched=len(stored),
        kafka_records_searched=len(records),
        raw_tokens_found=0,
    )


def log_text(services: list[ServiceProcess]) -> str:
    return "".join(s.log_path.read_text(errors="replace") for s in services)


async def test_no_secret_reaches_a_log(
    stack: dict[str, ServiceProcess],
    kafka: Broker,
    clients: dict[str, httpx.AsyncClient],
    tmp_path: Path,
    figures: Figures,
) -> None:
    plan = fresh_plan(points=2)
    first, second = await registered_points(clients, plan)
    attendance = clients["attendance"]
    # Refused tokens too: a refusal is where a careless service would log what it was given.
    for token in (first.token, second.token, "pt_forged-token-value"):
        await attendance.post(
            "/v1/heartbeats",
            json={"point_code": first.code, "session_code": plan.session_code},
            headers={"Authorization": f"Bearer {token}"},
        )
    # A production registration whose database cannot be reached: its failure is logged.
    failing = start_in(
        "registration",
        bootstrap=kafka.bootstrap,
        data_dir=tmp_path,
        extra_env={
            "ENVIRONMENT": "production",
            "REGISTRATION_OPERATOR_TOKEN": GOOD_TOKEN,
            "REGISTRATION_DATABASE_URL": GOOD_DATABASE,
        },
    )
    try:
        exit_code = await asyncio.to_thread(failing.process.wait, 60)
    finally:
        failing.stop()
    logs = log_text([*stack.values(), failing])
    assert exit_code != 0 and "startup failed" in logs.lower()
    secrets = [first.token, second.token, "pt_forged-token-value", GOOD_TOKEN, "S3cret-pw"]
    assert [secret for secret in secrets if secret in logs] == []
    assert DEV_OPERATOR_TOKEN not in log_text(list(stack.values()))
    figures(secrets_searched=len(secrets) + 1, log_bytes_searched=len(logs), secrets_found=0)


def limits() -> dict[str, dict[str, int]]:
    """The body limit of every route with one of its own, by service (their settings' defaults,
    which the test stack runs with)."""
    registration, attendance = RegistrationSettings(), AttendanceSettings()
    return {
        "registration": {"/v1/points/import": registration.max_import_bytes},
        "attendance": {
            "/v1/heartbeats": attendance.max_heartbeat_bytes,
            "/v1/heartbeats/batch": attendance.max_batch_bytes,
        },
        "reporting": {},
    }


def writing_routes(document: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Every POST, PUT and PATCH route, and whether it reads a body at all."""
    return [
        (method.upper(), path.replace("{code}", "X1"), "requestBody" in operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in ("post", "put", "patch")
    ]


async def test_every_route_with_a_body_refuses_an_oversized_one(
    stack: dict[str, ServiceProcess], figures: Figures
) -> None:
    refused: dict[str, int] = {}
    for name, service in stack.items():
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            document = (await client.get("/openapi.json")).json()
            for method, path, reads_body in writing_routes(document):
                limit = limits()[name].get(path, DEFAULT_MAX_BODY)
                too_big = b"x" * (limit + 1)
                declared = await client.request(method, path, content=too_big, headers=OPERATOR)
                refused[f"{name} {method} {path}"] = declared.status_code
                # Without a Content-Length only what is read can be counted; a route that
                # reads no body never holds one, whatever is sent.
                if reads_body:
                    streamed = await client.request(
                        method, path, content=chunks(too_big), headers=OPERATOR
                    )
                    refused[f"{name} {method} {path} (chunked)"] = streamed.status_code
    let_through = {route: status for route, status in refused.items() if status != 413}
    assert refused and not let_through, let_through
    routes = len([key for key in refused if not key.endswith("(chunked)")])
    figures(routes=routes, requests=len(refused), by_status={"413": len(refused)})


async def chunks(body: bytes, size: int = 64 * 1024) -> Any:
    """The body without a Content-Length: the limit must hold while it is read."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_the_dashboard_and_the_report_carry_security_headers(
    stack: dict[str, ServiceProcess], clients: dict[str, httpx.AsyncClient]
) -> None:
    plan = fresh_plan(points=1)
    await registered_points(clients, plan)
    reporting = clients["reporting"]
    pages = {
        "dashboard": await reporting.get("/"),
        "report": await reporting.get(
            f"/v1/sessions/{plan.session_code}/report", params={"format": "html"}
        ),
        "script": await reporting.get("/static/js/app.js"),
        "api": await reporting.get("/v1/sessions"),
    }
    for name, page in pages.items():
        assert page.status_code == 200, name
        assert page.headers["x-content-type-options"] == "nosniff", name
        assert page.headers["referrer-policy"] == "no-referrer", name
        assert page.headers["x-frame-options"] == "DENY", name
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, name
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, name
    assert "<style>" not in pages["report"].text and "<script>" not in pages["report"].text


@pytest.mark.parametrize(
    ("settings", "environment", "refusal"),
    [
        (RegistrationSettings, {}, "REGISTRATION_OPERATOR_TOKEN"),
        (
            RegistrationSettings,
            {"REGISTRATION_OPERATOR_TOKEN": DEV_OPERATOR_TOKEN},
            "REGISTRATION_OPERATOR_TOKEN",
        ),
        (RegistrationSettings, {"REGISTRATION_OPERATOR_TOKEN": ""}, "REGISTRATION_OPERATOR_TOKEN"),
        (
            RegistrationSettings,
            {"REGISTRATION_OPERATOR_TOKEN": "short"},
            "REGISTRATION_OPERATOR_TOKEN",
        ),
        (
            RegistrationSettings,
            {"REGISTRATION_OPERATOR_TOKEN": GOOD_TOKEN},
            "REGISTRATION_DATABASE_URL must name a database server",
        ),
        (
            RegistrationSettings,
            {
                "REGISTRATION_OPERATOR_TOKEN": GOOD_TOKEN,
                "REGISTRATION_DATABASE_URL": "postgresql+psycopg://monitor@db/registration",
            },
            "REGISTRATION_DATABASE_URL must carry the database password",
        ),
        (AttendanceSettings, {}, "ATTENDANCE_DATABASE_URL must name a database server"),
        (
            AttendanceSettings,
            {"ATTENDANCE_DATABASE_URL": "postgresql+psycopg://monitor:@db/attendance"},
            "ATTENDANCE_DATABASE_URL must carry the database password",
        ),
        (ReportingSettings, {}, "REPORTING_DATABASE_URL must name a database server"),
        (
            ReportingSettings,
            {"REPORTING_DATABASE_URL": "sqlite:////var/lib/reporting.db"},
            "REPORTING_DATABASE_URL must name a database server",
        ),
    ],
)
def test_production_refuses_default_secrets_and_databases(
    settings: type[Any],
    environment: dict[str, str],
    refusal: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_production(environment, monkeypatch)
    with pytest.raises(ValueError, match=refusal):
        settings()


@pytest.mark.parametrize(
    ("settings", "environment"),
    [
        (
            RegistrationSettings,
            {"REGISTRATION_OPERATOR_TOKEN": GOOD_TOKEN, "REGISTRATION_DATABASE_URL": GOOD_DATABASE},
        ),
        (AttendanceSettings, {"ATTENDANCE_DATABASE_URL": GOOD_DATABASE}),
        (ReportingSettings, {"REPORTING_DATABASE_URL": GOOD_DATABASE}),
    ],
)
def test_production_starts_with_its_own_secrets(
    settings: type[Any], environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_production(environment, monkeypatch)
    assert settings().environment == "production"


def test_a_production_service_with_the_default_token_does_not_start(
    kafka: Broker, tmp_path: Path
) -> None:
    service = start_in(
        "registration",
        bootstrap=kafka.bootstrap,
        data_dir=tmp_path,
        extra_env={"ENVIRONMENT": "production", "REGISTRATION_DATABASE_URL": GOOD_DATABASE},
    )
    try:
        exit_code = service.process.wait(60)
    except subprocess.TimeoutExpired:
        service.stop()
        raise
    assert exit_code != 0
    assert "REGISTRATION_OPERATOR_TOKEN must be set in production" in service.log_tail(50)
