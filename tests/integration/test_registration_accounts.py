"""The desk's named accounts on real databases (SQLite and PostgreSQL): issued, rotated and
revoked by an administrator, every route tried with every role, a coordinator kept to their
provinces, and tokens stored only as hashes."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, MetaData, text
from sqlmodel import SQLModel
from sqlmodel.main import default_registry

from contracts.accounts import Action, Caller, Role
from contracts.codec import decode
from contracts.events import AccountGrant
from contracts.tokens import hash_token
from contracts.topics import REGISTRY_ACCOUNTS
from registration.api import install
from registration.official import official_points
from tests.integration.test_registration_api import outbox

pytestmark = pytest.mark.integration
OPERATOR = "test-operator-token"
GRANTS = {
    Role.ADMINISTRATOR: [],
    Role.OPERATOR: [],
    Role.COORDINATOR: ["01"],
    Role.VIEWER: [],
}


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    app = FastAPI()
    install(app, engine=engine, operator_token=SecretStr(OPERATOR))
    return app


@pytest.fixture
def admin(app: FastAPI) -> TestClient:
    return TestClient(app, headers=bearer(OPERATOR))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def issue(admin: TestClient, name: str, role: Role, provinces: list[str]) -> str:
    response = admin.post("/v1/accounts", json={"name": name, "role": role, "provinces": provinces})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def test_the_migrations_build_exactly_the_tables_the_models_declare(engine: Engine) -> None:
    # SQLModel's one metadata also holds the other services' tables, once they are imported.
    declared = MetaData()
    for mapper in default_registry.mappers:
        if mapper.class_.__module__.startswith("registration."):
            SQLModel.metadata.tables[mapper.class_.__tablename__].to_metadata(declared)
    assert {"account", "point", "outboxevent"} <= set(declared.tables)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), declared)
    assert differences == []


def test_every_route_with_every_role_is_allowed_exactly_what_the_role_allows(
    app: FastAPI, admin: TestClient
) -> None:
    tokens = {role: issue(admin, f"a-{role.value}", role, GRANTS[role]) for role in Role}
    revoked = issue(admin, "gone", Role.OPERATOR, [])
    assert admin.delete("/v1/accounts/gone/token").status_code == 200
    # Every route the service documents: a new one is tried without a change to this test.
    # (But the login and the logout, the gate itself: `test_a_browser_logs_in_for_a_cookie`.)
    routes = [
        (path, method.upper())
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if path not in ("/v1/login", "/v1/logout")
    ]
    assert len(routes) >= 20, routes  # every registry and account route, not a handful
    anonymous = TestClient(app)
    tried = 0
    for route, method in routes:
        # Names that exist nowhere: an allowed request is refused by the registry (404, 422),
        # never changes anything, and whatever it is, it is past the gate.
        path = route.replace("{code}", "NOPE").replace("{name}", "nobody")
        action = action_of(route, method)
        assert anonymous.request(method, path).status_code == 401, (method, path)
        assert anonymous.request(method, path, headers=bearer(revoked)).status_code == 403
        for role, token in tokens.items():
            status = anonymous.request(method, path, headers=bearer(token)).status_code
            allowed = Caller("x", role, frozenset(GRANTS[role])).may(action)
            assert (status == 403) != allowed, (method, path, role, status)
            assert status != 401, (method, path, role)
            tried += 1
    assert tried == len(Role) * len(routes)


def test_a_browser_logs_in_for_a_cookie_and_guessing_is_throttled(
    app: FastAPI, admin: TestClient
) -> None:
    token = issue(admin, "minh.desk", Role.OPERATOR, [])
    browser = TestClient(app)
    assert browser.get("/v1/me").status_code == 401
    answer = browser.post("/v1/login", json={"token": token})
    assert answer.status_code == 200 and answer.json()["name"] == "minh.desk"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and token in cookie
    assert browser.get("/v1/me").json()["name"] == "minh.desk"  # the cookie alone
    assert browser.post("/v1/courses", json={"code": "K9", "title": "x"}).status_code == 201
    assert browser.post("/v1/logout").status_code == 204
    assert browser.get("/v1/me").status_code == 401
    guesser = TestClient(app)
    tries = [
        guesser.post("/v1/login", json={"token": f"ac_guess{n}"}).status_code for n in range(7)
    ]
    assert tries == [401] * 5 + [429] * 2
    # Throttled, even the right token waits: a guess that happens to be right teaches nothing.
    assert guesser.post("/v1/login", json={"token": token}).status_code == 429


def action_of(path: str, method: str) -> Action:
    if path == "/v1/me":
        return Action.READ
    if path.startswith("/v1/accounts"):
        return Action.MANAGE_ACCOUNTS
    return Action.READ if method in ("GET", "HEAD") else Action.CHANGE


def test_a_coordinator_sees_only_the_points_of_their_provinces(admin: TestClient) -> None:
    assert admin.post("/v1/courses", json={"code": "K1", "title": "Bồi dưỡng"}).status_code == 201
    rows = [r for r in official_points(10) if r["province_code"] in ("01", "38", "79")][:400]
    for row in rows:
        body = {k: v for k, v in row.items() if v not in (None, "")} | {"courses": ["K1"]}
        assert admin.post("/v1/points", json=body).status_code == 201, body
    token = issue(admin, "lan.hanoi", Role.COORDINATOR, ["01", "79"])
    coordinator = TestClient(admin.app, headers=bearer(token))
    page = coordinator.get("/v1/points", params={"limit": 1000}).json()
    theirs = {r["code"] for r in rows if r["province_code"] in ("01", "79")}
    assert {p["code"] for p in page["items"]} == theirs
    assert page["total"] == len(theirs)
    # Asking for another province by name still shows nothing of it.
    assert coordinator.get("/v1/points", params={"province": "38"}).json()["total"] == 0
    other = next(r["code"] for r in rows if r["province_code"] == "38")
    mine = next(iter(sorted(theirs)))
    assert coordinator.get(f"/v1/points/{other}").status_code == 404
    assert coordinator.get(f"/v1/points/{mine}").status_code == 200
    assert admin.get(f"/v1/points/{other}").status_code == 200
    assert coordinator.get("/v1/me").json() == {
        "name": "lan.hanoi",
        "role": "coordinator",
        "provinces": ["01", "79"],
    }


def test_an_account_token_is_shown_once_rotated_and_revoked_and_stored_as_a_hash(
    admin: TestClient, engine: Engine
) -> None:
    first = issue(admin, "minh.desk", Role.OPERATOR, [])
    assert first.startswith("ac_")
    desk = TestClient(admin.app)
    assert desk.get("/v1/me", headers=bearer(first)).json()["name"] == "minh.desk"
    rotated = admin.post("/v1/accounts/minh.desk/token")
    assert rotated.status_code == 201
    second = rotated.json()["token"]
    assert desk.get("/v1/me", headers=bearer(first)).status_code == 403
    assert desk.get("/v1/me", headers=bearer(second)).status_code == 200
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT token_hash FROM account")).scalars().all()
    assert stored == [hash_token(second)]
    revoked = admin.delete("/v1/accounts/minh.desk/token")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert desk.get("/v1/me", headers=bearer(second)).status_code == 403
    (listed,) = admin.get("/v1/accounts").json()
    assert listed["name"] == "minh.desk" and listed["revoked_at"] is not None
    assert "token" not in listed and "token_hash" not in listed
    # Each change went out to the other services in the same transaction: hashes, never tokens.
    grants = [
        decode(AccountGrant, e.payload)
        for e in outbox(engine)
        if e.topic == REGISTRY_ACCOUNTS.name and e.payload is not None
    ]
    assert [(g.name, g.role, g.token_hash) for g in grants] == [
        ("minh.desk", Role.OPERATOR, hash_token(first)),
        ("minh.desk", Role.OPERATOR, hash_token(second)),
        ("minh.desk", Role.OPERATOR, None),
    ]
    # The bootstrap administrator is still itself, and accounts cannot be made twice.
    assert admin.get("/v1/me").json() == {
        "name": "operator",
        "role": "administrator",
        "provinces": [],
    }
    again = admin.post("/v1/accounts", json={"name": "minh.desk", "role": "viewer"})
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"name": "c", "role": "coordinator"}, "string_pattern_mismatch"),
        ({"name": "co.1", "role": "coordinator"}, "a coordinator needs at least one province"),
        ({"name": "v.1", "role": "viewer", "provinces": ["01"]}, "sees every province"),
        ({"name": "c.2", "role": "coordinator", "provinces": ["99"]}, "unknown province"),
        ({"name": "x.1", "role": "owner"}, "enum"),
    ],
)
def test_a_grant_that_does_not_hold_together_is_refused(
    admin: TestClient, body: dict[str, object], reason: str
) -> None:
    response = admin.post("/v1/accounts", json=body)
    assert response.status_code == 422
    assert reason in response.text
    assert admin.get("/v1/accounts").json() == []
