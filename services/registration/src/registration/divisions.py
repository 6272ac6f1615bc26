"""The official administrative divisions (34 provinces, 3,321 commune-level units), from the
`vietnam-provinces` package, and the rules a connection point's place must follow."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

from vietnam_provinces import Province, VietNamDivisionType, Ward

from contracts.events import Level

LEVEL_OF_UNIT = {
    VietNamDivisionType.XA: Level.COMMUNE,
    VietNamDivisionType.PHUONG: Level.WARD,
    VietNamDivisionType.DAC_KHU: Level.SPECIAL_ZONE,
}
UNIT_LEVELS = frozenset(LEVEL_OF_UNIT.values())


class PlaceError(ValueError):
    """A province or unit code that is not in the official list, or does not fit together."""


@dataclass(frozen=True)
class Place:
    """Where a point is, as normalised codes: province "01", unit "00004"."""

    province_code: str | None
    unit_code: str | None


@cache
def provinces() -> dict[str, Province]:
    return {province_code(p.code): p for p in Province.iter_all()}


@cache
def units() -> dict[str, Ward]:
    return {unit_code(w.code): w for w in Ward.iter_all()}


def province_code(code: int) -> str:
    return f"{int(code):02d}"


def unit_code(code: int) -> str:
    return f"{int(code):05d}"


def check_place(level: Level, province: str | None, unit: str | None) -> Place:
    """The normalised place of a point at `level`, or a `PlaceError` saying what is wrong."""
    province = _normalised(province, province_code, "province")
    unit = _normalised(unit, unit_code, "unit")
    if province is not None and province not in provinces():
        raise PlaceError(f"unknown province code {province}")
    if unit is None:
        if level in UNIT_LEVELS:
            raise PlaceError(f"a {level.value} point needs the code of its unit")
        if level is Level.PROVINCE and province is None:
            raise PlaceError("a province point needs its province code")
        return Place(province, None)
    ward = units().get(unit)
    if ward is None:
        raise PlaceError(f"unknown commune-level unit code {unit}")
    if level is Level.PROVINCE:
        raise PlaceError("a province point cannot name a commune-level unit")
    own_province = province_code(ward.province_code)
    if province is not None and province != own_province:
        raise PlaceError(
            f"unit {unit} ({ward.name}) belongs to province {own_province}, not {province}"
        )
    kind = LEVEL_OF_UNIT[ward.division_type]
    if level in UNIT_LEVELS and kind is not level:
        raise PlaceError(f"unit {unit} ({ward.name}) is a {kind.value}, not a {level.value}")
    return Place(own_province, unit)


def check_provinces(codes: Iterable[str]) -> list[str]:
    """Official province codes, normalised ("1" -> "01"), each once and sorted; a `PlaceError`
    names the first code that is not one."""
    checked = set()
    for code in codes:
        province = _normalised(code, province_code, "province")
        if province is None or province not in provinces():
            raise PlaceError(f"unknown province code {code!r}")
        checked.add(province)
    return sorted(checked)


def _normalised(code: str | None, pad: Callable[[int], str], what: str) -> str | None:
    """Spreadsheets drop leading zeros ("4" for "00004"); accept that, refuse anything else."""
    if code is None or not code.strip():
        return None
    if not code.strip().isdigit():
        raise PlaceError(f"{what} code must be digits, got {code!r}")
    return pad(int(code))
