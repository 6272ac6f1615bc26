"""The provinces' names by code, as the dashboard shows them (its own `static/provinces.json`)."""

import json
from importlib.resources import files

NAMES: dict[str, str] = json.loads(
    files("reporting").joinpath("static/provinces.json").read_text(encoding="utf-8")
)


def province_name(code: str) -> str:
    """The province's name, or "" for a code it does not know (a point of no province)."""
    return NAMES.get(code, "")
