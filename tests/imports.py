"""What a fresh interpreter has imported after running a snippet: for start-up cost checks."""

from __future__ import annotations

import json
import subprocess
import sys

_REPORT = "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"


def modules_after(code: str) -> set[str]:
    """Run `code` in a new interpreter; return the names in sys.modules when it ends.

    The snippet may print to stdout freely; the module list travels on stderr's last line.
    """
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.splitlines()[-1]))


def loaded(modules: set[str], *prefixes: str) -> list[str]:
    """The modules among `modules` that are one of `prefixes` or inside one of them."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))
