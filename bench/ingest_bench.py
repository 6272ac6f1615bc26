"""The attendance ingest against a real Kafka broker: POST /v1/heartbeats requests/s, latency.

    uv run python bench/ingest_bench.py [--size FACTOR] [--runs 3] [--py-spy]
        [--client raw|httpx] [--clients 1] [--concurrency 64] [--rate 711]

`POST /v1/heartbeats` requests/s and latency from a load generator with 64 requests in flight
(one keep-alive connection each) for 500 points (per-point rate limit raised for the bench),
against the same generator on a trivial ASGI app (202, no work) and on a FastAPI app with the
same route signature and no work, served by the same uvicorn. The default generator is a
minimal HTTP/1.1 client on asyncio streams (`--client raw`): httpx with 64 connections in one
pool spends more CPU in httpcore's pool bookkeeping than the server spends answering;
`--client httpx` uses one AsyncClient per connection instead. CPU of each process and of the
machine over the window say which side bounds the rate.

`--py-spy` records the attendance process (`py-spy record --gil`; py-spy on PATH, else
`uvx py-spy`) while it takes the ingest load, and prints where the time with the GIL held goes.

It starts its own single-node Kafka broker on 127.0.0.1 (devstack), creates the topics, and
stops everything it started (broker, service processes, the trivial HTTP servers) even on
error. `--size 0.05` shrinks the data and the durations for a quick check. Medians and spread
over `--runs`, against the baselines measured in the same run. The table ends with how busy
the machine already was before the benchmark started: other work on the machine skews every
number here.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from harness import (
    PROCESSOR_RULES,
    REPORTS,
    Figure,
    Rule,
    Spy,
    Table,
    cpu_seconds,
    has,
    kafka,
    machine_busy,
    med,
    metric_value,
    pct,
    record_figure,
    run_noting_load,
    size_and_runs,
    spread,
    spy_report,
    step,
)

from attendance.ingest import Accepted, HeartbeatIn
from devstack.ports import free_port
from devstack.services import ServiceProcess, running_services, start_in, wait_healthy
from devstack.simulate import CoursePlan, register_course

# The ingest's own parts before the processor's: the first rule that matches a stack wins.
INGEST_RULES: list[Rule] = [
    (
        "ingest: dependencies (bearer, token hash, registry lookup, threadpool hop)",
        has("solve_dependencies"),
    ),
    ("ingest: publish heartbeat (faststream + aiokafka)", has("_publish_all")),
    ("ingest: handler, the rest (rate limit, admission, Heartbeat model)", has("post_heartbeat")),
    (
        "ingest: FastAPI request handler, the rest (body parse + validation, response)",
        has("get_request_handler"),
    ),
    ("HTTP: FastAPI/Starlette middlewares + routing", has("FastAPI.__call__")),
    ("HTTP: uvicorn h11 protocol", has("uvicorn/protocols")),
    ("anyio threadpool (sync dependency)", has("anyio")),
    *PROCESSOR_RULES,
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def noop_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The baseline server: reads the body, answers 202 with a received_at, does nothing else.

    Served by `python -m uvicorn ingest_bench:noop_app` from bench/ (`baseline_server`)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body", False))
    body = json.dumps({"received_at": datetime.now(UTC).isoformat()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _fastapi_noop() -> FastAPI:
    """A second baseline: the same route signature as ours (body model, bearer dependency,
    response model) with no authentication lookup, no rate limit and no Kafka."""
    app = FastAPI()
    bearer = HTTPBearer(auto_error=False)

    @app.post("/v1/heartbeats", status_code=202)
    async def post_heartbeat(
        heartbeat: HeartbeatIn,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Accepted:
        return Accepted(
            received_at=datetime.now(UTC),
            session_code=heartbeat.session_code or "",
            heartbeat_interval_s=5.0,
        )

    return app


fastapi_noop_app = _fastapi_noop()


@dataclass
class LoadSpec:
    url: str
    points: list[tuple[str, str]]  # (code, token)
    session: str
    concurrency: int
    start_at: float  # wall clock
    warmup: float
    duration: float
    seq_base: int
    client: str  # "raw" or "httpx"
    rate: float | None = None  # requests/s in all, paced; None: as fast as answers come


@dataclass
class LoadResult:
    latencies: list[float]
    ok: int
    other: dict[int, int]
    cpu: float  # client CPU seconds within the window
    window: float


class RawHttp:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a load generator that costs a
    few tens of microseconds of CPU per request, so a 2-core machine is left to the server."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self._host, self._port = host, int(port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, token: str) -> int:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if close:
            await self.close()
        return int(head[9:12])

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None


class HttpxHttp:
    """httpx, one AsyncClient (one connection) per worker: httpcore's pool scans every
    connection for every request, which with 64 connections in one pool costs more CPU than
    the requests themselves."""

    def __init__(self, url: str) -> None:
        self._client = httpx.AsyncClient(
            base_url=url, timeout=30, limits=httpx.Limits(max_connections=1)
        )

    async def post(self, path: str, body: bytes, token: str) -> int:
        response = await self._client.post(
            path,
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        return response.status_code

    async def close(self) -> None:
        await self._client.aclose()


async def load(spec: LoadSpec) -> LoadResult:
    latencies: list[float] = []
    other: dict[int, int] = {}
    ok = 0
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    loop = asyncio.get_running_loop()
    begin = loop.time() + spec.warmup
    end = begin + spec.duration
    marks: dict[str, float] = {}

    owners = [
        owned for i in range(spec.concurrency) if (owned := spec.points[i :: spec.concurrency])
    ]
    # Paced: each worker keeps its own schedule, staggered, so the server sees a steady rate.
    gap = len(owners) / spec.rate if spec.rate else 0.0

    async def worker(index: int, owned: list[tuple[str, str]]) -> None:
        nonlocal ok
        http: RawHttp | HttpxHttp = (
            RawHttp(spec.url) if spec.client == "raw" else HttpxHttp(spec.url)
        )
        seq = dict.fromkeys((code for code, _ in owned), spec.seq_base)
        due = loop.time() + gap * index / len(owners)
        try:
            for code, token in itertools.cycle(owned):
                if gap:
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    due += gap
                started = loop.time()
                if started >= end:
                    return
                seq[code] += 1
                body = json.dumps(
                    {
                        "point_code": code,
                        "session_code": spec.session,
                        "seq": seq[code],
                        "sent_at": datetime.now(UTC).isoformat(),
                        # A count that changes now and then, as real rooms do.
                        "learners": 30 + (seq[code] // 20) % 3,
                    }
                ).encode()
                try:
                    status_code = await http.post("/v1/heartbeats", body, token)
                except (OSError, asyncio.IncompleteReadError, httpx.HTTPError):
                    status_code = 0
                finished = loop.time()
                if begin <= started and finished <= end:
                    if status_code == 202:
                        ok += 1
                        latencies.append(finished - started)
                    else:
                        other[status_code] = other.get(status_code, 0) + 1
        finally:
            await http.close()

    async def clock() -> None:
        await asyncio.sleep(max(0.0, begin - loop.time()))
        marks["cpu0"] = time.process_time()
        await asyncio.sleep(max(0.0, end - loop.time()))
        marks["cpu1"] = time.process_time()

    await asyncio.gather(clock(), *(worker(index, owned) for index, owned in enumerate(owners)))
    return LoadResult(latencies, ok, other, marks["cpu1"] - marks["cpu0"], spec.duration)


def load_in_process(spec: LoadSpec) -> LoadResult:
    return asyncio.run(load(spec))


@dataclass
class Measured:
    rps: float
    p50: float
    p99: float
    other: dict[int, int]
    client_cpu: float  # cores busy
    server_cpu: float  # cores busy
    broker_cpu: float  # cores busy
    others_cpu: float  # the other services (registration, reporting, attendance if idle)
    machine_cpu: float  # the whole machine


def measure(
    url: str,
    points: list[tuple[str, str]],
    session: str,
    args: argparse.Namespace,
    server_pid: int,
    broker_pid: int,
    other_pids: list[int],
    duration: float,
    seq_base: int,
    spy_out: Path | None = None,
    rate: float | None = None,
) -> Measured:
    clients = args.clients
    warmup = 2.0
    start_at = time.time() + (4.0 if clients > 1 else 0.2)
    specs = [
        LoadSpec(
            url,
            points[i::clients],
            session,
            max(1, args.concurrency // clients),
            start_at,
            warmup,
            duration,
            seq_base,
            args.client,
            None if rate is None else rate / clients,
        )
        for i in range(clients)
    ]

    def sample() -> tuple[float, float, float, float]:
        return (
            cpu_seconds(server_pid),
            cpu_seconds(broker_pid),
            sum(cpu_seconds(pid) for pid in other_pids),
            machine_busy(),
        )

    # CPU of the server, the broker, the other services and the machine over the window.
    marks: list[tuple[float, float, float, float]] = []
    spies: list[Spy] = []

    def window_starts() -> None:
        marks.append(sample())
        if spy_out is not None:
            spies.append(Spy(server_pid, spy_out, duration - 1))

    if clients == 1:
        results: list[LoadResult] = []

        async def with_sampling() -> None:
            task = asyncio.create_task(load(specs[0]))
            await asyncio.sleep(max(0.0, start_at + warmup - time.time()))
            window_starts()
            await asyncio.sleep(max(0.0, start_at + warmup + duration - time.time()))
            marks.append(sample())
            results.append(await task)

        try:
            asyncio.run(with_sampling())
        finally:
            for spy in spies:
                spy.wait()
    else:
        with ProcessPoolExecutor(clients, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(load_in_process, spec) for spec in specs]
            try:
                time.sleep(max(0.0, start_at + warmup - time.time()))
                window_starts()
                time.sleep(max(0.0, start_at + warmup + duration - time.time()))
                marks.append(sample())
            finally:
                for spy in spies:
                    spy.wait()
            results = [f.result() for f in futures]
    latencies = [lat for r in results for lat in r.latencies]
    other: dict[int, int] = {}
    for r in results:
        for code, count in r.other.items():
            other[code] = other.get(code, 0) + count
    busy = [(after - before) / duration for before, after in zip(*marks, strict=True)]
    return Measured(
        rps=sum(r.ok for r in results) / duration,
        p50=pct(latencies, 50) * 1000,
        p99=pct(latencies, 99) * 1000,
        other=other,
        client_cpu=sum(r.cpu for r in results) / duration,
        server_cpu=busy[0],
        broker_cpu=busy[1],
        others_cpu=busy[2],
        machine_cpu=busy[3],
    )


@contextlib.contextmanager
def baseline_server(app: str, log_dir: Path) -> Iterator[tuple[str, int]]:
    """`python -m uvicorn ingest_bench:<app>` from bench/ (where `harness` imports from),
    with the same flags as the services; stopped on the way out."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{app}.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                f"{Path(__file__).stem}:{app}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=Path(__file__).resolve().parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{app} exited: see {log_dir / f'{app}.log'}")
            with contextlib.suppress(httpx.TransportError):
                httpx.post(url + "/v1/heartbeats", json={}, timeout=2)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{app} not serving after 60 s")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def prepare_ingest(
    services: dict[str, ServiceProcess], points: int
) -> tuple[list[tuple[str, str]], str]:
    plan = CoursePlan(course_code="BENCHI", session_code="BENCHI-S1", points=points, never_join=0)
    async with httpx.AsyncClient(base_url=services["registration"].url, timeout=60) as reg:
        registered = await register_course(reg, plan)
    async with httpx.AsyncClient(base_url=services["attendance"].url, timeout=10) as http:
        deadline = time.monotonic() + 60
        for point in registered:
            while True:
                point.seq = 0
                response = await http.post(
                    "/v1/heartbeats",
                    json={
                        "point_code": point.code,
                        "session_code": plan.session_code,
                        "seq": 0,
                        "sent_at": datetime.now(UTC).isoformat(),
                        "learners": 30,
                    },
                    headers={"Authorization": f"Bearer {point.token}"},
                )
                if response.status_code == 202:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"attendance never accepted {point.code}: {response.text}")
                await asyncio.sleep(0.3)
    return [(p.code, p.token) for p in registered], plan.session_code


