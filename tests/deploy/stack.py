"""Reading the deployment files the way Docker Compose and Docker would, without a Docker engine.

`compose_file()` is docker-compose.yml with its `${VARIABLE}` references filled in (as Compose
interpolates them) from `SAMPLE_ENVIRONMENT`; `dockerfile()` splits a Dockerfile into stages and
instructions; `setting_variables()` derives a settings class's environment variables from its
pydantic-settings fields, so nothing here lists them by hand.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = ("registration", "attendance", "reporting")

# What an operator would export before `docker compose up` (tokens and passwords URL-safe).
SAMPLE_ENVIRONMENT = {
    "POSTGRES_PASSWORD": "pg0secret",
    "REGISTRATION_OPERATOR_TOKEN": "operator0token",
    "GRAFANA_ADMIN_PASSWORD": "grafana0secret",
}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error} and $NAME; `$$` is a
# literal dollar sign.
_REFERENCE = re.compile(
    r"\$(?:\$|\{(?P<braced>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)


@dataclass(frozen=True)
class Reference:
    variable: str
    operator: str | None  # ":-", "-", ":?", "?" or None
    argument: str


def references(text: str) -> Iterator[Reference]:
    for match in _REFERENCE.finditer(text):
        name = match.group("braced") or match.group("bare")
        if name:
            yield Reference(name, match.group("op"), match.group("arg") or "")


class MissingVariable(LookupError):
    pass


def interpolate(text: str, environment: Mapping[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        operator, argument = match.group("op"), match.group("arg") or ""
        value = environment.get(name)
        unset_or_empty = not value if operator in (":-", ":?") else value is None
        if unset_or_empty and operator in (":-", "-"):
            return argument
        if unset_or_empty and operator in (":?", "?"):
            raise MissingVariable(f"{name}: {argument}")
        return value or ""

    return _REFERENCE.sub(fill, text)


def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


def compose_file(environment: Mapping[str, str] = SAMPLE_ENVIRONMENT) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(interpolate(compose_text(), environment))
    return document


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose_file()["services"][name]
    return service


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def container_ports(service: Mapping[str, Any]) -> list[int]:
    """The container side of each `ports` entry ("8001:8000" -> 8000)."""
    ports = []
    for entry in service.get("ports", []):
        target = entry["target"] if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1]
        ports.append(int(str(target).split("/")[0]))
    return ports


def bind_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of each `./…:/…` volume."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("."):
            mounts[target] = (REPO / source).resolve()
    return mounts


def mount_target_of(service: Mapping[str, Any], repository_path: Path) -> str:
    targets = [t for t, s in bind_mounts(service).items() if s == repository_path.resolve()]
    assert len(targets) == 1, f"{repository_path} is mounted {len(targets)} times"
    return targets[0]


def healthcheck_url(test: list[str] | str) -> str:
    command = test if isinstance(test, str) else " ".join(test)
    urls = re.findall(r"https?://[^\s'\"]+", command)
    assert len(urls) == 1, command
    return str(urls[0])


# --- Dockerfiles --------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]

    def env(self, build_args: Mapping[str, str]) -> dict[str, str]:
        """The ENV of this stage, `${ARG}` filled in from the build arguments."""
        values: dict[str, str] = {}
        for args in self.arguments("ENV"):
            for pair in shlex.split(args):
                key, value = pair.split("=", 1)
                values[key] = interpolate(value, {**build_args, **values})
        return values

    def exec_form(self, instruction: str) -> list[str]:
        (args,) = self.arguments(instruction)[-1:]
        words: list[str] = json.loads(args)
        return words


def dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, each with its instructions (continuation lines joined)."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for instruction in logical:
        keyword, _, args = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            stages.append(Stage(words[0], words[2] if len(words) > 2 else None))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def healthcheck_command(stage: Stage) -> list[str]:
    (args,) = stage.arguments("HEALTHCHECK")
    _, _, command = args.partition(" CMD ")
    words: list[str] = json.loads(command.strip())
    return words


# --- Settings -----------------------------------------------------------------------------------


def settings_class(service: str) -> type[BaseSettings]:
    settings: type[BaseSettings] = importlib.import_module(f"{service}.config").Settings
    return settings


def setting_variables(settings: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Environment variable -> field, as pydantic-settings reads them (prefix, or the alias)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    variables = {}
    for name, info in settings.model_fields.items():
        alias = info.validation_alias
        variable = alias if isinstance(alias, str) else prefix + name
        variables[variable.upper()] = info
    return variables


def all_setting_variables() -> dict[str, set[str]]:
    """Every variable of every service -> the services that read it."""
    readers: dict[str, set[str]] = {}
    for service in SERVICES:
        for variable in setting_variables(settings_class(service)):
            readers.setdefault(variable, set()).add(service)
    return readers
