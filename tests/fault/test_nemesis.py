"""In CI, one round of the nemesis campaign (`tests.fault.nemesis`), every
fault kind once, drawn from a fixed seed, on 1,000 points heartbeating through two ingest
instances, each instance behind a toxiproxy proxy of its own. Every count must be zero.

The tolerances are the system's own figures, nothing of the test's:

- the publish timeout (5 s) and the outage allowance (1 s) the services run with, which the
  oracle applies (`nemesis.ALLOWANCES`, docs/reliability.md);
- the session's liveness, late after 8 s and disconnected after 16 s (`nemesis.LATE_AFTER_S`,
  `nemesis.DISCONNECTED_AFTER_S`), which the system and the oracle apply; a status late or
  disconnected is false when the load kept sending all through the silence it claims (from its
  `last_heartbeat_at` to its `since`), whatever the length.

The waits (settle period, patience at a checkpoint) bound how long the campaign looks, not how
much it forgives: what still differs when they run out is counted.
"""

from pathlib import Path

import pytest

from tests.conftest import Figures
from tests.fault.fleet import UNDER_LOAD
from tests.fault.nemesis import (
    ALLOWANCES,
    COUNTS,
    DISCONNECTED_AFTER_S,
    KINDS,
    LATE_AFTER_S,
    Options,
    run_campaign,
    verdict,
    write_artifacts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault, UNDER_LOAD]
# Its first round: latency on ingest-1, processor-2 added, SIGTERM of ingest-0, a broker
# restart, a black hole on processor-0, kill -9 of processor-2, processor-0 removed, ingest-1
# cut off, SIGSTOP of processor-2 past its session timeout.
SEED = 366
COMMAND = "uv run pytest tests/fault/test_nemesis.py"


async def test_a_round_of_every_fault_kind_counts_nothing(tmp_path: Path, figures: Figures) -> None:
    assert (ALLOWANCES.publish_timeout, ALLOWANCES.outage_after) == (5.0, 1.0)
    assert (LATE_AFTER_S, DISCONNECTED_AFTER_S) == (8.0, 16.0)
    options = Options(seed=SEED, minutes=None, faults=len(KINDS), root=tmp_path)
    report = await run_campaign(options, COMMAND)
    write_artifacts(report)
    figures(
        wall_seconds=round(report.wall_seconds, 1),
        by_kind=report.by_kind(),
        load=report.load,
        faults=[{"what": f.describe(), **f.counts} for f in report.faults],
    )
    assert report.errors == [], report.errors
    assert {f.kind for f in report.faults} >= set(KINDS)
    zero = dict.fromkeys(COUNTS, 0)
    assert [(f.describe(), f.counts, f.errors) for f in report.faults if not f.clean] == [], (
        verdict(report)
    )
    assert all(f.counts == zero for f in report.faults)
