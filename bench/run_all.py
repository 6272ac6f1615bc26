"""Every benchmark (B1-B9), one after the other, written to docs/benchmarks.md.

    uv run python bench/run_all.py                 # full sizes, 3 runs each (about an hour)
    uv run python bench/run_all.py --quick         # small sizes, 1 run: checks the harness
    uv run python bench/run_all.py --only B1 --only B3

Each benchmark is its own script (run alone for details: see their docstrings), started here as a
process of its own with `BENCH_FIGURES` naming a file where it appends its figures
(`harness.record_figure`). Every script starts its own Kafka broker and stops what it started.
"""

import compileall
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypedDict

import typer
from harness import FIGURES_ENV, Figure

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_OUT = REPO / "docs" / "benchmarks.md"


class Replaced(TypedDict):
    figures: list[dict[str, Any]]
    at: str


class Result(TypedDict, total=False):
    figures: list[dict[str, Any]]
    output: str
    at: str
    replaced: Replaced  # the run of the same command before this one, for its figures


@dataclass(frozen=True)
class Bench:
    ids: tuple[str, ...]
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]


# Those least disturbed by other work first: the run's first minutes often share the machine.
BENCHES = (
    Bench(
        ("B8",),
        "registration_import.py",
        ("--runs", "3"),
        ("--sizes", "3555", "20000", "--runs", "1"),
    ),
    Bench(
        ("B5", "B6"),
        "restore_bench.py",
        ("--runs", "3"),
        ("--size", "0.05", "--runs", "1"),
    ),
    Bench(
        ("B5", "B6"),
        "rebuild_bench.py",
        ("--runs", "3"),
        ("--size", "0.05", "--runs", "1"),
    ),
    Bench(
        ("B4",),
        "detection_bench.py",
        ("--runs", "3"),
        ("--size", "0.1", "--runs", "1"),
    ),
    Bench(
        ("B3",),
        "freshness_bench.py",
        ("--samples", "100"),
        ("--size", "0.1", "--samples", "15"),
    ),
    Bench(
        ("B2",),
        "ingest_bench.py",
        ("--runs", "3"),
        ("--size", "0.1", "--runs", "1"),
    ),
    Bench(
        ("B1",),
        "processor_bench.py",
        ("--size", "5", "--runs", "3"),
        ("--size", "0.05", "--runs", "1"),
    ),
    Bench(
        ("B7",),
        "scale_bench.py",
        ("--points", "100000", "--minutes", "10", "--processors", "2"),
        ("--points", "5000", "--minutes", "1.5", "--processors", "2"),
    ),
    Bench(
        ("B9",),
        "scale_bench.py",
        (
            *("--points", "10000", "--points", "30000"),
            *("--points", "100000", "--points", "300000"),
            *("--minutes", "3", "--processors", "2"),
        ),
        ("--points", "2000", "--points", "5000", "--minutes", "1.5", "--processors", "2"),
    ),
)


def main(
    quick: Annotated[
        bool, typer.Option(help="Small sizes and one run: a check, not a result")
    ] = False,
    only: Annotated[list[str] | None, typer.Option(help="B1 .. B9; repeat for more")] = None,
    out: Annotated[Path, typer.Option(help="Where the results go")] = DEFAULT_OUT,
) -> None:
    chosen = [bench for bench in BENCHES if not only or set(bench.ids) & set(only)]
    _compile_bytecode()
    # Results are kept by command next to the document, so `--only` replaces just its rows.
    store = out.with_suffix(".json")
    results: dict[str, Result] = json.loads(store.read_text()) if only and store.exists() else {}
    began, busy = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        for number, bench in enumerate(chosen):
            figures_file = Path(tmp) / f"figures-{number}.jsonl"
            arguments = bench.quick if quick else bench.full
            command = [sys.executable, str(BENCH / bench.script), *arguments]
            shown = f"uv run python bench/{bench.script} {' '.join(arguments)}"
            print(f"\n### {'/'.join(bench.ids)}: {shown}", flush=True)
            output = _run(command, figures_file)
            lines = figures_file.read_text().splitlines() if figures_file.exists() else []
            result: Result = {
                "figures": [json.loads(line) for line in lines],
                "output": output,
                "at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}, "
                f"commit {_commit()}",
            }
            if shown in results:
                before = results[shown]
                result["replaced"] = {"figures": before["figures"], "at": before["at"]}
            results[shown] = result
            store.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    wall = time.monotonic() - began
    out.write_text(_document(results, quick=quick, wall=wall, load=busy))
    print(f"\nwrote {out} ({wall / 60:.0f} min)")


