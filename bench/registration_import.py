"""Bulk import of points: 3,555 (the seeds' course) and 100,000 rows, SQLite and PostgreSQL.

    uv run python bench/registration_import.py [--sizes 3555 100000] [--runs 3]

For each database and size, a fresh database is migrated, then two things are timed on the
same rows: ours (parse the CSV, validate every row against the official divisions, upsert with
tokens and outbox events, commit) and a baseline (one bare executemany INSERT of the same rows'
point columns, no validation, no events). Medians over the runs, spread, and the ratio.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from harness import Figure, record_figure, spread
from sqlalchemy import Engine, insert
from sqlmodel import Session

from devstack.postgres import TempPostgres
from registration.bulk import upsert_points
from registration.importing import parse_points_csv
from registration.migrate import upgrade
from registration.official import as_csv, official_points
from registration.store import Course, Point
from servicekit.database import make_engine


def rows_for(size: int) -> list[dict[str, str]]:
    rows = official_points(28)[:size]
    rows += [
        {
            "code": f"SYN-{n:06d}",
            "name": f"Điểm cầu {n}",
            "level": "other",
            "channel": "teams",
            "province_code": "",
            "unit_code": "",
            "host": "Cán bộ phụ trách",
            "phone": "0900 000 000",
            "expected_learners": "30",
            "courses": "",
        }
        for n in range(size - len(rows))
    ]
    return rows


NOW = datetime(2026, 11, 23, tzinfo=UTC)


def ours(engine: Engine, sheet: bytes) -> None:
    with Session(engine) as db:
        parsed = parse_points_csv(sheet, known_courses={"K1"}, extra_course="K1")
        assert not parsed.errors, parsed.errors[:3]
        upsert_points(db, parsed.rows)
        db.commit()


def baseline(engine: Engine, rows: list[dict[str, str]]) -> None:
    columns = [
        {
            "code": r["code"],
            "name": r["name"],
            "level": "OTHER",
            "channel": "TEAMS",
            "province_code": r["province_code"] or None,
            "unit_code": r["unit_code"] or None,
            "host": r["host"],
            "phone": r["phone"],
            "expected_learners": 30,
            "active": True,
            "token_hash": None,
            "search_text": "",
            "created_at": NOW,
            "updated_at": NOW,
        }
        for r in rows
    ]
    with engine.begin() as connection:
        connection.execute(insert(Point.__table__), columns)  # type: ignore[attr-defined]


def timed(make_engine_: Callable[[], Engine], work: Callable[[Engine], None]) -> float:
    engine = make_engine_()
    upgrade(engine)
    with Session(engine) as db:
        db.add(Course(code="K1", title="Bồi dưỡng"))
        db.commit()
    began = time.perf_counter()
    work(engine)
    elapsed = time.perf_counter() - began
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[3555, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-pg-") as pg_dir,
        TempPostgres.start(Path(pg_dir)) as pg,
    ):
        counter = iter(range(10**6))

        def fresh_sqlite() -> Engine:
            return make_engine(f"sqlite:///{tempfile.mkdtemp()}/registry.db")

        def fresh_postgres() -> Engine:
            name = f"bench_{next(counter)}"
            pg.create_database(name)
            return make_engine(pg.url(name))

        header = ("database", "rows", "ours (s)", "baseline (s)", "ratio", "rows/s")
        print("{:<11}{:>9}{:>11}{:>14}{:>8}{:>10}".format(*header))
        for label, fresh in (("sqlite", fresh_sqlite), ("postgresql", fresh_postgres)):
            for size in args.sizes:
                rows = rows_for(size)
                sheet = as_csv(rows)
                mine = [timed(fresh, partial(ours, sheet=sheet)) for _ in range(args.runs)]
                base = [timed(fresh, partial(baseline, rows=rows)) for _ in range(args.runs)]
                m, b = statistics.median(mine), statistics.median(base)
                print(
                    f"{label:<11}{size:>9,}{m:>11.2f}{b:>14.2f}{m / b:>8.1f}{size / m:>10,.0f}"
                    f"   (ours {min(mine):.2f} to {max(mine):.2f})"
                )
                record_figure(
                    Figure(
                        "B8",
                        f"registration: bulk import of {size:,} rows, {label}",
                        f"{m:.2f} s",
                        f"{spread(mine)} s",
                        f"{b:.2f} s (bare executemany INSERT, no validation or events)",
                        f"{m / b:.1f}x the baseline",
                        "reported",
                        None,
                    )
                )


if __name__ == "__main__":
    main()
