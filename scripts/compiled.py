"""Is the compiled hot path (the modules `setup.py` lists in COMPILED and CYTHON, and the
cffi builders in CFFI) built from the source now in the tree?

    python scripts/compiled.py check   exit 0 when it is (or nothing is compiled), 1 when not
    python scripts/compiled.py stamp   record the current source as built

The stamp (a digest of setup.py, every compiled module's source, the `.pxd` files beside
them, and PILOTFISH_PURE) lives in the virtualenv, so a fresh clone always builds once.
`make install` rebuilds when `check` fails; the test suite refuses to run against a stale
build, which would test yesterday's code.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP = ROOT / ".venv" / ".pilotfish-compiled"


def compiled_sources() -> list[Path]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    found: list[Path] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in ("COMPILED", "CYTHON", "CFFI") for t in node.targets
        ):
            found += [ROOT / str(name) for name in ast.literal_eval(node.value)]
    return found


def digest() -> str:
    h = hashlib.sha256((ROOT / "setup.py").read_bytes())
    h.update(os.environ.get("PILOTFISH_PURE", "").encode())  # a build without mypyc differs
    sources = compiled_sources()
    # the Cython declarations those modules cimport are part of their source too
    shared = sorted({pxd for path in sources for pxd in path.parent.glob("*.pxd")})
    for path in [*sources, *shared]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def built_modules() -> list[Path]:
    """The extension modules now next to their source."""
    return [
        so for path in compiled_sources() for so in path.parent.glob(path.stem + ".cpython-*.so")
    ]


def stale() -> bool:
    """True when compiled modules exist and were not built from the current source."""
    if not built_modules():
        return False
    return not STAMP.exists() or STAMP.read_text().strip() != digest()


def main(argv: list[str]) -> int:
    if argv == ["check"]:
        return 1 if stale() or not built_modules() else 0
    if argv == ["stamp"]:
        STAMP.write_text(digest() + "\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