def _compile_bytecode() -> None:
    """Bytecode for what the services import, as an installed service has it (`bin/_prepare.sh`
    syncs with --compile-bytecode). A clean clone has none, and where PYTHONDONTWRITEBYTECODE is
    set every process the benchmarks start compiled its imports again: a reporting process took
    2.4 s to answer /healthz instead of 1.2 s, which B5's start-up figures measured."""
    subprocess.run(
        ["uv", "sync", "--frozen", "--quiet", "--compile-bytecode"], cwd=REPO, check=True
    )
    for sources in ("libs", "services", "deploy", "clients"):
        compileall.compile_dir(REPO / sources, quiet=1)


def _commit() -> str:
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    )
    return described.stdout.strip() or "unknown"


def _run(command: list[str], figures_file: Path) -> str:
    """Run one benchmark, its output shown as it comes and kept for the document."""
    lines = []
    with subprocess.Popen(
        command,
        cwd=REPO,
        env=os.environ | {FIGURES_ENV: str(figures_file), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if process.returncode:
        lines.append(f"\n(exited with {process.returncode})\n")
    return "".join(lines)


def _document(results: dict[str, "Result"], *, quick: bool, wall: float, load: float) -> str:
    verdict = {True: "met", False: "**missed**", None: "reported"}
    # Each row says when it was measured: `--only` replaces some rows and keeps the others.
    figures = sorted(
        (
            (Figure(**figure), result["at"].split(",")[0], _replaced(result, figure))
            for result in results.values()
            for figure in result["figures"]
        ),
        key=lambda row: row[0].id,
    )
    rows = "\n".join(
        f"| {f.id} | {f.what} | {f.value} | {f.spread} | {f.baseline} | {f.ratio} | {f.target}"
        f" | {verdict[f.met]} | {at} | {replaced} |"
        for f, at, replaced in figures
    )
    sections = "\n\n".join(
        f"### `{command}`\n\n{result['at']}{_replaces(result)}\n\n"
        f"```text\n{result['output'].strip()}\n```"
        for command, result in results.items()
    )
    kind = "`--quick`: small sizes, one run; a check, not a result" if quick else "full sizes"
    return f"""# Benchmarks

Written by `uv run python bench/run_all.py` ({kind}) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC;
the last run took {wall / 60:.0f} minutes (rows measured earlier say when). Every figure is a
median over the runs, with its spread, against a baseline measured in the same run on the same
broker. Nothing here is asserted by the tests.

## Machine

{_machine(load)}

## Figures

| # | what | ours (median) | spread | baseline | ratio | target | | measured | replaces |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

## What each benchmark printed

{sections}
"""


def _replaced(result: Result, figure: dict[str, Any]) -> str:
    """The same figure in the run this one replaced (same command, same id and wording)."""
    before = result.get("replaced")
    if before is None:
        return ""
    for old in before["figures"]:
        if (old["id"], old["what"]) == (figure["id"], figure["what"]):
            return f"{old['value']} ({old['ratio']}), {before['at'].split(',')[0]}"
    return ""


def _replaces(result: Result) -> str:
    before = result.get("replaced")
    return f"; replaces the run of {before['at']}" if before else ""


def _machine(load: float) -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("aiokafka", "faststream", "fastapi", "uvicorn", "pydantic", "sqlalchemy")
    )
    return (
        f"- {os.cpu_count()} cores ({model}), {memory_kb / 2**20:.0f} GiB, {platform.system()}"
        f" {platform.release()}\n"
        f"- Python {platform.python_version()}; {packages}\n"
        f"- load average when the run began: {load:.1f} (other work on the machine skews every"
        " figure; each benchmark's table says how busy the machine was before it started)"
    )


if __name__ == "__main__":
    typer.run(main)
