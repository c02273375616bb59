"""Process settings for the long-running jobs (read, capture, worker).

The cyclic garbage collector is tuned for a packet pipeline: almost every object it makes
dies by reference counting within one packet or one message, and cycles are rare.  With the
default thresholds the collector still walks the young objects every 700 allocations, about
every 35 HTTP transactions, which costs about a tenth of the per-transaction work.  Objects
alive at start-up (modules, classes, tables) are frozen out of the collector's walks, and the
young generation is collected every `YOUNG_THRESHOLD` allocations instead: memory held by
garbage cycles stays bounded by that count.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000
OLDER_THRESHOLDS: Final = (20, 100)


def tune_gc() -> None:
    """Apply the collector settings above to this process (call once, after imports)."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
