"""What the benchmarks share: result tables, percentiles, process CPU, a broker of their own."""

import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contracts.topics import ALL_TOPICS, Topic
from devstack.kafka import Broker, default_cache_dir
from servicekit.provision import ensure_topics

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Where `record` appends figures for bench/run_all.py (JSON lines); unset when run alone.
FIGURES_ENV = "BENCH_FIGURES"


@dataclass(frozen=True)
class Figure:
    """One row of docs/benchmarks.md: a measured figure against its baseline and its target."""

    id: str  # B1 .. B8
    what: str
    value: str  # the median, with its unit
    spread: str  # min to max over the runs
    baseline: str  # the baseline's median, with its unit, or "—"
    ratio: str  # ours against the baseline, said the way the target is said
    target: str
    met: bool | None  # None: reported, no target


def record_figure(figure: Figure) -> None:
    """Print the figure, and append it to the run's figures file when there is one."""
    print(f"  {figure.id} {figure.what}: {figure.value} ({figure.ratio}; target {figure.target})")
    path = os.environ.get(FIGURES_ENV)
    if path:
        with Path(path).open("a") as out:
            out.write(json.dumps(figure.__dict__, ensure_ascii=False) + "\n")


@dataclass
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def show(self) -> None:
        widths = [
            max(len(self.header[i]), *(len(row[i]) for row in self.rows))
            for i in range(len(self.header))
        ]
        print(f"\n== {self.title}")
        line = "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(self.header, widths, strict=True))
        )
        print(line)
        print("-" * len(line))
        for row in self.rows:
            print(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
        for note in self.notes:
            print(f"  * {note}")
        sys.stdout.flush()


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "-"
    return f"{fmt.format(min(values))} to {fmt.format(max(values))}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def py_spy_command() -> list[str]:
    found = shutil.which("py-spy")
    return [found] if found else ["uvx", "py-spy"]


@contextlib.contextmanager
def kafka(tmp: Path, extra_topics: Sequence[Topic] = ()) -> Iterator[Broker]:
    """A fresh broker in `tmp`, with the project's topics; stopped on the way out, always."""
    broker = Broker.start(default_cache_dir(), tmp / "kafka")
    with broker:
        asyncio.run(ensure_topics(broker.bootstrap, (*ALL_TOPICS, *extra_topics)))
        yield broker
