"""What the benchmarks share: result tables, percentiles, process CPU, a broker of their own,
records produced and drained bare, a bare round trip, py-spy profiles, and how a script runs
its benchmark."""

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.topics import ALL_TOPICS, Topic
from devstack.kafka import Broker, default_cache_dir
from servicekit.provision import ensure_topics

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Where `record` appends figures for bench/run_all.py (JSON lines); unset when run alone.
FIGURES_ENV = "BENCH_FIGURES"


@dataclass(frozen=True)
class Figure:
    """One row of docs/benchmarks.md: a measured figure against its baseline and its target."""

    id: str  # B1 .. B9
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


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int:
    """Resident memory of a process (VmRSS, or VmHWM for the peak), from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field_name} for pid {pid}")


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def metric_value(text: str, name: str) -> float | None:
    """The value of `name` in a service's /metrics text; None if it has none yet."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


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


# --- Kafka without the services: writing the data, and the bare baselines --------------------

ROUNDTRIP = Topic("bench.roundtrip", 1, key="sample number")
Record = tuple[str, bytes, bytes]  # topic, key, value


async def produce_all(
    bootstrap: str,
    records: Sequence[Record],
    *,
    chunk: int = 10_000,
    partitions: Sequence[int] | None = None,
    timestamps: Sequence[int] | None = None,
) -> float:
    """Send with acks=all and idempotence, gathering the futures of each chunk instead of
    waiting for every record; returns the seconds it took. `partitions` and `timestamps` (ms),
    one per record, are the records' own, where the key's partition and the time the topic
    keeps would not do."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    began = time.perf_counter()
    try:
        for start in range(0, len(records), chunk):
            futures = [
                await producer.send(
                    topic,
                    value,
                    key=key,
                    partition=None if partitions is None else partitions[start + n],
                    timestamp_ms=None if timestamps is None else timestamps[start + n],
                )
                for n, (topic, key, value) in enumerate(records[start : start + chunk])
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - began


async def drain_bare(
    bootstrap: str,
    topics: Sequence[Topic],
    *,
    fetch_bytes: int = 1024 * 1024,
    max_records: int | None = None,
) -> tuple[float, int]:
    """A bare consumer (no group) reading every partition of `topics` from the beginning to
    their end offsets as of now, counting the records, decoding none: the seconds it took (the
    consumer's start and stop included) and the count. `fetch_bytes` (per partition; aiokafka's
    default) and `max_records` (per getmany; None: all fetched) as in the reader it stands for."""
    began = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=fetch_bytes,
    )
    await consumer.start()
    count = 0
    try:
        wanted = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        ends = await consumer.end_offsets(wanted)
        remaining = {tp for tp in wanted if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=max_records)
            for records in batches.values():
                count += len(records)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return time.perf_counter() - began, count


async def roundtrip_baseline(
    bootstrap: str, samples: int, *, linger_ms: int, in_turn: bool, warmup: int
) -> list[float]:
    """Bare produce (acks=all, idempotent) -> consume on `ROUNDTRIP`, which the caller creates:
    the seconds from each send to its receipt, a send every 20 ms. `in_turn`: each send waits
    for its acknowledgement and its receipt before the next one; otherwise they go out on the
    clock, as a service's records do. With a `warmup`, a first record is acknowledged before
    (the fresh partition then has its leader) and the first `warmup` samples do not count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=linger_ms
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    if warmup:
        await producer.send_and_wait(ROUNDTRIP.name, b"-1", partition=0)
    arrivals: dict[int, asyncio.Future[float]] = {}
    loop = asyncio.get_running_loop()

    async def read() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    arrival = arrivals.get(int(record.value or b"-1"))
                    if arrival is not None and not arrival.done():
                        arrival.set_result(now)

    reader: asyncio.Task[None] | None = None
    try:
        part = TopicPartition(ROUNDTRIP.name, 0)
        consumer.assign([part])
        await consumer.seek_to_end(part)
        await consumer.position(part)
        reader = asyncio.create_task(read())
        sent: dict[int, float] = {}
        for number in range(warmup + samples):
            arrivals[number] = loop.create_future()
            sent[number] = time.monotonic()
            if in_turn:
                await producer.send_and_wait(ROUNDTRIP.name, str(number).encode(), partition=0)
                await asyncio.wait_for(arrivals[number], 10)
            else:
                await producer.send(ROUNDTRIP.name, str(number).encode(), partition=0)
            await asyncio.sleep(0.02)
        arrived = await asyncio.wait_for(asyncio.gather(*arrivals.values()), 30)
        return [arrived[n] - sent[n] for n in range(warmup, warmup + samples)]
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await producer.stop()
        await consumer.stop()


# --- py-spy: where a service process spends its time -----------------------------------------

SPY_RATE = 200  # samples a second
REPORTS: list[str] = []  # profiles, printed again after the tables


