"""Reading a spreadsheet of connection points: every row checked, every bad row explained.

Pure: bytes in, validated rows and a report of bad rows (by line number) out.
"""

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ValidationError

from contracts.codec import problems
from contracts.events import Channel, Level
from contracts.text import folded, nfc
from registration.store import PointCreate

REQUIRED_COLUMNS = ("code", "name", "level", "channel")
OPTIONAL_COLUMNS = (
    "province_code",
    "unit_code",
    "host",
    "phone",
    "expected_learners",
    "courses",
)
MAX_ROWS = 200_000

# What provinces write in their sheets, folded, for each level and channel.
LEVEL_ALIASES = {
    "trung uong": Level.CENTRAL,
    "tinh": Level.PROVINCE,
    "thanh pho": Level.PROVINCE,
    "xa": Level.COMMUNE,
    "phuong": Level.WARD,
    "dac khu": Level.SPECIAL_ZONE,
    "khac": Level.OTHER,
} | {level.value.replace("_", " "): level for level in Level}
CHANNEL_ALIASES = {
    "video bridge": Channel.VIDEO_BRIDGE,
    "cau truyen hinh": Channel.VIDEO_BRIDGE,
    "microsoft teams": Channel.TEAMS,
    "teams": Channel.TEAMS,
    "other": Channel.OTHER,
    "khac": Channel.OTHER,
}
COURSE_SEPARATORS = re.compile(r"[;,\s]+")


class RowError(BaseModel):
    """A row that cannot be imported, and why."""

    line: int
    code: str | None = None
    reason: str


class FileError(ValueError):
    """The file as a whole cannot be read: not UTF-8, not CSV, missing columns, too long."""


@dataclass
class ParsedPoints:
    rows: list[PointCreate] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def parse_points_csv(
    data: bytes, *, known_courses: Iterable[str], extra_course: str | None = None
) -> ParsedPoints:
    """Every row of the CSV checked against the rules of a point; unknown columns are refused
    so a misspelt header cannot silently drop a column."""
    reader = csv.DictReader(io.StringIO(_text(data), newline=""))
    _check_header(reader.fieldnames)
    known = set(known_courses)
    parsed = ParsedPoints()
    first_line: dict[str, int] = {}
    for line, raw in _rows(reader):
        code = (raw.get("code") or "").strip() or None
        try:
            point = _point(raw, extra_course)
        except ValueError as error:
            parsed.errors.append(RowError(line=line, code=code, reason=str(error)))
            continue
        if point.code in first_line:
            reason = f"code {point.code} already on line {first_line[point.code]}"
            parsed.errors.append(RowError(line=line, code=point.code, reason=reason))
            continue
        unknown = sorted(set(point.courses) - known)
        if unknown:
            reason = f"unknown course {', '.join(unknown)}"
            parsed.errors.append(RowError(line=line, code=point.code, reason=reason))
            continue
        first_line[point.code] = line
        parsed.rows.append(point)
    return parsed


def _text(data: bytes) -> str:
    try:
        # utf-8-sig drops the byte-order mark Excel writes; NFC makes one spelling per word.
        return nfc(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise FileError(
            f"the file is not UTF-8 (byte {error.start}): save it as CSV UTF-8"
        ) from None


def _check_header(fieldnames: Iterable[str] | None) -> None:
    if not fieldnames:
        raise FileError("the file is empty: the first line must name the columns")
    columns = [name.strip() for name in fieldnames]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        allowed = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        raise FileError(f"{'; '.join(problems)} (columns: {allowed})")


def _rows(reader: "csv.DictReader[str]") -> Iterator[tuple[int, dict[str, str]]]:
    try:
        for count, row in enumerate(reader, start=1):
            if count > MAX_ROWS:
                raise FileError(f"more than {MAX_ROWS:,} rows: split the file")
            if None in row:
                yield reader.line_num, {"_extra": "more cells than columns"}
                continue
            if any((value or "").strip() for value in row.values()):
                yield reader.line_num, {key.strip(): value for key, value in row.items()}
    except csv.Error as error:
        raise FileError(f"line {reader.line_num}: {error}") from None


def _point(raw: dict[str, str], extra_course: str | None) -> PointCreate:
    if "_extra" in raw:
        raise ValueError(raw["_extra"])
    cells = {key: (value or "").strip() for key, value in raw.items()}
    courses = [c for c in COURSE_SEPARATORS.split(cells.get("courses", "")) if c]
    if extra_course:
        courses.append(extra_course)
    fields: dict[str, object] = {
        "code": cells["code"],
        "name": cells["name"],
        "level": _alias(cells["level"], LEVEL_ALIASES),
        "channel": _alias(cells["channel"], CHANNEL_ALIASES),
        "province_code": cells.get("province_code") or None,
        "unit_code": cells.get("unit_code") or None,
        "host": cells.get("host", ""),
        "phone": cells.get("phone", ""),
        "expected_learners": cells.get("expected_learners") or 0,
        "courses": courses,
    }
    try:
        return PointCreate.model_validate(fields)
    except ValidationError as error:
        raise ValueError(problems(error)) from None


def _alias(value: str, aliases: Mapping[str, StrEnum]) -> StrEnum | str:
    return aliases.get(folded(value).replace("_", " "), value)
