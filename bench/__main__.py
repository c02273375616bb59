"""`make bench`: every benchmark suite, each printing a table with ratios to its peers.

`python -m bench` runs them all; `python -m bench read store` runs the named ones.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import (
    api_capture,
    api_load,
    bench_afpacket,
    bench_decode,
    capture_http,
    capture_rates,
    hub_query,
    read_throughput,
    startup,
    store_query,
)

SUITES: dict[str, Callable[[], str]] = {
    "decode": bench_decode.run,
    "ring": bench_afpacket.run,
    "read": read_throughput.run,
    "capture": capture_rates.run,
    "capture-http": capture_http.run,
    "store": store_query.run,
    "startup": startup.run,
    "hub": hub_query.run,
    "api": api_load.run,
    "api-capture": api_capture.run,
}


def main(argv: list[str]) -> int:
    wanted = argv or list(SUITES)
    for name in wanted:
        if name not in SUITES:
            print(f"bench: unknown suite {name!r}; choose from {', '.join(SUITES)}")
            return 2
        print(SUITES[name](), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
