"""Build steps beyond pyproject.toml: the capture ring helpers (cffi) and the compiled hot path.

The modules every packet and every message pass through are compiled with mypyc (from their
own typed source; nothing else changes), and one scanner is written in Cython.
`PILOTFISH_PURE=1` builds without mypyc, for debugging: the same source then runs
interpreted (the scanner is always compiled).  After editing one of these modules, run
`make install` (the bootstrap rebuilds when a compiled module is older than its source).
"""

import os

from Cython.Build import cythonize
from setuptools import setup

# The read path: file -> frames -> L4 packets -> flows -> HTTP/1 -> entries in order.
COMPILED = [
    "src/pilotfish/capture/pcapfile.py",
    "src/pilotfish/decode/decoder.py",
    "src/pilotfish/decode/fragments.py",
    "src/pilotfish/decode/ip.py",
    "src/pilotfish/decode/link.py",
    "src/pilotfish/decode/stats.py",
    "src/pilotfish/decode/transport.py",
    "src/pilotfish/decode/tunnel.py",
    "src/pilotfish/flows/flow.py",
    "src/pilotfish/flows/stats.py",
    "src/pilotfish/flows/table.py",
    "src/pilotfish/flows/tcp.py",
    "src/pilotfish/dissect/body.py",
    "src/pilotfish/dissect/http1.py",
    "src/pilotfish/dissect/http1side.py",
    "src/pilotfish/dissect/http1whole.py",
    "src/pilotfish/dissect/httpheaders.py",
    "src/pilotfish/pipeline.py",
    "src/pilotfish/reorder.py",
]

# Written for the compiler: pcap records, the decoder's fast path, whole HTTP/1 heads.
CYTHON = [
    "src/pilotfish/capture/_pcaprecords.pyx",
    "src/pilotfish/capture/_tpwalk.pyx",
    "src/pilotfish/capture/_xskframes.pyx",
    "src/pilotfish/decode/_fastl4.pyx",
    "src/pilotfish/dissect/_headscan.pyx",
]

# Small C helpers for the capture rings, built with cffi (a builder's `ffibuilder`).
CFFI = [
    "src/pilotfish/capture/_xsk_build.py",
    "src/pilotfish/capture/_pfdrain_build.py",
]

ext_modules = cythonize(CYTHON, quiet=True)
if os.environ.get("PILOTFISH_PURE", "") != "1":
    from mypyc.build import mypycify

    ext_modules += mypycify(COMPILED, opt_level="3", debug_level="0")

setup(
    cffi_modules=[f"{path}:ffibuilder" for path in CFFI],
    ext_modules=ext_modules,
)
