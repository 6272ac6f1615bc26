"""A throwaway PostgreSQL server on 127.0.0.1 for tests, from Debian's ``postgresql`` package.

The server runs Debian's binaries directly (``initdb``, ``pg_ctl``) on a private data directory
and a free port: no Docker, and the package's own ``main`` cluster is never touched.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from devstack.ports import free_port

INSTALL_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
LOG_FILE = "postgres.log"
LOG_TAIL_LINES = 40
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class PostgresLauncherError(RuntimeError):
    """The local PostgreSQL server could not be initialised, started or stopped."""


@dataclass
class TempPostgres:
    """A server started by :meth:`start`; superuser ``postgres``, trust auth, loopback only."""

    data_dir: Path
    port: int
    bin_dir: Path

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @classmethod
    def start(cls, data_dir: Path, *, ready_timeout: float = 60.0) -> TempPostgres:
        bin_dir = newest_bin_dir()
        data_dir = data_dir.resolve()
        _check_socket_path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        _hand_to_server_user(data_dir)
        if not (data_dir / "PG_VERSION").is_file():
            _initdb(bin_dir, data_dir)
        server = cls(data_dir, free_port(), bin_dir)
        try:
            server._pg_ctl_start(ready_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[TupleRow]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SERVER_USER, dbname=database, autocommit=True
        )

    def create_database(self, name: str) -> None:
        with self.connect() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        """Drop ``name`` even if a test left connections open to it."""
        with self.connect() as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    def is_running(self) -> bool:
        # pg_ctl status: 0 running, 3 not running, 4 no usable data dir.
        return self._pg_ctl("status").returncode == 0

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown of the server in our own data dir (pg_ctl reads its postmaster.pid)."""
        if not self.is_running():
            return
        result = self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(round(timeout)))
        if result.returncode != 0 and self.is_running():
            raise PostgresLauncherError(
                f"pg_ctl stop failed (exit code {result.returncode}) for {self.data_dir}:\n"
                + _tail(result.stdout)
            )

    def __enter__(self) -> TempPostgres:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _pg_ctl_start(self, timeout: float) -> None:
        options = [
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.data_dir}",
            # Test data is disposable: trade crash safety for speed.
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip
        # pg_ctl hands -o to /bin/sh, so each option is quoted for the shell.
        result = self._pg_ctl(
            "start", "-w", "-t", str(round(timeout)),
            "-l", str(self.log_path),
            "-o", shlex.join(options),
        )  # fmt: skip
        if result.returncode != 0:
            raise PostgresLauncherError(
                f"PostgreSQL did not start on 127.0.0.1:{self.port} "
                f"(pg_ctl exit code {result.returncode}):\n{_tail(result.stdout)}\n"
                f"end of {self.log_path}:\n{_tail_file(self.log_path)}"
            )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run_as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args])


def newest_bin_dir() -> Path:
    """``/usr/lib/postgresql/<major>/bin`` of the newest installed major version."""
    candidates = [
        path.parent for path in INSTALL_ROOT.glob("*/bin/initdb") if _version(path.parents[1].name)
    ]
    if not candidates:
        raise PostgresLauncherError(
            f"no PostgreSQL server binaries under {INSTALL_ROOT}/*/bin: "
            "install Debian's 'postgresql' package (bin/_prepare.sh does)"
        )
    return max(candidates, key=lambda path: _version(path.parent.name))


def _version(name: str) -> tuple[int, ...]:
    # Debian names the folders by major version: '9.6', '15', ...
    return (
        tuple(int(part) for part in name.split(".")) if re.fullmatch(r"\d+(\.\d+)*", name) else ()
    )


def _check_socket_path(data_dir: Path) -> None:
    socket_path = data_dir / ".s.PGSQL.65535"
    if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        raise PostgresLauncherError(
            f"data dir {data_dir} is too long to hold PostgreSQL's Unix socket "
            f"(at most {MAX_SOCKET_PATH} bytes for {socket_path})"
        )


def _is_root() -> bool:
    return os.geteuid() == 0


def _hand_to_server_user(data_dir: Path) -> None:
    # PostgreSQL refuses to run as root, so as root the server runs as the 'postgres' user.
    if not _is_root():
        return
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresLauncherError(
            f"running as root but there is no '{SERVER_USER}' user to run PostgreSQL as "
            "(Debian's 'postgresql' package creates it)"
        ) from None
    shutil.chown(data_dir, SERVER_USER, SERVER_USER)


def _run_as_server_user(command: list[str]) -> subprocess.CompletedProcess[str]:
    if _is_root():
        command = ["runuser", "-u", SERVER_USER, "--", *command]
    # cwd '/': the server user may not be allowed into ours, and the data dir may be gone.
    return subprocess.run(
        command,
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        check=False,
    )


def _initdb(bin_dir: Path, data_dir: Path) -> None:
    base = [
        str(bin_dir / "initdb"), "-D", str(data_dir),
        "-A", "trust", "-U", SERVER_USER, "--encoding=UTF8",
        # The cluster is thrown away after the run: no need to flush it to disk.
        "--no-sync",
    ]  # fmt: skip
    result = _run_as_server_user([*base, "--locale=C.UTF-8"])
    # C.UTF-8 is not available on every system; plain C works with any encoding.
    if result.returncode != 0 and "invalid locale name" in result.stdout:
        result = _run_as_server_user([*base, "--locale=C"])
    if result.returncode == 0:
        return
    hint = ""
    if _is_root() and "Permission denied" in result.stdout:
        hint = (
            f"\n(the '{SERVER_USER}' user must be able to reach {data_dir}: "
            "every parent directory needs execute permission for it)"
        )
    raise PostgresLauncherError(
        f"initdb failed (exit code {result.returncode}) in {data_dir}:\n"
        + _tail(result.stdout)
        + hint
    )


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _tail_file(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except FileNotFoundError:
        return "(no log file)"
