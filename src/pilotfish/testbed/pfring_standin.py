"""A stand-in libpfring for machines without PF_RING: built from pfring_standin.c with gcc.

The library exports the libpfring functions pilotfish binds, with pfring.h's signatures and
struct layouts, implemented on a plain AF_PACKET socket (one recvmmsg per up to 64 packets,
no mmap ring).  Tests and the capture benchmark load it through `PfRingSource(library=...)`
or `PILOTFISH_PFRING_LIBRARY`, the path the real library takes.  Its speed says nothing about
PF_RING's own: it measures the binding on top of an ordinary socket.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

SOURCE: Final = Path(__file__).with_name("pfring_standin.c")
BUILD_TIMEOUT_S: Final = 120.0


class StandinError(Exception):
    """The stand-in cannot be built here (no gcc, no libpcap headers, a compile error)."""


def build_standin(directory: Path, *defines: str, name: str = "libpfstandin.so") -> Path:
    """Compile the stand-in into `directory`/`name`; `defines` are extra `-D...` flags
    (`-DSHIM_FAIL_ERRNO=N` makes every pfring_open fail with errno N)."""
    if shutil.which("gcc") is None:
        raise StandinError("gcc not found")
    if any(not d.startswith("-D") for d in defines):
        raise ValueError(f"only -D flags are accepted: {defines}")
    target = directory / name
    argv = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", *defines]
    argv += ["-o", str(target), str(SOURCE), "-lpcap"]
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        raise StandinError(f"gcc failed: {exc.stderr.decode(errors='replace')[-500:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise StandinError(f"gcc took longer than {BUILD_TIMEOUT_S:.0f}s") from exc
    return target
