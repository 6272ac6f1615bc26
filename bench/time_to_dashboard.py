"""Seconds from `bin/run` to a full dashboard, and from Ctrl-C to everything stopped.

"Full": reporting's totals of the session on air show at least 95 % of the points connected and
85 % of the expected learners present. Run it from the checkout to measure (a fresh clone with
an empty uv cache and no `.cache/kafka` is the cold case):

    uv run python bench/time_to_dashboard.py [--repo PATH] [-- extra bin/run options]
"""

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

REPORTING = "http://127.0.0.1:8003"


def main(
    repo: Annotated[Path, typer.Option(help="Checkout whose bin/run is timed")] = Path("."),
    patience: Annotated[float, typer.Option(help="Give up after this many seconds")] = 900.0,
    run_options: Annotated[list[str] | None, typer.Argument(help="Options for bin/run")] = None,
) -> None:
    log = Path("/tmp/time-to-dashboard.log").open("wb")  # noqa: SIM115 - kept for the run
    began = time.monotonic()
    # `script` gives bin/run a terminal, as a person running it has.
    command = " ".join(["bin/run", *(run_options or [])])
    run = subprocess.Popen(
        ["script", "-qfec", command, "/dev/null"],
        cwd=repo,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=os.environ | {"COLUMNS": "120"},
    )
    try:
        full = _until_full(began, patience)
        typer.echo(f"full dashboard {full:.1f} s after the command")
    finally:
        stopping = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        run.wait(120)
        typer.echo(
            f"stopped {time.monotonic() - stopping:.1f} s after Ctrl-C (exit {run.returncode})"
        )


def _until_full(began: float, patience: float) -> float:
    while time.monotonic() - began < patience:
        totals = _totals_on_air()
        if (
            totals is not None
            and totals["connected"] >= 0.95 * totals["registered"]
            and totals["learners_present"] >= 0.85 * totals["learners_expected"]
        ):
            return time.monotonic() - began
        time.sleep(0.5)
    raise SystemExit(f"no full dashboard within {patience:.0f} s; see /tmp/time-to-dashboard.log")


def _totals_on_air() -> dict[str, int] | None:
    try:
        sessions = httpx.get(f"{REPORTING}/v1/sessions", timeout=2).json()
        if not sessions:
            return None
        code = sessions[-1]["code"]  # newest first: the last is the first session
        answer = httpx.get(f"{REPORTING}/v1/sessions/{code}/totals", timeout=2)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


if __name__ == "__main__":
    typer.run(main)
