"""The README's settings table lists exactly the variables the code and docker-compose.yml read,
with the defaults the code has, so it cannot drift from them."""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr

from tests.deploy.stack import (
    REPO,
    SERVICES,
    all_setting_variables,
    compose_text,
    references,
    setting_variables,
    settings_class,
)

TABLE_HEADER = "| variable | service | default |"


def table_rows() -> list[tuple[list[str], str, str]]:
    """(variables, service, default cell) of each row of the README's settings table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count(TABLE_HEADER) == 1
    rows = []
    lines = text[text.index(TABLE_HEADER) :].splitlines()[2:]
    for line in lines:
        if not line.startswith("|"):
            break
        variable_cell, service, default = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((re.findall(r"`([A-Z0-9_]+)`", variable_cell), service, default))
    return rows


def test_the_table_lists_every_setting_of_every_service_and_nothing_else() -> None:
    readers = all_setting_variables()
    documented: dict[str, set[str]] = {}
    for variables, service, _ in table_rows():
        for variable in variables:
            if service != "compose":
                documented.setdefault(variable, set()).update(
                    set(SERVICES) if service == "all" else {service}
                )
    assert documented == readers


def test_the_table_lists_every_variable_the_compose_file_reads() -> None:
    compose_rows = {
        v for variables, service, _ in table_rows() if service == "compose" for v in variables
    }
    assert compose_rows == {reference.variable for reference in references(compose_text())}


def shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def test_the_defaults_in_the_table_are_the_code_defaults() -> None:
    fields = {}
    for service in SERVICES:
        fields.update(setting_variables(settings_class(service)))
    compose_defaults = {
        r.variable: r.argument for r in references(compose_text()) if r.operator in (":-", "-")
    }
    for variables, service, cell in table_rows():
        if service == "compose":
            (variable,) = variables
            if variable in compose_defaults:
                assert cell.startswith(f"`{compose_defaults[variable]}`"), variable
            else:
                assert cell.startswith("required"), variable
            continue
        values = re.findall(r"`([^`]+)`", cell)
        for position, variable in enumerate(variables):
            default = fields[variable].default
            if default is None:
                assert cell.startswith("unset"), variable
            elif isinstance(default, int | float) and not isinstance(default, bool):
                assert float(values[position]) == default, variable
            else:
                assert values[position] == shown(default), variable
