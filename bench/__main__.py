"""`make bench`: every benchmark suite, each printing a table with ratios to its peers."""

from __future__ import annotations

import sys

from bench import read_throughput

SUITES = {"read": read_throughput.run}


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
