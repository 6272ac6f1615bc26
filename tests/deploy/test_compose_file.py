"""docker-compose.yml is a valid Compose file whose start order, Kafka and PostgreSQL fit the code.

No Docker engine here: the file is validated against the Compose Specification's JSON schema
(vendored under compose-spec/, see ORIGIN.md) and read with the interpolation Compose applies.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.stack import (
    COMPOSE_FILE,
    REPO,
    SAMPLE_ENVIRONMENT,
    SERVICES,
    MissingVariable,
    bind_mounts,
    compose_file,
    compose_text,
    dockerfile,
    environment_of,
    mount_target_of,
    references,
)

SCHEMA = Path(__file__).parent / "compose-spec" / "compose-spec.json"
SCHEMA_SHA256 = "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c"
KAFKA_POM = REPO / "deploy" / "devstack" / "kafka" / "pom.xml"
POSTGRES_INIT = REPO / "deploy" / "postgres" / "initdb"


def test_the_vendored_schema_is_the_one_recorded_in_its_origin_note() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert SCHEMA_SHA256 in (SCHEMA.parent / "ORIGIN.md").read_text(encoding="utf-8")


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The schema names draft 2019-09 by its old URL, which jsonschema does not recognise. No
    # format checker: the schema's "duration" means Compose's "10s", not ISO 8601's "PT10S".
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(compose_file())
    ]
    assert not errors, "\n".join(errors)


def test_the_schema_check_would_catch_a_mistake() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = compose_file()
    broken["services"]["registration"]["depends_on"]["postgres"]["condition"] = "healthy"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(schema).validate(broken)


def test_every_interpolated_variable_is_required_or_has_a_default() -> None:
    """An unset variable must stop `docker compose up`, not become an empty password."""
    for reference in references(compose_text()):
        assert reference.operator in (":?", ":-"), f"${{{reference.variable}}} has no fallback"
        if reference.operator == ":?":
            assert reference.argument, f"${{{reference.variable}:?}} needs a message"


@pytest.mark.parametrize("variable", sorted(SAMPLE_ENVIRONMENT))
def test_compose_refuses_to_start_without_each_required_variable(variable: str) -> None:
    environment = {k: v for k, v in SAMPLE_ENVIRONMENT.items() if k != variable}
    with pytest.raises(MissingVariable, match=variable):
        compose_file(environment)


def test_the_required_variables_are_the_ones_an_operator_is_told_to_set() -> None:
    required = {r.variable for r in references(compose_text()) if r.operator == ":?"}
    assert required == set(SAMPLE_ENVIRONMENT)
    header = "".join(line for line in compose_text().splitlines(True) if line.startswith("#"))
    for variable in required:
        assert variable in header, f"the compose file's header does not mention {variable}"


def test_every_bind_mount_source_is_in_the_repository() -> None:
    for name, service in compose_file()["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
            assert source.is_relative_to(REPO), source


def test_every_long_running_service_has_a_healthcheck_and_restarts() -> None:
    for name, service in compose_file()["services"].items():
        if name == "kafka-topics":
            assert "restart" not in service, "a one-shot job must not be restarted"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name


def test_start_order_waits_for_what_each_service_needs() -> None:
    services = compose_file()["services"]
    conditions = {
        name: {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}
        for name, service in services.items()
    }
    assert conditions["kafka-topics"] == {"kafka": "service_healthy"}
    for name in SERVICES:
        assert conditions[name]["kafka-topics"] == "service_completed_successfully", name
        uses_postgres = any("@postgres:" in v for v in environment_of(services[name]).values())
        assert uses_postgres == (conditions[name].get("postgres") == "service_healthy"), name
    # Prometheus must come up even when a service is unhealthy: that is what it reports.
    assert conditions["prometheus"] == dict.fromkeys(SERVICES, "service_started")
    assert conditions["grafana"] == {"prometheus": "service_healthy"}
    for name, needs in conditions.items():
        for dependency, condition in needs.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), f"{dependency} has no healthcheck"


def test_kafka_runs_in_kraft_mode_on_the_version_the_devstack_runs() -> None:
    kafka = compose_file()["services"]["kafka"]
    version = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text())
    assert version is not None
    assert kafka["image"] == f"apache/kafka:{version.group(1)}"
    env = environment_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not [key for key in env if "ZOOKEEPER" in key]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # The data directory is the named volume, so a restart keeps the topics.
    assert f"kafka-data:{env['KAFKA_LOG_DIRS']}" in kafka["volumes"]


def test_every_client_reaches_kafka_at_its_advertised_listener() -> None:
    services = compose_file()["services"]
    advertised = environment_of(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    (bootstrap,) = re.findall(r"PLAINTEXT://([\w.-]+:\d+)", advertised)
    for name in (*SERVICES, "kafka-topics"):
        assert environment_of(services[name])["KAFKA_BOOTSTRAP_SERVERS"] == bootstrap, name


def test_the_topics_job_runs_the_provisioning_module_from_a_service_image() -> None:
    job = compose_file()["services"]["kafka-topics"]
    assert job["command"] == ["python", "-m", "servicekit.provision"]
    provision = REPO / "libs" / "servicekit" / "src" / "servicekit" / "provision.py"
    assert 'if __name__ == "__main__":' in provision.read_text(encoding="utf-8")
    assert job["build"]["args"]["SERVICE"] in SERVICES  # every service image has servicekit
    assert dockerfile(REPO / job["build"]["dockerfile"])


def test_every_database_a_service_uses_is_created_by_postgres() -> None:
    services = compose_file()["services"]
    postgres = services["postgres"]
    env = environment_of(postgres)
    init_target = mount_target_of(postgres, POSTGRES_INIT)
    assert init_target == "/docker-entrypoint-initdb.d"
    created = {env["POSTGRES_DB"]} | {
        name
        for script in POSTGRES_INIT.glob("*.sql")
        for name in re.findall(r"CREATE DATABASE (\w+)", script.read_text(encoding="utf-8"))
    }
    used = set()
    for name in SERVICES:
        for value in environment_of(services[name]).values():
            match = re.fullmatch(r"postgresql\+psycopg://(\w+):([^@]+)@postgres:5432/(\w+)", value)
            if match:
                user, password, database = match.groups()
                assert user == env["POSTGRES_USER"]
                assert (
                    password == env["POSTGRES_PASSWORD"] == SAMPLE_ENVIRONMENT["POSTGRES_PASSWORD"]
                )
                used.add(database)
    assert used == set(SERVICES), "each service keeps its tables in its own database"
    assert used <= created


def test_the_yaml_anchor_gives_each_service_the_shared_healthcheck() -> None:
    raw: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    shared = raw["x-service"]["healthcheck"]
    for name in SERVICES:
        assert compose_file()["services"][name]["healthcheck"] == shared