@contextlib.contextmanager
def ingest_instance(bootstrap: str, tmp: Path, env: dict[str, str]) -> Iterator[ServiceProcess]:
    """An attendance instance that only takes heartbeats in; stopped on the way out."""
    service = start_in(
        "attendance",
        bootstrap=bootstrap,
        data_dir=tmp / "ingest",
        extra_env=env | {"ATTENDANCE_PROCESSOR": "false"},
    )
    try:
        wait_healthy(service)
        yield service
    finally:
        service.stop()


def wait_processed(
    processor: ServiceProcess, *ingest: ServiceProcess, patience: float = 90
) -> None:
    """Until the processor has caught up with what it and the `ingest` instances accepted, so
    runs do not overlap."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        texts = [httpx.get(s.url + "/metrics", timeout=5).text for s in (processor, *ingest)]
        accepted = sum(metric_value(text, "heartbeats_accepted_total") or 0 for text in texts)
        processed = metric_value(texts[0], "processor_heartbeats_total") or 0
        if processed >= accepted:
            return
        time.sleep(0.5)
    step("ingest: the processor had not caught up; carrying on")


def run_ingest(args: argparse.Namespace, tmp: Path) -> list[Table]:
    points = max(50, int(500 * args.size))
    duration = max(3.0, 12.0 * min(1.0, args.size * 4))
    rows: dict[str, list[Measured]] = {"noop": [], "fastapi": [], "ingest": [], "ours": []}
    paced: list[Measured] = []  # ours at the course's rate
    extra = {
        "attendance": {
            "ATTENDANCE_RATE_LIMIT_PER_SECOND": "1000000",
            "ATTENDANCE_RATE_LIMIT_BURST": "1000000",
        }
    }
    with (
        kafka(tmp) as broker,
        running_services(
            bootstrap=broker.bootstrap, data_dir=tmp / "stack", extra_env=extra
        ) as services,
    ):
        step(f"ingest: registering {points} points")
        registered, session = asyncio.run(prepare_ingest(services, points))
        attendance = services["attendance"]
        with (
            baseline_server("noop_app", tmp / "logs") as (noop_url, noop_pid),
            baseline_server("fastapi_noop_app", tmp / "logs") as (fa_url, fa_pid),
            ingest_instance(broker.bootstrap, tmp, extra["attendance"]) as ingest,
        ):
            for run in range(args.runs):
                seq_base = (run + 1) * 10_000_000
                for label, url, pid in (
                    ("noop", noop_url, noop_pid),
                    ("fastapi", fa_url, fa_pid),
                    ("ingest", ingest.url, ingest.process.pid),
                    ("ours", attendance.url, attendance.process.pid),
                ):
                    step(f"ingest: run {run + 1}/{args.runs}: {label} for {duration:.0f} s")
                    servers = [*services.values(), ingest]
                    others = [s.process.pid for s in servers if s.process.pid != pid]
                    spy_out = None
                    if args.py_spy and label == "ours" and run == 0:
                        spy_out = tmp / "spy-ingest.raw"
                    rows[label].append(
                        measure(
                            url,
                            registered,
                            session,
                            args,
                            pid,
                            broker.pid,
                            others,
                            duration,
                            seq_base,
                            spy_out,
                        )
                    )
                    if spy_out is not None:
                        report = spy_report(
                            spy_out,
                            "ingest: py-spy --gil of the attendance process under load (run 1)",
                            INGEST_RULES,
                            duration - 1,
                        )
                        print("\n" + report, flush=True)
                        REPORTS.append(report)
                    if label in ("ingest", "ours"):
                        wait_processed(attendance, ingest)
                step(f"ingest: run {run + 1}/{args.runs}: ours at {args.rate:g} req/s")
                others = [s.process.pid for s in [*services.values(), ingest] if s != attendance]
                paced.append(
                    measure(
                        attendance.url,
                        registered,
                        session,
                        args,
                        attendance.process.pid,
                        broker.pid,
                        others,
                        duration,
                        seq_base + 5_000_000,
                        rate=args.rate,
                    )
                )
                wait_processed(attendance, ingest)
    base = med([r.rps for r in rows["noop"]])
    table = Table(
        f"ingest: POST /v1/heartbeats, {points} points, {args.concurrency} in flight, "
        f"{args.clients} {args.client} client process(es), {duration:.0f} s windows"
        f" ({args.runs} runs)",
        (
            "server",
            "req/s",
            "spread",
            "p50 ms",
            "p99 ms",
            "ratio",
            "client",
            "server",
            "broker",
            "other svcs",
            "machine",
            "non-202",
        ),
    )
    labels = {
        "noop": "baseline: trivial ASGI 202 (uvicorn)",
        "fastapi": "FastAPI, same route signature, no work",
        "ingest": "ours: an ingest instance (processor apart)",
        "ours": "ours: attendance (ingest + processor)",
    }
    for label, measured in rows.items():
        other: dict[int, int] = {}
        for m_ in measured:
            for code, count in m_.other.items():
                other[code] = other.get(code, 0) + count
        rps = med([m_.rps for m_ in measured])
        table.rows.append(
            (
                labels[label],
                f"{rps:,.0f}",
                spread([m_.rps for m_ in measured], "{:,.0f}"),
                f"{med([m_.p50 for m_ in measured]):.1f}",
                f"{med([m_.p99 for m_ in measured]):.1f}",
                f"{rps / base:.2f}",
                f"{med([m_.client_cpu for m_ in measured]):.2f}",
                f"{med([m_.server_cpu for m_ in measured]):.2f}",
                f"{med([m_.broker_cpu for m_ in measured]):.2f}",
                f"{med([m_.others_cpu for m_ in measured]):.2f}",
                f"{med([m_.machine_cpu for m_ in measured]):.2f}",
                ",".join(f"{c}:{n}" for c, n in sorted(other.items())) or "0",
            )
        )
    table.notes += [
        "per-point rate limit raised for the bench (ATTENDANCE_RATE_LIMIT_PER_SECOND and"
        " _BURST = 1e6): 500 points at these rates is far above the default 1/s per point",
        "client .. machine = cores busy (CPU seconds / wall seconds over the window, /proc);"
        " other svcs = the three services' processes other than the server measured (for"
        " the baselines that includes an idle attendance); the machine has"
        f" {os.cpu_count()} cores",
        "an ingest instance: attendance with ATTENDANCE_PROCESSOR=false, the heartbeats it"
        " accepts processed by the attendance instance beside it (under other svcs), as"
        " ingest and processors are scaled apart (B7)",
        "attendance (ingest + processor): one process, the default, so its server cores"
        " include processing the heartbeats it accepts",
    ]
    p99s = [m_.p99 for m_ in paced]
    table.rows.append(
        (
            f"ours paced at the course's rate, {args.rate:g} req/s",
            f"{med([m_.rps for m_ in paced]):,.0f}",
            spread([m_.rps for m_ in paced], "{:,.0f}"),
            f"{med([m_.p50 for m_ in paced]):.1f}",
            f"{med(p99s):.1f}",
            "—",
            f"{med([m_.client_cpu for m_ in paced]):.2f}",
            f"{med([m_.server_cpu for m_ in paced]):.2f}",
            f"{med([m_.broker_cpu for m_ in paced]):.2f}",
            f"{med([m_.others_cpu for m_ in paced]):.2f}",
            f"{med([m_.machine_cpu for m_ in paced]):.2f}",
            str(sum(sum(m_.other.values()) for m_ in paced)),
        )
    )
    # The one process of the default first, its wording and target as before.
    for label, what, target in (("ours", "", 0.4), ("ingest", ", an ingest instance", None)):
        ours = [m_.rps for m_ in rows[label]]
        record_figure(
            Figure(
                "B2",
                f"ingest: POST /v1/heartbeats/s at saturation ({args.concurrency} in flight)"
                + what,
                f"{med(ours):,.0f}/s",
                spread(ours, "{:,.0f}") + "/s",
                f"{base:,.0f}/s (same uvicorn, trivial 202 app)",
                f"{med(ours) / base:.2f} of the baseline",
                "reported" if target is None else f">= {target}",
                None if target is None else med(ours) / base >= target,
            )
        )
    record_figure(
        Figure(
            "B2",
            f"ingest: latency at the course's rate ({args.rate:g} req/s)",
            f"p99 {med(p99s):.1f} ms",
            f"p99 {spread(p99s, '{:.1f}')} ms; p50 {med([m_.p50 for m_ in paced]):.1f} ms",
            "—",
            "—",
            "p99 < 50 ms",
            med(p99s) < 50,
        )
    )
    return [table]


def main() -> None:
    parser = size_and_runs(__doc__, "scale sizes and durations")
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="py-spy the attendance process (py-spy on PATH, else uvx py-spy)",
    )
    parser.add_argument("--clients", type=int, default=1, help="ingest load processes")
    parser.add_argument("--concurrency", type=int, default=64, help="ingest requests in flight")
    parser.add_argument(
        "--rate", type=float, default=711.0, help="ingest: the course's rate, for latency"
    )
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="ingest load generator"
    )
    run_noting_load("ingest", run_ingest, parser.parse_args())


if __name__ == "__main__":
    main()
