"""`registration-admin`: operator tasks against a running registration service."""

from pathlib import Path
from typing import Annotated

import httpx
import typer

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