class Spy:
    """`py-spy record --gil` of one process (by the pid this bench started), as collapsed
    stacks: where the process holds the GIL, i.e. where its Python time goes. For `seconds`,
    or until stopped; py-spy pauses the process for each sample unless `nonblocking`."""

    def __init__(
        self, pid: int, out: Path, seconds: float | None = None, *, nonblocking: bool = False
    ) -> None:
        self._duration = None if seconds is None else max(1, int(seconds))
        self._began = time.monotonic()
        self.seconds = float(self._duration or 0)
        self._process = subprocess.Popen(
            [
                *py_spy_command(),
                *("record", "-p", str(pid)),
                *(() if self._duration is None else ("-d", str(self._duration))),
                *("-r", str(SPY_RATE), "--gil"),
                *(("--nonblocking",) if nonblocking else ()),
                *("-f", "raw", "-o", str(out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )

    def wait(self) -> None:
        try:
            self._process.wait(60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        elapsed = time.monotonic() - self._began
        self.seconds = elapsed if self._duration is None else min(self._duration, elapsed)
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes what it has
            self.wait()


Rule = tuple[str, Callable[[str], bool]]


def has(*parts: str) -> Callable[[str], bool]:
    return lambda stack: all(part in stack for part in parts)


def spy_report(raw: Path, title: str, rules: Sequence[Rule], seconds: float | None = None) -> str:
    """Share of the samples per category (the first rule matching the stack wins) and the
    functions with the most samples of their own; with the `seconds` recorded, the share of the
    wall time the process held the GIL."""
    if not raw.exists():
        return f"== {title}: no py-spy output (is py-spy runnable? {' '.join(py_spy_command())})"
    total = 0
    shares: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        joined = ";".join(frames)
        shares[next((name for name, match in rules if match(joined)), "other")] += count
        own[frames[-1]] += count
    if total == 0:
        return f"== {title}: no samples"
    held = f"   {total} samples with the GIL held"
    if seconds is not None:
        possible = seconds * SPY_RATE
        held += f" of ~{possible:.0f} possible ({100 * total / possible:.0f}% of the wall time)"
    lines = [f"== {title}", held]
    lines += [f"   {100 * count / total:5.1f}%  {label}" for label, count in shares.most_common()]
    lines.append("   functions with the most own samples:")
    lines += [f"   {100 * count / total:5.1f}%  {name}" for name, count in own.most_common(15)]
    return "\n".join(lines)


def _frame(text: str) -> str:
    name, _, where = text.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].removesuffix(')')})" if where else name


# Where the attendance process's time goes while it processes heartbeats (the ingest adds its
# own rules in front: one process does both).
PROCESSOR_RULES: list[Rule] = [
    (
        "attendance records: SQLAlchemy compiling the multi-row upsert",
        has("upsert (", "_compile_w_cache"),
    ),
    ("attendance records: upsert, the rest (execute, sqlite)", has("upsert (")),
    ("attendance records: record_of", has("record_of")),
    (
        "processor: transactions (send, offsets, commit)",
        has("Processor._commit", "PartitionWriter.commit"),
    ),
    ("processor: encode snapshot/status (msgspec)", has("Processor._commit", "encoding.py")),
    ("processor: _commit, the rest", has("Processor._commit")),
    ("processor: quality.flagged", has("Processor.apply", "flagged (")),
    (
        "processor: domain.on_heartbeat (state machine)",
        has("Processor.apply", "on_heartbeat ("),
    ),
    ("processor: watermarks (clock, expiry)", has("Processor.apply", "on_watermark")),
    (
        "processor: Tracker.on_beat, the rest (_store, wheel)",
        has("Processor.apply", "Tracker.on_beat"),
    ),
    ("processor: decode Heartbeat (msgspec)", has("Processor.apply", "heartbeat_of")),
    ("processor: apply, the rest", has("Processor.apply")),
    ("faststream subscriber: uuid4 per record of a batch", has("consume", "faststream", "uuid4")),
    ("faststream subscriber: the rest (parser, middlewares, fetch)", has("faststream", "consume")),
    ("/metrics scrape", has("generate_latest")),
    ("HTTP (uvicorn, FastAPI)", has("uvicorn/protocols")),
    ("aiokafka background (fetcher, sender, connections)", has("aiokafka")),
]


# --- running one benchmark -------------------------------------------------------------------

Runner = Callable[[argparse.Namespace, Path], list[Table]]


def size_and_runs(
    doc: str | None, size_help: str, runs_help: str | None = None
) -> argparse.ArgumentParser:
    """The command line of a script with `--size` and `--runs`, described by the first
    paragraph of its docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("--size", type=float, default=1.0, help=size_help)
    parser.add_argument("--runs", type=int, default=3, help=runs_help)
    return parser


def run_noting_load(name: str, runner: Runner, args: argparse.Namespace) -> None:
    """Run one benchmark in a temporary directory. Each of its tables notes the wall time and
    how busy the machine already was; they are shown again at the end, then the profiles."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        # Other work on the machine skews everything: say how much there was.
        busy_before = machine_busy()
        time.sleep(1.0)
        elsewhere = machine_busy() - busy_before
        load = os.getloadavg()[0]
        began = time.perf_counter()
        tables = runner(args, Path(tmp))
        for table in tables:
            table.notes.append(
                f"benchmark wall time {time.perf_counter() - began:.0f} s; before it started"
                f" the machine was already {elsewhere:.1f} of {os.cpu_count()} cores busy"
                f" (load average {load:.1f})"
            )
            table.show()
    print("\n\n=========== summary")
    for table in tables:
        table.show()
    for report in REPORTS:
        print("\n" + report)


def run_after_machine_facts(name: str, runner: Runner, args: argparse.Namespace) -> None:
    """Print the date, the cores, the load and the memory, then run one benchmark in a
    temporary directory, show its tables and say how long it took."""
    # aiokafka logs every retry of a fresh partition without a leader yet; the retries succeed.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    print(_machine_facts())
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench-reporting-{name}-") as tmp:
        for table in runner(args, Path(tmp)):
            table.show()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"  * {name}: {time.perf_counter() - began:.0f} s in all; load average {load}")


def _machine_facts() -> str:
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; nproc {os.cpu_count()}; load average {load}\n"
        f"{memory.rstrip()}"
    )
