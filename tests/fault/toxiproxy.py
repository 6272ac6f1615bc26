"""Shopify's toxiproxy: a real TCP proxy that injects faults, run as a process of the test's own.

``bin/test`` builds ``toxiproxy-server`` into ``.cache/bin`` (see ``bin/_prepare.sh``). A test
puts a proxy between a client and a server and then changes what the client's connections see::

    with Toxiproxy() as toxiproxy:
        proxy = toxiproxy.create_proxy("kafka", upstream=broker.bootstrap)
        ...  # the client connects to proxy.listen
        latency = toxiproxy.latency("kafka", 300)
        ...
        toxiproxy.remove_toxic("kafka", latency.name)

Directions: ``downstream`` (toxiproxy's default) is the server -> client bytes, ``upstream`` the
client -> server ones. A toxic acts on each connection through the proxy, open or opened later,
with probability ``toxicity`` per connection.

The calls block. From an async test that is harmless while little data is in flight; with bulk
data buffered in the proxy, call them through ``asyncio.to_thread``, as toxiproxy may wait for a
socket that only the blocked event loop would drain.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import httpx

from devstack.ports import free_port

SERVER = Path(__file__).resolve().parents[2] / ".cache" / "bin" / "toxiproxy-server"
Stream = Literal["upstream", "downstream"]
_START_ATTEMPTS = 3
_LOG_TAIL_BYTES = 4000


class ToxiproxyError(RuntimeError):
    """The server could not be started, or its API refused a request."""


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str
    """``host:port`` that clients connect to; the real port when created with port 0."""
    upstream: str
    enabled: bool

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True)
class Toxic:
    name: str
    type: str
    stream: Stream
    toxicity: float
    attributes: dict[str, Any]


class Toxiproxy:
    """A ``toxiproxy-server`` on a free 127.0.0.1 port, and a client of its REST API.

    ``start()`` (or ``with``) launches it and returns once the API answers; ``stop()`` ends it,
    and with it every proxy and connection. The server's log goes to ``log_path``, else to an
    anonymous file that is quoted when the server fails to start.
    """

    def __init__(
        self, *, server: Path = SERVER, log_path: Path | None = None, start_timeout: float = 10.0
    ) -> None:
        self.server = server
        self.log_path = log_path
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._http: httpx.Client | None = None

    # --- the server process ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API's base URL; valid once started."""
        return str(self._client().base_url)

    def start(self) -> Toxiproxy:
        if self._process is not None:
            raise ToxiproxyError("toxiproxy is already running")
        if not os.access(self.server, os.X_OK):
            raise ToxiproxyError(
                f"no {self.server}: `bin/test` builds it, or run "
                "`PREPARE_FOR_TESTS=1 source bin/_prepare.sh`"
            )
        # Open for as long as the server runs: stop() closes it.
        log_path = self.log_path
        self._log = log_path.open("a+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
        try:
            # The free port is only free when probed: another process can take it before the
            # server binds it, and then the server exits at once, so that case is retried.
            for _ in range(_START_ATTEMPTS):
                if self._launch(free_port()):
                    return self
            raise ToxiproxyError(
                f"toxiproxy-server exited {_START_ATTEMPTS} times before serving; its log:\n"
                + self._log_tail()
            )
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server (it shuts down gracefully), SIGKILL if it outlives ``timeout``."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._process is not None:
            _terminate(self._process, timeout)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Toxiproxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def version(self) -> str:
        return str(self._request("GET", "/version").json()["version"])

    # --- proxies ---------------------------------------------------------------------------------

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0") -> Proxy:
        """A proxy from ``listen`` to ``upstream`` (both ``host:port``), enabled.

        Port 0 lets the server pick a free port with no race; the returned ``listen`` has it,
        and the proxy keeps that port when disabled and enabled again.
        """
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        return _proxy(self._request("POST", "/proxies", json=body).json())

    def proxy(self, name: str) -> Proxy:
        return _proxy(self._request("GET", f"/proxies/{name}").json())

    def proxies(self) -> dict[str, Proxy]:
        found = self._request("GET", "/proxies").json()
        return {name: _proxy(fields) for name, fields in found.items()}

    def delete_proxy(self, name: str) -> None:
        """Remove the proxy: its listener closes and its connections are cut."""
        self._request("DELETE", f"/proxies/{name}")

    def disable(self, name: str) -> Proxy:
        """Take the proxy down, as a dead host or a pulled cable looks to a client: every open
        connection is closed (the client reads EOF, or gets a reset when it writes) and new
        connections are refused. The proxy and its toxics stay, for :meth:`enable`."""
        return self._update(name, enabled=False)

    def enable(self, name: str) -> Proxy:
        """Listen again on the same address; new connections go through, old ones stay cut.
        Fails if another process took a port-0 proxy's port while it was down."""
        return self._update(name, enabled=True)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic: a clean slate between tests."""
        self._request("POST", "/reset")

    # --- toxics ----------------------------------------------------------------------------------

    def add_toxic(
        self,
        proxy: str,
        type: str,
        attributes: dict[str, Any],
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> Toxic:
        """Any toxic by its toxiproxy type and attributes; the name defaults to
        ``<type>_<stream>``, so one toxic of a type per direction unless named."""
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        if name is not None:
            body["name"] = name
        return _toxic(self._request("POST", f"/proxies/{proxy}/toxics", json=body).json())

    def latency(
        self,
        proxy: str,
        latency_ms: int,
        jitter_ms: int = 0,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> Toxic:
        """Every chunk of data in ``stream`` arrives ``latency_ms`` +/- ``jitter_ms`` later: a
        slow or distant link. Nothing is lost or reordered."""
        attributes = {"latency": latency_ms, "jitter": jitter_ms}
        return self.add_toxic(
            proxy, "latency", attributes, stream=stream, toxicity=toxicity, name=name
        )

    def timeout(
        self,
        proxy: str,
        timeout_ms: int,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> Toxic:
        """Data in ``stream`` is silently dropped and, after ``timeout_ms``, the connection is
        closed (the client reads EOF). With ``timeout_ms=0`` it is never closed: a black hole,
        where writes succeed and reads hang, as behind a dead router, until the toxic is removed.
        Removing it closes the connections it held; new ones flow."""
        attributes = {"timeout": timeout_ms}
        return self.add_toxic(
            proxy, "timeout", attributes, stream=stream, toxicity=toxicity, name=name
        )

    def reset_peer(
        self,
        proxy: str,
        timeout_ms: int = 0,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> Toxic:
        """At the first data in ``stream`` after it is added, wait ``timeout_ms`` and then drop
        the connection: "connection reset by peer" (a TCP RST) on connections opened while the
        toxic exists; connections that were already open are closed with a plain EOF. An idle
        connection is left alone."""
        attributes = {"timeout": timeout_ms}
        return self.add_toxic(
            proxy, "reset_peer", attributes, stream=stream, toxicity=toxicity, name=name
        )

    def bandwidth(
        self,
        proxy: str,
        rate_kb_per_s: int,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> Toxic:
        """``stream`` carries at most ``rate_kb_per_s`` kilobytes a second: a thin or congested
        link; large responses take long, small ones barely notice. 0 means unlimited."""
        attributes = {"rate": rate_kb_per_s}
        return self.add_toxic(
            proxy, "bandwidth", attributes, stream=stream, toxicity=toxicity, name=name
        )

    def slow_close(
        self,
        proxy: str,
        delay_ms: int,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> Toxic:
        """When the sending side of ``stream`` closes, the other side sees the close (EOF)
        ``delay_ms`` later; data before it is not delayed. A peer that lingers on shutdown."""
        attributes = {"delay": delay_ms}
        return self.add_toxic(
            proxy, "slow_close", attributes, stream=stream, toxicity=toxicity, name=name
        )

    def limit_data(
        self,
        proxy: str,
        bytes: int,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> Toxic:
        """Each connection carries ``bytes`` bytes in ``stream`` (counted from when the toxic
        was added) and is then closed: the client reads a truncated reply and EOF."""
        attributes = {"bytes": bytes}
        return self.add_toxic(
            proxy, "limit_data", attributes, stream=stream, toxicity=toxicity, name=name
        )

    def toxics(self, proxy: str) -> list[Toxic]:
        return [
            _toxic(fields) for fields in self._request("GET", f"/proxies/{proxy}/toxics").json()
        ]

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Take the toxic off every connection; data it holds back (latency) is still sent."""
        self._request("DELETE", f"/proxies/{proxy}/toxics/{name}")

    # --- internals -------------------------------------------------------------------------------

    def _launch(self, port: int) -> bool:
        """Start the server on ``port``; False when it exited before serving (port taken)."""
        assert self._log is not None
        self._process = subprocess.Popen(
            [str(self.server), "-host", "127.0.0.1", "-port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # Not the environment's proxy settings: the API is on loopback.
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False)
        deadline = time.monotonic() + self.start_timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                self._http.get("/version", timeout=1).raise_for_status()
                return True
            if self._process.poll() is not None:
                self._http.close()
                self._http = None
                self._process = None
                return False
            if time.monotonic() >= deadline:
                raise ToxiproxyError(
                    f"toxiproxy-server not serving on port {port} after {self.start_timeout} s; "
                    "its log:\n" + self._log_tail()
                )
            time.sleep(0.05)

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - _LOG_TAIL_BYTES))
        return self._log.read().decode(errors="replace")

    def _client(self) -> httpx.Client:
        if self._http is None:
            raise ToxiproxyError("toxiproxy is not running: call start() or use `with`")
        return self._http

    def _update(self, name: str, **fields: Any) -> Proxy:
        # PATCH: POST also updates but is deprecated since toxiproxy 2.6.
        return _proxy(self._request("PATCH", f"/proxies/{name}", json=fields).json())

    def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        response = self._client().request(method, path, json=json)
        if response.is_error:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise ToxiproxyError(f"{method} {path}: {response.status_code} {message}")
        return response


def _proxy(fields: dict[str, Any]) -> Proxy:
    return Proxy(
        name=fields["name"],
        listen=fields["listen"],
        upstream=fields["upstream"],
        enabled=fields["enabled"],
    )


def _toxic(fields: dict[str, Any]) -> Toxic:
    return Toxic(
        name=fields["name"],
        type=fields["type"],
        stream=fields["stream"],
        toxicity=float(fields["toxicity"]),
        attributes=dict(fields["attributes"]),
    )


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    # Popen.send_signal does nothing once the child is reaped, so a recycled PID is never hit.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
