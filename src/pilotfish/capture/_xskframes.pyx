# cython: language_level=3, boundscheck=False, wraparound=False
"""Frames of one AF_XDP batch, in C: the loop of `afxdp.AfXdpSource`.

`split_frames` cuts `buf` (the batch's frames back to back, as the helper copied them out of
the UMEM) at the `n` lengths of `lens` and appends one frame tuple (ts, link type, captured
bytes, wire length) per frame to `out`, the bytes cut to `snaplen`.  Returns the captured
bytes.  Bounds: a length reaching past the end of `buf` ends the batch there.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t


def split_frames(const uint8_t[::1] buf, const uint32_t[::1] lens, Py_ssize_t n,
                 double ts, object linktype, Py_ssize_t snaplen, list out):
    cdef Py_ssize_t i, off = 0, size, length, total = buf.shape[0]
    cdef long long nbytes = 0
    cdef bytes data
    if n > lens.shape[0]:
        n = lens.shape[0]
    for i in range(n):
        length = lens[i]
        if off + length > total:
            break
        size = length if length <= snaplen else snaplen
        data = PyBytes_FromStringAndSize(<const char*>&buf[off] if size else NULL, size)
        out.append((ts, linktype, data, length))
        nbytes += size
        off += length
    return nbytes
