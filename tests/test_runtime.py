"""runtime: the collector settings the jobs run with."""

from __future__ import annotations

import gc

from pilotfish.runtime import OLDER_THRESHOLDS, YOUNG_THRESHOLD, tune_gc


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
        assert gc.get_freeze_count() > 0

        # cycles are still collected, just less often
        class Node:
            ref: object = None

        a, b = Node(), Node()
        a.ref, b.ref = b, a
        del a, b
        assert gc.collect() >= 2
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
