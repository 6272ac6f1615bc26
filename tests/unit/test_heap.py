"""While a table is read the collector waits; once it is read the collector runs again."""

import gc
from collections.abc import Iterator

import pytest

from servicekit.heap import THRESHOLDS, loading, settle


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    gc.enable()


@pytest.mark.usefixtures("collector")
def test_the_collector_waits_while_a_table_is_read_and_runs_once_it_is_settled() -> None:
    loading()
    assert not gc.isenabled()
    settle()
    assert gc.isenabled()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 0
