"""Every official province and commune-level unit as a connection point, in the import format."""

import csv
import io
from collections.abc import Iterable

from contracts.events import Channel, Level
from registration.divisions import LEVEL_OF_UNIT, provinces, units
from registration.importing import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


def official_points(expected_learners: int) -> list[dict[str, str]]:
    """34 province points ("T01") and 3,321 unit points ("X00004"), on the video bridge."""
    rows = [
        _row(f"T{code}", province.name, Level.PROVINCE, code, "", expected_learners)
        for code, province in sorted(provinces().items())
    ]
    rows += [
        _row(
            f"X{code}",
            ward.name,
            LEVEL_OF_UNIT[ward.division_type],
            f"{int(ward.province_code):02d}",
            code,
            expected_learners,
        )
        for code, ward in sorted(units().items())
    ]
    return rows


def as_csv(rows: Iterable[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _row(
    code: str, name: str, level: Level, province: str, unit: str, learners: int
) -> dict[str, str]:
    return {
        "code": code,
        "name": name,
        "level": level.value,
        "channel": Channel.VIDEO_BRIDGE.value,
        "province_code": province,
        "unit_code": unit,
        "host": "",
        "phone": "",
        "expected_learners": str(learners),
        "courses": "",
    }
