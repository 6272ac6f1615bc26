"""`registration-admin`: operator tasks against a running registration service."""

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from contracts.accounts import Role
from registration.official import as_csv, official_points

app = typer.Typer(
    help="Operator tasks against a running registration service.", no_args_is_help=True
)

Url = Annotated[str, typer.Option(envvar="REGISTRATION_URL", help="Base URL of the service")]
Token = Annotated[str, typer.Option(envvar="REGISTRATION_OPERATOR_TOKEN", help="Operator token")]


@app.command("seed-official")
def seed_official(
    course: Annotated[str, typer.Option(help="Course every point is enrolled in")],
    tokens_out: Annotated[Path, typer.Option(help="Where to write the new points' tokens (CSV)")],
    url: Url = "http://127.0.0.1:8001",
    token: Token = "dev-operator-token",
    teams: Annotated[
        Path | None, typer.Option(help="CSV of Teams sites in the import format")
    ] = None,
    learners: Annotated[int, typer.Option(help="Expected learners per official point")] = 28,
) -> None:
    """Register all 34 provinces and 3,321 communes, wards and special zones (plus any Teams
    sites given) as points of COURSE in one import; write their tokens for distribution."""
    body = as_csv(official_points(learners))
    if teams is not None:
        body += b"\n".join(teams.read_bytes().decode("utf-8-sig").encode().splitlines()[1:]) + b"\n"
    response = httpx.post(
        f"{url}/v1/points/import",
        params={"course": course},
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "text/csv",
            "Accept": "text/csv",
        },
        timeout=300,
    )
    if response.status_code != 200:
        typer.echo(f"import refused ({response.status_code}): {response.text[:4000]}", err=True)
        raise typer.Exit(1)
    tokens_out.write_bytes(response.content)
    created, updated = response.headers["X-Import-Created"], response.headers["X-Import-Updated"]
    typer.echo(f"{created} points created, {updated} updated; tokens in {tokens_out}")


accounts = typer.Typer(help="The desk's named accounts (an administrator's token).")
app.add_typer(accounts, name="accounts")


def _answer(method: str, url: str, token: str, path: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("timeout", 30)
    response = httpx.request(
        method, f"{url}{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
    )
    if response.status_code >= 400:
        typer.echo(f"refused ({response.status_code}): {response.text[:2000]}", err=True)
        raise typer.Exit(1)
    return response


def _call(method: str, url: str, token: str, path: str, **kwargs: Any) -> Any:
    return _answer(method, url, token, path, **kwargs).json()


@accounts.command("issue")
def issue(
    name: Annotated[str, typer.Argument(help="Login name: lower case, digits, . _ -")],
    role: Annotated[Role, typer.Option(help="What the account may do")],
    province: Annotated[
        list[str] | None, typer.Option(help="A coordinator's province code (repeatable)")
    ] = None,
    full_name: Annotated[str, typer.Option(help="The person's name, as the desk knows it")] = "",
    url: Url = "http://127.0.0.1:8001",
    token: Token = "dev-operator-token",
) -> None:
    """Issue an account; its token is printed once, on standard output, and never again."""
    body = {"name": name, "role": role.value, "provinces": province or [], "full_name": full_name}
    issued = _call("POST", url, token, "/v1/accounts", json=body)
    typer.echo(issued["token"])


@accounts.command("list")
def list_accounts(url: Url = "http://127.0.0.1:8001", token: Token = "dev-operator-token") -> None:
    """Every account: name, role, provinces, and whether it is revoked."""
    for account in _call("GET", url, token, "/v1/accounts"):
        state = f"revoked {account['revoked_at']}" if account["revoked_at"] else "active"
        provinces = ",".join(account["provinces"]) or "-"
        typer.echo(f"{account['name']}\t{account['role']}\t{provinces}\t{state}")


@accounts.command("rotate")
def rotate(
    name: str, url: Url = "http://127.0.0.1:8001", token: Token = "dev-operator-token"
) -> None:
    """A new token for the account (printed once); the old one stops working at once."""
    typer.echo(_call("POST", url, token, f"/v1/accounts/{name}/token")["token"])


@accounts.command("revoke")
def revoke(
    name: str, url: Url = "http://127.0.0.1:8001", token: Token = "dev-operator-token"
) -> None:
    """Revoke the account: its token stops working at once; the record stays."""
    _call("DELETE", url, token, f"/v1/accounts/{name}/token")
    typer.echo(f"{name} revoked")


@app.command("sheets")
def sheets(
    course: Annotated[str, typer.Argument(help="The course whose points get their sheets")],
    out: Annotated[Path, typer.Option(help="Where to write the PDF")],
    province: Annotated[
        str | None, typer.Option(help="Only this province's points, e.g. for its coordinator")
    ] = None,
    again: Annotated[
        bool,
        typer.Option("--again", help="Also points printed before: their old sheets stop working"),
    ] = False,
    url: Url = "http://127.0.0.1:8001",
    token: Token = "dev-operator-token",
) -> None:
    """Print the token sheets: one A4 page a point, its personal link as a QR code, a new
    token on each (the point's previous one stops working)."""
    params: dict[str, str | bool] = {"again": again}
    if province is not None:
        params["province"] = province
    answer = _answer("POST", url, token, f"/v1/courses/{course}/sheets", params=params, timeout=300)
    out.write_bytes(answer.content)
    printed, replaced = answer.headers["X-Sheets-Printed"], answer.headers["X-Sheets-Replaced"]
    skipped = answer.headers["X-Sheets-Skipped"]
    typer.echo(
        f"{printed} sheets in {out} ({replaced} replacing sheets printed before);"
        f" {skipped} points left out, printed before (--again prints them anew)"
    )
