"""A service's heap once it has read the large tables it keeps (the registry: 100,000 points
and more, several objects each)."""

import gc

from servicekit.catchup import release_memory

# Python's are (700, 10, 10): at 20,000 heartbeats a second, every track a heartbeat makes
# lives its 5 s into the oldest generation, so the full collection came every few seconds.
# Here the youngest waits for 100,000 objects, about a second of a processor's heartbeats: most
# of what one makes (its record, beat and change) is freed before a collection would visit it.
# With 10,000 a B7 processor spent 7 % of its CPU collecting, with 100,000 3 % (`perf`). The
# middle one every 10 youngest and the oldest every 100 middle ones: cycles are still collected.
THRESHOLDS = (100_000, 10, 100)


def settle() -> None:
    """Collect once, then set every object alive now aside from the garbage collector
    (`gc.freeze`). Otherwise each full collection walks the whole registry again: in B7 at
    30,000 points a processor spent a sixth of its CPU collecting, most of it in full
    collections (timed with `gc.callbacks`). Frozen objects are still freed by reference
    counting when replaced; only a cycle among them would never be, and registry entries
    hold none."""
    gc.collect()
    release_memory()  # what the collection freed, as the end of a load does (`CatchUp`)
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    gc.enable()


def loading() -> None:
    """A table is being read: no collections until `settle`. Every record read lives on in
    the table, so the collector's passes over it free nothing: a fifth of reporting's fold of
    a 100,000-point rebuild (`bench/rebuild_bench.py`). Should Kafka go away mid-read, the
    little the service allocates meanwhile is freed by reference counting but for cycles,
    which `settle` collects."""
    gc.disable()
